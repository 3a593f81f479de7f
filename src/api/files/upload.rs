//! UploadFile (a client stream), UploadSmallFile (one message) and
//! UploadRawFile (a client stream of HttpBody: the raw REST request body
//! that Envoy streams in as ~1 MiB messages).
//!
//! All write the bytes to a [`NewFile`] (storage's temporary file beside
//! the destination, see `storage::new_file`). When every byte is there: the
//! size must be exactly the announced one, the blake3 hash the expected one
//! (if given), the modification time is set (`futimens`, when the request
//! has one), the file is fsynced, the quota is charged with one
//! conditional UPDATE (so concurrent uploads cannot together overrun it),
//! and only then is the file published with `renameat2(RENAME_NOREPLACE)`
//! (trying ` (1)`, ` (2)`, … under the RENAME policy) and the folder fsynced.
//!
//! SKIP_IF_IDENTICAL: once every byte is there and hashed, the target and
//! its ` (n)` variants up to the first free name are compared (size, then
//! blake3; `UserRoot::find_identical`). A match means the content is
//! already stored: the temp file is dropped, nothing is charged, and the
//! existing file is the answer (`skipped_identical`). Otherwise the upload
//! is stored as under RENAME, so a different file is never overwritten and a
//! retried upload never makes a copy.
//!
//! A raw upload need not announce its size (`size_bytes` 0): the quota is
//! then checked as the bytes arrive, against what was free when it began,
//! and charged exactly at the end.
//!
//! A full disk (`ENOSPC` while creating, writing or fsyncing the temp file)
//! is RESOURCE_EXHAUSTED (see `StorageError::DiskFull`); the quota is
//! only charged after the last byte is durable, so it is left unchanged.
//!
//! A [`NewFile`] dropped unpublished removes its temp file and the folders
//! it created, so a failure, a client that goes away midway, an idle stream
//! or a server shutting down leave nothing behind. Each upload runs in a
//! task of its own: tonic drops the handler when the client resets the
//! stream, and the cleanup must not be cut short. A crash leaves at worst a
//! temp file, which `UserRoot::sweep_temp_files` removes.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use tonic::{Status, Streaming};

use super::{
    super::StreamEnd, Files, OnConflict, blocking, conflict_policy, file_entry, parse_entry_path,
    parse_hash, parse_modify_time,
};
use crate::{
    auth::Principal,
    db::quota::{self, Usage},
    engine::categorize::SNIFF_BYTES,
    error::AppError,
    pb::fileorganizer::v1::{self as pb, ErrorReason, upload_file_request::Data},
    pb::google::api::HttpBody,
    storage::{NewFile, StorageError, UserPath, UserRoot},
};

/// Largest chunk of an UploadFile stream (the contract's limit).
const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// An UploadFile stream that sends nothing for this long is abandoned.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// RetryInfo of a quota error: space has to be freed first.
const QUOTA_RETRY: Duration = Duration::from_secs(60);

pub(super) type UploadResult<T> = Result<T, StreamEnd>;

/// The names of the request fields an upload's errors point at.
pub(super) struct Fields {
    pub(super) path: &'static str,
    pub(super) size: &'static str,
    pub(super) hash: &'static str,
}

const STREAM_FIELDS: Fields = Fields {
    path: "metadata.path",
    size: "metadata.size_bytes",
    hash: "metadata.content_hash",
};
const UNARY_FIELDS: Fields = Fields {
    path: "path",
    size: "content",
    hash: "content_hash",
};
const RAW_FIELDS: Fields = Fields {
    path: "path",
    size: "size_bytes",
    hash: "content_hash",
};

/// What is to be stored where.
pub(super) struct Target {
    pub(super) path: UserPath,
    /// The announced size; `None` for a raw upload that did not say.
    pub(super) size: Option<u64>,
    pub(super) on_conflict: OnConflict,
    pub(super) hash: Option<[u8; 32]>,
    pub(super) modify_time: Option<SystemTime>,
    pub(super) fields: &'static Fields,
}

/// What an upload ended with.
pub(super) struct Stored {
    pub(super) entry: pb::FileEntry,
    /// SKIP_IF_IDENTICAL found the content already there; nothing written.
    pub(super) skipped_identical: bool,
}

/// How the quota of a completed upload is counted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Quota {
    /// Charged now, just before publication (single-request uploads).
    Charge,
    /// Already reserved (an upload session, at CreateUpload); the caller
    /// releases it when nothing was stored.
    Reserved,
}

