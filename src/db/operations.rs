//! Queries on `operations`: the resource and the job queue.
//!
//! States (the `state` column, `domain::OperationState`): queued → running →
//! (planned | applying) → succeeded | failed | cancelled; `cancelling` while
//! a running job winds down. A worker claims a job with `FOR UPDATE SKIP LOCKED`, holds it with a
//! heartbeat and, if it dies, another worker reclaims the job once the
//! heartbeat is older than the stale interval. One user's jobs run one at a
//! time (so two operations on overlapping folders can never run together);
//! an advisory lock per user makes that hold between concurrent claimers.
//!
//! The queue is fair between users ([`claim`]): users take turns, round
//! robin. A free worker serves the user whose last job *started* longest ago
//! (a user who never had one first), with that user's oldest job; a user's
//! own jobs keep their creation order. So once a job is at the head of its
//! user's queue (its user's earlier jobs done), no other user starts more
//! than one job before it, however many they queued and however early:
//! a user who submits ten operations delays another user's one by at most
//! one of them. A job that already started — reclaimed from a dead worker,
//! handed back at shutdown, or queued again by ApplyOperation after its dry
//! run — goes before every job that has not: it continues the turn its user
//! already had, and a reclaim never waits behind the queue. The claim reads
//! a few index entries per waiting user (migration 000056), not every queued
//! job.

use std::{sync::LazyLock, time::Duration};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    enums,
    models::{CounterColumns, NewOperation, Operation},
};
use crate::{
    domain::{Counters, OperationKind, OperationState, Phase},
    schema::operations,
};

pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &NewOperation<'_>,
) -> QueryResult<Operation> {
    diesel::insert_into(operations::table)
        .values(new)
        .returning(Operation::as_returning())
        .get_result(conn)
        .await
}

