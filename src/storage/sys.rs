//! Thin wrappers over the raw `*at` system calls this module needs.
//!
//! Every function here takes a directory fd and a name that the caller has
//! checked to be exactly one normal component (see
//! [`is_single_component`](super::path::is_single_component)): raw `*at`
//! calls do not confine names, so that check is what keeps them inside the
//! directory (stack.md, filesystem fact 2).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// The fields of `struct stat` the storage layer compares, with fixed types
/// on every architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub size: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Stat {
    pub fn is_regular(&self) -> bool {
        FileType::from_raw_mode(self.mode as _) == FileType::RegularFile
    }

    /// Same inode on the same device.
    pub fn same_inode(&self, other: &Stat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

impl From<rustix::fs::Stat> for Stat {
    // The field types of `struct stat` differ between architectures.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn from(s: rustix::fs::Stat) -> Stat {
        Stat {
            dev: s.st_dev as u64,
            ino: s.st_ino as u64,
            mode: s.st_mode as u32,
            size: s.st_size as u64,
            atime: (s.st_atime as i64, s.st_atime_nsec as i64),
            mtime: (s.st_mtime as i64, s.st_mtime_nsec as i64),
            ctime: (s.st_ctime as i64, s.st_ctime_nsec as i64),
        }
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn lstat_at(dir: impl AsFd, name: &str) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?.into())
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: impl AsFd) -> io::Result<Stat> {
    Ok(rustix::fs::fstat(fd)?.into())
}

/// Opens `name` for reading without following a final symlink (`ELOOP`).
/// `O_NONBLOCK` keeps a FIFO from blocking the open; it has no effect on
/// regular files, the only kind callers go on to read.
pub(crate) fn open_read_nofollow(dir: impl AsFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Creates `name` exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`), read-write, mode 0600.
pub(crate) fn create_excl(dir: impl AsFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?)
}

/// fsyncs a directory. cap-std `Dir` fds are `O_PATH`, on which fsync fails
/// with EBADF, so this opens `.` with `O_RDONLY|O_DIRECTORY` first.
pub(crate) fn fsync_dir(dir: impl AsFd) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fsync(&fd)?;
    Ok(())
}

/// `unlinkat(dir, name, 0)`.
pub(crate) fn unlink_at(dir: impl AsFd, name: &str) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Removes `name` only if it is still the inode described by `ours`, so
/// cleanup never deletes something another process put there.
pub(crate) fn unlink_if_same(dir: impl AsFd, name: &str, ours: &Stat) -> io::Result<bool> {
    let dir = dir.as_fd();
    match lstat_at(dir, name) {
        Ok(now) if now.same_inode(ours) => {
            unlink_at(dir, name)?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
