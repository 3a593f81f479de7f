//! Real files in a user's storage: building trees and taking snapshots.

use std::{
    collections::BTreeMap,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

/// What a path holds: file content hash, or a symlink's target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    File(String),
    Symlink(PathBuf),
}

pub fn write(root: &Path, relative: &str, content: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Sets a file's modification time (seconds since the epoch).
pub fn set_mtime(root: &Path, relative: &str, secs: u64) {
    let file = std::fs::File::options()
        .write(true)
        .open(root.join(relative))
        .unwrap();
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap();
}

/// Every file and symlink under `root` (hidden ones included, symlinks not
/// followed), keyed by its path relative to `root` as raw bytes rendered
/// lossily (non-UTF-8 names keep a distinct escaped form).
pub fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    let mut map = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(root).unwrap();
        let key: String = relative
            .as_os_str()
            .as_bytes()
            .iter()
            .flat_map(|b| std::ascii::escape_default(*b))
            .map(char::from)
            .collect();
        let file_type = entry.file_type();
        if file_type.is_symlink() {
            map.insert(
                key,
                Entry::Symlink(std::fs::read_link(entry.path()).unwrap()),
            );
        } else if file_type.is_file() {
            let hash = blake3::hash(&std::fs::read(entry.path()).unwrap())
                .to_hex()
                .to_string();
            map.insert(key, Entry::File(hash));
        }
    }
    map
}

/// The multiset of file contents under `root`.
pub fn content_multiset(root: &Path) -> Vec<String> {
    let mut hashes: Vec<String> = snapshot(root)
        .into_values()
        .filter_map(|e| match e {
            Entry::File(h) => Some(h),
            Entry::Symlink(_) => None,
        })
        .collect();
    hashes.sort();
    hashes
}

pub fn hash_of(content: &[u8]) -> Entry {
    Entry::File(blake3::hash(content).to_hex().to_string())
}
