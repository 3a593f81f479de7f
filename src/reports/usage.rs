//! Disk usage facts for the usage summary that no table records.

use std::io;

use crate::storage::{UserPath, root::UserRoot};

/// Total size of the regular files under `folder` in a user's storage
/// (0 when it does not exist). Symbolic links are counted as links, never
/// followed; the walk stays beneath the root like every storage access.
/// Blocking: call it on the blocking pool.
pub fn folder_bytes(root: &UserRoot, folder: &UserPath) -> io::Result<u64> {
    let dir = match root.open_dir(folder) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0u64;
    let mut pending = vec![dir];
    while let Some(dir) = pending.pop() {
        for entry in dir.entries()? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                pending.push(entry.open_dir()?);
            } else if file_type.is_file() {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}