/// A complete, verified file waiting to be published.
pub(super) struct Complete {
    pub(super) root: Arc<UserRoot>,
    pub(super) file: NewFile,
    pub(super) size: u64,
    pub(super) hash: blake3::Hash,
    /// The first bytes, for categorizing by content.
    pub(super) head: Vec<u8>,
}

pub(super) fn quota_exceeded(size: u64, usage: Usage) -> AppError {
    AppError::exhausted(
        ErrorReason::QuotaExceeded,
        format!(
            "storage quota exceeded: the file needs {size} bytes but only {} of your {} bytes \
             are free ({} used; files in the trash count until EmptyTrash)",
            usage.remaining(),
            usage.quota,
            usage.used
        ),
        QUOTA_RETRY,
    )
}

pub(super) fn already_exists(path: &UserPath) -> AppError {
    AppError::AlreadyExists {
        reason: ErrorReason::AlreadyExists,
        message: format!(
            "{path} already exists; nothing is overwritten (ask for conflict_policy RENAME \
             to store the file under a free name)"
        ),
    }
}

/// What a write on the blocking pool gives back: the file, the hash so
/// far and how the write went.
type InFlight = (NewFile, blake3::Hasher, Result<(), StorageError>);

/// An upload being written to its [`NewFile`].
struct Staged {
    root: Arc<UserRoot>,
    /// Whose byte budget the bytes are counted against.
    user_id: uuid::Uuid,
    files: Files,
    /// The file and the hash of what was written, here between writes and
    /// out in `in_flight` while a chunk is hashed and written.
    file: Option<(NewFile, blake3::Hasher)>,
    /// The last chunk's hashing and write on the blocking pool. One write
    /// is kept in flight, so the next message is received (and checked,
    /// counted) while the last one is hashed and written, instead of the
    /// three taking turns; its result is taken before the next write and
    /// at the end, and a failed write fails the upload then.
    in_flight: Option<tokio::task::JoinHandle<InFlight>>,
    written: u64,
    /// The quota when the upload began: an upload of unknown size may not
    /// grow beyond what was free then.
    usage: Usage,
    /// The first bytes, for categorizing by content.
    head: Vec<u8>,
}

impl Staged {
    /// Checks the quota and the target, creates missing folders and the
    /// temp file.
    async fn begin(files: &Files, principal: &Principal, target: &Target) -> UploadResult<Staged> {
        let usage = {
            let mut conn = files.state.db.get().await?;
            quota::usage(&mut conn, principal.user_id).await?
        };
        if let Some(size) = target.size
            && size > u64::try_from(usage.remaining()).unwrap_or(0)
        {
            return Err(quota_exceeded(size, usage).into());
        }
        let root = files.root(principal)?;
        let path = target.path.clone();
        let on_conflict = target.on_conflict;
        let field = target.fields.path;
        let file_root = root.clone();
        let file = blocking(move || {
            // Refused before a byte is received; publishing checks again.
            if on_conflict == OnConflict::FailIfExists
                && root.exists(&path).map_err(|e| e.at(field))?
            {
                return Err(already_exists(&path));
            }
            Ok(NewFile::create(root, &path).map_err(|e| e.at(field))?)
        })
        .await?;
        Ok(Staged {
            root: file_root,
            user_id: principal.user_id,
            files: files.clone(),
            file: Some((file, blake3::Hasher::new())),
            in_flight: None,
            written: 0,
            usage,
            head: Vec::new(),
        })
    }

    /// Ends an upload that failed: waits for the write in flight, so the
    /// temporary file is gone (dropped with the [`NewFile`]) before the
    /// failure is answered.
    async fn abandon(mut self) {
        if let Some(job) = self.in_flight.take() {
            let _ = job.await;
        }
    }

    /// Waits for the write in flight, if any; its failure is the upload's.
    async fn settle(&mut self, field: &'static str) -> UploadResult<()> {
        if let Some(job) = self.in_flight.take() {
            let (file, hasher, done) = job.await?;
            self.file = Some((file, hasher));
            done.map_err(|e| e.at(field))?;
        }
        Ok(())
    }

