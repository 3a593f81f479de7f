//! A zip written as a stream, for DownloadArchive: nothing is ever sought
//! back to, so the archive can go to a client as it is made.
//!
//! Every file entry is deflated (level 0, plain stored blocks, for contents
//! that are compressed already) and carries a **data descriptor** (flag bit
//! 3): its CRC-32 and sizes follow its data, because they are only known
//! once it was read. Deflate rather than the "stored" method because a
//! stored entry with a data descriptor has no end a streaming reader can
//! find (this service's own ImportArchive refuses them, as do others);
//! deflate ends by itself. Folders are stored entries of size 0 with no
//! descriptor. Names are UTF-8 (flag bit 11); each entry has the DOS time
//! (UTC, 2-second steps) and the extended-timestamp field (0x5455: Unix
//! seconds), and the central directory gives Unix permission bits.
//!
//! Zip64: an entry whose file is at least [`ZIP64_FILE_BYTES`] gets zip64
//! fields in its local header and an 8-byte-size data descriptor; an offset,
//! central directory or entry count past the 32/16-bit fields gets the zip64
//! end records. The central directory is kept in memory until the end
//! (55 bytes plus the name per entry, 28 more for zip64): about 10 MB for
//! 100,000 entries with 45-byte names.
//!
//! Written here rather than with the `zip` crate for the same reason the
//! reader is ([`super::zip`]): the format's streaming subset is small, and
//! the reader in this module checks what the writer makes.

use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::write::DeflateEncoder;

use super::zip::{
    CENTRAL_HEADER, DATA_DESCRIPTOR, DEFLATE as METHOD_DEFLATE, END_OF_CENTRAL as END,
    FLAG_DATA_DESCRIPTOR as FLAG_DESCRIPTOR, LOCAL_HEADER, STORED as METHOD_STORED,
    ZIP64_END_OF_CENTRAL as ZIP64_END, ZIP64_LOCATOR,
};

/// Flag bit 11: the name is UTF-8.
const FLAG_UTF8: u16 = 1 << 11;
/// "Made by" Unix (3), spec version 4.5 (zip64).
const MADE_BY: u16 = (3 << 8) | 45;

/// Files at least this large get zip64 sizes: below 4 GiB with room for
/// deflate's few bytes per 64 KiB block on incompressible data.
pub const ZIP64_FILE_BYTES: u64 = 0xF000_0000;
const MAX32: u64 = 0xFFFF_FFFF;

/// One entry's fields for its central directory record.
struct Written {
    name: Vec<u8>,
    flags: u16,
    method: u16,
    dos: (u16, u16),
    unix_secs: u32,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
    external: u32,
    zip64: bool,
}

/// Counts what it writes: the offsets a zip records.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A zip archive being written to `W` (see the module docs).
pub struct ZipStream<W: Write> {
    out: Counting<W>,
    central: Vec<u8>,
    entries: u64,
    /// Tests lower it to reach the zip64 paths with small files.
    zip64_file_bytes: u64,
}

impl<W: Write> ZipStream<W> {
    pub fn new(out: W) -> Self {
        ZipStream {
            out: Counting {
                inner: out,
                written: 0,
            },
            central: Vec::new(),
            entries: 0,
            zip64_file_bytes: ZIP64_FILE_BYTES,
        }
    }

    #[cfg(test)]
    fn with_zip64_from(mut self, bytes: u64) -> Self {
        self.zip64_file_bytes = bytes;
        self
    }

    /// An entry's fields before its data: sizes and CRC-32 still zero.
    fn entry(&self, name: Vec<u8>, file: bool, mtime: i64, mode: u32, zip64: bool) -> Written {
        let (flags, method, external) = if file {
            let external = (0o100000 | (mode & 0o7777)) << 16;
            (FLAG_UTF8 | FLAG_DESCRIPTOR, METHOD_DEFLATE, external)
        } else {
            // The MS-DOS directory attribute too, for readers that look only there.
            let external = ((0o040000 | (mode & 0o7777)) << 16) | 0x10;
            (FLAG_UTF8, METHOD_STORED, external)
        };
        Written {
            name,
            flags,
            method,
            dos: dos_time(mtime),
            unix_secs: unix_secs(mtime),
            crc: 0,
            compressed: 0,
            size: 0,
            offset: self.out.written,
            external,
            zip64,
        }
    }

