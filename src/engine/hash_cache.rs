//! The persistent hash cache's rules: when a hash computed earlier may stand
//! for a file's content now, and when a hash just computed may be kept.
//!
//! A cached hash is keyed on what the scan stats of a file: device, inode,
//! size, modification time and status-change time, both in nanoseconds (as
//! fclones and czkawka key theirs). It is used only when all five equal the
//! scan's, for the same user (the storage side, `db::hash_cache`, keys its
//! rows by user too):
//! - an edit changes the ctime even when it keeps the size and sets the
//!   mtime back (ctime cannot be set from user space);
//! - an inode reused after a delete and a create has the new file's ctime;
//! - a file on another filesystem has another device.
//!
//! Timestamps have a granularity (a kernel tick, 2 s on FAT): a write in the
//! same tick as the one the scan saw leaves ctime unchanged. A hash is
//! therefore kept only if the file's ctime was at least [`SETTLE_NS`] older
//! than the moment the hash phase began reading ([`settled`]): any write
//! after that read gets a later ctime. A file modified in the last seconds
//! is simply hashed again next time (git's "racily clean" rule, the same
//! idea).
//!
//! The cache is advisory. Its rows are written after the hash phase and a
//! lost write (a crash, a full database, an error) costs a re-hash, nothing
//! else; a row that fails the key check is ignored and overwritten.

use super::scan::ScannedFile;
use crate::storage::Fingerprint;

/// How much older than the start of the hash phase a file's ctime must be
/// for its hash to be kept: above every filesystem's timestamp granularity.
pub const SETTLE_NS: i128 = 2_000_000_000;

pub use crate::domain::hash_cache::{CacheKey, Known};

impl CacheKey {
    /// The key of a scanned file; None when a time does not fit 64 bits
    /// (before 1677 or after 2262: such a file is never cached).
    pub fn of(file: &ScannedFile) -> Option<CacheKey> {
        CacheKey::of_parts(&file.fingerprint, file.ctime_ns)
    }

    /// [`CacheKey::of`] a file with this fingerprint and ctime.
    pub fn of_parts(fp: &Fingerprint, ctime_ns: i128) -> Option<CacheKey> {
        Some(CacheKey {
            dev: fp.dev as i64,
            ino: fp.ino as i64,
            size: i64::try_from(fp.size).ok()?,
            mtime_ns: i64::try_from(fp.mtime_ns).ok()?,
            ctime_ns: i64::try_from(ctime_ns).ok()?,
        })
    }
}

/// Hashes the cache answered, by scanned file index: a vector sorted by
/// index, searched by bisection. A map of a million entries took about
/// 170 bytes a file (its buckets are a power of two, each index and
/// [`Known`] padded); this takes 80.
#[derive(Debug, Default)]
pub struct KnownHashes(Vec<(usize, Known)>);

impl KnownHashes {
    /// Adds what is known of file `index`; indexes pushed out of order are
    /// sorted by [`KnownHashes::seal`].
    pub fn push(&mut self, index: usize, known: Known) {
        self.0.push((index, known));
    }

    /// Sorts by index (a no-op for indexes pushed in order) and frees the
    /// spare capacity. Call once everything is pushed.
    pub fn seal(&mut self) {
        if !self.0.is_sorted_by_key(|&(i, _)| i) {
            self.0.sort_by_key(|&(i, _)| i);
        }
        self.0.dedup_by_key(|&mut (i, _)| i);
        self.0.shrink_to_fit();
    }

    pub fn get(&self, index: usize) -> Option<Known> {
        self.0
            .binary_search_by_key(&index, |&(i, _)| i)
            .ok()
            .map(|at| self.0[at].1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0 = Vec::new();
    }
}

impl FromIterator<(usize, Known)> for KnownHashes {
    fn from_iter<T: IntoIterator<Item = (usize, Known)>>(iter: T) -> Self {
        let mut known = KnownHashes(iter.into_iter().collect());
        known.seal();
        known
    }
}

/// Whether a hash read from a file whose ctime is `ctime_ns` at or after
/// `read_from_ns` (nanoseconds since the epoch, the wall clock when the hash
/// phase began) may be kept.
pub fn settled(ctime_ns: i128, read_from_ns: i128) -> bool {
    ctime_ns < read_from_ns - SETTLE_NS
}

/// The wall clock in nanoseconds since the epoch.
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::UserPath;

    fn file(mtime_ns: i128, ctime_ns: i128) -> ScannedFile {
        let path = UserPath::parse("a/b.txt").unwrap();
        let fingerprint = Fingerprint {
            size: 10,
            mtime_ns,
            dev: u64::MAX,
            ino: 7,
        };
        ScannedFile::new(path, &UserPath::parse("a").unwrap(), fingerprint, ctime_ns)
    }

    #[test]
    fn keys_bit_cast_devices_and_refuse_times_beyond_64_bits() {
        let key = CacheKey::of(&file(5, 6)).unwrap();
        assert_eq!((key.dev, key.ino, key.size), (-1, 7, 10));
        assert_eq!((key.mtime_ns, key.ctime_ns), (5, 6));
        assert_eq!(CacheKey::of(&file(i128::from(i64::MAX) + 1, 6)), None);
        assert_eq!(CacheKey::of(&file(5, i128::from(i64::MIN) - 1)), None);
    }

    #[test]
    fn only_a_file_changed_before_the_settle_window_is_kept() {
        let start = 100 * SETTLE_NS;
        assert!(settled(start - SETTLE_NS - 1, start));
        assert!(!settled(start - SETTLE_NS, start));
        assert!(!settled(start, start));
    }
}
