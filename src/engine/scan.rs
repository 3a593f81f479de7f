//! Step 1: scan the source folder.
//!
//! By handles from the source opened beneath the root at the moment of use
//! ([`crate::storage::walk`]), never following symlinks (they are recorded
//! as skipped), skipping
//! hidden entries, the operation's exclude globs and the folders the
//! operation itself writes to (`_duplicates/`, the trash). Every regular file
//! is stat'ed once; hard links are de-duplicated by (device, inode) so one
//! file is never counted or moved twice (the extra links are recorded as
//! skipped). Names that are not valid UTF-8 are skipped with a recorded
//! reason: they are left exactly where they are.

use std::{
    collections::HashMap,
    ffi::{OsStr, OsString},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use globset::GlobSet;

use super::progress::Progress;
use crate::storage::{
    Fingerprint,
    path::UserPath,
    root::UserRoot,
    walk::{Event, Kind, Visit, Walk, open_dir_at},
};

/// A regular file found by the scan, as the steps that read or place it
/// see it: built by [`ScannedFiles::get`] when needed (a scan holds its
/// files compactly, not as these). Size, device, inode and modification
/// time all live in the fingerprint, and the path relative to the scanned
/// folder is a suffix of `path`.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    /// Path relative to the user's root.
    pub path: UserPath,
    /// What a later move checks the file against.
    pub fingerprint: Fingerprint,
    /// Status-change time (nanoseconds since the epoch): the apply step
    /// skips a file whose ctime moved, which catches a rewrite that kept the
    /// size and set the mtime back. Not part of the [`Fingerprint`]: a
    /// rename changes it, so it cannot identify a file after its move.
    pub ctime_ns: i128,
    /// Where, in `path`, the part relative to the scanned folder starts.
    relative_start: u32,
}

impl ScannedFile {
    /// A file found under the scanned folder `source`.
    pub fn new(
        path: UserPath,
        source: &UserPath,
        fingerprint: Fingerprint,
        ctime_ns: i128,
    ) -> ScannedFile {
        debug_assert!(path.starts_with(source));
        let relative_start = relative_offset(source).min(path.as_str().len());
        ScannedFile {
            relative_start: u32::try_from(relative_start).unwrap_or(0),
            path,
            fingerprint,
            ctime_ns,
        }
    }

    /// The path relative to the scanned folder (for globs and custom rules).
    pub fn relative(&self) -> &str {
        &self.path.as_str()[self.relative_start as usize..]
    }

    pub fn size(&self) -> u64 {
        self.fingerprint.size
    }

    pub fn device(&self) -> u64 {
        self.fingerprint.dev
    }

    pub fn inode(&self) -> u64 {
        self.fingerprint.ino
    }

    /// The modification time (the Unix epoch if out of range).
    pub fn modified(&self) -> DateTime<Utc> {
        let ns = self.fingerprint.mtime_ns;
        i64::try_from(ns.div_euclid(1_000_000_000))
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, ns.rem_euclid(1_000_000_000) as u32))
            .unwrap_or_default()
    }
}

