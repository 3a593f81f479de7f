//! Disk usage facts for the usage summary that no table records.

use crate::storage::{MAX_DEPTH, StorageError, UserPath, root::UserRoot};

/// Total size of the regular files under `folder` in a user's storage (0
/// when it does not exist). Symbolic links are never followed; the walk
/// is the storage layer's ([`UserRoot::tree_size`]: beneath the root, by
/// handles, bounded in depth and descriptors). Blocking: call it on the
/// blocking pool.
pub fn folder_bytes(root: &UserRoot, folder: &UserPath) -> Result<u64, StorageError> {
    match root.tree_size(folder, MAX_DEPTH) {
        Ok(size) => Ok(size.file_bytes),
        Err(StorageError::NotFound(_)) => Ok(0),
        Err(e) => Err(e),
    }
}
