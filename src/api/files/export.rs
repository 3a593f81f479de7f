//! DownloadArchive: a folder (or an operation's destination) streamed out
//! as a zip or tar while `engine::archive::export` walks it.
//!
//! The folder is opened beneath the caller's root before the response
//! starts (NOT_FOUND, a symlink or a file are ordinary errors then); the
//! archive is then written on the blocking pool into [`Chunks`]: ~1 MiB
//! messages through a channel of [`IN_FLIGHT`] of them, so at most a few
//! MiB per download are in memory and a slow client slows the walk. When
//! the client goes away tonic drops the receiver, the next send fails and
//! the walk stops. A failure after the first bytes (a file shrank, a folder
//! too deep) ends the stream with its status; the archive then has no end.

use std::io::{self, Write};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, metadata::MetadataValue};

use super::{BoxStream, Files, blocking, content_type, parse_path};
use crate::{
    api::{convert, operations},
    auth::Principal,
    db,
    domain::archive::ArchiveFormat,
    engine::archive::export::{Export, ExportError},
    error::{AppError, AppResult},
    pb::{fileorganizer::v1 as pb, google::api::HttpBody},
    storage::UserPath,
};

/// Bytes per message (Envoy passes each on as it comes).
const CHUNK_BYTES: usize = 1024 * 1024;
/// Messages waiting for the client at most.
const IN_FLIGHT: usize = 2;
/// Characters of a path an error message shows.
const MAX_PATH_SHOWN: usize = 200;
/// The file name (before the extension) of a download of the whole root.
const ROOT_NAME: &str = "files";

/// DownloadArchive (see the module docs).
pub(super) async fn download_archive(
    files: &Files,
    principal: Principal,
    req: pb::DownloadArchiveRequest,
) -> AppResult<Response<BoxStream<HttpBody>>> {
    let format = match convert::archive_format(req.format, "format")? {
        Some(format) => format,
        None if req.format == pb::ArchiveFormat::Auto as i32 => {
            return Err(AppError::invalid(
                "format",
                "must be ZIP, TAR, TAR_GZIP or TAR_ZSTD (AUTO only reads archives)",
            ));
        }
        None => ArchiveFormat::Zip,
    };
    let (folder, field) = source(files, &principal, &req).await?;
    let root = files.root(&principal)?;
    let opened = folder.clone();
    let export =
        blocking(move || Export::open(&root, &opened).map_err(|e| AppError::from(e.at(field))))
            .await?;

    let name = format!(
        "{}.{}",
        folder.file_name().unwrap_or(ROOT_NAME),
        extension(format)
    );
    let (tx, rx) = mpsc::channel::<Result<HttpBody, Status>>(IN_FLIGHT);
    let user_id = principal.user_id;
    tokio::task::spawn_blocking(move || {
        let mut chunks = Chunks {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
            content_type: Some(media_type(format)),
        };
        let result = export.write(format, &mut chunks);
        let ended = match result {
            Ok(exported) => {
                tracing::info!(%user_id, folder = %folder, ?format, files = exported.files,
                    folders = exported.folders, bytes = exported.bytes,
                    skipped = exported.skipped, "archive downloaded");
                chunks.flush()
            }
            Err(ExportError::Output(error)) => Err(error),
            Err(ExportError::Storage { path, error }) => {
                let error = AppError::from(error.at(field));
                tracing::info!(%user_id, folder = %folder, %path, %error, "archive download stopped");
                // What was written so far goes first, then the status.
                let _ = chunks.flush();
                let _ = chunks.tx.blocking_send(Err(with_path(error, &path).into()));
                return;
            }
        };
        if let Err(error) = ended {
            tracing::debug!(%user_id, %error, "archive download: the client went away");
        }
    });
    let stream: BoxStream<HttpBody> = Box::pin(ReceiverStream::new(rx));
    let mut response = Response::new(stream);
    if let Ok(value) = MetadataValue::try_from(content_type::disposition(&name)) {
        response.metadata_mut().insert("content-disposition", value);
    }
    Ok(response)
}

/// The folder to export and the request field that named it.
async fn source(
    files: &Files,
    principal: &Principal,
    req: &pb::DownloadArchiveRequest,
) -> AppResult<(UserPath, &'static str)> {
    if req.operation.is_empty() {
        return Ok((parse_path(&req.path, "path")?, "path"));
    }
    if !req.path.is_empty() {
        return Err(AppError::invalid(
            "operation",
            "give either path or operation, not both",
        ));
    }
    let id = operations::parse_name(&req.operation, "operation")?;
    let mut conn = files.state.db.get().await?;
    let operation = db::operations::find_for_user(&mut conn, principal.user_id, id)
        .await?
        .ok_or_else(|| AppError::not_found(req.operation.clone()))?;
    let folder = if operation.destination_path.is_empty() {
        operation.source_path
    } else {
        operation.destination_path
    };
    // Stored paths were parsed when the operation was created.
    let folder = parse_path(&folder, "operation")?;
    Ok((folder, "operation"))
}

/// The Content-Type of an archive.
fn media_type(format: ArchiveFormat) -> String {
    match format {
        ArchiveFormat::Zip => "application/zip",
        ArchiveFormat::Tar => "application/x-tar",
        ArchiveFormat::TarGzip => "application/gzip",
        ArchiveFormat::TarZstd => "application/zstd",
    }
    .to_string()
}

/// The file name extension of an archive.
fn extension(format: ArchiveFormat) -> &'static str {
    match format {
        ArchiveFormat::Zip => "zip",
        ArchiveFormat::Tar => "tar",
        ArchiveFormat::TarGzip => "tar.gz",
        ArchiveFormat::TarZstd => "tar.zst",
    }
}

/// A failure inside the folder says where (relative to the folder).
fn with_path(error: AppError, path: &str) -> AppError {
    match error {
        AppError::FailedPrecondition { message } if !path.is_empty() => {
            // A path 4,096 levels down is 8 KiB: its start says enough.
            let shown = match path.char_indices().nth(MAX_PATH_SHOWN) {
                Some((cut, _)) => format!("{}…", &path[..cut]),
                None => path.to_string(),
            };
            AppError::FailedPrecondition {
                message: format!("{message} (at {shown}; the archive is incomplete)"),
            }
        }
        other => other,
    }
}

/// The archive's bytes as HttpBody messages of [`CHUNK_BYTES`], sent as
/// they fill; the first carries the Content-Type. A send that fails (the
/// client went away) fails the write, which stops the export.
struct Chunks {
    tx: mpsc::Sender<Result<HttpBody, Status>>,
    buf: Vec<u8>,
    content_type: Option<String>,
}

impl Chunks {
    fn send(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        let body = HttpBody {
            content_type: self.content_type.take().unwrap_or_default(),
            data,
            extensions: Vec::new(),
        };
        self.tx
            .blocking_send(Ok(body))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    /// Sends what is buffered (the end of the archive).
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() || self.content_type.is_some() {
            self.send()?;
        }
        Ok(())
    }
}