/// An entry the scan did not take, and why.
#[derive(Debug, Clone)]
pub struct SkippedEntry {
    /// Display form of the path (lossy for names that are not UTF-8).
    pub path: String,
    pub size: u64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ScanResult {
    pub files: ScannedFiles,
    pub skipped: Vec<SkippedEntry>,
}

/// The regular files a scan found, in walk order, stored compactly: this
/// is what an organize holds per file from the scan until the plan is
/// journaled.
///
/// A file is 56 bytes of fixed fields ([`Entry`]) plus its name's bytes in
/// one string shared by all; each folder's path is kept once per run of its
/// files (a folder's files come together in the walk, except where a
/// subfolder's name sorts between them). The form every step used before,
/// a [`ScannedFile`] per file with a path string of its own and `i128`
/// times, took about 150 bytes a file (docs/organize.md, "Memory").
/// [`ScannedFiles::get`] builds a file's [`ScannedFile`] when a step needs
/// its path.
#[derive(Debug, Default)]
pub struct ScannedFiles {
    /// The folders holding the files, once per run of files in each.
    folders: Vec<UserPath>,
    /// Every file's name, one after another.
    names: String,
    /// The devices the files are on (almost always one).
    devices: Vec<u64>,
    entries: Vec<Entry>,
    /// Where, in a file's path, the part relative to the scanned folder
    /// starts.
    relative_start: usize,
}

/// One file of [`ScannedFiles`]: its fingerprint and ctime, split so that no
/// field needs 16-byte alignment, and where its folder and name are.
#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    ino: u64,
    mtime_secs: i64,
    ctime_secs: i64,
    /// The name's start in `names` (above 8 bits) and its length (the low
    /// 8 bits: a component is at most 255 bytes, `MAX_NAME_BYTES`).
    name: u64,
    mtime_nsec: u32,
    ctime_nsec: u32,
    /// Index in `folders`.
    folder: u32,
    /// Index in `devices`.
    device: u32,
}

const NS_PER_SEC: i128 = 1_000_000_000;

/// Seconds and nanoseconds of a time in nanoseconds since the epoch. Every
/// time here came from a stat's seconds (an `i64`) and nanoseconds: the
/// split gives them back exactly.
fn split_ns(ns: i128) -> (i64, u32) {
    let secs = ns.div_euclid(NS_PER_SEC);
    let secs = i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX });
    (secs, ns.rem_euclid(NS_PER_SEC) as u32)
}

impl ScannedFiles {
    /// An empty store for the files of a scan of `source`.
    pub fn new(source: &UserPath) -> ScannedFiles {
        ScannedFiles {
            relative_start: relative_offset(source),
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Makes room for `files` more files whose names total `name_bytes`.
    fn reserve(&mut self, files: usize, name_bytes: usize) {
        self.entries.reserve(files);
        self.names.reserve(name_bytes);
    }

    /// Adds a file, after the others.
    pub fn push(&mut self, path: &UserPath, fingerprint: Fingerprint, ctime_ns: i128) {
        let (folder, name) = match path.as_str().rfind('/') {
            Some(at) => (&path.as_str()[..at], &path.as_str()[at + 1..]),
            None => ("", path.as_str()),
        };
        if self.folders.last().map(UserPath::as_str) != Some(folder) {
            self.folders.push(path.parent().unwrap_or_default());
        }
        let folder = u32::try_from(self.folders.len() - 1).expect("under 2^32 folders");
        self.push_entry(folder, name, fingerprint, ctime_ns);
    }

    /// Adds file `i` of `other`, after the others.
    fn push_from(&mut self, other: &ScannedFiles, i: usize) {
        let entry = &other.entries[i];
        let folder = &other.folders[entry.folder as usize];
        if self.folders.last() != Some(folder) {
            self.folders.push(folder.clone());
        }
        let folder = u32::try_from(self.folders.len() - 1).expect("under 2^32 folders");
        self.push_entry(
            folder,
            other.name(i),
            other.fingerprint(i),
            other.ctime_ns(i),
        );
    }

    fn push_entry(&mut self, folder: u32, name: &str, fingerprint: Fingerprint, ctime_ns: i128) {
        let device = match self.devices.iter().rposition(|&d| d == fingerprint.dev) {
            Some(at) => at,
            None => {
                self.devices.push(fingerprint.dev);
                self.devices.len() - 1
            }
        };
        debug_assert!(name.len() <= crate::storage::path::MAX_NAME_BYTES);
        let start = self.names.len() as u64;
        self.names.push_str(name);
        let (mtime_secs, mtime_nsec) = split_ns(fingerprint.mtime_ns);
        let (ctime_secs, ctime_nsec) = split_ns(ctime_ns);
        self.entries.push(Entry {
            size: fingerprint.size,
            ino: fingerprint.ino,
            mtime_secs,
            ctime_secs,
            name: start << 8 | (name.len() as u64 & 0xff),
            mtime_nsec,
            ctime_nsec,
            folder,
            device: u32::try_from(device).expect("under 2^32 devices"),
        });
    }

    /// Keeps the first `n` files.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.entries.len() {
            return;
        }
        let entry = self.entries[n];
        self.names.truncate((entry.name >> 8) as usize);
        self.entries.truncate(n);
        let folders = self.entries.last().map_or(0, |e| e.folder as usize + 1);
        self.folders.truncate(folders);
    }

