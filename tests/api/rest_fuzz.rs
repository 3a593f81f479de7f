//! The property-based fuzz of the REST API (`tests/rest/fuzz_api.py`, schemathesis) from
//! `sdk/openapi/openapi.json`, against a real server behind a real Envoy: every operation,
//! authenticated, every response as documented (no 5xx, a listed status, content type and body).

use crate::common::{PASSWORD, TestApp, envoy::Envoy, pytest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_fuzz_from_the_openapi_document_finds_nothing() {
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let envs = vec![
        ("FILEORG_REST_URL", envoy.url("")),
        ("FILEORG_PASSWORD", PASSWORD.to_string()),
    ];
    tokio::task::block_in_place(|| pytest(&["tests/rest/fuzz_api.py", "-v", "-s"], envs));
}
