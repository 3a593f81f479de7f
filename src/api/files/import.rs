//! ImportArchive: the gRPC (or Envoy-transcoded REST) stream fed to the
//! engine's archive import as it arrives.
//!
//! Two tasks: this one receives the messages (`next_message`: idle
//! timeout, shutdown) and passes each chunk through a small bounded channel
//! (backpressure: at most [`IN_FLIGHT`] chunks wait, so a fast client
//! cannot make the server buffer the archive); a blocking task reads the
//! channel as a `Read` and extracts (`engine::archive`). The quota is drawn
//! from the database in blocks by the blocking task ([`DbBudget`]). The
//! import runs in tasks of its own, like an upload: a client that goes away
//! must not cut the cleanup of the entry being written short.
//!
//! How a stopped import answers (docs/archives.md): the status of the cause
//! (the client's own failure, RESOURCE_EXHAUSTED for limits and quota,
//! INVALID_ARGUMENT for an archive that is not one or is corrupt), with a
//! message that says what was kept.

use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::super::StreamEnd;
use super::upload::next_message;
use super::{Files, conflict_policy, parse_path};
use crate::{
    api::convert,
    auth::Principal,
    db::{DbPool, quota},
    engine::archive::{self, Failure, ImportError, ImportRequest, Imported, QuotaBudget},
    error::AppError,
    pb::fileorganizer::v1::{self as pb, ErrorReason},
    storage::UserPath,
};

/// Largest `body.data` of one message (the contract's limit).
const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Chunks received and not yet extracted, at most.
const IN_FLIGHT: usize = 4;
/// RetryInfo of a quota error: space has to be freed first.
const QUOTA_RETRY: Duration = Duration::from_secs(60);

/// The chunks of the archive, as a blocking reader.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The user's quota in the database, drawn on from the blocking task.
struct DbBudget {
    runtime: tokio::runtime::Handle,
    db: DbPool,
    user_id: uuid::Uuid,
}

impl QuotaBudget for DbBudget {
    fn reserve(&mut self, bytes: u64) -> Result<bool, String> {
        let bytes = i64::try_from(bytes).map_err(|_| "too many bytes".to_string())?;
        self.runtime.block_on(async {
            let mut conn = self.db.get().await.map_err(|e| e.to_string())?;
            quota::try_add(&mut conn, self.user_id, bytes)
                .await
                .map(|usage| usage.is_some())
                .map_err(|e| e.to_string())
        })
    }

    fn release(&mut self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let released = self.runtime.block_on(async {
            let mut conn = self.db.get().await.map_err(|e| e.to_string())?;
            quota::release(&mut conn, self.user_id, bytes)
                .await
                .map_err(|e| e.to_string())
        });
        if let Err(error) = released {
            tracing::warn!(%error, bytes, "could not give back unused quota after an import");
        }
    }
}

/// ImportArchive (see the module docs).
pub(super) async fn import_archive(
    files: &Files,
    principal: Principal,
    stream: Streaming<pb::ImportArchiveRequest>,
) -> Result<pb::ImportArchiveResponse, Status> {
    let files = files.clone();
    tokio::spawn(async move { receive(&files, principal, stream).await })
        .await
        .map_err(|e| Status::from(AppError::from(e)))?
        .map_err(Status::from)
}

async fn receive(
    files: &Files,
    principal: Principal,
    mut stream: Streaming<pb::ImportArchiveRequest>,
) -> Result<pb::ImportArchiveResponse, StreamEnd> {
    let Some(first) = next_message(files, &mut stream).await? else {
        return Err(AppError::invalid("body", "the stream carried no message").into());
    };
    let target = parse_path(&first.path, "path")?;
    let format = convert::archive_format(first.format, "format")?;
    // FAIL skips (and lists) an entry whose name is taken; RENAME stores it
    // under a free ` (n)` name; SKIP_IF_IDENTICAL skips it when its content
    // is already stored there, as single uploads do, and otherwise renames.
    let policy = conflict_policy(first.conflict_policy, "conflict_policy")?;
    let root = files.root(&principal)?;
    let user_id = principal.user_id;

    let (tx, rx) = mpsc::channel::<io::Result<Vec<u8>>>(IN_FLIGHT);
    let request = ImportRequest {
        root,
        target: target.clone(),
        format,
        policy,
        limits: files.state.config.archive_limits,
    };
    let mut budget = DbBudget {
        runtime: tokio::runtime::Handle::current(),
        db: files.state.db.clone(),
        user_id,
    };
    let extraction = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        };
        archive::import(request, &mut budget, reader)
    });

    // Why the stream itself ended early, if it did: that is the answer.
    let ended: Mutex<Option<StreamEnd>> = Mutex::new(None);
    let first_chunk = first.body.map(|b| b.data).unwrap_or_default();
    pump(files, user_id, &mut stream, first_chunk, &tx, &ended).await;
    drop(tx);

    let result = extraction.await.map_err(AppError::from)?;
    if result.as_ref().is_ok_and(|i| i.files > 0) || result.as_ref().is_err() {
        files.usage_changed(user_id).await;
        // Kept files (a truncated archive keeps its complete entries) are
        // arrivals for the automations watching the target.
        crate::jobs::automations::files_arrived(&files.state, user_id, &target).await;
    }
    if let Some(end) = ended.lock().expect("not poisoned").take() {
        return Err(match (end, result) {
            // The byte budget ran out midway: the refusal, saying what was kept.
            (
                StreamEnd::Failed(AppError::ResourceExhausted {
                    reason,
                    message,
                    retry_after,
                    metadata,
                }),
                result,
            ) => {
                let progress = match result {
                    Ok(imported) => imported,
                    Err(error) => *error.progress,
                };
                StreamEnd::Failed(AppError::ResourceExhausted {
                    reason,
                    message: format!("{message}{}", kept(&target, &progress)),
                    retry_after,
                    metadata,
                })
            }
            (end, _) => end,
        });
    }
    match result {
        Ok(imported) => Ok(convert::imported(target.as_str(), imported)),
        Err(error) => Err(failed(&target, error).into()),
    }
}

