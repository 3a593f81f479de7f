//! The token matrix: every way to forge, bend or replay an access token,
//! refresh token or API key, against the TestApp server's own JWT secret
//! (`common::JWT_SECRET`, what it is configured with). Extends
//! `auth::protected_rpcs_need_valid_credentials` (reasons per case) with the
//! cases it lacks and one rule over all of them: every failure looks the
//! same from outside (code, message and details byte for byte), so an
//! attacker learns nothing about which check failed.

use base64::Engine;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use fileorganizer::{
    auth::tokens::Claims,
    pb::fileorganizer::v1::{self as pb},
    schema::audit_log,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::{Code, Status};

use crate::common::{JWT_SECRET, Options, TestApp, api_key, assert_code, bearer, reason};

const ISSUER: &str = "fileorganizer";
const AUDIENCE: &str = "fileorganizer-api";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with any header (as JSON) and claims, signed with HMAC-SHA256 of
/// `secret` whatever the header claims, or with `signature` if given.
fn jwt(header: &str, claims: &serde_json::Value, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(claims.to_string()));
    let key = EncodingKey::from_secret(secret).unwrap();
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

/// Claims like the server's own for user `sub`, naming no session (tests
/// that need a working token name a live one: see [`session_of`]).
fn claims(sub: &str, typ: &str) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: sub.into(),
        exp: now + 600,
        iat: now - 10,
        nbf: now - 10,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        jti: uuid::Uuid::new_v4().to_string(),
        role: "user".into(),
        typ: typ.into(),
        sid: String::new(),
    }
}

/// The session (`sid`) an access token the server issued names.
fn session_of(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_string()
}

