//! zip entries read as a stream, local header after local header.
//!
//! Why not a crate: `zip` (9.x) `read_zipfile_from_stream` refuses entries
//! with a data descriptor ("The file length is not available in the local
//! header"), and so do `async_zip`'s stream reader (issue
//! Majored/rs-async-zip#122) and `rc-zip`'s streaming reader (it trusts the
//! local header's sizes, which are zero then). Data descriptors are what
//! every zip written as a stream has (macOS's Archive Utility, Java's
//! ZipOutputStream, browser-made zips), so this module reads the few fixed
//! structures itself (APPNOTE 4.3.7 local header, 4.3.9 data descriptor,
//! 4.3.12 central directory, 4.5.3 zip64 sizes, 4.5.x extended timestamp)
//! and leaves the inflating to `flate2` and the checksums to `crc32fast`.
//!
//! - **Methods:** stored and deflate. Anything else, and encryption, stops
//!   the import with a clear error (INVALID_ARGUMENT).
//! - **Data descriptors:** a deflate stream ends by itself, so the reader
//!   inflates until it ends and then reads the descriptor (with or without
//!   its optional signature, 8-byte sizes when the local header had a zip64
//!   field). A *stored* entry with a data descriptor has no end a stream
//!   reader can find; it stops the import (as it does in Apache
//!   commons-compress).
//! - **Checks:** every entry's CRC-32 and sizes are verified when its data
//!   ends, *before* the file is kept: a corrupt entry is never published.
//! - **Modification times:** the extended-timestamp field (0x5455, UTC
//!   seconds, written by Info-ZIP and most tools) when present; otherwise
//!   the DOS date and time, taken as UTC (zip stores the writer's local
//!   time without a zone), to 2-second precision.
//! - **Names:** UTF-8 (flagged or not); a name that is not valid UTF-8
//!   (old CP437 archives) is skipped and listed like any non-UTF-8 name.
//! - **File types:** the local header has none. Entries the central
//!   directory (at the very end) marks as Unix symlinks, devices or FIFOs
//!   were stored as small regular files (a symlink's content is its target
//!   text); they are removed again (checked to be our unchanged file) and
//!   listed as skipped. Names ending in `/` are folders.

use std::io::{self, BufRead, Read};
use std::time::{Duration, SystemTime};

use flate2::bufread::DeflateDecoder;

use super::meter::Expanded;
use super::names::Judged;
use super::shared::{Entries, Failure, display_name};
use super::sink::Sink;
use crate::domain::archive::SkipReason;

pub(super) const LOCAL_HEADER: u32 = 0x0403_4b50;
pub(super) const CENTRAL_HEADER: u32 = 0x0201_4b50;
pub(super) const END_OF_CENTRAL: u32 = 0x0605_4b50;
pub(super) const ZIP64_END_OF_CENTRAL: u32 = 0x0606_4b50;
pub(super) const ZIP64_LOCATOR: u32 = 0x0706_4b50;
pub(super) const DATA_DESCRIPTOR: u32 = 0x0807_4b50;

const FLAG_ENCRYPTED: u16 = 1;
pub(super) const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;

pub(super) const STORED: u16 = 0;
pub(super) const DEFLATE: u16 = 8;

const EXTRA_ZIP64: u16 = 0x0001;
const EXTRA_TIMESTAMP: u16 = 0x5455;

/// Host systems whose central directory carries a Unix mode.
const HOST_UNIX: u8 = 3;
const HOST_OSX: u8 = 19;

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn read_array<const N: usize>(reader: &mut impl Read) -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    reader.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_vec(reader: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    reader.read_exact(&mut buf)?;
    Ok(buf)
}

/// A local file header, as far as extraction needs it.
struct LocalHeader {
    flags: u16,
    method: u16,
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
    /// A zip64 extra field was present (data descriptor sizes are 8 bytes).
    zip64: bool,
    name: Vec<u8>,
    mtime: Option<SystemTime>,
}

