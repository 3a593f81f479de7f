//! The Python SDK (`sdk/python`) against a live server: runs its pytest suite with
//! FILEORG_URL pointing at a fresh `TestApp` and FILEORG_ADMIN_EMAIL naming an admin on it
//! (password `PASSWORD`). The suite never skips: its conftest fails a test that would
//! (a missing FILEORG_URL included), so every test here runs or fails.

use crate::common::{Options, PASSWORD, TestApp, pytest, repo_root};

/// Registers an admin on `app` (the SDK's admin wrappers and their README examples need
/// one) and returns its email.
async fn admin(app: &TestApp) -> String {
    let email = TestApp::email("sdk-admin");
    app.register(&email).await;
    let mut conn = app.db().await;
    fileorganizer::db::users::set_role(&mut conn, &email, fileorganizer::domain::Role::Admin)
        .await
        .unwrap();
    email
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_test_suite_passes_against_a_live_server() {
    let app = TestApp::spawn().await;
    let envs = vec![
        ("FILEORG_URL", format!("127.0.0.1:{}", app.addr.port())),
        ("FILEORG_ADMIN_EMAIL", admin(&app).await),
        ("FILEORG_ADMIN_PASSWORD", PASSWORD.to_string()),
        (
            "PYTHONPATH",
            repo_root().join("sdk/python/src").display().to_string(),
        ),
    ];
    // The transfers need a server with a low upload limit: the next test.
    let args = [
        "sdk/python/tests",
        "--ignore",
        "sdk/python/tests/test_transfers.py",
        "-v",
    ];
    tokio::task::block_in_place(|| pytest(&args, envs));
}

/// Uploads allowed per window in `python_sdk_transfers_against_a_low_upload_limit`.
const LOW_UPLOAD_LIMIT: u32 = 3;

/// The SDK's transfers (`sdk/python/tests/test_transfers.py`: upload_folder paced by
/// RetryInfo and idempotent, import_archive, upload_large resumed after a cut connection)
/// against a server that allows only a few uploads per short window, so
/// the pacing is exercised without minutes of waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_transfers_against_a_low_upload_limit() {
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("RATE_LIMIT_UPLOAD", LOW_UPLOAD_LIMIT.to_string()),
            ("RATE_LIMIT_WINDOW_SECS", "3".into()),
        ],
        ..Options::default()
    })
    .await;
    let envs = vec![
        ("FILEORG_URL", format!("127.0.0.1:{}", app.addr.port())),
        ("FILEORG_UPLOAD_LIMIT", LOW_UPLOAD_LIMIT.to_string()),
        (
            "PYTHONPATH",
            repo_root().join("sdk/python/src").display().to_string(),
        ),
    ];
    tokio::task::block_in_place(|| pytest(&["sdk/python/tests/test_transfers.py", "-v"], envs));
}

/// `sdk/openapi/openapi.json` is valid OpenAPI 3 and lists every REST route of the README
/// (sdk/openapi/test_openapi.py; needs no server).
#[test]
fn openapi_document_is_valid_and_complete() {
    pytest(&["sdk/openapi", "-q"], Vec::new());
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
