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
//!
//! Hashes the caller already knows ([`Known`], from the persistent hash
//! cache, see [`super::hash_cache`]) are used instead of reading: a file
//! whose head (or full hash) is known is not opened for it. The stages and
//! their decisions are otherwise the same, so a plan made with a full cache
//! is the plan made with an empty one. What was read is returned
//! ([`DuplicateAnalysis::computed`], [`DuplicateAnalysis::bytes_read`]) for
//! the caller to keep.
//!
//! Memory: what is kept per file is its full hash where one was computed
//! (33 bytes a file, [`DuplicateAnalysis::hashes`]) and its keeper; what was
//! read is a list of indexes, plus the head hash of the few files larger
//! than a head (for a smaller one the head hash is the full hash). Groups
//! are runs of a sorted flat vector, never a map of vectors
//! (docs/organize.md, "Memory").

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
};

use super::{
    hash_cache::{Known, KnownHashes},
    parallel::map_ordered,
    progress::Progress,
    scan::{ScannedFile, ScannedFiles},
};
use crate::storage::{StorageError, root::UserRoot};

/// Bytes hashed in the head stage; files no larger are fully hashed there.
pub const HEAD_BYTES: usize = 16 * 1024;

/// Per-file results, indexed like the scanned files.
#[derive(Debug, Default)]
pub struct DuplicateAnalysis {
    /// Full blake3 hash where it was computed.
    pub hashes: Vec<Option<[u8; 32]>>,
    /// Index of the keeper of each file's duplicate group, [`NO_KEEPER`]
    /// for keepers and unique files (4 bytes a file, where an
    /// `Option<usize>` took 16): see [`DuplicateAnalysis::duplicate_of`].
    keepers: Vec<u32>,
    /// How many files are duplicates of a keeper.
    pub duplicates: usize,
    /// Files that could not be read, with the reason.
    pub unreadable: HashMap<usize, String>,
    /// Number of duplicate groups.
    pub groups: usize,
    /// Files whose head was read in this run, in index order.
    heads_read: Vec<usize>,
    /// Of those, the ones whose head was not the whole file, with their
    /// head hash, in index order (the others' is in `hashes`).
    partial_heads: Vec<(usize, [u8; 32])>,
    /// Files whose full hash was read in stage 3, in index order.
    fulls_read: Vec<usize>,
    /// Bytes of file content read for hashing.
    pub bytes_read: u64,
}

/// [`DuplicateAnalysis::keepers`] of a file that is no duplicate.
const NO_KEEPER: u32 = u32::MAX;

impl DuplicateAnalysis {
    /// The index of the keeper of file `i`'s duplicate group, if `i` is a
    /// duplicate of another file.
    pub fn duplicate_of(&self, i: usize) -> Option<usize> {
        match self.keepers.get(i) {
            Some(&NO_KEEPER) | None => None,
            Some(&k) => Some(k as usize),
        }
    }

    /// Whether anything of file `i` was read in this run.
    pub fn was_read(&self, i: usize) -> bool {
        self.heads_read.binary_search(&i).is_ok() || self.fulls_read.binary_search(&i).is_ok()
    }

    /// The files whose head or full hash was read in this run (not taken
    /// from the known hashes), in index order, with everything now known of
    /// them: what was read, else what `known` held before.
    pub fn computed<'a>(
        &'a self,
        known: &'a KnownHashes,
    ) -> impl Iterator<Item = (usize, Known)> + 'a {
        let (mut heads, mut fulls) = (
            self.heads_read.iter().peekable(),
            self.fulls_read.iter().peekable(),
        );
        // The union of two sorted lists.
        let indexes = std::iter::from_fn(move || match (heads.peek(), fulls.peek()) {
            (Some(&&h), Some(&&f)) if h == f => {
                heads.next();
                fulls.next()
            }
            (Some(&&h), Some(&&f)) if h < f => heads.next(),
            (Some(_), Some(_)) => fulls.next(),
            (Some(_), None) => heads.next(),
            (None, _) => fulls.next(),
        });
        indexes.map(move |&i| {
            let before = known.get(i).unwrap_or_default();
            let head = if self.heads_read.binary_search(&i).is_ok() {
                match self.partial_heads.binary_search_by_key(&i, |&(j, _)| j) {
                    Ok(at) => Some(self.partial_heads[at].1),
                    // A head that was the whole file: its hash is the full one.
                    Err(_) => self.hashes[i],
                }
            } else {
                before.head
            };
            let now = Known {
                head,
                full: self.hashes[i].or(before.full),
            };
            (i, now)
        })
    }
}

