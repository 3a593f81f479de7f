//! Access tokens die with what they stand for (issue 18, item 4).
//!
//! Each test takes an access token that works, makes one event happen
//! (Logout, Logout of all sessions, refresh-token reuse, a password change,
//! a demotion, a disabled account) and checks that the token fails right
//! after it: at once in the server that made the change, and within the
//! documented bound (CACHE_LOCAL_TTL_MS, 1 s) in another process: the CLI's
//! changes, and a second API server sharing the database and Redis. Every
//! server here uses Redis, as deployments do, so the principal cache is on
//! the path. Waits poll (up to a few seconds) and never assert a duration.

use std::time::Duration;

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, auth_service_client::AuthServiceClient, system_service_client::SystemServiceClient,
};
use tonic::{Code, Status, transport::Channel};

use crate::common::{
    Options, PASSWORD, TestApp, api_key, assert_code, bearer, connect_when_up, free_port, reason,
};

/// A Redis namespace of the test's own.
fn redis() -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", "redis://127.0.0.1:6379".into()),
        (
            "REDIS_KEY_PREFIX",
            format!("fileorg-test-{}:", uuid::Uuid::new_v4().simple()),
        ),
    ]
}

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        env: redis(),
        ..Default::default()
    })
    .await
}

async fn me(channel: &Channel, token: &str) -> Result<pb::User, Status> {
    AuthServiceClient::new(channel.clone())
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, token))
        .await
        .map(|r| r.into_inner())
}

fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy()
}

/// The token of an ended session: refused like any invalid token.
fn assert_dead(result: Result<pb::User, Status>, what: &str) {
    match result {
        Ok(user) => panic!("{what}: the token still works (as {})", user.email),
        Err(status) => {
            assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
            assert_eq!(reason(&status), "TOKEN_INVALID", "{what}");
            assert_eq!(status.message(), "the access token is invalid or expired");
        }
    }
}

