//! The hash phase of a plan, with the user's persistent hash cache.
//!
//! Before hashing, the user's cached rows for the files the phase may read
//! are looked up in batches (`db::hash_cache::lookup`); a row counts only if
//! its whole key (device, inode, size, mtime, ctime) equals the scan's
//! (`engine::hash_cache`). The engine then reads only what the cache did not
//! answer. After it, what was read is written back in batches, for files
//! settled long enough (`engine::hash_cache::settled`), hits not refreshed
//! for a day are touched, and the user's rows unseen for HASH_CACHE_DAYS are
//! pruned.
//!
//! The cache is advisory: a failed lookup hashes without it, a failed or
//! lost write (a SIGKILL between the hash phase and the write) costs a
//! re-hash next time, and none of it touches the journal, whose guarantees
//! (docs/organize.md) are unchanged. The bytes read are recorded on the
//! operation (`operations.bytes_hashed`) and counted by
//! `hash_bytes_read_total`.
//!
//! Nothing here is held per file beyond the engine's own lists: the hits are
//! a sorted vector ([`KnownHashes`]), the stale ones a list of indexes, and
//! the rows to write are built and written one batch at a time.

use std::{collections::HashMap, sync::Arc};

use anyhow::Context;

use super::JobContext;
use crate::{
    db,
    engine::{
        duplicates::{self, DuplicateAnalysis},
        hash_cache::{self, CacheKey, Known, KnownHashes},
        scan::ScanResult,
        spill::Spill,
    },
    storage::UserRoot,
};

/// Runs the hash phase of the operation in `ctx` over `scanned`.
pub(super) async fn hash_phase(
    ctx: &JobContext,
    root: &Arc<UserRoot>,
    scanned: ScanResult,
    hash_all: bool,
) -> anyhow::Result<(ScanResult, DuplicateAnalysis)> {
    let op = &ctx.operation;
    let days = ctx.state.config.hash_cache_days;

    // The files the phase may read, by index (their keys are made a batch
    // at a time).
    let spill = spill(&ctx.state.config);
    let (scanned, wanted) = if days > 0 {
        let spill = spill.clone();
        tokio::task::spawn_blocking(move || {
            let wanted = duplicates::hash_candidates(&scanned.files, hash_all, &spill);
            wanted.map(|wanted| (scanned, wanted))
        })
        .await?
        .context("finding the hash candidates")?
    } else {
        (scanned, Vec::new())
    };

    let mut known = KnownHashes::default();
    // Hits whose row was not refreshed for a day, by index.
    let mut touch: Vec<usize> = Vec::new();
    // Batch by batch, so that only one batch's rows are held at a time.
    for batch in wanted.chunks(db::hash_cache::BATCH) {
        let batch: Vec<(usize, CacheKey)> = batch
            .iter()
            .filter_map(|&i| {
                CacheKey::of_parts(&scanned.files.fingerprint(i), scanned.files.ctime_ns(i))
                    .map(|key| (i, key))
            })
            .collect();
        let keys: Vec<CacheKey> = batch.iter().map(|&(_, key)| key).collect();
        let found = match ctx.state.db.get().await {
            Ok(mut conn) => db::hash_cache::lookup(&mut conn, op.user_id, &keys)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::Error::from(e)),
        };
        let rows = match found {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "hash cache lookup failed; hashing without it");
                known.clear();
                touch.clear();
                break;
            }
        };
        let rows: HashMap<(i64, i64), db::hash_cache::Cached> = rows
            .into_iter()
            .map(|row| ((row.key.dev, row.key.ino), row))
            .collect();
        for (i, key) in batch {
            if let Some(row) = rows.get(&(key.dev, key.ino))
                && row.key == key
            {
                known.push(i, row.known);
                if row.stale {
                    touch.push(i);
                }
            }
        }
    }
    drop(wanted);
    known.seal();
    let hits = known.len();

    let read_from = hash_cache::now_ns();
    let progress = ctx.progress.clone();
    let hash_root = root.clone();
    let threads = ctx.state.config.hash_threads;
    let (scanned, analysis, known) = tokio::task::spawn_blocking(move || {
        let analysis = duplicates::find_duplicates(
            &hash_root,
            &scanned.files,
            hash_all,
            &known,
            threads,
            &progress,
            &spill,
        );
        analysis.map(|analysis| (scanned, analysis, known))
    })
    .await?
    .context("finding duplicates")?;
    crate::infra::observability::hashed(analysis.bytes_read, hits as u64);
    tracing::info!(
        bytes_read = analysis.bytes_read,
        cache_hits = hits,
        "hash phase done"
    );
    {
        let mut conn = ctx.state.db.get().await?;
        let bytes = i64::try_from(analysis.bytes_read).unwrap_or(i64::MAX);
        db::operations::set_bytes_hashed(&mut conn, op.id, &ctx.worker_id, bytes).await?;
    }

    if days > 0 {
        let files = &scanned.files;
        // What was read (of files settled long enough), then the stale hits
        // not read again, one batch of rows at a time.
        let read = analysis.computed(&known).filter(|read| {
            read.as_ref().map_or(true, |&(i, _)| {
                hash_cache::settled(files.ctime_ns(i), read_from)
            })
        });
        let refreshed = touch
            .iter()
            .filter(|&&i| {
                !(analysis.was_read(i) && hash_cache::settled(files.ctime_ns(i), read_from))
            })
            .filter_map(|&i| known.get(i).map(|k| Ok((i, k))));
        let entries = read.chain(refreshed).filter_map(|entry| match entry {
            Ok((i, known)) => CacheKey::of_parts(&files.fingerprint(i), files.ctime_ns(i))
                .map(|key| Ok((key, known))),
            Err(error) => Some(Err(error)),
        });
        if let Err(error) = keep(ctx, entries, days).await {
            tracing::warn!(%error, "hash cache not updated; the next run hashes these files again");
        }
    }
    Ok((scanned, analysis))
}

/// Where and when the duplicate finder spills (ORGANIZE_SPILL_RECORDS,
/// into `STORAGE_ROOT/.spill`). The storage volume, not `DATA_DIR`: it is the
/// one volume every deployment mounts writable (compose and Kubernetes run
/// the image with a read-only root, `DATA_DIR` on it) and the large one. It
/// is beside the users' roots, never in one (those are `STORAGE_ROOT/<id>`),
/// and holds only unnamed files; `engine::spill` makes it when a sort first
/// spills, so an organize that never spills never touches it.
fn spill(config: &crate::config::Config) -> Spill {
    Spill::new(
        config.storage_root.join(".spill"),
        config.organize_spill_records,
    )
}

/// Writes the entries, a batch at a time, and prunes the user's expired
/// rows.
async fn keep(
    ctx: &JobContext,
    mut entries: impl Iterator<Item = std::io::Result<(CacheKey, Known)>>,
    days: u32,
) -> anyhow::Result<()> {
    let user_id = ctx.operation.user_id;
    let mut conn = ctx.state.db.get().await?;
    loop {
        let batch: Vec<(CacheKey, Known)> = entries
            .by_ref()
            .take(db::hash_cache::BATCH)
            .collect::<std::io::Result<_>>()
            .context("reading back the spilled hashes")?;
        if batch.is_empty() {
            break;
        }
        db::hash_cache::store(&mut conn, user_id, &batch).await?;
    }
    db::hash_cache::prune(&mut conn, user_id, days).await?;
    Ok(())
}