    /// Appends `chunk`; more bytes than announced is an error at once.
    async fn write(&mut self, chunk: Vec<u8>, target: &Target) -> UploadResult<()> {
        let total = self.written + chunk.len() as u64;
        if let Some(size) = target.size
            && total > size
        {
            return Err(AppError::invalid(
                target.fields.size,
                format!("the upload carries more than the {size} bytes announced"),
            )
            .into());
        }
        if total > u64::try_from(self.usage.remaining()).unwrap_or(0) {
            return Err(quota_exceeded(total, self.usage).into());
        }
        // Refused before it is written: the NewFile, dropped with the
        // error, takes every byte of the upload with it.
        self.files
            .take_upload_bytes(self.user_id, chunk.len())
            .await?;
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.settle(target.fields.path).await?;
        let (mut file, mut hasher) = self.file.take().expect("held between writes");
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            hasher.update(&chunk);
            let done = file.write_all(&chunk);
            (file, hasher, done)
        }));
        self.written = total;
        Ok(())
    }

    /// After the last message: finishes when every message was received,
    /// else abandons the upload with the failure.
    async fn end(
        self,
        received: UploadResult<()>,
        files: &Files,
        principal: &Principal,
        target: &Target,
    ) -> UploadResult<Stored> {
        match received {
            Ok(()) => self.finish(files, principal, target).await,
            Err(failure) => {
                self.abandon().await;
                Err(failure)
            }
        }
    }

    /// Verifies, charges the quota and publishes.
    async fn finish(
        mut self,
        files: &Files,
        principal: &Principal,
        target: &Target,
    ) -> UploadResult<Stored> {
        self.settle(target.fields.path).await?;
        if let Some(size) = target.size
            && self.written != size
        {
            return Err(AppError::invalid(
                target.fields.size,
                format!(
                    "{size} bytes were announced but the upload ended after {}",
                    self.written
                ),
            )
            .into());
        }
        let (file, hasher) = self.file.take().expect("held between writes");
        let hash = hasher.finalize();
        check_hash(target, &hash)?;
        let complete = Complete {
            root: self.root.clone(),
            file,
            size: self.written,
            hash,
            head: std::mem::take(&mut self.head),
        };
        Ok(complete
            .store(files, principal, target, Quota::Charge)
            .await?)
    }
}

/// DATA_LOSS when the content's hash is not the one the target expects.
pub(super) fn check_hash(target: &Target, hash: &blake3::Hash) -> Result<(), AppError> {
    match target.hash {
        Some(expected) if expected != *hash.as_bytes() => Err(AppError::DataLoss {
            field: target.fields.hash.into(),
            description: "does not match the content received".into(),
            message: format!(
                "the content's blake3 hash is {}, not the expected {}; nothing was stored",
                hash.to_hex(),
                hex::encode(expected)
            ),
        }),
        _ => Ok(()),
    }
}

impl Complete {
    /// Skips it (SKIP_IF_IDENTICAL and the content is already there), or
    /// sets its time, makes it durable, counts it and publishes it.
    pub(super) async fn store(
        self,
        files: &Files,
        principal: &Principal,
        target: &Target,
        quota: Quota,
    ) -> Result<Stored, AppError> {
        let Complete {
            root,
            mut file,
            size,
            hash,
            head,
        } = self;
        let field = target.fields.path;
        if target.on_conflict == OnConflict::SkipIfIdentical {
            let digest = *hash.as_bytes();
            let identical;
            (file, identical) = blocking(move || {
                let identical = file
                    .identical_stored(size, &digest)
                    .map_err(|e| e.at(field))?;
                Ok((file, identical))
            })
            .await?;
            if let Some(existing) = identical {
                drop(file);
                let entry = describe(files, principal, &root, &existing, size, &hash, head).await;
                return Ok(Stored {
                    entry,
                    skipped_identical: true,
                });
            }
        }
        let modify_time = target.modify_time;
        file = blocking(move || {
            if let Some(time) = modify_time {
                file.set_modified(time).map_err(|e| e.at(field))?;
            }
            file.sync().map_err(|e| e.at(field))?;
            Ok(file)
        })
        .await?;

        let charged = i64::try_from(size).unwrap_or(i64::MAX);
        if quota == Quota::Charge {
            let mut conn = files.state.db.get().await?;
            if quota::try_add(&mut conn, principal.user_id, charged)
                .await?
                .is_none()
            {
                let usage = quota::usage(&mut conn, principal.user_id).await?;
                return Err(quota_exceeded(size, usage));
            }
        }
        let path = match publish(file, target).await {
            Ok(path) => path,
            Err(error) => {
                if quota == Quota::Charge {
                    let mut conn = files.state.db.get().await?;
                    quota::release(&mut conn, principal.user_id, charged).await?;
                }
                return Err(error);
            }
        };
        // The file is stored and counted: what follows only describes it, and
        // must not turn a stored upload into an error.
        crate::jobs::automations::files_arrived(&files.state, principal.user_id, &path).await;
        let entry = describe(files, principal, &root, &path, size, &hash, head).await;
        Ok(Stored {
            entry,
            skipped_identical: false,
        })
    }
}

