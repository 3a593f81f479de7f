//! The user's trash folder on disk: the filesystem side of DeleteFile,
//! RestoreFile and EmptyTrash (what is in the trash and where it came from
//! is `db::trash`'s business).
//!
//! Layout: `.trash/<item-id>/<name>` for an entry deleted through the API
//! (a folder per item, so names never collide), `.trash/<operation-id>/…`
//! for the duplicates an organize moved there. The trash folder must be a
//! real folder: a symlink there is refused ([`StorageError::TrashNotAFolder`])
//! rather than followed, since it could send deletions elsewhere.
//! [`UserRoot::purge_from_trash`] is the only deletion of users' data in the
//! service, and it removes only what lies strictly inside `.trash`, never
//! following a symlink.

use super::error::StorageError;
use super::path::UserPath;
use super::root::UserRoot;
use super::walk::{Kind, MAX_DEPTH};

/// The user's trash folder, at the root of their storage.
pub const TRASH_FOLDER: &str = ".trash";

/// Whether an entry named `name` (in the root when `at_root`) is the
/// service's own rather than the user's: a temporary file of a copy or an
/// upload and the resumable uploads' folder (all
/// [`TEMP_PREFIX`](super::TEMP_PREFIX)`*`, anywhere), and the trash
/// ([`TRASH_FOLDER`] at the root). Listings and archive downloads leave
/// such entries out.
pub fn is_internal(name: &[u8], at_root: bool) -> bool {
    name.starts_with(super::TEMP_PREFIX.as_bytes()) || (at_root && name == TRASH_FOLDER.as_bytes())
}

/// [`TRASH_FOLDER`] as a path.
pub fn trash_folder() -> UserPath {
    UserPath::parse(TRASH_FOLDER).expect("the trash folder is a valid path")
}

