//! Automations: operations that start by themselves (issue 21;
//! docs/triggers.md has the whole story and how it is tested).
//!
//! Every worker process (`fileorg serve` with WORKERS > 0, `fileorg
//! worker`) runs [`run`], the scheduler: every SCHEDULER_POLL_MS it fires
//! the automations that are due. The state lives in Postgres only
//! (`automations.next_run_at`), so processes need not know each other:
//!
//! - **Exactly once per tick.** One transaction locks the due rows with
//!   `FOR UPDATE SKIP LOCKED` (`db::automations::lock_due`), creates each
//!   run's operation through `jobs::submit::create_operation` (the path
//!   CreateOperation takes) and moves `next_run_at` to the next tick, then
//!   commits. Another process skips locked rows and, once the commit is
//!   visible, finds them no longer due. A process killed before the commit
//!   leaves no operation and the row still due; after it, the operation is
//!   an ordinary queued job that any worker reclaims.
//! - **Catch-up.** The next tick is computed from the time of firing, not
//!   from the missed tick: an automation whose ticks passed while no process
//!   ran fires once when the first process starts, then follows its
//!   schedule.
//! - **No overlap.** While the automation's last operation is not at rest
//!   (queued, running, applying), a schedule's tick is skipped (the next tick
//!   is set) and arrivals stay pending until it ends.
//! - **Arrivals.** [`files_arrived`] is the one entry point for every way
//!   files enter a user's storage through the API: it makes each arrival
//!   automation whose folder holds the path due a quiet period later (the
//!   quiet period restarts with every arrival, capped at
//!   `QuietPeriod::CAP_FACTOR` periods after the first), so a burst makes one
//!   operation.
//! - **Clock.** "Now" comes from `AppState::clock` (`jobs::clock`): the
//!   system clock, or in tests the instant in SCHEDULER_CLOCK_FILE.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::submit::{self, Origin};
use crate::{
    db::{self, automations::Automation},
    domain::{OperationRequest, QuietPeriod, Schedule, TriggerKind},
    error::{AppError, AppResult},
    state::AppState,
    storage::UserPath,
};

/// Due automations one transaction fires at most.
const BATCH: i64 = 32;

