//! The current state behind a credential, checked on every call: is the
//! access token's session still alive, and what are its user's role and
//! status now.
//!
//! An access token is a signed, self-contained JWT; on its own it would stay
//! valid for its whole lifetime (15 minutes) after Logout, reuse detection, a
//! password change, a demotion or a disabled account. So the auth layer also
//! asks two questions per call, through the principal cache (`crate::infra::cache`):
//!
//! | cache | key | holds | truth in Postgres |
//! |---|---|---|---|
//! | `auth_user` | user id | role, disabled | `users` |
//! | `session` | session (refresh-token family) id | alive | a token of the family not revoked |
//!
//! API keys ask the first question too (a disabled owner's keys stop; a
//! demoted admin's keys lose the admin RPCs).
//!
//! Every change invalidates its entries *after* its write commits
//! ([`sessions_ended`], [`user_changed`]): Logout (one family or all),
//! refresh-token reuse (the family), a password change (every other family),
//! `fileorg user promote/demote/disable/enable`. The bound, precisely:
//! - in the process that made the change, at once (the local tier is
//!   evicted synchronously and tombstoned);
//! - in every other API process, within `CACHE_LOCAL_TTL_MS` (1 s by
//!   default): Redis's copy is deleted at once, and a process's in-memory
//!   copy lives at most that long; without Redis each process reads
//!   Postgres once its in-memory copy expires, so the bound is the same.
//! - A reader in another process that loaded the old state from Postgres
//!   just before the change could write it back into Redis just after the
//!   delete (the race of every cache-aside); the change is therefore
//!   invalidated a second time [`SECOND_INVALIDATION`] later, which bounds
//!   that window too unless a fill takes longer than that.
//! - If Redis cannot be reached by the process making the change, the
//!   entry in Redis lives out `CACHE_PRINCIPAL_TTL_SECS` (60 s) at worst.

use std::time::Duration;

use uuid::Uuid;

use super::Role;
use crate::{
    db,
    error::{AppError, AppResult},
    infra::cache::Cache,
    state::AppState,
};

/// Cache of [`CachedUser`] by user id.
const USER_CACHE: &str = "auth_user";
/// Cache of [`CachedSession`] by session (refresh-token family) id.
const SESSION_CACHE: &str = "session";

/// When a change is invalidated again, to undo a racing fill (module doc).
pub const SECOND_INVALIDATION: Duration = Duration::from_secs(1);

/// What authentication needs to know about a user, now.
#[derive(Clone, PartialEq, prost::Message)]
struct CachedUser {
    #[prost(string, tag = "1")]
    role: String,
    #[prost(bool, tag = "2")]
    disabled: bool,
}

/// Whether a session can still be used.
#[derive(Clone, PartialEq, prost::Message)]
struct CachedSession {
    #[prost(string, tag = "1")]
    user_id: String,
    #[prost(bool, tag = "2")]
    alive: bool,
}

/// A user as the auth layer sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserState {
    pub role: Role,
    pub disabled: bool,
}

/// The user's current role and status; None when there is no such user.
pub async fn user_state(state: &AppState, user_id: Uuid) -> AppResult<Option<UserState>> {
    let cached = match state.cache.get::<CachedUser>(USER_CACHE, user_id).await {
        Some(hit) => hit,
        None => {
            let mut conn = state.db.get().await?;
            let Some(user) = db::users::find(&mut conn, user_id).await? else {
                return Ok(None);
            };
            let entry = CachedUser {
                role: user.role.as_str().to_string(),
                disabled: user.disabled,
            };
            state
                .cache
                .put(USER_CACHE, user_id, &entry, state.cache.ttls.principal)
                .await;
            entry
        }
    };
    Ok(Some(UserState {
        // Written above from a typed row: an unknown word is a damaged entry.
        role: Role::parse(&cached.role).map_err(AppError::internal)?,
        disabled: cached.disabled,
    }))
}

/// Whether the session `session` of `user_id` is alive (not logged out,
/// not revoked by reuse detection or a password change).
pub async fn session_alive(state: &AppState, user_id: Uuid, session: Uuid) -> AppResult<bool> {
    let owner = user_id.to_string();
    if let Some(hit) = state
        .cache
        .get::<CachedSession>(SESSION_CACHE, session)
        .await
    {
        return Ok(hit.alive && hit.user_id == owner);
    }
    let mut conn = state.db.get().await?;
    let alive = db::credentials::session_alive(&mut conn, user_id, session).await?;
    let entry = CachedSession {
        user_id: owner,
        alive,
    };
    state
        .cache
        .put(SESSION_CACHE, session, &entry, state.cache.ttls.principal)
        .await;
    Ok(alive)
}

/// The user behind a credential of `user_id`, who must exist and be
/// enabled; `invalid` is the credential's own "invalid" error, so that a
/// disabled account looks like any other dead credential.
pub async fn active_user(
    state: &AppState,
    user_id: Uuid,
    invalid: impl Fn() -> AppError,
) -> AppResult<UserState> {
    user_state(state, user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(invalid)
}

/// After sessions were revoked (their tokens' `revoked_at` committed).
pub async fn sessions_ended(cache: &Cache, sessions: &[Uuid]) {
    let entries: Vec<(&'static str, String)> = sessions
        .iter()
        .map(|s| (SESSION_CACHE, s.to_string()))
        .collect();
    invalidate_twice(cache, entries).await;
}

/// After a user's role or status changed (committed).
pub async fn user_changed(cache: &Cache, user_id: Uuid) {
    invalidate_twice(cache, vec![(USER_CACHE, user_id.to_string())]).await;
}

/// Invalidates now and again after [`SECOND_INVALIDATION`] (in the
/// background; a short-lived process such as the CLI waits with
/// [`settle`]).
async fn invalidate_twice(cache: &Cache, entries: Vec<(&'static str, String)>) {
    if entries.is_empty() {
        return;
    }
    cache.invalidate(&entries).await;
    let cache = cache.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SECOND_INVALIDATION).await;
        cache.invalidate(&entries).await;
    });
}

/// Waits until the second invalidations of changes made just now are done
/// (for a process that exits right after a change).
pub async fn settle() {
    tokio::time::sleep(SECOND_INVALIDATION + Duration::from_millis(200)).await;
}
