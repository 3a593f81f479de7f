//! Where archive entries land: folders made and files written through
//! `storage` only (each file a [`NewFile`]: a temporary file in its folder,
//! published with a no-replace rename under the conflict policy), the quota
//! reserved as bytes are written, and the tally the response reports.
//!
//! Files go into their folder through a handle: the folder of the last file
//! is kept open (archives list a folder's files together), so a file costs
//! a lookup of its one name and the creation of its temporary file, not a
//! walk of its whole path from the root for each step (measured: 30
//! system calls per small file before, most of them `openat2` and `statx`
//! of the same folders again). The handle is dropped at every batch, like
//! the handles the pending files keep until they are published.
//!
//! Durability in batches: an fsync per file costs 3.7 ms here, which would
//! make a 10,000-file archive take 40 s of fsyncs alone. Complete files wait
//! (unpublished, under their temporary names) until [`BATCH_FILES`] of them
//! or [`BATCH_BYTES`] are there; then one `syncfs` makes all their bytes
//! durable, and only then are they published. A name therefore never leads
//! to bytes a crash could lose, as with single uploads. A last `syncfs`
//! after the last publication makes the names durable before the import
//! answers.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use super::meter::Meter;
use super::shared::{Failure, Imported, QuotaBudget};
use crate::domain::FileConflictPolicy;
use crate::domain::archive::{SkipReason, SkippedEntry};
use crate::storage::{
    Fingerprint, Folder, NewFile, StorageError, UserPath, UserRoot, names::MAX_SUFFIX,
};

/// Complete files kept unpublished before one `syncfs` (each holds one
/// descriptor until then, its folder's; the server raises its limit on
/// open files at start-up, `infra::open_files`). Measured (BENCHMARKS.md,
/// "importing a 10,000-file archive"): at 256 a 10,000-file import paid
/// for 40 `syncfs`, the largest part of what it took beyond `tar -x`.
const BATCH_FILES: usize = 1024;
/// Bytes of complete files kept unpublished before one `syncfs`.
const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// Quota is reserved in blocks of this size (one database update each),
/// not per file; what is left unused is given back at the end.
const RESERVE_BLOCK: u64 = 64 * 1024 * 1024;
/// Skipped and renamed entries listed in the response (all are counted).
pub(crate) const MAX_LISTED: usize = 1000;
/// Files that may be taken back later ([`Sink::track_small_files`]) are at
/// most this large (a symlink's target is at most `PATH_MAX`)…
const SMALL_FILE: u64 = 4096;
/// …and at most this many are remembered (about 100 bytes each).
const MAX_TRACKED: usize = 100_000;
/// Size of one read from an entry.
const COPY_BUFFER: usize = 256 * 1024;

/// A complete file waiting for the batch's `syncfs`.
struct Pending {
    file: NewFile,
    /// The entry's name in the archive.
    name: String,
    size: u64,
    /// The content's blake3 hash (SKIP_IF_IDENTICAL only).
    hash: Option<blake3::Hash>,
}

/// Where a file entry can go.
enum Place {
    Open(Folder),
    /// Nowhere: skip the entry for this reason.
    Refused(SkipReason, String),
}

pub(crate) struct Sink<'b> {
    root: Arc<UserRoot>,
    policy: FileConflictPolicy,
    budget: &'b mut dyn QuotaBudget,
    meter: Rc<Meter>,
    /// Folders known to exist (made or found), so each is checked once.
    known: HashSet<UserPath>,
    /// The folder the last file went to, open, until the next batch.
    open: Option<(UserPath, Folder)>,
    pending: Vec<Pending>,
    /// The paths of `pending`, for the FAIL policy's early check.
    pending_paths: HashSet<UserPath>,
    pending_bytes: u64,
    /// Quota reserved so far, and how much of it stored or pending files use.
    reserved: u64,
    used: u64,
    pub(crate) tally: Imported,
    buffer: Vec<u8>,
    /// Small published files by entry name, when tracked: where they went
    /// and what they were then.
    small: Option<HashMap<String, (UserPath, Fingerprint)>>,
}

