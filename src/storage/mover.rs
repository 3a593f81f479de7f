//! Moving files inside a user's root without ever overwriting: [`Mover`]
//! and the scan-time [`Fingerprint`] a move is checked against. Why a move
//! did not happen is a [`StorageError`] (`SourceMissing`, `SourceChanged`,
//! `NotARegularFile`, `DestinationExists`, …).
//!
//! A move is `renameat2(src_parent, name, dst_parent, name, RENAME_NOREPLACE)`
//! on parent directories opened with cap-std, the fastest confined way
//! (stack.md fact 3). The fallbacks never weaken "never overwrite":
//! `EXDEV` → [`copy_across_devices`](super::copy_across_devices);
//! `EINVAL`/`ENOSYS` (no `renameat2` flags, e.g. NFS) → `linkat` + `unlinkat`.
//!
//! [`Mover`] caches opened parent directories (bounded, FIFO eviction). A
//! cached fd follows its directory, so it stays correct as long as nobody
//! renames directories under the mover's feet while it runs; the engine runs
//! at most one operation per folder at a time and keeps a mover for one batch
//! of moves. A cached directory that was deleted is detected (`ENOENT`) and
//! reopened once; call [`Mover::forget`] after renaming a directory yourself.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use cap_std::fs::Dir;
use rustix::fs::{AtFlags, RenameFlags};
use rustix::io::Errno;

use super::error::StorageError;
use super::fingerprint::{CtimeCheck, Fingerprint};
use super::names::find_free_name;
use super::path::UserPath;
use super::root::UserRoot;
use super::sys::{self, Stat};

/// Default number of parent directories a [`Mover`] keeps open.
pub const DEFAULT_DIR_CACHE: usize = 256;

