//! Values computed from an operation's whole journal, stored while the
//! journal is at rest (`operation_memos`, migration 000019): the report of
//! GetOperationReport and the status counts of ListFileRecords. `infra::memo`
//! reads and fills them.
//!
//! A value is stored under the *version* of the operation it was computed
//! from: the operation's `updated_at` and its latest undo's. At rest, an
//! operation's records are written only by its own apply job (which moves the
//! operation out of rest) and by an undo of it (whose `updated_at` moves with
//! every batch it records), so a value stored under the current version is
//! what the journal would give now. While either is working there is no
//! version, and nothing is stored.

use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, QueryResult, upsert::excluded};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::Operation;
use crate::schema::operation_memos as m;

/// The version of `operation`'s journal, or None while it or its latest undo
/// is working.
pub async fn version(
    conn: &mut AsyncPgConnection,
    operation: &Operation,
) -> QueryResult<Option<String>> {
    if !operation.state.is_at_rest() {
        return Ok(None);
    }
    let version = operation.updated_at.timestamp_micros().to_string();
    Ok(
        match super::operations::find_undo_of(conn, operation.id).await? {
            None => Some(version),
            Some(undo) if undo.state.is_at_rest() => Some(format!(
                "{version}|{}:{}",
                undo.id,
                undo.updated_at.timestamp_micros()
            )),
            Some(_) => None,
        },
    )
}

/// The stored value of `kind` for `operation_id` if it was computed for `version`.
pub async fn get(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    kind: &str,
    version: &str,
) -> QueryResult<Option<Vec<u8>>> {
    m::table
        .find((operation_id, kind))
        .filter(m::version.eq(version))
        .select(m::value)
        .first(conn)
        .await
        .optional()
}

/// Stores the value of `kind` for `operation_id` computed for `version`,
/// replacing any other version's.
pub async fn put(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    kind: &str,
    version: &str,
    value: &[u8],
) -> QueryResult<()> {
    diesel::insert_into(m::table)
        .values((
            m::operation_id.eq(operation_id),
            m::kind.eq(kind),
            m::version.eq(version),
            m::value.eq(value),
            m::computed_at.eq(chrono::Utc::now()),
        ))
        .on_conflict((m::operation_id, m::kind))
        .do_update()
        .set((
            m::version.eq(excluded(m::version)),
            m::value.eq(excluded(m::value)),
            m::computed_at.eq(excluded(m::computed_at)),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}
