//! Access tokens (JWT) and refresh tokens (opaque).
//!
//! Access tokens are HS256 JWTs with `sub`, `exp`, `iat`, `nbf`, `iss`, `aud`
//! and `jti`, plus `role` and `typ: "access"`. Verification pins the
//! algorithm to HS256 (so `alg: none` and algorithm-confusion tokens fail),
//! requires every registered claim and checks issuer and audience.
//!
//! Refresh tokens are 32 random bytes (`rt_` + base64url), stored as a blake3
//! hash, single use and rotated on every refresh (see `db::credentials`).
//!
//! ## Verified tokens are remembered
//!
//! A client sends the same access token with every call for up to its whole
//! lifetime, and checking it (base64, JSON, HMAC-SHA256) was the largest cost
//! of authenticating a call. What a check finds depends only on the token's
//! bytes, this process's key and settings, which never change while it runs,
//! and the time; so [`TokenKeys::verify`] remembers what a token that passed
//! said, with its `exp` and `nbf`, for the shortest of its own lifetime and
//! [`MEMO_TTL`] (at most [`MEMO_CAPACITY`] tokens), and checks only the time
//! again when the same bytes come back. Nothing else changes: whether the
//! token's session is alive and its user enabled is still asked on every call
//! (`auth::sessions`), so Logout, revocation and a disabled account end a
//! token as before. A token that fails is never remembered.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;
use crate::{
    error::{AppError, AppResult},
    pb::fileorganizer::v1::ErrorReason,
};

/// Accepted clock skew between token issuer and verifier.
const LEEWAY_SECS: u64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
    /// The user's role when the token was issued (`domain::Role`'s word).
    pub role: String,
    pub typ: String,
    /// The session (refresh-token family) the token was issued for.
    #[serde(default)]
    pub sid: String,
}

/// What a valid access token says.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user_id: Uuid,
    pub role: Role,
    pub jti: String,
    pub session: Option<Uuid>,
}

/// Signs and verifies access tokens with the server's secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    memo: Arc<Mutex<HashMap<String, Remembered>>>,
}

/// Most verified tokens remembered (module doc); beyond it those past their
/// memo time are dropped, and if that is not enough, all of them.
const MEMO_CAPACITY: usize = 10_000;
/// Longest a verified token is remembered before it is checked in full again.
const MEMO_TTL: Duration = Duration::from_secs(60);

/// What a verified token said, and its time window.
#[derive(Clone)]
struct Remembered {
    verified: Verified,
    nbf: i64,
    exp: i64,
    until: Instant,
}

