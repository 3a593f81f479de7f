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

/// A regular file found by the scan.
///
/// Kept small on purpose: a scan of a million files holds a million of
/// these until the plan is journaled (see BENCHMARKS.md). Size,
/// device, inode and modification time all live in the fingerprint, and the
/// path relative to the scanned folder is a suffix of `path`.
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
    pub files: Vec<ScannedFile>,
    pub skipped: Vec<SkippedEntry>,
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
fn unreadable(path: &Path, error: &dyn std::fmt::Display) -> Found {
    Found::Skipped(SkippedEntry {
        path: path.to_string_lossy().into_owned(),
        size: 0,
        reason: format!("unreadable folder, its contents were left in place: {error}"),
    })
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
    /// A regular file; `linked` when it has other hard links (which only
    /// the merge, in global order, can tell apart).
    File {
        file: ScannedFile,
        linked: bool,
    },
    Skipped(SkippedEntry),
    /// A top-level folder (its name in the source), walked on its own by one
    /// of the threads.
    Folder(OsString),
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
    let mut result = ScanResult::default();
    // Reserved, not yet written: the pages fill as the walks' findings
    // (each folder's freed once taken) move in.
    let files = top.len() + walked.iter().map(Vec::len).sum::<usize>();
    result.files.reserve(files);
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    let mut walked = walked.into_iter();
    for found in top {
        match found {
            Found::Folder(_) => {
                for found in walked.next().expect("one walk per folder") {
                    walk.take(found, &mut result, &mut seen);
                }
            }
            found => walk.take(found, &mut result, &mut seen),
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
    fn top(&self, start: &OwnedFd) -> std::io::Result<Vec<Found>> {
        let mut found = Vec::new();
        let mut walk = Walk::new(start.try_clone()?, PathBuf::from(self.source.as_str()))?;
        walk.run(|event| self.visit(event, true, &mut found))?;
        Ok(found)
    }

    /// Everything under the top-level folder `name` of the source (already
    /// checked by [`Walker::top`]), opened from the source's handle.
    fn folder(&self, start: &OwnedFd, name: &OsStr) -> Vec<Found> {
        let mut found = Vec::new();
        let base = Path::new(self.source.as_str()).join(name);
        let walk = open_dir_at(start, name).and_then(|fd| Walk::new(fd, base.clone()));
        match walk {
            Ok(mut walk) => {
                if let Err(error) = walk.run(|event| self.visit(event, false, &mut found)) {
                    found.push(unreadable(&base, &error));
                }
            }
            Err(error) => found.push(unreadable(&base, &error)),
        }
        found
    }

    /// Takes one event of a walk: what to record, and whether to enter a
    /// folder. `top`: the source's own entries, whose folders are walked
    /// separately.
    fn visit(&self, event: Event<'_>, top: bool, found: &mut Vec<Found>) -> Visit {
        let (options, progress) = (self.options, self.progress);
        if progress.is_cancelled() {
            return Visit::Stop;
        }
        let entry = match event {
            Event::Entry(entry) => entry,
            Event::Leave(_) => return Visit::Next,
            Event::Error { path, error } => {
                found.push(unreadable(path, &error));
                return Visit::Next;
            }
        };
        let is_dir = entry.kind() == Kind::Dir;
        let display = || entry.path().to_string_lossy().into_owned();
        let Some(name) = entry.name().to_str() else {
            found.push(Found::Skipped(SkippedEntry {
                path: display(),
                size: 0,
                reason: if is_dir {
                    "folder name is not valid UTF-8; its contents were left in place".into()
                } else {
                    "file name is not valid UTF-8; left in place".into()
                },
            }));
            return Visit::Next;
        };
        if name.starts_with('.') {
            return Visit::Next;
        }
        let path = match UserPath::from_relative(entry.path()) {
            Ok(p) => p,
            Err(error) => {
                found.push(Found::Skipped(SkippedEntry {
                    path: display(),
                    size: 0,
                    reason: if is_dir {
                        format!("unusable folder path: {error}; its contents were left in place")
                    } else {
                        format!("unusable path: {error}")
                    },
                }));
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
                found.push(Found::Folder(entry.name().to_owned()));
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
                found.push(Found::Skipped(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: 0,
                    reason: "symbolic link (never followed)".into(),
                }));
                return Visit::Next;
            }
            Kind::Dir | Kind::Other => {
                found.push(Found::Skipped(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: 0,
                    reason: "not a regular file".into(),
                }));
                return Visit::Next;
            }
        }
        let stat = match entry.stat() {
            Ok(stat) if stat.is_regular() => stat,
            Ok(_) => {
                found.push(Found::Skipped(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: 0,
                    reason: "not a regular file".into(),
                }));
                return Visit::Next;
            }
            Err(error) => {
                found.push(Found::Skipped(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: 0,
                    reason: format!("vanished or unreadable: {error}"),
                }));
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
        if found.len().is_multiple_of(1024) {
            progress.set_current(path.as_str());
        }
        found.push(Found::File {
            file: ScannedFile::new(
                path,
                self.source,
                Fingerprint::from_stat(&stat),
                Fingerprint::nanos(stat.ctime.0, stat.ctime.1),
            ),
            linked,
        });
        Visit::Next
    }

    /// Adds one finding to the result, in walk order: of the links of one
    /// file, only the first is taken.
    fn take(&self, found: Found, result: &mut ScanResult, seen: &mut HashMap<(u64, u64), usize>) {
        match found {
            Found::Skipped(skipped) => result.skipped.push(skipped),
            Found::File { file, linked } => {
                if linked {
                    let key = (file.device(), file.inode());
                    if let Some(first) = seen.get(&key) {
                        let first = result.files[*first].path.as_str().to_string();
                        result.skipped.push(SkippedEntry {
                            path: file.path.as_str().to_string(),
                            size: file.size(),
                            reason: format!("hard link to {first}, which is organized instead"),
                        });
                        return;
                    }
                    seen.insert(key, result.files.len());
                    Progress::add(&self.progress.files_scanned, 1);
                    Progress::add(&self.progress.bytes_scanned, file.size() as i64);
                }
                result.files.push(file);
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
