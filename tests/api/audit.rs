//! The audit trail: each security-relevant event writes exactly one row.

use diesel_async::RunQueryDsl;
use fileorganizer::pb::fileorganizer::v1 as pb;
use tonic::Code;

use crate::common::{Options, PASSWORD, TestApp, assert_code, bearer};

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    action: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    outcome: String,
}

async fn events(app: &TestApp) -> Vec<(String, String)> {
    let mut conn = app.db().await;
    diesel::sql_query("SELECT action, outcome FROM audit_log ORDER BY id")
        .load::<Row>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.outcome))
        .collect()
}

/// Runs `step` and asserts it added exactly the `expected` audit rows.
macro_rules! audited {
    ($app:expr, [$(($action:expr, $outcome:expr)),* $(,)?], $step:expr) => {{
        let before = events($app).await.len();
        let result = $step;
        let after = events($app).await;
        let added: Vec<(String, String)> = after[before..].to_vec();
        let expected: Vec<(String, String)> = vec![$(($action.to_string(), $outcome.to_string())),*];
        assert_eq!(added, expected, "audit rows of this step");
        result
    }};
}

/// A server whose per-user limit (12 calls a window) a test can use up.
async fn audited_app() -> TestApp {
    TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_API", "12".into())],
        ..Default::default()
    })
    .await
}

fn login(email: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        email: email.into(),
        password: password.into(),
    }
}

/// A registered user's access token and id.
async fn signed_up(app: &TestApp, label: &str) -> (String, String) {
    let session = app.register(&TestApp::email(label)).await;
    (session.access_token, session.user.unwrap().id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_logins_and_password_changes_write_one_row_each() {
    let app = audited_app().await;
    let email = TestApp::email("audited");
    let session = audited!(
        &app,
        [("auth.register", "success")],
        app.register(&email).await
    );
    audited!(
        &app,
        [("auth.login", "success")],
        app.auth().login(login(&email, PASSWORD)).await.unwrap()
    );
    audited!(
        &app,
        [("auth.login", "failure")],
        assert_code(
            app.auth().login(login(&email, "wrong password")).await,
            Code::Unauthenticated
        )
    );
    audited!(
        &app,
        [("auth.password.change", "success")],
        app.auth()
            .update_current_user(bearer(
                pb::UpdateCurrentUserRequest {
                    current_password: PASSWORD.into(),
                    new_password: "another good password".into(),
                    ..Default::default()
                },
                &session.access_token,
            ))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_created_and_revoked_write_one_row_each() {
    let app = audited_app().await;
    let (token, _) = signed_up(&app, "keys").await;
    let key = audited!(
        &app,
        [("api_key.created", "success")],
        app.auth()
            .create_api_key(bearer(
                pb::CreateApiKeyRequest {
                    api_key: Some(pb::ApiKey {
                        display_name: "k".into(),
                        ..Default::default()
                    })
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
    );
    audited!(
        &app,
        [("api_key.revoked", "success")],
        app.auth()
            .revoke_api_key(bearer(
                pb::RevokeApiKeyRequest {
                    name: key.api_key.unwrap().name
                },
                &token
            ))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_writes_one_row() {
    let app = audited_app().await;
    let session = app.register(&TestApp::email("reuse")).await;
    let refresh = || pb::RefreshTokenRequest {
        refresh_token: session.refresh_token.clone(),
    };
    app.auth().refresh_token(refresh()).await.unwrap();
    audited!(
        &app,
        [("auth.refresh_token.reused", "denied")],
        assert_code(
            app.auth().refresh_token(refresh()).await,
            Code::Unauthenticated
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_for_a_role_a_scope_or_a_path_escape_write_one_row_each() {
    let app = audited_app().await;
    let (token, _) = signed_up(&app, "denied").await;
    audited!(
        &app,
        [("authorization.denied", "denied")],
        assert_code(
            app.system()
                .list_audit_events(bearer(pb::ListAuditEventsRequest::default(), &token))
                .await,
            Code::PermissionDenied
        )
    );
    // A key without the scope an RPC needs (issue 18, item 3).
    let reader = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                api_key: Some(pb::ApiKey {
                    display_name: "reader".into(),
                    scopes: vec!["files.read".into()],
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    audited!(
        &app,
        [("authorization.denied", "denied")],
        assert_code(
            app.operations()
                .list_operations(crate::common::api_key(
                    pb::ListOperationsRequest::default(),
                    &reader
                ))
                .await,
            Code::PermissionDenied
        )
    );
    audited!(
        &app,
        [("path.escape_attempt", "denied")],
        assert_code(
            app.operations()
                .create_operation(bearer(
                    pb::CreateOperationRequest {
                        operation: Some(pb::Operation {
                            source_path: "../../etc".into(),
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    },
                    &token,
                ))
                .await,
            Code::InvalidArgument
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_refusals_write_one_row_per_window() {
    let app = audited_app().await;
    let (token, _) = signed_up(&app, "limited").await;
    // Use up the budget: several refusals, one audit row per window.
    let mut refused = 0;
    let before = events(&app).await.len();
    for _ in 0..20 {
        let result = app
            .auth()
            .get_current_user(bearer(pb::GetCurrentUserRequest {}, &token))
            .await;
        if result.is_err_and(|s| s.code() == Code::ResourceExhausted) {
            refused += 1;
        }
    }
    assert!(refused >= 3, "{refused} refused");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // written off the request path
    let added: Vec<(String, String)> = events(&app).await[before..].to_vec();
    assert_eq!(
        added,
        vec![("rate_limit.exceeded".to_string(), "denied".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_reset_of_a_users_limits_writes_one_row() {
    let app = audited_app().await;
    let (_, user_id) = signed_up(&app, "reset").await;
    let admin_email = TestApp::email("auditor");
    app.register(&admin_email).await;
    let mut conn = app.db().await;
    fileorganizer::db::users::set_role(&mut conn, &admin_email, fileorganizer::domain::Role::Admin)
        .await
        .unwrap();
    let admin = app
        .auth()
        .login(login(&admin_email, PASSWORD))
        .await
        .unwrap()
        .into_inner()
        .access_token;
    audited!(
        &app,
        [("admin.rate_limit.reset", "success")],
        app.system()
            .reset_rate_limit(bearer(
                pb::ResetRateLimitRequest {
                    user_id,
                    buckets: vec![]
                },
                &admin
            ))
            .await
            .unwrap()
    );
}