impl Remembered {
    /// Whether the token is inside its time window at `now` (Unix seconds),
    /// as `jsonwebtoken` decides it with the same leeway.
    fn in_window(&self, now: i64) -> bool {
        let leeway = LEEWAY_SECS as i64;
        self.exp >= now - leeway && self.nbf <= now + leeway
    }
}

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl: Duration) -> AppResult<TokenKeys> {
        let encoding = EncodingKey::from_secret(secret)
            .map_err(|e| AppError::internal(format!("jwt key: {e}")))?;
        let decoding = DecodingKey::from_secret(secret)
            .map_err(|e| AppError::internal(format!("jwt key: {e}")))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        Ok(TokenKeys {
            encoding,
            decoding,
            validation,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl,
            memo: Default::default(),
        })
    }

    /// Lifetime of an access token.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues an access token for a user's session.
    pub fn issue(&self, user_id: Uuid, role: Role, session: Uuid) -> AppResult<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            nbf: now,
            exp: now + self.ttl.as_secs() as i64,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4().to_string(),
            role: role.as_str().into(),
            typ: "access".into(),
            sid: session.to_string(),
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use it to make expired tokens).
    pub fn sign(&self, claims: &Claims) -> AppResult<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| AppError::internal(format!("jwt encode: {e}")))
    }

    /// Verifies a token and returns its claims; any failure is
    /// UNAUTHENTICATED with reason TOKEN_INVALID ([`invalid_token`]).
    /// A token verified before is only checked against the clock again
    /// (module doc).
    pub fn verify(&self, token: &str) -> AppResult<Verified> {
        let now = Instant::now();
        let unix = chrono::Utc::now().timestamp();
        {
            let memo = self.memo.lock().expect("token memo lock");
            if let Some(known) = memo.get(token).filter(|known| known.until > now) {
                return if known.in_window(unix) {
                    Ok(known.verified.clone())
                } else {
                    Err(invalid_token())
                };
            }
        }
        let (verified, claims) = self.verify_in_full(token)?;
        let known = Remembered {
            verified: verified.clone(),
            nbf: claims.nbf,
            exp: claims.exp,
            until: now + MEMO_TTL,
        };
        let mut memo = self.memo.lock().expect("token memo lock");
        if memo.len() >= MEMO_CAPACITY {
            memo.retain(|_, known| known.until > now && known.in_window(unix));
            if memo.len() >= MEMO_CAPACITY {
                memo.clear();
            }
        }
        memo.insert(token.to_string(), known);
        Ok(verified)
    }

    /// Signature, algorithm, issuer, audience, time window and type.
    fn verify_in_full(&self, token: &str) -> AppResult<(Verified, Claims)> {
        let invalid = invalid_token;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| invalid())?;
        let claims = data.claims;
        if claims.typ != "access" {
            return Err(invalid());
        }
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| invalid())?;
        let verified = Verified {
            user_id,
            // Signed by us, so a role we do not know is as invalid as a bad signature.
            role: Role::parse(&claims.role).map_err(|_| invalid())?,
            jti: claims.jti.clone(),
            session: Uuid::parse_str(&claims.sid).ok(),
        };
        Ok((verified, claims))
    }
}

impl TokenKeys {
    /// Whether `token` is an access token this server signed (right key,
    /// algorithm, issuer, audience and type), whether or not it is in its
    /// time window. Never grants anything: the brute-force guard uses it to
    /// tell an expired or ended session from a guess.
    pub fn is_ours(&self, token: &str) -> bool {
        if self.verify(token).is_ok() {
            return true;
        }
        let mut untimed = self.validation.clone();
        untimed.validate_exp = false;
        untimed.validate_nbf = false;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &untimed)
            .is_ok_and(|data| data.claims.typ == "access")
    }
}

/// The one answer for every access token that does not grant access
/// (forged, expired, of an ended session or a disabled account), so a caller
/// cannot tell which check failed.
pub fn invalid_token() -> AppError {
    AppError::unauthenticated(
        ErrorReason::TokenInvalid,
        "the access token is invalid or expired",
    )
}

