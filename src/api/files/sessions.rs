//! Resumable uploads: CreateUpload, GetUpload, AppendUpload, FinishUpload
//! and CancelUpload (the concepts of tus 1.0; docs/uploads.md says where
//! they differ).
//!
//! A session is a row of `upload_sessions` (`db::uploads`: owner, target,
//! size, expected hash, policy, modify_time, committed offset, expiry) and a
//! file of the owner's storage, `.fileorg-tmp-uploads/<id>`
//! (`storage::upload_area`). Its whole size is reserved in the quota at
//! creation, so appends cannot exceed it and a finished session needs no
//! second check; the reservation is given back when the session ends
//! without storing a file.
//!
//! Appends: the request's offset must be the committed one, or earlier with
//! the same bytes as those stored (a retried chunk: compared, not written
//! again). The file is locked (`flock`) for the length of the request, so
//! requests on one session never interleave. Bytes are written as they
//! arrive; when the stream ends, for any reason (done, the client gone, an
//! error of ours), what was written is fsynced and the committed offset
//! moved up to it: nothing that arrived is lost to a dropped connection. A
//! crash before that leaves the file longer than the committed offset; the
//! next request cuts it back first.
//!
//! Finishing: every byte committed, the content hashed (read back once) and
//! checked against the expected hash (a mismatch ends the session: DATA_LOSS),
//! then the file is moved (one no-replace rename) beside its destination and
//! stored exactly like a single-request upload (`upload::Complete`: policy,
//! modify_time, fsync, publish).
//!
//! Expiry: a session is not found once `expire_time` has passed
//! (`UPLOAD_SESSION_TTL_SECS` after creation); [`sweep_expired`] removes its
//! row and file and releases its reservation.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Utc};
use tonic::{Status, Streaming};
use uuid::Uuid;

use super::{
    Files, OnConflict, blocking, conflict_policy, parse_entry_path, parse_hash, parse_modify_time,
    upload::{
        Complete, Fields, Quota, Stored, Target, already_exists, check_hash, next_message,
        quota_exceeded,
    },
};
use crate::{
    api::{StreamEnd, convert},
    auth::Principal,
    db::{
        quota,
        uploads::{self, UploadSession},
    },
    engine::categorize::SNIFF_BYTES,
    error::{AppError, AppResult},
    pb::fileorganizer::v1 as pb,
    state::AppState,
    storage::{NewFile, SessionFile, StorageError, UserPath, UserRoot},
};

/// The request fields a finished session's errors point at.
const SESSION_FIELDS: Fields = Fields {
    path: "upload.path",
    size: "upload.size_bytes",
    hash: "upload.content_hash",
};

/// Largest `content.data` of one AppendUpload message.
const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Expired sessions removed per sweep query.
const SWEEP_BATCH: i64 = 100;

/// `uploads/{id}` → the id; INVALID_ARGUMENT naming `field` otherwise.
fn parse_name(raw: &str, field: &str) -> AppResult<Uuid> {
    raw.strip_prefix("uploads/")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| AppError::invalid(field, "must be uploads/{id}"))
}

fn resource_name(id: Uuid) -> String {
    format!("uploads/{id}")
}

fn to_pb(session: &UploadSession) -> pb::Upload {
    pb::Upload {
        name: resource_name(session.id),
        path: session.path.clone(),
        size_bytes: session.size_bytes,
        content_hash: session
            .content_hash
            .as_deref()
            .map(hex::encode)
            .unwrap_or_default(),
        conflict_policy: pb::FileConflictPolicy::from(session.conflict_policy) as i32,
        modify_time: session.modify_time.map(convert::timestamp),
        committed_offset: session.committed_offset,
        create_time: Some(convert::timestamp(session.created_at)),
        expire_time: Some(convert::timestamp(session.expires_at)),
    }
}

async fn find(files: &Files, principal: &Principal, id: Uuid) -> AppResult<UploadSession> {
    let mut conn = files.state.db.get().await?;
    uploads::find(&mut conn, principal.user_id, id)
        .await?
        .ok_or_else(|| AppError::not_found(resource_name(id)))
}

