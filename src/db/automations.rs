//! Automations (`automations` table): the CRUD of AutomationService and the
//! scheduler's state (`jobs::automations`; docs/triggers.md).
//!
//! A row is due when `next_run_at` has passed and it is not paused. A
//! process fires due rows inside one transaction: [`lock_due`] takes them
//! with `FOR UPDATE SKIP LOCKED` (another process skips them instead of
//! waiting, and sees them again only once the firing committed and moved
//! `next_run_at` on), the operation is inserted, then [`record_run`]; so a
//! due firing creates exactly one operation, and a process killed in the
//! middle leaves nothing half done (the transaction rolls back and the row
//! is still due).

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Integer, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::Write;
use crate::{
    domain::{OperationKind, OperationOptions, TriggerKind},
    schema::automations,
};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = automations, check_for_backend(diesel::pg::Pg))]
pub struct Automation {
    pub id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub trigger_kind: TriggerKind,
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub folder_path: Option<String>,
    pub quiet_period_ms: i64,
    pub kind: OperationKind,
    pub source_path: String,
    pub destination_path: String,
    pub dry_run: bool,
    pub options: OperationOptions,
    pub paused: bool,
    pub next_run_at: Option<DateTime<Utc>>,
    pub pending_since: Option<DateTime<Utc>>,
    pub folder_fingerprint: Option<String>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_operation_id: Option<Uuid>,
    pub run_count: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Why the latest run failed to start or its operation failed; cleared
    /// when a later run's operation succeeds.
    pub last_error: Option<String>,
}

/// The settings a request sets (create, or update: then the schedule's state
/// is reset with them).
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = automations, treat_none_as_null = true)]
pub struct AutomationSettings {
    pub display_name: String,
    pub trigger_kind: TriggerKind,
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub folder_path: Option<String>,
    pub quiet_period_ms: i64,
    pub kind: OperationKind,
    pub source_path: String,
    pub destination_path: String,
    pub dry_run: bool,
    pub options: OperationOptions,
    pub next_run_at: Option<DateTime<Utc>>,
    pub pending_since: Option<DateTime<Utc>>,
    pub folder_fingerprint: Option<String>,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    user_id: Uuid,
    settings: &AutomationSettings,
) -> QueryResult<Automation> {
    diesel::insert_into(automations::table)
        .values((
            automations::id.eq(id),
            automations::user_id.eq(user_id),
            settings,
        ))
        .returning(Automation::as_returning())
        .get_result(conn)
        .await
}

/// An automation of this user (None also when it is someone else's).
pub async fn find_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Automation>> {
    automations::table
        .find(id)
        .filter(automations::user_id.eq(user_id))
        .select(Automation::as_select())
        .first(conn)
        .await
        .optional()
}

/// A page of the user's automations, oldest first, after the cursor.
pub async fn list_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<Automation>> {
    let mut query = automations::table
        .filter(automations::user_id.eq(user_id))
        .select(Automation::as_select())
        .order((automations::created_at.asc(), automations::id.asc()))
        .limit(limit)
        .into_boxed();
    if let Some((created_at, id)) = after {
        query = query.filter(
            automations::created_at
                .gt(created_at)
                .or(automations::created_at
                    .eq(created_at)
                    .and(automations::id.gt(id))),
        );
    }
    query.load(conn).await
}

