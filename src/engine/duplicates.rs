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
//! Memory (docs/organize.md, "Memory"): groups are runs of equal keys in
//! a sorted stream of fixed-size records (`engine::spill`), held one run at
//! a time; the sort keeps at most `spill.records()` records in memory and
//! writes the rest in sorted runs to unnamed temporary files. The full
//! hashes are a [`HashStore`] (36 bytes per hashed file, in memory below the
//! limit, in a temporary file above it), read back in index order by the
//! planner and the hash cache. What stays per file is its keeper (4 bytes)
//! and a few bits ("hashed whole by its head", "in a group"); what was read
//! is a list of indexes, plus the head hash of the few files larger than a
//! head (for a smaller one the head hash is the full hash).

use std::{
    collections::HashMap,
    io,
    sync::atomic::{AtomicU64, Ordering},
};

use fixedbitset::FixedBitSet;

use super::{
    hash_cache::{Known, KnownHashes},
    parallel::map_ordered,
    progress::Progress,
    scan::{ScannedFile, ScannedFiles},
    spill::{Record, Sorter, Spill, Store, runs_of_equal},
};
use crate::storage::{StorageError, root::UserRoot};

/// Bytes hashed in the head stage; files no larger are fully hashed there.
pub const HEAD_BYTES: usize = 16 * 1024;

/// Per-file results, indexed like the scanned files.
#[derive(Debug, Default)]
pub struct DuplicateAnalysis {
    /// Full blake3 hash of each file where it was computed.
    hashes: HashStore,
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

/// A file index as records hold it. Indexes must fit below [`NO_KEEPER`]:
/// 4 billion files would take hundreds of gigabytes before this.
fn index32(i: usize) -> u32 {
    u32::try_from(i)
        .ok()
        .filter(|&i| i != NO_KEEPER)
        .expect("under 2^32 - 1 files")
}

impl DuplicateAnalysis {
    /// The index of the keeper of file `i`'s duplicate group, if `i` is a
    /// duplicate of another file.
    pub fn duplicate_of(&self, i: usize) -> Option<usize> {
        match self.keepers.get(i) {
            Some(&NO_KEEPER) | None => None,
            Some(&k) => Some(k as usize),
        }
    }

    /// The full hashes, to be read in index order.
    pub fn hashes(&self) -> HashCursor<'_> {
        self.hashes.cursor()
    }

    /// How many files have a full hash.
    pub fn hashed(&self) -> u64 {
        self.hashes.0.len()
    }

    /// Whether anything of file `i` was read in this run.
    pub fn was_read(&self, i: usize) -> bool {
        self.heads_read.binary_search(&i).is_ok() || self.fulls_read.binary_search(&i).is_ok()
    }

    /// The files whose head or full hash was read in this run (not taken
    /// from the known hashes), in index order, with everything now known of
    /// them: what was read, else what `known` held before. An item is an
    /// error when the spilled hashes could not be read back.
    pub fn computed<'a>(
        &'a self,
        known: &'a KnownHashes,
    ) -> impl Iterator<Item = io::Result<(usize, Known)>> + 'a {
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
        let mut hashes = self.hashes();
        indexes.map(move |&i| {
            let full = hashes.get(i)?;
            let before = known.get(i).unwrap_or_default();
            let head = if self.heads_read.binary_search(&i).is_ok() {
                match self.partial_heads.binary_search_by_key(&i, |&(j, _)| j) {
                    Ok(at) => Some(self.partial_heads[at].1),
                    // A head that was the whole file: its hash is the full one.
                    Err(_) => full,
                }
            } else {
                before.head
            };
            let now = Known {
                head,
                full: full.or(before.full),
            };
            Ok((i, now))
        })
    }
}

/// A file's full hash, as the [`HashStore`] keeps it (ordered by index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Hashed {
    index: u32,
    hash: [u8; 32],
}

impl Record for Hashed {
    const SIZE: usize = 4 + 32;
    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.index.to_be_bytes());
        out[4..].copy_from_slice(&self.hash);
    }
    fn decode(bytes: &[u8]) -> Self {
        Hashed {
            index: u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")),
            hash: bytes[4..].try_into().expect("32 bytes"),
        }
    }
}

