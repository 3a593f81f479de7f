//! Queries on `api_keys` and `refresh_tokens`.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::{ApiKey, NewApiKey, NewRefreshToken, RefreshToken};
use crate::schema::{api_keys, refresh_tokens};

pub async fn insert_api_key(
    conn: &mut AsyncPgConnection,
    new: &NewApiKey<'_>,
) -> QueryResult<ApiKey> {
    diesel::insert_into(api_keys::table)
        .values(new)
        .returning(ApiKey::as_returning())
        .get_result(conn)
        .await
}

/// A page of a user's keys, newest first, after the keyset cursor `after`.
pub async fn list_api_keys(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<ApiKey>> {
    let mut query = api_keys::table
        .filter(api_keys::user_id.eq(user_id))
        .select(ApiKey::as_select())
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((created_at, id)) = after {
        query = query.filter(
            api_keys::created_at
                .lt(created_at)
                .or(api_keys::created_at.eq(created_at).and(api_keys::id.lt(id))),
        );
    }
    query.load(conn).await
}

pub async fn find_api_key_by_prefix(
    conn: &mut AsyncPgConnection,
    prefix: &str,
) -> QueryResult<Option<ApiKey>> {
    api_keys::table
        .filter(api_keys::prefix.eq(prefix))
        .select(ApiKey::as_select())
        .first(conn)
        .await
        .optional()
}

/// Records a use of the key, at most once a minute so authentication does
/// not cost a write per request.
pub async fn touch_api_key(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<usize> {
    let now = Utc::now();
    diesel::update(
        api_keys::table.find(id).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(now - ChronoDuration::minutes(1))),
        ),
    )
    .set(api_keys::last_used_at.eq(now))
    .execute(conn)
    .await
}

/// Revokes a key of this user (idempotent: an already revoked key keeps its
/// revocation time); None when the user has no such key.
pub async fn revoke_api_key(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<ApiKey>> {
    let owned = api_keys::table
        .find(id)
        .filter(api_keys::user_id.eq(user_id));
    let revoked = diesel::update(owned.filter(api_keys::revoked_at.is_null()))
        .set(api_keys::revoked_at.eq(Utc::now()))
        .returning(ApiKey::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match revoked {
        Some(key) => Ok(Some(key)),
        None => owned
            .select(ApiKey::as_select())
            .first(conn)
            .await
            .optional(),
    }
}

pub async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    new: &NewRefreshToken<'_>,
) -> QueryResult<RefreshToken> {
    diesel::insert_into(refresh_tokens::table)
        .values(new)
        .returning(RefreshToken::as_returning())
        .get_result(conn)
        .await
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was valid: it is now spent and `next` replaces it.
    Rotated { user_id: Uuid, next: RefreshToken },
    /// Unknown, expired or revoked.
    Invalid,
    /// Already spent: a replay. The whole family has been revoked.
    Reused { user_id: Uuid, family_id: Uuid },
}

/// Spends `token_hash` and issues its successor (hash `next_hash`) in one
/// transaction; the row lock serializes concurrent presentations of the same
/// token, so exactly one of them can win.
pub async fn rotate_refresh_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    next_hash: &[u8],
    next_ttl: std::time::Duration,
) -> QueryResult<Rotation> {
    let token_hash = token_hash.to_vec();
    let next_hash = next_hash.to_vec();
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let now = Utc::now();
        let Some(current) = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(&token_hash))
            .select(RefreshToken::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?
        else {
            return Ok(Rotation::Invalid);
        };
        if current.revoked_at.is_some() {
            return Ok(Rotation::Invalid);
        }
        if current.used_at.is_some() {
            revoke_family(conn, current.family_id).await?;
            return Ok(Rotation::Reused {
                user_id: current.user_id,
                family_id: current.family_id,
            });
        }
        if current.expires_at <= now {
            return Ok(Rotation::Invalid);
        }
        let next = insert_refresh_token(
            conn,
            &NewRefreshToken {
                id: Uuid::now_v7(),
                user_id: current.user_id,
                family_id: current.family_id,
                token_hash: &next_hash,
                expires_at: now
                    + ChronoDuration::from_std(next_ttl).unwrap_or(ChronoDuration::days(30)),
            },
        )
        .await?;
        diesel::update(refresh_tokens::table.find(current.id))
            .set((
                refresh_tokens::used_at.eq(now),
                refresh_tokens::replaced_by.eq(next.id),
            ))
            .execute(conn)
            .await?;
        Ok(Rotation::Rotated {
            user_id: current.user_id,
            next,
        })
    })
    .await
}

/// Revokes every live token of a family; returns how many.
pub async fn revoke_family(conn: &mut AsyncPgConnection, family_id: Uuid) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(Utc::now()))
    .execute(conn)
    .await
}

/// Finds a token of this user by hash (for Logout).
pub async fn find_refresh_token(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    token_hash: &[u8],
) -> QueryResult<Option<RefreshToken>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .filter(refresh_tokens::user_id.eq(user_id))
        .select(RefreshToken::as_select())
        .first(conn)
        .await
        .optional()
}

/// Whether a session (refresh-token family) of `user_id` still has a token
/// that is not revoked: Logout, reuse detection and a password change revoke
/// every token of the families they end.
pub async fn session_alive(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    family_id: Uuid,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::user_id.eq(user_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    ))
    .get_result(conn)
    .await
}

/// Revokes every live token of a user except those of `keep_family`;
/// returns the family of each token revoked.
pub async fn revoke_user_sessions(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keep_family: Option<Uuid>,
) -> QueryResult<Vec<Uuid>> {
    let mut query = diesel::update(refresh_tokens::table)
        .filter(refresh_tokens::user_id.eq(user_id))
        .filter(refresh_tokens::revoked_at.is_null())
        .into_boxed();
    if let Some(family) = keep_family {
        query = query.filter(refresh_tokens::family_id.ne(family));
    }
    query
        .set(refresh_tokens::revoked_at.eq(Utc::now()))
        .returning(refresh_tokens::family_id)
        .get_results(conn)
        .await
}
