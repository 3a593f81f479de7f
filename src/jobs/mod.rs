//! Operations as jobs: workers claim queued operations from Postgres, run the
//! engine, persist progress and publish snapshots.
//!
//! Any number of workers, in `fileorg serve` (WORKERS) or in separate
//! `fileorg worker` processes, share the queue: `db::operations::claim` takes
//! the next job with `FOR UPDATE SKIP LOCKED`, fairly between users — round
//! robin by the start of each user's last job, so a user with many queued
//! operations delays another user's by at most one of them while every
//! worker is busy; a job that already started (a dead worker's, one handed
//! back, an apply after its dry run) goes first. While it runs, a
//! heartbeat task renews the claim, persists the counters and picks up
//! cancellation; a publisher task sends a snapshot to watchers ~10 times a
//! second. A worker that dies stops heart-beating; once the heartbeat is
//! older than JOB_STALE_AFTER_MS another worker reclaims the job and the
//! engine reconciles the journal against the disk before going on
//! (see `organize::apply` and `undo`).
//!
//! The same processes run the automations' scheduler (`automations`, with
//! the watched folders' watcher `watch`): a due automation creates its
//! operation through `submit::create_operation`, CreateOperation's path, and
//! that operation is then a job like any other (docs/triggers.md).
//!
//! A job that fails because the database cannot be reached is not marked
//! failed: its moves may be done on disk but not yet recorded. The worker
//! hands it back (or lets the claim go stale while the database is away) and
//! the next claim reconciles and finishes it (`error::is_database_unreachable`;
//! tested by `tests/api/outages.rs`).

pub(crate) mod automations;
mod batches;
pub mod clock;
mod context;
mod hashing;
pub(crate) mod hub;
pub(crate) mod organize;
pub(crate) mod search_names;
pub(crate) mod submit;
pub(crate) mod timings;
pub(crate) mod undo;
pub(crate) mod watch;

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    db::{self, models::Operation},
    domain::{OperationKind, OperationState, Phase, Snapshot},
    engine::progress::Progress,
    state::AppState,
};
pub use context::{Interrupted, JobContext};

