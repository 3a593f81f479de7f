//! Archive import: a zip or tar (plain, gzip, zstd) read as a stream and
//! extracted as it arrives into a folder of the user's storage.
//!
//! Nothing of the archive is buffered beyond one read: the caller hands a
//! blocking [`Read`] (the API feeds it from the gRPC stream), the format is
//! told from the first bytes ([`detect`]), the entries are read one after
//! the other ([`tar`], [`zip`]) and each is judged by name ([`names`]) and
//! written through `storage` ([`sink`]). The limits are checked on the
//! counts as they grow ([`meter`]): a zip bomb is stopped while it expands.
//! docs/archives.md states the rules for users; the choices behind them:
//!
//! - **Per entry, skip and go on; per archive, stop.** A hostile or
//!   unstorable *entry* (`..`, absolute name, symlink, hard link, device,
//!   bad or reserved name, too deep, a taken name under FAIL) is skipped and
//!   listed with its [`SkipReason`]; nothing of it is written. A problem of
//!   the *archive* (not an archive, corrupt or cut short, over a limit, over
//!   the quota) stops the import with a [`Failure`].
//! - **Stopped imports keep their complete entries.** Each stored entry is a
//!   whole, durable file published under its own name, exactly as if it had
//!   been uploaded alone; the entry being written when the import stopped is
//!   discarded (its temporary file removed). Rolling back would mean
//!   deleting files the user can already see (and may already have moved),
//!   which the service never does behind the user's back; the error says
//!   how many files were kept instead ([`ImportError::progress`]).
//! - **Names that are not UTF-8 are skipped** (and listed), like the
//!   scanner skips them: one odd name should not cost a whole archive.
//! - **Zip symlinks are only known at the end.** A zip's local headers
//!   carry no file type; the central directory at the end of the archive
//!   does. Entries it marks as symlinks were stored as small files holding
//!   the link's target, and are removed again (they are ours, just
//!   written) and listed as skipped. See [`zip`].

mod detect;
mod meter;
mod names;
mod sink;
mod tar;
mod zip;

use std::io::{self, Read};
use std::sync::Arc;

use crate::domain::ConflictPolicy;
use crate::domain::archive::{ArchiveFormat, ArchiveLimits, SkipReason, SkippedEntry};
use crate::storage::{StorageError, UserPath, UserRoot};

use meter::{Meter, Received, Stop};
use sink::Sink;

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
    /// The first [`MAX_LISTED`](sink::MAX_LISTED) entries skipped, and how many in all.
    pub skipped: Vec<SkippedEntry>,
    pub skipped_count: u64,
    /// The first [`MAX_LISTED`](sink::MAX_LISTED) files stored under another name (entry
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
    fn from_read(meter: &Meter, error: io::Error) -> Failure {
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
    /// Boxed to keep the Result small (clippy::result_large_err after the
    /// upload branch's larger storage errors were merged in).
    pub failure: Box<Failure>,
    pub progress: Imported,
}

/// What to import where, and under which rules.
pub struct ImportRequest {
    pub root: Arc<UserRoot>,
    /// The folder to extract into (created when missing).
    pub target: UserPath,
    /// `None`: detect it.
    pub format: Option<ArchiveFormat>,
    /// For a taken name: skip the entry (FAIL) or find a free name.
    pub policy: ConflictPolicy,
    pub limits: ArchiveLimits,
}

/// Imports the archive read from `source` (see the module docs). Blocking:
/// run it on the blocking pool.
pub fn import(
    request: ImportRequest,
    budget: &mut dyn QuotaBudget,
    source: impl Read,
) -> Result<Imported, ImportError> {
    let meter = Meter::new(request.limits);
    let received = Received {
        inner: source,
        meter: meter.clone(),
    };
    let (format, reader) = match detect::detect(received, request.format) {
        Ok(found) => found,
        Err(failure) => {
            let failure = match failure {
                detect::Detected::Failed(e) => Failure::from_read(&meter, e),
                detect::Detected::Unknown(message) => Failure::NotAnArchive(message),
            };
            return Err(ImportError {
                failure: Box::new(failure),
                progress: Imported::default(),
            });
        }
    };
    let tally = Imported {
        format: Some(format),
        ..Imported::default()
    };
    let mut sink = Sink::new(
        request.root.clone(),
        request.policy,
        budget,
        meter.clone(),
        tally,
    );
    let target = &request.target;
    let result = sink.folder("", target).and_then(|()| {
        let target_depth = target.components().count();
        let entries = Entries {
            target,
            target_depth,
            meter: &meter,
        };
        match format {
            ArchiveFormat::Tar => tar::read(reader, &entries, &mut sink),
            ArchiveFormat::TarGzip => tar::read(
                flate2::read::MultiGzDecoder::new(reader),
                &entries,
                &mut sink,
            ),
            ArchiveFormat::TarZstd => match zstd_decoder(reader) {
                Ok(decoder) => tar::read(decoder, &entries, &mut sink),
                Err(e) => Err(Failure::from_read(&meter, e)),
            },
            ArchiveFormat::Zip => zip::read(reader, &entries, &mut sink),
        }
    });
    match sink.finish(result) {
        (imported, None) => Ok(imported),
        (progress, Some(failure)) => Err(ImportError {
            failure: Box::new(failure),
            progress,
        }),
    }
}

/// Largest zstd window accepted (2^25 = 32 MiB of memory): `zstd -19`
/// uses 8 MiB; `--long` or `--ultra` archives with larger windows are
/// refused as corrupt ("Frame requires too much memory") rather than let
/// one import take 128 MiB or more.
const ZSTD_WINDOW_LOG_MAX: u32 = 25;

fn zstd_decoder<R: io::BufRead>(reader: R) -> io::Result<zstd::stream::read::Decoder<'static, R>> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(reader)?;
    decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
    Ok(decoder)
}

/// What the format readers share: where entries go, the meter.
struct Entries<'a> {
    target: &'a UserPath,
    target_depth: usize,
    meter: &'a std::rc::Rc<Meter>,
}

impl Entries<'_> {
    /// Judges an entry's name (counting the entry against the limit).
    fn judge(&self, raw: &[u8]) -> Result<names::Judged, Failure> {
        self.meter
            .count_entry()
            .map_err(|e| Failure::from_read(self.meter, e))?;
        Ok(names::judge(raw, self.target, self.target_depth))
    }
}

/// The name to show for an entry (lossy for names that are not UTF-8).
fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Records a skip for an entry that carries no content to store.
fn skip_kind(sink: &mut Sink<'_>, raw: &[u8], reason: SkipReason, detail: String) {
    sink.skip(&display_name(raw), reason, detail);
}
