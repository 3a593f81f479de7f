//! Step 1: scan the source folder.
//!
//! walkdir, never following symlinks (they are recorded as skipped), skipping
//! hidden entries, the operation's exclude globs and the folders the
//! operation itself writes to (`_duplicates/`, the trash). Every regular file
//! is stat'ed once; hard links are de-duplicated by (device, inode) so one
//! file is never counted or moved twice (the extra links are recorded as
//! skipped). Names that are not valid UTF-8 are skipped with a recorded
//! reason: they are left exactly where they are.

use std::{collections::HashMap, os::unix::fs::MetadataExt};

use chrono::{DateTime, Utc};
use globset::GlobSet;

use super::progress::Progress;
use crate::storage::{Fingerprint, path::UserPath, root::UserRoot};

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

/// What to leave out.
#[derive(Debug, Default)]
pub struct ScanOptions {
    /// Files or folders matching these (relative to the source) are left out.
    pub exclude: Option<GlobSet>,
    /// When set, only files matching one of these are taken.
    pub include: Option<GlobSet>,
    /// Subtrees never scanned (where the operation writes).
    pub exclude_dirs: Vec<UserPath>,
}

/// Scans `source` under `root`. Stops early (returning what it has) when
/// progress is cancelled.
pub fn scan(
    root: &UserRoot,
    source: &UserPath,
    options: &ScanOptions,
    progress: &Progress,
) -> std::io::Result<ScanResult> {
    let base = root.path().join(source.as_str());
    let mut result = ScanResult::default();
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    let relative_start = relative_offset(source);
    let mut walker = walkdir::WalkDir::new(&base)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        if progress.is_cancelled() {
            break;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(error) => {
                let path = error
                    .path()
                    .map(|p| {
                        p.strip_prefix(root.path())
                            .unwrap_or(p)
                            .to_string_lossy()
                            .into_owned()
                    })
                    .unwrap_or_default();
                result.skipped.push(SkippedEntry {
                    path,
                    size: 0,
                    reason: format!("unreadable: {error}"),
                });
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let is_dir = entry.file_type().is_dir();
        let display = || {
            entry
                .path()
                .strip_prefix(root.path())
                .unwrap_or(entry.path())
                .to_string_lossy()
                .into_owned()
        };
        let Some(name) = entry.file_name().to_str() else {
            result.skipped.push(SkippedEntry {
                path: display(),
                size: 0,
                reason: if is_dir {
                    "folder name is not valid UTF-8; its contents were left in place".into()
                } else {
                    "file name is not valid UTF-8; left in place".into()
                },
            });
            if is_dir {
                walker.skip_current_dir();
            }
            continue;
        };
        if name.starts_with('.') {
            if is_dir {
                walker.skip_current_dir();
            }
            continue;
        }
        let relative_to_root = entry
            .path()
            .strip_prefix(root.path())
            .unwrap_or(entry.path());
        let path = match UserPath::from_relative(relative_to_root) {
            Ok(p) => p,
            Err(error) => {
                result.skipped.push(SkippedEntry {
                    path: display(),
                    size: 0,
                    reason: format!("unusable path: {error}"),
                });
                if is_dir {
                    walker.skip_current_dir();
                }
                continue;
            }
        };
        let relative = &path.as_str()[relative_start.min(path.as_str().len())..];
        if is_dir {
            let excluded = options.exclude_dirs.iter().any(|d| path.starts_with(d))
                || options
                    .exclude
                    .as_ref()
                    .is_some_and(|g| g.is_match(relative));
            if excluded {
                walker.skip_current_dir();
            }
            continue;
        }
        if options
            .exclude
            .as_ref()
            .is_some_and(|g| g.is_match(relative))
        {
            continue;
        }
        if options
            .include
            .as_ref()
            .is_some_and(|g| !g.is_match(relative))
        {
            continue;
        }
        let file_type = entry.file_type();
        if file_type.is_symlink() {
            result.skipped.push(SkippedEntry {
                path: path.as_str().to_string(),
                size: 0,
                reason: "symbolic link (never followed)".into(),
            });
            continue;
        }
        if !file_type.is_file() {
            result.skipped.push(SkippedEntry {
                path: path.as_str().to_string(),
                size: 0,
                reason: "not a regular file".into(),
            });
            continue;
        }
        let metadata = match entry.metadata() {
            Ok(m) => m,
            Err(error) => {
                result.skipped.push(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: 0,
                    reason: format!("vanished or unreadable: {error}"),
                });
                continue;
            }
        };
        let key = (metadata.dev(), metadata.ino());
        if metadata.nlink() > 1 {
            if let Some(first) = seen.get(&key) {
                let first = result.files[*first].path.as_str().to_string();
                result.skipped.push(SkippedEntry {
                    path: path.as_str().to_string(),
                    size: metadata.len(),
                    reason: format!("hard link to {first}, which is organized instead"),
                });
                continue;
            }
            seen.insert(key, result.files.len());
        }
        Progress::add(&progress.files_scanned, 1);
        Progress::add(&progress.bytes_scanned, metadata.len() as i64);
        if result.files.len() % 1024 == 0 {
            progress.set_current(path.as_str());
        }
        result.files.push(ScannedFile::new(
            path,
            source,
            Fingerprint::from_std(&metadata),
            Fingerprint::nanos(metadata.ctime(), metadata.ctime_nsec()),
        ));
    }
    Ok(result)
}
