//! The background task that indexes SearchFiles' names (`db::file_names`)
//! once the job that wrote a journal has finished: one per process that runs
//! workers, woken when a job of this process ends and every JOB_POLL_MS
//! otherwise (which also picks up operations left pending by a process that
//! stopped). Processes share the work through the per-operation advisory
//! lock; an operation is indexed once, in one transaction. After a large
//! one it refreshes the planner's statistics of the journal and the names.

use std::time::Instant;

use crate::state::AppState;

/// After indexing this many names, the planner's statistics are refreshed
/// (`db::file_names::analyze`).
const ANALYZE_AFTER: u64 = 10_000;

/// Runs until shutdown begins.
pub async fn run(state: AppState) {
    let mut shutdown = state.shutting_down.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let started = Instant::now();
        let indexed = match state.db.get().await {
            Ok(mut conn) => crate::db::file_names::index_next(&mut conn).await,
            Err(error) => {
                tracing::warn!(%error, "search names: cannot reach the database");
                Ok(None)
            }
        };
        match indexed {
            Ok(Some(done)) => {
                if done.names >= ANALYZE_AFTER
                    && let Ok(mut conn) = state.db.get().await
                    && let Err(error) = crate::db::file_names::analyze(&mut conn).await
                {
                    tracing::warn!(%error, "search names: ANALYZE failed");
                }
                tracing::info!(
                    operation = %done.operation_id,
                    names = done.names,
                    seconds = started.elapsed().as_secs_f64(),
                    "search names indexed"
                );
                continue;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "search names: indexing failed; retrying later"),
        }
        tokio::select! {
            _ = state.jobs_finished.notified() => {}
            _ = tokio::time::sleep(state.config.job_poll) => {}
            _ = shutdown.changed() => {}
        }
    }
}
