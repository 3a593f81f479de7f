//! The per-user storage quota: `users.storage_used_bytes` against
//! `users.storage_quota_bytes`.
//!
//! Usage is an account of what the API stored for the user, not a
//! measurement of the disk: an upload adds its size when it is published,
//! EmptyTrash subtracts what it deleted (never below zero), and moves
//! (organize, DeleteFile, RestoreFile) change nothing. Adding is one
//! conditional `UPDATE`, so concurrent uploads cannot together exceed the
//! quota. The account matches the disk as long as files enter a user's
//! storage through uploads, the API's only way in; files put there by other
//! means are not counted (and emptying them from the trash cannot take the
//! usage below zero).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::users;

/// A user's usage and quota, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: i64,
    pub quota: i64,
}

impl Usage {
    /// Bytes that may still be stored.
    pub fn remaining(&self) -> i64 {
        (self.quota - self.used).max(0)
    }
}

pub async fn usage(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Usage> {
    users::table
        .find(user_id)
        .select((users::storage_used_bytes, users::storage_quota_bytes))
        .first::<(i64, i64)>(conn)
        .await
        .map(|(used, quota)| Usage { used, quota })
}

/// Adds `bytes` to the usage if the result stays within the quota. `Ok(None)`
/// when it would not fit (nothing changed).
pub async fn try_add(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    bytes: i64,
) -> QueryResult<Option<Usage>> {
    diesel::update(
        users::table
            .find(user_id)
            .filter((users::storage_used_bytes + bytes).le(users::storage_quota_bytes)),
    )
    .set(users::storage_used_bytes.eq(users::storage_used_bytes + bytes))
    .returning((users::storage_used_bytes, users::storage_quota_bytes))
    .get_result::<(i64, i64)>(conn)
    .await
    .optional()
    .map(|row| row.map(|(used, quota)| Usage { used, quota }))
}

/// Subtracts `bytes` from the usage, never below zero.
pub async fn release(conn: &mut AsyncPgConnection, user_id: Uuid, bytes: i64) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE users SET storage_used_bytes = GREATEST(0, storage_used_bytes - $2) WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<diesel::sql_types::BigInt, _>(bytes)
    .execute(conn)
    .await
    .map(drop)
}
