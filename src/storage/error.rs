//! [`StorageError`]: why a storage operation failed, in the storage layer's
//! own terms.
//!
//! System errors are classified once, here (`StorageError::from` an
//! `io::Error`), so callers match on what happened (an escape, a refused
//! symlink, a full disk, a name already taken, a file that changed since the
//! scan) instead of on errnos, and every caller classifies the same way.
//! Variants made from a system error keep it, and display as it does: the
//! reasons recorded on file records and in logs still quote the system.
//!
//! This module knows nothing of the API. A handler names the request field
//! the path came from with [`StorageError::at`]; `crate::error` turns that
//! [`FieldError`] into the status the client sees, in one place.

use std::io;

use super::path::{PathError, UserPath};

/// Why a storage operation did not happen. Whatever the variant, nothing was
/// overwritten and nothing outside the user's root was touched.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A name that cannot be a [`UserPath`] (a request's path, or a
    /// candidate name that would make the path too long).
    #[error(transparent)]
    Path(#[from] PathError),
    /// The path leads outside the user's root: a symlink pointing outside,
    /// or an absolute symlink.
    #[error("path leads outside the storage root")]
    Escape,
    /// A symbolic link where none is followed (`ELOOP`): the last component
    /// of an `O_NOFOLLOW` open, or anywhere on the way of a walk's start.
    #[error("{0}")]
    SymlinkRefused(io::Error),
    /// Nothing has that name, or a folder on the way is missing (`ENOENT`).
    #[error("{0}")]
    NotFound(io::Error),
    /// The source of a move no longer exists.
    #[error("source file is missing")]
    SourceMissing,
    /// A folder was expected (`ENOTDIR`).
    #[error("{0}")]
    NotADirectory(io::Error),
    /// A folder is where something else was expected (`EISDIR`).
    #[error("{0}")]
    IsADirectory(io::Error),
    /// A regular file was expected: a symlink, folder or special file is
    /// there.
    #[error("is not a regular file")]
    NotARegularFile,
    /// Creating a name found it taken (`EEXIST`).
    #[error("{0}")]
    AlreadyExists(io::Error),
    /// The destination of a move (or of a new file's publication) is taken;
    /// it was left untouched.
    #[error("destination already exists")]
    DestinationExists,
    /// The source of a move differs from its scan-time fingerprint, or
    /// changed while it was being copied across devices.
    #[error("source changed since the scan")]
    SourceChanged,
    /// The name now leads to another file than the one the scan saw (a read
    /// checked against a fingerprint).
    #[error("changed since the scan (another file has its name now)")]
    Replaced,
    /// The folder `folder` (or one below it) was moved or replaced while it
    /// was being walked.
    #[error("changed while it was being read")]
    FolderChanged {
        /// The folder whose walk failed.
        folder: UserPath,
    },
    /// The folder `folder` holds folders nested more than `limit` levels
    /// deep, which walks do not enter (see [`MAX_DEPTH`](super::MAX_DEPTH)).
    #[error("is nested more than {limit} folder levels deep")]
    TooDeep {
        /// The depth bound of the walk.
        limit: usize,
        /// The folder whose walk failed.
        folder: UserPath,
    },
    /// The user's `.trash` exists but is not a real folder (a symlink
    /// there could send deletions elsewhere).
    #[error(".trash is not a folder")]
    TrashNotAFolder,
    /// The filesystem is full (`ENOSPC`) or a filesystem quota is reached
    /// (`EDQUOT`).
    #[error("{0}")]
    DiskFull(io::Error),
    /// The service's own account may not access the path (`EACCES`,
    /// `EPERM`).
    #[error("{0}")]
    PermissionDenied(io::Error),
    /// A request the layer cannot carry out as asked, such as moving the
    /// root itself.
    #[error("{0}")]
    Invalid(String),
    /// Any other system error.
    #[error("{0}")]
    Io(io::Error),
}

impl From<io::Error> for StorageError {
    /// The one classification of system errors (see the module docs).
    fn from(e: io::Error) -> StorageError {
        if super::is_escape(&e) {
            return StorageError::Escape;
        }
        match e.raw_os_error() {
            Some(libc::ELOOP) => return StorageError::SymlinkRefused(e),
            Some(libc::ENOTDIR) => return StorageError::NotADirectory(e),
            Some(libc::EISDIR) => return StorageError::IsADirectory(e),
            Some(libc::ENOSPC | libc::EDQUOT) => return StorageError::DiskFull(e),
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound(e),
            io::ErrorKind::AlreadyExists => StorageError::AlreadyExists(e),
            // Our own refusals ("not a relative path"), which carry a message.
            io::ErrorKind::InvalidInput if e.get_ref().is_some() => {
                StorageError::Invalid(e.to_string())
            }
            io::ErrorKind::PermissionDenied => StorageError::PermissionDenied(e),
            _ => StorageError::Io(e),
        }
    }
}

impl From<rustix::io::Errno> for StorageError {
    fn from(e: rustix::io::Errno) -> StorageError {
        io::Error::from(e).into()
    }
}