impl UserRoot {
    /// Checks that `.trash` is a real folder, or absent (it is created by
    /// the first move into it); anything else is
    /// [`StorageError::TrashNotAFolder`].
    pub fn check_trash(&self) -> Result<(), StorageError> {
        match self.symlink_metadata(&trash_folder()) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(StorageError::TrashNotAFolder),
            Err(StorageError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// What the entry `p` is (never following a final symlink) and what it
    /// weighs: a file's size, or for a folder the size of everything under
    /// it (symlinks counted as links), walked at the moment of use; a tree
    /// deeper than [`MAX_DEPTH`] is [`StorageError::TooDeep`].
    pub fn entry_size(&self, p: &UserPath) -> Result<(Kind, u64), StorageError> {
        let meta = self.symlink_metadata(p)?;
        let kind = Kind::of_metadata(&meta);
        let size = match kind {
            Kind::Dir => self.tree_size(p, MAX_DEPTH)?.bytes,
            _ => meta.len(),
        };
        Ok((kind, size))
    }

    /// Moves the trashed entry `from` back to `to` (never over anything;
    /// with `free_name`, to the first free ` (n)` name after `to` instead),
    /// then removes the trash folders it leaves empty. The name used, or
    /// `Ok(None)` when every name up to the bound is taken.
    ///
    /// A folder whose tree would then reach more than [`MAX_DEPTH`] levels
    /// below the root is refused ([`StorageError::TooDeep`], naming `to`):
    /// restoring a deep folder into a deep place was how a tree too deep to
    /// walk could be made with the API alone. A file, or anything at a
    /// shallow place, passes at the cost of one walk of the item.
    pub fn restore_from_trash(
        &self,
        from: &UserPath,
        to: &UserPath,
        free_name: bool,
    ) -> Result<Option<UserPath>, StorageError> {
        self.check_trash()?;
        if self.symlink_metadata(from).is_ok_and(|meta| meta.is_dir()) {
            let level = to.components().count();
            // The errors of a walk name the folder where it was to go, as
            // the request did.
            self.tree_size(from, MAX_DEPTH.saturating_sub(level))
                .map_err(|e| match e {
                    StorageError::TooDeep { limit, .. } => StorageError::TooDeep {
                        limit,
                        folder: to.clone(),
                    },
                    StorageError::FolderChanged { .. } => {
                        StorageError::FolderChanged { folder: to.clone() }
                    }
                    other => other,
                })?;
        }
        let restored = if free_name {
            self.rename_to_free_name(from, to)?
        } else {
            self.rename_noreplace(from, to)?;
            Some(to.clone())
        };
        if restored.is_some() {
            self.remove_empty_trash_folders(from);
        }
        Ok(restored)
    }

    /// Deletes the entry `p`, strictly inside `.trash`, for good: a folder
    /// with everything in it, never following symlinks, at any depth
    /// ([`UserRoot::remove_tree`]); then the trash folders it leaves empty.
    /// Already gone is fine.
    pub fn purge_from_trash(&self, p: &UserPath) -> Result<(), StorageError> {
        let trash = trash_folder();
        if !p.starts_with(&trash) || *p == trash {
            return Err(StorageError::Invalid(format!("{p} is not inside .trash")));
        }
        self.check_trash()?;
        self.remove_tree(p)?;
        self.remove_empty_trash_folders(p);
        Ok(())
    }

    /// Removes the now empty folders between `p` and the trash folder.
    fn remove_empty_trash_folders(&self, p: &UserPath) {
        let trash = trash_folder();
        let mut current = p.parent();
        while let Some(folder) = current {
            if folder == trash || !folder.starts_with(&trash) {
                break;
            }
            if !matches!(self.remove_dir_if_empty(&folder), Ok(true)) {
                break;
            }
            current = folder.parent();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn p(s: &str) -> UserPath {
        UserPath::parse(s).unwrap()
    }

    fn root() -> (tempfile::TempDir, UserRoot) {
        let tmp = tempfile::tempdir().unwrap();
        let root = UserRoot::open(tmp.path(), uuid::Uuid::new_v4()).unwrap();
        (tmp, root)
    }

    #[test]
    fn a_trash_that_is_not_a_folder_is_refused() {
        let (tmp, root) = root();
        root.check_trash().unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.path().join(".trash")).unwrap();
        assert!(matches!(
            root.check_trash(),
            Err(StorageError::TrashNotAFolder)
        ));
        assert!(matches!(
            root.purge_from_trash(&p(".trash/x/y")),
            Err(StorageError::TrashNotAFolder)
        ));
    }

    #[test]
    fn entries_are_measured_without_following_symlinks() {
        let (tmp, root) = root();
        fs::create_dir_all(root.path().join("d/e")).unwrap();
        fs::write(root.path().join("d/a"), b"12345").unwrap();
        fs::write(root.path().join("d/e/b"), b"123").unwrap();
        fs::write(tmp.path().join("big"), vec![0; 10_000]).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("big"), root.path().join("d/link")).unwrap();
        let (kind, size) = root.entry_size(&p("d")).unwrap();
        let link_len = fs::symlink_metadata(root.path().join("d/link"))
            .unwrap()
            .len();
        assert_eq!((kind, size), (Kind::Dir, 8 + link_len));
        assert_eq!(root.entry_size(&p("d/a")).unwrap(), (Kind::File, 5));
        assert_eq!(
            root.entry_size(&p("d/link")).unwrap(),
            (Kind::Symlink, link_len)
        );
    }

    #[test]
    fn restore_never_replaces_and_tidies_the_trash() {
        let (_tmp, root) = root();
        fs::create_dir_all(root.path().join(".trash/1")).unwrap();
        fs::create_dir_all(root.path().join(".trash/2")).unwrap();
        fs::write(root.path().join(".trash/1/a.txt"), b"one").unwrap();
        fs::write(root.path().join(".trash/2/a.txt"), b"two").unwrap();
        fs::write(root.path().join("a.txt"), b"here").unwrap();
        let err = root
            .restore_from_trash(&p(".trash/1/a.txt"), &p("a.txt"), false)
            .unwrap_err();
        assert!(matches!(err, StorageError::DestinationExists), "{err:?}");
        assert!(root.path().join(".trash/1/a.txt").exists());
        let restored = root
            .restore_from_trash(&p(".trash/1/a.txt"), &p("a.txt"), true)
            .unwrap();
        assert_eq!(restored, Some(p("a (1).txt")));
        assert_eq!(fs::read(root.path().join("a.txt")).unwrap(), b"here");
        assert_eq!(fs::read(root.path().join("a (1).txt")).unwrap(), b"one");
        // The item's folder went with it; the trash and other items stay.
        assert!(!root.path().join(".trash/1").exists());
        assert!(root.path().join(".trash/2/a.txt").exists());
        let err = root
            .restore_from_trash(&p(".trash/1/a.txt"), &p("b.txt"), false)
            .unwrap_err();
        assert!(matches!(err, StorageError::SourceMissing), "{err:?}");
    }

    #[test]
    fn purge_removes_only_inside_the_trash() {
        let (tmp, root) = root();
        fs::create_dir_all(root.path().join(".trash/1/dir/sub")).unwrap();
        fs::write(root.path().join(".trash/1/dir/sub/f"), b"x").unwrap();
        fs::write(tmp.path().join("outside"), b"keep").unwrap();
        std::os::unix::fs::symlink(
            tmp.path().join("outside"),
            root.path().join(".trash/1/dir/l"),
        )
        .unwrap();
        root.purge_from_trash(&p(".trash/1/dir")).unwrap();
        assert!(!root.path().join(".trash/1").exists());
        assert!(root.path().join(".trash").is_dir());
        assert_eq!(fs::read(tmp.path().join("outside")).unwrap(), b"keep");
        // Already gone is fine; the trash itself or anything else is not purged.
        root.purge_from_trash(&p(".trash/1/dir")).unwrap();
        fs::write(root.path().join("mine.txt"), b"mine").unwrap();
        for path in [".trash", "mine.txt", ""] {
            assert!(
                matches!(
                    root.purge_from_trash(&p(path)),
                    Err(StorageError::Invalid(_))
                ),
                "{path}"
            );
        }
        assert!(root.path().join("mine.txt").exists());
    }
}
