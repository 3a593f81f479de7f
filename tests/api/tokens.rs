//! The token matrix: every way to forge, bend or replay an access token,
//! refresh token or API key, against the TestApp server's own JWT secret
//! (`common::JWT_SECRET`, what it is configured with). Extends
//! `auth::expired_forged_tampered_or_mistyped_access_tokens_are_invalid`
//! (reasons per case) with the cases it lacks and one rule over all of
//! them: every failure looks the same from outside (code, message and
//! details byte for byte), so an attacker learns nothing about which check
//! failed.

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

/// What the matrix forges access tokens from: a live session, its claims
/// (as the server would write them) and a token made from them exactly
/// like the server's own.
struct Forge {
    app: TestApp,
    session: pb::RegisterResponse,
    id: String,
    live: Claims,
    /// `live` as JSON, to bend.
    valid: serde_json::Value,
    /// A token signed like the server's own, for the live session.
    good: String,
    now: i64,
}

const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl Forge {
    /// A server and a session; the token made like the server's own works,
    /// so the cases fail for the reason they name, not for a mistake in
    /// building them.
    async fn new() -> Forge {
        let app = TestApp::spawn().await;
        let session = app.register(&TestApp::email("matrix")).await;
        let id = session.user.as_ref().unwrap().id.clone();
        let live = Claims {
            sid: session_of(&session.access_token),
            ..claims(&id, "access")
        };
        let good = sign(&live, Algorithm::HS256, JWT_SECRET.as_bytes());
        assert_eq!(me(&app, &good).await.unwrap().id, id);
        Forge {
            valid: serde_json::to_value(live.clone()).unwrap(),
            app,
            session,
            id,
            live,
            good,
            now: chrono::Utc::now().timestamp(),
        }
    }

    /// The live claims with `key` set to `value`.
    fn with(&self, key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut c = self.valid.clone();
        c[key] = value;
        c
    }

    fn without(&self, key: &str) -> serde_json::Value {
        let mut c = self.valid.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    }

    /// A token signed with the server's secret over the live claims with
    /// `key` set to `value`.
    fn signed_with(&self, key: &str, value: serde_json::Value) -> String {
        jwt(HS256, &self.with(key, value), JWT_SECRET.as_bytes())
    }

    fn signed_without(&self, key: &str) -> String {
        jwt(HS256, &self.without(key), JWT_SECRET.as_bytes())
    }

    /// The three parts of the session's real access token.
    fn parts(&self) -> Vec<&str> {
        self.session.access_token.split('.').collect()
    }

    /// The payload of the real token, as the server wrote it.
    fn payload(&self) -> serde_json::Value {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(self.parts()[1])
            .unwrap();
        serde_json::from_slice(&decoded).unwrap()
    }

    /// Each case is refused with UNAUTHENTICATED, reason TOKEN_INVALID, a
    /// message that echoes neither the token nor the secret, and exactly
    /// the answer (message and details) a garbage token gets; the real
    /// session still works afterwards.
    async fn assert_refused_alike(&self, cases: Vec<(&str, String)>) {
        let garbage = me(&self.app, "garbage").await.unwrap_err();
        assert_eq!(garbage.code(), Code::Unauthenticated, "{garbage:?}");
        assert_eq!(reason(&garbage), "TOKEN_INVALID");
        for (label, token) in &cases {
            let status = match me(&self.app, token).await {
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
            assert_eq!(
                (status.message(), status.details()),
                (garbage.message(), garbage.details()),
                "{label} is distinguishable from a garbage token"
            );
        }
        // Nothing the cases did affected the real session.
        assert_eq!(
            me(&self.app, &self.session.access_token).await.unwrap().id,
            self.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_other_algorithms_or_keys_get_the_same_answer() {
    let f = Forge::new().await;
    let (secret, valid, parts) = (JWT_SECRET.as_bytes(), &f.valid, f.parts());
    let other_user = uuid::Uuid::new_v4().to_string();
    f.assert_refused_alike(vec![
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
            sign(&f.live, Algorithm::HS512, secret),
        ),
        (
            "HS384 with the right secret",
            sign(&f.live, Algorithm::HS384, secret),
        ),
        (
            "RS256 header, HMAC signature",
            jwt(r#"{"alg":"RS256","typ":"JWT"}"#, valid, secret),
        ),
        (
            "ES256 header, HMAC signature",
            jwt(r#"{"alg":"ES256","typ":"JWT"}"#, valid, secret),
        ),
        (
            "unknown alg",
            jwt(r#"{"alg":"HS1024","typ":"JWT"}"#, valid, secret),
        ),
        (
            "kid injection",
            jwt(
                r#"{"alg":"HS256","kid":"../../dev/null"}"#,
                &f.with("sub", other_user.into()),
                b"\0",
            ),
        ),
        // Keys.
        (
            "wrong key",
            jwt(HS256, valid, b"another-secret-another-secret-another"),
        ),
        ("one-byte key", jwt(HS256, valid, b"\0")),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_with_bad_times_issuers_audiences_subjects_or_types_get_the_same_answer() {
    let f = Forge::new().await;
    let now = f.now;
    f.assert_refused_alike(vec![
        // Time.
        ("expired", f.signed_with("exp", (now - 600).into())),
        ("not yet valid", f.signed_with("nbf", (now + 600).into())),
        (
            "exp as a string",
            f.signed_with("exp", (now + 600).to_string().into()),
        ),
        ("no exp", f.signed_without("exp")),
        ("no nbf", f.signed_without("nbf")),
        // Issuer, audience, subject, type.
        ("wrong issuer", f.signed_with("iss", "evil".into())),
        ("no issuer", f.signed_without("iss")),
        ("wrong audience", f.signed_with("aud", "other-api".into())),
        (
            "audience list without ours",
            f.signed_with("aud", serde_json::json!(["a", "b"])),
        ),
        ("sub not a uuid", f.signed_with("sub", "admin".into())),
        ("no sub", f.signed_without("sub")),
        ("refresh-typed", f.signed_with("typ", "refresh".into())),
        ("untyped", f.signed_without("typ")),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_naming_no_unknown_or_another_users_session_get_the_same_answer() {
    let f = Forge::new().await;
    let stranger = f.app.register(&TestApp::email("stranger")).await;
    let stranger_session = session_of(&stranger.access_token);
    f.assert_refused_alike(vec![
        ("no session", f.signed_without("sid")),
        ("empty session", f.signed_with("sid", "".into())),
        (
            "unknown session",
            f.signed_with("sid", uuid::Uuid::new_v4().to_string().into()),
        ),
        (
            "another user's session",
            f.signed_with("sid", stranger_session.into()),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_tokens_tampered_with_get_the_same_answer() {
    let f = Forge::new().await;
    let parts = f.parts();
    let resigned_payload =
        |c: serde_json::Value| format!("{}.{}.{}", parts[0], b64(c.to_string()), parts[2]);
    let mut admin_payload = f.payload();
    admin_payload["role"] = "admin".into();
    let mut other_sub_payload = f.payload();
    other_sub_payload["sub"] = uuid::Uuid::new_v4().to_string().into();
    f.assert_refused_alike(vec![
        // Tampering with a real token, keeping its signature.
        ("role escalated", resigned_payload(admin_payload)),
        ("sub changed", resigned_payload(other_sub_payload)),
        (
            "signature of another token",
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                f.good.split('.').nth(2).unwrap()
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
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_garbage_and_other_credentials_in_a_tokens_place_get_the_same_answer() {
    let f = Forge::new().await;
    let (parts, access) = (f.parts(), &f.session.access_token);
    f.assert_refused_alike(vec![
        ("last character cut", access[..access.len() - 1].to_string()),
        ("half a token", access[..access.len() / 2].to_string()),
        ("header only", format!("{}.", parts[0])),
        ("no signature part", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{access}.x")),
        ("empty parts", "..".into()),
        ("not base64", "!!!.@@@.###".into()),
        ("json, not base64", format!("{HS256}.{}.sig", f.valid)),
        ("garbage", "garbage".into()),
        ("long garbage", "a".repeat(4096)),
        // Other credentials in the access token's place.
        (
            "refresh token as access token",
            f.session.refresh_token.clone(),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_token_gets_the_same_answer_from_every_service() {
    let f = Forge::new().await;
    let forged = &format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(f.valid.to_string())
    );
    let answer = me(&f.app, forged).await.unwrap_err();
    assert_eq!(reason(&answer), "TOKEN_INVALID");
    // One protected RPC of each other service.
    let operations = f
        .app
        .operations()
        .list_operations(bearer(pb::ListOperationsRequest::default(), forged))
        .await;
    let status = assert_code(operations, Code::Unauthenticated);
    assert_eq!(status.message(), answer.message(), "OperationService");
    let system = f
        .app
        .system()
        .get_status(bearer(pb::GetStatusRequest::default(), forged))
        .await;
    assert_eq!(
        assert_code(system, Code::Unauthenticated).message(),
        answer.message(),
        "SystemService"
    );
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
