//! Rooted per-user storage: the one module through which the service touches
//! files.
//!
//! Every user's files live under `STORAGE_ROOT/<user-id>/`. Nothing outside
//! this module opens, stats, moves or removes a user's file; everything goes
//! through a [`UserRoot`] and names files with a [`UserPath`].
//!
//! # Design
//!
//! - **Two layers of confinement.** [`UserPath`] rejects `..`, absolute
//!   paths, NUL and the like *lexically*, once, at the edge (parse, don't
//!   validate). [`UserRoot`] then resolves paths only relative to a cap-std
//!   [`Dir`](cap_std::fs::Dir) opened once on the user's directory (the only
//!   use of ambient authority). cap-std resolves with `openat2(RESOLVE_BENEATH)`,
//!   so a symlink *anywhere* in a path that leads outside the root is refused
//!   by the kernel, not by string checks; such errors are reported as
//!   [`is_escape`] → `PATH_ESCAPE`. Symlinks that stay inside (relative ones)
//!   are followed in directory components; absolute symlinks are always refused.
//!   `..` never reaches `openat2` (stack.md fact 4: it makes it flaky).
//! - **The last component is handled by hand.** cap-std's `rename` silently
//!   replaces its target and has no no-replace mode (fact 1), so every
//!   operation on a file opens the *parent* with cap-std and then calls the raw
//!   `*at` syscall (`renameat2(RENAME_NOREPLACE)`, `openat(O_NOFOLLOW)`,
//!   `unlinkat`, `linkat`) with a single-component name, which cannot escape
//!   the parent (fact 2). Final symlinks are never followed when reading or
//!   moving.
//! - **Never overwrite.** Moves use `RENAME_NOREPLACE` (`EEXIST` →
//!   [`MoveError::DestinationExists`]). Filesystems that reject the flag
//!   (`EINVAL`, e.g. NFS) get link + unlink, which cannot replace either;
//!   there is no code path with a plain `rename`. Across devices (`EXDEV`) a
//!   verified copy is published with the same no-replace rename, see
//!   [`copy_across_devices`].
//! - **Re-check before moving.** [`UserRoot::move_file`] compares the source
//!   with the [`Fingerprint`] taken at scan time (size, mtime, device, inode),
//!   so a file changed since the plan is skipped with a reason, not moved.
//! - **Speed.** An organize moves up to a million files. [`Mover`] keeps a
//!   small bounded cache of opened parent directories, so a move is typically
//!   one `renameat2` (fact 3: faster than `std::fs::rename` with paths).
//! - **Walks by handles, at the moment of use.** Every walk of a tree (the
//!   scan, sizing, the trash, the temp-file sweep) is a [`walk::Walk`]: it
//!   starts from [`UserRoot::open_walk`] (`openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS)`: no symlink anywhere on the way, not only at the
//!   end) and descends one name at a time from its parent's descriptor with
//!   `O_NOFOLLOW`; it is iterative, bounded in depth ([`MAX_DEPTH`]) and in
//!   descriptors. The engine reads files with [`UserRoot::open_read_exact`]
//!   the same way, checking the inode the scan saw. See [`walk`] for the
//!   defects each rule answers.
//! - **Crash leftovers.** Copies go through a temporary file named
//!   `.fileorg-tmp-<uuid>` ([`TEMP_PREFIX`]); a crash mid-copy leaves at
//!   worst such a file (and the intact source), which
//!   [`UserRoot::sweep_temp_files`] removes at start-up.
//!
//! Errors stay `std::io::Error` / [`MoveError`] inside the engine;
//! [`io_error_into_app`], [`MoveError::into_app_error`] and
//! [`PathError::into_app_error`] turn them into API errors naming the request
//! field.
//!
//! Not handled: file names that are not UTF-8 cannot be a [`UserPath`]
//! ([`UserPath::from_relative`] says so, and the engine skips them with a
//! reason). A copy across devices does not preserve owner, xattrs/ACLs,
//! sparseness or other hard links of the source.

#![warn(missing_docs)]

pub mod copy;
pub mod mover;
pub mod path;
pub mod root;
mod sys;
pub mod walk;

use std::io;

pub use copy::copy_across_devices;
pub use mover::{Fingerprint, MoveError, Mover};
pub use path::{PathError, UserPath};
pub use root::UserRoot;
pub use walk::{MAX_DEPTH, WalkError};

use crate::error::AppError;
use crate::pb::fileorganizer::v1::ErrorReason;

/// Name prefix of the temporary files of an in-flight copy. Such files are
/// hidden (the scanner skips them) and removed by
/// [`UserRoot::sweep_temp_files`].
pub const TEMP_PREFIX: &str = ".fileorg-tmp-";

/// Marker payload of the `io::Error` returned when a path would leave the root.
#[derive(Debug, thiserror::Error)]
#[error("path leads outside the user's storage root")]
struct Escaped;

/// The error for a path that would leave the root.
pub(crate) fn escape_error() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, Escaped)
}

/// Whether an error from this module means "the path leads outside the
/// user's root" (a symlink pointing outside, or an absolute symlink).
///
/// cap-std reports an escape as `PermissionDenied` *without* an errno ("a
/// path led outside of the filesystem"); a real `EACCES` always carries one.
pub fn is_escape(e: &io::Error) -> bool {
    if e.get_ref().is_some_and(|inner| inner.is::<Escaped>()) {
        return true;
    }
    e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_none()
}