async fn login(app: &TestApp, email: &str, password: &str) -> pb::LoginResponse {
    app.auth()
        .login(pb::LoginRequest {
            email: email.into(),
            password: password.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Polls `probe` until it returns true, for up to 5 s; whether it did.
async fn eventually<F, Fut>(mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Runs `fileorg user <action> <email>` against the app's database and Redis.
async fn fileorg_user(app: &TestApp, env: &[(&'static str, String)], action: &str, email: &str) {
    let mut command = app.fileorg_command(&["user", action, email]);
    command.envs(env.iter().map(|(k, v)| (*k, v.clone())));
    let status = tokio::task::spawn_blocking(move || command.status().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "fileorg user {action} {email}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_that_sessions_access_token_at_once() {
    let app = app().await;
    let ch = channel(&app);
    let email = TestApp::email("logout-now");
    let session = app.register(&email).await;
    let other = login(&app, &email, PASSWORD).await;
    me(&ch, &session.access_token).await.unwrap();
    me(&ch, &session.access_token).await.unwrap(); // cached now
    app.auth()
        .logout(bearer(pb::LogoutRequest::default(), &session.access_token))
        .await
        .unwrap();
    assert_dead(me(&ch, &session.access_token).await, "after Logout");
    // Only that session ended.
    me(&ch, &other.access_token).await.unwrap();
    // Logging out by refresh token ends that session's access token too.
    app.auth()
        .logout(bearer(
            pb::LogoutRequest {
                refresh_token: other.refresh_token.clone(),
                all_sessions: false,
            },
            &other.access_token,
        ))
        .await
        .unwrap();
    assert_dead(
        me(&ch, &other.access_token).await,
        "after Logout by refresh token",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_of_all_sessions_ends_every_access_token() {
    let app = app().await;
    let ch = channel(&app);
    let email = TestApp::email("logout-all");
    let first = app.register(&email).await;
    let second = login(&app, &email, PASSWORD).await;
    let refreshed = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: second.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    for token in [
        &first.access_token,
        &second.access_token,
        &refreshed.access_token,
    ] {
        me(&ch, token).await.unwrap();
    }
    let out = app
        .auth()
        .logout(bearer(
            pb::LogoutRequest {
                refresh_token: String::new(),
                all_sessions: true,
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    // Counts refresh tokens: the refreshed session has two.
    assert_eq!(out.revoked_sessions, 3);
    for (what, token) in [
        ("the caller's session", &first.access_token),
        ("the other session", &second.access_token),
        ("the other session, refreshed", &refreshed.access_token),
    ] {
        assert_dead(me(&ch, token).await, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_reuse_ends_the_familys_access_tokens() {
    let app = app().await;
    let ch = channel(&app);
    let email = TestApp::email("reuse");
    let session = app.register(&email).await;
    let other = login(&app, &email, PASSWORD).await;
    let rotated = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: session.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    me(&ch, &session.access_token).await.unwrap();
    me(&ch, &rotated.access_token).await.unwrap();
    // A thief replays the spent refresh token.
    let reused = assert_code(
        app.auth()
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: session.refresh_token.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&reused), "REFRESH_TOKEN_REUSED");
    assert_dead(
        me(&ch, &session.access_token).await,
        "the first access token",
    );
    assert_dead(
        me(&ch, &rotated.access_token).await,
        "the rotated access token",
    );
    me(&ch, &other.access_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_other_sessions_access_tokens() {
    let app = app().await;
    let ch = channel(&app);
    let email = TestApp::email("password");
    let current = app.register(&email).await;
    let stolen = login(&app, &email, PASSWORD).await;
    me(&ch, &stolen.access_token).await.unwrap();
    app.auth()
        .update_current_user(bearer(
            pb::UpdateCurrentUserRequest {
                current_password: PASSWORD.into(),
                new_password: "a brand new password".into(),
                ..Default::default()
            },
            &current.access_token,
        ))
        .await
        .unwrap();
    assert_dead(me(&ch, &stolen.access_token).await, "another session");
    // The session that changed the password goes on.
    me(&ch, &current.access_token).await.unwrap();

    // Changed with an API key (no session of its own): every session ends.
    let key = crate::auth::create_key(&app, &current.access_token, "pw").await;
    app.auth()
        .update_current_user(api_key(
            pb::UpdateCurrentUserRequest {
                current_password: "a brand new password".into(),
                new_password: "yet another password".into(),
                ..Default::default()
            },
            &key.secret,
        ))
        .await
        .unwrap();
    assert_dead(
        me(&ch, &current.access_token).await,
        "after a change by key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_admin_loses_the_admin_rpcs_on_the_token_already_issued() {
    let env = redis();
    let app = TestApp::spawn_with(Options {
        env: env.clone(),
        ..Default::default()
    })
    .await;
    let ch = channel(&app);
    let email = TestApp::email("demoted");
    let user = app.register(&email).await;
    let user_id = user.user.unwrap().id;
    fileorg_user(&app, &env, "promote", &email).await;
    let admin = login(&app, &email, PASSWORD).await.access_token;
    let admin_key = AuthServiceClient::new(ch.clone())
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                api_key: Some(pb::ApiKey {
                    display_name: "admin key".into(),
                    scopes: vec!["admin".into()],
                    ..Default::default()
                }),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let system = SystemServiceClient::new(ch.clone());
    let audit_events = |request: tonic::Request<pb::ListAuditEventsRequest>| {
        let mut system = system.clone();
        async move { system.list_audit_events(request).await.map(drop) }
    };
    let reset = |token: String| {
        let mut system = system.clone();
        let user_id = user_id.clone();
        async move {
            system
                .reset_rate_limit(bearer(
                    pb::ResetRateLimitRequest {
                        user_id,
                        buckets: vec![],
                    },
                    &token,
                ))
                .await
                .map(drop)
        }
    };
    audit_events(bearer(pb::ListAuditEventsRequest::default(), &admin))
        .await
        .unwrap();
    reset(admin.clone()).await.unwrap();
    audit_events(api_key(pb::ListAuditEventsRequest::default(), &admin_key))
        .await
        .unwrap();

    // `fileorg user demote` from another process: the command returns once
    // the change is in force (it invalidated the caches twice).
    fileorg_user(&app, &env, "demote", &email).await;
    let denied = |result: Result<(), Status>| {
        result
            .is_err_and(|s| s.code() == Code::PermissionDenied && reason(&s) == "PERMISSION_DENIED")
    };
    assert!(
        denied(audit_events(bearer(pb::ListAuditEventsRequest::default(), &admin)).await),
        "ListAuditEvents still works with the demoted admin's token"
    );
    assert!(
        denied(reset(admin.clone()).await),
        "ResetRateLimit still works"
    );
    assert!(
        denied(audit_events(api_key(pb::ListAuditEventsRequest::default(), &admin_key)).await),
        "the admin key still reaches the admin RPCs"
    );
    // The rest of the session is untouched.
    me(&ch, &admin).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_loses_its_tokens_and_keys_until_enabled() {
    let env = redis();
    let app = TestApp::spawn_with(Options {
        env: env.clone(),
        ..Default::default()
    })
    .await;
    let ch = channel(&app);
    let email = TestApp::email("disabled");
    let session = app.register(&email).await;
    let key = crate::auth::create_key(&app, &session.access_token, "k")
        .await
        .secret;
    let by_key = || {
        let mut client = AuthServiceClient::new(ch.clone());
        let request = api_key(pb::GetCurrentUserRequest {}, &key);
        async move { client.get_current_user(request).await }
    };
    me(&ch, &session.access_token).await.unwrap();
    by_key().await.unwrap();

    fileorg_user(&app, &env, "disable", &email).await;
    assert_dead(
        me(&ch, &session.access_token).await,
        "a disabled account's token",
    );
    let status = assert_code(by_key().await, Code::Unauthenticated);
    assert_eq!(reason(&status), "API_KEY_INVALID");

    fileorg_user(&app, &env, "enable", &email).await;
    me(&ch, &session.access_token).await.unwrap();
    by_key().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_api_process_refuses_an_ended_session_within_the_bound() {
    let env = redis();
    let app = TestApp::spawn_with(Options {
        env: env.clone(),
        ..Default::default()
    })
    .await;
    let port = free_port();
    let mut second = crate::common::KillOnDrop(
        app.fileorg_command(&["serve"])
            .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("WORKERS", "0")
            // Configured like the test server (the harness raises every
            // limit; shared windows need the same limits in every process).
            .envs(crate::common::RATE_LIMITS.map(|k| (k, "1000000")))
            .envs(env.iter().map(|(k, v)| (*k, v.clone())))
            .spawn()
            .unwrap(),
    );
    let there = connect_when_up(port).await;
    let here = channel(&app);
    let email = TestApp::email("two-processes");
    let session = app.register(&email).await;
    let stolen = login(&app, &email, PASSWORD).await;
    // Both processes hold both sessions in their caches (memory and Redis).
    for token in [&session.access_token, &stolen.access_token] {
        for _ in 0..2 {
            me(&here, token).await.unwrap();
            me(&there, token).await.unwrap();
        }
    }

    // Logout here; the other process must refuse the token soon.
    app.auth()
        .logout(bearer(pb::LogoutRequest::default(), &session.access_token))
        .await
        .unwrap();
    assert_dead(me(&here, &session.access_token).await, "here, at once");
    let started = std::time::Instant::now();
    assert!(
        eventually(|| async { me(&there, &session.access_token).await.is_err() }).await,
        "the other process still accepts the logged-out session after 5 s"
    );
    println!(
        "the other process refused the ended session after {:?}",
        started.elapsed()
    );
    assert_dead(me(&there, &session.access_token).await, "there");

    // A password change made there ends the other session here.
    AuthServiceClient::new(there.clone())
        .update_current_user(bearer(
            pb::UpdateCurrentUserRequest {
                current_password: PASSWORD.into(),
                new_password: "changed over there".into(),
                ..Default::default()
            },
            &stolen.access_token,
        ))
        .await
        .unwrap();
    let fresh = login(&app, &email, "changed over there").await;
    me(&here, &fresh.access_token).await.unwrap();
    AuthServiceClient::new(there.clone())
        .logout(bearer(
            pb::LogoutRequest {
                refresh_token: String::new(),
                all_sessions: true,
            },
            &stolen.access_token,
        ))
        .await
        .unwrap();
    assert!(
        eventually(|| async { me(&here, &fresh.access_token).await.is_err() }).await,
        "this process still accepts a session ended over there after 5 s"
    );
    assert_dead(me(&here, &fresh.access_token).await, "here");
    second.kill();
}