/// The scheduler of this process; ends when shutdown begins.
pub async fn run(state: AppState) {
    let mut shutdown = state.shutting_down.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        match fire_due(&state).await {
            Ok(0) => {}
            Ok(fired) => {
                tracing::info!(fired, "automations fired");
                for _ in 0..fired {
                    state.jobs_queued.notify_one();
                }
            }
            Err(error) => tracing::warn!(%error, "firing automations failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config.scheduler_poll) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Fires what is due now; returns how many operations were created.
pub async fn fire_due(state: &AppState) -> AppResult<usize> {
    let now = state.clock.now();
    let mut conn = state.db.get().await?;
    conn.transaction::<_, AppError, _>(async move |conn| {
        let due = db::automations::lock_due(conn, now, BATCH).await?;
        let mut fired = 0;
        for row in &due {
            if fire_one(state, conn, row, now).await? {
                fired += 1;
            }
        }
        Ok(fired)
    })
    .await
}

/// Fires one locked, due automation (see the module docs); true when it
/// created an operation.
async fn fire_one(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    row: &Automation,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let schedule = match schedule_of(row) {
        Ok(schedule) => schedule,
        Err(error) => {
            // Stored by this version only after parsing; a row that no longer
            // parses (a time zone dropped from the database) stops firing.
            tracing::error!(automation = %row.id, %error, "an automation's schedule no longer parses; it will not fire");
            db::automations::reschedule(conn, row.id, None, true).await?;
            return Ok(false);
        }
    };
    let next = schedule.as_ref().and_then(|s| s.next_after(now));
    if let Some(last) = row.last_operation_id
        && let Some(op) = db::operations::find(conn, last).await?
        && !op.state.is_at_rest()
    {
        if schedule.is_some() {
            tracing::info!(automation = %row.id, operation = %op.id, "previous run still going; this tick is skipped");
            db::automations::reschedule(conn, row.id, next, false).await?;
        }
        // Arrivals stay due and pending until the run ends.
        return Ok(false);
    }
    let origin = Origin {
        trigger: row.trigger_kind,
        automation_id: Some(row.id),
    };
    match submit::create_operation(state, conn, row.user_id, request_of(row), None, origin).await {
        Ok(op) => {
            db::automations::record_run(conn, row.id, now, op.id, next).await?;
            crate::infra::observability::automation_fired(row.trigger_kind);
            tracing::info!(automation = %row.id, operation = %op.id, trigger = %row.trigger_kind, "automation fired");
            Ok(true)
        }
        // The request no longer holds (its folder was removed, …): this run
        // is dropped, the automation stays.
        Err(
            error @ (AppError::InvalidArgument { .. }
            | AppError::FailedPrecondition { .. }
            | AppError::NotFound { .. }),
        ) => {
            tracing::warn!(automation = %row.id, %error, "an automation's run could not be created; skipped");
            db::automations::reschedule(conn, row.id, next, true).await?;
            db::automations::record_failed_start(
                conn,
                row.id,
                &format!("the run at {} could not start: {error}", now.to_rfc3339()),
            )
            .await?;
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// An automation's operation ended (`error`: why it failed; None: it
/// succeeded, which clears the automation's `last_error`). Best effort: the
/// operation's own state is what counts, this only shows it on the
/// automation.
pub async fn run_ended(state: &AppState, operation: &db::models::Operation, error: Option<&str>) {
    let Some(automation_id) = operation.automation_id else {
        return;
    };
    let error = error.map(|e| format!("operation {} failed: {e}", operation.id));
    let recorded = match state.db.get().await {
        Ok(mut conn) => db::automations::record_run_ended(
            &mut conn,
            automation_id,
            operation.id,
            error.as_deref(),
        )
        .await
        .map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = recorded {
        tracing::warn!(automation = %automation_id, operation = %operation.id, error = %e, "the automation's last error was not recorded");
    }
}

/// The schedule of a schedule automation (None for the other kinds).
pub fn schedule_of(row: &Automation) -> Result<Option<Schedule>, String> {
    match (row.trigger_kind, &row.cron) {
        (TriggerKind::Schedule, Some(cron)) => {
            Schedule::parse(cron, row.time_zone.as_deref().unwrap_or_default())
                .map(Some)
                .map_err(|e| e.to_string())
        }
        (TriggerKind::Schedule, None) => Err("a schedule without a cron expression".into()),
        (TriggerKind::Arrival | TriggerKind::WatchedFolder | TriggerKind::Manual, _) => Ok(None),
    }
}

/// The operation an automation creates, as a request (checked again by
/// `OperationSpec::parse` at every run, like any request).
fn request_of(row: &Automation) -> OperationRequest {
    let options = row.options.clone();
    OperationRequest {
        kind: row.kind,
        source_path: row.source_path.clone(),
        destination_path: row.destination_path.clone(),
        dry_run: row.dry_run,
        layout_template: options.layout_template,
        duplicate_policy: options.duplicate_policy,
        conflict_policy: options.conflict_policy,
        include_globs: options.include_globs,
        exclude_globs: options.exclude_globs,
        hash_all_files: options.hash_all_files,
        remove_empty_dirs: options.remove_empty_dirs,
        apply_rules: options.apply_rules,
    }
}

/// The cache (`infra::cache`) of a user's arrival folders: which folders
/// their unpaused arrival automations watch. Every automation write of the
/// user drops it ([`automations_changed`]).
const ARRIVAL_CACHE: &str = "arrival_folders";

/// A user's arrival folders, as cached.
#[derive(Clone, PartialEq, prost::Message)]
struct ArrivalFolders {
    #[prost(string, repeated, tag = "1")]
    folders: Vec<String>,
}

/// After any write of `user_id`'s automations (create, update, delete,
/// pause, resume): uploads must see the new set of arrival folders.
pub async fn automations_changed(state: &AppState, user_id: Uuid) {
    state
        .cache
        .invalidate(&[(ARRIVAL_CACHE, user_id.to_string())])
        .await;
}

/// Whether an arrival automation of `user_id` watches a folder holding
/// `path`. Answered from the cache when it can: an upload of a user without
/// arrival automations costs no database write, and at most one read per
/// cache lifetime. In the process that changed the automations the answer
/// is exact at once; another process sees the change within the cache's
/// in-process TTL (`CACHE_LOCAL_TTL_MS`, 1 s), as for every cached read.
async fn watched_by_arrivals(
    state: &AppState,
    user_id: Uuid,
    path: &UserPath,
) -> anyhow::Result<bool> {
    let folders = match state
        .cache
        .get::<ArrivalFolders>(ARRIVAL_CACHE, user_id)
        .await
    {
        Some(hit) => hit,
        None => {
            let mut conn = state.db.get().await?;
            let folders = ArrivalFolders {
                folders: db::automations::arrival_folders(&mut conn, user_id).await?,
            };
            state
                .cache
                .put(ARRIVAL_CACHE, user_id, &folders, state.cache.ttls.principal)
                .await;
            folders
        }
    };
    let path = path.as_str();
    // The rule of `db::automations::mark_changed`, which the write applies.
    Ok(folders.folders.iter().any(|folder| {
        folder.is_empty()
            || path == folder
            || path
                .strip_prefix(folder.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }))
}

/// Files arrived under `path` (a file, or a folder such as an archive's
/// extraction) in `user_id`'s storage through the API. Every path that
/// stores files for a user calls this once the files are in place; the
/// arrival automations whose folder holds `path` become due after their
/// quiet period. Never fails the caller: the files are stored, and an
/// automation that misses them still organizes them at its next run.
///
/// Nothing is written unless an arrival automation watches `path`
/// ([`watched_by_arrivals`], usually from the cache).
pub async fn files_arrived(state: &AppState, user_id: Uuid, path: &UserPath) {
    match watched_by_arrivals(state, user_id, path).await {
        Ok(true) => {}
        Ok(false) => return,
        // Unknown: write, as before the check.
        Err(error) => tracing::warn!(%error, %path, "arrival folders unknown; marking anyway"),
    }
    let now = state.clock.now();
    let marked = match state.db.get().await {
        Ok(mut conn) => {
            db::automations::mark_changed(
                &mut conn,
                user_id,
                TriggerKind::Arrival,
                path.as_str(),
                now,
                QuietPeriod::CAP_FACTOR as i32,
            )
            .await
        }
        Err(error) => {
            tracing::warn!(%error, %path, "arrival not recorded for automations");
            return;
        }
    };
    if let Err(error) = marked {
        tracing::warn!(%error, %path, "arrival not recorded for automations");
    }
}
