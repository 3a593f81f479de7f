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
#[derive(Debug, Clone)]
pub struct ScannedFile {
    /// Path relative to the user's root.
    pub path: UserPath,
    /// Path relative to the scanned folder (for globs and custom rules).
    pub relative: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
    pub device: u64,
    pub inode: u64,
    /// What a later move checks the file against.
    pub fingerprint: Fingerprint,
    /// Status-change time (nanoseconds since the epoch): the apply step
    /// skips a file whose ctime moved, which catches a rewrite that kept the
    /// size and set the mtime back. Not part of the [`Fingerprint`]: a
    /// rename changes it, so it cannot identify a file after its move.
    pub ctime_ns: i128,
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
        let display = entry
            .path()
            .strip_prefix(root.path())
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        let Some(name) = entry.file_name().to_str() else {
            result.skipped.push(SkippedEntry {
                path: display,
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
                    path: display,
                    size: 0,
                    reason: format!("unusable path: {error}"),
                });
                if is_dir {
                    walker.skip_current_dir();
                }
                continue;
            }
        };
        let relative = entry
            .path()
            .strip_prefix(&base)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| name.to_string());
        if is_dir {
            let excluded = options.exclude_dirs.iter().any(|d| path.starts_with(d))
                || options
                    .exclude
                    .as_ref()
                    .is_some_and(|g| g.is_match(&relative));
            if excluded {
                walker.skip_current_dir();
            }
            continue;
        }
        if options
            .exclude
            .as_ref()
            .is_some_and(|g| g.is_match(&relative))
        {
            continue;
        }
        if options
            .include
            .as_ref()
            .is_some_and(|g| !g.is_match(&relative))
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
        let modified = DateTime::from_timestamp(metadata.mtime(), metadata.mtime_nsec() as u32)
            .unwrap_or_default();
        Progress::add(&progress.files_scanned, 1);
        Progress::add(&progress.bytes_scanned, metadata.len() as i64);
        if result.files.len() % 1024 == 0 {
            progress.set_current(path.as_str());
        }
        result.files.push(ScannedFile {
            path,
            relative,
            size: metadata.len(),
            modified,
            device: metadata.dev(),
            inode: metadata.ino(),
            fingerprint: Fingerprint::from_std(&metadata),
            ctime_ns: Fingerprint::nanos(metadata.ctime(), metadata.ctime_nsec()),
        });
    }
    Ok(result)
}