fn sign(claims: &Claims, algorithm: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

async fn me(app: &TestApp, token: &str) -> Result<pb::User, Status> {
    app.auth()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, token))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_access_token_gets_one_and_the_same_answer() {
    let app = TestApp::spawn().await;
    let session = app.register(&TestApp::email("matrix")).await;
    let id = session.user.as_ref().unwrap().id.clone();
    let secret = JWT_SECRET.as_bytes();
    let now = chrono::Utc::now().timestamp();

    // A token made exactly like the server's own (for the live session)
    // works: the matrix below fails for the reason it names, not for a
    // mistake in building it.
    let live = Claims {
        sid: session_of(&session.access_token),
        ..claims(&id, "access")
    };
    let good = sign(&live, Algorithm::HS256, secret);
    assert_eq!(me(&app, &good).await.unwrap().id, id);

    let valid = serde_json::to_value(live.clone()).unwrap();
    let stranger = app.register(&TestApp::email("stranger")).await;
    let stranger_session = session_of(&stranger.access_token);
    let with = |key: &str, value: serde_json::Value| {
        let mut c = valid.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = valid.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let parts: Vec<&str> = session.access_token.split('.').collect();
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let resigned_payload =
        |c: serde_json::Value| format!("{}.{}.{}", parts[0], b64(c.to_string()), parts[2]);
    let other_user = uuid::Uuid::new_v4().to_string();
    let mut admin_payload = payload.clone();
    admin_payload["role"] = "admin".into();
    let mut other_sub_payload = payload.clone();
    other_sub_payload["sub"] = other_user.clone().into();

    let cases: Vec<(&str, String)> = vec![
        // Algorithms: unsigned, another HMAC, an asymmetric header over an
        // HMAC signature (key confusion), a made-up one.
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(valid.to_string())
            ),
        ),
        (
            "alg None",
            format!("{}.{}.", b64(r#"{"alg":"None"}"#), b64(valid.to_string())),
        ),
        (
            "alg NONE, signature kept",
            format!("{}.{}.{}", b64(r#"{"alg":"NONE"}"#), parts[1], parts[2]),
        ),
        (
            "HS512 with the right secret",
            sign(&live, Algorithm::HS512, secret),
        ),
        (
            "HS384 with the right secret",
            sign(&live, Algorithm::HS384, secret),
        ),
        (
            "RS256 header, HMAC signature",
            jwt(r#"{"alg":"RS256","typ":"JWT"}"#, &valid, secret),
        ),
        (
            "ES256 header, HMAC signature",
            jwt(r#"{"alg":"ES256","typ":"JWT"}"#, &valid, secret),
        ),
        (
            "unknown alg",
            jwt(r#"{"alg":"HS1024","typ":"JWT"}"#, &valid, secret),
        ),
        (
            "kid injection",
            jwt(
                r#"{"alg":"HS256","kid":"../../dev/null"}"#,
                &with("sub", other_user.clone().into()),
                b"\0",
            ),
        ),
        // Keys.
        (
            "wrong key",
            jwt(hs256, &valid, b"another-secret-another-secret-another"),
        ),
        ("one-byte key", jwt(hs256, &valid, b"\0")),
        // Time.
        (
            "expired",
            jwt(hs256, &with("exp", (now - 600).into()), secret),
        ),
        (
            "not yet valid",
            jwt(hs256, &with("nbf", (now + 600).into()), secret),
        ),
        (
            "exp as a string",
            jwt(hs256, &with("exp", (now + 600).to_string().into()), secret),
        ),
        ("no exp", jwt(hs256, &without("exp"), secret)),
        ("no nbf", jwt(hs256, &without("nbf"), secret)),
        // Issuer, audience, subject, type.
        (
            "wrong issuer",
            jwt(hs256, &with("iss", "evil".into()), secret),
        ),
        ("no issuer", jwt(hs256, &without("iss"), secret)),
        (
            "wrong audience",
            jwt(hs256, &with("aud", "other-api".into()), secret),
        ),
        (
            "audience list without ours",
            jwt(hs256, &with("aud", serde_json::json!(["a", "b"])), secret),
        ),
        (
            "sub not a uuid",
            jwt(hs256, &with("sub", "admin".into()), secret),
        ),
        ("no sub", jwt(hs256, &without("sub"), secret)),
        (
            "refresh-typed",
            jwt(hs256, &with("typ", "refresh".into()), secret),
        ),
        ("untyped", jwt(hs256, &without("typ"), secret)),
        // Sessions: none named, one that never existed, one of another user.
        ("no session", jwt(hs256, &without("sid"), secret)),
        ("empty session", jwt(hs256, &with("sid", "".into()), secret)),
        (
            "unknown session",
            jwt(
                hs256,
                &with("sid", uuid::Uuid::new_v4().to_string().into()),
                secret,
            ),
        ),
        (
            "another user's session",
            jwt(hs256, &with("sid", stranger_session.into()), secret),
        ),
        // Tampering with a real token, keeping its signature.
        ("role escalated", resigned_payload(admin_payload)),
        ("sub changed", resigned_payload(other_sub_payload)),
        (
            "signature of another token",
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                good.split('.').nth(2).unwrap()
            ),
        ),
        (
            "signature flipped",
            // The last character carries 4 bits of the signature; replace it
            // with one that differs in them ('A' itself 1 time in 16).
            format!(
                "{}.{}.{}{}",
                parts[0],
                parts[1],
                &parts[2][..parts[2].len() - 1],
                if parts[2].ends_with('A') { 'E' } else { 'A' }
            ),
        ),
        // Truncated and garbage.
        (
            "last character cut",
            session.access_token[..session.access_token.len() - 1].to_string(),
        ),
        (
            "half a token",
            session.access_token[..session.access_token.len() / 2].to_string(),
        ),
        ("header only", format!("{}.", parts[0])),
        ("no signature part", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{}.x", session.access_token)),
        ("empty parts", "..".into()),
        ("not base64", "!!!.@@@.###".into()),
        ("json, not base64", format!("{hs256}.{valid}.sig")),
        ("garbage", "garbage".into()),
        ("long garbage", "a".repeat(4096)),
        // Other credentials in the access token's place.
        (
            "refresh token as access token",
            session.refresh_token.clone(),
        ),
    ];

    let mut answers: Vec<(&str, Status)> = Vec::new();
    for (label, token) in &cases {
        let status = match me(&app, token).await {
            Ok(user) => panic!("{label}: accepted as {user:?}"),
            Err(status) => status,
        };
        assert_eq!(status.code(), Code::Unauthenticated, "{label}: {status:?}");
        assert_eq!(reason(&status), "TOKEN_INVALID", "{label}");
        assert!(
            !status.message().contains(token.as_str()),
            "{label}: echoes the token"
        );
        assert!(!status.message().contains(JWT_SECRET), "{label}");
        answers.push((label, status));
    }
    let (first_label, first) = &answers[0];
    for (label, status) in &answers[1..] {
        assert_eq!(
            (status.message(), status.details()),
            (first.message(), first.details()),
            "{label} is distinguishable from {first_label}"
        );
    }

    // The same through every service: one protected RPC each.
    let forged = &cases[0].1;
    let operations = app
        .operations()
        .list_operations(bearer(pb::ListOperationsRequest::default(), forged))
        .await;
    let status = assert_code(operations, Code::Unauthenticated);
    assert_eq!(status.message(), first.message());
    let system = app
        .system()
        .get_status(bearer(pb::GetStatusRequest::default(), forged))
        .await;
    assert_eq!(
        assert_code(system, Code::Unauthenticated).message(),
        first.message()
    );

    // Nothing the matrix did affected the real session.
    assert_eq!(me(&app, &session.access_token).await.unwrap().id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_not_interchangeable() {
    let app = TestApp::spawn().await;
    let session = app.register(&TestApp::email("swap")).await;
    let refresh = |token: &str| {
        let mut client = app.auth();
        let request = pb::RefreshTokenRequest {
            refresh_token: token.into(),
        };
        async move { client.refresh_token(request).await }
    };
    // An access token (or a JWT signed with the secret, typed refresh) is
    // not a refresh token.
    let id = session.user.as_ref().unwrap().id.clone();
    let refresh_typed = sign(
        &claims(&id, "refresh"),
        Algorithm::HS256,
        JWT_SECRET.as_bytes(),
    );
    for (label, token) in [
        ("access token", session.access_token.clone()),
        ("refresh-typed JWT", refresh_typed),
        (
            "refresh token with a suffix",
            format!("{}x", session.refresh_token),
        ),
        (
            "refresh token truncated",
            session.refresh_token[..session.refresh_token.len() - 1].to_string(),
        ),
        (
            "API-key shaped",
            format!("fo_{}_{}", "a".repeat(10), "b".repeat(32)),
        ),
    ] {
        let status = assert_code(refresh(&token).await, Code::Unauthenticated);
        assert_eq!(reason(&status), "REFRESH_TOKEN_INVALID", "{label}");
    }
    // A refresh token is not an API key, nor an access token in x-api-key.
    for token in [&session.refresh_token, &session.access_token] {
        let status = assert_code(
            app.auth()
                .get_current_user(api_key(pb::GetCurrentUserRequest {}, token))
                .await,
            Code::Unauthenticated,
        );
        assert_eq!(reason(&status), "API_KEY_INVALID");
    }
    // None of this spent the real refresh token.
    refresh(&session.refresh_token).await.unwrap();
}

async fn audit_rows(app: &TestApp, action: &str) -> Vec<(Option<String>, serde_json::Value)> {
    let mut conn = app.db().await;
    audit_log::table
        .filter(audit_log::action.eq(action))
        .select((audit_log::client_ip, audit_log::detail))
        .load(&mut conn)
        .await
        .unwrap()
}

/// Guessing API keys from one client: after RATE_LIMIT_AUTH_FAILURES_PER_IP
/// rejected keys the address is refused outright (even the right key), and
/// the lockout is audited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_api_keys_is_rate_limited_and_audited() {
    const LIMIT: usize = 5;
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_AUTH_FAILURES_PER_IP", LIMIT.to_string())],
        ..Default::default()
    })
    .await;
    let session = app.register(&TestApp::email("guessed")).await;
    let key = crate::auth::create_key(&app, &session.access_token, "target")
        .await
        .secret;
    let prefix = &key[..14]; // "fo_" + the 10-character prefix + "_"
    let call = |k: String| {
        let app = &app;
        async move {
            app.auth()
                .get_current_user(api_key(pb::GetCurrentUserRequest {}, &k))
                .await
        }
    };

    // Calls without credentials are not guesses.
    for _ in 0..LIMIT * 2 {
        let status = assert_code(
            app.auth()
                .get_current_user(pb::GetCurrentUserRequest {})
                .await,
            Code::Unauthenticated,
        );
        assert_eq!(reason(&status), "CREDENTIALS_MISSING");
    }
    // Guesses: the right prefix with wrong secrets, and random keys.
    for i in 0..LIMIT {
        let guess = if i % 2 == 0 {
            format!("{prefix}{}", "x".repeat(43))
        } else {
            format!(
                "fo_{}_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..10],
                "y".repeat(43)
            )
        };
        let status = assert_code(call(guess).await, Code::Unauthenticated);
        assert_eq!(reason(&status), "API_KEY_INVALID", "guess {i}");
    }
    // Spent: the next guess, and even the right key, are refused.
    for k in [
        format!("{prefix}{}", "z".repeat(43)),
        key.clone(),
        key.clone(),
    ] {
        let status = assert_code(call(k).await, Code::ResourceExhausted);
        assert_eq!(reason(&status), "RATE_LIMITED");
        assert!(status.metadata().get("retry-after").is_some());
    }
    // A forged bearer token from the same address is refused the same way.
    assert_code(
        app.auth()
            .get_current_user(bearer(pb::GetCurrentUserRequest {}, "garbage"))
            .await,
        Code::ResourceExhausted,
    );
    // Audited once for the window, with the address.
    let rows = audit_rows(&app, "auth.failures_exceeded").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0.as_deref(), Some("127.0.0.1"));
    assert_eq!(rows[0].1["limit"], LIMIT as u64);
    // Public RPCs still answer (Login has limits of its own).
    app.auth()
        .login(pb::LoginRequest {
            email: "nobody@example.com".into(),
            password: crate::common::PASSWORD.into(),
        })
        .await
        .expect_err("no such user");
}

/// Only guesses count: many valid calls, and expired tokens the server
/// itself signed (a client whose session lapsed), never trip the guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_and_expired_credentials_never_count_as_failures() {
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_AUTH_FAILURES_PER_IP", "3".into())],
        ..Default::default()
    })
    .await;
    let session = app.register(&TestApp::email("honest")).await;
    let id = session.user.as_ref().unwrap().id.clone();
    let now = chrono::Utc::now().timestamp();
    let expired = sign(
        &Claims {
            exp: now - 60,
            ..claims(&id, "access")
        },
        Algorithm::HS256,
        JWT_SECRET.as_bytes(),
    );
    for _ in 0..20 {
        me(&app, &session.access_token).await.unwrap();
        let status = assert_code(me(&app, &expired).await, Code::Unauthenticated);
        assert_eq!(reason(&status), "TOKEN_INVALID");
    }
    assert!(audit_rows(&app, "auth.failures_exceeded").await.is_empty());
    // The guard is live: three guesses spend it.
    for _ in 0..3 {
        assert_code(me(&app, "garbage").await, Code::Unauthenticated);
    }
    assert_code(
        me(&app, &session.access_token).await,
        Code::ResourceExhausted,
    );
}