/// An operation of this user (None also when it belongs to someone else).
pub async fn find_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Operation>> {
    operations::table
        .find(id)
        .filter(operations::user_id.eq(user_id))
        .select(Operation::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user's operation together with the id of the undo operation created
/// for it (`undone_by`; the newest, like [`find_undo_of`]): one round trip
/// for GetOperation instead of two.
pub async fn find_for_user_with_undo(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<(Operation, Option<Uuid>)>> {
    use diesel::sql_types::{Nullable, Uuid as SqlUuid};
    // Served by operations_undo_of_idx (migration 000013).
    let undone_by = diesel::dsl::sql::<Nullable<SqlUuid>>(
        "(SELECT u.id FROM operations u WHERE u.undo_of = operations.id \
         ORDER BY u.created_at DESC LIMIT 1)",
    );
    operations::table
        .find(id)
        .filter(operations::user_id.eq(user_id))
        .select((Operation::as_select(), undone_by))
        .first(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Operation>> {
    operations::table
        .find(id)
        .select(Operation::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_request_id(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    request_id: &str,
) -> QueryResult<Option<Operation>> {
    operations::table
        .filter(operations::user_id.eq(user_id))
        .filter(operations::request_id.eq(request_id))
        .select(Operation::as_select())
        .first(conn)
        .await
        .optional()
}

/// Whether `error` is the insert of a request_id this user already used: two
/// copies of one request racing. The loser reads the winner's row
/// ([`find_by_request_id`]) instead of failing.
pub fn is_request_id_taken(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(error, Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
        if info.constraint_name() == Some("operations_user_request_id_key"))
}

/// What [`insert_undo`] found.
#[derive(Debug)]
pub enum UndoInsert {
    /// The new undo operation, queued.
    Created(Operation),
    /// The target already has an undo that did not fail; nothing inserted.
    AlreadyUndone(Operation),
}

/// Queues an undo of `target` unless it already has one that did not fail.
/// The check and the insert run under a row lock on the target, so two
/// concurrent UndoOperation calls (a client's retry racing its first try,
/// two tabs) create one undo, never two.
pub async fn insert_undo(
    conn: &mut AsyncPgConnection,
    target: &Operation,
    request_id: Option<&str>,
) -> QueryResult<UndoInsert> {
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        operations::table
            .find(target.id)
            .select(operations::id)
            .for_update()
            .first::<Uuid>(conn)
            .await?;
        if let Some(existing) = find_undo_of(conn, target.id).await?
            && existing.state != OperationState::Failed
        {
            return Ok(UndoInsert::AlreadyUndone(existing));
        }
        insert(conn, &NewOperation::undo(target, request_id))
            .await
            .map(UndoInsert::Created)
    })
    .await
}

/// The undo operation created for `target`, if any.
pub async fn find_undo_of(
    conn: &mut AsyncPgConnection,
    target: Uuid,
) -> QueryResult<Option<Operation>> {
    operations::table
        .filter(operations::undo_of.eq(target))
        .select(Operation::as_select())
        .order(operations::created_at.desc())
        .first(conn)
        .await
        .optional()
}

/// A page of a user's operations, newest first.
/// ListOperations' filters (None: any).
#[derive(Debug, Default, Clone, Copy)]
pub struct ListFilter {
    pub state: Option<OperationState>,
    pub kind: Option<OperationKind>,
    /// Only the runs of this automation.
    pub automation: Option<Uuid>,
}

pub async fn list_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    filter: ListFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<Operation>> {
    let mut query = operations::table
        .filter(operations::user_id.eq(user_id))
        .select(Operation::as_select())
        .order((operations::created_at.desc(), operations::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(state) = filter.state {
        query = query.filter(operations::state.eq(state));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(operations::kind.eq(kind));
    }
    if let Some(automation) = filter.automation {
        query = query.filter(operations::automation_id.eq(automation));
    }
    if let Some((created_at, id)) = after {
        query = query.filter(
            operations::created_at
                .lt(created_at)
                .or(operations::created_at
                    .eq(created_at)
                    .and(operations::id.lt(id))),
        );
    }
    query.load(conn).await
}

#[derive(diesel::QueryableByName)]
struct Candidate {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    user_id: Uuid,
}

#[derive(diesel::QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ok: bool,
}

/// The candidate of [`claim`]: the fair turn (see the module doc). The
/// runnable states are written into the text, not bound: only then can the
/// planner match them against the predicates of the partial indexes of
/// migration 000056 and walk the few unfinished rows instead of every
/// operation. It walks the waiting users, not the queued jobs: a skip scan
/// from one user to the next on `operations_pending_user_idx`, the head of
/// each one's queue from the same index, the busy check on
/// `operations_held_idx` and the turn on `operations_user_started_idx` — a
/// few index probes per waiting user, however many jobs each queued.
static CLAIM_CANDIDATE: LazyLock<String> = LazyLock::new(|| {
    let runnable = enums::list(OperationState::RUNNABLE);
    // Unclaimed (new, handed back, or applying after ApplyOperation) or held
    // by a dead worker.
    let claimable = |t: &str| {
        format!(
            "{t}.state IN {runnable}
               AND ({t}.worker_id IS NULL
                    OR {t}.heartbeat_at IS NULL
                    OR {t}.heartbeat_at < now() - make_interval(secs => $1::bigint / 1000.0))"
        )
    };
    let (head, row) = (claimable("h"), claimable("o"));
    format!(
        "WITH RECURSIVE waiting (user_id) AS (
             -- every user with a runnable job, one index probe each
             (SELECT p.user_id FROM operations p WHERE p.state IN {runnable}
              ORDER BY p.user_id LIMIT 1)
             UNION ALL
             SELECT (SELECT p.user_id FROM operations p
                     WHERE p.state IN {runnable} AND p.user_id > w.user_id
                     ORDER BY p.user_id LIMIT 1)
             FROM waiting w WHERE w.user_id IS NOT NULL
         )
         SELECT o.id, o.user_id
         FROM waiting w
         -- the head of each user's queue: one user's jobs run in creation order
         CROSS JOIN LATERAL (
             SELECT h.id FROM operations h
             WHERE h.user_id = w.user_id AND {head}
             ORDER BY h.created_at LIMIT 1) head
         JOIN operations o ON o.id = head.id
         -- again on the row itself, which FOR UPDATE re-checks if a
         -- concurrent claim changed it
         WHERE {row}
           AND NOT EXISTS (
               SELECT 1 FROM operations a
               WHERE a.user_id = o.user_id AND a.id <> o.id
                 AND a.state IN {runnable}
                 AND a.worker_id IS NOT NULL
                 AND a.heartbeat_at >= now() - make_interval(secs => $1::bigint / 1000.0))
         ORDER BY
           -- a job that already started first (reclaimed, handed back, applied)
           o.started_at IS NULL,
           -- then the user whose last job started longest ago (never: first)
           (SELECT max(s.started_at) FROM operations s WHERE s.user_id = o.user_id) NULLS FIRST,
           o.created_at
         FOR UPDATE OF o SKIP LOCKED
         LIMIT 1"
    )
});

/// The re-check of [`claim`] under the user's lock.
static CLAIM_BUSY: LazyLock<String> = LazyLock::new(|| {
    let runnable = enums::list(OperationState::RUNNABLE);
    format!(
        "SELECT EXISTS (SELECT 1 FROM operations a
                WHERE a.user_id = $1 AND a.id <> $2
                  AND a.state IN {runnable}
                  AND a.worker_id IS NOT NULL
                  AND a.heartbeat_at >= now() - make_interval(secs => $3::bigint / 1000.0)) AS ok"
    )
});

/// The job queue as the metrics show it ([`queue_stats`]).
#[derive(Debug, diesel::QueryableByName)]
pub struct QueueStats {
    /// Runnable jobs no worker holds (new, handed back, or applying after
    /// ApplyOperation): they wait for a worker.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub waiting: i64,
    /// Seconds since the oldest waiting job last changed (was created,
    /// applied or handed back); 0 when none waits.
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub oldest_wait_seconds: f64,
    /// Runnable jobs held by a worker whose heartbeat is older than the
    /// stale limit: that worker died or hangs, and the job waits to be
    /// reclaimed.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub stalled: i64,
}

static QUEUE_STATS: LazyLock<String> = LazyLock::new(|| {
    let runnable = enums::list(OperationState::RUNNABLE);
    format!(
        "SELECT count(*) FILTER (WHERE worker_id IS NULL) AS waiting,
                coalesce(extract(epoch FROM now() - min(updated_at) FILTER (WHERE worker_id IS NULL)),
                         0)::float8 AS oldest_wait_seconds,
                count(*) FILTER (WHERE worker_id IS NOT NULL
                                   AND (heartbeat_at IS NULL
                                        OR heartbeat_at < now() - make_interval(secs => $1::bigint / 1000.0)))
                  AS stalled
           FROM operations WHERE state IN {runnable}"
    )
});

/// How many jobs wait, for how long, and how many are stalled (all users).
pub async fn queue_stats(
    conn: &mut AsyncPgConnection,
    stale_after: Duration,
) -> QueryResult<QueueStats> {
    diesel::sql_query(QUEUE_STATS.as_str())
        .bind::<diesel::sql_types::BigInt, _>(stale_after.as_millis() as i64)
        .get_result(conn)
        .await
}

/// Claimed rows this version could not read, failed in one call of
/// [`claim`] before it gives up until the next one.
const UNREADABLE_PER_CLAIM: usize = 8;

/// Claims the next runnable job in the fair order of the module doc: one no
/// worker holds (new, handed back at shutdown, or applying after
/// ApplyOperation), or one whose worker stopped heart-beating `stale_after`
/// ago (recovery) — never a job another live worker holds, and never a
/// second job of a user who already has one held. Jobs that already started
/// first, then users round robin by the start of their last job, then a
/// user's jobs oldest first. Returns the claimed row, now held by
/// `worker_id`; its `started_at` is the first claim's and stays.
///
/// A claimed row this version cannot read (a word it does not know, written
/// by a newer version or damaged) fails as a job, with the reason as its
/// error, and the next one is claimed: left runnable, it would fail every
/// claim while every job behind it waits.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    worker_id: &str,
    stale_after: Duration,
) -> QueryResult<Option<Operation>> {
    for _ in 0..UNREADABLE_PER_CLAIM {
        let Some(id) = claim_id(conn, worker_id, stale_after).await? else {
            return Ok(None);
        };
        match find(conn, id).await {
            Err(diesel::result::Error::DeserializationError(error)) => {
                // The cause ("unknown duplicate policy …") is the source of
                // diesel's "error deserializing field …".
                let mut reason = error.to_string();
                let mut source = error.source();
                while let Some(cause) = source {
                    reason = format!("{reason}: {cause}");
                    source = cause.source();
                }
                tracing::error!(operation = %id, error = %reason, "a claimed job cannot be read; it fails");
                fail_unreadable(conn, id, worker_id, &reason).await?;
            }
            found => return found,
        }
    }
    Ok(None)
}

/// Fails a claimed job whose row cannot be read (see [`claim`]), without
/// reading it.
async fn fail_unreadable(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    holder: &str,
    error: &str,
) -> QueryResult<usize> {
    let now = Utc::now();
    diesel::update(
        operations::table
            .find(id)
            .filter(operations::worker_id.eq(holder)),
    )
    .set((
        operations::state.eq(OperationState::Failed),
        operations::error.eq(format!(
            "this version of the service cannot read the operation: {error}"
        )),
        operations::updated_at.eq(now),
        operations::finished_at.eq(now),
        operations::worker_id.eq(None::<String>),
    ))
    .execute(conn)
    .await
}

/// The claim itself (see [`claim`]): the id of the job now held by
/// `worker_id`.
async fn claim_id(
    conn: &mut AsyncPgConnection,
    worker_id: &str,
    stale_after: Duration,
) -> QueryResult<Option<Uuid>> {
    let stale_ms = stale_after.as_millis() as i64;
    let worker_id = worker_id.to_string();
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        let candidate = diesel::sql_query(CLAIM_CANDIDATE.as_str())
            .bind::<diesel::sql_types::BigInt, _>(stale_ms)
            .get_result::<Candidate>(conn)
            .await
            .optional()?;
        let Some(candidate) = candidate else {
            return Ok(None);
        };
        // Serialize claimers of the same user, then re-check under the lock.
        let locked = diesel::sql_query(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1::text, 7301)) AS ok",
        )
        .bind::<diesel::sql_types::Text, _>(candidate.user_id.to_string())
        .get_result::<Flag>(conn)
        .await?;
        if !locked.ok {
            return Ok(None);
        }
        let busy = diesel::sql_query(CLAIM_BUSY.as_str())
            .bind::<diesel::sql_types::Uuid, _>(candidate.user_id)
            .bind::<diesel::sql_types::Uuid, _>(candidate.id)
            .bind::<diesel::sql_types::BigInt, _>(stale_ms)
            .get_result::<Flag>(conn)
            .await?;
        if busy.ok {
            return Ok(None);
        }
        let now = Utc::now();
        let claimed = diesel::update(operations::table.find(candidate.id))
            .set((
                operations::worker_id.eq(&worker_id),
                operations::heartbeat_at.eq(now),
                operations::updated_at.eq(now),
                operations::started_at.eq(diesel::dsl::sql::<
                    diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
                >("coalesce(started_at, now())")),
            ))
            .returning(operations::id)
            .get_result(conn)
            .await?;
        Ok(Some(claimed))
    })
    .await
}

