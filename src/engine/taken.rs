//! Capture dates: the day a photo or video was taken, read from its
//! metadata, for the layout template's `{taken_…}` tokens
//! ([`super::template`]).
//!
//! # When anything is read
//!
//! Only when the operation's layout template uses a `{taken_…}` token
//! (`Template::uses_taken_date`), or one of the organizing rules it applies
//! has a capture condition or a `{taken_…}` token in its action
//! (`CompiledRules::uses_capture_date`): an organize whose template has none reads
//! nothing more than before, not even to count dates for the report (the
//! report's date counts are then zero; see `domain::report::TakenDates`).
//! Counting alone would cost every organize an open and a read of each photo
//! and video, for a number nobody asked for. And only files whose extension
//! ([`may_carry_date`]) names a format that carries a capture date are
//! opened: JPEG, HEIC/HEIF/AVIF, PNG, WebP, TIFF and the TIFF-based raw
//! formats (DNG, CR2, NEF, ARW, PEF, …) plus CR3, RAF and IIQ; Olympus ORF
//! and Panasonic RW2, which are TIFF files under another magic number that
//! nom-exif does not know (read as TIFF through [`TiffMagic`]); MP4, MOV,
//! M4V and 3GP videos. Every other file costs nothing.
//!
//! A file is opened like every read of the engine: at the moment of use,
//! beneath the root, through no symlink, and only if it is still the file
//! the scan saw (`UserRoot::open_read_exact`). At most [`READ_LIMIT`] bytes
//! of it are read ([`Bounded`]): the metadata is in the header of these
//! formats (a MOV/MP4 whose `moov` box is at the end is reached by seeking,
//! which reads nothing on the way). A file whose date lies further in, or
//! that cannot be read or parsed, simply has no capture date: the template
//! falls back to the modification time. Nothing here fails an operation.
//!
//! # Which date
//!
//! - Images: EXIF `DateTimeOriginal`, else `DateTimeDigitized` (scanners
//!   and some phones write only that); never `DateTime` (IFD0), which
//!   editors rewrite. With `OffsetTimeOriginal` (or `OffsetTime`) the value
//!   is the wall-clock time at that offset; without, it is a naive local
//!   time of wherever the camera was. Either way the **date is the
//!   camera's calendar date**, as the photographer saw it: a photo taken at
//!   23:30 on 24 December in Sydney files under the 24th, not under the UTC
//!   date. (The offset is not needed for that; it would only be for an
//!   instant, which the layout never uses.)
//! - Videos: QuickTime's `com.apple.quicktime.creationdate` (local time
//!   with its offset: its calendar date, as for photos) when present, else
//!   the `mvhd` box's creation time, which the format defines as UTC: its
//!   UTC date. (Many cameras write local time there anyway; nothing in the
//!   file tells, so it is taken as the format says.)
//! - A date outside [`EARLIEST`]..[`LATEST`], or exactly the QuickTime or
//!   Unix epoch (what an unset clock or a zero field gives), is no date.
//!
//! # Why nom-exif
//!
//! `nom-exif` (MIT, pure Rust, fuzz-tested against malformed input) reads
//! both EXIF (JPEG, HEIF, TIFF and TIFF-based raw, CR3, RAF, PNG, WebP) and
//! video metadata (ISOBMFF: MP4/MOV/3GP; Matroska) through one streaming
//! parser over any `Read + Seek`, and already composes `DateTimeOriginal`
//! with `OffsetTimeOriginal`. `kamadak-exif` reads images only (videos would
//! need a second crate) and reads a whole TIFF into memory. nom-exif's own
//! cap on its buffer is 1 GiB; the [`Bounded`] reader is what keeps a
//! hostile header from making it read (and buffer) more than
//! [`READ_LIMIT`]. Its `mvhd` parser knows only version 0 boxes; a version 1
//! box reads as the 1904 epoch, which is no date (the file falls back to
//! its modification time).

use std::io::{self, Read, Seek, SeekFrom};

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use nom_exif::{EntryValue, Exif, ExifTag, MediaKind, MediaParser, MediaSource, TrackInfoTag};

use super::{
    parallel::map_indexed,
    progress::Progress,
    scan::{ScannedFile, ScannedFiles},
};
use crate::storage::{names::extension, root::UserRoot};

/// The most bytes read from one file for its capture date.
pub const READ_LIMIT: u64 = 1024 * 1024;
/// The earliest capture date taken as real.
pub const EARLIEST: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid date");
/// The latest capture date taken as real.
pub const LATEST: NaiveDate = NaiveDate::from_ymd_opt(2099, 12, 31).expect("valid date");
/// Files read per draw from the worker threads' shared counter.
const CHUNK: usize = 64;

