//! Health probes agree: `fileorg healthcheck` and the standard grpc.health.v1
//! protocol (Python grpcio-health-checking) say SERVING / NOT_SERVING for the
//! same services at the same time.

use std::time::Duration;

use crate::common::{Options, TestApp, python_client};

const SERVICES: &[&str] = &[
    "",
    "fileorganizer.v1.AuthService",
    "fileorganizer.v1.OperationService",
    "fileorganizer.v1.FileService",
    "fileorganizer.v1.ReportService",
    "fileorganizer.v1.RuleService",
    "fileorganizer.v1.SystemService",
];

async fn python_view(app: &TestApp) -> serde_json::Value {
    let mut args = vec![app.addr.to_string()];
    args.extend(SERVICES.iter().map(|s| s.to_string()));
    python_client("health_check.py", args).await
}

async fn binary_view(app: &TestApp, service: &str) -> (bool, String) {
    let addr = app.addr.to_string();
    let service = service.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
            .args([
                "healthcheck",
                "--addr",
                &addr,
                "--service",
                &service,
                "--timeout",
                "5",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fileorg_healthcheck_and_grpc_health_agree_per_service() {
    let app = TestApp::spawn_with(Options {
        db_proxy: true,
        ..Default::default()
    })
    .await;
    for (expected, exit_ok) in [("SERVING", true), ("NOT_SERVING", false)] {
        if expected == "NOT_SERVING" {
            app.db_proxy.as_ref().unwrap().set_down();
            assert!(app.wait_for_health(2, Duration::from_secs(15)).await);
        }
        let python = python_view(&app).await;
        for service in SERVICES {
            assert_eq!(
                python[*service], expected,
                "python probe, service {service:?}: {python}"
            );
            let (ok, said) = binary_view(&app, service).await;
            assert_eq!(
                (ok, said.as_str()),
                (exit_ok, expected),
                "fileorg healthcheck, service {service:?}"
            );
        }
    }
    // An unknown service is NOT_FOUND for the standard client, a failure for ours.
    let (ok, _) = binary_view(&app, "nope.Service").await;
    assert!(!ok);
}
