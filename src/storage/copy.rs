//! Moving a file across filesystems: copy, verify, publish, then unlink.
//!
//! `rename` cannot cross devices (`EXDEV`), so the move becomes a copy that
//! is only ever *published* with `RENAME_NOREPLACE` and only then allowed to
//! cost the source its name (stack.md fact 5):
//!
//! 1. open the source `O_RDONLY|O_NOFOLLOW`, `fstat` it (regular file only);
//! 2. create `.fileorg-tmp-<uuid>` in the destination directory with
//!    `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600;
//! 3. copy, hashing what is read (blake3);
//! 4. verify: size, and the blake3 of the temp file read back, against the source;
//! 5. set permission bits and atime/mtime (after the last write, which would
//!    bump mtime), `fsync` the file;
//! 6. publish with `renameat2(RENAME_NOREPLACE)` (`EEXIST` → the temp is
//!    removed, [`StorageError::DestinationExists`]), `fsync` the directory;
//! 7. re-stat the source: same device, inode, size, mtime and ctime, else the
//!    copy is removed and the source kept ([`StorageError::SourceChanged`]);
//! 8. unlink the source, `fsync` its directory.
//!
//! Any failure before step 8 removes the temp file or the published copy
//! (only if it is still our inode) and leaves the source intact. A crash
//! leaves at worst a temp file (swept at start-up) or two complete copies;
//! never zero. If the source *disappears* during the copy (someone else
//! deleted it), the verified copy is kept, since it may be the only one left,
//! and the move counts as done.
//!
//! Not preserved: owner, xattrs/ACLs, setuid/setgid/sticky bits, sparseness,
//! other hard links of the source.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};

use cap_std::fs::Dir;
use rustix::fs::{AtFlags, Mode, RenameFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::TEMP_PREFIX;
use super::error::StorageError;
use super::fingerprint::Fingerprint;
use super::path::is_single_component;
use super::sys::{self, Stat};

/// Copy buffer size.
const BUF_SIZE: usize = 256 * 1024;

/// Moves the regular file `src_dir/src_name` to `dst_dir/dst_name`, which
/// may be on another filesystem, by a verified copy; never replaces an
/// existing destination (see the module docs for the exact sequence).
///
/// Both names must be single path components (no `/`, not `.` or `..`);
/// otherwise the result is [`StorageError::Escape`] and nothing is touched.
/// The directories are normally parents opened by a
/// [`UserRoot`](super::UserRoot) (which calls this on `EXDEV`).
pub fn copy_across_devices(
    src_dir: &Dir,
    src_name: &str,
    dst_dir: &Dir,
    dst_name: &str,
) -> Result<(), StorageError> {
    if !is_single_component(src_name) || !is_single_component(dst_name) {
        return Err(StorageError::Escape);
    }
    copy_inner(src_dir, src_name, dst_dir, dst_name, None, &mut || {})
}

/// Removes the temp file on drop unless disarmed.
struct TempFile<'a> {
    dir: BorrowedFd<'a>,
    name: String,
    armed: bool,
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = sys::unlink_at(self.dir, &self.name)
        {
            tracing::warn!(temp = %self.name, error = %e, "could not remove a temporary copy");
        }
    }
}

