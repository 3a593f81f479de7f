//! Watch tokens (`auth::watch_tokens`, migration 000050): stored by hash,
//! redeemed by deleting the row.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, QueryResult};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::watch_tokens as w;

/// What a stored token grants.
#[derive(Debug, Clone, Copy, diesel::Queryable)]
pub struct Grant {
    pub user_id: Uuid,
    pub operation_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Stores a new token's hash, and sweeps every expired token (of anyone).
pub async fn insert(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8; 32],
    user_id: Uuid,
    operation_id: Uuid,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::delete(w::table.filter(w::expires_at.lt(Utc::now())))
        .execute(conn)
        .await?;
    diesel::insert_into(w::table)
        .values((
            w::token_hash.eq(&token_hash[..]),
            w::user_id.eq(user_id),
            w::operation_id.eq(operation_id),
            w::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the token with this hash and returns what it granted, expired or
/// not; None when there is no such token (never issued, or already redeemed).
/// One statement, so of two concurrent calls only one gets the grant.
pub async fn take(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8; 32],
) -> QueryResult<Option<Grant>> {
    diesel::delete(w::table.filter(w::token_hash.eq(&token_hash[..])))
        .returning((w::user_id, w::operation_id, w::expires_at))
        .get_result::<Grant>(conn)
        .await
        .optional()
}
