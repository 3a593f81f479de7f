//! AuthService: every path a user can take, including the failures.

use std::time::{Duration, Instant};

use base64::Engine;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use fileorganizer::{
    auth::tokens::{Claims, TokenKeys},
    pb::fileorganizer::v1 as pb,
    schema::{api_keys, audit_log, users},
};
use tonic::{Code, Request};

use crate::common::{PASSWORD, TestApp, api_key, assert_code, bad_field, bearer, reason};

fn register_request(email: &str, password: &str) -> pb::RegisterRequest {
    pb::RegisterRequest {
        email: email.into(),
        password: password.into(),
        display_name: "Tester".into(),
    }
}

fn login_request(email: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        email: email.into(),
        password: password.into(),
    }
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    let mut conn = app.db().await;
    audit_log::table
        .filter(audit_log::action.eq(action))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_returns_a_session_and_the_user() {
    let app = TestApp::spawn().await;
    let email = TestApp::email("Reg");
    let response = app
        .auth()
        .register(register_request(
            &format!("  {}  ", email.to_uppercase()),
            PASSWORD,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.token_type, "Bearer");
    assert_eq!(response.expires_in, 900);
    assert!(response.refresh_token.starts_with("rt_"));
    assert_eq!(response.access_token.split('.').count(), 3);
    let user = response.user.unwrap();
    assert_eq!(user.email, email.to_lowercase());
    assert_eq!(user.display_name, "Tester");
    assert_eq!(user.role, pb::UserRole::User as i32);
    assert_eq!(user.name, format!("users/{}", user.id));
    assert!(user.create_time.is_some());

    // The password is stored as an argon2id hash, never in the clear.
    let mut conn = app.db().await;
    let hash: String = users::table
        .filter(users::email.eq(email.to_lowercase()))
        .select(users::password_hash)
        .first(&mut conn)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert_eq!(audit_count(&app, "auth.register").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_validates_email_and_password_policy() {
    let app = TestApp::spawn().await;
    let cases = [
        ("not-an-email", PASSWORD, "email"),
        ("", PASSWORD, "email"),
        ("x@example.com", "short", "password"),
        ("x@example.com", &"p".repeat(129), "password"),
    ];
    for (email, password, field) in cases {
        let status = assert_code(
            app.auth().register(register_request(email, password)).await,
            Code::InvalidArgument,
        );
        assert_eq!(
            bad_field(&status),
            field,
            "{email:?}/{password:?}: {status:?}"
        );
        assert_eq!(reason(&status), "INVALID_ARGUMENT");
    }
    // The limits themselves are accepted: 8 characters, 128 bytes.
    app.auth()
        .register(register_request(&TestApp::email("edge"), &"p".repeat(128)))
        .await
        .unwrap();
    app.auth()
        .register(register_request(&TestApp::email("edge8"), "12345678"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_email_is_already_exists_whatever_its_case() {
    let app = TestApp::spawn().await;
    let email = TestApp::email("dup");
    app.register(&email).await;
    let status = assert_code(
        app.auth()
            .register(register_request(&email.to_uppercase(), PASSWORD))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(reason(&status), "EMAIL_TAKEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_succeeds_and_failures_look_the_same() {
    let app = TestApp::spawn().await;
    let email = TestApp::email("login");
    app.register(&email).await;

    let ok = app
        .auth()
        .login(login_request(&email.to_uppercase(), PASSWORD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.token_type, "Bearer");
    assert!(ok.user.unwrap().last_login_time.is_some());

    let started = Instant::now();
    let wrong_password = assert_code(
        app.auth()
            .login(login_request(&email, "wrong password!"))
            .await,
        Code::Unauthenticated,
    );
    let wrong_password_time = started.elapsed();
    let started = Instant::now();
    let unknown = assert_code(
        app.auth()
            .login(login_request(&TestApp::email("nobody"), PASSWORD))
            .await,
        Code::Unauthenticated,
    );
    let unknown_time = started.elapsed();
    assert_eq!(wrong_password.message(), unknown.message());
    assert_eq!(reason(&wrong_password), "INVALID_CREDENTIALS");
    assert_eq!(reason(&unknown), "INVALID_CREDENTIALS");
    // Both paths run one argon2 verification (no timing assertion: only
    // that the unknown-email path is not an instant shortcut).
    assert!(
        unknown_time > Duration::from_millis(1) && wrong_password_time > Duration::from_millis(1)
    );
    assert_eq!(audit_count(&app, "auth.login").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_users_cannot_log_in() {
    let app = TestApp::spawn().await;
    let email = TestApp::email("disabled");
    let registered = app.register(&email).await;
    let id = uuid::Uuid::parse_str(&registered.user.unwrap().id).unwrap();
    let mut conn = app.db().await;
    fileorganizer::db::users::set_disabled(&mut conn, id, true)
        .await
        .unwrap();
    let status = assert_code(
        app.auth().login(login_request(&email, PASSWORD)).await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&status), "INVALID_CREDENTIALS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_rpcs_need_credentials_and_take_a_valid_bearer_token() {
    let app = TestApp::spawn().await;
    let session = app.register(&TestApp::email("me")).await;

    let me = app
        .auth()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &session.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.id, session.user.as_ref().unwrap().id);

    let missing = assert_code(
        app.auth()
            .get_current_user(pb::GetCurrentUserRequest {})
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&missing), "CREDENTIALS_MISSING");

    // A non-Bearer scheme is refused too.
    let mut basic = Request::new(pb::GetCurrentUserRequest {});
    basic
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
    assert_code(
        app.auth().get_current_user(basic).await,
        Code::Unauthenticated,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_tampered_or_mistyped_access_tokens_are_invalid() {
    let app = TestApp::spawn().await;
    let session = app.register(&TestApp::email("me")).await;
    let id = session.user.as_ref().unwrap().id.clone();
    let keys = TokenKeys::new(
        JWT.as_bytes(),
        "fileorganizer",
        "fileorganizer-api",
        Duration::from_secs(900),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64, iss: &str, aud: &str, typ: &str| Claims {
        sub: id.clone(),
        exp,
        iat: now - 10,
        nbf: now - 10,
        iss: iss.into(),
        aud: aud.into(),
        jti: "t".into(),
        role: "admin".into(),
        typ: typ.into(),
        sid: String::new(),
    };
    let expired = keys
        .sign(&claims(
            now - 600,
            "fileorganizer",
            "fileorganizer-api",
            "access",
        ))
        .unwrap();
    let wrong_issuer = keys
        .sign(&claims(now + 600, "evil", "fileorganizer-api", "access"))
        .unwrap();
    let wrong_audience = keys
        .sign(&claims(now + 600, "fileorganizer", "other", "access"))
        .unwrap();
    let wrong_type = keys
        .sign(&claims(
            now + 600,
            "fileorganizer",
            "fileorganizer-api",
            "refresh",
        ))
        .unwrap();
    let other_key = TokenKeys::new(
        b"another-secret-another-secret-another",
        "fileorganizer",
        "fileorganizer-api",
        Duration::from_secs(900),
    )
    .unwrap();
    let forged = other_key
        .sign(&claims(
            now + 600,
            "fileorganizer",
            "fileorganizer-api",
            "access",
        ))
        .unwrap();

    // Tampered: a valid token whose payload was edited (role escalated).
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = session.access_token.split('.').collect();
    let payload = String::from_utf8(engine.decode(parts[1]).unwrap()).unwrap();
    let tampered_payload = engine.encode(payload.replace("\"user\"", "\"admin\""));
    let tampered = format!("{}.{}.{}", parts[0], tampered_payload, parts[2]);
    // alg none: an unsigned token with the real payload.
    let none_header = engine.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    // alg HS512 with the right secret: the algorithm is pinned to HS256.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(now + 600, "fileorganizer", "fileorganizer-api", "access"),
        &jsonwebtoken::EncodingKey::from_secret(JWT.as_bytes()).unwrap(),
    )
    .unwrap();

    for (label, token) in [
        ("expired", expired),
        ("wrong issuer", wrong_issuer),
        ("wrong audience", wrong_audience),
        ("refresh-typed", wrong_type),
        ("forged with another key", forged),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("alg HS512", hs512),
        ("garbage", "not.a.jwt".into()),
        (
            "refresh token as access token",
            session.refresh_token.clone(),
        ),
    ] {
        let status = app
            .auth()
            .get_current_user(bearer(pb::GetCurrentUserRequest {}, &token))
            .await
            .expect_err(label);
        assert_eq!(status.code(), Code::Unauthenticated, "{label}: {status:?}");
        assert_eq!(reason(&status), "TOKEN_INVALID", "{label}");
    }
}

const JWT: &str = crate::common::JWT_SECRET;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let email = TestApp::email("refresh");
    let first = app.register(&email).await;

    let second = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.token_type, "Bearer");
    app.auth()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &second.access_token))
        .await
        .unwrap();

    // Replaying the spent token is detected, audited, and kills the family…
    let reused = assert_code(
        app.auth()
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: first.refresh_token.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&reused), "REFRESH_TOKEN_REUSED");
    assert_eq!(audit_count(&app, "auth.refresh_token.reused").await, 1);
    // …so the legitimate successor no longer works either.
    let revoked = assert_code(
        app.auth()
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: second.refresh_token.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&revoked), "REFRESH_TOKEN_INVALID");

    // Another session of the same user is unaffected.
    let other = app
        .auth()
        .login(login_request(&email, PASSWORD))
        .await
        .unwrap()
        .into_inner();
    app.auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: other.refresh_token,
        })
        .await
        .unwrap();

    let unknown = assert_code(
        app.auth()
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: "rt_nonsense".into(),
            })
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&unknown), "REFRESH_TOKEN_INVALID");
    let empty = assert_code(
        app.auth()
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: String::new(),
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&empty), "refresh_token");
}