/// Normalizes cap-std's escape error into ours, leaving others alone.
pub(crate) fn classify(e: io::Error) -> io::Error {
    if is_escape(&e) { escape_error() } else { e }
}

/// Whether the error is a refused symbolic link (`ELOOP` from an
/// `O_NOFOLLOW` open of a symlink).
pub fn is_symlink_refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// How long a client is told to wait after the disk was found full: space
/// has to be freed first, so retrying at once is pointless.
const DISK_FULL_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// The error for a write that found the filesystem full (`ENOSPC`, or a
/// filesystem quota: `EDQUOT`).
///
/// It is RESOURCE_EXHAUSTED with reason `QUOTA_EXCEEDED` and a message saying
/// that the *disk* is full, not the caller's quota: the caller can do
/// nothing about it but retry later (hence the RetryInfo), and it is not a
/// server bug, so not INTERNAL. No new ErrorReason was added for it: the
/// reason already means "a storage limit was hit" and a new enum value would
/// change the contract and every generated artifact for no client benefit.
fn disk_full(field: &str) -> AppError {
    AppError::ResourceExhausted {
        reason: ErrorReason::QuotaExceeded,
        message: format!(
            "{field}: the server's storage is full (no space left on the disk); \
             retry after space is freed"
        ),
        retry_after: DISK_FULL_RETRY,
    }
}

/// Turns a storage error about the path in request field `field` into the
/// API error the client sees: an escape or a refused symlink is
/// INVALID_ARGUMENT with reason `PATH_ESCAPE`, a missing path NOT_FOUND,
/// a wrong file type INVALID_ARGUMENT, a full disk RESOURCE_EXHAUSTED
/// ([`disk_full`]), anything else INTERNAL (logged, not sent).
pub fn io_error_into_app(e: io::Error, field: &str) -> AppError {
    let invalid = |description: &str, reason| AppError::InvalidArgument {
        field: field.to_owned(),
        description: description.to_owned(),
        reason,
    };
    if is_escape(&e) {
        return invalid("leads outside your storage root", ErrorReason::PathEscape);
    }
    match e.raw_os_error() {
        Some(libc::ELOOP) => {
            return invalid(
                "is a symbolic link; symbolic links are not followed",
                ErrorReason::PathEscape,
            );
        }
        Some(libc::ENOTDIR) => {
            return invalid("is not a directory", ErrorReason::InvalidArgument);
        }
        Some(libc::EISDIR) => {
            return invalid("is a directory", ErrorReason::InvalidArgument);
        }
        Some(libc::ENOSPC | libc::EDQUOT) => return disk_full(field),
        _ => {}
    }
    match e.kind() {
        io::ErrorKind::NotFound => AppError::not_found(field),
        io::ErrorKind::AlreadyExists => AppError::AlreadyExists {
            reason: ErrorReason::AlreadyExists,
            message: format!("{field} already exists"),
        },
        io::ErrorKind::InvalidInput if e.get_ref().is_some() => {
            invalid(&e.to_string(), ErrorReason::InvalidArgument)
        }
        io::ErrorKind::PermissionDenied => AppError::FailedPrecondition {
            message: format!("{field}: the service may not access this path on disk"),
        },
        _ => AppError::internal(format!("storage error on {field}: {e}")),
    }
}

/// Turns a failed walk of the folder `path` (named by request field
/// `field`) into the API error: a tree deeper than [`MAX_DEPTH`] or one
/// that changed while it was read is FAILED_PRECONDITION (the request was
/// fine, the tree is not walkable as it is), I/O errors as
/// [`io_error_into_app`].
pub fn walk_error_into_app(e: WalkError, path: &UserPath, field: &str) -> AppError {
    match e {
        WalkError::TooDeep(limit) => AppError::FailedPrecondition {
            message: format!(
                "{field}: holds folders nested more than {limit} levels deep, which the \
                 service does not walk ({path})"
            ),
        },
        WalkError::Changed => AppError::FailedPrecondition {
            message: format!(
                "{field}: a folder was moved or replaced while it was being read; try again \
                 ({path})"
            ),
        },
        WalkError::Io(e) => io_error_into_app(e, field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_errors_are_recognised() {
        assert!(is_escape(&escape_error()));
        let cap_std_style = io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a path led outside of the filesystem",
        );
        assert!(is_escape(&cap_std_style));
        assert!(!is_escape(&io::Error::from_raw_os_error(libc::EACCES)));
        assert!(!is_escape(&io::Error::from_raw_os_error(libc::ENOENT)));
        let AppError::InvalidArgument { field, reason, .. } =
            io_error_into_app(escape_error(), "source_path")
        else {
            panic!("expected InvalidArgument");
        };
        assert_eq!(field, "source_path");
        assert_eq!(reason, ErrorReason::PathEscape);
        assert!(matches!(
            io_error_into_app(io::Error::from_raw_os_error(libc::ENOENT), "p"),
            AppError::NotFound { .. }
        ));
        assert!(matches!(
            io_error_into_app(io::Error::from_raw_os_error(libc::EIO), "p"),
            AppError::Internal(_)
        ));
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let AppError::ResourceExhausted {
                reason, message, ..
            } = io_error_into_app(io::Error::from_raw_os_error(errno), "content")
            else {
                panic!("a full disk must be RESOURCE_EXHAUSTED");
            };
            assert_eq!(reason, ErrorReason::QuotaExceeded);
            assert!(
                message.starts_with("content: ") && message.contains("full"),
                "{message}"
            );
        }
    }
}