/// The entry of a stored file: its metadata, category (by name, then by
/// `head`) and hash. Never fails: what cannot be read is logged and left
/// out.
async fn describe(
    files: &Files,
    principal: &Principal,
    root: &Arc<UserRoot>,
    path: &UserPath,
    size: u64,
    hash: &blake3::Hash,
    head: Vec<u8>,
) -> pb::FileEntry {
    let categorizer = match files.categorizer(principal).await {
        Ok(categorizer) => categorizer,
        Err(error) => {
            tracing::warn!(%error, "custom categories unavailable; using the built-in ones");
            Default::default()
        }
    };
    let (root, stored) = (root.clone(), path.clone());
    let meta =
        blocking(move || Ok(root.symlink_metadata(&stored).map_err(|e| e.at("path"))?)).await;
    let mut entry = match meta {
        Ok(meta) => file_entry(path.as_str(), &meta, None),
        Err(error) => {
            tracing::warn!(%error, path = %path, "could not stat a stored upload");
            pb::FileEntry {
                path: path.as_str().to_string(),
                name: path.file_name().unwrap_or_default().to_string(),
                kind: pb::FileKind::File as i32,
                size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                ..Default::default()
            }
        }
    };
    entry.category = categorizer
        .categorize(path.as_str(), || Some(head))
        .name()
        .to_string();
    entry.content_hash = hash.to_hex().to_string();
    entry
}

/// Publishes `file` under the target (or, under the RENAME and
/// SKIP_IF_IDENTICAL policies, the first free suffixed name) without ever
/// replacing anything.
async fn publish(file: NewFile, target: &Target) -> Result<UserPath, AppError> {
    let on_conflict = target.on_conflict;
    let field = target.fields.path;
    blocking(move || {
        let wanted = file.path().clone();
        let stored = match on_conflict {
            // SKIP_IF_IDENTICAL found no identical file: keep both.
            OnConflict::Rename | OnConflict::SkipIfIdentical => file.publish_under_free_name(),
            OnConflict::FailIfExists => file.publish().map(Some),
        };
        match stored {
            Ok(Some(stored)) => Ok(stored),
            Ok(None) | Err(StorageError::DestinationExists) => Err(already_exists(&wanted)),
            Err(e) => Err(e.at(field).into()),
        }
    })
    .await
}

/// UploadFile: runs the upload in its own task (see the module docs).
pub(super) async fn upload_stream(
    files: &Files,
    principal: Principal,
    stream: Streaming<pb::UploadFileRequest>,
) -> Result<Stored, Status> {
    let files = files.clone();
    tokio::spawn(async move { receive(&files, &principal, stream).await })
        .await
        .map_err(|e| Status::from(AppError::from(e)))?
        .map_err(Status::from)
}

async fn receive(
    files: &Files,
    principal: &Principal,
    mut stream: Streaming<pb::UploadFileRequest>,
) -> UploadResult<Stored> {
    let metadata = match next_message(files, &mut stream).await? {
        Some(pb::UploadFileRequest {
            data: Some(Data::Metadata(metadata)),
        }) => metadata,
        _ => {
            return Err(AppError::invalid(
                "metadata",
                "the first message of an upload must carry the metadata",
            )
            .into());
        }
    };
    let target = Target {
        path: parse_entry_path(&metadata.path, STREAM_FIELDS.path)?,
        size: Some(
            u64::try_from(metadata.size_bytes)
                .map_err(|_| AppError::invalid(STREAM_FIELDS.size, "must not be negative"))?,
        ),
        on_conflict: conflict_policy(metadata.conflict_policy, "metadata.conflict_policy")?,
        hash: parse_hash(&metadata.content_hash, STREAM_FIELDS.hash)?,
        modify_time: parse_modify_time(metadata.modify_time.as_ref(), "metadata.modify_time")?,
        fields: &STREAM_FIELDS,
    };
    let mut staged = Staged::begin(files, principal, &target).await?;
    let received = async {
        while let Some(message) = next_message(files, &mut stream).await? {
            match message.data {
                Some(Data::Chunk(chunk)) if chunk.len() > MAX_CHUNK_BYTES => {
                    return Err(AppError::invalid("chunk", "must be at most 4 MiB").into());
                }
                Some(Data::Chunk(chunk)) => staged.write(chunk, &target).await?,
                _ => {
                    return Err(AppError::invalid(
                        "metadata",
                        "only the first message may carry metadata; every later one carries \
                         a chunk",
                    )
                    .into());
                }
            }
        }
        Ok(())
    }
    .await;
    staged.end(received, files, principal, &target).await
}