/// How long a request waits for another one to let go of a session's file
/// (a request whose connection was cut ends on the server once it notices,
/// usually within moments) before answering ABORTED / RESOURCE_BUSY.
const BUSY_WAIT: Duration = Duration::from_secs(3);
/// The retry delay that answer suggests.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Opens and locks the session's file; `None` when it is gone. While
/// another request holds it, tries again for up to [`BUSY_WAIT`].
async fn open_if_there(root: &Arc<UserRoot>, id: Uuid) -> AppResult<Option<SessionFile>> {
    let deadline = tokio::time::Instant::now() + BUSY_WAIT;
    loop {
        let root = root.clone();
        let opened = blocking(move || match root.open_session_file(id) {
            Ok(Some(file)) => Ok(Some(Some(file))),
            Ok(None) => Ok(None),
            Err(StorageError::NotFound(_)) => Ok(Some(None)),
            Err(e) => Err(e.at("name").into()),
        })
        .await?;
        match opened {
            Some(file) => return Ok(file),
            None if tokio::time::Instant::now() >= deadline => {
                return Err(AppError::Busy {
                    message: format!(
                        "another request is using {}; retry when it has ended",
                        resource_name(id)
                    ),
                    retry_after: BUSY_RETRY,
                });
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Opens and locks the session's file.
async fn open(root: &Arc<UserRoot>, id: Uuid) -> AppResult<SessionFile> {
    open_if_there(root, id).await?.ok_or_else(|| gone(id))
}

/// The caller's session `id` with its file open and locked: the row is
/// read again once the lock is held, because every change of the committed
/// offset is made under that lock, so only then is it current (a request
/// that read it before could otherwise cut bytes another one had just
/// committed).
async fn lock(
    files: &Files,
    principal: &Principal,
    id: Uuid,
) -> AppResult<(UploadSession, SessionFile, Arc<UserRoot>)> {
    find(files, principal, id).await?;
    let root = files.root(principal)?;
    let file = open(&root, id).await?;
    let session = find(files, principal, id).await?;
    Ok((session, file, root))
}

fn gone(id: Uuid) -> AppError {
    AppError::FailedPrecondition {
        message: format!(
            "the bytes of {} are gone from the server's storage; cancel it and start again",
            resource_name(id)
        ),
    }
}

/// Cuts bytes written after the last commit by a request that did not get
/// to commit them; the session's bytes are gone if fewer are there.
fn settle(file: &mut SessionFile, committed: u64, id: Uuid) -> AppResult<()> {
    let len = file.stored_len().map_err(|e| e.at("name"))?;
    if len < committed {
        return Err(gone(id));
    }
    if len > committed {
        file.truncate(committed).map_err(|e| e.at("name"))?;
    }
    Ok(())
}

/// ALREADY_EXISTS under the FAIL policy when `path` is taken (checked
/// again, atomically, when the file is published).
async fn refuse_if_taken(
    root: &Arc<UserRoot>,
    path: &UserPath,
    policy: OnConflict,
) -> AppResult<()> {
    if policy != OnConflict::FailIfExists {
        return Ok(());
    }
    let (root, path) = (root.clone(), path.clone());
    blocking(move || {
        if root.exists(&path).map_err(|e| e.at("upload.path"))? {
            return Err(already_exists(&path));
        }
        Ok(())
    })
    .await
}

pub(super) async fn create_upload(
    files: &Files,
    principal: Principal,
    req: pb::CreateUploadRequest,
) -> AppResult<pb::Upload> {
    let upload = req
        .upload
        .ok_or_else(|| AppError::invalid("upload", "is required"))?;
    let path = parse_entry_path(&upload.path, "upload.path")?;
    let size = upload.size_bytes;
    if size < 0 {
        return Err(AppError::invalid(
            "upload.size_bytes",
            "must not be negative",
        ));
    }
    let hash = parse_hash(&upload.content_hash, "upload.content_hash")?;
    let policy = conflict_policy(upload.conflict_policy, "upload.conflict_policy")?;
    let modify_time = parse_modify_time(upload.modify_time.as_ref(), "upload.modify_time")?;
    let root = files.root(&principal)?;
    refuse_if_taken(&root, &path, policy).await?;
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(files.state.config.upload_session_ttl)
        .map_err(|e| AppError::internal(format!("UPLOAD_SESSION_TTL_SECS: {e}")))?;
    let row = UploadSession {
        id: Uuid::new_v4(),
        user_id: principal.user_id,
        path: path.as_str().to_string(),
        size_bytes: size,
        content_hash: hash.map(|h| h.to_vec()),
        conflict_policy: policy,
        modify_time: modify_time.map(DateTime::<Utc>::from),
        committed_offset: 0,
        created_at: now,
        expires_at: now + ttl,
    };
    // The row first: a crash before the file exists leaves a session whose
    // bytes are "gone" and that expires, never a file nobody knows of.
    let mut conn = files.state.db.get().await?;
    let Some(session) = uploads::create(&mut conn, &row).await? else {
        let usage = quota::usage(&mut conn, principal.user_id).await?;
        return Err(quota_exceeded(size as u64, usage));
    };
    let id = session.id;
    // Not held while the disk works (tests/api/retries.rs: a pool of one).
    drop(conn);
    let made =
        blocking(move || Ok(root.create_session_file(id).map_err(|e| e.at("upload"))?)).await;
    if let Err(error) = made {
        let mut conn = files.state.db.get().await?;
        uploads::end(&mut conn, principal.user_id, id, true).await?;
        return Err(error);
    }
    Ok(to_pb(&session))
}

pub(super) async fn get_upload(
    files: &Files,
    principal: Principal,
    req: pb::GetUploadRequest,
) -> AppResult<pb::Upload> {
    let id = parse_name(&req.name, "name")?;
    Ok(to_pb(&find(files, &principal, id).await?))
}

/// AppendUpload: in a task of its own, like the uploads (a client that
/// resets the stream must not cut the commit short).
pub(super) async fn append_upload(
    files: &Files,
    principal: Principal,
    stream: Streaming<pb::AppendUploadRequest>,
) -> Result<pb::Upload, Status> {
    let files = files.clone();
    tokio::spawn(async move { append(&files, &principal, stream).await })
        .await
        .map_err(|e| Status::from(AppError::from(e)))?
        .map_err(Status::from)
}

/// Where an append stands.
struct Appending {
    /// Taken out only while a blocking write holds it.
    file: Option<SessionFile>,
    size: u64,
    /// The committed offset when the request began.
    committed: u64,
    /// Where the next byte of the stream goes.
    pos: u64,
    /// The end of what is in the file (committed or written now).
    end: u64,
}

impl Appending {
    /// Compares the bytes the file already holds, writes the rest.
    async fn take(&mut self, data: Vec<u8>) -> AppResult<()> {
        if data.len() > MAX_CHUNK_BYTES {
            return Err(AppError::invalid("content.data", "must be at most 4 MiB"));
        }
        let len = data.len() as u64;
        if self.pos + len > self.size {
            return Err(AppError::invalid(
                "content",
                format!(
                    "the bytes run past the upload's size of {} bytes (offset {} + {len})",
                    self.size, self.pos
                ),
            ));
        }
        let (pos, end) = (self.pos, self.end);
        let file = self.file.take().expect("held between calls");
        let (file, done) = tokio::task::spawn_blocking(move || {
            let overlap = usize::try_from(end.saturating_sub(pos).min(len)).unwrap_or(0);
            let done = (|| -> AppResult<()> {
                if overlap > 0
                    && !file
                        .holds_at(&data[..overlap], pos)
                        .map_err(|e| e.at("content"))?
                {
                    return Err(AppError::FailedPrecondition {
                        message: format!(
                            "the bytes at offset {pos} differ from those already committed there; \
                             a retried chunk must be identical (resume at the committed offset)"
                        ),
                    });
                }
                if overlap < data.len() {
                    file.write_at(&data[overlap..], pos + overlap as u64)
                        .map_err(|e| e.at("content"))?;
                }
                Ok(())
            })();
            (file, done)
        })
        .await?;
        self.file = Some(file);
        done?;
        self.pos += len;
        self.end = self.end.max(self.pos);
        Ok(())
    }

    /// Makes what was written durable and commits it; the session as it is
    /// now.
    async fn commit(
        &mut self,
        files: &Files,
        principal: &Principal,
        id: Uuid,
    ) -> AppResult<Option<UploadSession>> {
        if self.end == self.committed {
            return Ok(None);
        }
        let file = self.file.take().expect("held between calls");
        let file = blocking(move || {
            file.sync().map_err(|e| e.at("content"))?;
            Ok(file)
        })
        .await?;
        let mut conn = files.state.db.get().await?;
        let from = self.committed as i64;
        let to = self.end as i64;
        let session = uploads::commit(&mut conn, principal.user_id, id, from, to).await?;
        // Unlocked only now: nobody else could write in between.
        drop(file);
        match session {
            Some(session) => Ok(Some(session)),
            None => Err(AppError::not_found(resource_name(id))),
        }
    }
}

async fn append(
    files: &Files,
    principal: &Principal,
    mut stream: Streaming<pb::AppendUploadRequest>,
) -> Result<pb::Upload, StreamEnd> {
    let Some(first) = next_message(files, &mut stream).await? else {
        return Err(AppError::invalid("name", "the request carried no message").into());
    };
    let id = parse_name(&first.name, "name")?;
    let offset = u64::try_from(first.offset)
        .map_err(|_| AppError::invalid("offset", "must not be negative"))?;
    let (session, mut file, _root) = lock(files, principal, id).await?;
    let committed = session.committed_offset as u64;
    file = blocking(move || {
        settle(&mut file, committed, id)?;
        Ok(file)
    })
    .await?;
    if offset > committed {
        return Err(AppError::FailedPreconditionWith {
            message: format!(
                "offset {offset} is past the committed offset {committed} of {}; resume at \
                 {committed}",
                resource_name(id)
            ),
            metadata: vec![("committed_offset", committed.to_string())],
        }
        .into());
    }
    let mut appending = Appending {
        file: Some(file),
        size: session.size_bytes as u64,
        committed,
        pos: offset,
        end: committed,
    };
    let mut body = first.content;
    let received: Result<(), StreamEnd> = async {
        loop {
            if let Some(content) = body.take()
                && !content.data.is_empty()
            {
                // Refused before it is written; what was written before is
                // committed below, as for any stream that ends early.
                files
                    .take_upload_bytes(principal.user_id, content.data.len())
                    .await?;
                appending.take(content.data).await?;
            }
            match next_message(files, &mut stream).await? {
                Some(message) => body = message.content,
                None => return Ok(()),
            }
        }
    }
    .await;
    // Whatever ended the stream, what arrived is kept.
    let committed = appending.commit(files, principal, id).await;
    received?;
    Ok(to_pb(&committed?.unwrap_or(session)))
}

pub(super) async fn finish_upload(
    files: &Files,
    principal: Principal,
    req: pb::FinishUploadRequest,
) -> AppResult<Stored> {
    let id = parse_name(&req.name, "name")?;
    let (session, mut file, root) = lock(files, &principal, id).await?;
    let size = session.size_bytes as u64;
    let committed = session.committed_offset as u64;
    if committed != size {
        return Err(AppError::FailedPreconditionWith {
            message: format!(
                "{} has {committed} of its {size} bytes; append the rest from offset {committed} \
                 first",
                resource_name(id)
            ),
            metadata: vec![("committed_offset", committed.to_string())],
        });
    }
    let target = Target {
        path: UserPath::parse(&session.path)
            .map_err(|e| AppError::internal(format!("upload session {id} has a bad path: {e}")))?,
        size: Some(size),
        on_conflict: session.conflict_policy,
        hash: match session.content_hash.as_deref() {
            None => None,
            Some(bytes) => {
                Some(bytes.try_into().map_err(|_| {
                    AppError::internal(format!("upload session {id} has a bad hash"))
                })?)
            }
        },
        modify_time: session.modify_time.map(SystemTime::from),
        fields: &SESSION_FIELDS,
    };
    let (file, hash, head) = blocking(move || {
        settle(&mut file, committed, id)?;
        let (hash, head) = file.hash(SNIFF_BYTES).map_err(|e| e.at("name"))?;
        Ok((file, hash, head))
    })
    .await?;
    if let Err(error) = check_hash(&target, &hash) {
        drop(file);
        discard(files, &principal, &root, id).await?;
        return Err(error);
    }
    refuse_if_taken(&root, &target.path, target.on_conflict).await?;
    // The session ends here, while its file is still locked and in place:
    // from now on the expiry sweep cannot find it, and the reservation is
    // this request's to keep (stored) or give back (anything else).
    let mut conn = files.state.db.get().await?;
    if !uploads::end(&mut conn, principal.user_id, id, false).await? {
        return Err(AppError::not_found(resource_name(id)));
    }
    drop(conn);
    let release = async |files: &Files| -> AppResult<()> {
        let mut conn = files.state.db.get().await?;
        Ok(quota::release(&mut conn, principal.user_id, size as i64).await?)
    };
    let adopt_root = root.clone();
    let path = target.path.clone();
    let adopted = blocking(move || {
        let adopted = NewFile::adopt_session(adopt_root.clone(), id, file, &path);
        if adopted.is_err() {
            // Not moved: nothing refers to it any more.
            let _ = adopt_root.remove_session_file(id);
        }
        Ok(adopted.map_err(|e| e.at("upload.path"))?)
    })
    .await;
    let new_file = match adopted {
        Ok(new_file) => new_file,
        Err(error) => {
            release(files).await?;
            return Err(error);
        }
    };
    let complete = Complete {
        root,
        file: new_file,
        size,
        hash,
        head,
    };
    let stored = complete
        .store(files, &principal, &target, Quota::Reserved)
        .await;
    if !matches!(&stored, Ok(s) if !s.skipped_identical) {
        release(files).await?;
    }
    stored
}

/// Removes the session's file and row, releasing its reservation.
async fn discard(
    files: &Files,
    principal: &Principal,
    root: &Arc<UserRoot>,
    id: Uuid,
) -> AppResult<()> {
    let root = root.clone();
    blocking(move || Ok(root.remove_session_file(id).map_err(|e| e.at("name"))?)).await?;
    let mut conn = files.state.db.get().await?;
    uploads::end(&mut conn, principal.user_id, id, true).await?;
    Ok(())
}

pub(super) async fn cancel_upload(
    files: &Files,
    principal: Principal,
    req: pb::CancelUploadRequest,
) -> AppResult<()> {
    let id = parse_name(&req.name, "name")?;
    find(files, &principal, id).await?;
    let root = files.root(&principal)?;
    // Locked while it goes: an append in progress is refused, not cut.
    let file = open_if_there(&root, id).await?;
    discard(files, &principal, &root, id).await?;
    drop(file);
    Ok(())
}

/// Removes expired sessions (rows, files, reservations) of every user;
/// how many. A session in use by a request is left for the next sweep.
pub async fn sweep_expired(state: &AppState) -> anyhow::Result<usize> {
    let mut removed = 0;
    let mut conn = state.db.get().await?;
    for session in uploads::expired(&mut conn, SWEEP_BATCH).await? {
        let root = match state.user_root(session.user_id) {
            Ok(root) => root,
            Err(error) => {
                tracing::warn!(%error, session = %session.id, "upload sweep: no storage root");
                continue;
            }
        };
        let id = session.id;
        let swept = tokio::task::spawn_blocking(move || match root.open_session_file(id) {
            // Removed while locked, so no request is writing to it.
            Ok(Some(file)) => root
                .remove_session_file(id)
                .map(|()| drop(file))
                .map(|()| true),
            Ok(None) => Ok(false),
            Err(StorageError::NotFound(_)) => Ok(true),
            Err(e) => Err(e),
        })
        .await?;
        match swept {
            Ok(true) => {
                uploads::end(&mut conn, session.user_id, id, true).await?;
                removed += 1;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, session = %id, "upload sweep: could not remove the file")
            }
        }
    }
    Ok(removed)
}

/// Runs [`sweep_expired`] every `interval` until the task is aborted.
pub async fn run_sweeper(state: AppState, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep_expired(&state).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed expired upload sessions"),
            Err(error) => tracing::warn!(error = format!("{error:#}"), "upload sweep failed"),
        }
    }
}