/// Replaces the settings if the row is still at `version` (None: the
/// version changed or the row is gone).
pub async fn update(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    version: i64,
    settings: &AutomationSettings,
) -> QueryResult<Write<Automation>> {
    let updated = diesel::update(
        automations::table
            .find(id)
            .filter(automations::user_id.eq(user_id))
            .filter(automations::version.eq(version)),
    )
    .set((
        settings,
        automations::version.eq(automations::version + 1),
        automations::updated_at.eq(diesel::dsl::now),
    ))
    .returning(Automation::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match updated {
        Some(row) => Ok(Write::Done(row)),
        None => refused(conn, user_id, id).await,
    }
}

/// Why a write on one of the user's automations changed nothing: it is
/// gone, or its version moved on.
async fn refused<T>(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Write<T>> {
    let current: Option<i64> = automations::table
        .find(id)
        .filter(automations::user_id.eq(user_id))
        .select(automations::version)
        .first(conn)
        .await
        .optional()?;
    Ok(match current {
        Some(current) => Write::Stale { current },
        None => Write::Missing,
    })
}

/// Pauses (`next_run_at` cleared) or resumes (`next_run_at` as given).
pub async fn set_paused(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    paused: bool,
    next_run_at: Option<DateTime<Utc>>,
) -> QueryResult<Option<Automation>> {
    diesel::update(
        automations::table
            .find(id)
            .filter(automations::user_id.eq(user_id)),
    )
    .set((
        automations::paused.eq(paused),
        automations::next_run_at.eq(next_run_at),
        automations::version.eq(automations::version + 1),
        automations::updated_at.eq(diesel::dsl::now),
    ))
    .returning(Automation::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Deletes one of the user's automations, only at version `expected` when
/// given (a stale etag deletes nothing).
pub async fn delete(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    expected: Option<i64>,
) -> QueryResult<Write<()>> {
    let mut query = diesel::delete(
        automations::table
            .find(id)
            .filter(automations::user_id.eq(user_id)),
    )
    .into_boxed();
    if let Some(version) = expected {
        query = query.filter(automations::version.eq(version));
    }
    if query.execute(conn).await? > 0 {
        Ok(Write::Done(()))
    } else {
        refused(conn, user_id, id).await
    }
}

/// Locks up to `limit` due automations (not paused, `next_run_at` at or
/// before `now`), skipping rows another process holds. Call inside a
/// transaction; the locks last until it ends.
pub async fn lock_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Automation>> {
    automations::table
        .filter(automations::paused.eq(false))
        .filter(automations::next_run_at.le(now))
        .order(automations::next_run_at.asc())
        .limit(limit)
        .select(Automation::as_select())
        .for_update()
        .skip_locked()
        .load(conn)
        .await
}

/// After a firing: the operation it created, and when it fires next.
pub async fn record_run(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    operation_id: Uuid,
    next_run_at: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    diesel::update(automations::table.find(id))
        .set((
            automations::last_run_at.eq(now),
            automations::last_operation_id.eq(operation_id),
            automations::run_count.eq(automations::run_count + 1),
            automations::next_run_at.eq(next_run_at),
            automations::pending_since.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A run could not be created: why, shown on the automation until a later
/// run succeeds.
pub async fn record_failed_start(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    error: &str,
) -> QueryResult<()> {
    diesel::update(automations::table.find(id))
        .set(automations::last_error.eq(error))
        .execute(conn)
        .await?;
    Ok(())
}

/// The operation `operation_id` of automation `id` ended: `error` (None: it
/// succeeded) becomes the automation's `last_error`, only while that
/// operation is still its latest run (an older run ending late changes
/// nothing).
pub async fn record_run_ended(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    operation_id: Uuid,
    error: Option<&str>,
) -> QueryResult<()> {
    diesel::update(
        automations::table
            .find(id)
            .filter(automations::last_operation_id.eq(operation_id)),
    )
    .set(automations::last_error.eq(error))
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a due automation's next run without firing it (a skipped tick, a
/// run that could not be created); `clear_pending` forgets the arrivals.
pub async fn reschedule(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    next_run_at: Option<DateTime<Utc>>,
    clear_pending: bool,
) -> QueryResult<()> {
    let target = automations::table.find(id);
    if clear_pending {
        diesel::update(target)
            .set((
                automations::next_run_at.eq(next_run_at),
                automations::pending_since.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)
            .await?;
    } else {
        diesel::update(target)
            .set(automations::next_run_at.eq(next_run_at))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The SET clause of a change at `$1` (now) with cap factor `$2`: due a
/// quiet period after the change, at most `$2` quiet periods after the
/// first pending one.
const MARK_CHANGED: &str = "UPDATE automations SET
     pending_since = COALESCE(pending_since, $1),
     next_run_at = LEAST(
         $1 + make_interval(secs => quiet_period_ms / 1000.0),
         COALESCE(pending_since, $1) + make_interval(secs => $2 * quiet_period_ms / 1000.0))
 WHERE NOT paused AND ";

/// Files arrived at `path` (a file or a folder) in `user_id`'s storage at
/// `now`: every unpaused automation of `kind` whose folder holds `path`
/// becomes due a quiet period from now (at most `cap_factor` quiet periods
/// after its first pending arrival). Returns how many automations.
pub async fn mark_changed(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    kind: TriggerKind,
    path: &str,
    now: DateTime<Utc>,
    cap_factor: i32,
) -> QueryResult<usize> {
    diesel::sql_query(format!(
        "{MARK_CHANGED} user_id = $3 AND trigger_kind = $4
           AND (folder_path = '' OR $5 = folder_path OR starts_with($5, folder_path || '/'))"
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Integer, _>(cap_factor)
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(kind)
    .bind::<Text, _>(path)
    .execute(conn)
    .await
}

/// The folders of `user_id`'s unpaused arrival automations ("" for the
/// whole storage), for `jobs::automations::files_arrived` to skip the write
/// when no automation watches where files arrived.
pub async fn arrival_folders(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<String>> {
    let folders: Vec<Option<String>> = automations::table
        .filter(automations::user_id.eq(user_id))
        .filter(automations::trigger_kind.eq(TriggerKind::Arrival))
        .filter(automations::paused.eq(false))
        .select(automations::folder_path)
        .load(conn)
        .await?;
    // An arrival automation always has a folder; a NULL would match nothing.
    Ok(folders.into_iter().flatten().collect())
}

/// Watched-folder automations that are not paused (for the watcher and the
/// rescan), of every user.
pub async fn watched(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Automation>> {
    automations::table
        .filter(automations::trigger_kind.eq(TriggerKind::WatchedFolder))
        .filter(automations::paused.eq(false))
        .order(automations::id.asc())
        .select(Automation::as_select())
        .load(conn)
        .await
}

/// Stores what a rescan saw of a watched folder, if it is not what the row
/// holds already; true when it changed (then the caller marks the
/// automation changed). Compare-and-set, so two processes rescanning at
/// once mark it once.
pub async fn swap_fingerprint(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    seen: &str,
) -> QueryResult<bool> {
    let n = diesel::update(
        automations::table
            .find(id)
            .filter(automations::folder_fingerprint.is_distinct_from(seen)),
    )
    .set(automations::folder_fingerprint.eq(seen))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Marks one automation changed at `now` (see [`mark_changed`]).
pub async fn mark_one_changed(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    cap_factor: i32,
) -> QueryResult<usize> {
    diesel::sql_query(format!("{MARK_CHANGED} id = $3"))
        .bind::<Timestamptz, _>(now)
        .bind::<Integer, _>(cap_factor)
        .bind::<SqlUuid, _>(id)
        .execute(conn)
        .await
}
