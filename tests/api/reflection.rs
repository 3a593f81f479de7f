//! Reflection, checked with the Python grpcio-reflection client.

use crate::common::{TestApp, python, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reflection_client_lists_every_service() {
    let app = TestApp::spawn().await;
    let script = repo_root().join("tests/clients/reflection_list.py");
    let addr = app.addr.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python())
            .arg(script)
            .arg(addr)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let services: Vec<&str> = listed["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for service in [
        "fileorganizer.v1.AuthService",
        "fileorganizer.v1.OperationService",
        "fileorganizer.v1.FileService",
        "fileorganizer.v1.ReportService",
        "fileorganizer.v1.SystemService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.contains(&service),
            "{service} missing from {services:?}"
        );
    }
    let auth_methods = listed["methods"]["fileorganizer.v1.AuthService"]
        .as_array()
        .unwrap();
    assert_eq!(auth_methods.len(), 9);
    // The descriptor is served losslessly: the HTTP rule is there.
    assert_eq!(listed["http_rule"], "/api/v1/users/me");
}
