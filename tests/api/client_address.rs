//! Whose word the server takes for a client's address (issue 18, item 7).
//!
//! The gRPC port is public, so a client that reaches it directly, from
//! loopback like the Envoy sidecar, must not pick its own address with a
//! forwarded-address header: every per-address limit would be one header
//! away. Only the configured proxy (`TRUSTED_PROXIES`; the test Envoy
//! connects from 127.0.0.2, as in production) may say who its client is.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use fileorganizer::{pb::fileorganizer::v1 as pb, schema::audit_log};
use reqwest::StatusCode;
use tonic::{Code, Request, metadata::MetadataValue};

use crate::common::{Options, TestApp, api_key, envoy::Envoy, reason};

/// `request` with forwarded-address headers naming address number `i`.
fn forged<T>(message: T, i: u32) -> Request<T> {
    let mut request = Request::new(message);
    let headers = request.metadata_mut();
    headers.insert(
        "x-envoy-external-address",
        MetadataValue::try_from(format!("203.0.113.{i}")).unwrap(),
    );
    headers.insert(
        "x-forwarded-for",
        MetadataValue::try_from(format!("198.51.100.{i}")).unwrap(),
    );
    headers.insert(
        "x-real-ip",
        MetadataValue::try_from(format!("192.0.2.{i}")).unwrap(),
    );
    request
}

fn wrong_login(email: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        email: email.into(),
        password: "not the password".into(),
    }
}

/// The client addresses audited for `action`, oldest first.
async fn audited_addresses(app: &TestApp, action: &str) -> Vec<Option<String>> {
    let mut conn = app.db().await;
    audit_log::table
        .filter(audit_log::action.eq(action))
        .order(audit_log::id.asc())
        .select(audit_log::client_ip)
        .load(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_client_rotating_forwarded_headers_stays_one_address_for_login_limits() {
    const LIMIT: u32 = 3;
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_LOGIN_PER_IP", LIMIT.to_string())],
        ..Default::default()
    })
    .await;
    let mut codes = Vec::new();
    for i in 0..LIMIT + 3 {
        let email = TestApp::email("rotating");
        let status = app
            .auth()
            .login(forged(wrong_login(&email), i))
            .await
            .unwrap_err();
        codes.push(status.code());
    }
    // Every attempt counted against the one real address: the first LIMIT
    // were answered, the rest refused, whatever the headers claimed.
    let mut expected = vec![Code::Unauthenticated; LIMIT as usize];
    expected.extend([Code::ResourceExhausted; 3]);
    assert_eq!(codes, expected);
    let logins = audited_addresses(&app, "auth.login").await;
    assert_eq!(logins.len(), LIMIT as usize);
    assert!(
        logins.iter().all(|ip| ip.as_deref() == Some("127.0.0.1")),
        "{logins:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_client_rotating_forwarded_headers_cannot_escape_the_credential_lockout() {
    const LIMIT: u32 = 3;
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_AUTH_FAILURES_PER_IP", LIMIT.to_string())],
        ..Default::default()
    })
    .await;
    let session = app.register(&TestApp::email("locked")).await;
    let real_key = crate::auth::create_key(&app, &session.access_token, "real")
        .await
        .secret;
    let guess = |i: u32| format!("fo_{:0>10}_{}", i, "g".repeat(43));
    for i in 0..LIMIT {
        let mut request = forged(pb::GetCurrentUserRequest {}, i);
        request
            .metadata_mut()
            .insert("x-api-key", MetadataValue::try_from(guess(i)).unwrap());
        let status = app.auth().get_current_user(request).await.unwrap_err();
        assert_eq!(reason(&status), "API_KEY_INVALID", "guess {i}");
    }
    // Locked out, whatever address the next requests claim: even the real
    // key is refused before it is checked.
    for i in LIMIT..LIMIT + 3 {
        for key in [guess(i), real_key.clone()] {
            let mut request = forged(pb::GetCurrentUserRequest {}, i);
            request
                .metadata_mut()
                .insert("x-api-key", MetadataValue::try_from(key).unwrap());
            let status = app.auth().get_current_user(request).await.unwrap_err();
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        }
    }
    let lockouts = audited_addresses(&app, "auth.failures_exceeded").await;
    assert_eq!(lockouts, vec![Some("127.0.0.1".to_string())]);
    // Another address (a client of its own) is not locked out.
    let elsewhere =
        fileorganizer::pb::fileorganizer::v1::auth_service_client::AuthServiceClient::new(
            app.channel_from("127.0.0.3"),
        )
        .get_current_user(api_key(pb::GetCurrentUserRequest {}, &real_key))
        .await;
    assert!(elsewhere.is_ok(), "{elsewhere:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_envoy_each_client_keeps_its_own_address() {
    const LIMIT: u32 = 2;
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_LOGIN_PER_IP", LIMIT.to_string())],
        ..Default::default()
    })
    .await;
    let envoy = Envoy::start(app.addr.port()).await;
    // Two REST clients, from 127.0.0.3 and 127.0.0.4 (Envoy connects to the
    // server from 127.0.0.2 for both), each sending forged headers.
    let client = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let login = |http: reqwest::Client, i: u32| {
        let url = envoy.url("/api/v1/auth/login");
        async move {
            http.post(url)
                .header("x-envoy-external-address", format!("203.0.113.{i}"))
                .header("x-forwarded-for", format!("198.51.100.{i}"))
                .json(&serde_json::json!({
                    "email": TestApp::email("rest-client"),
                    "password": "not the password",
                }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let (three, four) = (client("127.0.0.3"), client("127.0.0.4"));
    let mut statuses = Vec::new();
    for i in 0..LIMIT + 1 {
        statuses.push(login(three.clone(), i).await);
    }
    // The server counted 127.0.0.3's attempts as its own (not Envoy's, not
    // the forged ones): refused after LIMIT ...
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // ... while 127.0.0.4, behind the same Envoy, has its own budget.
    assert_eq!(login(four.clone(), 9).await, StatusCode::UNAUTHORIZED);
    let logins = audited_addresses(&app, "auth.login").await;
    assert_eq!(
        logins,
        [
            Some("127.0.0.3".to_string()),
            Some("127.0.0.3".to_string()),
            Some("127.0.0.4".to_string())
        ]
    );
}