    /// A folder entry `name/` (`name` without the slash).
    pub fn add_folder(&mut self, name: &str, mtime: i64, mode: u32) -> io::Result<()> {
        let name = format!("{name}/").into_bytes();
        let mut entry = self.entry(name, false, mtime, mode, false);
        self.local_header(&entry)?;
        entry.zip64 = entry.offset >= MAX32;
        self.central_record(&entry);
        Ok(())
    }

    /// A file entry: the bytes of `data` until it ends, deflated at
    /// `level` (0: stored blocks). `expected` (the file's size when it was
    /// opened) decides whether the entry needs zip64 sizes. Returns the
    /// bytes read.
    pub fn add_file(
        &mut self,
        name: &str,
        mtime: i64,
        mode: u32,
        expected: u64,
        level: u32,
        data: &mut dyn Read,
    ) -> io::Result<u64> {
        let zip64 = expected >= self.zip64_file_bytes;
        let mut entry = self.entry(name.as_bytes().to_vec(), true, mtime, mode, zip64);
        self.local_header(&entry)?;
        let start = self.out.written;
        let mut hasher = crc32fast::Hasher::new();
        let mut encoder = DeflateEncoder::new(&mut self.out, Compression::new(level));
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            encoder.write_all(&buf[..n])?;
            size += n as u64;
        }
        encoder.finish()?;
        entry.crc = hasher.finalize();
        entry.size = size;
        entry.compressed = self.out.written - start;
        if !zip64 && (entry.size >= MAX32 || entry.compressed >= MAX32) {
            return Err(io::Error::other(format!(
                "{name} grew past 4 GiB while it was read"
            )));
        }
        let mut descriptor = Vec::with_capacity(24);
        put32(&mut descriptor, DATA_DESCRIPTOR);
        put32(&mut descriptor, entry.crc);
        if zip64 {
            put64(&mut descriptor, entry.compressed);
            put64(&mut descriptor, entry.size);
        } else {
            put32(&mut descriptor, entry.compressed as u32);
            put32(&mut descriptor, entry.size as u32);
        }
        self.out.write_all(&descriptor)?;
        entry.zip64 = zip64 || entry.offset >= MAX32;
        self.central_record(&entry);
        Ok(size)
    }

    /// Writes the central directory and the end records; returns the
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        let start = self.out.written;
        let central = std::mem::take(&mut self.central);
        self.out.write_all(&central)?;
        let size = central.len() as u64;
        let mut end = Vec::with_capacity(120);
        let zip64 = self.entries >= 0xFFFF || start >= MAX32 || size >= MAX32;
        if zip64 {
            let record = self.out.written;
            put32(&mut end, ZIP64_END);
            put64(&mut end, 44);
            put16(&mut end, MADE_BY);
            put16(&mut end, 45);
            put32(&mut end, 0);
            put32(&mut end, 0);
            put64(&mut end, self.entries);
            put64(&mut end, self.entries);
            put64(&mut end, size);
            put64(&mut end, start);
            put32(&mut end, ZIP64_LOCATOR);
            put32(&mut end, 0);
            put64(&mut end, record);
            put32(&mut end, 1);
        }
        put32(&mut end, END);
        put16(&mut end, 0);
        put16(&mut end, 0);
        let count = self.entries.min(0xFFFF) as u16;
        put16(&mut end, count);
        put16(&mut end, count);
        put32(&mut end, size.min(MAX32) as u32);
        put32(&mut end, start.min(MAX32) as u32);
        put16(&mut end, 0);
        self.out.write_all(&end)?;
        self.out.flush()?;
        Ok(self.out.inner)
    }

    fn local_header(&mut self, entry: &Written) -> io::Result<()> {
        let mut header = Vec::with_capacity(30 + entry.name.len() + 29);
        put32(&mut header, LOCAL_HEADER);
        put16(&mut header, if entry.zip64 { 45 } else { 20 });
        put16(&mut header, entry.flags);
        put16(&mut header, entry.method);
        put16(&mut header, entry.dos.0);
        put16(&mut header, entry.dos.1);
        put32(&mut header, 0); // CRC-32, sizes: in the descriptor
        let unknown = if entry.zip64 { MAX32 as u32 } else { 0 };
        put32(&mut header, unknown);
        put32(&mut header, unknown);
        put16(&mut header, entry.name.len() as u16);
        let extra_len = 9 + if entry.zip64 { 20 } else { 0 };
        put16(&mut header, extra_len);
        header.extend_from_slice(&entry.name);
        timestamp_field(&mut header, entry.unix_secs);
        if entry.zip64 {
            put16(&mut header, 0x0001);
            put16(&mut header, 16);
            put64(&mut header, 0);
            put64(&mut header, 0);
        }
        self.out.write_all(&header)
    }

    fn central_record(&mut self, entry: &Written) {
        let c = &mut self.central;
        let big_sizes = entry.zip64 && (entry.size > 0 || entry.flags & FLAG_DESCRIPTOR != 0);
        let big_offset = entry.offset >= MAX32;
        let mut zip64 = Vec::new();
        if big_sizes {
            put64(&mut zip64, entry.size);
            put64(&mut zip64, entry.compressed);
        }
        if big_offset {
            put64(&mut zip64, entry.offset);
        }
        put32(c, CENTRAL_HEADER);
        put16(c, MADE_BY);
        put16(c, if entry.zip64 { 45 } else { 20 });
        put16(c, entry.flags);
        put16(c, entry.method);
        put16(c, entry.dos.0);
        put16(c, entry.dos.1);
        put32(c, entry.crc);
        let (compressed, size) = if big_sizes {
            (MAX32 as u32, MAX32 as u32)
        } else {
            (entry.compressed as u32, entry.size as u32)
        };
        put32(c, compressed);
        put32(c, size);
        put16(c, entry.name.len() as u16);
        let zip64_len = if zip64.is_empty() { 0 } else { 4 + zip64.len() };
        put16(c, (9 + zip64_len) as u16);
        put16(c, 0); // comment
        put16(c, 0); // disk
        put16(c, 0); // internal attributes
        put32(c, entry.external);
        put32(c, entry.offset.min(MAX32) as u32);
        c.extend_from_slice(&entry.name);
        if !zip64.is_empty() {
            put16(c, 0x0001);
            put16(c, zip64.len() as u16);
            c.extend_from_slice(&zip64);
        }
        timestamp_field(c, entry.unix_secs);
        self.entries += 1;
    }
}

