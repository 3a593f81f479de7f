//! Queries on `upload_sessions`: resumable uploads in progress
//! (`api::files::sessions`, docs/uploads.md).
//!
//! A session reserves its whole size in the owner's quota when it is
//! created ([`create`], one transaction with the quota update), and gives
//! the reservation back when it ends without storing a file ([`end`] with
//! `release`). Every query names the owner: another user's session is not
//! found. An expired session is not found either, even before the sweep
//! ([`expired`]) removes it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::quota;
use crate::{domain::FileConflictPolicy, schema::upload_sessions};

/// One session.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = upload_sessions, check_for_backend(diesel::pg::Pg))]
pub struct UploadSession {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The target path, relative to the user's root.
    pub path: String,
    pub size_bytes: i64,
    /// The expected blake3 hash (32 bytes), if any.
    pub content_hash: Option<Vec<u8>>,
    pub conflict_policy: FileConflictPolicy,
    pub modify_time: Option<DateTime<Utc>>,
    /// Bytes durably written.
    pub committed_offset: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Reserves `session.size_bytes` of the owner's quota and inserts the
/// session, together. `Ok(None)` when the size does not fit (nothing
/// changed).
pub async fn create(
    conn: &mut AsyncPgConnection,
    session: &UploadSession,
) -> QueryResult<Option<UploadSession>> {
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        if quota::try_add(conn, session.user_id, session.size_bytes)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        diesel::insert_into(upload_sessions::table)
            .values(session)
            .returning(UploadSession::as_returning())
            .get_result(conn)
            .await
            .map(Some)
    })
    .await
}

/// The user's unexpired session `id`.
pub async fn find(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<UploadSession>> {
    upload_sessions::table
        .filter(upload_sessions::id.eq(id))
        .filter(upload_sessions::user_id.eq(user_id))
        .filter(upload_sessions::expires_at.gt(diesel::dsl::now))
        .select(UploadSession::as_select())
        .first(conn)
        .await
        .optional()
}

/// Moves the committed offset from `from` to `to`; `Ok(None)` when the
/// session is gone or its offset is no longer `from`.
pub async fn commit(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    from: i64,
    to: i64,
) -> QueryResult<Option<UploadSession>> {
    diesel::update(
        upload_sessions::table
            .filter(upload_sessions::id.eq(id))
            .filter(upload_sessions::user_id.eq(user_id))
            .filter(upload_sessions::committed_offset.eq(from)),
    )
    .set(upload_sessions::committed_offset.eq(to))
    .returning(UploadSession::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Ends the session: deletes its row and, with `release`, gives its
/// reservation back to the quota (it stored nothing), in one transaction.
/// `Ok(false)` when it was already gone (nothing released twice).
pub async fn end(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    release: bool,
) -> QueryResult<bool> {
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        let size = diesel::delete(
            upload_sessions::table
                .filter(upload_sessions::id.eq(id))
                .filter(upload_sessions::user_id.eq(user_id)),
        )
        .returning(upload_sessions::size_bytes)
        .get_result::<i64>(conn)
        .await
        .optional()?;
        match size {
            Some(size) if release => quota::release(conn, user_id, size).await.map(|()| true),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    })
    .await
}

/// Up to `limit` expired sessions of any user, oldest expiry first.
pub async fn expired(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<UploadSession>> {
    upload_sessions::table
        .filter(upload_sessions::expires_at.le(diesel::dsl::now))
        .order(upload_sessions::expires_at)
        .limit(limit)
        .select(UploadSession::as_select())
        .load(conn)
        .await
}
