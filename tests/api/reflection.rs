//! Reflection, checked with the Python grpcio-reflection client.

use crate::common::{PASSWORD, TestApp, python_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reflection_client_lists_every_service() {
    let app = TestApp::spawn().await;
    let listed: serde_json::Value =
        python_client("reflection_list.py", vec![app.addr.to_string()]).await;
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

/// A client with no generated code calls every service (tests/clients/reflection_call.py):
/// request and response types come only from the descriptors reflection serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reflection_client_calls_every_service() {
    let app = TestApp::spawn().await;
    let email = TestApp::email("reflected");
    let args = vec![app.addr.to_string(), email.clone(), PASSWORD.to_string()];
    let result: serde_json::Value = python_client("reflection_call.py", args).await;
    let call = |method: &str| &result["calls"][method];

    let session = call("fileorganizer.v1.AuthService.Register");
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["user"]["email"], email.as_str());
    let me = call("fileorganizer.v1.AuthService.GetCurrentUser");
    assert_eq!(me["id"], session["user"]["id"]);
    assert_eq!(me["role"], "USER_ROLE_USER");
    let health = call("fileorganizer.v1.SystemService.GetHealth");
    assert_eq!(health["status"], "HEALTH_STATE_HEALTHY");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let status = call("fileorganizer.v1.SystemService.GetStatus");
    assert_eq!(status["environment"], "test");
    let components: Vec<&str> = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(components.contains(&"database"), "{components:?}");
    let operations = call("fileorganizer.v1.OperationService.ListOperations");
    assert_eq!(operations["operations"], serde_json::json!([]));
    assert_eq!(operations["next_page_token"], "");
    let categories = call("fileorganizer.v1.FileService.ListCategories")["categories"]
        .as_array()
        .unwrap();
    assert!(
        categories
            .iter()
            .any(|c| c["display_name"] == "Images" && c["built_in"] == true),
        "{categories:?}"
    );
    let usage = call("fileorganizer.v1.ReportService.GetUsageSummary");
    assert_eq!(usage["operation_count"], "0");
    assert_eq!(usage["storage_used_bytes"], "0");
    assert_eq!(call("grpc.health.v1.Health.Check")["status"], "SERVING");
    // Every service it called was listed by reflection.
    let services = result["services"].as_array().unwrap();
    for service in [
        "fileorganizer.v1.AuthService",
        "fileorganizer.v1.SystemService",
        "fileorganizer.v1.OperationService",
        "fileorganizer.v1.FileService",
        "fileorganizer.v1.ReportService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.iter().any(|s| s == service),
            "{service} not listed"
        );
    }
}
