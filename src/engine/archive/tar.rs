//! tar entries (ustar, GNU, PAX), read with the `tar` crate from the
//! (decompressed) stream.
//!
//! The crate resolves GNU long names and PAX records itself, reading them
//! into memory whole; [`Meter::reading_headers`] bounds what it may read
//! between two entries ([`super::meter::MAX_HEADER_BYTES`]), so a hostile
//! 4 GB "long name" is an error, not an allocation. Every entry's data is
//! read to its end here (stored or drained), so that bound only ever
//! counts headers.
//!
//! A tar has no index and no checksum over the data: an archive cut inside
//! an entry is caught (the entry is short), one cut exactly between two
//! entries looks complete unless the compression around it (gzip, zstd)
//! notices its own end missing.
//!
//! [`Meter::reading_headers`]: super::meter::Meter::reading_headers

use std::io::Read;
use std::time::{Duration, SystemTime};

use super::meter::Expanded;
use super::names::Judged;
use super::sink::Sink;
use super::{Entries, Failure, display_name, skip_kind};
use crate::domain::archive::SkipReason;

pub(super) fn read(
    decompressed: impl Read,
    entries: &Entries<'_>,
    sink: &mut Sink<'_>,
) -> Result<(), Failure> {
    let meter = entries.meter;
    let mut archive = tar::Archive::new(Expanded {
        inner: decompressed,
        meter: meter.clone(),
    });
    let mut iter = archive
        .entries()
        .map_err(|e| Failure::from_read(meter, e))?;
    loop {
        meter.reading_headers(true);
        let next = iter.next();
        meter.reading_headers(false);
        let mut entry = match next {
            None => return Ok(()),
            Some(Ok(entry)) => entry,
            Some(Err(e)) => return Err(Failure::from_read(meter, e)),
        };
        let raw = entry.path_bytes().into_owned();
        let name = display_name(&raw);
        let path = match entries.judge(&raw)? {
            Judged::Store(path) => Some(path),
            Judged::Target => None,
            Judged::Skip(reason, detail) => {
                skip_kind(sink, &raw, reason, detail);
                sink.drain(&mut entry)?;
                continue;
            }
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if let Some(path) = path {
                sink.folder(&name, &path)?;
            }
            sink.drain(&mut entry)?;
            continue;
        }
        let refused = if kind.is_symlink() {
            Some((SkipReason::Symlink, link_detail("a symbolic link", &entry)))
        } else if kind.is_hard_link() {
            Some((SkipReason::HardLink, link_detail("a hard link", &entry)))
        } else if kind.is_character_special() || kind.is_block_special() {
            Some((SkipReason::SpecialFile, "a device node".to_string()))
        } else if kind.is_fifo() {
            Some((SkipReason::SpecialFile, "a FIFO".to_string()))
        } else if kind.is_file() || kind.is_contiguous() {
            None
        } else {
            Some((
                SkipReason::SpecialFile,
                format!(
                    "an entry of type {:?} (sparse, …), not a file or folder",
                    kind.as_byte() as char
                ),
            ))
        };
        if let Some((reason, detail)) = refused {
            sink.skip(&name, reason, detail);
            sink.drain(&mut entry)?;
            continue;
        }
        let Some(path) = path else {
            // A file named `./`: nothing can be stored as the target itself.
            sink.skip(
                &name,
                SkipReason::InvalidName,
                "a file named as the folder itself",
            );
            sink.drain(&mut entry)?;
            continue;
        };
        let size = entry.size();
        let mtime = modified(&mut entry);
        sink.file(&name, &path, Some(size), mtime, &mut entry)?;
    }
}

/// "a symbolic link to …" for the skipped list.
fn link_detail<R: Read>(what: &str, entry: &tar::Entry<'_, R>) -> String {
    match entry.link_name_bytes() {
        Some(target) => format!("{what} to {}", String::from_utf8_lossy(&target)),
        None => what.to_string(),
    }
}

/// The entry's modification time: the PAX `mtime` record (with its
/// fraction) when there is one, else the header's whole seconds.
fn modified<R: Read>(entry: &mut tar::Entry<'_, R>) -> Option<SystemTime> {
    let from_pax = entry.pax_extensions().ok().flatten().and_then(|records| {
        records
            .flatten()
            .find(|r| r.key() == Ok("mtime"))
            .and_then(|r| r.value().ok().and_then(|v| v.parse::<f64>().ok()))
    });
    match from_pax {
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            Duration::try_from_secs_f64(seconds)
                .ok()
                .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        }
        _ => entry
            .header()
            .mtime()
            .ok()
            .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s))),
    }
}