/// A new refresh token and the hash to store.
pub fn new_refresh_token() -> (String, [u8; 32]) {
    let token = format!("rt_{}", super::random_token(32));
    let hash = super::secret_hash(&token);
    (token, hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "iss",
            "aud",
            Duration::from_secs(900),
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let id = Uuid::new_v4();
        let session = Uuid::new_v4();
        let token = k.issue(id, Role::Admin, session).unwrap();
        let verified = k.verify(&token).unwrap();
        assert_eq!(verified.user_id, id);
        assert_eq!(verified.role, Role::Admin);
        assert_eq!(verified.session, Some(session));
    }

    #[test]
    fn a_remembered_token_is_checked_against_the_clock_and_only_its_own_bytes_hit() {
        let k = keys();
        let id = Uuid::new_v4();
        let token = k.issue(id, Role::User, id).unwrap();
        assert_eq!(k.verify(&token).unwrap().user_id, id);
        assert!(k.memo.lock().unwrap().contains_key(&token));
        // Served from the memo, the clock still decides: past its `exp`
        // (beyond the leeway) the same bytes are refused.
        let now = chrono::Utc::now().timestamp();
        k.memo.lock().unwrap().get_mut(&token).unwrap().exp = now - LEEWAY_SECS as i64 - 1;
        assert!(k.verify(&token).is_err());
        k.memo.lock().unwrap().get_mut(&token).unwrap().exp = now + 600;
        k.memo.lock().unwrap().get_mut(&token).unwrap().nbf = now + LEEWAY_SECS as i64 + 1;
        assert!(k.verify(&token).is_err());
        // Any other bytes are verified in full: a forged signature is not
        // taken for the remembered token, and a failure is not remembered.
        let mut forged = token.clone().into_bytes();
        let at = forged.len() - 10; // inside the signature
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(k.verify(&forged).is_err());
        assert!(!k.memo.lock().unwrap().contains_key(&forged));
        // Another process's keys (a different secret) share nothing.
        let other =
            TokenKeys::new(b"another-secret-another-secret-xx", "iss", "aud", k.ttl).unwrap();
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn the_memo_stays_bounded() {
        let k = keys();
        let id = Uuid::new_v4();
        for _ in 0..MEMO_CAPACITY + 5 {
            k.verify(&k.issue(id, Role::User, id).unwrap()).unwrap();
        }
        let held = k.memo.lock().unwrap().len();
        assert!(held <= MEMO_CAPACITY, "{held} tokens");
    }

    #[test]
    fn a_role_the_server_does_not_know_is_an_invalid_token() {
        let k = keys();
        let now = chrono::Utc::now().timestamp();
        let id = Uuid::new_v4();
        let claims = |role: &str| Claims {
            sub: id.to_string(),
            iat: now,
            nbf: now,
            exp: now + 600,
            iss: "iss".into(),
            aud: "aud".into(),
            jti: "j".into(),
            role: role.into(),
            typ: "access".into(),
            sid: id.to_string(),
        };
        let user = k.verify(&k.sign(&claims(Role::User.as_str())).unwrap());
        assert_eq!(user.unwrap().role, Role::User);
        // Before, any unknown word quietly meant the user role.
        for unknown in ["root", "", "ADMIN"] {
            assert!(
                k.verify(&k.sign(&claims(unknown)).unwrap()).is_err(),
                "{unknown}"
            );
        }
    }

    #[test]
    fn rejects_other_secret_audience_and_alg_none() {
        let k = keys();
        let id = Uuid::new_v4();
        let other =
            TokenKeys::new(b"another-secret-another-secret-xx", "iss", "aud", k.ttl).unwrap();
        assert!(k.verify(&other.issue(id, Role::User, id).unwrap()).is_err());
        let wrong_aud =
            TokenKeys::new(b"0123456789abcdef0123456789abcdef", "iss", "x", k.ttl).unwrap();
        assert!(
            k.verify(&wrong_aud.issue(id, Role::User, id).unwrap())
                .is_err()
        );

        let token = k.issue(id, Role::User, id).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(k.verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn rejects_expired() {
        let k = keys();
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::new_v4().to_string(),
            iat: now - 3600,
            nbf: now - 3600,
            exp: now - 1800,
            iss: "iss".into(),
            aud: "aud".into(),
            jti: "j".into(),
            role: Role::User.as_str().into(),
            typ: "access".into(),
            sid: String::new(),
        };
        let expired = k.sign(&claims).unwrap();
        assert!(k.verify(&expired).is_err());
        // Expired, but ours: not a guess for the brute-force guard.
        assert!(k.is_ours(&expired));
        let fresh = k
            .sign(&Claims {
                exp: now + 600,
                nbf: now,
                ..claims.clone()
            })
            .unwrap();
        assert!(k.is_ours(&fresh));
        let refresh_typed = k
            .sign(&Claims {
                typ: "refresh".into(),
                ..claims.clone()
            })
            .unwrap();
        assert!(!k.is_ours(&refresh_typed));
        let other = TokenKeys::new(
            b"another-secret-another-secret-another",
            "iss",
            "aud",
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(!k.is_ours(&other.sign(&claims).unwrap()));
        assert!(!k.is_ours("garbage"));
    }
}
