//! [`NewFile`]: a file written beside its destination and published only
//! once it is complete and durable (uploads).
//!
//! The bytes go to a temporary file, `.fileorg-tmp-<uuid>`
//! ([`TEMP_PREFIX`]), created exclusively in the destination folder, so that
//! publishing is a rename that never crosses a filesystem and a reader never
//! sees half a file under the real name. [`NewFile::sync`] makes the content
//! durable; [`NewFile::publish`] renames it with `RENAME_NOREPLACE` (never
//! over an existing file) and fsyncs the folder, so the name survives a
//! crash too.
//!
//! A `NewFile` dropped unpublished removes its temporary file and the
//! folders it created for itself (if still empty): a failed upload, a client
//! that goes away midway or a server shutting down leave nothing behind. A
//! crash leaves at worst the temporary file, which
//! [`UserRoot::sweep_temp_files`] removes once abandoned
//! ([`super::abandoned_after`]).
//!
//! Everything goes through the destination folder's descriptor, opened once
//! beneath the root: the temporary file is created, renamed and removed by
//! one-component names relative to it.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;

use cap_std::fs::Dir;

use super::error::StorageError;
use super::names::find_free_name;
use super::path::UserPath;
use super::root::{Folder, UserRoot};
use super::{TEMP_PREFIX, copy, sys};

/// Permission bits of a new file (before the umask): readable by others on
/// the server, like any file a user would save.
const NEW_FILE_MODE: u32 = 0o644;

/// A file being written for `path`; see the module docs.
pub struct NewFile {
    root: Arc<UserRoot>,
    /// Where the file goes.
    path: UserPath,
    /// The destination folder, once it exists and the temporary file is in it.
    dir: Option<Dir>,
    /// The temporary file's name in `dir`.
    temp_name: String,
    /// Open for writing until published.
    file: Option<std::fs::File>,
    /// Folders created for this file, outermost first.
    created: Vec<UserPath>,
    published: bool,
    /// Whether publishing fsyncs the folder (see [`NewFile::defer_folder_sync`]).
    sync_folder: bool,
}

impl NewFile {
    /// Starts a file destined for `path` (not the root): creates the
    /// missing folders on the way (remembered, to be removed again if the
    /// file is abandoned) and the temporary file in the destination folder.
    pub fn create(root: Arc<UserRoot>, path: &UserPath) -> Result<NewFile, StorageError> {
        NewFile::begin(root, path, |dir, temp_name| {
            Ok(std::fs::File::from(sys::create_excl(
                dir,
                temp_name,
                NEW_FILE_MODE,
            )?))
        })
    }

    /// [`create`](NewFile::create) in a folder the caller holds open
    /// already (`folder`, opened beneath the root with
    /// [`UserRoot::open_folder`]; `path` names a file of it): nothing is
    /// looked up or created on the way, the temporary file goes straight
    /// into that folder and is published there, like the file of `create`
    /// goes into the folder it opened. For many files in few folders
    /// (archive imports), where walking every path from the root again was
    /// most of the cost of a small file.
    pub fn create_in(
        root: Arc<UserRoot>,
        folder: &Folder,
        path: &UserPath,
    ) -> Result<NewFile, StorageError> {
        if path.parent().is_none() {
            return Err(StorageError::Invalid("the root itself".into()));
        }
        let dir = folder.try_clone_dir()?;
        let temp_name = format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let file = std::fs::File::from(sys::create_excl(&dir, &temp_name, NEW_FILE_MODE)?);
        Ok(NewFile {
            root,
            path: path.clone(),
            dir: Some(dir),
            temp_name,
            file: Some(file),
            created: Vec::new(),
            published: false,
            sync_folder: true,
        })
    }

