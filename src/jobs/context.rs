//! What a running job carries: its operation row, progress, the shared
//! state, and why it stopped early ([`Interrupted`]). Apart from
//! `jobs/mod.rs` (the worker loop, which runs the jobs) so that the jobs
//! (`organize`, `undo`) and the loop that calls them never import each
//! other (docs/architecture.md).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use crate::{
    db::{self, models::Operation},
    domain::{OperationKind, OperationState, Phase},
    engine::progress::Progress,
    state::AppState,
};

/// Why a job stopped before its end.
#[derive(Debug, PartialEq, Eq)]
pub enum Interrupted {
    /// The user cancelled it.
    Cancelled,
    /// This worker lost its claim (or the process is shutting down): leave
    /// the job as it is for whoever reclaims it.
    Abandoned,
}

/// What a running job shares with its helper tasks.
pub struct JobContext {
    pub state: AppState,
    pub operation: Operation,
    pub worker_id: String,
    pub progress: Arc<Progress>,
    /// Set when the claim was lost or the process shuts down.
    pub abandoned: Arc<std::sync::atomic::AtomicBool>,
    pub phase: Arc<std::sync::Mutex<(OperationState, Phase)>>,
    /// Seconds spent in each phase, written with every phase change.
    pub timings: std::sync::Mutex<super::timings::PhaseTimings>,
    /// The job's files moved already counted in `files_moved_total` (at
    /// first what earlier runs moved): see [`JobContext::count_moves`].
    pub moves_counted: std::sync::atomic::AtomicI64,
    /// The job's span and its phases' (`infra::otel`), switched with the timings.
    pub trace: crate::infra::otel::JobTrace,
}

impl JobContext {
    /// Records the state and phase for snapshots and the row, with the time
    /// of the phase it ends.
    pub async fn set_phase(&self, state: OperationState, phase: Phase) -> anyhow::Result<()> {
        *self.phase.lock().expect("phase lock") = (state, phase);
        let seconds = self.phase_seconds(Some(phase));
        let mut conn = self.state.db.get().await?;
        let id = self.operation.id;
        db::operations::set_state(&mut conn, id, &self.worker_id, state, Some(phase), &seconds)
            .await?
            .ok_or_else(|| self.lost_hold())?;
        self.changed().await;
        Ok(())
    }

    /// This worker no longer holds the job (its claim went stale and
    /// another worker took it): it stops, and writes nothing more to the
    /// job, which is its new holder's.
    pub fn lost_hold(&self) -> anyhow::Error {
        self.abandoned.store(true, Ordering::Relaxed);
        anyhow::anyhow!(
            "operation {}: this worker no longer holds the job; left to its new holder",
            self.operation.id
        )
    }

    /// Fails with [`JobContext::lost_hold`] when a fenced write
    /// (`db::operations`, by holder) changed no row.
    pub fn held(&self, rows: usize) -> anyhow::Result<()> {
        if rows == 0 {
            return Err(self.lost_hold());
        }
        Ok(())
    }

    /// Ends the job in `state` (a final state, or `planned`), its counters
    /// and the time of its last phase written first, and shown in `phase`.
    /// Then, in its REPORT phase, the operation's report is computed and
    /// stored for the final version (`reports::report_of`), so the first
    /// GetOperationReport finds it; its time is added to the timings.
    pub async fn finish(&self, state: OperationState, phase: Phase) -> anyhow::Result<()> {
        let seconds = self.phase_seconds(Some(Phase::Report));
        self.count_moves();
        let mut conn = self.state.db.get().await?;
        let (id, holder) = (self.operation.id, self.worker_id.as_str());
        db::operations::set_counters(&mut conn, id, holder, &self.progress.counters()).await?;
        *self.phase.lock().expect("phase lock") = (state, phase);
        let row = db::operations::set_state(&mut conn, id, holder, state, Some(phase), &seconds)
            .await?
            .ok_or_else(|| self.lost_hold())?;
        drop(conn);
        self.changed().await;
        if matches!(state, OperationState::Succeeded | OperationState::Planned) {
            super::automations::run_ended(&self.state, &row, None).await;
        }
        crate::infra::observability::operation_finished(self.operation.kind, state);
        tracing::info!(operation = %self.operation.id, %state, counters = ?self.progress.counters(), "job finished");
        if row.kind != OperationKind::Undo
            && let Err(error) = crate::reports::report_of(&self.state, &row).await
        {
            // The operation is done; its report is computed on request instead.
            tracing::warn!(operation = %row.id, error = %error, "computing the report failed");
        }
        // Best effort from here on: the operation has ended, and an error
        // now must not make it look as if the job failed.
        let seconds = self.phase_seconds(None);
        let timed = match self.state.db.get().await {
            Ok(mut conn) => db::operations::set_phase_seconds(&mut conn, row.id, holder, &seconds)
                .await
                .map_err(anyhow::Error::from),
            Err(error) => Err(error.into()),
        };
        match timed {
            // The timings are part of the operation, not of its report (a
            // report cached meanwhile stays valid).
            Ok(_) => {
                self.state
                    .cache
                    .operation_row_changed(row.user_id, row.id)
                    .await
            }
            Err(error) => {
                tracing::warn!(operation = %row.id, error = %error, "recording the report's time failed")
            }
        }
        Ok(())
    }

    /// Adds the files moved since the last call to `files_moved_total`: when
    /// the job ends, before its final state is visible, and again when its
    /// run returns, whichever way (the second adds only what came after).
    pub fn count_moves(&self) {
        let moved = self.progress.counters().files_moved;
        let counted = self.moves_counted.swap(moved, Ordering::Relaxed);
        crate::infra::observability::files_moved(
            self.operation.kind,
            moved.saturating_sub(counted).try_into().unwrap_or(0),
        );
    }

    /// Enters `phase` (None: the job stops) and returns the totals to store;
    /// the phase it ends is recorded in `operation_phase_duration_seconds`.
    fn phase_seconds(&self, phase: Option<Phase>) -> serde_json::Value {
        self.trace.enter(phase);
        let mut timings = self.timings.lock().expect("timings lock");
        if let Some((ended, seconds)) = timings.enter(phase, Instant::now()) {
            crate::infra::observability::phase_ended(self.operation.kind, ended, seconds);
        }
        timings.to_json()
    }

    /// Drops cached answers about this operation (after a state change),
    /// and about its target for an undo.
    pub async fn changed(&self) {
        let op = &self.operation;
        let cache = &self.state.cache;
        cache.operation_changed(op.user_id, op.id).await;
        if let Some(target) = op.undo_of {
            cache.operation_changed(op.user_id, target).await;
        }
        // Category file counts change when files move.
        cache
            .invalidate(&[("categories", op.user_id.to_string())])
            .await;
    }

    pub fn interrupted(&self) -> Option<Interrupted> {
        if self.abandoned.load(Ordering::Relaxed) {
            Some(Interrupted::Abandoned)
        } else if self.progress.is_cancelled() {
            Some(Interrupted::Cancelled)
        } else {
            None
        }
    }
}