/// Extensions (lower case) of the formats a capture date is read from.
const CARRIERS: &[&str] = &[
    // JPEG and HEIF.
    "jpg", "jpeg", "jpe", "jfif", "heic", "heif", "hif", "avif", // Other images with EXIF.
    "png", "webp", "tif", "tiff", // TIFF-based raw formats.
    "dng", "cr2", "nef", "nrw", "arw", "srf", "sr2", "pef", "3fr", "erf", "mef", "mos", "kdc",
    "dcr", "rwl", "iiq", // Other raw formats nom-exif reads.
    "cr3", "raf", // TIFF with another magic number (read through `TiffMagic`).
    "orf", "rw2", // ISOBMFF videos.
    "mp4", "m4v", "mov", "qt", "3gp", "3g2",
];

/// Whether a file of this name may carry a capture date (by its extension).
pub fn may_carry_date(name: &str) -> bool {
    extension(name).is_some_and(|ext| {
        CARRIERS
            .iter()
            .any(|carrier| carrier.eq_ignore_ascii_case(ext))
    })
}

/// The capture date of each of `files` (None: none found), in their order,
/// read on up to `threads` threads. Stops reading (the rest are None) when
/// `progress` is cancelled.
pub fn capture_dates(
    root: &UserRoot,
    files: &ScannedFiles,
    threads: usize,
    progress: &Progress,
) -> Vec<Option<NaiveDate>> {
    let mut dates = Vec::with_capacity(files.len());
    dates.extend(map_indexed(files.len(), threads, CHUNK, |i| {
        if progress.is_cancelled() || !may_carry_date(files.name(i)) {
            return None;
        }
        capture_date_of(root, &files.get(i))
    }));
    dates
}

/// The capture date of one scanned file (None: none found, or its format
/// carries none), opened only if it is still the file the scan saw.
pub fn capture_date_of(root: &UserRoot, file: &ScannedFile) -> Option<NaiveDate> {
    if !may_carry_date(file.path.file_name().unwrap_or_default()) {
        return None;
    }
    let handle = root
        .open_read_exact(&file.path, Some(&file.fingerprint))
        .ok()?;
    // The parser is fuzzed and the tests feed it random bytes, but one
    // user's odd file must never fail a whole organize: a panic in it is
    // that file's "no date".
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| capture_date(handle))).unwrap_or_else(
        |_| {
            tracing::warn!(path = %file.path, "reading the capture date panicked; using the modification time");
            None
        },
    )
}

/// The capture date in a photo's or video's metadata, reading at most
/// [`READ_LIMIT`] bytes of `reader`. Never fails: anything unreadable,
/// malformed or implausible is None.
pub fn capture_date<R: Read + Seek>(reader: R) -> Option<NaiveDate> {
    let source =
        MediaSource::seekable(TiffMagic::new(Bounded::new(reader, READ_LIMIT)).ok()?).ok()?;
    let mut parser = MediaParser::new();
    match source.kind() {
        MediaKind::Image => {
            let exif: Exif = parser.parse_exif(source).ok()?.into();
            [ExifTag::DateTimeOriginal, ExifTag::CreateDate]
                .into_iter()
                .find_map(|tag| exif.get(tag).and_then(date_of))
        }
        MediaKind::Track => parser
            .parse_track(source)
            .ok()?
            .get(TrackInfoTag::CreateDate)
            .and_then(date_of),
    }
}

/// The calendar date of a metadata time value, if it is a plausible one.
fn date_of(value: &EntryValue) -> Option<NaiveDate> {
    let local = match value {
        // The wall clock at the capture's own offset.
        EntryValue::DateTime(t) => t.naive_local(),
        EntryValue::NaiveDateTime(t) => *t,
        _ => return None,
    };
    plausible(local).then(|| local.date())
}

/// Whether a capture time is taken as real: within [`EARLIEST`]..[`LATEST`]
/// and not exactly an epoch a zero field gives.
fn plausible(t: NaiveDateTime) -> bool {
    let midnight = t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0;
    let epoch = midnight && t.month() == 1 && t.day() == 1 && matches!(t.year(), 1904 | 1970);
    (EARLIEST..=LATEST).contains(&t.date()) && !epoch
}

