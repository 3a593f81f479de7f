//! Watch tokens: how a browser follows an operation's progress without
//! custom headers (issue 22).
//!
//! A browser's `EventSource` can only GET a URL: it cannot send an
//! `authorization` header or an API key. So an authenticated caller first
//! asks for a watch token (CreateWatchToken, scope operations.read), then
//! opens `GET /api/v1/operations/{id}:watch?watch_token=fow_…` with no
//! credentials. What the token is, and why:
//!
//! - **Bound to one user and one operation.** It is issued only for an
//!   operation of the caller (another user's is NOT_FOUND) and redeemed only
//!   by a WatchOperation on that same operation; the handler then acts as
//!   that user. Nothing else accepts it: the auth layer lets a call without
//!   credentials through only to WatchOperation (`Access::ScopeOrWatchToken`),
//!   only WatchOperationRequest has the field (Envoy answers 400 for the query
//!   parameter on any other route), and the token is no JWT or API key, so as
//!   a header it is an invalid credential.
//! - **Single use.** Redeeming deletes the row (`DELETE … RETURNING`, one
//!   statement), so of any number of concurrent calls with the same token at
//!   most one is let in. It is spent even when the call then fails (another
//!   operation's name, expired), so a leaked URL is worth at most one stream.
//!   An `EventSource` reconnects by itself when a stream ends: the second
//!   request gets 401 and the browser stops (clients should close it on the
//!   last event and ask for a new token to resume).
//! - **Short-lived.** [`TTL`] (60 s) from issue to redemption; the stream it
//!   opens then runs to its end like any watch. Expired rows are swept when
//!   tokens are issued.
//! - **Not kept, not logged.** 32 random bytes (base64url, prefix `fow_`);
//!   the database holds only their blake3 hash. The server logs RPC paths,
//!   never messages; Envoy's access log format (envoy/envoy.yaml) writes the
//!   path without its query string, where the token travels.
//! - **Who may create one:** any credential with operations.read, the scope
//!   WatchOperation itself needs, so a token never grants more than its
//!   creator holds (and only a part of it). The owner must still be enabled
//!   when it is redeemed. A session ended within the token's minute does not
//!   revoke it: it grants one read-only stream, and at most [`TTL`] later.
//! - **Rate limits:** a token-authorized watch has no principal for the
//!   per-user window, but every token costs one CreateWatchToken, which is
//!   counted; the per-user limit on concurrent streams applies as usual.
//!   Wrong tokens are not counted as guesses by the failed-credential limit:
//!   256 random bits cannot be guessed, and an EventSource's automatic
//!   reconnect with a spent token must not lock out a shared address.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sessions;
use crate::{
    db,
    error::{AppError, AppResult},
    pb::fileorganizer::v1::ErrorReason,
    state::AppState,
};

/// How long a token is accepted after it was issued.
pub const TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Every token starts with this (tells it apart from API keys, `fo_…`).
const PREFIX: &str = "fow_";

/// A token just issued: the secret (returned once) and its expiry.
pub struct Issued {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

fn invalid() -> AppError {
    AppError::unauthenticated(
        ErrorReason::TokenInvalid,
        "the watch token is unknown, already used, expired or for another operation: \
         create a new one (CreateWatchToken)",
    )
}

/// Issues a token for `user_id` to watch `operation_id` (an operation of
/// that user: the caller checked).
pub async fn issue(state: &AppState, user_id: Uuid, operation_id: Uuid) -> AppResult<Issued> {
    let token = format!("{PREFIX}{}", super::random_token(32));
    let expires_at = Utc::now() + TTL;
    let mut conn = state.db.get().await?;
    db::watch_tokens::insert(
        &mut conn,
        &super::secret_hash(&token),
        user_id,
        operation_id,
        expires_at,
    )
    .await?;
    Ok(Issued { token, expires_at })
}

/// Whether `token` has the shape of a watch token (checked before any
/// database round trip).
fn well_formed(token: &str) -> bool {
    token.strip_prefix(PREFIX).is_some_and(|secret| {
        secret.len() == 43
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Spends `token` and returns the user it lets watch `operation_id`;
/// UNAUTHENTICATED (TOKEN_INVALID) when it is unknown, spent, expired, for
/// another operation, or its user is disabled.
pub async fn redeem(state: &AppState, token: &str, operation_id: Uuid) -> AppResult<Uuid> {
    if !well_formed(token) {
        return Err(invalid());
    }
    let grant = {
        let mut conn = state.db.get().await?;
        db::watch_tokens::take(&mut conn, &super::secret_hash(token))
            .await?
            .ok_or_else(invalid)?
    };
    if grant.expires_at <= Utc::now() || grant.operation_id != operation_id {
        return Err(invalid());
    }
    sessions::active_user(state, grant.user_id, invalid).await?;
    Ok(grant.user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let token = format!("{PREFIX}{}", crate::auth::random_token(32));
        assert!(well_formed(&token), "{token}");
        assert!(!well_formed(&token[1..]));
        assert!(!well_formed(&format!("{token}x")));
        assert!(!well_formed("fow_"));
        assert!(!well_formed(&format!("fo_{}", &token[4..])));
        assert!(!well_formed(&token.replace(&token[10..11], "%")));
    }
}