/// The full hashes of a run, by file index: only the files hashed take
/// room (36 bytes each), in memory up to the spill limit, else in a
/// temporary file. Read in index order through a [`HashCursor`].
#[derive(Debug, Default)]
pub struct HashStore(Store<Hashed>);

impl HashStore {
    fn cursor(&self) -> HashCursor<'_> {
        HashCursor(self.0.iter().peekable())
    }
}

/// Reads a [`HashStore`] forward: [`HashCursor::get`] of non-decreasing
/// indexes (the planner's seq order, the hash cache's index order).
pub struct HashCursor<'a>(
    std::iter::Peekable<Box<dyn Iterator<Item = io::Result<Hashed>> + Send + 'a>>,
);

impl HashCursor<'_> {
    /// The full hash of file `i`, if it was computed. `i` must be at least
    /// the index asked before (an earlier one reads as None).
    pub fn get(&mut self, i: usize) -> io::Result<Option<[u8; 32]>> {
        loop {
            match self.0.peek() {
                Some(Ok(h)) if (h.index as usize) < i => {
                    self.0.next();
                }
                Some(Ok(h)) if h.index as usize == i => return Ok(Some(h.hash)),
                Some(Ok(_)) | None => return Ok(None),
                Some(Err(_)) => {
                    return Err(self.0.next().and_then(Result::err).expect("an error"));
                }
            }
        }
    }
}

/// A file's index with its size: what stage 1 groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct BySize {
    size: u64,
    index: u32,
}

impl Record for BySize {
    const SIZE: usize = 8 + 4;
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.size.to_be_bytes());
        out[8..].copy_from_slice(&self.index.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Self {
        BySize {
            size: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            index: u32::from_be_bytes(bytes[8..].try_into().expect("4 bytes")),
        }
    }
}

/// A file's index with its size and a hash (of its head in stage 2, of
/// all of it in stage 3): what those stages group by. `complete`: the
/// hash is of the whole file (a head no shorter than the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct BySizeHash {
    size: u64,
    hash: [u8; 32],
    index: u32,
    complete: bool,
}

impl Record for BySizeHash {
    const SIZE: usize = 8 + 32 + 4 + 1;
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.size.to_be_bytes());
        out[8..40].copy_from_slice(&self.hash);
        out[40..44].copy_from_slice(&self.index.to_be_bytes());
        out[44] = u8::from(self.complete);
    }
    fn decode(bytes: &[u8]) -> Self {
        BySizeHash {
            size: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            hash: bytes[8..40].try_into().expect("32 bytes"),
            index: u32::from_be_bytes(bytes[40..44].try_into().expect("4 bytes")),
            complete: bytes[44] != 0,
        }
    }
}

/// The runs of two or more records of `sorter` with equal keys, in key
/// order, one run in memory at a time. Every record holds its file's
/// index, so the order (and with it every decision taken from the groups)
/// is the same whether or not the sort spilled.
fn shared_keys<R: Record, K: PartialEq>(
    sorter: Sorter<R>,
    key: impl Fn(&R) -> K,
) -> io::Result<impl Iterator<Item = io::Result<Vec<R>>>> {
    Ok(runs_of_equal(sorter.finish()?, key))
}

