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
    pub nlink: u64,
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
            nlink: s.st_nlink as u64,
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

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` for a name read from a
/// directory (any bytes; the caller checked it is one component).
pub(crate) fn lstat_at_os(dir: impl AsFd, name: &std::ffi::OsStr) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?.into())
}

/// Whether `name` (raw bytes, as read from a directory) is exactly one
/// component a raw `*at` call may take: not empty, `.` or `..`, no `/` or NUL.
pub(crate) fn is_one_name(name: &[u8]) -> bool {
    !matches!(name, b"" | b"." | b"..") && !name.contains(&b'/') && !name.contains(&0)
}

/// Opens `path` (relative, no `..`) beneath `root` at the moment of use,
/// refusing every symlink on the way, not only at the end:
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`. A symlink anywhere is
/// `ELOOP`. `EAGAIN` (the kernel's "retry", seen under concurrent renames)
/// is retried; kernels without openat2 (`ENOSYS`, before 5.6) get the same
/// walk one component at a time with `O_NOFOLLOW`.
pub(crate) fn open_beneath(root: impl AsFd, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    use rustix::fs::ResolveFlags;
    let root = root.as_fd();
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if path.is_empty() {
        return Ok(rustix::fs::openat(root, ".", flags, Mode::empty())?);
    }
    for _ in 0..16 {
        match rustix::fs::openat2(
            root,
            path,
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(rustix::io::Errno::AGAIN) => continue,
            Err(rustix::io::Errno::NOSYS) => break,
            other => return Ok(other?),
        }
    }
    // One name at a time: each O_NOFOLLOW open of a single component can
    // neither follow a symlink nor leave its directory.
    let mut components = path.split('/').filter(|c| !c.is_empty()).peekable();
    let mut dir: Option<OwnedFd> = None;
    while let Some(name) = components.next() {
        if !is_one_name(name.as_bytes()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a relative path",
            ));
        }
        let at = dir.as_ref().map(|d| d.as_fd()).unwrap_or(root);
        let step = if components.peek().is_some() {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        } else {
            flags
        };
        dir = Some(rustix::fs::openat(at, name, step, Mode::empty())?);
    }
    dir.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: impl AsFd) -> io::Result<Stat> {
    Ok(rustix::fs::fstat(fd)?.into())
}

/// Opens `name` for reading without following a final symlink (`ELOOP`).
/// `O_NONBLOCK` keeps a FIFO from blocking the open; it has no effect on
/// regular files, the only kind callers go on to read.
pub(crate) fn open_read_nofollow(dir: impl AsFd, name: &str) -> io::Result<OwnedFd> {
    open_read_nofollow_os(dir, std::ffi::OsStr::new(name))
}

/// [`open_read_nofollow`] for a name read from a directory (any bytes; the
/// caller's walk checked it is one component).
pub(crate) fn open_read_nofollow_os(dir: impl AsFd, name: &std::ffi::OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Creates `name` exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`), read-write,
/// with permission bits `mode` (before the umask).
pub(crate) fn create_excl(dir: impl AsFd, name: &str, mode: u32) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode as _),
    )?)
}

/// fsyncs a directory. cap-std `Dir` fds are `O_PATH`, on which fsync fails
/// with EBADF, so this opens `.` with `O_RDONLY|O_DIRECTORY` first.
pub(crate) fn fsync_dir(dir: impl AsFd) -> io::Result<()> {
    rustix::fs::fsync(readable_dir(dir)?)?;
    Ok(())
}

/// `dir` reopened read-only (as `.`), for the calls that refuse `O_PATH`.
fn readable_dir(dir: impl AsFd) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `syncfs` on the filesystem holding `dir` (through a readable descriptor
/// of it: like fsync, syncfs refuses `O_PATH` ones with `EBADF`).
pub(crate) fn syncfs_at(dir: impl AsFd) -> io::Result<()> {
    rustix::fs::syncfs(readable_dir(dir)?)?;
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