/// A new user's email and two sessions: from Register, and from a Login.
async fn two_sessions(
    app: &TestApp,
    label: &str,
) -> (String, pb::RegisterResponse, pb::LoginResponse) {
    let email = TestApp::email(label);
    let session = app.register(&email).await;
    let other = app
        .auth()
        .login(login_request(&email, PASSWORD))
        .await
        .unwrap()
        .into_inner();
    (email, session, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_session() {
    let app = TestApp::spawn().await;
    let (_, session, other) = two_sessions(&app, "logout").await;

    // Without a refresh token, the access token's own session ends.
    let out = app
        .auth()
        .logout(bearer(pb::LogoutRequest::default(), &session.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.revoked_sessions, 1);
    assert_code(
        app.auth()
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: session.refresh_token,
            })
            .await,
        Code::Unauthenticated,
    );
    // The other session still works until all sessions are ended.
    let other = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: other.refresh_token,
        })
        .await
        .unwrap()
        .into_inner();
    app.auth()
        .logout(bearer(
            pb::LogoutRequest {
                refresh_token: String::new(),
                all_sessions: true,
            },
            &other.access_token,
        ))
        .await
        .unwrap();
    assert_code(
        app.auth()
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: other.refresh_token,
            })
            .await,
        Code::Unauthenticated,
    );
    // Logout itself needs credentials.
    assert_code(
        app.auth().logout(pb::LogoutRequest::default()).await,
        Code::Unauthenticated,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_current_user_changes_the_fields_in_the_mask() {
    let app = TestApp::spawn().await;
    let token = app.register(&TestApp::email("update")).await.access_token;

    let renamed = app
        .auth()
        .update_current_user(bearer(
            pb::UpdateCurrentUserRequest {
                user: Some(pb::User {
                    display_name: "New Name".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.display_name, "New Name");

    let bad_mask = assert_code(
        app.auth()
            .update_current_user(bearer(
                pb::UpdateCurrentUserRequest {
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["email".into()],
                    }),
                    ..Default::default()
                },
                &token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&bad_mask), "update_mask");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_needs_the_current_password_and_ends_the_other_sessions() {
    let app = TestApp::spawn().await;
    let (email, session, other) = two_sessions(&app, "update").await;
    let token = session.access_token.clone();
    let change = |current: &str, new: &str| pb::UpdateCurrentUserRequest {
        current_password: current.into(),
        new_password: new.into(),
        ..Default::default()
    };
    let missing = assert_code(
        app.auth()
            .update_current_user(bearer(change("", "a new password 1"), &token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&missing), "current_password");
    let wrong = assert_code(
        app.auth()
            .update_current_user(bearer(
                change("not my password", "a new password 1"),
                &token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&wrong), "current_password");
    let weak = assert_code(
        app.auth()
            .update_current_user(bearer(change(PASSWORD, "short"), &token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&weak), "new_password");

    app.auth()
        .update_current_user(bearer(change(PASSWORD, "a new password 1"), &token))
        .await
        .unwrap();
    assert_code(
        app.auth().login(login_request(&email, PASSWORD)).await,
        Code::Unauthenticated,
    );
    app.auth()
        .login(login_request(&email, "a new password 1"))
        .await
        .unwrap();
    // Other sessions were revoked; the current one survives.
    assert_code(
        app.auth()
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: other.refresh_token,
            })
            .await,
        Code::Unauthenticated,
    );
    app.auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: session.refresh_token,
        })
        .await
        .unwrap();
    assert_eq!(audit_count(&app, "auth.password.change").await, 2);
}

/// Creates an API key (no expiry) for the holder of `token`.
pub async fn create_key(app: &TestApp, token: &str, name: &str) -> pb::CreateApiKeyResponse {
    app.auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                api_key: Some(pb::ApiKey {
                    display_name: name.into(),
                    ..Default::default()
                }),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_authenticate_until_revoked() {
    let app = TestApp::spawn().await;
    let alice = app.register(&TestApp::email("alice")).await;
    let created = create_key(&app, &alice.access_token, "ci").await;
    let key = created.api_key.unwrap();
    assert!(created.secret.starts_with(&format!("fo_{}_", key.prefix)));
    assert!(key.name.starts_with("api-keys/"));
    assert!(!key.revoked);

    // The key authenticates as its owner.
    let me = app
        .auth()
        .get_current_user(api_key(pb::GetCurrentUserRequest {}, &created.secret))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.id, alice.user.as_ref().unwrap().id);

    // Listing never shows the secret; last use is recorded.
    let listed = app
        .auth()
        .list_api_keys(bearer(
            pb::ListApiKeysRequest::default(),
            &alice.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.api_keys.len(), 1);
    assert!(listed.api_keys[0].last_used_time.is_some());
    assert!(!format!("{listed:?}").contains(&created.secret));

    // The database holds only the prefix and a hash.
    let mut conn = app.db().await;
    let stored: Vec<u8> = api_keys::table
        .select(api_keys::token_hash)
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        stored,
        blake3::hash(created.secret.as_bytes()).as_bytes().to_vec()
    );

    // A wrong secret with a real prefix fails.
    let forged = format!("fo_{}_{}", key.prefix, "A".repeat(43));
    let status = assert_code(
        app.auth()
            .get_current_user(api_key(pb::GetCurrentUserRequest {}, &forged))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&status), "API_KEY_INVALID");

    // Revoke; the key stops working; revoking again is fine.
    let revoked = app
        .auth()
        .revoke_api_key(bearer(
            pb::RevokeApiKeyRequest {
                name: key.name.clone(),
            },
            &alice.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked && revoked.revoke_time.is_some());
    let status = assert_code(
        app.auth()
            .get_current_user(api_key(pb::GetCurrentUserRequest {}, &created.secret))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&status), "API_KEY_INVALID");
    app.auth()
        .revoke_api_key(bearer(
            pb::RevokeApiKeyRequest {
                name: key.name.clone(),
            },
            &alice.access_token,
        ))
        .await
        .unwrap();
    assert_eq!(audit_count(&app, "api_key.created").await, 1);
    assert_eq!(audit_count(&app, "api_key.revoked").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_api_keys_are_rejected() {
    let app = TestApp::spawn().await;
    let user = app.register(&TestApp::email("exp")).await;
    let past = assert_code(
        app.auth()
            .create_api_key(bearer(
                pb::CreateApiKeyRequest {
                    api_key: Some(pb::ApiKey {
                        display_name: "old".into(),
                        expire_time: Some(prost_types::Timestamp {
                            seconds: 1,
                            nanos: 0,
                        }),
                        ..Default::default()
                    }),
                },
                &user.access_token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&past), "api_key.expire_time");

    let created = create_key(&app, &user.access_token, "soon expired").await;
    let mut conn = app.db().await;
    diesel::update(api_keys::table)
        .set(api_keys::expires_at.eq(chrono::Utc::now() - chrono::Duration::seconds(1)))
        .execute(&mut conn)
        .await
        .unwrap();
    let status = assert_code(
        app.auth()
            .get_current_user(api_key(pb::GetCurrentUserRequest {}, &created.secret))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&status), "API_KEY_INVALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_never_see_each_others_keys() {
    let app = TestApp::spawn().await;
    let alice = app.register(&TestApp::email("alice")).await;
    let bob = app.register(&TestApp::email("bob")).await;
    let alices = create_key(&app, &alice.access_token, "alice's")
        .await
        .api_key
        .unwrap();

    let bobs_list = app
        .auth()
        .list_api_keys(bearer(pb::ListApiKeysRequest::default(), &bob.access_token))
        .await
        .unwrap()
        .into_inner();
    assert!(bobs_list.api_keys.is_empty());

    let status = assert_code(
        app.auth()
            .revoke_api_key(bearer(
                pb::RevokeApiKeyRequest {
                    name: alices.name.clone(),
                },
                &bob.access_token,
            ))
            .await,
        Code::NotFound,
    );
    // Same answer as for a key that does not exist at all.
    let missing = assert_code(
        app.auth()
            .revoke_api_key(bearer(
                pb::RevokeApiKeyRequest {
                    name: format!("api-keys/{}", uuid::Uuid::new_v4()),
                },
                &bob.access_token,
            ))
            .await,
        Code::NotFound,
    );
    assert_eq!(reason(&status), reason(&missing));
    let malformed = assert_code(
        app.auth()
            .revoke_api_key(bearer(
                pb::RevokeApiKeyRequest {
                    name: "keys/1".into(),
                },
                &bob.access_token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&malformed), "name");
    // Alice's key is untouched.
    let alices_list = app
        .auth()
        .list_api_keys(bearer(
            pb::ListApiKeysRequest::default(),
            &alice.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!alices_list.api_keys[0].revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_listing_pages_through_every_key_once() {
    let app = TestApp::spawn().await;
    let user = app.register(&TestApp::email("pages")).await;
    for i in 0..5 {
        create_key(&app, &user.access_token, &format!("key {i}")).await;
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .auth()
            .list_api_keys(bearer(
                pb::ListApiKeysRequest {
                    page_size: 2,
                    page_token: token.clone(),
                },
                &user.access_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.api_keys.len() <= 2);
        seen.extend(page.api_keys.into_iter().map(|k| k.display_name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["key 4", "key 3", "key 2", "key 1", "key 0"]);

    for (size, token, field) in [(-1, "", "page_size"), (0, "garbage!", "page_token")] {
        let status = assert_code(
            app.auth()
                .list_api_keys(bearer(
                    pb::ListApiKeysRequest {
                        page_size: size,
                        page_token: token.into(),
                    },
                    &user.access_token,
                ))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), field);
    }
}

/// Register tells that an email is taken (decided: docs/security.md), so
/// probing it is limited per client address like Login, and a forged
/// forwarded-address header does not buy a new budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_is_limited_per_address_like_login() {
    let app = crate::common::TestApp::spawn_with(crate::common::Options {
        env: vec![("RATE_LIMIT_LOGIN_PER_IP", "3".into())],
        ..Default::default()
    })
    .await;
    let taken = TestApp::email("taken");
    let mut prober =
        fileorganizer::pb::fileorganizer::v1::auth_service_client::AuthServiceClient::new(
            app.channel_from("127.0.0.3"),
        );
    let probe = |email: String| {
        let mut request = Request::new(register_request(&email, PASSWORD));
        request.metadata_mut().insert(
            "x-envoy-external-address",
            tonic::metadata::MetadataValue::try_from(format!("203.0.113.{}", email.len())).unwrap(),
        );
        request
    };
    prober.register(probe(taken.clone())).await.unwrap(); // 1
    let status = assert_code(
        prober.register(probe(taken.clone())).await,
        Code::AlreadyExists,
    ); // 2
    assert_eq!(reason(&status), "EMAIL_TAKEN");
    assert_code(
        prober
            .login(login_request(&TestApp::email("nobody"), PASSWORD))
            .await,
        Code::Unauthenticated,
    ); // 3: Login shares the budget
    for email in [taken.clone(), TestApp::email("fresh")] {
        let refused = assert_code(prober.register(probe(email)).await, Code::ResourceExhausted);
        assert_eq!(reason(&refused), "RATE_LIMITED");
    }
    // Another address is not affected.
    app.auth()
        .register(register_request(&TestApp::email("elsewhere"), PASSWORD))
        .await
        .unwrap();
}
