//! [`Walk`]: the one way the service walks a user's tree.
//!
//! Every walk of a user's folder (the organize scan, sizing a folder for the
//! trash or the usage summary, emptying the trash, sweeping temporary
//! files) goes through this module, because each naive way of walking a
//! tree was found to be a defect of its own:
//!
//! - **Recursion** overflows the stack on a deep tree and aborts the whole
//!   process (a 3,000-level folder in the trash did, through cap-std's
//!   recursive `remove_dir_all`). A [`Walk`] is an explicit stack of frames
//!   on the heap; nothing here recurses.
//! - **Absolute paths** are re-resolved at every step, so a folder swapped
//!   for a symlink between the check and the use is followed (walkdir opens
//!   by path without `O_NOFOLLOW`: an organize listed another tenant's
//!   files). A walk starts from a descriptor opened beneath the user's root
//!   *at the moment of use*, with no symlink allowed anywhere on the way
//!   ([`UserRoot::open_walk`](super::UserRoot::open_walk):
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`), and descends by
//!   handles: each folder is opened from its parent's descriptor by one name
//!   with `O_NOFOLLOW | O_DIRECTORY`, so a folder that became a symlink is
//!   refused (`ELOOP`/`ENOTDIR`), never followed.
//! - **One descriptor per pending folder** exhausts the process's
//!   descriptors on a wide tree (20,000 subfolders did). A walk reads a
//!   folder's entries whole when it enters it, keeps only the names, and
//!   holds at most [`MAX_OPEN_DIRS`] descriptors: those of the deepest
//!   folders on the current path. A folder whose descriptor was given back is
//!   reopened from its nearest open ancestor, one name at a time, and must
//!   still be the same directory (device and inode), or the walk reports it
//!   as changed and leaves it.
//!
//! Walks are synchronous and may take seconds: run them on the blocking
//! pool, never on an async worker. They are bounded in depth by
//! [`MAX_DEPTH`] levels below their start: a deeper folder is reported as
//! [`WalkError::TooDeep`] rather than entered. No path a client can name is
//! that deep (a path has at most 4096 bytes, so at most 2048 levels), and
//! RestoreFile refuses to nest a folder past it, so only a tree made on the
//! server's disk by other means can reach the limit. Removing a tree
//! ([`remove_tree`](super::UserRoot::remove_tree)) is not bounded by it.
//!
//! Entries of a folder are visited in byte order of their names, folders
//! before their contents (pre-order), with a [`Event::Leave`] once a
//! folder's contents are done (post-order), which is what removal needs.

use std::ffi::{OsStr, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};

use super::error::StorageError;
use super::path::UserPath;
use super::sys::{self, Stat};

/// Deepest level below its start that a walk enters.
pub const MAX_DEPTH: usize = 4096;

/// Most directory descriptors one walk holds at a time.
pub const MAX_OPEN_DIRS: usize = 32;

/// Size of the buffer `getdents64` fills.
const DIRENT_BUFFER: usize = 32 * 1024;

/// What kind of entry a name is (never following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// Anything else: a FIFO, socket or device.
    Other,
}

impl Kind {
    fn of(file_type: FileType) -> Kind {
        match file_type {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    /// The kind of an entry from its `lstat` mode.
    pub(crate) fn of_mode(mode: u32) -> Kind {
        Kind::of(FileType::from_raw_mode(mode as _))
    }

    /// The kind of an entry from metadata taken without following a final
    /// symlink.
    pub fn of_metadata(meta: &cap_std::fs::Metadata) -> Kind {
        let file_type = meta.file_type();
        if file_type.is_file() {
            Kind::File
        } else if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        }
    }
}

/// Why a folder was not walked.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The folder lies more than [`MAX_DEPTH`] levels below the start.
    #[error("is nested more than {0} folder levels deep")]
    TooDeep(usize),
    /// The folder was replaced (renamed, or swapped for another directory)
    /// while the walk was in it.
    #[error("changed while it was being read")]
    Changed,
    /// Opening or reading the folder failed: a symlink now where a folder
    /// was is `ELOOP`/`ENOTDIR`.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl WalkError {
    /// As an `io::Error`, for callers that report walks as I/O.
    pub fn into_io(self) -> io::Error {
        match self {
            WalkError::Io(e) => e,
            other => io::Error::other(other),
        }
    }

    /// The [`StorageError`] for a failed walk of `folder`.
    pub fn in_folder(self, folder: &UserPath) -> StorageError {
        match self {
            WalkError::TooDeep(limit) => StorageError::TooDeep {
                limit,
                folder: folder.clone(),
            },
            WalkError::Changed => StorageError::FolderChanged {
                folder: folder.clone(),
            },
            WalkError::Io(e) => e.into(),
        }
    }
}

/// One entry of a folder, as the walk hands it to its visitor.
pub struct Entry<'w> {
    dir: BorrowedFd<'w>,
    name: &'w OsStr,
    path: &'w Path,
    depth: usize,
    kind: Kind,
}

impl<'w> Entry<'w> {
    /// The entry's name in its folder: one component.
    pub fn name(&self) -> &'w OsStr {
        self.name
    }

    /// The path relative to the walk's start (prefixed by its base).
    pub fn path(&self) -> &'w Path {
        self.path
    }

    /// 1 for the entries of the start folder, 2 for theirs, …
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// What the entry is (a symlink is a symlink: never followed).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// `lstat` of the entry, relative to its folder's descriptor.
    pub(crate) fn stat(&self) -> io::Result<Stat> {
        sys::lstat_at_os(self.dir, self.name)
    }

    /// The descriptor of the folder holding the entry.
    pub(crate) fn dir(&self) -> BorrowedFd<'w> {
        self.dir
    }

    /// Opens the entry for reading at the moment of use, by its one name
    /// relative to its folder's descriptor, never following a symlink
    /// (`O_NOFOLLOW`: `ELOOP`) and never blocking on a FIFO; only a regular
    /// file is handed out (anything else is `InvalidInput`). Its metadata
    /// is the open file's own (`fstat`), not the name's.
    pub(crate) fn open_file(&self) -> io::Result<std::fs::File> {
        let fd = sys::open_read_nofollow_os(self.dir, self.name)?;
        if !sys::fstat(&fd)?.is_regular() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(std::fs::File::from(fd))
    }
}

/// What a walk reports.
pub enum Event<'w> {
    /// An entry of a folder, in name order.
    Entry(Entry<'w>),
    /// A folder the visitor entered, once everything in it was visited; its
    /// parent's descriptor is still open (for `rmdir`).
    Leave(Entry<'w>),
    /// A folder the visitor asked to enter but that could not be walked;
    /// the walk goes on with its next sibling.
    Error {
        /// The folder, relative to the start.
        path: &'w Path,
        /// Why.
        error: WalkError,
    },
}

/// The visitor's answer to an [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// Go on; a folder is not entered.
    Next,
    /// Enter this folder (only meaningful for [`Kind::Dir`] entries).
    Enter,
    /// End the walk now.
    Stop,
}

/// A folder on the current path.
struct Frame {
    /// Open while the folder is among the deepest [`MAX_OPEN_DIRS`].
    fd: Option<OwnedFd>,
    /// Device and inode, to recognise the folder when reopening it.
    id: (u64, u64),
    /// Its name in its parent (empty for the start).
    name: OsString,
    /// Its entries, sorted by name.
    entries: Vec<(OsString, Option<Kind>)>,
    /// The next entry to visit.
    next: usize,
}

/// An iterative walk of one folder's tree; see the module docs.
pub struct Walk {
    frames: Vec<Frame>,
    /// The current folder's path relative to the start (under `base`).
    path: PathBuf,
    max_depth: usize,
    max_open: usize,
    /// Descriptors held by `frames`.
    open: usize,
    /// Indexes of the frames below the start that hold a descriptor, in
    /// order (at most `max_open` of them: eviction scans this, not `frames`).
    holders: Vec<usize>,
    /// The most descriptors held at once (for tests and logs).
    peak_open: usize,
    buffer: Vec<MaybeUninit<u8>>,
}

impl Walk {
    /// A walk of the folder open as `start` (opened `O_RDONLY|O_DIRECTORY`,
    /// e.g. by [`open_dir_at`] or `UserRoot::open_walk`); entry paths start
    /// with `base`. Reads the start folder's entries at once.
    pub fn new(start: OwnedFd, base: PathBuf) -> io::Result<Walk> {
        let mut walk = Walk {
            frames: Vec::new(),
            path: base,
            max_depth: MAX_DEPTH,
            max_open: MAX_OPEN_DIRS,
            open: 0,
            holders: Vec::new(),
            peak_open: 0,
            buffer: vec![MaybeUninit::uninit(); DIRENT_BUFFER],
        };
        let frame = walk.frame(start, OsString::new())?;
        walk.frames.push(frame);
        walk.opened();
        Ok(walk)
    }

    /// Enters at most `depth` levels below the start (default [`MAX_DEPTH`]).
    pub fn max_depth(mut self, depth: usize) -> Walk {
        self.max_depth = depth;
        self
    }

    /// Holds at most `n` descriptors (at least 2; default [`MAX_OPEN_DIRS`]).
    pub fn max_open(mut self, n: usize) -> Walk {
        self.max_open = n.max(2);
        self
    }

    /// The most descriptors this walk held at once.
    pub fn peak_open(&self) -> usize {
        self.peak_open
    }

    /// Runs the walk, handing every event to `visit`. `Ok(false)` if the
    /// visitor stopped it. An error reading a folder the visitor entered is
    /// an [`Event::Error`], not a failure of the walk.
    pub fn run(&mut self, mut visit: impl FnMut(Event<'_>) -> Visit) -> io::Result<bool> {
        while let Some(top) = self.frames.len().checked_sub(1) {
            let frame = &mut self.frames[top];
            if frame.next >= frame.entries.len() {
                if top == 0 {
                    break;
                }
                let done = self.pop();
                let parent = top - 1;
                if let Err(error) = self.ensure_open(parent) {
                    if self.abandon(error, &mut visit) == Visit::Stop {
                        return Ok(false);
                    }
                    continue;
                }
                self.path.push(&done.name);
                let event = Event::Leave(Entry {
                    dir: self.frames[parent]
                        .fd
                        .as_ref()
                        .expect("ensured open")
                        .as_fd(),
                    name: &done.name,
                    path: &self.path,
                    depth: top,
                    kind: Kind::Dir,
                });
                let answer = visit(event);
                self.path.pop();
                if answer == Visit::Stop {
                    return Ok(false);
                }
                continue;
            }
            if let Err(error) = self.ensure_open(top) {
                if self.abandon(error, &mut visit) == Visit::Stop {
                    return Ok(false);
                }
                continue;
            }
            let frame = &mut self.frames[top];
            let index = frame.next;
            frame.next += 1;
            let dir = frame.fd.as_ref().expect("ensured open");
            let (name, kind) = &frame.entries[index];
            let kind = match kind {
                Some(kind) => *kind,
                // No d_type from this filesystem: ask.
                None => match sys::lstat_at_os(dir, name) {
                    Ok(stat) => Kind::of_mode(stat.mode),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(_) => Kind::Other,
                },
            };
            self.path.push(name);
            let answer = visit(Event::Entry(Entry {
                dir: dir.as_fd(),
                name,
                path: &self.path,
                depth: top + 1,
                kind,
            }));
            match answer {
                Visit::Stop => return Ok(false),
                Visit::Enter if kind == Kind::Dir => {
                    let name = name.clone();
                    if let Err(error) = self.enter(top, name) {
                        let answer = visit(Event::Error {
                            path: &self.path,
                            error,
                        });
                        self.path.pop();
                        if answer == Visit::Stop {
                            return Ok(false);
                        }
                    }
                    // On success the path keeps the folder's name.
                }
                _ => {
                    self.path.pop();
                }
            }
        }
        Ok(true)
    }

    /// Opens the folder `name` of frame `parent` and pushes it.
    fn enter(&mut self, parent: usize, name: OsString) -> Result<(), WalkError> {
        if parent + 1 > self.max_depth {
            return Err(WalkError::TooDeep(self.max_depth));
        }
        let fd = {
            let dir = self.frames[parent].fd.as_ref().expect("ensured open");
            open_dir_at(dir, &name)?
        };
        let frame = self.frame(fd, name)?;
        self.frames.push(frame);
        self.opened();
        Ok(())
    }

    /// Reads the folder open as `fd` into a frame.
    fn frame(&mut self, fd: OwnedFd, name: OsString) -> io::Result<Frame> {
        let stat = sys::fstat(&fd)?;
        // From the first entry even if the descriptor was read before (a
        // `dup` shares the position).
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))?;
        let mut entries = Vec::new();
        let mut dir = RawDir::new(&fd, &mut self.buffer);
        while let Some(entry) = dir.next() {
            let entry = entry?;
            let bytes = entry.file_name().to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => None,
                file_type => Some(Kind::of(file_type)),
            };
            entries.push((OsStr::from_bytes(bytes).to_owned(), kind));
        }
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(Frame {
            fd: Some(fd),
            id: (stat.dev, stat.ino),
            name,
            entries,
            next: 0,
        })
    }

    /// Pops the deepest frame, giving its descriptor back.
    fn pop(&mut self) -> Frame {
        let frame = self.frames.pop().expect("a frame to pop");
        if frame.fd.is_some() {
            self.open -= 1;
            let index = self.frames.len();
            self.holders.retain(|&h| h != index);
        }
        if !self.frames.is_empty() {
            self.path.pop();
        }
        frame
    }

    /// Counts a newly opened descriptor (the deepest frame's) and gives
    /// others back while over the bound.
    fn opened(&mut self) {
        let deepest = self.frames.len().saturating_sub(1);
        self.hold(deepest);
        self.evict(deepest);
    }

    /// Levels between two checkpoints: frames at multiples of it keep their
    /// descriptor longest, so that half the budget spreads over the whole
    /// depth and a reopen walks down at most this many names. With the
    /// defaults (4096 levels, 32 descriptors) it is 256: a walk back up a
    /// 4096-level tree costs about 16 `openat` per level, not thousands.
    fn stride(&self) -> usize {
        let checkpoints = (self.max_open / 2).max(1);
        self.max_depth.div_ceil(checkpoints).max(1)
    }

    /// Closes descriptors of frames above `keep_from` (never the start's)
    /// until at most `max_open` are held: the shallowest frames that are not
    /// checkpoints first, then the shallowest of any.
    fn evict(&mut self, keep_from: usize) {
        let stride = self.stride();
        while self.open > self.max_open {
            let candidates = self.holders.iter().take_while(|&&i| i < keep_from);
            let victim = candidates
                .clone()
                .position(|&i| i % stride != 0)
                .or_else(|| (candidates.count() > 0).then_some(0));
            let Some(victim) = victim else { break };
            let frame = self.holders.remove(victim);
            self.frames[frame].fd = None;
            self.open -= 1;
        }
        self.peak_open = self.peak_open.max(self.open);
    }

    /// Records that frame `i` (below the start) now holds a descriptor.
    fn hold(&mut self, i: usize) {
        self.open += 1;
        if i > 0 {
            let at = self.holders.partition_point(|&h| h < i);
            self.holders.insert(at, i);
        }
    }

    /// Makes sure frame `i` has a descriptor, reopening it (and the folders
    /// between it and its nearest open ancestor) by name. A reopened folder
    /// that is not the directory it was is [`WalkError::Changed`], reported
    /// for the first frame that failed (returned in the error's place).
    fn ensure_open(&mut self, i: usize) -> Result<(), (usize, WalkError)> {
        if self.frames[i].fd.is_some() {
            return Ok(());
        }
        let open_ancestor = self
            .holders
            .iter()
            .rev()
            .find(|&&j| j < i)
            .copied()
            .unwrap_or(0);
        for m in open_ancestor + 1..=i {
            let reopened = {
                let parent = self.frames[m - 1].fd.as_ref().expect("opened in order");
                open_dir_at(parent, &self.frames[m].name)
            };
            let fd = reopened.map_err(|e| (m, WalkError::Io(e)))?;
            let stat = sys::fstat(&fd).map_err(|e| (m, WalkError::Io(e)))?;
            if (stat.dev, stat.ino) != self.frames[m].id {
                return Err((m, WalkError::Changed));
            }
            self.frames[m].fd = Some(fd);
            self.hold(m);
            // Keep the frame just reopened; shallower ones may go.
            self.evict(m);
        }
        Ok(())
    }

    /// Gives up on frame `failed.0` and everything below it, reporting why.
    fn abandon(
        &mut self,
        (failed, error): (usize, WalkError),
        visit: &mut impl FnMut(Event<'_>) -> Visit,
    ) -> Visit {
        while self.frames.len() > failed + 1 {
            self.pop();
        }
        // `path` names the failed folder while it is reported.
        let answer = visit(Event::Error {
            path: &self.path,
            error,
        });
        self.pop();
        answer
    }
}

/// Opens the folder `name` of `dir` for a walk: one component, never a
/// symlink (`O_NOFOLLOW`: `ELOOP`), only a directory (`ENOTDIR`).
pub fn open_dir_at(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    if !sys::is_one_name(name.as_bytes()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single file name",
        ));
    }
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Removes the entry `name` of `dir` and, if it is a folder, everything in
/// it, never following a symlink: a folder's contents go first, each by
/// one name relative to its folder's descriptor. No depth limit: a folder
/// more than [`MAX_DEPTH`] levels down is first moved up next to the top
/// folder's entries (under a `.fileorg-deep-<n>` name) and removed from
/// there, so descriptors and the walk's depth stay bounded.
///
/// What cannot be removed is left in place: the first such error is
/// returned after everything else was removed. Already gone is success.
pub(crate) fn remove_tree(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    remove_tree_with(dir, name, MAX_DEPTH)
}

pub(crate) fn remove_tree_with(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    let stat = match sys::lstat_at_os(dir, name) {
        Ok(stat) => stat,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if Kind::of_mode(stat.mode) != Kind::Dir {
        return ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::empty()));
    }
    let top = match open_dir_at(dir, name) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut first_error: Option<io::Error> = None;
    let mut moved_up = 0u64;
    loop {
        let mut deep: Vec<OsString> = Vec::new();
        let mut walk = Walk::new(top.try_clone()?, PathBuf::new())?.max_depth(depth);
        let mut removed = 0usize;
        walk.run(|event| {
            match event {
                Event::Entry(entry) if entry.kind() == Kind::Dir => {
                    if entry.depth() < depth {
                        return Visit::Enter;
                    }
                    // Too deep to enter: move it up beside the top's entries.
                    loop {
                        moved_up += 1;
                        let new_name = OsString::from(format!(".fileorg-deep-{moved_up}"));
                        match rustix::fs::renameat_with(
                            entry.dir(),
                            entry.name(),
                            &top,
                            &new_name,
                            rustix::fs::RenameFlags::NOREPLACE,
                        ) {
                            Ok(()) => {
                                deep.push(new_name);
                                removed += 1;
                                break;
                            }
                            Err(rustix::io::Errno::EXIST) => continue,
                            Err(e) => {
                                first_error.get_or_insert(e.into());
                                break;
                            }
                        }
                    }
                }
                Event::Entry(entry) => {
                    match ignore_missing(rustix::fs::unlinkat(
                        entry.dir(),
                        entry.name(),
                        AtFlags::empty(),
                    )) {
                        Ok(()) => removed += 1,
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                Event::Leave(folder) => {
                    match ignore_missing(rustix::fs::unlinkat(
                        folder.dir(),
                        folder.name(),
                        AtFlags::REMOVEDIR,
                    )) {
                        Ok(()) => removed += 1,
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                Event::Error { error, .. } => {
                    first_error.get_or_insert(error.into_io());
                }
            }
            Visit::Next
        })?;
        if deep.is_empty() || removed == 0 {
            break;
        }
        // What was moved up is now an entry of the top folder: walk again.
    }
    drop(top);
    match ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)) {
        Ok(()) => Ok(()),
        Err(e) => Err(first_error.unwrap_or(e)),
    }
}

fn ignore_missing(result: rustix::io::Result<()>) -> io::Result<()> {
    match result {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Totals of a folder's tree.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TreeSize {
    /// Sum of the sizes of everything but folders (symlinks count as links).
    pub bytes: u64,
    /// Sum of the sizes of the regular files alone.
    pub file_bytes: u64,
    /// Regular files.
    pub files: u64,
    /// Folders below the start.
    pub folders: u64,
    /// The deepest level reached (1 = entries of the start).
    pub depth: usize,
}

/// Sizes the tree of the folder open as `start`, at most `max_depth` levels
/// deep. Entries that vanish while it runs are not counted; a folder that
/// cannot be walked (too deep, changed, unreadable) is an error, since a
/// size that silently leaves part of the tree out would be wrong.
pub(crate) fn tree_size(start: OwnedFd, max_depth: usize) -> Result<TreeSize, WalkError> {
    let mut size = TreeSize::default();
    let mut failure: Option<WalkError> = None;
    let mut walk = Walk::new(start, PathBuf::new())?.max_depth(max_depth);
    walk.run(|event| match event {
        Event::Entry(entry) => {
            size.depth = size.depth.max(entry.depth());
            match entry.kind() {
                Kind::Dir => {
                    size.folders += 1;
                    Visit::Enter
                }
                kind => {
                    match entry.stat() {
                        Ok(stat) => {
                            size.bytes = size.bytes.saturating_add(stat.size);
                            if kind == Kind::File {
                                size.files += 1;
                                size.file_bytes = size.file_bytes.saturating_add(stat.size);
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
    match failure {
        Some(error) => Err(error),
        None => Ok(size),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn open(path: &Path) -> OwnedFd {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    /// `depth` nested folders named `d` under `base`, built by descriptors
    /// (the path is longer than PATH_MAX), with `leaf.txt` at the bottom.
    pub(crate) fn deep_tree(base: &Path, depth: usize) {
        fs::create_dir_all(base).unwrap();
        let mut dir = open(base);
        for _ in 0..depth {
            match rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => panic!("mkdirat: {e}"),
            }
            dir = open_dir_at(&dir, OsStr::new("d")).unwrap();
        }
        let fd = rustix::fs::openat(
            &dir,
            "leaf.txt",
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&fd, b"leaf").unwrap();
    }

    fn collect(walk: &mut Walk) -> Vec<String> {
        let mut seen = Vec::new();
        walk.run(|event| match event {
            Event::Entry(e) => {
                seen.push(format!("{} {:?}", e.path().display(), e.kind()));
                if e.name().as_bytes().starts_with(b"skip") {
                    Visit::Next
                } else {
                    Visit::Enter
                }
            }
            Event::Leave(e) => {
                seen.push(format!("leave {}", e.path().display()));
                Visit::Next
            }
            Event::Error { path, error } => {
                seen.push(format!("error {} {error}", path.display()));
                Visit::Next
            }
        })
        .unwrap();
        seen
    }

    #[test]
    fn visits_in_name_order_pre_and_post_order_never_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("t");
        fs::create_dir_all(t.join("b/c")).unwrap();
        fs::create_dir_all(t.join("skip/x")).unwrap();
        fs::write(t.join("a.txt"), b"a").unwrap();
        fs::write(t.join("b/c/z.txt"), b"z").unwrap();
        fs::write(t.join("b/y.txt"), b"y").unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/secret"), b"s").unwrap();
        symlink(tmp.path().join("outside"), t.join("link")).unwrap();
        let mut walk = Walk::new(open(&t), PathBuf::from("base")).unwrap();
        assert_eq!(
            collect(&mut walk),
            [
                "base/a.txt File",
                "base/b Dir",
                "base/b/c Dir",
                "base/b/c/z.txt File",
                "leave base/b/c",
                "base/b/y.txt File",
                "leave base/b",
                "base/link Symlink",
                "base/skip Dir",
            ]
        );
    }

    #[test]
    fn a_folder_swapped_for_a_symlink_is_refused_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("t");
        fs::create_dir_all(t.join("a")).unwrap();
        fs::create_dir_all(tmp.path().join("outside/private")).unwrap();
        fs::write(tmp.path().join("outside/private/key"), b"k").unwrap();
        let mut walk = Walk::new(open(&t), PathBuf::new()).unwrap();
        // Listed as a folder, then swapped before it is entered.
        fs::remove_dir(t.join("a")).unwrap();
        symlink(tmp.path().join("outside"), t.join("a")).unwrap();
        let seen = collect(&mut walk);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], "a Dir");
        assert!(seen[1].starts_with("error a"), "{seen:?}");
        assert!(!seen.iter().any(|s| s.contains("private")), "{seen:?}");
    }

    #[test]
    fn a_deep_tree_is_walked_with_bounded_descriptors_and_a_depth_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("t");
        deep_tree(&t, 5000);
        // Down to the limit: every level entered, descriptors bounded.
        let mut walk = Walk::new(open(&t), PathBuf::new())
            .unwrap()
            .max_depth(6000)
            .max_open(8);
        let (mut folders, mut leaves, mut files) = (0, 0, 0);
        walk.run(|event| match event {
            Event::Entry(e) if e.kind() == Kind::Dir => {
                folders += 1;
                Visit::Enter
            }
            Event::Entry(e) => {
                assert_eq!(e.depth(), 5001);
                assert_eq!(e.stat().unwrap().size, 4);
                files += 1;
                Visit::Next
            }
            Event::Leave(_) => {
                leaves += 1;
                Visit::Next
            }
            Event::Error { error, .. } => panic!("{error}"),
        })
        .unwrap();
        assert_eq!((folders, leaves, files), (5000, 5000, 1));
        assert!(walk.peak_open() <= 8, "{}", walk.peak_open());

        // Past the limit: one clear error, nothing deeper.
        let err = tree_size(open(&t), 4096).unwrap_err();
        assert!(matches!(err, WalkError::TooDeep(4096)), "{err}");
        let size = tree_size(open(&t), 6000).unwrap();
        assert_eq!((size.bytes, size.files, size.folders), (4, 1, 5000));
        // (std's recursive remove_dir_all, in TempDir's drop, takes seconds.)
        remove_tree(open(tmp.path()).as_fd(), OsStr::new("t")).unwrap();
        assert!(!t.exists());
    }

    #[test]
    fn a_folder_replaced_while_its_descriptor_was_given_back_is_reported_as_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("t");
        fs::create_dir_all(t.join("a/b/c/d/e")).unwrap();
        fs::create_dir_all(t.join("a/b/later")).unwrap();
        fs::write(t.join("a/b/later/f.txt"), b"f").unwrap();
        fs::create_dir_all(tmp.path().join("other/later")).unwrap();
        fs::write(tmp.path().join("other/later/other.txt"), b"o").unwrap();
        let mut walk = Walk::new(open(&t), PathBuf::new()).unwrap().max_open(2);
        let mut seen = Vec::new();
        let mut swapped = false;
        walk.run(|event| match event {
            Event::Entry(e) => {
                seen.push(e.path().display().to_string());
                if e.path() == Path::new("a/b/c/d/e") && !swapped {
                    // a/b's descriptor was given back (bound 2); replace it.
                    fs::rename(t.join("a/b"), tmp.path().join("moved")).unwrap();
                    fs::rename(tmp.path().join("other"), t.join("a/b")).unwrap();
                    swapped = true;
                }
                Visit::Enter
            }
            Event::Leave(_) => Visit::Next,
            Event::Error { path, error } => {
                seen.push(format!("error {} {error}", path.display()));
                Visit::Next
            }
        })
        .unwrap();
        assert!(swapped);
        assert!(
            seen.iter()
                .any(|s| s.starts_with("error a/b") && s.contains("changed")),
            "{seen:?}"
        );
        assert!(!seen.iter().any(|s| s.contains("other.txt")), "{seen:?}");
    }

    #[test]
    fn remove_tree_removes_any_depth_and_width_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("t");
        deep_tree(&t.join("deep"), 5000);
        fs::create_dir_all(t.join("wide")).unwrap();
        for i in 0..2000 {
            fs::create_dir(t.join(format!("wide/{i}"))).unwrap();
            fs::write(t.join(format!("wide/{i}/f")), b"x").unwrap();
        }
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/keep"), b"keep").unwrap();
        symlink(tmp.path().join("outside"), t.join("wide/link")).unwrap();
        let parent = open(tmp.path());
        // A small depth bound makes the deep folder be moved up many times.
        remove_tree_with(parent.as_fd(), OsStr::new("t"), 64).unwrap();
        assert!(!t.exists());
        assert_eq!(fs::read(tmp.path().join("outside/keep")).unwrap(), b"keep");
        // Already gone, and a plain file.
        remove_tree(parent.as_fd(), OsStr::new("t")).unwrap();
        fs::write(tmp.path().join("file"), b"f").unwrap();
        remove_tree(parent.as_fd(), OsStr::new("file")).unwrap();
        assert!(!tmp.path().join("file").exists());
    }
}
