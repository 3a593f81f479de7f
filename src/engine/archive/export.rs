//! Archive export (DownloadArchive): a folder of the user's storage written
//! as a zip or tar (plain, gzip, zstd) to a [`Write`] while it is walked.
//!
//! Nothing is copied first and nothing is buffered here beyond one 64 KiB
//! read: the caller's writer (the API's bounded channel of ~1 MiB
//! messages) is the only buffer, so a slow client slows the walk and a
//! client that went away (the writer fails) stops it. docs/archives.md
//! states the rules for users; the choices behind them:
//!
//! - **By handles, at the moment of use.** [`Export::open`] opens the folder
//!   beneath the user's root with no symlink anywhere on the way
//!   (`UserRoot::open_walk`); the walk descends by names relative to that
//!   descriptor ([`storage::walk`](crate::storage::walk): iterative, at most
//!   `MAX_DEPTH` levels and a bounded number of descriptors), and each file
//!   is opened by its one name, `O_NOFOLLOW`, when its turn comes. What
//!   the archive says about a file (size, time, mode) is the open file's
//!   own `fstat`.
//! - **Left out, and the archive goes on:** symlinks (never followed),
//!   devices, FIFOs and sockets; names that are not UTF-8 (an archive name
//!   must be); the service's own entries (`storage::is_internal`: the
//!   trash, files being written); a file or folder that vanished or became
//!   something else between the listing and its turn. They are counted
//!   ([`Exported::skipped`]) and logged, not listed in the archive.
//! - **The archive stops with an error** (the writer is not finished, so
//!   the archive has no end and no reader takes it for whole): a file that
//!   shrank while it was read (its header already promised the size), a
//!   folder more than `MAX_DEPTH` levels down, a folder swapped while the
//!   walk was in it, a storage error. A file that grew is cut at the size it
//!   had when opened.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::rc::Rc;

use crate::domain::archive::ArchiveFormat;
use crate::storage::walk::{Event, Kind, Visit, Walk};
use crate::storage::{self, StorageError, UserPath, UserRoot};

use super::zip_write::ZipStream;

/// Deflate level of zip entries and gzip (zlib's default).
const DEFLATE_LEVEL: u32 = 6;
/// zstd level of TAR_ZSTD (the library's default).
const ZSTD_LEVEL: i32 = 3;

/// Extensions of contents that are compressed already: zip stores them
/// (deflate level 0) instead of spending time on them for nothing.
const COMPRESSED: &[&str] = &[
    "7z", "aac", "avif", "br", "bz2", "docx", "flac", "gif", "gz", "heic", "heif", "jar", "jpeg",
    "jpg", "lz4", "m4a", "m4v", "mkv", "mov", "mp3", "mp4", "odp", "ods", "odt", "ogg", "opus",
    "png", "pptx", "rar", "tgz", "webm", "webp", "xlsx", "xz", "zip", "zst",
];

/// What an export wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub files: u64,
    pub folders: u64,
    /// Bytes of file contents (before compression).
    pub bytes: u64,
    /// Entries left out (see the module docs).
    pub skipped: u64,
}

/// Why an export stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing failed: the client went away (or a compressor failed).
    #[error("writing the archive failed: {0}")]
    Output(io::Error),
    /// Reading the folder `path` (relative to the exported folder) failed.
    #[error("{path}: {error}")]
    Storage { path: String, error: StorageError },
}

/// A folder opened for export (see the module docs).
pub struct Export {
    start: OwnedFd,
    folder: UserPath,
    /// Levels the walk enters ([`storage::MAX_DEPTH`]; tests lower it).
    max_depth: usize,
}

impl Export {
    /// Opens `folder` beneath the root now, refusing a symlink anywhere on
    /// the way (`SymlinkRefused`), a missing folder (`NotFound`) and a file
    /// (`NotADirectory`).
    pub fn open(root: &UserRoot, folder: &UserPath) -> Result<Export, StorageError> {
        let start = root.open_walk(folder)?;
        Ok(Export {
            start,
            folder: folder.clone(),
            max_depth: storage::MAX_DEPTH,
        })
    }

    #[cfg(test)]
    fn write_bounded(
        mut self,
        format: ArchiveFormat,
        out: impl Write,
        max_depth: usize,
    ) -> Result<Exported, ExportError> {
        self.max_depth = max_depth;
        self.write(format, out)
    }