impl LocalHeader {
    /// Reads the header after its signature.
    fn read(reader: &mut impl Read) -> io::Result<LocalHeader> {
        let fixed: [u8; 26] = read_array(reader)?;
        let flags = le16(&fixed[2..]);
        let method = le16(&fixed[4..]);
        let (time, date) = (le16(&fixed[6..]), le16(&fixed[8..]));
        let crc32 = le32(&fixed[10..]);
        let mut compressed = u64::from(le32(&fixed[14..]));
        let mut uncompressed = u64::from(le32(&fixed[18..]));
        let name = read_vec(reader, usize::from(le16(&fixed[22..])))?;
        let extra = read_vec(reader, usize::from(le16(&fixed[24..])))?;
        let mut zip64 = false;
        let mut mtime = dos_time(date, time);
        for (id, data) in extra_fields(&extra) {
            match id {
                EXTRA_ZIP64 => {
                    zip64 = true;
                    let mut values = data.chunks_exact(8).map(le64);
                    if uncompressed == u64::from(u32::MAX) {
                        uncompressed = values.next().unwrap_or(uncompressed);
                    }
                    if compressed == u64::from(u32::MAX) {
                        compressed = values.next().unwrap_or(compressed);
                    }
                }
                EXTRA_TIMESTAMP if data.len() >= 5 && data[0] & 1 == 1 => {
                    let seconds =
                        i64::from(i32::from_le_bytes([data[1], data[2], data[3], data[4]]));
                    mtime = u64::try_from(seconds)
                        .ok()
                        .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s)));
                }
                _ => {}
            }
        }
        Ok(LocalHeader {
            flags,
            method,
            crc32,
            compressed,
            uncompressed,
            zip64,
            name,
            mtime,
        })
    }
}

/// The (id, data) pairs of an extra field block (a malformed tail is
/// ignored).
fn extra_fields(mut extra: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if extra.len() < 4 {
            return None;
        }
        let (id, len) = (le16(extra), usize::from(le16(&extra[2..])));
        let data = extra.get(4..4 + len)?;
        extra = &extra[4 + len..];
        Some((id, data))
    })
}