/// Starts `count` workers, and with them the task that indexes the search
/// names of finished jobs (`search_names`), the automations' scheduler
/// (`automations`) and the watched folders' watcher (`watch`); they stop
/// when shutdown begins.
pub fn spawn_workers(state: &AppState, count: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let process = format!("{}-{}", hostname(), std::process::id());
    let mut tasks: Vec<_> = (0..count)
        .map(|n| {
            let state = state.clone();
            let worker_id = format!(
                "{process}-{n}-{}",
                &Uuid::new_v4().simple().to_string()[..6]
            );
            tokio::spawn(async move { worker_loop(state, worker_id).await })
        })
        .collect();
    if count > 0 {
        tasks.push(tokio::spawn(search_names::run(state.clone())));
        tasks.push(tokio::spawn(automations::run(state.clone())));
        tasks.push(tokio::spawn(watch::run(state.clone())));
    }
    tasks
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

async fn worker_loop(state: AppState, worker_id: String) {
    tracing::info!(worker = %worker_id, "worker started");
    let mut shutdown = state.shutting_down.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let claimed = match state.db.get().await {
            Ok(mut conn) => {
                db::operations::claim(&mut conn, &worker_id, state.config.job_stale_after).await
            }
            Err(error) => {
                tracing::warn!(%error, "worker cannot reach the database");
                Ok(None)
            }
        };
        match claimed {
            Ok(Some(op)) => {
                let id = op.id;
                let user_id = op.user_id;
                let kind = op.kind;
                tracing::info!(operation = %id, kind = %op.kind, state = %op.state, worker = %worker_id, "claimed job");
                if let Err(error) = run_job(&state, op, &worker_id).await {
                    if crate::error::is_database_unreachable(&error) {
                        // Not the job's fault: failing it would strand the
                        // moves of the current batch (done on disk, not yet
                        // recorded). Hand it back so that it resumes and is
                        // reconciled against the disk as soon as the
                        // database answers; if it is still away, the claim
                        // simply goes stale.
                        tracing::warn!(operation = %id, error = format!("{error:#}"), "database unreachable during the job; it will resume");
                        if let Ok(mut conn) = state.db.get().await {
                            let _ = db::operations::hand_back(&mut conn, id, &worker_id).await;
                        }
                        state.progress.finish(id);
                        continue;
                    }
                    tracing::error!(operation = %id, error = format!("{error:#}"), "job failed");
                    crate::infra::observability::operation_finished(kind, OperationState::Failed);
                    let message = format!("{error:#}");
                    if let Ok(mut conn) = state.db.get().await {
                        match db::operations::fail(&mut conn, id, &worker_id, &message).await {
                            Ok(None) => {
                                tracing::warn!(operation = %id, "the failed job had been taken over by another worker; left to it");
                            }
                            Ok(Some(op)) => {
                                drop(conn);
                                automations::run_ended(&state, &op, Some(&message)).await;
                            }
                            Err(_) => {}
                        }
                    }
                    state.cache.operation_changed(user_id, id).await;
                }
                state.progress.finish(id);
                state.jobs_finished.notify_one();
                crate::engine::release_freed_memory();
                continue;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "claiming a job failed"),
        }
        tokio::select! {
            _ = state.jobs_queued.notified() => {}
            _ = tokio::time::sleep(state.config.job_poll) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!(worker = %worker_id, "worker stopped");
}

async fn run_job(state: &AppState, op: Operation, worker_id: &str) -> anyhow::Result<()> {
    let _active = crate::infra::observability::ActiveOperation::start();
    let progress = Arc::new(Progress::from_counters(&op.counters()));
    if op.cancel_requested {
        progress.cancel();
    }
    let ctx = Arc::new(JobContext {
        state: state.clone(),
        operation: op.clone(),
        worker_id: worker_id.to_string(),
        progress: progress.clone(),
        abandoned: Default::default(),
        phase: Arc::new(std::sync::Mutex::new((op.state, Phase::Scan))),
        timings: std::sync::Mutex::new(timings::PhaseTimings::resume(&op.phase_seconds)),
        moves_counted: op.counters().files_moved.into(),
        trace: crate::infra::otel::JobTrace::start(
            op.id,
            op.kind.as_str(),
            op.trace_parent.as_deref(),
        ),
    });
    state.progress.register(op.id, progress.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let heartbeat = tokio::spawn(heartbeat_loop(ctx.clone(), stop_rx.clone()));
    let publisher = tokio::spawn(publish_loop(ctx.clone(), stop_rx));

    let span = ctx.trace.span().clone();
    let result = async {
        match op.kind {
            OperationKind::Undo => undo::run(&ctx).await,
            OperationKind::Organize | OperationKind::Deduplicate => organize::run(&ctx).await,
        }
    }
    .instrument(span)
    .await;
    let _ = stop_tx.send(true);
    ctx.count_moves();
    state.progress.unregister(op.id);
    let _ = heartbeat.await;
    let _ = publisher.await;
    if state.is_shutting_down()
        && let Ok(mut conn) = state.db.get().await
    {
        let _ = db::operations::hand_back(&mut conn, op.id, worker_id).await;
    }
    // Whether this run brought the job to rest (PLANNED, or a final state).
    let ended_at_rest = ctx.phase.lock().expect("phase lock").0.is_at_rest();
    // A final snapshot from the row, so watchers see the end state.
    if let Ok(mut conn) = state.db.get().await
        && let Ok(Some(row)) = db::operations::find(&mut conn, op.id).await
    {
        // Released also when the row is runnable again: ApplyOperation may
        // have queued the plan between our PLANNED and now, and a job left
        // held by a worker whose heartbeat stopped waits JOB_STALE_AFTER_MS
        // before any worker claims it (`release` touches only a row this
        // worker still holds).
        if row.state.is_at_rest() || ended_at_rest {
            let _ = db::operations::release(&mut conn, op.id, worker_id).await;
        }
        let mut snapshot = row.snapshot();
        snapshot.counters = progress.counters().max_with(snapshot.counters);
        if let Some(redis) = &state.redis {
            hub::publish_redis(redis, &state.config.redis_key_prefix, op.id, &snapshot).await;
        }
        state.progress.publish(op.id, snapshot);
    }
    result
}

/// Renews the claim and persists counters every JOB_HEARTBEAT_MS; picks up
/// cancellation; marks the job abandoned if the claim is lost or shutdown
/// begins.
async fn heartbeat_loop(ctx: Arc<JobContext>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let id = ctx.operation.id;
    let mut shutdown = ctx.state.shutting_down.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ctx.state.config.job_heartbeat) => {}
            _ = stop.changed() => return,
            _ = shutdown.changed() => {
                ctx.abandoned.store(true, Ordering::Relaxed);
                return;
            }
        }
        let Ok(mut conn) = ctx.state.db.get().await else {
            continue;
        };
        match db::operations::heartbeat(&mut conn, id, &ctx.worker_id).await {
            Ok((true, cancel)) => {
                if cancel {
                    ctx.progress.cancel();
                }
                // Progress visible to every process (best effort; batches
                // write the exact counters).
                let _ = db::operations::set_counters(
                    &mut conn,
                    id,
                    &ctx.worker_id,
                    &ctx.progress.counters(),
                )
                .await;
            }
            Ok((false, _)) => {
                tracing::warn!(operation = %id, "lost the claim on this job; stopping");
                ctx.abandoned.store(true, Ordering::Relaxed);
                return;
            }
            Err(error) => tracing::warn!(operation = %id, %error, "heartbeat failed"),
        }
    }
}

/// Publishes a snapshot to this process's watchers ~10 times a second.
async fn publish_loop(ctx: Arc<JobContext>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let started = Instant::now();
    let id = ctx.operation.id;
    loop {
        let (state, phase) = *ctx.phase.lock().expect("phase lock");
        let p = &ctx.progress;
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let done_files = p.done_files.load(Ordering::Relaxed) as f64;
        let done_bytes = p.done_bytes.load(Ordering::Relaxed) as f64;
        let total_files = p.total_files.load(Ordering::Relaxed) as f64;
        let files_per_second = done_files / elapsed;
        let percent = if total_files > 0.0 {
            (100.0 * done_files / total_files).min(100.0)
        } else {
            0.0
        };
        let eta = (files_per_second > 0.0 && total_files > done_files)
            .then(|| Duration::from_secs_f64((total_files - done_files) / files_per_second));
        let snapshot = Snapshot {
            operation_id: id,
            state,
            phase: Some(phase),
            counters: p.counters(),
            current_path: p.current(),
            files_per_second,
            bytes_per_second: done_bytes / elapsed,
            progress_percent: percent,
            eta,
            error: None,
            time: chrono::Utc::now(),
        };
        if let Some(redis) = &ctx.state.redis {
            hub::publish_redis(redis, &ctx.state.config.redis_key_prefix, id, &snapshot).await;
        }
        ctx.state.progress.publish(id, snapshot);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => return,
        }
    }
}
