//! UploadFile (a client stream) and UploadSmallFile (one message).
//!
//! Both write the bytes to a [`NewFile`] (storage's temporary file beside
//! the destination, see `storage::new_file`). When every byte is there: the
//! size must be exactly the announced one, the blake3 hash the expected one
//! (if given), the file is fsynced, the quota is charged with one
//! conditional UPDATE (so concurrent uploads cannot together overrun it),
//! and only then is the file published with `renameat2(RENAME_NOREPLACE)`
//! (trying ` (1)`, ` (2)`, … under the RENAME policy) and the folder fsynced.
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

use std::{sync::Arc, time::Duration};

use tonic::{Status, Streaming};

use super::{
    super::StreamEnd, Files, OnConflict, blocking, conflict_policy, file_entry, parse_entry_path,
    parse_hash,
};
use crate::{
    auth::Principal,
    db::quota::{self, Usage},
    engine::categorize::SNIFF_BYTES,
    error::AppError,
    pb::fileorganizer::v1::{self as pb, ErrorReason, upload_file_request::Data},
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
struct Fields {
    path: &'static str,
    size: &'static str,
    hash: &'static str,
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

/// What is to be stored where.
struct Target {
    path: UserPath,
    size: u64,
    on_conflict: OnConflict,
    hash: Option<[u8; 32]>,
    fields: &'static Fields,
}

fn quota_exceeded(size: u64, usage: Usage) -> AppError {
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

fn already_exists(path: &UserPath) -> AppError {
    AppError::AlreadyExists {
        reason: ErrorReason::AlreadyExists,
        message: format!(
            "{path} already exists; nothing is overwritten (ask for conflict_policy RENAME \
             to store the file under a free name)"
        ),
    }
}

/// An upload being written to its [`NewFile`].
struct Staged {
    root: Arc<UserRoot>,
    /// Taken out only while a blocking write or sync holds it.
    file: Option<NewFile>,
    hasher: blake3::Hasher,
    written: u64,
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
        if target.size > u64::try_from(usage.remaining()).unwrap_or(0) {
            return Err(quota_exceeded(target.size, usage).into());
        }
        let root = files.root(principal)?;
        let path = target.path.clone();
        let on_conflict = target.on_conflict;
        let field = target.fields.path;
        let file_root = root.clone();
        let file = blocking(move || {
            // Refused before a byte is received; publishing checks again.
            if on_conflict == OnConflict::Fail && root.exists(&path).map_err(|e| e.at(field))? {
                return Err(already_exists(&path));
            }
            Ok(NewFile::create(root, &path).map_err(|e| e.at(field))?)
        })
        .await?;
        Ok(Staged {
            root: file_root,
            file: Some(file),
            hasher: blake3::Hasher::new(),
            written: 0,
            head: Vec::new(),
        })
    }

    /// Runs `work` on the new file on the blocking pool.
    async fn with_file(
        &mut self,
        field: &'static str,
        work: impl FnOnce(&mut NewFile) -> Result<(), StorageError> + Send + 'static,
    ) -> UploadResult<()> {
        let mut file = self.file.take().expect("held between calls");
        let (file, done) = tokio::task::spawn_blocking(move || {
            let done = work(&mut file);
            (file, done)
        })
        .await?;
        self.file = Some(file);
        Ok(done.map_err(|e| e.at(field))?)
    }

    /// Appends `chunk`; more bytes than announced is an error at once.
    async fn write(&mut self, chunk: Vec<u8>, target: &Target) -> UploadResult<()> {
        let total = self.written + chunk.len() as u64;
        if total > target.size {
            return Err(AppError::invalid(
                target.fields.size,
                format!(
                    "the upload carries more than the {} bytes announced",
                    target.size
                ),
            )
            .into());
        }
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(&chunk);
        self.with_file(target.fields.path, move |file| file.write_all(&chunk))
            .await?;
        self.written = total;
        Ok(())
    }

    /// Verifies, charges the quota and publishes; the stored file's entry.
    async fn finish(
        mut self,
        files: &Files,
        principal: &Principal,
        target: &Target,
    ) -> UploadResult<pb::FileEntry> {
        if self.written != target.size {
            return Err(AppError::invalid(
                target.fields.size,
                format!(
                    "{} bytes were announced but the upload ended after {}",
                    target.size, self.written
                ),
            )
            .into());
        }
        let hash = self.hasher.finalize();
        if let Some(expected) = target.hash
            && expected != *hash.as_bytes()
        {
            return Err(AppError::DataLoss {
                field: target.fields.hash.into(),
                description: "does not match the content received".into(),
                message: format!(
                    "the content's blake3 hash is {}, not the expected {}; nothing was stored",
                    hash.to_hex(),
                    hex::encode(expected)
                ),
            }
            .into());
        }
        self.with_file(target.fields.path, NewFile::sync).await?;

        let size = i64::try_from(target.size).unwrap_or(i64::MAX);
        {
            let mut conn = files.state.db.get().await?;
            if quota::try_add(&mut conn, principal.user_id, size)
                .await?
                .is_none()
            {
                let usage = quota::usage(&mut conn, principal.user_id).await?;
                return Err(quota_exceeded(target.size, usage).into());
            }
        }
        let file = self.file.take().expect("held between calls");
        let path = match publish(file, target).await {
            Ok(path) => path,
            Err(error) => {
                let mut conn = files.state.db.get().await?;
                quota::release(&mut conn, principal.user_id, size).await?;
                return Err(error.into());
            }
        };

        // The file is stored and counted: what follows only describes it, and
        // must not turn a stored upload into an error.
        let categorizer = match files.categorizer(principal).await {
            Ok(categorizer) => categorizer,
            Err(error) => {
                tracing::warn!(%error, "custom categories unavailable; using the built-in ones");
                Default::default()
            }
        };
        let root = self.root.clone();
        let stored = path.clone();
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
                    size_bytes: size,
                    ..Default::default()
                }
            }
        };
        let head = std::mem::take(&mut self.head);
        entry.category = categorizer
            .categorize(path.as_str(), || Some(head))
            .name()
            .to_string();
        entry.content_hash = hash.to_hex().to_string();
        Ok(entry)
    }
}