    /// [`create`](NewFile::create) with `make` putting the temporary file
    /// (named by its second argument) into the destination folder and
    /// returning it open for writing.
    pub(super) fn begin(
        root: Arc<UserRoot>,
        path: &UserPath,
        make: impl FnOnce(&Dir, &str) -> Result<std::fs::File, StorageError>,
    ) -> Result<NewFile, StorageError> {
        let parent = path
            .parent()
            .ok_or_else(|| StorageError::Invalid("the root itself".into()))?;
        let mut created = Vec::new();
        let mut prefix = UserPath::root();
        for component in parent.components() {
            prefix = prefix.join(component)?;
            if !created.is_empty() || !root.exists(&prefix)? {
                created.push(prefix.clone());
            }
        }
        // From here on, dropping `new` undoes what was done.
        let mut new = NewFile {
            root,
            path: path.clone(),
            dir: None,
            temp_name: format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple()),
            file: None,
            created,
            published: false,
            sync_folder: true,
        };
        new.root.create_dir_all(&parent)?;
        let dir = new.root.open_dir(&parent)?;
        let file = make(&dir, &new.temp_name);
        new.dir = Some(dir);
        new.file = Some(file?);
        Ok(new)
    }

    /// Where the file goes unless [`publish_under_free_name`] picks another
    /// name.
    ///
    /// [`publish_under_free_name`]: NewFile::publish_under_free_name
    pub fn path(&self) -> &UserPath {
        &self.path
    }

    /// The file already stored with this one's content (`size` bytes of
    /// blake3 `hash`) under one of the names [`publish_under_free_name`]
    /// would try: its path and its ` (n)` variants up to the first free one
    /// ([`UserRoot::find_identical`]). The one rule of SKIP_IF_IDENTICAL,
    /// for single uploads and archive entries alike: a match is not
    /// published (nothing is copied); otherwise the file is published under
    /// a free name (nothing is overwritten).
    ///
    /// [`publish_under_free_name`]: NewFile::publish_under_free_name
    pub fn identical_stored(
        &self,
        size: u64,
        hash: &[u8; 32],
    ) -> Result<Option<UserPath>, StorageError> {
        self.root.find_identical(&self.path, size, hash)
    }

    /// Appends `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        Ok(self.file()?.write_all(bytes)?)
    }

    /// Sets the file's modification time (`futimens`), after the last
    /// write (which would bump it) and before publication, so the file
    /// never appears with another time.
    pub fn set_modified(&mut self, time: std::time::SystemTime) -> Result<(), StorageError> {
        Ok(self.file()?.set_modified(time)?)
    }

    /// Closes the file: nothing more will be written, and it holds no
    /// descriptor of its own until it is published. What was written must
    /// still be made durable before that, by [`UserRoot::sync_filesystem`]
    /// (which reaches closed files too; [`NewFile::sync`] needs it open).
    pub fn finish_writing(&mut self) {
        drop(self.file.take());
    }

    /// Leaves the folder's fsync after publishing to the caller, who makes
    /// many files durable at once with [`UserRoot::sync_filesystem`]
    /// (archive imports: one `syncfs` per batch instead of two fsyncs per
    /// file). Until then the content must have been made durable the same
    /// way, before publishing: a published name must never lead to a file
    /// whose bytes a crash can lose.
    pub fn defer_folder_sync(&mut self) {
        self.sync_folder = false;
    }

    /// Makes everything written so far durable (`fsync`).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        Ok(self.file()?.sync_all()?)
    }

    /// Publishes the file under its path, never replacing anything: a taken
    /// name is [`StorageError::DestinationExists`] (and the file is
    /// abandoned).
    pub fn publish(self) -> Result<UserPath, StorageError> {
        let path = self.path.clone();
        self.publish_as(|publish| Ok(publish(&path)?.then_some(path.clone())))?
            .ok_or(StorageError::DestinationExists)
    }

    /// Publishes the file under its path or, when that is taken, the first
    /// free ` (n)` name after it ([`find_free_name`]), each claimed by the
    /// no-replace rename itself. `Ok(None)` (the file abandoned) when every
    /// name up to the bound is taken.
    pub fn publish_under_free_name(self) -> Result<Option<UserPath>, StorageError> {
        let path = self.path.clone();
        self.publish_as(|publish| find_free_name(&path, publish))
    }

    /// Runs `choose` with a function that publishes under a given name of
    /// the destination folder (`Ok(false)`: taken), then makes the new name
    /// durable.
    fn publish_as(
        mut self,
        choose: impl FnOnce(
            &mut dyn FnMut(&UserPath) -> Result<bool, StorageError>,
        ) -> Result<Option<UserPath>, StorageError>,
    ) -> Result<Option<UserPath>, StorageError> {
        // Closed first: nothing is written after publication.
        drop(self.file.take());
        let folder = self.path.parent().expect("not the root");
        let dir = self.dir.take().expect("created with its folder");
        let temp_name = &self.temp_name;
        let mut publish = |candidate: &UserPath| {
            let name = match candidate.split_last() {
                Some((parent, name)) if parent == folder => name,
                _ => {
                    return Err(StorageError::Invalid(
                        "a new file is published in its own folder".into(),
                    ));
                }
            };
            match copy::publish(dir.as_fd(), temp_name, name) {
                Ok(()) => Ok(true),
                Err(StorageError::DestinationExists) => Ok(false),
                Err(e) => Err(e),
            }
        };
        let published = choose(&mut publish);
        if let Ok(Some(_)) = published {
            self.published = true;
            if !self.sync_folder {
                // The caller syncs the whole filesystem afterwards.
            } else if let Err(e) = sys::fsync_dir(&dir) {
                // The file is there; only its durability across a crash is
                // in doubt, which is no reason to fail the request.
                tracing::warn!(
                    folder = %folder,
                    error = %e,
                    "could not fsync a folder after publishing a new file"
                );
            }
        }
        // Unpublished, the drop removes the temporary file through it.
        self.dir = Some(dir);
        published
    }

    fn file(&mut self) -> Result<&mut std::fs::File, StorageError> {
        self.file
            .as_mut()
            .ok_or_else(|| StorageError::Invalid("the new file is already published".into()))
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if self.published {
            return;
        }
        drop(self.file.take());
        if let Some(dir) = &self.dir
            && let Err(e) = sys::unlink_at(dir, &self.temp_name)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                path = %self.path,
                temp = %self.temp_name,
                error = %e,
                "could not remove an abandoned new file"
            );
        }
        for folder in self.created.iter().rev() {
            let _ = self.root.remove_dir_if_empty(folder);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;

    fn p(s: &str) -> UserPath {
        UserPath::parse(s).unwrap()
    }

    fn root() -> (tempfile::TempDir, Arc<UserRoot>) {
        let tmp = tempfile::tempdir().unwrap();
        let root = UserRoot::open(tmp.path(), uuid::Uuid::new_v4()).unwrap();
        (tmp, Arc::new(root))
    }

    /// Names in `dir` (relative to the root), sorted.
    fn names(root: &UserRoot, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(root.path().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_new_file_appears_only_when_published() {
        let (_tmp, root) = root();
        let mut new = NewFile::create(root.clone(), &p("a/b/c.txt")).unwrap();
        new.write_all(b"hello ").unwrap();
        new.write_all(b"world").unwrap();
        let listed = names(&root, "a/b");
        assert_eq!(listed.len(), 1);
        assert!(listed[0].starts_with(TEMP_PREFIX), "{listed:?}");
        new.sync().unwrap();
        assert_eq!(new.publish().unwrap(), p("a/b/c.txt"));
        assert_eq!(names(&root, "a/b"), ["c.txt"]);
        assert_eq!(
            fs::read(root.path().join("a/b/c.txt")).unwrap(),
            b"hello world"
        );
    }

    #[test]
    fn publishing_never_replaces() {
        let (_tmp, root) = root();
        fs::create_dir(root.path().join("d")).unwrap();
        fs::write(root.path().join("d/x.txt"), b"old").unwrap();
        fs::write(root.path().join("d/x (1).txt"), b"older").unwrap();
        let mut new = NewFile::create(root.clone(), &p("d/x.txt")).unwrap();
        new.write_all(b"new").unwrap();
        let err = new.publish().unwrap_err();
        assert!(matches!(err, StorageError::DestinationExists), "{err:?}");
        // The refused file was abandoned: no temporary file is left.
        assert_eq!(names(&root, "d"), ["x (1).txt", "x.txt"]);

        let mut new = NewFile::create(root.clone(), &p("d/x.txt")).unwrap();
        new.write_all(b"new").unwrap();
        assert_eq!(
            new.publish_under_free_name().unwrap(),
            Some(p("d/x (2).txt"))
        );
        let read = |n: &str| fs::read(root.path().join("d").join(n)).unwrap();
        assert_eq!(
            (read("x.txt"), read("x (1).txt"), read("x (2).txt")),
            (b"old".to_vec(), b"older".to_vec(), b"new".to_vec())
        );
    }

    #[test]
    fn an_abandoned_file_leaves_nothing_behind() {
        let (_tmp, root) = root();
        fs::create_dir(root.path().join("kept")).unwrap();
        let mut new = NewFile::create(root.clone(), &p("kept/made/deeper/f.bin")).unwrap();
        new.write_all(&[7; 1000]).unwrap();
        assert!(root.path().join("kept/made/deeper").is_dir());
        drop(new);
        // The folders it made are gone, the one that was there is not.
        assert_eq!(names(&root, "kept"), Vec::<String>::new());
        assert!(!Path::new(&root.path().join("kept/made")).exists());
    }

    #[test]
    fn a_new_file_in_an_open_folder_is_published_there_and_never_over_a_file() {
        let (_tmp, root) = root();
        fs::create_dir_all(root.path().join("in/box")).unwrap();
        fs::write(root.path().join("in/box/taken.txt"), b"old").unwrap();
        let folder = root.open_folder(&p("in/box")).unwrap();
        assert!(folder.has("taken.txt").unwrap());
        assert!(!folder.has("new.txt").unwrap());
        let mut new = NewFile::create_in(root.clone(), &folder, &p("in/box/new.txt")).unwrap();
        new.write_all(b"new").unwrap();
        let listed = names(&root, "in/box");
        assert!(
            listed.iter().any(|n| n.starts_with(TEMP_PREFIX)),
            "{listed:?}"
        );
        assert_eq!(new.publish().unwrap(), p("in/box/new.txt"));
        let mut taken = NewFile::create_in(root.clone(), &folder, &p("in/box/taken.txt")).unwrap();
        taken.write_all(b"newer").unwrap();
        assert!(matches!(
            taken.publish(),
            Err(StorageError::DestinationExists)
        ));
        // The refused one left nothing behind; the old file is untouched.
        assert_eq!(names(&root, "in/box"), ["new.txt", "taken.txt"]);
        assert_eq!(
            fs::read(root.path().join("in/box/taken.txt")).unwrap(),
            b"old"
        );
        // An abandoned one is removed, the folder (not made by it) stays.
        let mut dropped = NewFile::create_in(root.clone(), &folder, &p("in/box/gone.txt")).unwrap();
        dropped.write_all(b"x").unwrap();
        drop(dropped);
        assert_eq!(names(&root, "in/box"), ["new.txt", "taken.txt"]);
        assert!(matches!(
            NewFile::create_in(root.clone(), &folder, &UserPath::root()),
            Err(StorageError::Invalid(_))
        ));
    }

    #[test]
    fn a_new_file_stays_beneath_the_root() {
        let (tmp, root) = root();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.path().join("out")).unwrap();
        let Err(err) = NewFile::create(root.clone(), &p("out/x.txt")) else {
            panic!("a folder through a symlink outside must be refused");
        };
        assert!(matches!(err, StorageError::Escape), "{err:?}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        assert!(matches!(
            NewFile::create(root.clone(), &UserPath::root()),
            Err(StorageError::Invalid(_))
        ));
    }
}