/// A DOS date and time (local time of the writer) read as UTC.
fn dos_time(date: u16, time: u16) -> Option<SystemTime> {
    let day = chrono::NaiveDate::from_ymd_opt(
        1980 + i32::from(date >> 9),
        u32::from((date >> 5) & 0xf),
        u32::from(date & 0x1f),
    )?;
    let at = day.and_hms_opt(
        u32::from(time >> 11),
        u32::from((time >> 5) & 0x3f),
        u32::from(time & 0x1f) * 2,
    )?;
    let seconds = u64::try_from(at.and_utc().timestamp()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

fn corrupt(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// An entry's data: inflated (or not), counted against the limits, its
/// CRC-32 and sizes checked when it ends. The end is reported only once
/// everything matched (an error otherwise), so a file is kept only whole.
struct EntryData<'r, R: BufRead> {
    body: Expanded<Body<'r, R>>,
    header: &'r LocalHeader,
    crc: crc32fast::Hasher,
    size: u64,
    done: bool,
}

enum Body<'r, R: BufRead> {
    /// Stored, size known.
    Stored(io::Take<&'r mut R>),
    /// Deflate, compressed size known.
    Deflate(DeflateDecoder<io::Take<&'r mut R>>),
    /// Deflate ending by itself, then a data descriptor.
    Streamed(DeflateDecoder<&'r mut R>),
    /// A folder stored with a data descriptor (Python's zipfile writes
    /// them so when streaming): no data, then the descriptor.
    EmptyFolder(&'r mut R),
}

impl<R: BufRead> Read for Body<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Stored(take) => take.read(buf),
            Body::Deflate(decoder) => decoder.read(buf),
            Body::Streamed(decoder) => decoder.read(buf),
            Body::EmptyFolder(_) => Ok(0),
        }
    }
}

impl<'r, R: BufRead> EntryData<'r, R> {
    fn new(
        reader: &'r mut R,
        header: &'r LocalHeader,
        meter: &std::rc::Rc<super::meter::Meter>,
    ) -> io::Result<Self> {
        let described = header.flags & FLAG_DATA_DESCRIPTOR != 0;
        let body = match (header.method, described) {
            (STORED, false) => Body::Stored(reader.take(header.compressed)),
            (DEFLATE, false) => Body::Deflate(DeflateDecoder::new(reader.take(header.compressed))),
            (DEFLATE, true) => Body::Streamed(DeflateDecoder::new(reader)),
            (STORED, true) if header.name.ends_with(b"/") => Body::EmptyFolder(reader),
            (STORED, true) => {
                return Err(corrupt(
                    "a stored (uncompressed) zip entry with a data descriptor cannot be read \
                     as a stream; zip it with compression, or without streaming",
                ));
            }
            (method, _) => {
                return Err(corrupt(format!(
                    "zip compression method {method} is not supported (stored and deflate are)"
                )));
            }
        };
        Ok(EntryData {
            body: Expanded {
                inner: body,
                meter: meter.clone(),
            },
            header,
            crc: crc32fast::Hasher::new(),
            size: 0,
            done: false,
        })
    }

    /// Checks the entry once its data ended.
    fn finish(&mut self) -> io::Result<()> {
        let header = self.header;
        let (crc, uncompressed) = match &mut self.body.inner {
            Body::Stored(take) => {
                if take.limit() != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the zip ends inside an entry",
                    ));
                }
                (header.crc32, header.uncompressed)
            }
            Body::Deflate(decoder) => {
                // Whatever follows the deflate stream within the entry.
                io::copy(decoder.get_mut(), &mut io::sink())?;
                (header.crc32, header.uncompressed)
            }
            Body::Streamed(_) | Body::EmptyFolder(_) => {
                let (consumed, reader) = match &mut self.body.inner {
                    Body::Streamed(decoder) => (decoder.total_in(), &mut **decoder.get_mut()),
                    Body::EmptyFolder(reader) => (0, &mut **reader),
                    _ => unreachable!("matched above"),
                };
                let mut first: [u8; 4] = read_array(reader)?;
                if le32(&first) == DATA_DESCRIPTOR {
                    first = read_array(reader)?;
                }
                let crc = le32(&first);
                let (compressed, uncompressed) = if header.zip64 {
                    let sizes: [u8; 16] = read_array(reader)?;
                    (le64(&sizes), le64(&sizes[8..]))
                } else {
                    let sizes: [u8; 8] = read_array(reader)?;
                    (u64::from(le32(&sizes)), u64::from(le32(&sizes[4..])))
                };
                if compressed != consumed {
                    return Err(corrupt(format!(
                        "the data descriptor gives {compressed} compressed bytes, the entry \
                         had {consumed}"
                    )));
                }
                (crc, uncompressed)
            }
        };
        if self.size != uncompressed {
            return Err(corrupt(format!(
                "the entry expands to {} bytes, its header says {uncompressed}",
                self.size
            )));
        }
        let actual = std::mem::take(&mut self.crc).finalize();
        if actual != crc {
            return Err(corrupt(format!(
                "CRC-32 mismatch: the data has {actual:08x}, the archive says {crc:08x}"
            )));
        }
        Ok(())
    }
}

impl<R: BufRead> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let n = self.body.read(buf)?;
        if n == 0 {
            self.finish()?;
            self.done = true;
            return Ok(0);
        }
        self.crc.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// What the central directory says of one entry's type.
fn unix_kind(made_by: u16, external: u32) -> Option<(SkipReason, &'static str)> {
    let host = (made_by >> 8) as u8;
    if host != HOST_UNIX && host != HOST_OSX {
        return None;
    }
    match (external >> 16) & 0o170_000 {
        0o120_000 => Some((SkipReason::Symlink, "a symbolic link")),
        0o020_000 | 0o060_000 => Some((SkipReason::SpecialFile, "a device node")),
        0o010_000 => Some((SkipReason::SpecialFile, "a FIFO")),
        0o140_000 => Some((SkipReason::SpecialFile, "a socket")),
        _ => None,
    }
}