/// A reader that reads at most `limit` bytes in all (then reports the end
/// of the file); seeking is free and passed through. Whatever a header
/// claims, the parser never reads or buffers more than the limit.
pub struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R> Bounded<R> {
    pub fn new(inner: R, limit: u64) -> Bounded<R> {
        Bounded { inner, left: limit }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let most = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..most])?;
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Bounded<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// A reader that shows an Olympus ORF (`IIRO`, `IIRS`, `MMOR`) or Panasonic
/// RW2 (`IIU\0`) file with the standard TIFF magic number (`II*\0` or
/// `MM\0*`) in its bytes 2 and 3, and every other file as it is. Both
/// formats are TIFF otherwise (byte order, IFD0 at the offset in bytes 4–7,
/// the EXIF IFD behind tag 0x8769), which nom-exif parses once it
/// recognizes the header.
pub struct TiffMagic<R> {
    inner: R,
    /// The position of `inner`.
    pos: u64,
    /// The two bytes shown at offsets 2 and 3, when they are replaced.
    magic: Option<[u8; 2]>,
}

impl<R: Read + Seek> TiffMagic<R> {
    pub fn new(mut inner: R) -> io::Result<TiffMagic<R>> {
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < head.len() {
            match inner.read(&mut head[got..])? {
                0 => break,
                n => got += n,
            }
        }
        inner.seek(SeekFrom::Start(0))?;
        let magic = match &head[..got] {
            b"IIRO" | b"IIRS" | b"IIU\0" => Some(*b"*\0"),
            b"MMOR" => Some(*b"\0*"),
            _ => None,
        };
        Ok(TiffMagic {
            inner,
            pos: 0,
            magic,
        })
    }
}

