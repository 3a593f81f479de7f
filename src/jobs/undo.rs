//! Running an UNDO operation: replay the target operation's journal
//! backwards, newest first, moving every moved file back.
//!
//! Each file is verified before it moves back: the file at the new path must
//! still be the one that was moved (same device, inode, size and mtime,
//! checked by the mover on the `lstat` just before the `renameat2`). A file
//! already back at its original path (an undo interrupted by a crash) is
//! just marked undone. Nothing is overwritten (`RENAME_NOREPLACE`): if
//! something now occupies the original path, the file stays where it is and
//! the record says why. Folders the organize created and the undo emptied
//! are removed.
//!
//! Content. Where the journal has a content hash, the file must also still
//! hold that content: a rewrite that kept the size and set the mtime back
//! leaves the fingerprint as it was, and undo would move other bytes back
//! than the organize moved. The hash is not what keeps a file from being
//! lost or overwritten (a rename of the verified inode onto a free name
//! does that either way); it keeps undo from restoring a file that is no
//! longer what the organize moved. Hashing every such file costs a full read
//! per file, so the content is compared only for a file that may have been
//! written since the organize: its ctime (which nobody can set; a write, a
//! chmod, a link or a rename moves it to the present, and the organize's own
//! rename set it) is later than the organize's end less
//! `engine::hash_cache::SETTLE_NS` (the timestamps' granularity, the hash
//! cache's "racily clean" margin). A file whose ctime is older has not been
//! touched since it was moved, so its content is the one the organize
//! moved. The ctime is checked on the same `lstat` as the fingerprint
//! (`CtimeCheck::NotAfter`); a file that fails it is hashed and moved back
//! only if the hash matches. Left out by this: a rewrite that kept size and
//! mtime *during* the organize, after the file's move and more than the
//! margin before the organize ended; and a filesystem whose clock runs
//! behind the worker's (a skewed NFS server), where the margin shrinks.
//!
//! Batches are walked, moved and recorded by the pipeline apply uses
//! (`super::batches`): a window of the journal's seqs, newest first, moves
//! while the previous one's outcomes are written, and records undone
//! exactly as expected are written by one range update per batch
//! (`db::file_records::Expected::Undone`). A crash leaves at most two
//! batches moved back but unrecorded; the next claim reads them again (their
//! records are still moved) and finds each file already back.

use std::{
    collections::{BTreeSet, HashSet},
    sync::Arc,
};

