//! Authentication: who is calling.
//!
//! - [`email`] and [`password`] parse and check what users type.
//! - [`tokens`] issues and verifies access tokens (JWT, HS256 pinned) and
//!   makes opaque refresh tokens.
//! - [`api_keys`] makes and parses `fo_<prefix>_<secret>` keys.
//! - [`principal`] is the typed identity the auth layer
//!   (`crate::layers::auth`) puts into every authenticated request.
//! - [`scopes`] is what a credential may do; [`access`] is the one table of
//!   what each RPC requires.
//! - [`watch_tokens`] are single-use permissions to watch one operation
//!   without credentials (a browser's EventSource).
//! - [`sessions`] is the current state behind a credential (session alive,
//!   user's role and status), checked on every call through the cache.
//!
//! Secrets are never stored: refresh tokens and API keys are kept as blake3
//! hashes, passwords as argon2id PHC strings.

pub mod access;
pub mod accounts;
pub(crate) mod api_keys;
pub mod email;
pub(crate) mod password;
pub(crate) mod principal;
pub(crate) mod scopes;
pub(crate) mod sessions;
pub mod tokens;
pub(crate) mod watch_tokens;

/// Roles are the domain's; re-exported where authentication code expects them.
pub use crate::domain::Role;
pub use principal::{Credential, Principal};
pub use scopes::{Scope, Scopes};

/// blake3 of a bearer secret, as stored in the database.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

/// `len` random bytes, base64url without padding.
pub fn random_token(len: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