impl StorageError {
    /// This error about the path a request gave in field `field`, for the
    /// API's conversion (`crate::error`).
    pub fn at(self, field: &str) -> FieldError<'_> {
        FieldError { error: self, field }
    }

    /// A short human reason, recorded on the file record of a move that
    /// did not happen (the system's words reduced to a stable phrase).
    pub fn reason(&self) -> &'static str {
        match self {
            StorageError::SourceMissing => "source file is missing",
            StorageError::SourceChanged => "source changed since the scan",
            StorageError::Replaced => "changed since the scan",
            StorageError::NotARegularFile => "source is not a regular file",
            StorageError::DestinationExists => "destination already exists",
            StorageError::Escape => "path leads outside the storage root",
            StorageError::Path(_) => "not a valid path",
            StorageError::FolderChanged { .. } => "a folder changed while it was being read",
            StorageError::TooDeep { .. } => "folders nested too deep",
            StorageError::TrashNotAFolder => ".trash is not a folder",
            StorageError::Invalid(_) => "I/O error",
            StorageError::SymlinkRefused(e)
            | StorageError::NotFound(e)
            | StorageError::NotADirectory(e)
            | StorageError::IsADirectory(e)
            | StorageError::AlreadyExists(e)
            | StorageError::DiskFull(e)
            | StorageError::PermissionDenied(e)
            | StorageError::Io(e) => io_reason(e),
        }
    }

    /// The error for a file found missing where a move's source was
    /// expected: [`SourceMissing`](StorageError::SourceMissing) rather than
    /// [`NotFound`](StorageError::NotFound).
    pub(crate) fn source(e: impl Into<StorageError>) -> StorageError {
        match e.into() {
            StorageError::NotFound(_) => StorageError::SourceMissing,
            other => other,
        }
    }
}

fn io_reason(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => "permission denied",
        Some(libc::ENOSPC) => "no space left on device",
        Some(libc::EDQUOT) => "disk quota exceeded",
        Some(libc::EROFS) => "read-only filesystem",
        Some(libc::EIO) => "input/output error",
        Some(libc::ENOTDIR) => "a path component is not a directory",
        Some(libc::ENAMETOOLONG) => "file name too long",
        Some(libc::EMLINK) => "too many links",
        Some(libc::EBUSY) => "file is busy",
        Some(libc::ENOENT) => "a path component is missing",
        _ if e.kind() == io::ErrorKind::InvalidData => "copy verification failed",
        _ => "I/O error",
    }
}

impl PathError {
    /// This error about request field `field` (see [`StorageError::at`]).
    pub fn at(self, field: &str) -> FieldError<'_> {
        StorageError::from(self).at(field)
    }
}

/// A [`StorageError`] about the path a request gave in field `field`: what
/// `crate::error` turns into the API error naming that field.
#[derive(Debug)]
pub struct FieldError<'a> {
    /// What went wrong.
    pub error: StorageError,
    /// The request field (`"path"`, `"operation.source_path"`, …).
    pub field: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_errors_are_classified_once() {
        let of = |errno| StorageError::from(io::Error::from_raw_os_error(errno));
        assert!(matches!(of(libc::ELOOP), StorageError::SymlinkRefused(_)));
        assert!(matches!(of(libc::ENOENT), StorageError::NotFound(_)));
        assert!(matches!(of(libc::ENOTDIR), StorageError::NotADirectory(_)));
        assert!(matches!(of(libc::EISDIR), StorageError::IsADirectory(_)));
        assert!(matches!(of(libc::ENOSPC), StorageError::DiskFull(_)));
        assert!(matches!(of(libc::EDQUOT), StorageError::DiskFull(_)));
        assert!(matches!(of(libc::EEXIST), StorageError::AlreadyExists(_)));
        assert!(matches!(
            of(libc::EACCES),
            StorageError::PermissionDenied(_)
        ));
        assert!(matches!(of(libc::EIO), StorageError::Io(_)));
        // cap-std's escape: PermissionDenied without an errno.
        let cap_std_style = io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a path led outside of the filesystem",
        );
        assert!(matches!(
            StorageError::from(cap_std_style),
            StorageError::Escape
        ));
        let ours = io::Error::new(io::ErrorKind::InvalidInput, "not a relative path");
        assert!(
            matches!(StorageError::from(ours), StorageError::Invalid(m) if m == "not a relative path")
        );
        // Without a message of ours, an EINVAL is just a system error.
        assert!(matches!(of(libc::EINVAL), StorageError::Io(_)));
    }

    #[test]
    fn system_errors_keep_their_words() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        let text = e.to_string();
        assert_eq!(StorageError::from(e).to_string(), text);
        assert_eq!(
            StorageError::from(io::Error::from_raw_os_error(libc::ENOSPC)).reason(),
            "no space left on device"
        );
        assert_eq!(
            StorageError::source(io::Error::from_raw_os_error(libc::ENOENT)).reason(),
            "source file is missing"
        );
        assert!(matches!(
            StorageError::source(io::Error::from_raw_os_error(libc::EACCES)),
            StorageError::PermissionDenied(_)
        ));
    }
}