/// The next message of a client stream (UploadFile, ImportArchive), or an
/// error when the client failed or left, the stream idled too long, or the
/// server is shutting down.
pub(super) async fn next_message<T>(
    files: &Files,
    stream: &mut Streaming<T>,
) -> UploadResult<Option<T>> {
    let mut shutdown = files.state.shutting_down.clone();
    tokio::select! {
        next = tokio::time::timeout(IDLE_TIMEOUT, stream.message()) => match next {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(status)) => Err(StreamEnd::Client(status)),
            Err(_) => Err(StreamEnd::Client(Status::deadline_exceeded(format!(
                "the stream sent nothing for {} s and was abandoned",
                IDLE_TIMEOUT.as_secs()
            )))),
        },
        _ = shutdown.wait_for(|down| *down) => Err(AppError::Unavailable {
            what: "the server",
            detail: "shutting down during an upload".into(),
        }
        .into()),
    }
}

/// UploadSmallFile: the same pipeline with the whole content at once.
pub(super) async fn upload_small(
    files: &Files,
    principal: Principal,
    req: pb::UploadSmallFileRequest,
) -> Result<Stored, Status> {
    let limit = files.state.config.max_upload_bytes;
    let prepare = || -> Result<Target, AppError> {
        let target = Target {
            path: parse_entry_path(&req.path, UNARY_FIELDS.path)?,
            size: Some(req.content.len() as u64),
            on_conflict: conflict_policy(req.conflict_policy, "conflict_policy")?,
            hash: parse_hash(&req.content_hash, UNARY_FIELDS.hash)?,
            modify_time: parse_modify_time(req.modify_time.as_ref(), "modify_time")?,
            fields: &UNARY_FIELDS,
        };
        if req.content.len() > limit {
            return Err(AppError::exhausted(
                ErrorReason::QuotaExceeded,
                format!(
                    "the file is {} bytes; UploadSmallFile takes at most {limit} bytes \
                     (use the UploadFile stream for larger files)",
                    req.content.len()
                ),
                QUOTA_RETRY,
            ));
        }
        Ok(target)
    };
    let target = prepare()?;
    let files = files.clone();
    tokio::spawn(async move {
        let mut staged = Staged::begin(&files, &principal, &target).await?;
        staged.write(req.content, &target).await?;
        staged.finish(&files, &principal, &target).await
    })
    .await
    .map_err(|e| Status::from(AppError::from(e)))?
    .map_err(Status::from)
}

/// UploadRawFile: the fields of the first message, then the bytes of every
/// message's `content`, in a task of its own like UploadFile.
pub(super) async fn upload_raw(
    files: &Files,
    principal: Principal,
    stream: Streaming<pb::UploadRawFileRequest>,
) -> Result<Stored, Status> {
    let files = files.clone();
    tokio::spawn(async move { receive_raw(&files, &principal, stream).await })
        .await
        .map_err(|e| Status::from(AppError::from(e)))?
        .map_err(Status::from)
}

async fn receive_raw(
    files: &Files,
    principal: &Principal,
    mut stream: Streaming<pb::UploadRawFileRequest>,
) -> UploadResult<Stored> {
    let Some(first) = next_message(files, &mut stream).await? else {
        return Err(AppError::invalid("path", "the upload carried no message").into());
    };
    let target = Target {
        path: parse_entry_path(&first.path, RAW_FIELDS.path)?,
        size: match first.size_bytes {
            0 => None,
            size => Some(
                u64::try_from(size)
                    .map_err(|_| AppError::invalid(RAW_FIELDS.size, "must not be negative"))?,
            ),
        },
        on_conflict: conflict_policy(first.conflict_policy, "conflict_policy")?,
        hash: parse_hash(&first.content_hash, RAW_FIELDS.hash)?,
        modify_time: parse_modify_time(first.modify_time.as_ref(), "modify_time")?,
        fields: &RAW_FIELDS,
    };
    let mut staged = Staged::begin(files, principal, &target).await?;
    let received = async {
        let mut body = first.content;
        loop {
            if let Some(HttpBody { data, .. }) = body.take()
                && !data.is_empty()
            {
                if data.len() > MAX_CHUNK_BYTES {
                    return Err(AppError::invalid("content.data", "must be at most 4 MiB").into());
                }
                staged.write(data, &target).await?;
            }
            match next_message(files, &mut stream).await? {
                Some(message) => body = message.content,
                None => return Ok(()),
            }
        }
    }
    .await;
    staged.end(received, files, principal, &target).await
}