/// [`copy_across_devices`] with an optional scan fingerprint the source must
/// match and a hook run just before the source is re-checked (tests use it
/// to change the source at the worst moment).
pub(crate) fn copy_inner(
    src_dir: impl AsFd,
    src_name: &str,
    dst_dir: impl AsFd,
    dst_name: &str,
    expect: Option<&Fingerprint>,
    before_recheck: &mut dyn FnMut(),
) -> Result<(), StorageError> {
    let (src_dir, dst_dir) = (src_dir.as_fd(), dst_dir.as_fd());

    // 1. The source.
    let src_fd = match sys::open_read_nofollow(src_dir, src_name) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(StorageError::NotARegularFile);
        }
        Err(e) => return Err(StorageError::source(e)),
    };
    let src_st = sys::fstat(&src_fd)?;
    if !src_st.is_regular() {
        return Err(StorageError::NotARegularFile);
    }
    if expect.is_some_and(|fp| *fp != Fingerprint::from_stat(&src_st)) {
        return Err(StorageError::SourceChanged);
    }
    let mut src = File::from(src_fd);

    // 2. The temp file; removed on every early return from here on.
    let tmp_name = format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let mut tmp =
        File::from(sys::create_excl(dst_dir, &tmp_name, 0o600).map_err(StorageError::from)?);
    let mut guard = TempFile {
        dir: dst_dir,
        name: tmp_name,
        armed: true,
    };

    // 3. Copy, hashing the bytes as read.
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut copied = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])?;
        copied += n as u64;
    }
    let src_hash = hasher.finalize();

    // 4. Verify what landed in the temp file.
    tmp.seek(SeekFrom::Start(0))?;
    let mut check = blake3::Hasher::new();
    check.update_reader(&mut tmp)?;
    let tmp_st = sys::fstat(&tmp)?;
    if copied != src_st.size || tmp_st.size != src_st.size || check.finalize() != src_hash {
        // A source written to during the copy is "changed", anything else is
        // a failed copy.
        return Err(match sys::fstat(&src) {
            Ok(now) if !unchanged(&now, &src_st) => StorageError::SourceChanged,
            _ => StorageError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "copy verification failed (size or hash mismatch)",
            )),
        });
    }

    // 5. Metadata after the last write (reads above could bump atime), then fsync.
    rustix::fs::fchmod(&tmp, Mode::from_raw_mode((src_st.mode & 0o777) as _))
        .map_err(io::Error::from)?;
    rustix::fs::futimens(
        &tmp,
        &Timestamps {
            last_access: timespec(src_st.atime),
            last_modification: timespec(src_st.mtime),
        },
    )
    .map_err(io::Error::from)?;
    tmp.sync_all()?;

    // 6. Publish without replacing.
    publish(dst_dir, &guard.name, dst_name)?;
    guard.armed = false;
    let published = tmp_st;
    drop(tmp);
    drop(guard);
    if let Err(e) = sys::fsync_dir(dst_dir) {
        remove_copy(dst_dir, dst_name, &published);
        return Err(e.into());
    }

    // 7. The source must still be the file we copied.
    before_recheck();
    match sys::lstat_at(src_dir, src_name) {
        Ok(now) if unchanged(&now, &src_st) => {}
        Ok(_) => {
            remove_copy(dst_dir, dst_name, &published);
            return Err(StorageError::SourceChanged);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(
                source = src_name,
                "source vanished during a cross-device copy; keeping the verified copy"
            );
            return Ok(());
        }
        Err(e) => {
            remove_copy(dst_dir, dst_name, &published);
            return Err(e.into());
        }
    }

    // 8. Only now may the source go.
    match sys::unlink_at(src_dir, src_name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            remove_copy(dst_dir, dst_name, &published);
            return Err(e.into());
        }
    }
    if let Err(e) = sys::fsync_dir(src_dir) {
        // The move happened; at worst a crash brings back a second copy.
        tracing::warn!(error = %e, "could not fsync the source directory after a move");
    }
    Ok(())
}