    /// File `i`'s name (the last component of its path).
    pub fn name(&self, i: usize) -> &str {
        let name = self.entries[i].name;
        let start = (name >> 8) as usize;
        &self.names[start..start + (name & 0xff) as usize]
    }

    pub fn size(&self, i: usize) -> u64 {
        self.entries[i].size
    }

    pub fn fingerprint(&self, i: usize) -> Fingerprint {
        let entry = &self.entries[i];
        Fingerprint {
            size: entry.size,
            mtime_ns: Fingerprint::nanos(entry.mtime_secs, i64::from(entry.mtime_nsec)),
            dev: self.devices[entry.device as usize],
            ino: entry.ino,
        }
    }

    pub fn ctime_ns(&self, i: usize) -> i128 {
        let entry = &self.entries[i];
        Fingerprint::nanos(entry.ctime_secs, i64::from(entry.ctime_nsec))
    }

    /// File `i` with its path.
    pub fn get(&self, i: usize) -> ScannedFile {
        let entry = &self.entries[i];
        let path = self.folders[entry.folder as usize].with_split_name(self.name(i));
        ScannedFile {
            relative_start: u32::try_from(self.relative_start.min(path.as_str().len()))
                .unwrap_or(0),
            path,
            fingerprint: self.fingerprint(i),
            ctime_ns: self.ctime_ns(i),
        }
    }

    /// Every file with its path, in order (each built as it is reached).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ScannedFile> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Bytes held, for the memory figures (docs/organize.md).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.names.capacity()
            + self.devices.capacity() * 8
            + self
                .folders
                .iter()
                .map(|f| std::mem::size_of::<UserPath>() + f.as_str().len())
                .sum::<usize>()
    }
}

/// Paths relative to `source` are suffixes of paths relative to the root:
/// they start this many bytes in.
fn relative_offset(source: &UserPath) -> usize {
    if source.is_root() {
        0
    } else {
        source.as_str().len() + 1
    }
}

/// A folder the scan could not read, as a skipped entry.
fn unreadable(path: &Path, error: &dyn std::fmt::Display) -> SkippedEntry {
    SkippedEntry {
        path: path.to_string_lossy().into_owned(),
        size: 0,
        reason: format!("unreadable folder, its contents were left in place: {error}"),
    }
}

/// What to leave out, and how many threads walk.
#[derive(Debug, Default)]
pub struct ScanOptions {
    /// Files or folders matching these (relative to the source) are left out.
    pub exclude: Option<GlobSet>,
    /// When set, only files matching one of these are taken.
    pub include: Option<GlobSet>,
    /// Subtrees never scanned (where the operation writes).
    pub exclude_dirs: Vec<UserPath>,
    /// Threads walking the source's top-level folders (0 or 1: one).
    pub threads: usize,
    /// Stop once this many files are found (PreviewRules' cap): with one
    /// thread, the result is then the first files in walk order. The stop
    /// cancels `progress`, which must be the caller's own.
    pub stop_after: Option<i64>,
}

/// One thing a walk found, in walk order.
enum Found {
    /// A regular file, by its index in the walk's [`Findings::files`];
    /// `linked` when it has other hard links (which only the merge, in
    /// global order, can tell apart).
    File { index: usize, linked: bool },
    /// Boxed: skipped entries are rare, files are not.
    Skipped(Box<SkippedEntry>),
    /// A top-level folder (its name in the source), walked on its own by one
    /// of the threads.
    Folder(OsString),
}

