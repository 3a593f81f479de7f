//! The values of the persistent hash cache that the engine computes and `db`
//! stores (the rules of when one may stand for a file's content are in
//! `engine::hash_cache`).

/// What the cache knows of a file's content. `head`: blake3 of its first
/// `engine::duplicates::HEAD_BYTES` bytes (of the whole file when
/// no larger); `full`: blake3 of the whole file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Known {
    pub head: Option<[u8; 32]>,
    pub full: Option<[u8; 32]>,
}

/// A file's identity and version as the scan saw it, in the database's
/// integer types (device and inode bit-cast, times in nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub dev: i64,
    pub ino: i64,
    pub size: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}