impl<R: Read> Read for TiffMagic<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(magic) = self.magic {
            for (i, byte) in buf[..n].iter_mut().enumerate() {
                match self.pos + i as u64 {
                    2 => *byte = magic[0],
                    3 => *byte = magic[1],
                    p if p > 3 => break,
                    _ => {}
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for TiffMagic<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(pos)?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A big-endian TIFF/EXIF block: IFD0 with one pointer to an EXIF IFD
    /// holding `entries` (tag, ASCII value).
    fn tiff(entries: &[(u16, &str)]) -> Vec<u8> {
        tiff_in(true, entries)
    }

    /// [`tiff`] in big-endian (`MM`) or little-endian (`II`) byte order.
    fn tiff_in(big: bool, entries: &[(u16, &str)]) -> Vec<u8> {
        let u16b = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = if big {
            b"MM\0\x2a".to_vec()
        } else {
            b"II\x2a\0".to_vec()
        };
        out.extend_from_slice(&u32b(8));
        // IFD0 at 8: one entry (ExifOffset → 26), next IFD 0.
        out.extend_from_slice(&u16b(1));
        out.extend_from_slice(&u16b(0x8769));
        out.extend_from_slice(&u16b(4)); // LONG
        out.extend_from_slice(&u32b(1));
        out.extend_from_slice(&u32b(26));
        out.extend_from_slice(&u32b(0));
        assert_eq!(out.len(), 26);
        let data_start = 26 + 2 + 12 * entries.len() + 4;
        let mut data = Vec::new();
        out.extend_from_slice(&u16b(entries.len() as u16));
        for (tag, value) in entries {
            let mut bytes = value.as_bytes().to_vec();
            bytes.push(0);
            out.extend_from_slice(&u16b(*tag));
            out.extend_from_slice(&u16b(2)); // ASCII
            out.extend_from_slice(&u32b(bytes.len() as u32));
            if bytes.len() <= 4 {
                bytes.resize(4, 0);
                out.extend_from_slice(&bytes);
            } else {
                out.extend_from_slice(&u32b((data_start + data.len()) as u32));
                data.extend_from_slice(&bytes);
            }
        }
        out.extend_from_slice(&u32b(0));
        out.extend_from_slice(&data);
        // Image data. (nom-exif reads no file whose whole content fits in
        // the 128 bytes it reads to tell the format: no real photo is that
        // small.)
        out.extend_from_slice(&[0x55; 256]);
        out
    }

    /// A JPEG whose APP1 segment holds `tiff`.
    fn jpeg(tiff: &[u8]) -> Vec<u8> {
        let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
        out.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(tiff);
        // A minimal rest: a scan segment, scan data and EOI are enough
        // for the parser.
        out.extend_from_slice(&[0xff, 0xda, 0, 2]);
        out.extend_from_slice(&[0x55; 256]);
        out.extend_from_slice(&[0xff, 0xd9]);
        out
    }

    /// An MP4 with an `mvhd` creation time (seconds since 1904).
    fn mp4(creation: u32) -> Vec<u8> {
        fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
            let mut out = ((8 + body.len()) as u32).to_be_bytes().to_vec();
            out.extend_from_slice(kind);
            out.extend_from_slice(body);
            out
        }
        let mut mvhd = vec![0u8; 4]; // version 0, flags
        mvhd.extend_from_slice(&creation.to_be_bytes());
        mvhd.extend_from_slice(&creation.to_be_bytes()); // modification
        mvhd.extend_from_slice(&1000u32.to_be_bytes()); // time scale
        mvhd.extend_from_slice(&0u32.to_be_bytes()); // duration
        mvhd.extend_from_slice(&[0u8; 76]);
        mvhd.extend_from_slice(&2u32.to_be_bytes()); // next track id
        let mut ftyp = b"isom".to_vec();
        ftyp.extend_from_slice(&0x200u32.to_be_bytes());
        ftyp.extend_from_slice(b"isommp41");
        let mut out = boxed(b"ftyp", &ftyp);
        out.extend(boxed(b"moov", &boxed(b"mvhd", &mvhd)));
        out
    }

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    fn read(bytes: &[u8]) -> Option<NaiveDate> {
        capture_date(Cursor::new(bytes))
    }

    const ORIGINAL: u16 = 0x9003;
    const DIGITIZED: u16 = 0x9004;
    const OFFSET_ORIGINAL: u16 = 0x9011;

    #[test]
    fn jpeg_date_time_original() {
        let bytes = jpeg(&tiff(&[(ORIGINAL, "2021:06:15 10:20:30")]));
        assert_eq!(read(&bytes), date(2021, 6, 15));
    }

    #[test]
    fn the_offset_keeps_the_cameras_calendar_date() {
        // Each is another day in UTC; the camera's date is kept.
        for (time, offset, want) in [
            ("2023:12:25 00:30:00", "+10:00", date(2023, 12, 25)),
            ("2023:12:24 23:30:00", "-05:00", date(2023, 12, 24)),
        ] {
            let bytes = jpeg(&tiff(&[(ORIGINAL, time), (OFFSET_ORIGINAL, offset)]));
            assert_eq!(read(&bytes), want, "{time} {offset}");
        }
    }

    #[test]
    fn digitized_when_there_is_no_original() {
        let bytes = jpeg(&tiff(&[(DIGITIZED, "2019:02:03 04:05:06")]));
        assert_eq!(read(&bytes), date(2019, 2, 3));
        let both = jpeg(&tiff(&[
            (ORIGINAL, "2018:01:01 12:00:00"),
            (DIGITIZED, "2019:02:03 04:05:06"),
        ]));
        assert_eq!(read(&both), date(2018, 1, 1));
    }

    #[test]
    fn tiff_and_raw_files() {
        // DNG, CR2, NEF, ARW are TIFF files: the same bytes, read by content.
        let bytes = tiff(&[(ORIGINAL, "2020:02:29 08:00:00")]);
        assert_eq!(read(&bytes), date(2020, 2, 29));
    }

    #[test]
    fn orf_and_rw2_are_read_as_tiff() {
        // Big-endian ORF ("MMOR") from the big-endian TIFF helper.
        let mut orf = tiff(&[(ORIGINAL, "2018:05:06 07:08:09")]);
        assert_eq!(&orf[..4], b"MM\0*");
        orf[2..4].copy_from_slice(b"OR");
        assert_eq!(read(&orf), date(2018, 5, 6));
        // Without the magic fix nom-exif does not know the file.
        let source = MediaSource::seekable(Cursor::new(orf.clone()));
        assert!(
            source.is_err(),
            "nom-exif reads ORF itself now: TiffMagic can go"
        );
        // Little-endian ORF and RW2: the same file in Intel byte order.
        let little = tiff_in(false, &[(ORIGINAL, "2021:11:12 13:14:15")]);
        for magic in [b"RO", b"RS", b"U\0"] {
            let mut raw = little.clone();
            raw[2..4].copy_from_slice(magic);
            assert_eq!(read(&raw), date(2021, 11, 12), "{magic:?}");
        }
        // Only the header is changed: a short or foreign file is left alone.
        assert_eq!(read(b"IIRO"), None);
        assert_eq!(read(b"MMOX"), None);
        // Reads in one-byte steps see the same bytes.
        let mut magic = TiffMagic::new(Cursor::new(orf.clone())).unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while magic.read(&mut byte).unwrap() == 1 {
            seen.push(byte[0]);
        }
        assert_eq!(&seen[..4], b"MM\0*");
        assert_eq!(&seen[4..], &orf[4..]);
    }

    #[test]
    fn mp4_creation_time_is_utc() {
        // 2022-03-04 05:06:07 UTC, in seconds since 1904-01-01.
        let secs = (NaiveDate::from_ymd_opt(2022, 3, 4)
            .unwrap()
            .and_hms_opt(5, 6, 7)
            .unwrap()
            - NaiveDate::from_ymd_opt(1904, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap())
        .num_seconds();
        assert_eq!(read(&mp4(secs as u32)), date(2022, 3, 4));
        // Zero is "unset": the 1904 epoch is no date.
        assert_eq!(read(&mp4(0)), None);
    }

    #[test]
    fn malformed_and_absurd_dates_are_no_date() {
        for value in [
            "0000:00:00 00:00:00",
            "    :  :     :  :  ",
            "2021:13:01 00:00:00",
            "2021:02:30 00:00:00",
            "2021:06:15",
            "not a date at all",
            "",
            "1899:12:31 23:59:59",
            "2100:01:01 00:00:00",
            "9999:12:31 23:59:59",
            "1970:01:01 00:00:00",
            "2021:06:15 25:61:61",
        ] {
            let bytes = jpeg(&tiff(&[(ORIGINAL, value)]));
            assert_eq!(read(&bytes), None, "{value:?}");
        }
        // Just inside the bounds, and a real 1970 time.
        for (value, want) in [
            ("1900:01:01 00:00:01", date(1900, 1, 1)),
            ("2099:12:31 23:59:59", date(2099, 12, 31)),
            ("1970:01:01 10:00:00", date(1970, 1, 1)),
        ] {
            let bytes = jpeg(&tiff(&[(ORIGINAL, value)]));
            assert_eq!(read(&bytes), want, "{value:?}");
        }
    }

    #[test]
    fn files_without_metadata_truncated_or_garbage() {
        let good = jpeg(&tiff(&[(ORIGINAL, "2021:06:15 10:20:30")]));
        // Every truncation of a good file: never a panic, and never any
        // date but the right one.
        for len in 0..good.len() {
            let found = read(&good[..len]);
            assert!(
                found.is_none() || found == date(2021, 6, 15),
                "{len}: {found:?}"
            );
        }
        let video = mp4(3_000_000_000);
        for len in 0..video.len() {
            let _ = read(&video[..len]);
        }
        assert_eq!(read(b""), None);
        assert_eq!(read(b"plain text, no metadata"), None);
        assert_eq!(read(&[0xff, 0xd8, 0xff, 0xd9]), None, "a JPEG without EXIF");
        // A TIFF whose IFD points far outside the file.
        let mut broken = tiff(&[(ORIGINAL, "2021:06:15 10:20:30")]);
        broken[18..22].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
        assert_eq!(read(&broken), None);
        // An MP4 box claiming 4 GiB.
        let mut huge = mp4(3_000_000_000);
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(read(&huge), None);
    }

    /// A JPEG with `pad` bytes of APP2 segments before its EXIF.
    fn padded_jpeg(pad: usize) -> Vec<u8> {
        let mut bytes = vec![0xff, 0xd8];
        let segment = vec![0u8; 60_000];
        let mut written = 0;
        while written < pad {
            bytes.extend_from_slice(&[0xff, 0xe2]);
            bytes.extend_from_slice(&((segment.len() + 2) as u16).to_be_bytes());
            bytes.extend_from_slice(&segment);
            written += segment.len() + 4;
        }
        let mut tail = jpeg(&tiff(&[(ORIGINAL, "2021:06:15 10:20:30")]));
        bytes.extend(tail.split_off(2));
        bytes
    }

    /// Counts the bytes read through it.
    struct Counting<'a>(Cursor<&'a [u8]>, u64);

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n as u64;
            Ok(n)
        }
    }

    impl Seek for Counting<'_> {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.0.seek(pos)
        }
    }

    #[test]
    fn reads_stop_at_the_limit() {
        let mut whole = Counting(Cursor::new(&[7u8; 5000]), 0);
        let mut sink = Vec::new();
        Bounded::new(&mut whole, 1000)
            .read_to_end(&mut sink)
            .unwrap();
        assert_eq!((sink.len(), whole.1), (1000, 1000));
        // Whatever the file, no more than the limit is read from it.
        let near = padded_jpeg(100_000);
        let far = padded_jpeg(3 * READ_LIMIT as usize);
        for bytes in [&near, &far] {
            let mut counting = Counting(Cursor::new(bytes), 0);
            let _ = capture_date(&mut counting);
            assert!(counting.1 <= READ_LIMIT, "read {} bytes", counting.1);
        }
        assert_eq!(read(&near), date(2021, 6, 15));
    }

    #[test]
    fn only_carriers_are_opened() {
        for name in [
            "a.jpg", "B.JPEG", "c.heic", "d.HEIF", "e.dng", "f.CR2", "g.nef", "h.arw", "i.tif",
            "j.mp4", "k.MOV", "l.3gp", "m.png", "n.cr3",
        ] {
            assert!(may_carry_date(name), "{name}");
        }
        for name in [
            "a.txt",
            "b.pdf",
            "jpg",
            ".jpg",
            "c.jpg.txt",
            "d",
            "e.mp3",
            "f.gif",
        ] {
            assert!(!may_carry_date(name), "{name}");
        }
    }

    /// Through the storage layer, as the organize reads: only carriers are
    /// opened, a file replaced since the scan is not read, and the threads
    /// change nothing.
    #[test]
    fn capture_dates_of_a_scanned_tree() {
        use crate::engine::scan::{ScanOptions, scan};
        use crate::storage::path::UserPath;

        let dir = tempfile::tempdir().unwrap();
        let photo = jpeg(&tiff(&[(ORIGINAL, "2021:06:15 10:20:30")]));
        let base = dir.path().join("in");
        std::fs::create_dir_all(base.join("sub")).unwrap();
        for (name, bytes) in [
            ("a.jpg", &photo[..]),
            ("b.txt", &photo[..]),
            ("c.JPEG", &photo[..]),
            ("d.jpg", b"not a jpeg".as_slice()),
            ("sub/e.mp4", &mp4(3_000_000_000)[..]),
            ("sub/f.jpg", &photo[..]),
        ] {
            std::fs::write(base.join(name), bytes).unwrap();
        }
        let root = UserRoot::open_existing(dir.path()).unwrap();
        let progress = Progress::default();
        let scanned = scan(
            &root,
            &UserPath::parse("in").unwrap(),
            &ScanOptions::default(),
            &progress,
        )
        .unwrap();
        // Replaced after the scan: same name, another inode (the old file
        // is kept, so its inode cannot be reused).
        std::fs::rename(base.join("sub/f.jpg"), dir.path().join("old.jpg")).unwrap();
        std::fs::write(base.join("sub/f.jpg"), &photo).unwrap();
        let named = |dates: Vec<Option<NaiveDate>>| -> Vec<(String, Option<NaiveDate>)> {
            scanned
                .files
                .iter()
                .map(|f| f.relative().to_string())
                .zip(dates)
                .collect()
        };
        let june = date(2021, 6, 15);
        // 3e9 s after 1904: 1999-01-24 UTC.
        let want = vec![
            ("a.jpg".to_string(), june),
            ("b.txt".to_string(), None),
            ("c.JPEG".to_string(), june),
            ("d.jpg".to_string(), None),
            ("sub/e.mp4".to_string(), date(1999, 1, 24)),
            ("sub/f.jpg".to_string(), None),
        ];
        for threads in [1, 3] {
            let dates = capture_dates(&root, &scanned.files, threads, &progress);
            assert_eq!(named(dates), want, "{threads} threads");
        }
        progress.cancel();
        let dates = capture_dates(&root, &scanned.files, 2, &progress);
        assert!(dates.iter().all(Option::is_none));
        assert_eq!(dates.len(), scanned.files.len());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Random bytes, and random damage to real headers, never panic.
            #[test]
            fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = read(&bytes);
            }

            #[test]
            fn damaged_headers_never_panic(
                which in 0usize..3,
                edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                cut in any::<usize>(),
            ) {
                let mut bytes = match which {
                    0 => jpeg(&tiff(&[(ORIGINAL, "2021:06:15 10:20:30"), (OFFSET_ORIGINAL, "+02:00")])),
                    1 => tiff(&[(ORIGINAL, "2021:06:15 10:20:30")]),
                    _ => mp4(3_000_000_000),
                };
                for (at, byte) in edits {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
                bytes.truncate(cut % (bytes.len() + 1));
                if let Some(found) = read(&bytes) {
                    prop_assert!((EARLIEST..=LATEST).contains(&found));
                }
            }
        }
    }
}
