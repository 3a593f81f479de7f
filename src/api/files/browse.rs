//! ListDirectory and DownloadFile.
//!
//! A listing reads the whole folder, sorts the names as bytes and returns
//! the page after the token's name, so pages stay consistent while entries
//! come and go. The trash (`.trash` at the root) and uploads in progress are
//! never listed; other hidden entries only with `show_hidden`. Entries are
//! described without following symlinks. A download streams the file from
//! a descriptor opened with `O_NOFOLLOW` on the blocking pool, the first
//! chunk carrying the Content-Type.

use std::{
    ffi::OsStr,
    io::Read,
    os::unix::ffi::{OsStrExt, OsStringExt},
};

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, metadata::MetadataValue};

use super::{BoxStream, Files, PageToken, blocking, content_type, file_entry, parse_path};
use crate::{
    auth::Principal,
    engine::categorize::SNIFF_BYTES,
    error::{AppError, AppResult},
    pagination,
    pb::{fileorganizer::v1 as pb, google::api::HttpBody},
    storage::{self, StorageError},
};

const DEFAULT_PAGE_SIZE: i32 = 100;
/// Bytes per DownloadFile message.
const DOWNLOAD_CHUNK_BYTES: usize = 64 * 1024;
/// Tag of ListDirectory page tokens.
const TOKEN_TAG: u8 = b'd';

pub(super) async fn list_directory(
    files: &Files,
    principal: Principal,
    req: pb::ListDirectoryRequest,
) -> AppResult<pb::ListDirectoryResponse> {
    let path = parse_path(&req.path, "path")?;
    let limit = pagination::page_size(req.page_size, DEFAULT_PAGE_SIZE)? as usize;
    let show_hidden = req.show_hidden;
    let fingerprint = PageToken::fingerprint(&[path.as_str().as_bytes(), &[u8::from(show_hidden)]]);
    let after = PageToken::decode(&req.page_token, TOKEN_TAG, fingerprint)?;
    let categorizer = files.categorizer(&principal).await?;
    let root = files.root(&principal)?;
    blocking(move || {
        let io = |e: StorageError| AppError::from(e.at("path"));
        let meta = root.metadata(&path).map_err(io)?;
        if !meta.is_dir() {
            return Err(AppError::FailedPrecondition {
                message: format!("path {path} is not a folder"),
            });
        }
        let folder = root.open_folder(&path).map_err(io)?;
        let mut names: Vec<Vec<u8>> = Vec::new();
        for name in folder.names().map_err(io)? {
            let name = name.into_vec();
            let hidden = name.starts_with(b".");
            let never = storage::is_internal(&name, path.is_root());
            let before = after.as_ref().is_some_and(|a| name <= *a);
            if !never && !before && (show_hidden || !hidden) {
                names.push(name);
            }
        }
        names.sort_unstable();
        let more = names.len() > limit;
        names.truncate(limit);
        let mut entries = Vec::with_capacity(names.len());
        for name in &names {
            let meta = match folder.entry_metadata(OsStr::from_bytes(name)) {
                Ok(meta) => meta,
                // Removed since the folder was read.
                Err(StorageError::NotFound(_)) => continue,
                Err(e) => return Err(io(e)),
            };
            let display = String::from_utf8_lossy(name);
            let entry_path = if path.is_root() {
                display.into_owned()
            } else {
                format!("{}/{display}", path.as_str())
            };
            entries.push(file_entry(&entry_path, &meta, Some(&categorizer)));
        }
        let next_page_token = match names.last() {
            Some(last) if more => PageToken::encode(TOKEN_TAG, fingerprint, last),
            _ => String::new(),
        };
        Ok(pb::ListDirectoryResponse {
            path: path.as_str().to_string(),
            entries,
            next_page_token,
        })
    })
    .await
}

pub(super) async fn download_file(
    files: &Files,
    principal: Principal,
    req: pb::DownloadFileRequest,
) -> AppResult<Response<BoxStream<HttpBody>>> {
    let path = parse_path(&req.path, "path")?;
    if path.is_root() {
        return Err(AppError::FailedPrecondition {
            message: "path names your storage root, a folder; only files can be downloaded".into(),
        });
    }
    let root = files.root(&principal)?;
    let name = path.file_name().unwrap_or_default().to_string();
    let file_name = name.clone();
    let (mut file, head, media_type) = blocking(move || {
        let io = |e: StorageError| AppError::from(e.at("path"));
        let meta = root.symlink_metadata(&path).map_err(io)?;
        if meta.is_dir() {
            return Err(AppError::FailedPrecondition {
                message: format!("{path} is a folder; only files can be downloaded"),
            });
        }
        if meta.file_type().is_symlink() {
            return Err(io(std::io::Error::from_raw_os_error(libc::ELOOP).into()));
        }
        if !meta.is_file() {
            return Err(AppError::FailedPrecondition {
                message: format!("{path} is not a regular file"),
            });
        }
        let mut file = root.open_read(&path).map_err(io)?;
        let mut head = vec![0u8; SNIFF_BYTES];
        let mut filled = 0;
        while filled < head.len() {
            match file.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e.into())),
            }
        }
        head.truncate(filled);
        let media_type = content_type::guess(&file_name, &head);
        Ok((file, head, media_type))
    })
    .await?;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<HttpBody, Status>>(4);
    tokio::task::spawn_blocking(move || {
        let first = HttpBody {
            content_type: media_type,
            data: head,
            extensions: Vec::new(),
        };
        if tx.blocking_send(Ok(first)).is_err() {
            return; // the client left
        }
        let mut buf = vec![0u8; DOWNLOAD_CHUNK_BYTES];
        loop {
            let data = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => buf[..n].to_vec(),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let error = AppError::from(StorageError::from(e).at("path"));
                    let _ = tx.blocking_send(Err(error.into()));
                    return;
                }
            };
            let chunk = HttpBody {
                content_type: String::new(),
                data,
                extensions: Vec::new(),
            };
            if tx.blocking_send(Ok(chunk)).is_err() {
                return;
            }
        }
    });
    let stream: BoxStream<HttpBody> = Box::pin(ReceiverStream::new(rx));
    let mut response = Response::new(stream);
    if let Ok(value) = MetadataValue::try_from(content_type::disposition(&name)) {
        response.metadata_mut().insert("content-disposition", value);
    }
    Ok(response)
}