use super::{Interrupted, JobContext, batches};
use crate::{
    db::{
        self,
        file_records::{Expected, Outcomes, RecordUpdate},
        models::FileRecord,
    },
    domain::{OperationState, Phase, RecordStatus},
    engine::{hash_cache::SETTLE_NS, progress::Progress},
    jobs::organize::{record_fingerprint, remove_empty_dirs},
    storage::{CtimeCheck, Mover, StorageError, UserPath, UserRoot},
};

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
    let Some((first, last)) = bounds else {
        return finish(ctx, OperationState::Succeeded).await;
    };
    let untouched = untouched_since(&target);
    let pace = crate::jobs::organize::pace(ctx.state.config.moves_per_second);
    let (progress, abandoned, batch_root) =
        (ctx.progress.clone(), ctx.abandoned.clone(), root.clone());
    let mut emptied: BTreeSet<UserPath> = BTreeSet::new();
    let interrupted = batches::walk(
        ctx,
        batches::Journal {
            // The target's records change; the counters are this undo's.
            operation_id: target_id,
            statuses: RecordStatus::MOVED,
            walk: batches::Walk::Descending {
                before: last.saturating_add(1),
                first,
            },
            cursor: false,
        },
        move |batch| undo_batch(&batch_root, &batch, &progress, &abandoned, untouched, pace),
        |dirs| emptied.extend(dirs),
    )
    .await?;
    match interrupted {
        Some(Interrupted::Abandoned) => return Ok(()),
        Some(Interrupted::Cancelled) => return finish(ctx, OperationState::Cancelled).await,
        None => {}
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

/// The ctime a file untouched since `target` moved it has at most: the
/// target's end less the timestamps' granularity (see the module docs).
/// Without an end (never the case for an operation at rest), every file
/// with a content hash is hashed.
fn untouched_since(target: &db::models::Operation) -> CtimeCheck {
    let end = target
        .finished_at
        .and_then(|t| t.timestamp_nanos_opt())
        .map_or(i128::MIN, |ns| i128::from(ns) - SETTLE_NS);
    CtimeCheck::NotAfter(end)
}

fn undo_batch(
    root: &UserRoot,
    batch: &[FileRecord],
    progress: &Progress,
    abandoned: &std::sync::atomic::AtomicBool,
    untouched: CtimeCheck,
    pace: Option<std::time::Duration>,
) -> batches::Done<Vec<UserPath>> {
    let mut mover = Mover::new(root);
    let mut outcomes = Outcomes::default();
    // The folders files left, once each: a batch's files come from a few
    // destination folders, interleaved in journal order.
    let mut folders: HashSet<&str> = HashSet::new();
    let mut done = None;
    for record in batch {
        if progress.is_cancelled() || abandoned.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        progress.set_current(record.new_path.as_deref().unwrap_or_default());
        let update = undo_one(root, &mut mover, record, untouched);
        if update.status == RecordStatus::Undone {
            Progress::add(&progress.files_moved, 1);
            Progress::add(&progress.bytes_moved, record.size_bytes);
            // Moved back now or before an interruption: either way the
            // folder may be empty now.
            if let Some((folder, _)) = record.new_path.as_deref().and_then(|p| p.rsplit_once('/')) {
                folders.insert(folder);
            }
        } else {
            Progress::add(&progress.files_failed, 1);
        }
        progress.step(record.size_bytes);
        outcomes.add(Expected::Undone, record, update);
        done = Some(record.seq);
        if let Some(pause) = pace {
            std::thread::sleep(pause);
        }
    }
    batches::Done {
        outcomes,
        collected: folders
            .into_iter()
            .filter_map(|f| UserPath::parse(f).ok())
            .collect(),
        through: done,
    }
}

/// Moves one file back; returns the record's new state.
fn undo_one(
    root: &UserRoot,
    mover: &mut Mover<'_>,
    record: &FileRecord,
    untouched: CtimeCheck,
) -> RecordUpdate {
    let keep = |reason: String| RecordUpdate {
        seq: record.seq,
        // Left as it was: completed or duplicate (undo reads only moved
        // records).
        status: record.status,
        new_path: record.new_path.clone(),
        reason: Some(reason),
        identity: None,
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
    // Without a content hash the fingerprint is all there is to check.
    let ctime = match &record.content_hash {
        Some(_) => untouched,
        None => CtimeCheck::Any,
    };
    let mut result = mover.move_file_unchanged(&current, &original, &expect, ctime);
    if let (Err(StorageError::SourceChanged), Some(hash)) = (&result, &record.content_hash)
        && root.fingerprint(&current).ok() == Some(expect)
    {
        // Only the ctime is later: touched since the organize (a chmod, a
        // link, a rewrite that kept size and mtime). The same file if it
        // holds the same content.
        match root.hash_file_exact(&current, Some(&expect)) {
            Ok(h) if h.as_bytes().as_slice() == hash.as_slice() => {}
            Ok(_) => return keep(format!("cannot undo: {current} has different content now")),
            Err(e) => return keep(format!("cannot undo: {current} unreadable: {e}")),
        }
        result = mover.move_file(&current, &original, &expect);
    }
    match result {
        Ok(()) => undone(),
        Err(StorageError::DestinationExists) => keep(format!(
            "cannot undo: {original} is occupied by another file; left at {current}"
        )),
        Err(error) => {
            // Not the file at the new path: moved back before an interruption?
            if let Ok(found) = root.fingerprint(&original)
                && expect.is_moved(&found)
            {
                return undone();
            }
            keep(match error {
                StorageError::SourceMissing => format!("cannot undo: {current} is gone"),
                StorageError::SourceChanged | StorageError::NotARegularFile => {
                    format!("cannot undo: {current} changed after the operation")
                }
                error => format!("cannot undo: {}", error.reason()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// A journal record for `original` → `new`, from the file at `new` now
    /// (as the organize left it), with `hash` as its content hash.
    fn record(dir: &std::path::Path, original: &str, new: &str, hash: &[u8]) -> FileRecord {
        let meta = std::fs::symlink_metadata(dir.join(new)).unwrap();
        FileRecord {
            operation_id: uuid::Uuid::nil(),
            seq: 1,
            original_path: original.into(),
            new_path: Some(new.into()),
            size_bytes: meta.size() as i64,
            modified_at: None,
            device: Some(meta.dev() as i64),
            inode: Some(meta.ino() as i64),
            content_hash: Some(hash.to_vec()),
            category: "Documents".into(),
            duplicate_of: None,
            status: RecordStatus::Completed,
            reason: None,
            created_at: chrono::Utc::now(),
            mtime_ns: Some(meta.mtime() * 1_000_000_000 + meta.mtime_nsec()),
            ctime_ns: None,
        }
    }

    /// The content hash is compared only for a file whose ctime is later
    /// than the bound (touched since the organize): a file untouched since
    /// moves back on its fingerprint alone, so a wrong hash in the journal
    /// does not stop it; past the bound, a wrong hash keeps the file where
    /// it is and the right one lets it go back.
    #[test]
    fn content_is_compared_only_for_a_file_touched_since_the_organize() {
        let dir = tempfile::tempdir().unwrap();
        let root = UserRoot::open_existing(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        for name in ["a", "b", "c"] {
            std::fs::write(dir.path().join("out").join(name), b"moved content").unwrap();
        }
        let right = blake3::hash(b"moved content");
        let wrong = blake3::hash(b"other content");
        let now = crate::engine::hash_cache::now_ns();
        let later = CtimeCheck::NotAfter(now + 3_600 * 1_000_000_000);
        let earlier = CtimeCheck::NotAfter(now - 3_600 * 1_000_000_000);
        let mut mover = Mover::new(&root);
        let undo = |mover: &mut Mover<'_>, name: &str, hash: &blake3::Hash, bound| {
            let r = record(
                dir.path(),
                &format!("in/{name}"),
                &format!("out/{name}"),
                hash.as_bytes(),
            );
            undo_one(&root, mover, &r, bound)
        };

        let untouched = undo(&mut mover, "a", &wrong, later);
        assert_eq!(
            (untouched.status, untouched.reason),
            (RecordStatus::Undone, None)
        );
        assert!(dir.path().join("in/a").exists());

        let touched = undo(&mut mover, "b", &wrong, earlier);
        assert_eq!(touched.status, RecordStatus::Completed);
        assert!(
            touched
                .reason
                .as_deref()
                .unwrap()
                .contains("different content now"),
            "{touched:?}"
        );
        assert!(dir.path().join("out/b").exists());

        let same = undo(&mut mover, "c", &right, earlier);
        assert_eq!((same.status, same.reason), (RecordStatus::Undone, None));
        assert!(dir.path().join("in/c").exists());
        assert!(!dir.path().join("out/c").exists());
    }
}