/// Passes the archive's chunks to the extraction until the stream ends,
/// fails or the extraction stops reading.
async fn pump(
    files: &Files,
    user_id: uuid::Uuid,
    stream: &mut Streaming<pb::ImportArchiveRequest>,
    first: Vec<u8>,
    tx: &mpsc::Sender<io::Result<Vec<u8>>>,
    ended: &Mutex<Option<StreamEnd>>,
) {
    let mut next = Some(first);
    loop {
        let stop = if let Some(chunk) = next.take().filter(|c| !c.is_empty()) {
            // Counted against the byte budget before the extraction sees it.
            match files.take_upload_bytes(user_id, chunk.len()).await {
                Ok(()) if tx.send(Ok(chunk)).await.is_err() => {
                    return; // The extraction stopped (done or failed).
                }
                Ok(()) => None,
                Err(refused) => Some(StreamEnd::Failed(refused)),
            }
        } else {
            None
        };
        let stop = match stop {
            Some(stop) => stop,
            None => match next_message(files, stream).await {
                Ok(None) => return,
                Ok(Some(message)) => {
                    let data = message.body.map(|b| b.data).unwrap_or_default();
                    if data.len() <= MAX_CHUNK_BYTES {
                        next = Some(data);
                        continue;
                    }
                    StreamEnd::Failed(AppError::invalid("body.data", "must be at most 4 MiB"))
                }
                Err(end) => end,
            },
        };
        *ended.lock().expect("not poisoned") = Some(stop);
        let _ = tx
            .send(Err(io::Error::other("the import's stream ended early")))
            .await;
        return;
    }
}

/// The error of a stopped import, saying what was kept.
fn failed(target: &UserPath, error: ImportError) -> AppError {
    let ImportError { failure, progress } = error;
    let kept = kept(target, &progress);
    match failure {
        Failure::NotAnArchive(message) | Failure::Corrupt(message) => {
            AppError::invalid("body", format!("{message}{kept}"))
        }
        Failure::TooLarge(message) => AppError::ResourceExhausted {
            reason: ErrorReason::QuotaExceeded,
            message: format!("{message}{kept}"),
            retry_after: None,
            metadata: Vec::new(),
        },
        Failure::Quota(message) => AppError::exhausted(
            ErrorReason::QuotaExceeded,
            format!("{message}{kept}"),
            QUOTA_RETRY,
        ),
        Failure::Storage(e) => {
            tracing::warn!(error = %e, "an archive import stopped on a storage error");
            AppError::from(e.at("path"))
        }
        Failure::Source(e) => AppError::Unavailable {
            what: "the archive's stream",
            detail: format!("{e}{kept}"),
        },
        Failure::Budget(detail) => AppError::Unavailable {
            what: "the database",
            detail,
        },
    }
}

/// "; N files … were stored … and are kept" for a stopped import's message.
fn kept(target: &UserPath, progress: &Imported) -> String {
    if progress.files == 0 && progress.folders == 0 {
        return "; nothing was stored".into();
    }
    let folder = if target.is_root() {
        "your storage root".to_string()
    } else {
        target.to_string()
    };
    format!(
        "; the {} files ({} bytes) and {} folders stored under {folder} before that are kept \
         (each file complete); the entry being written was discarded",
        progress.files, progress.bytes, progress.folders
    )
}
