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

use super::{parallel::map_ordered, progress::Progress, scan::ScannedFile};
use crate::storage::{StorageError, root::UserRoot};

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

fn read_head(root: &UserRoot, file: &ScannedFile) -> Result<Vec<u8>, StorageError> {
    use std::io::Read;
    let mut handle = root.open_read_exact(&file.path, Some(&file.fingerprint))?;
    let mut buf = vec![0u8; HEAD_BYTES.min(file.size() as usize)];
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

fn full_hash(root: &UserRoot, file: &ScannedFile) -> Result<[u8; 32], StorageError> {
    root.hash_file_exact(&file.path, Some(&file.fingerprint))
        .map(|h| *h.as_bytes())
}

/// Files hashed per draw from the worker threads' shared counter.
const HASH_CHUNK: usize = 64;

/// A file's index with the key it is grouped by. Groups are found by
/// sorting a flat vector of these and taking runs of equal keys: at a
/// million files that is a fraction of the memory of a map of vectors.
type Keyed<K> = (K, usize);

/// The indexes of every run of two or more equal keys, runs in key order.
fn shared_keys<K: Ord + Copy>(mut keyed: Vec<Keyed<K>>) -> Vec<Vec<usize>> {
    keyed.sort_unstable();
    keyed
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
        .map(|run| run.iter().map(|&(_, i)| i).collect())
        .collect()
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

    // Stage 1: sizes shared by at least two non-empty files. Candidates are
    // read in scan order, which keeps a folder's files together on disk.
    let by_size: Vec<Keyed<u64>> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.size() > 0)
        .map(|(i, f)| (f.size(), i))
        .collect();
    let mut candidates: Vec<usize> = shared_keys(by_size).into_iter().flatten().collect();
    candidates.sort_unstable();
    let candidate_bytes: i64 = candidates.iter().map(|&i| files[i].size() as i64).sum();
    progress.start_phase(candidates.len() as i64, candidate_bytes);

    // Stage 2: head hash of candidates (a full hash for small files).
    let heads = map_ordered(&candidates, threads, HASH_CHUNK, |&i| {
        if progress.is_cancelled() {
            return (i, Err("cancelled".to_string()));
        }
        let file = &files[i];
        progress.set_current(file.path.as_str());
        let result = read_head(root, file)
            .map_err(|e| e.to_string())
            .map(|head| {
                let hash = *blake3::hash(&head).as_bytes();
                (hash, head.len() as u64 == file.size())
            });
        progress.step(file.size().min(HEAD_BYTES as u64) as i64);
        (i, result)
    });
    drop(candidates);
    // Filled while `heads` is read (and freed) chunk by chunk.
    let mut by_head: Vec<Keyed<(u64, [u8; 32])>> = Vec::with_capacity(heads.len());
    for (i, result) in heads {
        match result {
            Ok((hash, complete)) => {
                if complete {
                    analysis.hashes[i] = Some(hash);
                }
                by_head.push(((files[i].size(), hash), i));
            }
            Err(reason) => {
                analysis.unreadable.insert(i, reason);
            }
        }
    }
    // Files whose size and head agree with another's.
    let head_groups = shared_keys(by_head);

    // Stage 3: full hash where size and head agree (and not yet complete).
    let mut wanted = vec![hash_all; files.len()];
    for &i in head_groups.iter().flatten() {
        wanted[i] = true;
    }
    let need_full: Vec<usize> = (0..files.len())
        .filter(|&i| {
            wanted[i] && analysis.hashes[i].is_none() && !analysis.unreadable.contains_key(&i)
        })
        .collect();
    drop(wanted);
    let full_bytes: i64 = need_full.iter().map(|&i| files[i].size() as i64).sum();
    progress.start_phase(need_full.len() as i64, full_bytes);
    let fulls = map_ordered(&need_full, threads, HASH_CHUNK, |&i| {
        if progress.is_cancelled() {
            return (i, Err("cancelled".to_string()));
        }
        let file = &files[i];
        progress.set_current(file.path.as_str());
        let result = full_hash(root, file).map_err(|e| e.to_string());
        progress.step(file.size() as i64);
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
    let by_full: Vec<Keyed<(u64, [u8; 32])>> = head_groups
        .iter()
        .flatten()
        .filter_map(|&i| analysis.hashes[i].map(|hash| ((files[i].size(), hash), i)))
        .collect();
    drop(head_groups);
    for mut members in shared_keys(by_full) {
        members.sort_by(|&a, &b| {
            let (fa, fb) = (&files[a], &files[b]);
            fa.fingerprint
                .mtime_ns
                .cmp(&fb.fingerprint.mtime_ns)
                .then(fa.path.as_str().len().cmp(&fb.path.as_str().len()))
                .then(fa.path.as_str().cmp(fb.path.as_str()))
        });
        let keeper = members[0];
        for &other in &members[1..] {
            analysis.duplicate_of[other] = Some(keeper);
            Progress::add(&progress.duplicates_found, 1);
            Progress::add(&progress.reclaimable_bytes, files[other].size() as i64);
        }
        analysis.groups += 1;
    }
    analysis
}