/// Moves `src_dir/src_name` to `dst_dir/dst_name` without replacing
/// anything. Both names must be single components (callers get them from
/// [`UserPath::split_last`]). `ENOENT` is returned as `NotFound` for the
/// caller to interpret (missing source, or a deleted cached directory).
pub(crate) fn move_entry(
    src_dir: impl AsFd,
    src_name: &str,
    dst_dir: impl AsFd,
    dst_name: &str,
    expect: Option<&Fingerprint>,
) -> Result<Moved, StorageError> {
    let (src_dir, dst_dir) = (src_dir.as_fd(), dst_dir.as_fd());
    match rustix::fs::renameat_with(src_dir, src_name, dst_dir, dst_name, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(Moved::Renamed),
        Err(Errno::EXIST) => Err(StorageError::DestinationExists),
        Err(Errno::XDEV) => {
            super::copy::copy_inner(src_dir, src_name, dst_dir, dst_name, expect, &mut || {})
                .map(|()| Moved::Copied)
        }
        Err(err @ (Errno::INVAL | Errno::NOSYS)) => {
            // EINVAL also means "a directory into its own subtree"; linkat
            // cannot help directories anyway.
            match sys::lstat_at(src_dir, src_name) {
                Ok(st) if !is_dir(&st) => {
                    link_then_unlink(src_dir, src_name, dst_dir, dst_name, expect)
                        .map(|()| Moved::Renamed)
                }
                _ => Err(err.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn is_dir(st: &Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(st.mode as _) == rustix::fs::FileType::Directory
}

/// The move for filesystems without `RENAME_NOREPLACE`: `linkat` fails with
/// `EEXIST` rather than replacing, then the source name is unlinked. Not
/// atomic (a crash in between leaves two names for one inode, nothing lost).
pub(crate) fn link_then_unlink(
    src_dir: impl AsFd,
    src_name: &str,
    dst_dir: impl AsFd,
    dst_name: &str,
    expect: Option<&Fingerprint>,
) -> Result<(), StorageError> {
    let (src_dir, dst_dir) = (src_dir.as_fd(), dst_dir.as_fd());
    match rustix::fs::linkat(src_dir, src_name, dst_dir, dst_name, AtFlags::empty()) {
        Ok(()) => {}
        Err(Errno::EXIST) => return Err(StorageError::DestinationExists),
        Err(Errno::XDEV) => {
            return super::copy::copy_inner(
                src_dir,
                src_name,
                dst_dir,
                dst_name,
                expect,
                &mut || {},
            );
        }
        Err(e) => return Err(e.into()),
    }
    let linked = sys::lstat_at(dst_dir, dst_name)?;
    if let Err(e) = sys::unlink_at(src_dir, src_name) {
        // Leave things as they were: one name, the source's.
        let _ = sys::unlink_if_same(dst_dir, dst_name, &linked);
        return Err(e.into());
    }
    Ok(())
}

/// Checks the source (not following a final symlink) against `expect`.
pub(crate) fn check_source(
    dir: impl AsFd,
    name: &str,
    expect: &Fingerprint,
    ctime: CtimeCheck,
) -> Result<(), StorageError> {
    let st = sys::lstat_at(dir, name).map_err(StorageError::source)?;
    if !st.is_regular() {
        return Err(StorageError::NotARegularFile);
    }
    if Fingerprint::from_stat(&st) != *expect
        || !ctime.admits(Fingerprint::nanos(st.ctime.0, st.ctime.1))
    {
        return Err(StorageError::SourceChanged);
    }
    Ok(())
}

/// How a move went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Renamed (or linked): same inode.
    Renamed,
    /// Copied across filesystems: a new device and inode.
    Copied,
}

/// Moves many files inside one [`UserRoot`], reusing opened parent
/// directories. Create one per batch of moves (it borrows the root).
pub struct Mover<'r> {
    root: &'r UserRoot,
    /// Opened parents by path; at most `capacity` entries.
    cache: HashMap<UserPath, Arc<Dir>>,
    /// Insertion order, for FIFO eviction.
    order: VecDeque<UserPath>,
    capacity: usize,
    /// Whether the last successful move was a copy across filesystems.
    last_copied: bool,
}

impl<'r> Mover<'r> {
    /// A mover caching up to [`DEFAULT_DIR_CACHE`] directories.
    pub fn new(root: &'r UserRoot) -> Mover<'r> {
        Mover::with_capacity(root, DEFAULT_DIR_CACHE)
    }

    /// A mover caching up to `capacity` directories (0 disables the cache).
    /// Each entry holds one file descriptor.
    pub fn with_capacity(root: &'r UserRoot, capacity: usize) -> Mover<'r> {
        Mover {
            root,
            cache: HashMap::with_capacity(capacity.min(DEFAULT_DIR_CACHE)),
            order: VecDeque::new(),
            capacity,
            last_copied: false,
        }
    }

    /// Renames `from` to `to` (file, directory or symlink) without ever
    /// replacing an existing `to`; creates `to`'s parent directories as
    /// needed. See [`UserRoot::rename_noreplace`].
    pub fn rename_noreplace(&mut self, from: &UserPath, to: &UserPath) -> Result<(), StorageError> {
        self.run(from, to, None, CtimeCheck::Any)
    }

    /// Moves the regular file `from` to `to` if it still matches `expect`.
    /// See [`UserRoot::move_file`].
    pub fn move_file(
        &mut self,
        from: &UserPath,
        to: &UserPath,
        expect: &Fingerprint,
    ) -> Result<(), StorageError> {
        self.run(from, to, Some(expect), CtimeCheck::Any)
    }

    /// [`Mover::move_file`] that also refuses (as `SourceChanged`) a source
    /// whose status-change time fails `ctime` (a rewrite that kept size and
    /// mtime), checked on the same `lstat` as the fingerprint.
    pub fn move_file_unchanged(
        &mut self,
        from: &UserPath,
        to: &UserPath,
        expect: &Fingerprint,
        ctime: CtimeCheck,
    ) -> Result<(), StorageError> {
        self.run(from, to, Some(expect), ctime)
    }

    /// Whether the last successful move copied the file to another
    /// filesystem (so it has a new device and inode).
    pub fn last_move_was_copy(&self) -> bool {
        self.last_copied
    }

    /// Removes the directory `p` if it is empty (see
    /// [`UserRoot::remove_dir_if_empty`]) and drops it from the cache.
    pub fn remove_dir_if_empty(&mut self, p: &UserPath) -> Result<bool, StorageError> {
        self.forget(p);
        self.root.remove_dir_if_empty(p)
    }

    /// Drops cached directories at or under `p` (after renaming or removing
    /// a directory by other means).
    pub fn forget(&mut self, p: &UserPath) {
        self.cache.retain(|k, _| !k.starts_with(p));
        self.order.retain(|k| !k.starts_with(p));
    }

    /// Closes every cached directory.
    pub fn clear(&mut self) {
        self.cache.clear();
        self.order.clear();
    }

    fn run(
        &mut self,
        from: &UserPath,
        to: &UserPath,
        expect: Option<&Fingerprint>,
        ctime: CtimeCheck,
    ) -> Result<(), StorageError> {
        self.last_copied = false;
        let cannot = |what: &str| {
            StorageError::Invalid(format!("cannot move {what} the storage root itself"))
        };
        let (from_parent, from_name) = from.split_last().ok_or_else(|| cannot("from"))?;
        let (to_parent, to_name) = to.split_last().ok_or_else(|| cannot("onto"))?;
        let mut retried = false;
        loop {
            let (src, src_cached) = self
                .open_cached(&from_parent)
                .map_err(StorageError::source)?;
            let (r, dst_cached) = self.attempt(&src, from_name, &to_parent, to_name, expect, ctime);
            let r = r.map(|moved| self.last_copied = moved == Moved::Copied);
            let vanished = matches!(
                r,
                Err(StorageError::SourceMissing | StorageError::NotFound(_))
            );
            if !vanished {
                return r;
            }
            if !retried && (src_cached || dst_cached) {
                // A cached directory may have been deleted since: reopen once.
                retried = true;
                self.forget(&from_parent);
                self.forget(&to_parent);
                continue;
            }
            // Freshly opened directories: tell a vanished source from the rest.
            return match (&r, sys::lstat_at(&*src, from_name)) {
                (Err(StorageError::NotFound(_)), Err(e)) if e.kind() == io::ErrorKind::NotFound => {
                    Err(StorageError::SourceMissing)
                }
                _ => r,
            };
        }
    }

    /// One try with the given source parent; also says whether the
    /// destination parent came from the cache.
    fn attempt(
        &mut self,
        src: &Dir,
        from_name: &str,
        to_parent: &UserPath,
        to_name: &str,
        expect: Option<&Fingerprint>,
        ctime: CtimeCheck,
    ) -> (Result<Moved, StorageError>, bool) {
        if let Some(expect) = expect
            && let Err(e) = check_source(src, from_name, expect, ctime)
        {
            return (Err(e), false);
        }
        match self.dest_parent(to_parent) {
            Ok((dst, dst_cached)) => (
                move_entry(src, from_name, &*dst, to_name, expect),
                dst_cached,
            ),
            Err(e) => (Err(e), false),
        }
    }

    /// The destination parent, created (with its ancestors) if missing.
    fn dest_parent(&mut self, p: &UserPath) -> Result<(Arc<Dir>, bool), StorageError> {
        match self.open_cached(p) {
            Err(StorageError::NotFound(_)) => {
                self.root.create_dir_all(p)?;
                self.open_cached(p)
            }
            other => other,
        }
    }

    /// Returns the opened directory and whether it came from the cache.
    fn open_cached(&mut self, p: &UserPath) -> Result<(Arc<Dir>, bool), StorageError> {
        if let Some(dir) = self.cache.get(p) {
            return Ok((Arc::clone(dir), true));
        }
        let dir = Arc::new(self.root.open_dir(p)?);
        if self.capacity > 0 {
            if self.cache.len() >= self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.cache.remove(&old);
            }
            self.cache.insert(p.clone(), Arc::clone(&dir));
            self.order.push_back(p.clone());
        }
        Ok((dir, false))
    }

    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// The moves of a [`UserRoot`], here beside the [`Mover`] that makes them
/// (the root itself knows nothing of moving: `root` → `mover` would close a
/// cycle with `mover` → `root`).
impl UserRoot {
    /// Renames `from` to `to` (any kind of entry) without ever replacing an
    /// existing `to`, creating `to`'s parent directories as needed.
    ///
    /// Both parents are opened with cap-std (`openat2(RESOLVE_BENEATH)`), then
    /// `renameat2(RENAME_NOREPLACE)` runs on single-component names. `EEXIST`
    /// → [`StorageError::DestinationExists`]; `EXDEV` → a verified copy
    /// ([`copy_across_devices`](super::copy_across_devices)); `EINVAL` (no
    /// `renameat2` flags, e.g. NFS) → link + unlink. A symlink leading outside
    /// the root on either side → [`StorageError::Escape`]. For many moves use a
    /// [`Mover`], which reuses opened directories.
    pub fn rename_noreplace(&self, from: &UserPath, to: &UserPath) -> Result<(), StorageError> {
        Mover::with_capacity(self, 0).rename_noreplace(from, to)
    }

    /// Renames `from` to `wanted` or, when that is taken, to the first free
    /// ` (n)` name after it ([`find_free_name`]), each name claimed by the
    /// no-replace rename itself, so nothing can take it between a check and
    /// the move. The name used, or `Ok(None)` when every name up to
    /// [`MAX_SUFFIX`](super::names::MAX_SUFFIX) is taken.
    pub fn rename_to_free_name(
        &self,
        from: &UserPath,
        wanted: &UserPath,
    ) -> Result<Option<UserPath>, StorageError> {
        find_free_name(wanted, |to| match self.rename_noreplace(from, to) {
            Ok(()) => Ok(true),
            Err(StorageError::DestinationExists) => Ok(false),
            Err(e) => Err(e),
        })
    }

    /// Moves the regular file `from` to `to` if it still matches the scan:
    /// gone → [`StorageError::SourceMissing`]; a symlink or not a regular
    /// file → [`StorageError::NotARegularFile`]; size, mtime, device or inode
    /// differ → [`StorageError::SourceChanged`]; then as
    /// [`rename_noreplace`](Self::rename_noreplace).
    pub fn move_file(
        &self,
        from: &UserPath,
        to: &UserPath,
        expect: &Fingerprint,
    ) -> Result<(), StorageError> {
        Mover::with_capacity(self, 0).move_file(from, to, expect)
    }

    /// A [`Mover`] for many moves in this root.
    pub fn mover(&self) -> Mover<'_> {
        Mover::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Fingerprint;

    #[test]
    fn a_moved_file_is_recognised_by_its_inode_or_as_a_copy_on_another_device() {
        let fp = Fingerprint {
            size: 5,
            mtime_ns: 7,
            dev: 1,
            ino: 2,
        };
        assert!(fp.is_moved(&fp));
        // A verified copy on another filesystem: new device and inode.
        assert!(fp.is_moved(&Fingerprint {
            dev: 9,
            ino: 3,
            ..fp
        }));
        // Another inode on the same device is another file.
        assert!(!fp.is_moved(&Fingerprint { ino: 3, ..fp }));
        for other in [
            Fingerprint {
                dev: 9,
                size: 6,
                ..fp
            },
            Fingerprint {
                dev: 9,
                mtime_ns: 8,
                ..fp
            },
            Fingerprint { size: 6, ..fp },
        ] {
            assert!(!fp.is_moved(&other), "{other:?}");
        }
    }
}
