//! [`Fingerprint`]: what the scan saw of a file, and what a later move or
//! undo checks it against.

use cap_std::fs::MetadataExt;

use super::sys::Stat;

/// What the scan saw of a file; a move goes ahead only if the file still
/// matches. Device and inode catch a file replaced under the same name, size
/// and modification time catch edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (negative
    /// before 1970; `i128` cannot overflow).
    pub mtime_ns: i128,
    /// `st_dev` of the filesystem holding the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub ino: u64,
}

impl Fingerprint {
    /// From cap-std metadata (not following symlinks is the caller's choice).
    pub fn of(meta: &cap_std::fs::Metadata) -> Fingerprint {
        Fingerprint {
            size: meta.size(),
            mtime_ns: Self::nanos(meta.mtime(), meta.mtime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// From std metadata, e.g. a walkdir entry's.
    pub fn from_std(meta: &std::fs::Metadata) -> Fingerprint {
        use std::os::unix::fs::MetadataExt as _;
        Fingerprint {
            size: meta.size(),
            mtime_ns: Self::nanos(meta.mtime(), meta.mtime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// `secs * 1e9 + nsec`, as stored in [`Fingerprint::mtime_ns`].
    pub fn nanos(secs: i64, nsec: i64) -> i128 {
        i128::from(secs) * 1_000_000_000 + i128::from(nsec)
    }

    /// Whether `found`, at the place this file was moved to, is this file:
    /// the same inode, or, after a verified copy to another filesystem
    /// (which keeps size and mtime but not the inode), the same size and
    /// mtime on another device. For recognising a move whose outcome was not
    /// recorded (a crash) where the journal still has the old identity.
    pub fn is_moved(&self, found: &Fingerprint) -> bool {
        found == self
            || (found.dev != self.dev && found.size == self.size && found.mtime_ns == self.mtime_ns)
    }

    pub(crate) fn from_stat(st: &Stat) -> Fingerprint {
        Fingerprint {
            size: st.size,
            mtime_ns: Self::nanos(st.mtime.0, st.mtime.1),
            dev: st.dev,
            ino: st.ino,
        }
    }
}

/// What a move checks a file's status-change time (ctime, in nanoseconds
/// since the epoch) against, on the same `lstat` as its [`Fingerprint`].
/// Nobody can set a ctime from user space: a write, a chmod, a link or a
/// rename moves it to the present, so it tells a file touched since a
/// moment even when its size and mtime were put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtimeCheck {
    /// Not checked.
    Any,
    /// Exactly this one (apply: the ctime the scan saw).
    Equal(i128),
    /// No later than this (undo: untouched since the organize ended).
    NotAfter(i128),
}

impl CtimeCheck {
    /// Whether a file whose ctime is `ctime_ns` passes.
    pub fn admits(self, ctime_ns: i128) -> bool {
        match self {
            CtimeCheck::Any => true,
            CtimeCheck::Equal(c) => ctime_ns == c,
            CtimeCheck::NotAfter(c) => ctime_ns <= c,
        }
    }
}
