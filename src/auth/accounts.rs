//! Operator changes to accounts (`fileorg user promote|demote|disable|enable`):
//! the database write, then the cache invalidations that make it take effect
//! on credentials already handed out (`auth::sessions`: within
//! `CACHE_LOCAL_TTL_MS` in every API process sharing the Redis).

use super::{Role, email::Email, sessions};
use crate::{config::Config, db, infra::cache::Cache};

/// What an operator can change about an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// Give the admin role.
    Promote,
    /// Take the admin role away: the admin RPCs stop for its sessions and keys.
    Demote,
    /// Refuse the account's logins, sessions and API keys.
    Disable,
    /// Undo [`AccountChange::Disable`].
    Enable,
}

/// Applies `change` to the account with `email`; None when there is none.
/// Returns after the second invalidation (`sessions::settle`), so the
/// command's exit means the change is in force everywhere within the bound.
pub async fn apply(
    config: &Config,
    email: &Email,
    change: AccountChange,
) -> anyhow::Result<Option<db::models::User>> {
    let pool = db::connect(&config.database_url, 1).await?;
    let mut conn = pool.get().await?;
    let changed = match change {
        AccountChange::Promote => db::users::set_role(&mut conn, email.as_str(), Role::Admin).await,
        AccountChange::Demote => db::users::set_role(&mut conn, email.as_str(), Role::User).await,
        AccountChange::Disable => {
            db::users::set_disabled_by_email(&mut conn, email.as_str(), true).await
        }
        AccountChange::Enable => {
            db::users::set_disabled_by_email(&mut conn, email.as_str(), false).await
        }
    };
    let user = match changed {
        Ok(user) => user,
        Err(diesel::result::Error::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let cache = Cache::new(
        redis(config).await,
        &config.redis_key_prefix,
        config.cache_ttls,
    );
    // The profile shows the role; the principal cache decides access.
    cache.invalidate(&[("profile", user.id.to_string())]).await;
    sessions::user_changed(&cache, user.id).await;
    sessions::settle().await;
    Ok(Some(user))
}

/// A connection pool to the configured Redis, if any. When it cannot be
/// reached the change still holds, but API processes may go on using what
/// they cached for up to CACHE_PRINCIPAL_TTL_SECS: say so.
async fn redis(config: &Config) -> Option<crate::infra::redis::RedisPool> {
    let url = config.redis_url.as_ref()?;
    let pool = match bb8_redis::RedisConnectionManager::new(url.as_str()) {
        Ok(manager) => bb8::Pool::builder().max_size(1).build(manager).await.ok(),
        Err(_) => None,
    };
    if pool.is_none() {
        eprintln!(
            "fileorg: warning: Redis is unreachable; API processes may act on the old state for up to CACHE_PRINCIPAL_TTL_SECS ({} s)",
            config.cache_ttls.principal.as_secs()
        );
    }
    pool
}