/// The extended-timestamp extra field with the modification time only.
fn timestamp_field(out: &mut Vec<u8>, secs: u32) {
    put16(out, 0x5455);
    put16(out, 5);
    out.push(1);
    put32(out, secs);
}

fn unix_secs(mtime: i64) -> u32 {
    mtime.clamp(0, u32::MAX as i64) as u32
}

/// DOS (time, date) of Unix seconds, in UTC, clamped to 1980–2107.
fn dos_time(mtime: i64) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    let Some(t) = chrono::DateTime::from_timestamp(mtime, 0) else {
        return (0, (1 << 5) | 1);
    };
    if t.year() < 1980 {
        return (0, (1 << 5) | 1);
    }
    if t.year() > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let time = (t.hour() << 11) | (t.minute() << 5) | (t.second() / 2);
    let date = (((t.year() - 1980) as u32) << 9) | (t.month() << 5) | t.day();
    (time as u16, date as u16)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The central directory's (name, size, crc, offset) as a plain reader
    /// of the end records finds them.
    fn central(zip: &[u8]) -> Vec<(String, u64, u32, u64)> {
        let end = zip.len() - 22;
        assert_eq!(&zip[end..end + 4], &END.to_le_bytes());
        let u16_at = |i: usize| u16::from_le_bytes([zip[i], zip[i + 1]]) as u64;
        let u32_at = |i: usize| u32::from_le_bytes(zip[i..i + 4].try_into().unwrap()) as u64;
        let u64_at = |i: usize| u64::from_le_bytes(zip[i..i + 8].try_into().unwrap());
        let (mut count, mut at) = (u16_at(end + 10), u32_at(end + 16));
        if count == 0xFFFF || at == MAX32 {
            let locator = end - 20;
            assert_eq!(u32_at(locator), ZIP64_LOCATOR as u64);
            let record = u64_at(locator + 8) as usize;
            assert_eq!(u32_at(record), ZIP64_END as u64);
            count = u64_at(record + 32);
            at = u64_at(record + 48);
        }
        let mut out = Vec::new();
        let mut i = at as usize;
        for _ in 0..count {
            assert_eq!(u32_at(i), CENTRAL_HEADER as u64);
            let crc = u32_at(i + 16) as u32;
            let mut size = u32_at(i + 24);
            let name_len = u16_at(i + 28) as usize;
            let extra_len = u16_at(i + 30) as usize;
            let mut offset = u32_at(i + 42);
            let name = String::from_utf8(zip[i + 46..i + 46 + name_len].to_vec()).unwrap();
            let mut e = i + 46 + name_len;
            let extra_end = e + extra_len;
            while e < extra_end {
                let (tag, len) = (u16_at(e), u16_at(e + 2) as usize);
                if tag == 1 {
                    let mut f = e + 4;
                    if size == MAX32 {
                        size = u64_at(f);
                        f += 16;
                    }
                    if offset == MAX32 {
                        offset = u64_at(f);
                    }
                }
                e += 4 + len;
            }
            out.push((name, size, crc, offset));
            i = extra_end;
        }
        out
    }

    #[test]
    fn a_streamed_zip_has_a_consistent_central_directory_and_zip64_when_needed() {
        for zip64_from in [ZIP64_FILE_BYTES, 1] {
            let mut zip = ZipStream::new(Vec::new()).with_zip64_from(zip64_from);
            zip.add_folder("dir", 1_700_000_000, 0o755).unwrap();
            let body = b"hello hello hello hello".repeat(100);
            let n = zip
                .add_file("dir/a.txt", 1_700_000_001, 0o644, 2300, 6, &mut &body[..])
                .unwrap();
            assert_eq!(n, body.len() as u64);
            zip.add_file("empty", 0, 0o600, 0, 0, &mut io::empty())
                .unwrap();
            let zip = zip.finish().unwrap();
            let listed = central(&zip);
            let names: Vec<_> = listed.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(names, ["dir/", "dir/a.txt", "empty"]);
            assert_eq!(listed[1].1, 2300);
            assert_eq!(listed[1].2, crc32fast::hash(&body));
            // Each offset points at that entry's local header.
            for (name, _, _, offset) in &listed {
                let at = *offset as usize;
                assert_eq!(&zip[at..at + 4], &LOCAL_HEADER.to_le_bytes(), "{name}");
            }
        }
    }

    #[test]
    fn more_than_65535_entries_get_the_zip64_end_records() {
        let mut zip = ZipStream::new(Vec::new());
        for i in 0..70_000 {
            zip.add_folder(&format!("{i}"), 0, 0o755).unwrap();
        }
        let zip = zip.finish().unwrap();
        let listed = central(&zip);
        assert_eq!(listed.len(), 70_000);
        assert_eq!(listed[69_999].0, "69999/");
    }

    #[test]
    fn dos_times_are_utc_and_clamped() {
        // 2023-11-14 22:13:20 UTC
        let (time, date) = dos_time(1_700_000_000);
        assert_eq!(date, ((2023 - 1980) << 9) | (11 << 5) | 14);
        assert_eq!(time, (22 << 11) | (13 << 5) | 10);
        assert_eq!(dos_time(0), (0, (1 << 5) | 1));
        assert_eq!(dos_time(-5), (0, (1 << 5) | 1));
    }
}