/// The files whose hashes [`find_duplicates`] may need: those sharing their
/// size with another non-empty file, or every file with `hash_all`. In
/// index order.
pub fn hash_candidates(
    files: &ScannedFiles,
    hash_all: bool,
    spill: &Spill,
) -> io::Result<Vec<usize>> {
    if hash_all {
        return Ok((0..files.len()).collect());
    }
    let mut by_size = spill.sorter_for(files.len());
    for i in (0..files.len()).filter(|&i| files.size(i) > 0) {
        by_size.push(BySize {
            size: files.size(i),
            index: index32(i),
        })?;
    }
    let mut shared = FixedBitSet::with_capacity(files.len());
    for group in shared_keys(by_size, |r| r.size)? {
        for r in group? {
            shared.insert(r.index as usize);
        }
    }
    Ok(shared.ones().collect())
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

/// `indexes` in the order their files are best read in from a cold disk:
/// by (device, inode). A folder lists its files in the order of its name
/// hashes (ext4's htree, XFS, btrfs), unrelated to where their data lies;
/// a filesystem places a file's inode, and usually its data, in the order
/// and the region of its creation, so reading by inode turns a scan-order
/// walk of random seeks into one mostly forward (as fclones does for
/// rotational disks). With the page cache warm the order costs nothing but
/// this sort. Decisions never depend on it: every result is kept by index.
fn in_disk_order(files: &ScannedFiles, mut indexes: Vec<usize>) -> Vec<usize> {
    indexes.sort_unstable_by_key(|&i| {
        let fingerprint = files.fingerprint(i);
        (fingerprint.dev, fingerprint.ino, i)
    });
    indexes
}

/// Files hashed per draw from the worker threads' shared counter.
const HASH_CHUNK: usize = 64;

/// Finds duplicate groups among `files`; with `hash_all`, every file gets a
/// full hash. `known`: hashes already known by file index, used instead of
/// reading the file (the caller vouches that they are of its content now).
/// `spill`: how many records a sort holds in memory, and where it writes
/// the rest. An error is an I/O error of the spill files; a file that
/// cannot be read is not an error (it is in `unreadable`).
pub fn find_duplicates(
    root: &UserRoot,
    files: &ScannedFiles,
    hash_all: bool,
    known: &KnownHashes,
    threads: usize,
    progress: &Progress,
    spill: &Spill,
) -> io::Result<DuplicateAnalysis> {
    let mut analysis = DuplicateAnalysis {
        keepers: vec![NO_KEEPER; files.len()],
        ..Default::default()
    };
    // Sized once the candidates are known (below).
    let mut hashes;
    // Files whose head was the whole file: their full hash is known.
    let mut complete = FixedBitSet::with_capacity(files.len());
    let bytes_read = AtomicU64::new(0);
    // A file no larger than the head: its head hash is its full hash.
    let known_head = |i: usize| {
        known.get(i).and_then(|k| {
            k.head
                .or(k.full.filter(|_| files.size(i) <= HEAD_BYTES as u64))
        })
    };

    // Stage 1: sizes shared by at least two non-empty files. Candidates are
    // read in inode order ([`in_disk_order`]).
    let candidates: Vec<usize> = in_disk_order(files, hash_candidates(files, false, spill)?);
    // Every candidate may get a full hash (and with `hash_all`, every file).
    hashes = spill.sorter_for::<Hashed>(if hash_all {
        files.len()
    } else {
        candidates.len()
    });
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
    let mut by_head = spill.sorter_for::<BySizeHash>(heads.len());
    for (i, result) in heads {
        match result {
            Ok((hash, whole, read)) => {
                if whole {
                    complete.insert(i);
                    hashes.push(Hashed {
                        index: index32(i),
                        hash,
                    })?;
                }
                if read {
                    // In disk order: both lists are sorted by index below.
                    analysis.heads_read.push(i);
                    if !whole {
                        analysis.partial_heads.push((i, hash));
                    }
                }
                by_head.push(BySizeHash {
                    size: files.size(i),
                    hash,
                    index: index32(i),
                    complete: whole,
                })?;
            }
            Err(reason) => {
                analysis.unreadable.insert(i, reason);
            }
        }
    }
    analysis.heads_read.sort_unstable();
    analysis.partial_heads.sort_unstable_by_key(|&(i, _)| i);

    // Files whose size and head agree with another's. Those whose head was
    // the whole file are grouped by it at once; the others need stage 3.
    let mut in_head_group = FixedBitSet::with_capacity(files.len());
    let mut by_full = spill.sorter::<BySizeHash>();
    for group in shared_keys(by_head, |r| (r.size, r.hash))? {
        for member in group? {
            in_head_group.insert(member.index as usize);
            if member.complete {
                by_full.push(member)?;
            }
        }
    }

    // Stage 3: full hash where size and head agree (and not yet complete).
    let need_full: Vec<usize> = (0..files.len())
        .filter(|&i| {
            (hash_all || in_head_group.contains(i))
                && !complete.contains(i)
                && !analysis.unreadable.contains_key(&i)
        })
        .collect();
    let need_full = in_disk_order(files, need_full);
    drop(complete);
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
                hashes.push(Hashed {
                    index: index32(i),
                    hash,
                })?;
                if in_head_group.contains(i) {
                    by_full.push(BySizeHash {
                        size: files.size(i),
                        hash,
                        index: index32(i),
                        complete: true,
                    })?;
                }
                if read {
                    // In disk order: sorted by index below.
                    analysis.fulls_read.push(i);
                }
            }
            Err(reason) => {
                analysis.unreadable.insert(i, reason);
            }
        }
    }
    drop(in_head_group);
    analysis.fulls_read.sort_unstable();
    analysis.heads_read.shrink_to_fit();
    analysis.bytes_read = bytes_read.load(Ordering::Relaxed);
    analysis.hashes = HashStore(hashes.into_store()?);

    // Group by (size, full hash) among the files that shared size and head.
    for group in shared_keys(by_full, |r| (r.size, r.hash))? {
        let mut members: Vec<usize> = group?.iter().map(|r| r.index as usize).collect();
        // Oldest, then shortest path, then path order (as text).
        members.sort_by_cached_key(|&i| {
            let path = files.get(i).path;
            let mtime = files.fingerprint(i).mtime_ns;
            (mtime, path.as_str().len(), path.as_str().to_owned())
        });
        let keeper = index32(members[0]);
        for &other in &members[1..] {
            analysis.keepers[other] = keeper;
            analysis.duplicates += 1;
            Progress::add(&progress.duplicates_found, 1);
            Progress::add(&progress.reclaimable_bytes, files.size(other) as i64);
        }
        analysis.groups += 1;
    }
    Ok(analysis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{engine::scan, storage::UserPath};

    fn computed(a: &DuplicateAnalysis, known: &KnownHashes) -> Vec<(usize, Known)> {
        a.computed(known).collect::<io::Result<_>>().unwrap()
    }

    fn big(head: u8, tail: u8) -> Vec<u8> {
        let mut body = vec![head; HEAD_BYTES];
        body.resize(40_000, tail);
        body
    }

    /// The decisions of an analysis, as text: every file's full hash,
    /// keepers, groups and the unreadable files.
    fn summary(a: &DuplicateAnalysis) -> String {
        let mut hashes = a.hashes();
        let hashes: Vec<Option<[u8; 32]>> = (0..a.keepers.len())
            .map(|i| hashes.get(i).unwrap())
            .collect();
        let mut unreadable: Vec<_> = a.unreadable.iter().collect();
        unreadable.sort();
        format!(
            "{hashes:?} {:?} {} {} {unreadable:?}",
            a.keepers, a.groups, a.duplicates
        )
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
            find_duplicates(
                &root,
                &files,
                false,
                known,
                2,
                &Progress::default(),
                &Spill::in_memory(),
            )
            .unwrap()
        };

        let none = KnownHashes::default();
        let cold = run(&none);
        assert_eq!(
            cold.bytes_read,
            (3 * HEAD_BYTES + 2 * 2 + 3 * 40_000) as u64
        );
        assert_eq!(cold.groups, 2);
        let cold_computed: Vec<(usize, Known)> = computed(&cold, &none);
        assert_eq!(cold_computed.len(), 5, "{cold_computed:?}");
        assert_eq!(
            hash_candidates(&files, false, &Spill::in_memory())
                .unwrap()
                .len(),
            5
        );
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
        assert_eq!(computed(&warm, &all).len(), 0);
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
        let completed: Vec<(usize, Known)> = computed(&partial, &heads);
        assert_eq!(completed.len(), 3);
        for (i, k) in completed {
            assert_eq!(Some(k), all.get(i));
        }
    }

    /// A tree with several duplicate groups, files of one size but other
    /// content, files with one head but other tails, a file gone between
    /// the scan and the hashing, and a seeded crowd of small files drawn
    /// from a few sizes and contents.
    fn mixed_tree(dir: &std::path::Path) -> (UserRoot, ScannedFiles) {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let write = |name: &str, body: &[u8], mtime: u64| {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, body).unwrap();
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
        };
        write("a/big1.bin", &big(1, 2), 3_000);
        write("b/big1.bin", &big(1, 2), 2_000);
        write("c/deeper/big1.bin", &big(1, 2), 2_000);
        write("a/big2.bin", &big(1, 3), 1_000);
        write("b/big3.bin", &big(1, 4), 1_000);
        write("c/big4.bin", &big(5, 4), 1_000);
        write("c/big4-copy.bin", &big(5, 4), 1_000);
        write("a/same-size-1.txt", b"12345", 1_000);
        write("b/same-size-2.txt", b"abcde", 1_000);
        write("a/gone.txt", b"fghij", 1_000);
        write("b/gone-twin.txt", b"fghij", 1_000);
        let mut rng = StdRng::seed_from_u64(24);
        for n in 0..80 {
            let size = [3usize, 7, 100, 5][rng.random_range(0..4)];
            let fill = rng.random_range(0..3u8);
            let folder = ["a", "b", "c/deeper", "d"][rng.random_range(0..4)];
            let mtime = rng.random_range(1_000..1_005);
            write(&format!("{folder}/crowd-{n}.dat"), &vec![fill; size], mtime);
        }
        let root = UserRoot::open_existing(dir).unwrap();
        let files = scan::scan(
            &root,
            &UserPath::root(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap()
        .files;
        // Gone between the scan and the hash phase: unreadable.
        std::fs::remove_file(dir.join("a/gone.txt")).unwrap();
        (root, files)
    }

    #[test]
    fn every_spill_limit_gives_the_in_memory_analysis() {
        let dir = tempfile::tempdir().unwrap();
        let spill_dir = tempfile::tempdir().unwrap();
        let (root, files) = mixed_tree(dir.path());
        let none = KnownHashes::default();
        let run = |spill: &Spill| {
            find_duplicates(&root, &files, false, &none, 2, &Progress::default(), spill).unwrap()
        };
        let memory = run(&Spill::in_memory());
        let index = |path: &str| {
            (0..files.len())
                .find(|&i| files.get(i).path.as_str() == path)
                .unwrap()
        };
        // The analysis itself is right: the oldest, then shortest, copy
        // keeps; same size or same head is not the same content.
        assert_eq!(
            memory.duplicate_of(index("a/big1.bin")),
            Some(index("b/big1.bin"))
        );
        assert_eq!(
            memory.duplicate_of(index("c/deeper/big1.bin")),
            Some(index("b/big1.bin"))
        );
        assert_eq!(memory.duplicate_of(index("b/big1.bin")), None);
        for single in [
            "a/big2.bin",
            "b/big3.bin",
            "a/same-size-1.txt",
            "b/same-size-2.txt",
        ] {
            assert_eq!(memory.duplicate_of(index(single)), None, "{single}");
        }
        assert_eq!(memory.duplicate_of(index("b/gone-twin.txt")), None);
        assert!(memory.unreadable.contains_key(&index("a/gone.txt")));
        assert_eq!(memory.unreadable.len(), 1);
        // Two big groups and the crowd's (3 sizes of 4 × 3 fills, nearly all
        // shared by two files or more).
        assert!(memory.groups >= 8, "{}", memory.groups);
        let expected = (
            summary(&memory),
            computed(&memory, &none),
            memory.bytes_read,
        );

        for limit in [1, 2, 3] {
            let spill = Spill::new(spill_dir.path(), limit.try_into().unwrap());
            let spilled = run(&spill);
            assert!(spilled.hashes.0.on_disk(), "limit {limit}");
            let got = (
                summary(&spilled),
                computed(&spilled, &none),
                spilled.bytes_read,
            );
            assert_eq!(got, expected, "limit {limit}");
            assert_eq!(
                hash_candidates(&files, false, &spill).unwrap(),
                hash_candidates(&files, false, &Spill::in_memory()).unwrap()
            );
        }
        // With every file hashed too.
        let all = |spill: &Spill| {
            let a = find_duplicates(&root, &files, true, &none, 1, &Progress::default(), spill)
                .unwrap();
            (summary(&a), computed(&a, &none))
        };
        let spill = Spill::new(spill_dir.path(), 2.try_into().unwrap());
        assert_eq!(all(&spill), all(&Spill::in_memory()));
        assert_eq!(std::fs::read_dir(spill_dir.path()).unwrap().count(), 0);
    }
}
