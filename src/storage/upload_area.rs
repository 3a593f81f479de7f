//! The bytes of resumable upload sessions: one file per session,
//! `.fileorg-tmp-uploads/<session id>` under the user's root ([`UPLOADS_FOLDER`]).
//!
//! Why there and not beside the destination like a [`NewFile`]: a session
//! lives across requests, connections and server restarts (its row in
//! Postgres says how many bytes are committed), so its file must survive
//! what removes an interrupted upload's temp file ([`UserRoot::sweep_temp_files`]
//! removes *files* named `.fileorg-tmp-*`; these are named by their id, in
//! a folder with that prefix). The folder's name is reserved like every
//! `.fileorg-tmp-` name: a request path cannot name it, listings and the
//! organize scan never show it. It is on the user's own filesystem, so
//! publishing a finished session is a rename, never a copy.
//!
//! [`SessionFile`] holds an exclusive `flock` on the file while it is open,
//! so two requests on one session (two appends, an append and a finish, the
//! expiry sweep and anything) never interleave, even across server
//! processes on one host; the lock goes with the descriptor, so a crash
//! cannot leave it behind.
//!
//! [`NewFile::adopt_session`] turns a complete session file into a
//! [`NewFile`] in its destination folder, to be published like any upload.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use cap_std::fs::Dir;
use rustix::fs::{FlockOperation, OFlags, RenameFlags};
use rustix::io::Errno;

use super::error::StorageError;
use super::new_file::NewFile;
use super::path::UserPath;
use super::root::UserRoot;
use super::sys;

/// The folder of session files, at the root of each user's storage.
pub const UPLOADS_FOLDER: &str = ".fileorg-tmp-uploads";

/// Session files are the user's data in progress: private to the server.
const SESSION_FILE_MODE: u32 = 0o600;

/// The open, exclusively locked file of one session.
#[derive(Debug)]
pub struct SessionFile {
    file: File,
}

fn file_name(id: uuid::Uuid) -> String {
    id.simple().to_string()
}

impl UserRoot {
    /// The session folder, created if needed.
    fn uploads_dir(&self) -> Result<Dir, StorageError> {
        let folder = UserPath::parse(UPLOADS_FOLDER)?;
        self.create_dir_all(&folder)?;
        self.open_dir(&folder)
    }

    /// Creates the empty file of session `id` (exclusively) and returns it
    /// locked.
    pub fn create_session_file(&self, id: uuid::Uuid) -> Result<SessionFile, StorageError> {
        let dir = self.uploads_dir()?;
        let fd = sys::create_excl(&dir, &file_name(id), SESSION_FILE_MODE)?;
        sys::fsync_dir(&dir)?;
        Ok(lock(fd)?.expect("nobody else knows a file just created"))
    }

    /// Opens the file of session `id` for reading and writing, locked.
    /// `Ok(None)` while another request holds it; [`StorageError::NotFound`]
    /// when it is gone.
    pub fn open_session_file(&self, id: uuid::Uuid) -> Result<Option<SessionFile>, StorageError> {
        let dir = self.uploads_dir()?;
        let fd = rustix::fs::openat(
            &dir,
            file_name(id).as_str(),
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        if !sys::fstat(&fd)?.is_regular() {
            return Err(StorageError::NotARegularFile);
        }
        lock(fd)
    }

    /// Removes the file of session `id`; already gone is success.
    pub fn remove_session_file(&self, id: uuid::Uuid) -> Result<(), StorageError> {
        let dir = self.uploads_dir()?;
        match sys::unlink_at(&dir, &file_name(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Takes the exclusive lock without waiting; `Ok(None)` when it is held.
fn lock(fd: OwnedFd) -> Result<Option<SessionFile>, StorageError> {
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(SessionFile {
            file: File::from(fd),
        })),
        Err(Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(io::Error::from(e).into()),
    }
}

impl SessionFile {
    /// The file's length (bytes written, durable or not).
    pub fn stored_len(&self) -> Result<u64, StorageError> {
        Ok(self.file.metadata()?.len())
    }

    /// Cuts the file to `len` bytes (bytes written after the last commit
    /// by a request that did not finish).
    pub fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        Ok(self.file.set_len(len)?)
    }

    /// Writes `bytes` at `offset`.
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), StorageError> {
        Ok(self.file.write_all_at(bytes, offset)?)
    }

    /// Whether the file holds exactly `bytes` at `offset`.
    pub fn holds_at(&self, bytes: &[u8], offset: u64) -> Result<bool, StorageError> {
        let mut stored = vec![0; bytes.len()];
        match self.file.read_exact_at(&mut stored, offset) {
            Ok(()) => Ok(stored == bytes),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes what was written durable (`fsync`).
    pub fn sync(&self) -> Result<(), StorageError> {
        Ok(self.file.sync_all()?)
    }

    /// The blake3 hash of the whole content and its first `head` bytes.
    pub fn hash(&self, head: usize) -> Result<(blake3::Hash, Vec<u8>), StorageError> {
        let mut hasher = blake3::Hasher::new();
        let mut first = Vec::with_capacity(head);
        let mut buf = vec![0; 1024 * 1024];
        let mut offset = 0u64;
        loop {
            let n = match self.file.read_at(&mut buf, offset) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if first.len() < head {
                let take = (head - first.len()).min(n);
                first.extend_from_slice(&buf[..take]);
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        Ok((hasher.finalize(), first))
    }
}

impl NewFile {
    /// Moves the file of session `id` (complete and verified by the caller,
    /// who holds it open as `session`) into the destination folder of
    /// `path` under a temporary name (`renameat2(RENAME_NOREPLACE)`, never
    /// a copy), as a new file to publish like an upload. Missing folders
    /// on the way are created, and removed again if it is abandoned; so is
    /// the file: the session's bytes are gone once this returns.
    pub fn adopt_session(
        root: Arc<UserRoot>,
        id: uuid::Uuid,
        session: SessionFile,
        path: &UserPath,
    ) -> Result<NewFile, StorageError> {
        let area = root.uploads_dir()?;
        NewFile::begin(root, path, |dir, temp_name| {
            rustix::fs::renameat_with(
                &area,
                file_name(id).as_str(),
                dir,
                temp_name,
                RenameFlags::NOREPLACE,
            )
            .map_err(io::Error::from)?;
            Ok(session.file)
        })
    }
}
