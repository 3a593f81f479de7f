//! Queries on `trash_items`: what is in each user's `.trash/` and where it
//! came from.
//!
//! Rows are kept after a restore or a purge (with `restored_at` /
//! `purged_at`); "in the trash" means neither is set. Duplicates an
//! operation moved to `.trash/<operation-id>/…` (MOVE_TO_TRASH) have no row
//! until [`adopt_operation_trash`] takes them in, which every trash RPC runs
//! first; the unique (operation_id, operation_seq) key makes that idempotent.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::enums;
use crate::{
    domain::{DuplicatePolicy, OperationState, RecordStatus},
    schema::trash_items,
};

/// One trash item.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = trash_items, check_for_backend(diesel::pg::Pg))]
pub struct TrashItem {
    pub id: Uuid,
    pub original_path: String,
    /// Where the entry is now, relative to the user's root.
    pub trash_path: String,
    /// `file`, `directory`, `symlink` or `other`.
    pub kind: String,
    pub size_bytes: i64,
    /// The operation that moved it here (a duplicate), if any.
    pub operation_id: Option<Uuid>,
    pub deleted_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = trash_items)]
pub struct NewTrashItem<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub original_path: &'a str,
    pub trash_path: &'a str,
    pub kind: &'a str,
    pub size_bytes: i64,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &NewTrashItem<'_>,
) -> QueryResult<TrashItem> {
    diesel::insert_into(trash_items::table)
        .values(new)
        .returning(TrashItem::as_returning())
        .get_result(conn)
        .await
}

/// Removes a row whose move into the trash did not happen.
pub async fn forget(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::delete(trash_items::table.find(id))
        .execute(conn)
        .await
        .map(drop)
}

/// Brings the user's trash rows up to date with their operations: trashed
/// duplicates of finished MOVE_TO_TRASH operations get a row, and rows whose
/// record an undo has moved back out of the trash are marked restored.
/// Operations already taken in are not read again.
pub async fn adopt_operation_trash(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<()> {
    // The words are written into the statements (`db::enums`); the policy's
    // is the `options` column's JSON word, which is the same.
    static ADOPT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO trash_items (id, user_id, original_path, trash_path, kind, size_bytes,
                                  operation_id, operation_seq, deleted_at)
         SELECT gen_random_uuid(), o.user_id, f.original_path, f.new_path, 'file', f.size_bytes,
                f.operation_id, f.seq, coalesce(o.finished_at, o.updated_at)
         FROM operations o
         JOIN file_records f ON f.operation_id = o.id
         WHERE o.user_id = $1
           AND o.options->>'duplicate_policy' = {trash}
           AND o.state IN {finished}
           AND o.duplicates_found > 0
           AND NOT EXISTS (SELECT 1 FROM trash_items t WHERE t.operation_id = o.id)
           AND f.status = {duplicate}
           AND f.new_path LIKE '.trash/%'
         ON CONFLICT (operation_id, operation_seq) WHERE operation_id IS NOT NULL DO NOTHING",
            trash = enums::lit(DuplicatePolicy::MoveToTrash),
            finished = enums::list(OperationState::FINAL),
            duplicate = enums::lit(RecordStatus::Duplicate),
        )
    });
    static RESTORED: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE trash_items t SET restored_at = now(), restored_path = f.original_path
         FROM file_records f
         WHERE t.user_id = $1 AND t.restored_at IS NULL AND t.purged_at IS NULL
           AND f.operation_id = t.operation_id AND f.seq = t.operation_seq
           AND f.status <> {duplicate}",
            duplicate = enums::lit(RecordStatus::Duplicate),
        )
    });
    diesel::sql_query(ADOPT.as_str())
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .execute(conn)
        .await?;
    diesel::sql_query(RESTORED.as_str())
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .execute(conn)
        .await
        .map(drop)
}

/// The user's trash, newest first, after the keyset position `after`
/// (deleted_at, id) of the previous page.
pub async fn list_active(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<TrashItem>> {
    let mut query = trash_items::table
        .filter(trash_items::user_id.eq(user_id))
        .filter(trash_items::restored_at.is_null())
        .filter(trash_items::purged_at.is_null())
        .into_boxed();
    if let Some((time, id)) = after {
        query = query.filter(
            trash_items::deleted_at
                .lt(time)
                .or(trash_items::deleted_at.eq(time).and(trash_items::id.lt(id))),
        );
    }
    query
        .order((trash_items::deleted_at.desc(), trash_items::id.desc()))
        .limit(limit)
        .select(TrashItem::as_select())
        .load(conn)
        .await
}

/// Total size of what is in the user's trash.
pub async fn active_size(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    trash_items::table
        .filter(trash_items::user_id.eq(user_id))
        .filter(trash_items::restored_at.is_null())
        .filter(trash_items::purged_at.is_null())
        .select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "coalesce(sum(size_bytes), 0)::bigint",
        ))
        .first(conn)
        .await
}

/// Items in the user's trash with these ids (others' and missing ones are
/// left out).
pub async fn find_active(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    ids: &[Uuid],
) -> QueryResult<Vec<TrashItem>> {
    trash_items::table
        .filter(trash_items::user_id.eq(user_id))
        .filter(trash_items::id.eq_any(ids))
        .filter(trash_items::restored_at.is_null())
        .filter(trash_items::purged_at.is_null())
        .select(TrashItem::as_select())
        .load(conn)
        .await
}

/// Everything in the user's trash.
pub async fn all_active(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<TrashItem>> {
    list_active(conn, user_id, None, i64::MAX).await
}

/// Records that the item was put back at `path`. `false` if it had already
/// left the trash (a concurrent restore or purge).
pub async fn mark_restored(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    path: &str,
) -> QueryResult<bool> {
    diesel::update(
        trash_items::table
            .find(id)
            .filter(trash_items::restored_at.is_null())
            .filter(trash_items::purged_at.is_null()),
    )
    .set((
        trash_items::restored_at.eq(Utc::now()),
        trash_items::restored_path.eq(path),
    ))
    .execute(conn)
    .await
    .map(|n| n > 0)
}

/// Records that the item's bytes are gone for good and gives them back to
/// its owner's quota, in one statement (a request cut off between the two
/// would leave the user charged for files that are gone). `false` if it had
/// already left the trash (nothing is given back twice).
pub async fn mark_purged(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::sql_query(
        "WITH purged AS (
           UPDATE trash_items SET purged_at = now()
            WHERE id = $1 AND restored_at IS NULL AND purged_at IS NULL
            RETURNING user_id, size_bytes)
         UPDATE users SET storage_used_bytes = GREATEST(0, storage_used_bytes - purged.size_bytes)
           FROM purged WHERE users.id = purged.user_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(conn)
    .await
    .map(|n| n > 0)
}
