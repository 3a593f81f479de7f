//! Rooted per-user storage: the one module through which the service touches
//! users' files.
//!
//! Every user's files live under `STORAGE_ROOT/<user-id>/`. Nothing outside
//! this module opens, stats, lists, writes, moves or removes a user's file:
//! everything goes through a [`UserRoot`] (and what it hands out: a
//! [`Mover`], a [`Folder`] to list, a [`NewFile`] to write, a read-only
//! file) and names files with a [`UserPath`]. Each mechanism exists once,
//! here: the free ` (n)` name search ([`names`]), directory fsync, the
//! temporary file published without replacing ([`new_file`], [`copy`]),
//! the trash's walks and moves ([`trash`]).
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
//!   [`StorageError::Escape`]. Symlinks that stay inside (relative ones)
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
//!   [`StorageError::DestinationExists`]). Filesystems that reject the flag
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
//! - **A free name, never a replaced one.** Where a taken name may be varied
//!   (an upload or a restore under the RENAME policy, the organize planner,
//!   its apply and its recovery), [`names::find_free_name`] tries
//!   `name (1).ext`, `name (2).ext`, … up to one bound,
//!   [`names::MAX_SUFFIX`]; callers that move or publish claim each name
//!   with the no-replace rename itself, so the check and the use cannot be
//!   separated.
//! - **Durable names.** A folder gets `fsync`ed after a name in it is
//!   created or published (`sys::fsync_dir`, the only copy: cap-std's
//!   `O_PATH` descriptors cannot be fsynced, so it reopens `.`).
//! - **Crash leftovers.** Copies and uploads ([`NewFile`]) go through a
//!   temporary file named `.fileorg-tmp-<uuid>` ([`TEMP_PREFIX`]), created
//!   in the destination folder; a crash leaves at worst such a file (and the
//!   intact source), which [`UserRoot::sweep_temp_files`] (run when an
//!   operation starts applying) removes once it has been left untouched for
//!   [`abandoned_after`]; a temp file still being written is never touched by
//!   anyone but its writer.
//! - **Resumable uploads** keep their bytes in `.fileorg-tmp-uploads/<id>`
//!   ([`upload_area`]), locked while a request uses them, and become a
//!   [`NewFile`] by one no-replace rename when finished.
//!
//! Errors: every operation of a [`UserRoot`], [`Mover`] or [`NewFile`]
//! returns a [`StorageError`]: system errors classified once (an escape, a refused
//! symlink, a missing name, a full disk, …) and the layer's own outcomes (a
//! move's source missing or changed, its destination taken, a tree too deep
//! to walk). The layer knows nothing of the API (no `crate::error`, no
//! `crate::pb` here): a handler names the request field with
//! [`StorageError::at`] and `crate::error` converts that, once, into the
//! client's error. The walk primitives ([`walk::Walk`],
//! [`UserRoot::open_walk`]) stay at the `io::Error` level the scan builds on.
//!
//! Not handled: file names that are not UTF-8 cannot be a [`UserPath`]
//! ([`UserPath::from_relative`] says so, and the engine skips them with a
//! reason). A copy across devices does not preserve owner, xattrs/ACLs,
//! sparseness or other hard links of the source.

#![warn(missing_docs)]

pub(crate) mod copy;
mod error;
mod fingerprint;
pub(crate) mod folder_state;
pub(crate) mod mover;
pub(crate) mod names;
pub(crate) mod new_file;
pub(crate) mod path;
pub(crate) mod root;
mod sys;
pub(crate) mod trash;
pub(crate) mod upload_area;
pub(crate) mod walk;

use std::io;

pub use copy::copy_across_devices;
pub use error::{FieldError, StorageError};
pub use fingerprint::{CtimeCheck, Fingerprint};
pub use folder_state::{FolderState, folder_state};
pub use mover::Mover;
pub use new_file::NewFile;
pub use path::{PathError, UserPath};
pub use root::{Folder, UserRoot};
pub use trash::is_internal;
pub use upload_area::{SessionFile, UPLOADS_FOLDER};
pub use walk::{MAX_DEPTH, WalkError};

/// Name prefix of the temporary files of an in-flight copy or upload. Such
/// files are hidden (the scanner skips them, listings never show them) and
/// belong to their writer; only [`UserRoot::sweep_temp_files`] removes
/// another's, once abandoned ([`abandoned_after`]).
pub const TEMP_PREFIX: &str = ".fileorg-tmp-";

/// How long a temporary file must have been left untouched before the
/// sweep takes it for a crash's leftover: an hour, or twice the longest a
/// request may run (`REQUEST_TIMEOUT_SECS`), whichever is longer. Every
/// writer touches its file far more often: an upload at each message (an
/// idle stream is dropped after 120 s), an archive entry when its batch is
/// published, a copy at each block.
pub fn abandoned_after(request_timeout: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(3600).max(request_timeout * 2)
}

/// Whether a system error means "the path leads outside the user's root"
/// (a symlink pointing outside, or an absolute symlink).
///
/// cap-std reports an escape as `PermissionDenied` *without* an errno ("a
/// path led outside of the filesystem"); a real `EACCES` always carries one.
fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_errors_are_recognised() {
        let cap_std_style = io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a path led outside of the filesystem",
        );
        assert!(is_escape(&cap_std_style));
        assert!(!is_escape(&io::Error::from_raw_os_error(libc::EACCES)));
        assert!(!is_escape(&io::Error::from_raw_os_error(libc::ENOENT)));
    }
}