/// The files whose hashes [`find_duplicates`] may need: those sharing their
/// size with another non-empty file, or every file with `hash_all`. In
/// index order.
pub fn hash_candidates(files: &ScannedFiles, hash_all: bool) -> Vec<usize> {
    if hash_all {
        return (0..files.len()).collect();
    }
    let by_size: Vec<Keyed<u64>> = (0..files.len())
        .filter(|&i| files.size(i) > 0)
        .map(|i| (files.size(i), i))
        .collect();
    let mut candidates: Vec<usize> = shared_keys(by_size).into_iter().flatten().collect();
    candidates.sort_unstable();
    candidates
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
/// full hash. `known`: hashes already known by file index, used instead of
/// reading the file (the caller vouches that they are of its content now).
pub fn find_duplicates(
    root: &UserRoot,
    files: &ScannedFiles,
    hash_all: bool,
    known: &KnownHashes,
    threads: usize,
    progress: &Progress,
) -> DuplicateAnalysis {
    let mut analysis = DuplicateAnalysis {
        hashes: vec![None; files.len()],
        // Indexes must fit below NO_KEEPER: 4 billion files would take
        // hundreds of gigabytes before this.
        keepers: vec![NO_KEEPER; files.len()],
        ..Default::default()
    };
    let bytes_read = AtomicU64::new(0);
    // A file no larger than the head: its head hash is its full hash.
    let known_head = |i: usize| {
        known.get(i).and_then(|k| {
            k.head
                .or(k.full.filter(|_| files.size(i) <= HEAD_BYTES as u64))
        })
    };

    // Stage 1: sizes shared by at least two non-empty files. Candidates are
    // read in scan order, which keeps a folder's files together on disk.
    let candidates: Vec<usize> = hash_candidates(files, false);
    let candidate_bytes: i64 = candidates.iter().map(|&i| files.size(i) as i64).sum();
    progress.start_phase(candidates.len() as i64, candidate_bytes);

    // Stage 2: head hash of candidates (a full hash for small files).
    let heads = map_ordered(&candidates, threads, HASH_CHUNK, |&i| {
        if progress.is_cancelled() {
            return (i, Err("cancelled".to_string()));
        }
        let size = files.size(i);
        let complete = size <= HEAD_BYTES as u64;
        if let Some(hash) = known_head(i) {
            progress.step(size.min(HEAD_BYTES as u64) as i64);
            return (i, Ok((hash, complete, false)));
        }
        let file = files.get(i);
        progress.set_current(file.path.as_str());
        let result = read_head(root, &file)
            .map_err(|e| e.to_string())
            .map(|head| {
                bytes_read.fetch_add(head.len() as u64, Ordering::Relaxed);
                let hash = *blake3::hash(&head).as_bytes();
                (hash, head.len() as u64 == file.size(), true)
            });
        progress.step(file.size().min(HEAD_BYTES as u64) as i64);
        (i, result)
    });
    drop(candidates);
    // Filled while `heads` is read (and freed) chunk by chunk.
    let mut by_head: Vec<Keyed<(u64, [u8; 32])>> = Vec::with_capacity(heads.len());
    for (i, result) in heads {
        match result {
            Ok((hash, complete, read)) => {
                if complete {
                    analysis.hashes[i] = Some(hash);
                }
                if read {
                    // Candidates come in index order: both lists stay sorted.
                    analysis.heads_read.push(i);
                    if !complete {
                        analysis.partial_heads.push((i, hash));
                    }
                }
                by_head.push(((files.size(i), hash), i));
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
    let full_bytes: i64 = need_full.iter().map(|&i| files.size(i) as i64).sum();
    progress.start_phase(need_full.len() as i64, full_bytes);
    let fulls = map_ordered(&need_full, threads, HASH_CHUNK, |&i| {
        if progress.is_cancelled() {
            return (i, Err("cancelled".to_string()));
        }
        let file = files.get(i);
        if let Some(hash) = known.get(i).and_then(|k| k.full) {
            progress.step(file.size() as i64);
            return (i, Ok((hash, false)));
        }
        progress.set_current(file.path.as_str());
        let result = full_hash(root, &file).map_err(|e| e.to_string());
        if result.is_ok() {
            bytes_read.fetch_add(file.size(), Ordering::Relaxed);
        }
        progress.step(file.size() as i64);
        (i, result.map(|hash| (hash, true)))
    });
    for (i, result) in fulls {
        match result {
            Ok((hash, read)) => {
                analysis.hashes[i] = Some(hash);
                if read {
                    // `need_full` is in index order: the list stays sorted.
                    analysis.fulls_read.push(i);
                }
            }
            Err(reason) => {
                analysis.unreadable.insert(i, reason);
            }
        }
    }
    analysis.heads_read.shrink_to_fit();
    analysis.bytes_read = bytes_read.load(Ordering::Relaxed);

    // Group by (size, full hash) among the files that shared size and head.
    let by_full: Vec<Keyed<(u64, [u8; 32])>> = head_groups
        .iter()
        .flatten()
        .filter_map(|&i| analysis.hashes[i].map(|hash| ((files.size(i), hash), i)))
        .collect();
    drop(head_groups);
    for mut members in shared_keys(by_full) {
        // Oldest, then shortest path, then path order (as text).
        members.sort_by_cached_key(|&i| {
            let path = files.get(i).path;
            let mtime = files.fingerprint(i).mtime_ns;
            (mtime, path.as_str().len(), path.as_str().to_owned())
        });
        let keeper = members[0];
        for &other in &members[1..] {
            analysis.keepers[other] = u32::try_from(keeper).expect("under 2^32 - 1 files");
            analysis.duplicates += 1;
            Progress::add(&progress.duplicates_found, 1);
            Progress::add(&progress.reclaimable_bytes, files.size(other) as i64);
        }
        analysis.groups += 1;
    }
    analysis
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{engine::scan, storage::UserPath};

    fn big(head: u8, tail: u8) -> Vec<u8> {
        let mut body = vec![head; HEAD_BYTES];
        body.resize(40_000, tail);
        body
    }

    /// The decisions of an analysis, as text.
    fn summary(a: &DuplicateAnalysis) -> String {
        format!("{:?} {:?} {}", a.hashes, a.keepers, a.groups)
    }

    #[test]
    fn known_hashes_replace_reading_and_change_no_decision() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [
            ("a.bin", big(1, 2)),
            ("b.bin", big(1, 2)),
            ("c.bin", big(1, 3)),
            ("s1.txt", b"hi".to_vec()),
            ("s2.txt", b"hi".to_vec()),
            ("unique.txt", b"a size of its own".to_vec()),
        ] {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let root = UserRoot::open_existing(dir.path()).unwrap();
        let progress = Progress::default();
        let files = scan::scan(&root, &UserPath::root(), &Default::default(), &progress)
            .unwrap()
            .files;
        let run = |known: &KnownHashes| {
            find_duplicates(&root, &files, false, known, 2, &Progress::default())
        };

        let none = KnownHashes::default();
        let cold = run(&none);
        assert_eq!(
            cold.bytes_read,
            (3 * HEAD_BYTES + 2 * 2 + 3 * 40_000) as u64
        );
        assert_eq!(cold.groups, 2);
        let cold_computed: Vec<(usize, Known)> = cold.computed(&none).collect();
        assert_eq!(cold_computed.len(), 5, "{cold_computed:?}");
        assert_eq!(hash_candidates(&files, false).len(), 5);
        // A small file's head is the whole file; a big one's is not.
        for &(i, k) in &cold_computed {
            assert!(cold.was_read(i));
            assert!(k.head.is_some() && k.full.is_some(), "{i}: {k:?}");
            assert_eq!(k.head == k.full, files.size(i) <= HEAD_BYTES as u64);
        }

        // Everything known: nothing read, nothing new, the same decisions.
        let all: KnownHashes = cold_computed.iter().copied().collect();
        let warm = run(&all);
        assert_eq!(warm.bytes_read, 0);
        assert_eq!(warm.computed(&all).count(), 0);
        assert_eq!(summary(&warm), summary(&cold));

        // Only the heads known: the whole files are read, the heads kept.
        let heads: KnownHashes = cold_computed
            .iter()
            .map(|&(i, k)| {
                let small = files.size(i) <= HEAD_BYTES as u64;
                (
                    i,
                    Known {
                        head: k.head,
                        full: k.full.filter(|_| small),
                    },
                )
            })
            .collect();
        let partial = run(&heads);
        assert_eq!(partial.bytes_read, 3 * 40_000);
        assert_eq!(summary(&partial), summary(&cold));
        let completed: Vec<(usize, Known)> = partial.computed(&heads).collect();
        assert_eq!(completed.len(), 3);
        for (i, k) in completed {
            assert_eq!(Some(k), all.get(i));
        }
    }
}