    /// Writes the archive to `out`. Blocking: run it on the blocking pool.
    /// After a failure nothing more reaches `out` (no archive end).
    pub fn write(self, format: ArchiveFormat, out: impl Write) -> Result<Exported, ExportError> {
        let shut = Rc::new(Cell::new(false));
        let out = Shut {
            inner: out,
            shut: shut.clone(),
        };
        // Shuts the output before the archive writer is dropped.
        let walked = |result: Result<Exported, ExportError>| {
            if result.is_err() {
                shut.set(true);
            }
            result
        };
        match format {
            ArchiveFormat::Zip => {
                let mut zip = ZipStream::new(out);
                let exported = walked(self.walk(&mut zip))?;
                zip.finish().map_err(ExportError::Output)?;
                Ok(exported)
            }
            ArchiveFormat::Tar => {
                let mut tar = Tar(tar::Builder::new(out));
                let exported = walked(self.walk(&mut tar))?;
                tar.0.into_inner().map_err(ExportError::Output)?;
                Ok(exported)
            }
            ArchiveFormat::TarGzip => {
                let level = flate2::Compression::new(DEFLATE_LEVEL);
                let mut tar = Tar(tar::Builder::new(flate2::write::GzEncoder::new(out, level)));
                let exported = walked(self.walk(&mut tar))?;
                let gz = tar.0.into_inner().map_err(ExportError::Output)?;
                gz.finish().map_err(ExportError::Output)?;
                Ok(exported)
            }
            ArchiveFormat::TarZstd => {
                let zstd = zstd::Encoder::new(out, ZSTD_LEVEL).map_err(ExportError::Output)?;
                let mut tar = Tar(tar::Builder::new(zstd));
                let exported = walked(self.walk(&mut tar))?;
                let zstd = tar.0.into_inner().map_err(ExportError::Output)?;
                zstd.finish().map_err(ExportError::Output)?;
                Ok(exported)
            }
        }
    }

    fn walk(self, archive: &mut impl Archive) -> Result<Exported, ExportError> {
        let at_root = self.folder.is_root();
        let folder = self.folder;
        let mut exported = Exported::default();
        let mut failure: Option<ExportError> = None;
        let mut walk = Walk::new(self.start, PathBuf::new())
            .map_err(|e| storage_error("", e))?
            .max_depth(self.max_depth);
        let skip = |skipped: &mut u64, path: &std::path::Path, why: &dyn std::fmt::Display| {
            tracing::debug!(folder = %folder, path = %path.display(), %why, "export: left out");
            *skipped += 1;
        };
        let walked = walk.run(|event| {
            let entry = match event {
                Event::Entry(entry) => entry,
                Event::Leave(_) => return Visit::Next,
                Event::Error { path, error } => {
                    let error = error.into_io();
                    if vanished(&error) {
                        skip(&mut exported.skipped, path, &error);
                        return Visit::Next;
                    }
                    failure = Some(ExportError::Storage {
                        path: path.display().to_string(),
                        error: match error.downcast::<storage::WalkError>() {
                            Ok(walk_error) => walk_error.in_folder(&folder),
                            Err(error) => error.into(),
                        },
                    });
                    return Visit::Stop;
                }
            };
            if storage::is_internal(
                entry.name().as_encoded_bytes(),
                at_root && entry.depth() == 1,
            ) {
                return Visit::Next;
            }
            let Some(name) = entry.path().to_str() else {
                skip(
                    &mut exported.skipped,
                    entry.path(),
                    &"the name is not UTF-8",
                );
                return Visit::Next;
            };
            let result = match entry.kind() {
                Kind::Dir => match entry.stat() {
                    Ok(stat) => archive
                        .folder(
                            name,
                            Stamp {
                                mtime: stat.mtime.0,
                                mode: stat.mode,
                            },
                        )
                        .map(|()| Visit::Enter)
                        .map_err(ExportError::Output),
                    Err(e) if vanished(&e) => {
                        skip(&mut exported.skipped, entry.path(), &e);
                        Ok(Visit::Next)
                    }
                    Err(e) => Err(storage_error(name, e)),
                },
                Kind::File => match entry.open_file() {
                    Ok(file) => {
                        let result = add_file(archive, name, file, &mut exported);
                        result.map(|()| Visit::Next)
                    }
                    Err(e) if vanished(&e) => {
                        skip(&mut exported.skipped, entry.path(), &e);
                        Ok(Visit::Next)
                    }
                    Err(e) => Err(storage_error(name, e)),
                },
                Kind::Symlink | Kind::Other => {
                    skip(
                        &mut exported.skipped,
                        entry.path(),
                        &"not a regular file or folder",
                    );
                    Ok(Visit::Next)
                }
            };
            match result {
                Ok(visit) => {
                    if visit == Visit::Enter {
                        exported.folders += 1;
                    }
                    visit
                }
                Err(error) => {
                    failure = Some(error);
                    Visit::Stop
                }
            }
        });
        if let Some(failure) = failure {
            return Err(failure);
        }
        walked.map_err(|e| storage_error("", e))?;
        Ok(exported)
    }
}

