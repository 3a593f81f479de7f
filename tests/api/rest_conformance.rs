//! The REST conformance suite (`tests/rest/`, pytest + requests) against real servers behind
//! real Envoys, as a REST user sees them.
//!
//! Three servers, because three error classes need a server in a particular condition: the main
//! one (with an admin user), one with a low `RATE_LIMIT_API` (429), and one whose database sits
//! behind a `TcpProxy` that is cut before pytest starts (503). The suite checks every response
//! against `sdk/openapi/openapi.json` and fails unless every documented route was exercised.

use std::time::Duration;

use crate::common::{Options, PASSWORD, TestApp, envoy::Envoy, pytest};

/// Authenticated calls the rate-limited server allows per window.
const RATE_LIMIT_API: u32 = 5;
/// The browser origin TestApp allows (its CORS_ORIGINS).
const CORS_ORIGIN: &str = "http://console.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_conformance_suite_passes_through_envoy() {
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let admin_email = TestApp::email("rest-admin");
    app.register(&admin_email).await;
    let mut conn = app.db().await;
    fileorganizer::db::users::set_role(&mut conn, &admin_email, fileorganizer::domain::Role::Admin)
        .await
        .unwrap();

    let limited = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_API", RATE_LIMIT_API.to_string())],
        ..Default::default()
    })
    .await;
    let limited_envoy = Envoy::start(limited.addr.port()).await;

    let down = TestApp::spawn_with(Options {
        db_proxy: true,
        ..Default::default()
    })
    .await;
    let down_envoy = Envoy::start(down.addr.port()).await;
    let down_token = down
        .register(&TestApp::email("rest-down"))
        .await
        .access_token;
    down.db_proxy.as_ref().unwrap().set_down();
    assert!(
        down.wait_for_health(2, Duration::from_secs(15)).await,
        "health did not go NOT_SERVING with the database cut"
    );

    let envs = vec![
        ("FILEORG_REST_URL", envoy.url("")),
        ("FILEORG_REST_LIMITED_URL", limited_envoy.url("")),
        ("FILEORG_REST_DOWN_URL", down_envoy.url("")),
        ("FILEORG_DOWN_TOKEN", down_token),
        ("FILEORG_ADMIN_EMAIL", admin_email),
        ("FILEORG_PASSWORD", PASSWORD.to_string()),
        ("FILEORG_RATE_LIMIT_API", RATE_LIMIT_API.to_string()),
        ("FILEORG_CORS_ORIGIN", CORS_ORIGIN.to_string()),
    ];
    tokio::task::block_in_place(|| pytest(&["tests/rest", "-v"], envs));
}
