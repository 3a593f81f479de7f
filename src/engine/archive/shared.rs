//! What the archive readers and the sink share: the import's outcome
//! ([`Imported`], [`Failure`], [`ImportError`]), the quota it draws on
//! ([`QuotaBudget`]) and the entry context ([`Entries`]). Apart from
//! `engine::archive` so that the parent and its children never import each
//! other (docs/architecture.md).

use std::io;
use std::rc::Rc;

use super::meter::{Meter, Stop};
use super::names;
use crate::domain::archive::{ArchiveFormat, SkippedEntry};
use crate::storage::{StorageError, UserPath};

/// The user's storage quota, as the import draws on it. The import reserves
/// in blocks while it writes and gives back what it did not use.
pub trait QuotaBudget {
    /// Reserves `bytes` more of the user's quota: `Ok(false)` when that
    /// much is not free (nothing reserved then).
    fn reserve(&mut self, bytes: u64) -> Result<bool, String>;
    /// Gives back `bytes` reserved and not used.
    fn release(&mut self, bytes: u64);
}

/// What an import stored and skipped (also what a stopped import kept).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The format read; `None` when it could not be told.
    pub format: Option<ArchiveFormat>,
    /// Files stored, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Folders created.
    pub folders: u64,
    /// The first [`MAX_LISTED`](super::sink::MAX_LISTED) entries skipped, and how many in all.
    pub skipped: Vec<SkippedEntry>,
    pub skipped_count: u64,
    /// The first [`MAX_LISTED`](super::sink::MAX_LISTED) files stored under another name (entry
    /// name, stored path), and how many in all.
    pub renamed: Vec<(String, UserPath)>,
    pub renamed_count: u64,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The first bytes are no archive of a known format (or not of the one
    /// asked for).
    #[error("{0}")]
    NotAnArchive(String),
    /// The archive is corrupt or cut short.
    #[error("{0}")]
    Corrupt(String),
    /// A limit of the server (expanded size, ratio, entries, header size).
    #[error("{0}")]
    TooLarge(String),
    /// The user's storage quota ran out.
    #[error("{0}")]
    Quota(String),
    /// Storage refused a write (full disk, …).
    #[error(transparent)]
    Storage(StorageError),
    /// The archive's source failed (the client went away or erred).
    #[error("{0}")]
    Source(io::Error),
    /// The quota could not be reserved (database).
    #[error("{0}")]
    Budget(String),
}

impl Failure {
    /// Classifies an error from reading the archive: a limit or the source
    /// when the meter says so, otherwise the archive is corrupt.
    pub(super) fn from_read(meter: &Meter, error: io::Error) -> Failure {
        match meter.stopped() {
            Some(Stop::TooLarge(message)) => Failure::TooLarge(message),
            Some(Stop::Source) => Failure::Source(error),
            None if error.kind() == io::ErrorKind::UnexpectedEof => Failure::Corrupt(format!(
                "the archive ends too early (truncated?) after {} bytes: {error}",
                meter.received()
            )),
            None => Failure::Corrupt(format!(
                "the archive is corrupt after {} bytes: {error}",
                meter.received()
            )),
        }
    }
}

/// A stopped import: why, and what it had stored.
#[derive(Debug, thiserror::Error)]
#[error("{failure}")]
pub struct ImportError {
    pub failure: Failure,
    /// Boxed: an error travels far, a tally is large.
    pub progress: Box<Imported>,
}

/// What the format readers share: where entries go, the meter.
pub(super) struct Entries<'a> {
    pub(super) target: &'a UserPath,
    pub(super) target_depth: usize,
    pub(super) meter: &'a Rc<Meter>,
}

impl Entries<'_> {
    /// Judges an entry's name (counting the entry against the limit).
    pub(super) fn judge(&self, raw: &[u8]) -> Result<names::Judged, Failure> {
        self.meter
            .count_entry()
            .map_err(|e| Failure::from_read(self.meter, e))?;
        Ok(names::judge(raw, self.target, self.target_depth))
    }
}

/// The name to show for an entry (lossy for names that are not UTF-8).
pub(super) fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}