/// Whether an error means the entry is gone or is no longer what the
/// listing said (a folder or file swapped for a symlink, a file for
/// something else): left out, not a failure.
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
        || (e.kind() == io::ErrorKind::InvalidInput && e.raw_os_error().is_none())
}

fn storage_error(path: &str, e: io::Error) -> ExportError {
    ExportError::Storage {
        path: path.to_string(),
        error: e.into(),
    }
}

fn add_file(
    archive: &mut impl Archive,
    name: &str,
    file: std::fs::File,
    exported: &mut Exported,
) -> Result<(), ExportError> {
    let meta = file.metadata().map_err(|e| storage_error(name, e))?;
    let size = meta.size();
    let mut reader = Exact {
        inner: file.take(size),
        left: size,
        failed: None,
    };
    let stamp = Stamp {
        mtime: meta.mtime(),
        mode: meta.mode(),
    };
    let written = archive.file(name, stamp, size, &mut reader);
    if let Some(error) = reader.failed.take() {
        return Err(storage_error(name, error));
    }
    written.map_err(ExportError::Output)?;
    exported.files += 1;
    exported.bytes += size;
    Ok(())
}

/// Reads exactly the size a file had when it was opened: a file that grew
/// is cut there, one that shrank is an error (kept in `failed`, so that a
/// read failure is told apart from a write failure).
struct Exact<R> {
    inner: R,
    left: u64,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let error = match self.inner.read(buf) {
            Ok(0) if self.left > 0 => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file shrank while it was read ({} bytes missing)",
                    self.left
                ),
            ),
            Ok(n) => {
                self.left -= n as u64;
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => e,
        };
        let kind = error.kind();
        self.failed = Some(error);
        Err(io::Error::new(kind, "reading the file failed"))
    }
}

/// The output of an export, shut once the walk failed: the `tar` crate's
/// builder and the compressors finish their archives when dropped, which
/// would give a stopped export a well-formed end a reader takes for whole.
struct Shut<W> {
    inner: W,
    shut: Rc<Cell<bool>>,
}

impl<W: Write> Write for Shut<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.shut.get() {
            return Err(io::Error::other("the export stopped"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.shut.get() {
            return Err(io::Error::other("the export stopped"));
        }
        self.inner.flush()
    }
}

/// What an archive keeps of an entry besides its name and contents.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    /// Modification time, Unix seconds.
    mtime: i64,
    /// `st_mode` (only the permission bits are kept).
    mode: u32,
}

/// What the walk writes to: a zip or a tar.
trait Archive {
    fn folder(&mut self, name: &str, stamp: Stamp) -> io::Result<()>;
    fn file(&mut self, name: &str, stamp: Stamp, size: u64, data: &mut dyn Read) -> io::Result<()>;
}

impl<W: Write> Archive for ZipStream<W> {
    fn folder(&mut self, name: &str, stamp: Stamp) -> io::Result<()> {
        self.add_folder(name, stamp.mtime, stamp.mode)
    }

    fn file(&mut self, name: &str, stamp: Stamp, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        let compressed = extension.is_some_and(|e| COMPRESSED.contains(&e.as_str()));
        let level = if compressed { 0 } else { DEFLATE_LEVEL };
        self.add_file(name, stamp.mtime, stamp.mode, size, level, data)?;
        Ok(())
    }
}

/// A tar (GNU long names past 100 bytes; whole seconds).
struct Tar<W: Write>(tar::Builder<W>);

fn tar_header(kind: tar::EntryType, size: u64, stamp: Stamp) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(stamp.mode & 0o7777);
    header.set_mtime(stamp.mtime.max(0) as u64);
    header
}

impl<W: Write> Archive for Tar<W> {
    fn folder(&mut self, name: &str, stamp: Stamp) -> io::Result<()> {
        let mut header = tar_header(tar::EntryType::Directory, 0, stamp);
        self.0
            .append_data(&mut header, format!("{name}/"), io::empty())
    }

    fn file(&mut self, name: &str, stamp: Stamp, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mut header = tar_header(tar::EntryType::Regular, size, stamp);
        self.0.append_data(&mut header, name, data)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> (tempfile::TempDir, UserRoot) {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("user");
        fs::create_dir_all(base.join("f/sub/empty")).unwrap();
        fs::write(base.join("f/a.txt"), b"alpha").unwrap();
        fs::write(base.join("f/sub/b.bin"), vec![7u8; 100_000]).unwrap();
        fs::write(base.join("f/sub/photo.JPG"), b"not really a jpeg").unwrap();
        fs::write(base.join("f/zero"), b"").unwrap();
        fs::write(base.join("f/.fileorg-tmp-123"), b"partial").unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/secret"), b"SECRET").unwrap();
        symlink(tmp.path().join("outside"), base.join("f/link")).unwrap();
        symlink(tmp.path().join("outside/secret"), base.join("f/file-link")).unwrap();
        let root = UserRoot::open_existing(&base).unwrap();
        (tmp, root)
    }

    fn tar_entries(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_str().unwrap().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.insert(name, data);
        }
        out
    }