/// Publishes `file` under the target (or, under the RENAME policy, the first
/// free suffixed name) without ever replacing anything.
async fn publish(file: NewFile, target: &Target) -> Result<UserPath, AppError> {
    let on_conflict = target.on_conflict;
    let field = target.fields.path;
    blocking(move || {
        let wanted = file.path().clone();
        let stored = match on_conflict {
            OnConflict::Rename => file.publish_under_free_name(),
            OnConflict::Fail => file.publish().map(Some),
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
) -> Result<pb::FileEntry, Status> {
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
) -> UploadResult<pb::FileEntry> {
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
        size: u64::try_from(metadata.size_bytes)
            .map_err(|_| AppError::invalid(STREAM_FIELDS.size, "must not be negative"))?,
        on_conflict: conflict_policy(metadata.conflict_policy, "metadata.conflict_policy")?,
        hash: parse_hash(&metadata.content_hash, STREAM_FIELDS.hash)?,
        fields: &STREAM_FIELDS,
    };
    let mut staged = Staged::begin(files, principal, &target).await?;
    while let Some(message) = next_message(files, &mut stream).await? {
        match message.data {
            Some(Data::Chunk(chunk)) if chunk.len() > MAX_CHUNK_BYTES => {
                return Err(AppError::invalid("chunk", "must be at most 4 MiB").into());
            }
            Some(Data::Chunk(chunk)) => staged.write(chunk, &target).await?,
            _ => {
                return Err(AppError::invalid(
                    "metadata",
                    "only the first message may carry metadata; every later one carries a chunk",
                )
                .into());
            }
        }
    }
    staged.finish(files, principal, &target).await
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
) -> Result<pb::FileEntry, Status> {
    let limit = files.state.config.max_upload_bytes;
    let prepare = || -> Result<Target, AppError> {
        let target = Target {
            path: parse_entry_path(&req.path, UNARY_FIELDS.path)?,
            size: req.content.len() as u64,
            on_conflict: conflict_policy(req.conflict_policy, "conflict_policy")?,
            hash: parse_hash(&req.content_hash, UNARY_FIELDS.hash)?,
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
