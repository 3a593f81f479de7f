//! Running an UNDO operation: replay the target operation's journal
//! backwards, newest first, moving every moved file back.
//!
//! Each file is verified before it moves back: the file at the new path must
//! still be the one that was moved (same device, inode, size and mtime; and
//! the same content hash when the journal has one). A file already back at
//! its original path (an undo interrupted by a crash) is just marked undone.
//! Nothing is overwritten: if something now occupies the original path, the
//! file stays where it is and the record says why. Folders the organize
//! created and the undo emptied are removed.

use std::{collections::BTreeSet, sync::Arc};

use super::{Interrupted, JobContext};
use crate::{
    db::{self, file_records::RecordUpdate, models::FileRecord},
    domain::{OperationState, Phase, RecordStatus},
    engine::progress::Progress,
    jobs::organize::{record_fingerprint, remove_empty_dirs},
    storage::{Fingerprint, Mover, StorageError, UserPath, UserRoot},
};

const UNDO_BATCH: i64 = 1000;

pub async fn run(ctx: &JobContext) -> anyhow::Result<()> {
    let op = &ctx.operation;
    let target_id = op
        .undo_of
        .ok_or_else(|| anyhow::anyhow!("undo operation without a target"))?;
    if op.state == OperationState::Cancelling {
        return finish(ctx, OperationState::Cancelled).await;
    }
    let root = Arc::new(
        ctx.state
            .user_root(op.user_id)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    ctx.set_phase(OperationState::Running, Phase::Undo).await?;
    let mut conn = ctx.state.db.get().await?;
    let target = db::operations::find(&mut conn, target_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the operation to undo is gone"))?;
    ctx.progress
        .start_phase(target.files_moved, target.bytes_moved);
    // Rebuilt from the journal (exact after an interruption).
    let totals = db::file_records::status_totals(&mut conn, target_id).await?;
    ctx.progress
        .files_moved
        .store(totals.undone, std::sync::atomic::Ordering::Relaxed);
    ctx.progress
        .bytes_moved
        .store(totals.undone_bytes, std::sync::atomic::Ordering::Relaxed);
    let bounds = db::file_records::seq_bounds(&mut conn, target_id).await?;
    drop(conn);
    // Windows of UNDO_BATCH seqs, last first (`db::file_records::batch_descending`).
    let (first_seq, mut before) = bounds.map_or((0, 0), |(first, last)| (first, last + 1));
    let mut emptied: BTreeSet<UserPath> = BTreeSet::new();
    loop {
        if let Some(i) = ctx.interrupted() {
            return match i {
                Interrupted::Abandoned => Ok(()),
                Interrupted::Cancelled => finish(ctx, OperationState::Cancelled).await,
            };
        }
        if before <= first_seq {
            break;
        }
        let window_start = before - UNDO_BATCH;
        let mut conn = ctx.state.db.get().await?;
        let batch = db::file_records::batch_descending(
            &mut conn,
            target_id,
            RecordStatus::MOVED,
            before,
            UNDO_BATCH,
        )
        .await?;
        drop(conn);
        let Some(last) = batch.last().map(|r| r.seq) else {
            before = window_start;
            continue;
        };
        let progress = ctx.progress.clone();
        let abandoned = ctx.abandoned.clone();
        let batch_root = root.clone();
        let pace = crate::jobs::organize::pace(ctx.state.config.moves_per_second);
        let (updates, dirs, done_through) = tokio::task::spawn_blocking(move || {
            undo_batch(&batch_root, &batch, &progress, &abandoned, pace)
        })
        .await?;
        emptied.extend(dirs);
        let mut conn = ctx.state.db.get().await?;
        // The target's records change; the counters are this undo's.
        let recorded = db::file_records::record_batch(
            &mut conn,
            target_id,
            op.id,
            &ctx.worker_id,
            &db::file_records::Outcomes::listed(updates),
            &ctx.progress.counters(),
            None,
        )
        .await?;
        if !recorded {
            tracing::warn!(operation = %op.id, "lost the claim on this job; its new holder records the moves");
            ctx.abandoned
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        }
        if done_through != Some(last) {
            before = done_through.unwrap_or(before);
            continue; // interrupted: handled at the top of the loop
        }
        before = window_start;
    }
    let destination = UserPath::parse(&target.destination_path)?;
    let cleanup_root = root.clone();
    tokio::task::spawn_blocking(move || remove_empty_dirs(&cleanup_root, &destination, emptied))
        .await?;
    finish(ctx, OperationState::Succeeded).await
}

async fn finish(ctx: &JobContext, state: OperationState) -> anyhow::Result<()> {
    ctx.finish(state, Phase::Report).await
}

fn undo_batch(
    root: &UserRoot,
    batch: &[FileRecord],
    progress: &Progress,
    abandoned: &std::sync::atomic::AtomicBool,
    pace: Option<std::time::Duration>,
) -> (Vec<RecordUpdate>, Vec<UserPath>, Option<i64>) {
    let mut mover = Mover::new(root);
    let mut updates = Vec::with_capacity(batch.len());
    let mut dirs = Vec::new();
    let mut done = None;
    for record in batch {
        if progress.is_cancelled() || abandoned.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        progress.set_current(record.new_path.as_deref().unwrap_or_default());
        let (update, moved) = undo_one(root, &mut mover, record);
        if update.status == RecordStatus::Undone {
            Progress::add(&progress.files_moved, 1);
            Progress::add(&progress.bytes_moved, record.size_bytes);
            if moved
                && let Some(parent) = record
                    .new_path
                    .as_deref()
                    .and_then(|p| UserPath::parse(p).ok()?.parent())
            {
                dirs.push(parent);
            }
        } else {
            Progress::add(&progress.files_failed, 1);
        }
        progress.step(record.size_bytes);
        updates.push(update);
        done = Some(record.seq);
        if let Some(pause) = pace {
            std::thread::sleep(pause);
        }
    }
    (updates, dirs, done)
}

/// Moves one file back; returns the record's new state and whether a move
/// happened now.
fn undo_one(root: &UserRoot, mover: &mut Mover<'_>, record: &FileRecord) -> (RecordUpdate, bool) {
    let keep = |reason: String| {
        (
            RecordUpdate {
                seq: record.seq,
                // Left as it was: completed or duplicate (undo reads only
                // moved records).
                status: record.status,
                new_path: record.new_path.clone(),
                reason: Some(reason),
                identity: None,
            },
            false,
        )
    };
    let (Ok(original), Some(Ok(current)), Some(expect)) = (
        UserPath::parse(&record.original_path),
        record.new_path.as_deref().map(UserPath::parse),
        record_fingerprint(record),
    ) else {
        return keep("journal entry is incomplete; cannot undo".into());
    };
    let undone = || RecordUpdate {
        seq: record.seq,
        status: RecordStatus::Undone,
        new_path: record.new_path.clone(),
        reason: None,
        identity: None,
    };
    let at_new = root
        .symlink_metadata(&current)
        .ok()
        .map(|m| Fingerprint::of(&m));
    if at_new != Some(expect) {
        // Already moved back before an interruption?
        if let Ok(meta) = root.symlink_metadata(&original)
            && expect.is_moved(&Fingerprint::of(&meta))
        {
            return (undone(), false);
        }
        return keep(match at_new {
            None => format!("cannot undo: {current} is gone"),
            Some(_) => format!("cannot undo: {current} changed after the operation"),
        });
    }
    if let Some(hash) = &record.content_hash {
        match root.hash_file_exact(&current, Some(&expect)) {
            Ok(h) if h.as_bytes().as_slice() == hash.as_slice() => {}
            Ok(_) => return keep(format!("cannot undo: {current} has different content now")),
            Err(e) => return keep(format!("cannot undo: {current} unreadable: {e}")),
        }
    }
    match mover.move_file(&current, &original, &expect) {
        Ok(()) => (undone(), true),
        Err(StorageError::DestinationExists) => keep(format!(
            "cannot undo: {original} is occupied by another file; left at {current}"
        )),
        Err(error) => keep(format!("cannot undo: {}", error.reason())),
    }
}