    #[test]
    fn a_tar_export_holds_the_tree_and_leaves_out_links_and_internal_files() {
        let (_tmp, root) = tree();
        let folder = UserPath::parse("f").unwrap();
        let mut out = Vec::new();
        let exported = Export::open(&root, &folder)
            .unwrap()
            .write(ArchiveFormat::Tar, &mut out)
            .unwrap();
        assert_eq!(
            (exported.files, exported.folders, exported.skipped),
            (4, 2, 2)
        );
        let entries = tar_entries(&out);
        let names: Vec<_> = entries.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "a.txt",
                "sub/",
                "sub/b.bin",
                "sub/empty/",
                "sub/photo.JPG",
                "zero"
            ]
        );
        assert_eq!(entries["sub/b.bin"], vec![7u8; 100_000]);
        assert!(!out.windows(6).any(|w| w == b"SECRET"));
    }

    #[test]
    fn a_symlinked_folder_cannot_be_exported() {
        let (_tmp, root) = tree();
        let err = Export::open(&root, &UserPath::parse("f/link").unwrap())
            .err()
            .unwrap();
        // O_NOFOLLOW | O_DIRECTORY on the link itself: ENOTDIR; through it: ELOOP.
        assert!(matches!(err, StorageError::NotADirectory(_)), "{err:?}");
        let err = Export::open(&root, &UserPath::parse("f/link/x").unwrap())
            .err()
            .unwrap();
        assert!(
            matches!(err, StorageError::SymlinkRefused(_) | StorageError::Escape),
            "{err:?}"
        );
        let err = Export::open(&root, &UserPath::parse("f/a.txt").unwrap())
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::NotADirectory(_)), "{err:?}");
    }

    #[test]
    fn every_format_round_trips_through_the_import_detector() {
        let (_tmp, root) = tree();
        let folder = UserPath::parse("f").unwrap();
        for format in [
            ArchiveFormat::Zip,
            ArchiveFormat::Tar,
            ArchiveFormat::TarGzip,
            ArchiveFormat::TarZstd,
        ] {
            let mut out = Vec::new();
            Export::open(&root, &folder)
                .unwrap()
                .write(format, &mut out)
                .unwrap();
            let (detected, _) = super::super::detect::detect(&out[..], None)
                .ok()
                .expect("detected");
            assert_eq!(detected, format);
        }
    }

    #[test]
    fn a_writer_that_fails_stops_the_walk() {
        struct Gone;
        impl Write for Gone {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (_tmp, root) = tree();
        let err = Export::open(&root, &UserPath::parse("f").unwrap())
            .unwrap()
            .write(ArchiveFormat::Tar, Gone)
            .unwrap_err();
        assert!(matches!(err, ExportError::Output(_)), "{err:?}");
    }

    #[test]
    fn a_stopped_export_writes_no_archive_end() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("user");
        fs::create_dir_all(&base).unwrap();
        fs::write(base.join("a.txt"), b"a").unwrap();
        deep(&base.join("deep"), 40);
        let root = UserRoot::open_existing(&base).unwrap();
        for format in [ArchiveFormat::Tar, ArchiveFormat::TarGzip] {
            let export = Export::open(&root, &UserPath::root()).unwrap();
            let mut out = Vec::new();
            let err = export.write_bounded(format, &mut out, 10).unwrap_err();
            assert!(
                matches!(
                    err,
                    ExportError::Storage {
                        error: StorageError::TooDeep { .. },
                        ..
                    }
                ),
                "{err:?}"
            );
            if format == ArchiveFormat::TarGzip {
                // What the compressor held back never comes out: no gzip end either.
                let mut plain = Vec::new();
                let read = flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut plain);
                assert!(read.is_err(), "the gzip stream was given an end");
                continue;
            }
            // The entries written before the failure, and no two zero blocks after them.
            assert!(out.len() >= 512 && out.len() % 512 == 0, "{}", out.len());
            assert!(!out.ends_with(&[0u8; 1024]), "the tar was given an end");
        }
    }

    fn deep(base: &std::path::Path, levels: usize) {
        let mut path = base.to_path_buf();
        for _ in 0..levels {
            path.push("d");
        }
        fs::create_dir_all(path).unwrap();
    }

    #[test]
    fn a_file_that_shrinks_while_it_is_read_fails_cleanly() {
        let mut reader = Exact {
            inner: &b"abc"[..],
            left: 5,
            failed: None,
        };
        let mut out = Vec::new();
        assert!(io::copy(&mut reader, &mut out).is_err());
        let failed = reader.failed.unwrap();
        assert!(failed.to_string().contains("shrank"), "{failed}");
    }
}
