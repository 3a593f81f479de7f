//! Archive import: a zip or tar (plain, gzip, zstd) read as a stream and
//! extracted as it arrives into a folder of the user's storage; and archive
//! export ([`export`], written by [`zip_write`] or the `tar` crate), a
//! folder written out as one of them while it is walked.
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
pub mod export;
mod meter;
mod names;
mod shared;
mod sink;
mod tar;
mod zip;
mod zip_write;

use std::io::{self, Read};
use std::sync::Arc;

use crate::domain::FileConflictPolicy;
use crate::domain::archive::{ArchiveFormat, ArchiveLimits};
use crate::storage::{UserPath, UserRoot};

use meter::{Meter, Received};
use shared::Entries;
pub use shared::{Failure, ImportError, Imported, QuotaBudget};
use sink::Sink;

/// What to import where, and under which rules.
pub struct ImportRequest {
    pub root: Arc<UserRoot>,
    /// The folder to extract into (created when missing).
    pub target: UserPath,
    /// `None`: detect it.
    pub format: Option<ArchiveFormat>,
    /// For a taken name: skip the entry (FAIL), find a free name (RENAME),
    /// or skip it when the same content is stored there and otherwise find a
    /// free name (SKIP_IF_IDENTICAL).
    pub policy: FileConflictPolicy,
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
                failure,
                progress: Box::default(),
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
            failure,
            progress: Box::new(progress),
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
