//! Structured logs: one JSON line per RPC with its request id and user id,
//! and never a password or a token.

use std::{io::Read, process::Stdio, time::Duration};

use fileorganizer::pb::fileorganizer::v1::{self as pb, auth_service_client::AuthServiceClient};

use crate::common::{PASSWORD, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_logged_with_ids_and_without_secrets() {
    // The database of a TestApp, served by a separate process whose logs we read.
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = app
        .fileorg_command(&["serve"])
        .env("ENVIRONMENT", "production")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKERS", "0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = AuthServiceClient::new(crate::common::connect_when_up(port).await);
    let email = TestApp::email("logged");
    client
        .register(pb::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap();
    let mut login = tonic::Request::new(pb::LoginRequest {
        email: email.clone(),
        password: PASSWORD.into(),
    });
    login
        .metadata_mut()
        .insert("x-request-id", "req-login-4242".parse().unwrap());
    let response = client.login(login).await.unwrap();
    assert_eq!(
        response.metadata().get("x-request-id").unwrap(),
        "req-login-4242"
    );
    let session = response.into_inner();
    let user_id = session.user.unwrap().id;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // SIGTERM: a graceful stop flushes the log.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    server.wait().unwrap();

    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "no JSON log lines: {log}");
    let answered = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "rpc answered" && l["span"]["request_id"] == "req-login-4242"
        })
        .unwrap_or_else(|| panic!("no log line for the login: {log}"));
    assert_eq!(
        answered["span"]["method"],
        "/fileorganizer.v1.AuthService/Login"
    );
    assert_eq!(answered["span"]["user_id"], user_id.as_str());
    assert!(!log.contains(PASSWORD), "the password was logged");
    assert!(
        !log.contains(&session.access_token),
        "the access token was logged"
    );
    assert!(
        !log.contains(&session.refresh_token),
        "the refresh token was logged"
    );
}
