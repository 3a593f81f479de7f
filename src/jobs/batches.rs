//! The walk over a journal that apply and undo share: batches of records
//! whose files move on a blocking thread while the previous batch's outcomes
//! are recorded.
//!
//! A batch is the records in the statuses to act on within the next window
//! of [`BATCH`] seqs (ascending for apply, descending for undo;
//! `db::file_records::batch_window`), so it may be short or empty. The
//! walk is pipelined three ways:
//! - batch N+1 is read while batch N's files move (it holds only seqs past
//!   batch N's, which nothing in flight writes);
//! - batch N's outcomes are written while batch N+1's files move, so the disk
//!   and the database work at the same time;
//! - at most one batch is recorded at a time, in order, and every return
//!   waits for it first: counters and the applied cursor only ever move
//!   forward, and every outcome is durable before the job stops or finishes.
//!
//! A crash therefore loses the outcomes of at most two batches (the one
//! being recorded and the one moving), whose files are moved but their
//! records not: the next claim walks them again, and the job's per-file
//! step recognises a file already where the move put it (apply: at its
//! destination; undo: back at its original path) and records it as moved.
//!
//! Every write is fenced on the claim (`db::file_records::record_batch`): a
//! worker that lost the job stops at its next batch and records nothing more.

use uuid::Uuid;

use super::{Interrupted, JobContext};
use crate::{
    db::{self, file_records::Outcomes, models::FileRecord},
    domain::RecordStatus,
};

/// Seqs per batch window (one transaction of outcomes each).
pub const BATCH: i64 = 1000;

/// Which way a journal is walked.
#[derive(Debug, Clone, Copy)]
pub enum Walk {
    /// Seqs above `after` up to `last` (apply, from its applied cursor).
    Ascending { after: i64, last: i64 },
    /// Seqs below `before` down to `first` (undo, newest first).
    Descending { before: i64, first: i64 },
}

impl Walk {
    /// Whether this window holds seqs of the journal.
    fn open(self) -> bool {
        match self {
            Walk::Ascending { after, last } => after < last,
            Walk::Descending { before, first } => before > first,
        }
    }

    /// The first and last seq of this window (inclusive), and whether it is
    /// walked newest first.
    fn seqs(self) -> ((i64, i64), bool) {
        match self {
            Walk::Ascending { after, .. } => ((after + 1, after.saturating_add(BATCH)), false),
            Walk::Descending { before, .. } => ((before.saturating_sub(BATCH), before - 1), true),
        }
    }

    /// The window after this one, if it holds seqs of the journal.
    fn next(self) -> Option<Walk> {
        let next = match self {
            Walk::Ascending { after, last } => Walk::Ascending {
                after: after.saturating_add(BATCH),
                last,
            },
            Walk::Descending { before, first } => Walk::Descending {
                before: before.saturating_sub(BATCH),
                first,
            },
        };
        next.open().then_some(next)
    }
}

/// What the job's step did with one batch (on the blocking thread).
pub struct Done<D> {
    pub outcomes: Outcomes,
    /// Whatever else the job collects per batch (the folders it touched).
    pub collected: D,
    /// The last seq processed, in walk order; short of the batch's last when
    /// the step stopped early (cancelled or abandoned). None: none was.
    pub through: Option<i64>,
}

/// The journal to walk and how outcomes are recorded.
pub struct Journal {
    /// Whose records: the job's own (apply) or its target's (undo).
    pub operation_id: Uuid,
    /// The statuses of the records a batch holds.
    pub statuses: &'static [RecordStatus],
    /// Where to start, and which way.
    pub walk: Walk,
    /// Whether each batch also writes the job's applied cursor (the last
    /// seq recorded; an ascending walk only).
    pub cursor: bool,
}

/// Walks `journal`, running `step` on each non-empty batch on a blocking
/// thread and handing what it collected to `collect`. Returns how the walk
/// ended: None when every batch was processed and recorded.
pub async fn walk<D, S>(
    ctx: &JobContext,
    journal: Journal,
    step: S,
    mut collect: impl FnMut(D),
) -> anyhow::Result<Option<Interrupted>>
where
    D: Send + 'static,
    S: Fn(Vec<FileRecord>) -> Done<D> + Send + Sync + 'static,
{
    let step = std::sync::Arc::new(step);
    let (operation_id, statuses) = (journal.operation_id, journal.statuses);
    let fetch = |window: Walk| {
        let pool = ctx.state.db.clone();
        tokio::spawn(async move {
            let mut conn = pool.get().await?;
            let (seqs, newest_first) = window.seqs();
            let batch = db::file_records::batch_window(
                &mut conn,
                operation_id,
                statuses,
                seqs,
                newest_first,
            )
            .await?;
            anyhow::Ok(batch)
        })
    };
    let mut window = Some(journal.walk).filter(|w| w.open());
    let mut next = window.map(fetch);
    let mut recording: Option<tokio::task::JoinHandle<anyhow::Result<bool>>> = None;
    let interrupted = loop {
        if let Some(i) = ctx.interrupted() {
            break Some(i);
        }
        let (Some(fetching), Some(current)) = (next.take(), window) else {
            break None;
        };
        let batch = fetching.await??;
        window = current.next();
        next = window.map(fetch);
        let Some(last) = batch.last().map(|r| r.seq) else {
            continue;
        };
        let batch_step = step.clone();
        let done = tokio::task::spawn_blocking(move || batch_step(batch)).await?;
        collect(done.collected);
        if !recorded(ctx, recording.take()).await? {
            return Ok(Some(Interrupted::Abandoned));
        }
        let (pool, holder, counters, id) = (
            ctx.state.db.clone(),
            ctx.worker_id.clone(),
            ctx.progress.counters(),
            ctx.operation.id,
        );
        let cursor = done.through.filter(|_| journal.cursor);
        let outcomes = done.outcomes;
        recording = Some(tokio::spawn(async move {
            let mut conn = pool.get().await?;
            Ok(db::file_records::record_batch(
                &mut conn,
                operation_id,
                id,
                &holder,
                &outcomes,
                &counters,
                cursor,
            )
            .await?)
        }));
        if done.through != Some(last) {
            // Stopped inside the batch: cancelled or abandoned.
            break Some(ctx.interrupted().unwrap_or(Interrupted::Abandoned));
        }
    };
    if !recorded(ctx, recording.take()).await? {
        return Ok(Some(Interrupted::Abandoned));
    }
    Ok(interrupted)
}

/// Waits for a batch's outcomes to be written; `false` when this worker
/// lost its claim on the job meanwhile (its new holder records the moves).
async fn recorded(
    ctx: &JobContext,
    recording: Option<tokio::task::JoinHandle<anyhow::Result<bool>>>,
) -> anyhow::Result<bool> {
    let Some(recording) = recording else {
        return Ok(true);
    };
    if recording.await?? {
        return Ok(true);
    }
    tracing::warn!(operation = %ctx.operation.id, "lost the claim on this job; its new holder records the moves");
    ctx.abandoned
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(false)
}
