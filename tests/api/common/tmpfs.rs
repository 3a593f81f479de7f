//! A small tmpfs mounted for one test (tests run as root), unmounted when
//! the guard is dropped, also when the test panics.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs of a fixed size.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Creates `path` (and its parents) and mounts a tmpfs of `size` (as
    /// `mount -o size=` takes it, e.g. "2m") on it.
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs on {} failed (the tests need root)",
            path.display()
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (an open file of a server being shut down): detach
            // it now, the kernel frees it once the last user is gone.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}