impl<'b> Sink<'b> {
    pub(crate) fn new(
        root: Arc<UserRoot>,
        policy: FileConflictPolicy,
        budget: &'b mut dyn QuotaBudget,
        meter: Rc<Meter>,
        tally: Imported,
    ) -> Sink<'b> {
        Sink {
            root,
            policy,
            budget,
            meter,
            known: HashSet::new(),
            open: None,
            pending: Vec::new(),
            pending_paths: HashSet::new(),
            pending_bytes: 0,
            reserved: 0,
            used: 0,
            tally,
            buffer: vec![0; COPY_BUFFER],
            small: None,
        }
    }

    /// Remembers where small files are published, so that
    /// [`Sink::take_back`] can remove them again (zip: an entry's type is
    /// only known from the central directory, after its data).
    pub(crate) fn track_small_files(&mut self) {
        self.small = Some(HashMap::new());
    }

    /// Removes the stored file of entry `name` again (if it was tracked and
    /// is unchanged since) and lists the entry as skipped instead.
    pub(crate) fn take_back(
        &mut self,
        name: &str,
        reason: SkipReason,
        detail: &str,
    ) -> Result<(), Failure> {
        let Some((path, fingerprint)) = self.small.as_mut().and_then(|s| s.remove(name)) else {
            return Ok(());
        };
        if self
            .root
            .remove_file_if_unchanged(&path, &fingerprint)
            .map_err(Failure::Storage)?
        {
            self.tally.files -= 1;
            self.tally.bytes -= fingerprint.size;
            self.used -= fingerprint.size;
            self.skip(name, reason, format!("{detail}; {path} was removed again"));
        }
        Ok(())
    }

    /// Records an entry that is not stored.
    pub(crate) fn skip(&mut self, name: &str, reason: SkipReason, detail: impl Into<String>) {
        self.tally.skipped_count += 1;
        if self.tally.skipped.len() < MAX_LISTED {
            self.tally.skipped.push(SkippedEntry {
                name: name.to_string(),
                reason,
                detail: detail.into(),
            });
        }
    }

    /// The error an entry's read failed with, as the meter knows it.
    pub(crate) fn read_failure(&self, error: io::Error) -> Failure {
        Failure::from_read(&self.meter, error)
    }

    /// Makes `folder` and its missing ancestors. `Ok(Some(..))` when it
    /// cannot be a folder here (a file in the way, a symlink leading out).
    fn ensure_folder(
        &mut self,
        folder: &UserPath,
    ) -> Result<Option<(SkipReason, String)>, StorageError> {
        if self.known.contains(folder) {
            return Ok(None);
        }
        let mut prefix = UserPath::root();
        for component in folder.components() {
            prefix = prefix.join(component)?;
            if self.known.contains(&prefix) {
                continue;
            }
            match self.root.metadata(&prefix) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Ok(Some((
                        SkipReason::NotAFolder,
                        format!("{prefix} is a file, not a folder"),
                    )));
                }
                Err(StorageError::NotFound(_)) => {
                    self.root.create_dir_all(&prefix)?;
                    self.tally.folders += 1;
                }
                Err(StorageError::Escape) => {
                    return Ok(Some((
                        SkipReason::UnsafePath,
                        format!("{prefix} leads outside your storage"),
                    )));
                }
                Err(e) => return Err(e),
            }
            self.known.insert(prefix.clone());
        }
        Ok(None)
    }

    /// The open handle of `folder` (made first if missing), taken out of
    /// [`Sink::open`] or opened beneath the root; the caller puts it back.
    fn open_folder(&mut self, folder: &UserPath) -> Result<Place, StorageError> {
        if let Some((open, _)) = &self.open
            && open == folder
        {
            return Ok(Place::Open(self.open.take().expect("just seen").1));
        }
        self.open = None;
        // Twice at most: a folder known to exist may have been removed since
        // (by the user, meanwhile); it is then made again.
        for _ in 0..2 {
            if let Some((reason, detail)) = self.ensure_folder(folder)? {
                return Ok(Place::Refused(reason, detail));
            }
            match self.root.open_folder(folder) {
                Ok(open) => return Ok(Place::Open(open)),
                Err(StorageError::NotFound(_)) => self.known.clear(),
                Err(StorageError::Escape) => {
                    return Ok(Place::Refused(
                        SkipReason::UnsafePath,
                        "leads outside your storage".to_string(),
                    ));
                }
                Err(e @ StorageError::NotADirectory(_)) => {
                    return Ok(Place::Refused(SkipReason::NotAFolder, e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        self.root.open_folder(folder).map(Place::Open)
    }

    /// A folder entry (and the target folder itself).
    pub(crate) fn folder(&mut self, name: &str, path: &UserPath) -> Result<(), Failure> {
        if let Some((reason, detail)) = self.ensure_folder(path).map_err(Failure::Storage)? {
            self.skip(name, reason, detail);
        }
        Ok(())
    }

    /// Drains what is left of a skipped entry (its bytes still count
    /// against the limits).
    pub(crate) fn drain(&mut self, content: &mut dyn Read) -> Result<(), Failure> {
        io::copy(content, &mut io::sink())
            .map(drop)
            .map_err(|e| self.read_failure(e))
    }

    fn skip_and_drain(
        &mut self,
        name: &str,
        reason: SkipReason,
        detail: impl Into<String>,
        content: &mut dyn Read,
    ) -> Result<(), Failure> {
        self.skip(name, reason, detail);
        self.drain(content)
    }

    /// A file entry: its content is read to the end (stored or drained).
    /// `size`, when the archive announces it, must be exactly what arrives.
    pub(crate) fn file(
        &mut self,
        name: &str,
        path: &UserPath,
        size: Option<u64>,
        mtime: Option<SystemTime>,
        content: &mut dyn Read,
    ) -> Result<(), Failure> {
        let (parent, file_name) = path.split_last().expect("an entry is below the target");
        let folder = match self.open_folder(&parent).map_err(Failure::Storage)? {
            Place::Open(folder) => folder,
            Place::Refused(reason, detail) => {
                return self.skip_and_drain(name, reason, detail, content);
            }
        };
        if self.policy == FileConflictPolicy::FailIfExists {
            let taken = self.pending_paths.contains(path)
                || folder.has(file_name).map_err(Failure::Storage)?;
            if taken {
                self.open = Some((parent, folder));
                return self.skip_and_drain(
                    name,
                    SkipReason::AlreadyExists,
                    format!("{path} already exists; nothing is overwritten"),
                    content,
                );
            }
        }
        let created = NewFile::create_in(self.root.clone(), &folder, path);
        self.open = Some((parent, folder));
        let mut file = created.map_err(Failure::Storage)?;
        file.defer_folder_sync();
        let mut written = 0u64;
        let mut hasher =
            (self.policy == FileConflictPolicy::SkipIfIdentical).then(blake3::Hasher::new);
        let copied = self.copy(content, &mut file, &mut written, hasher.as_mut());
        if let Err(failure) = copied {
            // The partial file is dropped (removed); its bytes are free again.
            self.used -= written;
            return Err(failure);
        }
        if let Some(size) = size
            && written != size
        {
            self.used -= written;
            return Err(Failure::Corrupt(format!(
                "entry {name} is cut short: {written} of its {size} bytes arrived"
            )));
        }
        if let Some(time) = mtime
            && let Err(e) = file.set_modified(time)
        {
            self.used -= written;
            return Err(Failure::Storage(e));
        }
        // Written: its descriptor is not needed until publication (the
        // batch's `syncfs` reaches closed files too), so a pending file
        // keeps one descriptor (its folder's), not two.
        file.finish_writing();
        self.pending_paths.insert(path.clone());
        self.pending.push(Pending {
            file,
            name: name.to_string(),
            size: written,
            hash: hasher.map(|h| h.finalize()),
        });
        self.pending_bytes += written;
        if self.pending.len() >= BATCH_FILES || self.pending_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn copy(
        &mut self,
        content: &mut dyn Read,
        file: &mut NewFile,
        written: &mut u64,
        mut hasher: Option<&mut blake3::Hasher>,
    ) -> Result<(), Failure> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = (|| loop {
            let n = match content.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_failure(e)),
            };
            self.reserve(n as u64)?;
            *written += n as u64;
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&buffer[..n]);
            }
            file.write_all(&buffer[..n]).map_err(Failure::Storage)?;
        })();
        self.buffer = buffer;
        result
    }

    /// Counts `n` more bytes against the quota, reserving another block
    /// when the reservation is used up.
    fn reserve(&mut self, n: u64) -> Result<(), Failure> {
        if self.used + n > self.reserved {
            let need = self.used + n - self.reserved;
            let block = need.max(RESERVE_BLOCK);
            let got = if self.budget.reserve(block).map_err(Failure::Budget)? {
                block
            } else if block > need && self.budget.reserve(need).map_err(Failure::Budget)? {
                need
            } else {
                return Err(Failure::Quota(format!(
                    "the archive's files need more than your free storage quota; {} files \
                     ({} bytes) were stored before it ran out",
                    self.tally.files + self.pending.len() as u64,
                    self.tally.bytes + self.pending_bytes
                )));
            };
            self.reserved += got;
        }
        self.used += n;
        Ok(())
    }

    /// Makes the pending files durable (one `syncfs`) and publishes them.
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.open = None;
        self.root.sync_filesystem().map_err(Failure::Storage)?;
        let pending = std::mem::take(&mut self.pending);
        self.pending_paths.clear();
        self.pending_bytes = 0;
        for file in pending {
            self.publish(file)?;
        }
        Ok(())
    }

    fn publish(&mut self, pending: Pending) -> Result<(), Failure> {
        let wanted = pending.file.path().clone();
        if let Some(hash) = pending.hash
            && let Some(existing) = pending
                .file
                .identical_stored(pending.size, hash.as_bytes())
                .map_err(Failure::Storage)?
        {
            // Dropped unpublished: nothing copied, its bytes are free again.
            self.used -= pending.size;
            self.skip(
                &pending.name,
                SkipReason::Identical,
                format!("the same content is already stored as {existing}"),
            );
            return Ok(());
        }
        let stored = match self.policy {
            FileConflictPolicy::FailIfExists => pending.file.publish().map(Some),
            // SKIP_IF_IDENTICAL found no identical file: keep both.
            FileConflictPolicy::Rename | FileConflictPolicy::SkipIfIdentical => {
                pending.file.publish_under_free_name()
            }
        };
        match stored {
            Ok(Some(path)) => {
                self.tally.files += 1;
                self.tally.bytes += pending.size;
                if pending.size <= SMALL_FILE
                    && let Some(small) = self.small.as_mut()
                    && small.len() < MAX_TRACKED
                {
                    let fingerprint = self.root.fingerprint(&path).map_err(Failure::Storage)?;
                    small.insert(pending.name.clone(), (path.clone(), fingerprint));
                }
                if path != wanted {
                    self.tally.renamed_count += 1;
                    if self.tally.renamed.len() < MAX_LISTED {
                        self.tally.renamed.push((pending.name, path));
                    }
                }
            }
            Ok(None) => {
                self.used -= pending.size;
                self.skip(
                    &pending.name,
                    SkipReason::AlreadyExists,
                    format!("{wanted} and every name up to ({MAX_SUFFIX}) are taken"),
                );
            }
            Err(StorageError::DestinationExists) => {
                self.used -= pending.size;
                self.skip(
                    &pending.name,
                    SkipReason::AlreadyExists,
                    format!("{wanted} already exists; nothing is overwritten"),
                );
            }
            Err(e) => {
                self.used -= pending.size;
                return Err(Failure::Storage(e));
            }
        }
        Ok(())
    }

    /// Publishes what is complete (also after a failure: every complete
    /// entry is kept), makes the names durable and gives back the unused
    /// quota. The first failure wins.
    pub(crate) fn finish(mut self, result: Result<(), Failure>) -> (Imported, Option<Failure>) {
        let flushed = self.flush();
        // Dropped unpublished (after a failed flush): their bytes are free.
        for pending in std::mem::take(&mut self.pending) {
            self.used -= pending.size;
        }
        let synced = self.root.sync_filesystem().map_err(Failure::Storage);
        self.budget.release(self.reserved - self.used);
        let failure = result.err().or(flushed.err()).or(synced.err());
        (std::mem::take(&mut self.tally), failure)
    }
}