/// What one walk found: the events in walk order, the files' data aside.
#[derive(Default)]
struct Findings {
    found: Vec<Found>,
    files: ScannedFiles,
}

impl Findings {
    fn skipped(&mut self, entry: SkippedEntry) {
        self.found.push(Found::Skipped(Box::new(entry)));
    }
}

/// Scans `source` under `root`. Stops early (returning what it has) when
/// progress is cancelled.
///
/// The source is opened at the moment of use, beneath the root and through
/// no symlink ([`UserRoot::open_walk`]): a source that became a symlink
/// since the operation was created is refused, never followed. Everything
/// below is reached by handles from there ([`crate::storage::walk`]): a
/// folder swapped for a symlink during the scan is recorded as skipped.
///
/// The top level is read first, in name order; each of its folders is
/// then walked whole by one of `options.threads` threads (taking the next
/// folder when done), and the findings are spliced back in the top level's
/// order: the result is exactly that of one sequential walk sorted by name,
/// hard links included (the first link in that order is the one kept).
/// Stat-bound walks of a million files take about half the time on two
/// threads (BENCHMARKS.md).
pub fn scan(
    root: &UserRoot,
    source: &UserPath,
    options: &ScanOptions,
    progress: &Progress,
) -> std::io::Result<ScanResult> {
    let start = root.open_walk(source).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => std::io::Error::new(
            e.kind(),
            format!(
                "the source folder {source} does not exist any more (it was moved or deleted \
                 after the operation was created); nothing was scanned"
            ),
        ),
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => std::io::Error::new(
            e.kind(),
            format!(
                "the source folder {source} is not a folder any more, or a symbolic link now \
                 lies on its path; nothing was scanned ({e})"
            ),
        ),
        _ => e,
    })?;
    let walk = Walker {
        source,
        options,
        progress,
        relative_start: relative_offset(source),
    };
    let top = walk.top(&start)?;
    let folders: Vec<&OsStr> = top
        .found
        .iter()
        .filter_map(|found| match found {
            Found::Folder(name) => Some(name.as_os_str()),
            _ => None,
        })
        .collect();
    // One folder at a time: folders differ too much in size for bigger chunks.
    let walked = super::parallel::map_ordered(&folders, options.threads, 1, |name| {
        walk.folder(&start, name)
    });
    let mut result = ScanResult {
        files: ScannedFiles::new(source),
        skipped: Vec::new(),
    };
    // Reserved, not yet written: the pages fill as the walks' findings
    // (each folder's freed once taken) move in.
    let (files, name_bytes) = walked
        .iter()
        .chain(std::iter::once(&top))
        .fold((0, 0), |(n, b), f| {
            (n + f.files.len(), b + f.files.names.len())
        });
    result.files.reserve(files, name_bytes);
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    let mut walked = walked.into_iter();
    for found in top.found {
        match found {
            Found::Folder(_) => {
                let folder = walked.next().expect("one walk per folder");
                for found in folder.found {
                    walk.take(found, &folder.files, &mut result, &mut seen);
                }
            }
            found => walk.take(found, &top.files, &mut result, &mut seen),
        }
    }
    if options.threads > 1 {
        // The walk threads' findings were moved out of their buffers.
        super::release_freed_memory();
    }
    Ok(result)
}

/// What one walk needs to know.
struct Walker<'a> {
    source: &'a UserPath,
    options: &'a ScanOptions,
    progress: &'a Progress,
    relative_start: usize,
}