/// Renames the temp file `tmp_name` of `dir` to `name` (one component, in
/// the same folder) without replacing: `EEXIST` is
/// [`StorageError::DestinationExists`]. Falls back to link + unlink where
/// `RENAME_NOREPLACE` is not supported.
pub(super) fn publish(dir: BorrowedFd<'_>, tmp_name: &str, name: &str) -> Result<(), StorageError> {
    match rustix::fs::renameat_with(dir, tmp_name, dir, name, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(StorageError::DestinationExists),
        Err(Errno::INVAL | Errno::NOSYS) => {
            match rustix::fs::linkat(dir, tmp_name, dir, name, AtFlags::empty()) {
                Ok(()) => {
                    // The caller's guard is disarmed after this returns; the
                    // temp name is ours to remove.
                    let _ = sys::unlink_at(dir, tmp_name);
                    Ok(())
                }
                Err(Errno::EXIST) => Err(StorageError::DestinationExists),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes the published copy (if it is still ours) and makes that durable.
fn remove_copy(dir: BorrowedFd<'_>, name: &str, ours: &Stat) {
    match sys::unlink_if_same(dir, name, ours) {
        Ok(_) => {
            let _ = sys::fsync_dir(dir);
        }
        Err(e) => {
            tracing::warn!(error = %e, copy = name, "could not remove an abandoned copy");
        }
    }
}

/// Same inode with the same size, mtime and ctime (atime may move: we read it).
fn unchanged(now: &Stat, then: &Stat) -> bool {
    now.same_inode(then)
        && now.size == then.size
        && now.mtime == then.mtime
        && now.ctime == then.ctime
}

fn timespec((sec, nsec): (i64, i64)) -> Timespec {
    Timespec {
        tv_sec: sec as _,
        tv_nsec: nsec as _,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::storage::mover::{link_then_unlink, move_entry};

    /// A source directory on tmpfs (/dev/shm) and a destination directory on
    /// the disk (/tmp's filesystem): two devices without mounting anything.
    struct TwoDevices {
        shm: tempfile::TempDir,
        disk: tempfile::TempDir,
        src: Dir,
        dst: Dir,
    }

    fn two_devices() -> TwoDevices {
        let shm = tempfile::Builder::new()
            .prefix("fileorg-xdev-")
            .tempdir_in("/dev/shm")
            .expect("/dev/shm must exist for the cross-device tests");
        let disk = tempfile::tempdir().unwrap();
        let (a, b) = (
            fs::metadata(shm.path()).unwrap().dev(),
            fs::metadata(disk.path()).unwrap().dev(),
        );
        assert_ne!(
            a, b,
            "PRECONDITION: /dev/shm and the temp dir must be different filesystems \
             (tmpfs vs disk) for the cross-device tests; check `stat -f /dev/shm /tmp`"
        );
        let open = |p: &Path| Dir::open_ambient_dir(p, cap_std::ambient_authority()).unwrap();
        TwoDevices {
            src: open(shm.path()),
            dst: open(disk.path()),
            shm,
            disk,
        }
    }

    impl TwoDevices {
        fn names(dir: &Path) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        }
        fn src_names(&self) -> Vec<String> {
            Self::names(self.shm.path())
        }
        fn dst_names(&self) -> Vec<String> {
            Self::names(self.disk.path())
        }
    }

    fn content() -> Vec<u8> {
        (0..1_000_003u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    fn prepare_source(path: &Path, data: &[u8]) -> SystemTime {
        fs::write(path, data).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o640)).unwrap();
        let mtime = SystemTime::UNIX_EPOCH + Duration::new(1_234_567_890, 123_456_789);
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        mtime
    }

    #[test]
    fn copies_verifies_preserves_and_removes_the_source() {
        let t = two_devices();
        let data = content();
        let mtime = prepare_source(&t.shm.path().join("photo.jpg"), &data);

        copy_across_devices(&t.src, "photo.jpg", &t.dst, "photo.jpg").unwrap();

        let dest = t.disk.path().join("photo.jpg");
        assert_eq!(fs::read(&dest).unwrap(), data);
        let meta = fs::metadata(&dest).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(meta.modified().unwrap(), mtime);
        assert!(t.src_names().is_empty(), "source must be gone");
        assert_eq!(t.dst_names(), ["photo.jpg"], "no temp file left");
    }

    #[test]
    fn never_overwrites_an_existing_destination() {
        let t = two_devices();
        fs::write(t.shm.path().join("a.txt"), b"new").unwrap();
        fs::write(t.disk.path().join("a.txt"), b"old").unwrap();
        let err = copy_across_devices(&t.src, "a.txt", &t.dst, "a.txt").unwrap_err();
        assert!(matches!(err, StorageError::DestinationExists), "{err:?}");
        assert_eq!(fs::read(t.shm.path().join("a.txt")).unwrap(), b"new");
        assert_eq!(fs::read(t.disk.path().join("a.txt")).unwrap(), b"old");
        assert_eq!(t.dst_names(), ["a.txt"], "temp file removed");
    }

    #[test]
    fn a_source_changed_during_the_copy_is_kept_and_the_copy_removed() {
        let t = two_devices();
        let src_path = t.shm.path().join("a.txt");
        fs::write(&src_path, b"version 1").unwrap();
        let err = copy_inner(&t.src, "a.txt", &t.dst, "a.txt", None, &mut || {
            fs::write(&src_path, b"version 2, longer").unwrap();
        })
        .unwrap_err();
        assert!(matches!(err, StorageError::SourceChanged), "{err:?}");
        assert_eq!(fs::read(&src_path).unwrap(), b"version 2, longer");
        assert!(t.dst_names().is_empty(), "copy and temp removed");
    }

    #[test]
    fn a_stale_fingerprint_stops_the_copy() {
        let t = two_devices();
        let src_path = t.shm.path().join("a.txt");
        fs::write(&src_path, b"abc").unwrap();
        let mut fp = Fingerprint::from_std(&fs::symlink_metadata(&src_path).unwrap());
        fp.size += 1;
        let err = copy_inner(&t.src, "a.txt", &t.dst, "a.txt", Some(&fp), &mut || {}).unwrap_err();
        assert!(matches!(err, StorageError::SourceChanged), "{err:?}");
        assert!(src_path.exists());
        assert!(t.dst_names().is_empty());
    }

    #[test]
    fn refuses_symlinks_and_bad_names() {
        let t = two_devices();
        fs::write(t.shm.path().join("real"), b"x").unwrap();
        symlink("real", t.shm.path().join("link")).unwrap();
        let err = copy_across_devices(&t.src, "link", &t.dst, "link").unwrap_err();
        assert!(matches!(err, StorageError::NotARegularFile), "{err:?}");
        let err = copy_across_devices(&t.src, "missing", &t.dst, "m").unwrap_err();
        assert!(matches!(err, StorageError::SourceMissing), "{err:?}");
        for (from, to) in [
            ("../real", "x"),
            ("real", "../x"),
            ("real", "a/b"),
            ("real", ""),
        ] {
            let err = copy_across_devices(&t.src, from, &t.dst, to).unwrap_err();
            assert!(
                matches!(err, StorageError::Escape),
                "{from} -> {to}: {err:?}"
            );
        }
        assert_eq!(t.src_names(), ["link", "real"]);
        assert!(t.dst_names().is_empty());
    }

    #[test]
    fn rename_falls_back_to_the_copy_on_exdev() {
        let t = two_devices();
        let data = content();
        let mtime = prepare_source(&t.shm.path().join("v.mp4"), &data);
        move_entry(&t.src, "v.mp4", &t.dst, "clip.mp4", None).unwrap();
        assert_eq!(fs::read(t.disk.path().join("clip.mp4")).unwrap(), data);
        let meta = fs::metadata(t.disk.path().join("clip.mp4")).unwrap();
        assert_eq!(meta.modified().unwrap(), mtime);
        assert!(t.src_names().is_empty());

        fs::write(t.shm.path().join("w"), b"w").unwrap();
        let err = move_entry(&t.src, "w", &t.dst, "clip.mp4", None).unwrap_err();
        assert!(matches!(err, StorageError::DestinationExists), "{err:?}");
        assert_eq!(fs::read(t.disk.path().join("clip.mp4")).unwrap(), data);
        assert_eq!(t.src_names(), ["w"]);
        assert_eq!(t.dst_names(), ["clip.mp4"]);
    }

    #[test]
    fn the_link_fallback_moves_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        fs::write(dir.path().join("a"), b"a").unwrap();
        fs::write(dir.path().join("b"), b"b").unwrap();
        let err = link_then_unlink(&d, "a", &d, "b", None).unwrap_err();
        assert!(matches!(err, StorageError::DestinationExists), "{err:?}");
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"a");
        assert_eq!(fs::read(dir.path().join("b")).unwrap(), b"b");
        link_then_unlink(&d, "a", &d, "c", None).unwrap();
        assert!(!dir.path().join("a").exists());
        assert_eq!(fs::read(dir.path().join("c")).unwrap(), b"a");
        // Across devices it turns into the verified copy.
        let t = two_devices();
        fs::write(t.shm.path().join("x"), b"x").unwrap();
        link_then_unlink(&t.src, "x", &t.dst, "x", None).unwrap();
        assert_eq!(fs::read(t.disk.path().join("x")).unwrap(), b"x");
        assert!(t.src_names().is_empty());
    }
}