pub(super) fn read<R: BufRead>(
    mut reader: R,
    entries: &Entries<'_>,
    sink: &mut Sink<'_>,
) -> Result<(), Failure> {
    let meter = entries.meter;
    let fail = |e: io::Error| Failure::from_read(meter, e);
    sink.track_small_files();
    loop {
        let signature = match read_array::<4>(&mut reader) {
            Ok(bytes) => le32(&bytes),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(fail(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the zip ends before its central directory",
                )));
            }
            Err(e) => return Err(fail(e)),
        };
        match signature {
            LOCAL_HEADER => {}
            CENTRAL_HEADER | END_OF_CENTRAL | ZIP64_END_OF_CENTRAL => {
                sink.flush()?;
                return central_directory(&mut reader, signature, sink).map_err(fail);
            }
            other => {
                return Err(fail(corrupt(format!(
                    "not a zip entry: signature {other:08x} after {} bytes",
                    meter.received()
                ))));
            }
        }
        let header = LocalHeader::read(&mut reader).map_err(fail)?;
        if header.flags & FLAG_ENCRYPTED != 0 {
            return Err(fail(corrupt(format!(
                "entry {} is encrypted; encrypted zips are not supported",
                display_name(&header.name)
            ))));
        }
        let name = display_name(&header.name);
        let judged = entries.judge(&header.name)?;
        let mut data = EntryData::new(&mut reader, &header, meter).map_err(fail)?;
        match judged {
            Judged::Skip(reason, detail) => {
                sink.skip(&name, reason, detail);
                sink.drain(&mut data)?;
            }
            Judged::Target => sink.drain(&mut data)?,
            Judged::Store(path) if header.name.ends_with(b"/") => {
                sink.folder(&name, &path)?;
                sink.drain(&mut data)?;
            }
            Judged::Store(path) => {
                sink.file(&name, &path, None, header.mtime, &mut data)?;
            }
        }
    }
}

/// Reads the central directory (after its first record's `signature`),
/// taking back the entries it marks as symlinks or special files.
fn central_directory(
    reader: &mut impl Read,
    mut signature: u32,
    sink: &mut Sink<'_>,
) -> io::Result<()> {
    while signature == CENTRAL_HEADER {
        let fixed: [u8; 42] = read_array(reader)?;
        let made_by = le16(&fixed[0..]);
        let name_len = usize::from(le16(&fixed[24..]));
        let extra_len = usize::from(le16(&fixed[26..]));
        let comment_len = usize::from(le16(&fixed[28..]));
        let external = le32(&fixed[34..]);
        let name = read_vec(reader, name_len)?;
        io::copy(
            &mut reader.take((extra_len + comment_len) as u64),
            &mut io::sink(),
        )?;
        if let Some((reason, what)) = unix_kind(made_by, external) {
            sink.take_back(&display_name(&name), reason, what)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        signature = le32(&read_array::<4>(reader)?);
    }
    match signature {
        END_OF_CENTRAL | ZIP64_END_OF_CENTRAL | ZIP64_LOCATOR => Ok(()),
        other => Err(corrupt(format!(
            "unexpected record {other:08x} in the zip's central directory"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times_read_as_utc() {
        // 2024-02-29 13:37:42
        let date = ((2024 - 1980) << 9) | (2 << 5) | 29;
        let time = (13 << 11) | (37 << 5) | 21;
        let t = dos_time(date, time).unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_709_213_862);
        assert_eq!(dos_time(0, 0), None);
    }

    #[test]
    fn unix_types_come_from_the_central_directory() {
        let unix = u16::from(HOST_UNIX) << 8;
        assert_eq!(
            unix_kind(unix, 0o120_777 << 16).map(|k| k.0),
            Some(SkipReason::Symlink)
        );
        assert_eq!(
            unix_kind(unix, 0o020_644 << 16).map(|k| k.0),
            Some(SkipReason::SpecialFile)
        );
        assert_eq!(unix_kind(unix, 0o100_644 << 16), None);
        assert_eq!(unix_kind(unix, 0o040_755 << 16), None);
        // A DOS/Windows entry has no Unix mode.
        assert_eq!(unix_kind(0, 0o120_777 << 16), None);
    }

    #[test]
    fn extra_fields_are_split_and_a_bad_tail_ignored() {
        let extra = [1, 0, 2, 0, 9, 9, 0x55, 0x54, 5, 0, 1, 1, 2, 3, 4, 7];
        let fields: Vec<_> = extra_fields(&extra).collect();
        assert_eq!(fields, [(1, &[9u8, 9][..]), (0x5455, &[1, 1, 2, 3, 4][..])]);
    }
}
