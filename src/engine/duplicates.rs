//! Step 3: find byte-identical duplicates, reading only what is needed.
//!
//! Stages: group by size (a file with a unique size is never read) → hash
//! the first block of each candidate → full blake3 of the files whose size
//! and first block agree. Hard links never reach this step (the scanner
//! de-duplicates by inode), and empty files are not duplicates of anything
//! worth reporting. Hashing runs on `threads` threads.
//!
//! The keeper of each group is chosen deterministically: oldest modification
//! time, then shortest path, then path order. Every other member gets
//! `duplicate_of` = the keeper's index.

use std::collections::HashMap;

use super::{progress::Progress, scan::ScannedFile};
use crate::storage::root::UserRoot;

/// Bytes hashed in the head stage; files no larger are fully hashed there.
pub const HEAD_BYTES: usize = 16 * 1024;

/// Per-file results, indexed like the scanned files.
#[derive(Debug, Default)]
pub struct DuplicateAnalysis {
    /// Full blake3 hash where it was computed.
    pub hashes: Vec<Option<[u8; 32]>>,
    /// Index of the keeper of this file's duplicate group (None for keepers
    /// and unique files).
    pub duplicate_of: Vec<Option<usize>>,
    /// Files that could not be read, with the reason.
    pub unreadable: HashMap<usize, String>,
    /// Number of duplicate groups.
    pub groups: usize,
}

fn read_head(root: &UserRoot, file: &ScannedFile) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut handle = root.open_read(&file.path).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; HEAD_BYTES.min(file.size as usize)];
    let mut filled = 0;
    while filled < buf.len() {
        match handle.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

fn full_hash(root: &UserRoot, file: &ScannedFile) -> std::io::Result<[u8; 32]> {
    root.hash_file(&file.path).map(|h| *h.as_bytes())
}

/// Runs `work` over `items` on up to `threads` threads, collecting results.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if items.is_empty() {
        return Vec::new();
    }
    let threads = threads.max(1).min(items.len());
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let work = &work;
                scope.spawn(move || part.iter().map(work).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("hash thread"))
            .collect()
    })
}

/// Finds duplicate groups among `files`; with `hash_all`, every file gets a
/// full hash.
pub fn find_duplicates(
    root: &UserRoot,
    files: &[ScannedFile],
    hash_all: bool,
    threads: usize,
    progress: &Progress,
) -> DuplicateAnalysis {
    let mut analysis = DuplicateAnalysis {
        hashes: vec![None; files.len()],
        duplicate_of: vec![None; files.len()],
        ..Default::default()
    };

    // Stage 1: sizes shared by at least two non-empty files.
    let mut by_size: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        if f.size > 0 {
            by_size.entry(f.size).or_default().push(i);
        }
    }
    let candidates: Vec<usize> = by_size
        .values()
        .filter(|g| g.len() > 1)
        .flatten()
        .copied()
        .collect();
    let candidate_bytes: i64 = candidates.iter().map(|&i| files[i].size as i64).sum();
    progress.start_phase(candidates.len() as i64, candidate_bytes);

    // Stage 2: head hash of candidates (a full hash for small files).
    let heads = parallel(&candidates, threads, |&i| {
        if progress.is_cancelled() {
            return (i, Err("cancelled".to_string()));
        }
        let file = &files[i];
        progress.set_current(file.path.as_str());
        let result = read_head(root, file)
            .map_err(|e| e.to_string())
            .map(|head| {
                let hash = *blake3::hash(&head).as_bytes();
                (hash, head.len() as u64 == file.size)
            });
        progress.step(file.size.min(HEAD_BYTES as u64) as i64);
        (i, result)
    });
    let mut by_head: HashMap<(u64, [u8; 32]), Vec<usize>> = HashMap::new();
    for (i, result) in heads {
        match result {
            Ok((hash, complete)) => {
                if complete {
                    analysis.hashes[i] = Some(hash);
                }
                by_head.entry((files[i].size, hash)).or_default().push(i);
            }
            Err(reason) => {
                analysis.unreadable.insert(i, reason);
            }
        }
    }

    // Stage 3: full hash where size and head agree (and not yet complete).
    let mut wanted = vec![false; files.len()];
    for &i in by_head.values().filter(|g| g.len() > 1).flatten() {
        wanted[i] = true;
    }
    if hash_all {
        wanted.iter_mut().for_each(|w| *w = true);
    }
    let need_full: Vec<usize> = (0..files.len())
        .filter(|&i| {
            wanted[i] && analysis.hashes[i].is_none() && !analysis.unreadable.contains_key(&i)
        })
        .collect();
    let full_bytes: i64 = need_full.iter().map(|&i| files[i].size as i64).sum();
    progress.start_phase(need_full.len() as i64, full_bytes);
    let fulls = parallel(&need_full, threads, |&i| {
        if progress.is_cancelled() {
            return (i, Err("cancelled".to_string()));
        }
        let file = &files[i];
        progress.set_current(file.path.as_str());
        let result = full_hash(root, file).map_err(|e| e.to_string());
        progress.step(file.size as i64);
        (i, result)
    });
    for (i, result) in fulls {
        match result {
            Ok(hash) => analysis.hashes[i] = Some(hash),
            Err(reason) => {
                analysis.unreadable.insert(i, reason);
            }
        }
    }

    // Group by (size, full hash) among the files that shared size and head.
    let mut groups: HashMap<(u64, [u8; 32]), Vec<usize>> = HashMap::new();
    for group in by_head.values().filter(|g| g.len() > 1) {
        for &i in group {
            if let Some(hash) = analysis.hashes[i] {
                groups.entry((files[i].size, hash)).or_default().push(i);
            }
        }
    }
    for (_, mut members) in groups.into_iter().filter(|(_, m)| m.len() > 1) {
        members.sort_by(|&a, &b| {
            let (fa, fb) = (&files[a], &files[b]);
            fa.modified
                .cmp(&fb.modified)
                .then(fa.path.as_str().len().cmp(&fb.path.as_str().len()))
                .then(fa.path.as_str().cmp(fb.path.as_str()))
        });
        let keeper = members[0];
        for &other in &members[1..] {
            analysis.duplicate_of[other] = Some(keeper);
            Progress::add(&progress.duplicates_found, 1);
            Progress::add(&progress.reclaimable_bytes, files[other].size as i64);
        }
        analysis.groups += 1;
    }
    analysis
}
