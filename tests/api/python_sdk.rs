//! The Python SDK (`sdk/python`) against a live server: runs its pytest suite with
//! FILEORG_URL pointing at a fresh `TestApp`.

use std::process::Command;

use crate::common::{TestApp, python, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_test_suite_passes_against_a_live_server() {
    let app = TestApp::spawn().await;
    let addr = app.addr;
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .args([
                "-m",
                "pytest",
                "sdk/python/tests",
                "-v",
                "-p",
                "no:cacheprovider",
            ])
            .current_dir(repo_root())
            .env("FILEORG_URL", format!("127.0.0.1:{}", addr.port()))
            .env("PYTHONPATH", repo_root().join("sdk/python/src"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("run pytest")
    })
    .await
    .unwrap();
    println!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "pytest sdk/python/tests failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `sdk/openapi/openapi.json` is valid OpenAPI 3 and lists every REST route of the README
/// (sdk/openapi/test_openapi.py; needs no server).
#[test]
fn openapi_document_is_valid_and_complete() {
    let output = Command::new(python())
        .args([
            "-m",
            "pytest",
            "sdk/openapi",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .current_dir(repo_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run pytest");
    assert!(
        output.status.success(),
        "pytest sdk/openapi failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Envoy serves the committed OpenAPI document at `GET /api/v1/openapi.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_serves_the_openapi_document() {
    let app = TestApp::spawn().await;
    let envoy = crate::common::envoy::Envoy::start(app.addr.port()).await;
    let response = reqwest::get(envoy.url("/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{:?}",
        response.headers()
    );
    let body = response.bytes().await.unwrap();
    let committed = std::fs::read(repo_root().join("sdk/openapi/openapi.json")).unwrap();
    assert!(body[..] == committed[..], "served document differs");
    // The REST API around it still works (the route only matches this path).
    let health = reqwest::get(envoy.url("/health")).await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
}