/// Renews the heartbeat while `worker_id` still holds the job; returns
/// (still held, cancel requested).
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker_id: &str,
) -> QueryResult<(bool, bool)> {
    let row: Option<bool> = diesel::update(
        operations::table
            .find(id)
            .filter(operations::worker_id.eq(worker_id)),
    )
    .set(operations::heartbeat_at.eq(Utc::now()))
    .returning(operations::cancel_requested)
    .get_result(conn)
    .await
    .optional()?;
    Ok(match row {
        Some(cancel) => (true, cancel),
        None => (false, false),
    })
}

/// Sets state, phase and the phase timings (and the finish time for final
/// states), only while `holder` still holds the job. None when it no longer
/// does: a worker whose claim went stale and was taken over must not change
/// the state of the job its new holder is running (nor end it). Every write
/// a worker makes to its job's row is fenced like this ([`fail`],
/// [`release`], [`set_counters`], [`set_phase_seconds`],
/// [`set_applied_cursor`], [`set_rule_set_version`],
/// `file_records::record_batch`).
pub async fn set_state(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    holder: &str,
    state: OperationState,
    phase: Option<Phase>,
    phase_seconds: &serde_json::Value,
) -> QueryResult<Option<Operation>> {
    use diesel::sql_types::{Bool, Text};
    let now = Utc::now();
    let finished = state.is_at_rest();
    // While a job is still working, a pending cancel keeps showing as
    // `cancelling` (the worker stops at its next file).
    let state_sql = diesel::dsl::sql::<Text>("CASE WHEN ")
        .bind::<Bool, _>(state.is_active())
        .sql(" AND cancel_requested THEN ")
        .bind::<Text, _>(OperationState::Cancelling)
        .sql(" ELSE ")
        .bind::<Text, _>(state)
        .sql(" END");
    diesel::update(held(id, holder))
        .set((
            operations::state.eq(state_sql),
            operations::phase.eq(phase),
            operations::phase_seconds.eq(phase_seconds),
            operations::updated_at.eq(now),
            operations::finished_at.eq(finished.then_some(now)),
        ))
        .returning(Operation::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The row of job `id` while `holder` holds it (the fence of every
/// worker's write; see [`set_state`]).
fn held(
    id: Uuid,
    holder: &str,
) -> diesel::dsl::Filter<
    diesel::dsl::Find<operations::table, Uuid>,
    diesel::dsl::Eq<operations::worker_id, &str>,
> {
    operations::table
        .find(id)
        .filter(operations::worker_id.eq(holder))
}

/// Writes the phase timings alone: not a change of the operation's state or
/// journal, so `updated_at` (the version of its stored report and counts,
/// `db::memos`) stays as it is.
pub async fn set_phase_seconds(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    holder: &str,
    phase_seconds: &serde_json::Value,
) -> QueryResult<usize> {
    diesel::update(held(id, holder))
        .set(operations::phase_seconds.eq(phase_seconds))
        .execute(conn)
        .await
}

/// Records the bytes of file content the hash phase read (a plan redone
/// after a crash overwrites it). Like the timings, not a change of state.
pub async fn set_bytes_hashed(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    holder: &str,
    bytes: i64,
) -> QueryResult<usize> {
    diesel::update(held(id, holder))
        .set(operations::bytes_hashed.eq(bytes))
        .execute(conn)
        .await
}

/// Persists a working operation's counters. Those of an operation at rest
/// are final and left alone, `updated_at` with them: a heartbeat that fires
/// just after the job's last state change must not move the version its
/// stored report and counts were computed for (`db::memos`). Only while
/// `holder` holds the job.
pub async fn set_counters(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    holder: &str,
    counters: &Counters,
) -> QueryResult<usize> {
    diesel::update(held(id, holder).filter(operations::state.ne_all(OperationState::AT_REST)))
        .set((
            CounterColumns::from(*counters),
            operations::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
}

/// Marks the job failed, only while `holder` still holds its claim: a
/// worker that lost the claim (its heartbeat went stale and another worker
/// took the job over) must not fail the job its new holder is running.
/// None when it no longer held it.
pub async fn fail(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    holder: &str,
    error: &str,
) -> QueryResult<Option<Operation>> {
    let now = Utc::now();
    diesel::update(
        operations::table
            .find(id)
            .filter(operations::worker_id.eq(holder)),
    )
    .set((
        operations::state.eq(OperationState::Failed),
        operations::error.eq(error),
        operations::updated_at.eq(now),
        operations::finished_at.eq(now),
        operations::worker_id.eq(None::<String>),
    ))
    .returning(Operation::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Releases the job (it no longer needs a worker), if `holder` still holds
/// it. A worker whose heartbeat went stale may have lost the job to another
/// one; releasing by id alone would clear the new holder's claim and let a
/// third worker run the job beside it.
pub async fn release(conn: &mut AsyncPgConnection, id: Uuid, holder: &str) -> QueryResult<usize> {
    diesel::update(
        operations::table
            .find(id)
            .filter(operations::worker_id.eq(holder)),
    )
    .set(operations::worker_id.eq(None::<String>))
    .execute(conn)
    .await
}

/// Asks a job to stop. Queued or planned jobs are cancelled at once; active
/// ones move to `cancelling` and their worker stops at the next file.
/// Returns the operation as it is now.
pub async fn request_cancel(
    conn: &mut AsyncPgConnection,
    op: &Operation,
) -> QueryResult<Operation> {
    use OperationState as S;
    let now = Utc::now();
    match op.state {
        S::Queued | S::Planned => {
            diesel::update(
                operations::table
                    .find(op.id)
                    .filter(operations::state.eq(op.state)),
            )
            .set((
                operations::state.eq(S::Cancelled),
                operations::cancel_requested.eq(true),
                operations::updated_at.eq(now),
                operations::finished_at.eq(now),
            ))
            .execute(conn)
            .await?;
        }
        S::Running | S::Applying => {
            diesel::update(
                operations::table
                    .find(op.id)
                    .filter(operations::state.eq(op.state)),
            )
            .set((
                operations::state.eq(S::Cancelling),
                operations::cancel_requested.eq(true),
                operations::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        }
        // Already winding down, or ended: nothing to ask.
        S::Cancelling | S::Succeeded | S::Failed | S::Cancelled => {}
    }
    operations::table
        .find(op.id)
        .select(Operation::as_select())
        .first(conn)
        .await
}

/// Queues a planned (dry-run) operation for applying.
pub async fn queue_apply(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Operation>> {
    diesel::update(
        operations::table
            .find(id)
            .filter(operations::state.eq(OperationState::Planned)),
    )
    .set((
        operations::state.eq(OperationState::Queued),
        operations::phase.eq(Phase::Apply),
        operations::finished_at.eq(None::<DateTime<Utc>>),
        operations::updated_at.eq(Utc::now()),
    ))
    .returning(Operation::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// The last seq whose outcome an apply has recorded (`set_applied_cursor`).
pub async fn applied_cursor(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<i64> {
    operations::table
        .find(id)
        .select(operations::applied_cursor)
        .first(conn)
        .await
}

/// Only while `holder` holds the job.
pub async fn set_applied_cursor(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    holder: &str,
    cursor: i64,
) -> QueryResult<usize> {
    diesel::update(held(id, holder))
        .set(operations::applied_cursor.eq(cursor))
        .execute(conn)
        .await
}

/// Records the rule set version an operation's plan uses (None: none),
/// only while `holder` holds the job.
pub async fn set_rule_set_version(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    holder: &str,
    version: Option<i64>,
) -> QueryResult<usize> {
    diesel::update(held(id, holder))
        .set(operations::rule_set_version.eq(version))
        .execute(conn)
        .await
}

/// Hands a job back to the queue at once (graceful shutdown mid-job): the
/// next worker to look reclaims it without waiting for the heartbeat to go
/// stale.
pub async fn hand_back(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker_id: &str,
) -> QueryResult<usize> {
    diesel::update(
        operations::table
            .find(id)
            .filter(operations::worker_id.eq(worker_id)),
    )
    .set((
        operations::worker_id.eq(None::<String>),
        operations::heartbeat_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
    .await
}