impl Walker<'_> {
    /// The source's own entries: its files, and its folders as
    /// [`Found::Folder`] (not entered).
    fn top(&self, start: &OwnedFd) -> std::io::Result<Findings> {
        let mut found = self.findings();
        let mut walk = Walk::new(start.try_clone()?, PathBuf::from(self.source.as_str()))?;
        walk.run(|event| self.visit(event, true, &mut found))?;
        Ok(found)
    }

    /// Everything under the top-level folder `name` of the source (already
    /// checked by [`Walker::top`]), opened from the source's handle.
    fn folder(&self, start: &OwnedFd, name: &OsStr) -> Findings {
        let mut found = self.findings();
        let base = Path::new(self.source.as_str()).join(name);
        let walk = open_dir_at(start, name).and_then(|fd| Walk::new(fd, base.clone()));
        match walk {
            Ok(mut walk) => {
                if let Err(error) = walk.run(|event| self.visit(event, false, &mut found)) {
                    found.skipped(unreadable(&base, &error));
                }
            }
            Err(error) => found.skipped(unreadable(&base, &error)),
        }
        found.files.entries.shrink_to_fit();
        found.files.names.shrink_to_fit();
        found
    }

    fn findings(&self) -> Findings {
        Findings {
            found: Vec::new(),
            files: ScannedFiles::new(self.source),
        }
    }

    /// Takes one event of a walk: what to record, and whether to enter a
    /// folder. `top`: the source's own entries, whose folders are walked
    /// separately.
    fn visit(&self, event: Event<'_>, top: bool, found: &mut Findings) -> Visit {
        let (options, progress) = (self.options, self.progress);
        if progress.is_cancelled() {
            return Visit::Stop;
        }
        let entry = match event {
            Event::Entry(entry) => entry,
            Event::Leave(_) => return Visit::Next,
            Event::Error { path, error } => {
                found.skipped(unreadable(path, &error));
                return Visit::Next;
            }
        };
        let is_dir = entry.kind() == Kind::Dir;
        let display = || entry.path().to_string_lossy().into_owned();
        let Some(name) = entry.name().to_str() else {
            found.skipped(SkippedEntry {
                path: display(),
                size: 0,
                reason: if is_dir {
                    "folder name is not valid UTF-8; its contents were left in place".into()
                } else {
                    "file name is not valid UTF-8; left in place".into()
                },
            });
            return Visit::Next;
        };
        if name.starts_with('.') {
            return Visit::Next;
        }
        let path = match UserPath::from_relative(entry.path()) {
            Ok(p) => p,
            Err(error) => {
                found.skipped(SkippedEntry {
                    path: display(),
                    size: 0,
                    reason: if is_dir {
                        format!("unusable folder path: {error}; its contents were left in place")
                    } else {
                        format!("unusable path: {error}")
                    },
                });
                return Visit::Next;
            }
        };
        let relative = &path.as_str()[self.relative_start.min(path.as_str().len())..];
        if is_dir {
            let excluded = options.exclude_dirs.iter().any(|d| path.starts_with(d))
                || options
                    .exclude
                    .as_ref()
                    .is_some_and(|g| g.is_match(relative));
            if excluded {
                return Visit::Next;
            }
            if top {
                found.found.push(Found::Folder(entry.name().to_owned()));
                return Visit::Next;
            }
            return Visit::Enter;
        }
        if options
            .exclude
            .as_ref()
            .is_some_and(|g| g.is_match(relative))
        {
            return Visit::Next;
        }
        if options
            .include
            .as_ref()
            .is_some_and(|g| !g.is_match(relative))
        {
            return Visit::Next;
        }
        match entry.kind() {
            Kind::File => {}
            Kind::Symlink => {
                found.skipped(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: 0,
                    reason: "symbolic link (never followed)".into(),
                });
                return Visit::Next;
            }
            Kind::Dir | Kind::Other => {
                found.skipped(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: 0,
                    reason: "not a regular file".into(),
                });
                return Visit::Next;
            }
        }
        let stat = match entry.stat() {
            Ok(stat) if stat.is_regular() => stat,
            Ok(_) => {
                found.skipped(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: 0,
                    reason: "not a regular file".into(),
                });
                return Visit::Next;
            }
            Err(error) => {
                found.skipped(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: 0,
                    reason: format!("vanished or unreadable: {error}"),
                });
                return Visit::Next;
            }
        };
        let linked = stat.nlink > 1;
        if !linked {
            // Linked files are counted by the merge, which drops all but
            // the first link.
            Progress::add(&progress.files_scanned, 1);
            Progress::add(&progress.bytes_scanned, stat.size as i64);
            if options.stop_after.is_some_and(|n| {
                progress
                    .files_scanned
                    .load(std::sync::atomic::Ordering::Relaxed)
                    >= n
            }) {
                progress.cancel();
            }
        }
        if found.files.len().is_multiple_of(1024) {
            progress.set_current(path.as_str());
        }
        found.found.push(Found::File {
            index: found.files.len(),
            linked,
        });
        found.files.push(
            &path,
            Fingerprint::from_stat(&stat),
            Fingerprint::nanos(stat.ctime.0, stat.ctime.1),
        );
        Visit::Next
    }

    /// Adds one finding to the result, in walk order: of the links of one
    /// file, only the first is taken.
    fn take(
        &self,
        found: Found,
        files: &ScannedFiles,
        result: &mut ScanResult,
        seen: &mut HashMap<(u64, u64), usize>,
    ) {
        match found {
            Found::Skipped(skipped) => result.skipped.push(*skipped),
            Found::File { index, linked } => {
                if linked {
                    let fingerprint = files.fingerprint(index);
                    let key = (fingerprint.dev, fingerprint.ino);
                    if let Some(&first) = seen.get(&key) {
                        let first = result.files.get(first).path;
                        result.skipped.push(SkippedEntry {
                            path: files.get(index).path.as_str().to_string(),
                            size: fingerprint.size,
                            reason: format!("hard link to {first}, which is organized instead"),
                        });
                        return;
                    }
                    seen.insert(key, result.files.len());
                    Progress::add(&self.progress.files_scanned, 1);
                    Progress::add(&self.progress.bytes_scanned, fingerprint.size as i64);
                }
                result.files.push_from(files, index);
            }
            Found::Folder(_) => unreachable!("folders are walked, not taken"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(result: &ScanResult) -> (Vec<String>, Vec<(String, String)>) {
        (
            result
                .files
                .iter()
                .map(|f| format!("{} {}", f.path, f.relative()))
                .collect(),
            result
                .skipped
                .iter()
                .map(|s| (s.path.clone(), s.reason.clone()))
                .collect(),
        )
    }

    #[test]
    fn the_compact_store_gives_back_exactly_what_was_pushed() {
        assert_eq!(std::mem::size_of::<Entry>(), 56);
        let source = UserPath::parse("in").unwrap();
        let mut files = ScannedFiles::new(&source);
        let long_name = "n".repeat(crate::storage::path::MAX_NAME_BYTES);
        let pushed: Vec<(UserPath, Fingerprint, i128)> = [
            ("in/a.txt", 0, 0, 1),
            ("in/sub/b.jpg", -1, i128::from(i64::MIN) * 1_000_000_000, 2),
            (
                "in/sub/c",
                999_999_999,
                i128::from(i64::MAX) * 1_000_000_000 + 999_999_999,
                1,
            ),
            ("in/sub/deeper/é.txt", 1_700_000_000_123_456_789, -5, 3),
            ("in/sub/d.txt", 7, 7, 1),
            (&*format!("in/{long_name}"), 1, 2, 1),
        ]
        .iter()
        .enumerate()
        .map(|(n, &(path, mtime_ns, ctime_ns, dev))| {
            let fingerprint = Fingerprint {
                size: n as u64 * 1000,
                mtime_ns,
                dev: u64::MAX - dev,
                ino: n as u64 + 10,
            };
            (UserPath::parse(path).unwrap(), fingerprint, ctime_ns)
        })
        .collect();
        for (path, fingerprint, ctime) in &pushed {
            files.push(path, *fingerprint, *ctime);
        }
        // "in/sub" twice: once per run of its files.
        assert_eq!(files.folders.len(), 5);
        assert_eq!(files.devices.len(), 3);
        let check = |files: &ScannedFiles, n: usize| {
            assert_eq!(files.len(), n);
            for (i, (path, fingerprint, ctime)) in pushed.iter().take(n).enumerate() {
                let file = files.get(i);
                assert_eq!(&file.path, path);
                assert_eq!(file.fingerprint, *fingerprint);
                assert_eq!(file.ctime_ns, *ctime);
                assert_eq!(file.relative(), &path.as_str()[3..]);
                assert_eq!(files.name(i), path.file_name().unwrap());
                assert_eq!(files.size(i), fingerprint.size);
            }
        };
        check(&files, pushed.len());
        let mut copy = ScannedFiles::new(&source);
        for i in 0..files.len() {
            copy.push_from(&files, i);
        }
        check(&copy, pushed.len());
        files.truncate(3);
        check(&files, 3);
        assert_eq!(files.names.len(), "a.txtb.jpgc".len());
        files.push(&pushed[4].0, pushed[4].1, pushed[4].2);
        assert_eq!(files.get(3).path, pushed[4].0);
    }

    #[test]
    fn threads_change_nothing_in_the_result_hard_links_included() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("src");
        let write = |rel: &str, body: &str| {
            let path = base.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        };
        for top in ["a", "b", "c", "d", "e"] {
            for n in 0..20 {
                write(&format!("{top}/f{n:02}.txt"), top);
                write(&format!("{top}/deep/er/g{n:02}.bin"), "x");
            }
        }
        write("top-level.txt", "t");
        write("zz-last.txt", "z");
        write("node_modules/skip.js", "s");
        write(".hidden/skip.txt", "h");
        // The first link in name order (under "a") is kept, wherever the
        // other links are and whichever thread walks them.
        std::fs::hard_link(base.join("e/f00.txt"), base.join("a/link-to-e.txt")).unwrap();
        std::fs::hard_link(base.join("e/f01.txt"), base.join("c/deep/link.txt")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("b/outside")).unwrap();

        let root = UserRoot::open_existing(dir.path()).unwrap();
        let source = UserPath::parse("src").unwrap();
        let scan_with = |threads: usize| {
            let options = ScanOptions {
                exclude: crate::engine::spec::glob_set(&["node_modules".into()]).unwrap(),
                threads,
                ..Default::default()
            };
            let progress = Progress::default();
            let result = scan(&root, &source, &options, &progress).unwrap();
            let counted = progress
                .files_scanned
                .load(std::sync::atomic::Ordering::Relaxed);
            (summary(&result), counted, result.files.len())
        };
        let (one, counted_one, files) = scan_with(1);
        assert_eq!(files, 5 * 40 + 2 + 2 - 2, "{one:#?}");
        assert_eq!(counted_one, files as i64);
        for threads in [2, 3, 8] {
            let (many, counted, _) = scan_with(threads);
            assert_eq!(many, one, "{threads} threads");
            assert_eq!(counted, counted_one, "{threads} threads");
        }
        let (_, skipped) = &one;
        assert!(
            skipped.iter().any(
                |(p, r)| p == "src/e/f00.txt" && r.contains("hard link to src/a/link-to-e.txt")
            ),
            "{skipped:#?}"
        );
        assert!(
            skipped.iter().any(
                |(p, r)| p == "src/e/f01.txt" && r.contains("hard link to src/c/deep/link.txt")
            ),
            "{skipped:#?}"
        );
        assert!(
            skipped
                .iter()
                .any(|(p, r)| p == "src/b/outside" && r.contains("symbolic link"))
        );
    }
}
