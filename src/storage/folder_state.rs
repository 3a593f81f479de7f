//! [`folder_state`]: a digest of what a folder holds, for watched folders
//! (`jobs::automations`): comparing it with the previous rescan's tells
//! whether something other than the API changed the folder, also across a
//! restart.

use std::{io, os::unix::ffi::OsStrExt};

use super::{
    error::StorageError,
    path::UserPath,
    root::UserRoot,
    walk::{Event, Kind, MAX_DEPTH, Visit, WalkError},
};

/// What a folder holds, in short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderState {
    /// Visible regular files (names starting with "." are skipped, as the
    /// organize scan skips them).
    pub files: u64,
    /// blake3 of every visible entry's path, kind, size and modification
    /// time, in walk order (hex).
    pub digest: String,
}

/// Walks the folder `p` (beneath the root, no symlink followed, bounded
/// depth) and digests it. Entries that vanish meanwhile are left out.
pub fn folder_state(root: &UserRoot, p: &UserPath) -> Result<FolderState, StorageError> {
    let mut walk = root.walk(p)?.max_depth(MAX_DEPTH);
    let mut hasher = blake3::Hasher::new();
    let mut files = 0u64;
    let mut failure: Option<WalkError> = None;
    walk.run(|event| match event {
        Event::Entry(entry) => {
            if entry.name().as_bytes().starts_with(b".") {
                return Visit::Next;
            }
            hasher.update(entry.path().as_os_str().as_bytes());
            hasher.update(&[0]);
            match entry.kind() {
                Kind::Dir => {
                    hasher.update(b"d");
                    Visit::Enter
                }
                kind => {
                    match entry.stat() {
                        Ok(stat) => {
                            hasher.update(&stat.size.to_le_bytes());
                            hasher.update(&stat.mtime.0.to_le_bytes());
                            hasher.update(&stat.mtime.1.to_le_bytes());
                            if kind == Kind::File {
                                files += 1;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => {
                            failure = Some(WalkError::Io(e));
                            return Visit::Stop;
                        }
                    }
                    Visit::Next
                }
            }
        }
        Event::Leave(_) => Visit::Next,
        Event::Error { error, .. } => match error {
            WalkError::Io(e) if e.kind() == io::ErrorKind::NotFound => Visit::Next,
            error => {
                failure = Some(error);
                Visit::Stop
            }
        },
    })?;
    if let Some(error) = failure {
        return Err(error.in_folder(p));
    }
    Ok(FolderState {
        files,
        digest: hasher.finalize().to_hex().to_string(),
    })
}
