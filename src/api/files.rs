//! FileService: the caller's stored files (upload, browse, download), their
//! trash, the file records of operations, search, and custom categories.
//!
//! Every file access goes through `crate::storage` (a [`UserRoot`] opened on
//! the caller's own directory, paths parsed into [`UserPath`] at the edge), so
//! another user's files cannot even be named: a path always resolves in the
//! caller's root, where it is simply not found. Ids (operations, trash items,
//! categories) are looked up together with the caller's id, so another user's
//! are NOT_FOUND as well. Filesystem work runs on the blocking pool.
//!
//! One submodule per group of RPCs:
//! - [`upload`]: UploadFile / UploadSmallFile (sizes, hash, quota; the file
//!   itself is a `storage::NewFile`: temp file, fsync, no-replace publish);
//! - [`browse`]: ListDirectory / DownloadFile;
//! - [`trash`]: DeleteFile / ListTrash / RestoreFile / EmptyTrash;
//! - [`records`]: ListFileRecords / SearchFiles;
//! - [`categories`]: ListCategories and the custom-category CRUD.
//!
//! Rules shared by every path field: `..`, absolute paths, NUL and symlinks
//! leading outside are INVALID_ARGUMENT naming the field (reason
//! `PATH_ESCAPE` for escapes); the trash folder `.trash/` is managed only by
//! the trash RPCs, and names starting with `.fileorg-tmp-` (uploads and copies
//! in progress) are reserved; both are INVALID_ARGUMENT in a request path and
//! never listed.
//!
//! Storage quota: see [`crate::db::quota`]. Uploads count their size when
//! they are published; moving something to the trash frees nothing until
//! EmptyTrash deletes it.

mod browse;
mod categories;
mod content_type;
mod records;
mod trash;
mod upload;

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use cap_std::fs::MetadataExt;
use tonic::{Request, Response, Status, Streaming};

use super::{parts, respond};
use crate::{
    auth::Principal,
    engine::categorize::{BuiltIn, Categorizer},
    error::{AppError, AppResult},
    pb::{
        fileorganizer::v1::{self as pb, file_service_server::FileService},
        google::api::HttpBody,
    },
    state::AppState,
    storage::{TEMP_PREFIX, UserPath, UserRoot, trash::trash_folder},
};

/// The FileService handlers.
#[derive(Clone)]
pub struct Files {
    state: AppState,
}

impl Files {
    /// The cached profile shows storage used: drop it after uploads and
    /// emptying the trash.
    async fn usage_changed(&self, user_id: uuid::Uuid) {
        self.state
            .cache
            .invalidate(&[("profile", user_id.to_string())])
            .await;
    }

    /// The cached category list is stale after any category write.
    async fn categories_changed(&self, user_id: uuid::Uuid) {
        self.state
            .cache
            .invalidate(&[("categories", user_id.to_string())])
            .await;
    }

    pub fn new(state: AppState) -> Self {
        Files { state }
    }

    /// The caller's storage root, shareable with blocking tasks.
    fn root(&self, principal: &Principal) -> AppResult<Arc<UserRoot>> {
        self.state.user_root(principal.user_id).map(Arc::new)
    }

    /// The caller's categorizer: their custom rules, then the built-in ones.
    async fn categorizer(&self, principal: &Principal) -> AppResult<Categorizer> {
        let mut conn = self.state.db.get().await?;
        let rules = crate::db::categories::custom_rules(&mut conn, principal.user_id).await?;
        Ok(Categorizer::new_skipping_invalid(&rules).0)
    }
}

/// Runs storage work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    tokio::task::spawn_blocking(work).await?
}

/// Parses request field `field` as a path, refusing what the trash RPCs own
/// (`.trash/…`) and reserved temporary names.
fn parse_path(raw: &str, field: &str) -> AppResult<UserPath> {
    let path = UserPath::parse(raw).map_err(|e| e.at(field))?;
    if path.starts_with(&trash_folder()) {
        return Err(AppError::invalid(
            field,
            "is inside the trash (.trash); use ListTrash, RestoreFile and EmptyTrash",
        ));
    }
    if path.components().any(|c| c.starts_with(TEMP_PREFIX)) {
        return Err(AppError::invalid(
            field,
            format!("names starting with {TEMP_PREFIX} are reserved for uploads in progress"),
        ));
    }
    Ok(path)
}

/// [`parse_path`] for a path that must name an entry, not the root itself.
fn parse_entry_path(raw: &str, field: &str) -> AppResult<UserPath> {
    let path = parse_path(raw, field)?;
    if path.is_root() {
        return Err(AppError::invalid(
            field,
            "must name a file or folder, not your storage root",
        ));
    }
    Ok(path)
}

/// What a conflict policy field asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnConflict {
    Fail,
    Rename,
}

fn conflict_policy(raw: i32, field: &str) -> AppResult<OnConflict> {
    match pb::FileConflictPolicy::try_from(raw) {
        Ok(pb::FileConflictPolicy::Unspecified | pb::FileConflictPolicy::Fail) => {
            Ok(OnConflict::Fail)
        }
        Ok(pb::FileConflictPolicy::Rename) => Ok(OnConflict::Rename),
        Err(_) => Err(AppError::invalid(field, "unknown conflict policy")),
    }
}

/// Parses a lower-case (or upper-case) hex blake3 hash; empty is `None`.
fn parse_hash(raw: &str, field: &str) -> AppResult<Option<[u8; 32]>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(raw, &mut hash)
        .map_err(|_| AppError::invalid(field, "must be 64 hexadecimal characters (blake3)"))?;
    Ok(Some(hash))
}

/// A folder entry for `path` from its metadata (not following a final
/// symlink). Only regular files get a category.
fn file_entry(
    path: &str,
    meta: &cap_std::fs::Metadata,
    categorizer: Option<&Categorizer>,
) -> pb::FileEntry {
    let file_type = meta.file_type();
    let kind = if file_type.is_file() {
        pb::FileKind::File
    } else if file_type.is_dir() {
        pb::FileKind::Directory
    } else if file_type.is_symlink() {
        pb::FileKind::Symlink
    } else {
        pb::FileKind::Other
    };
    let category = match (kind, categorizer) {
        (pb::FileKind::File, Some(categorizer)) => categorizer.by_name(path).map_or_else(
            || BuiltIn::Other.name().to_string(),
            |c| c.name().to_string(),
        ),
        _ => String::new(),
    };
    pb::FileEntry {
        path: path.to_string(),
        name: path.rsplit('/').next().unwrap_or(path).to_string(),
        kind: kind as i32,
        size_bytes: if kind == pb::FileKind::Directory {
            0
        } else {
            i64::try_from(meta.size()).unwrap_or(i64::MAX)
        },
        modify_time: Some(prost_types::Timestamp {
            seconds: meta.mtime(),
            nanos: i32::try_from(meta.mtime_nsec()).unwrap_or(0),
        }),
        category,
        content_hash: String::new(),
    }
}

/// A page token: a version tag, a fingerprint of the request's filters (so
/// a token cannot be replayed against other filters) and the keyset
/// position, base64url-encoded. Clients treat it as opaque.
struct PageToken;

impl PageToken {
    fn fingerprint(parts: &[&[u8]]) -> [u8; 8] {
        let mut hasher = blake3::Hasher::new();
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let mut out = [0u8; 8];
        out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        out
    }

    fn encode(tag: u8, fingerprint: [u8; 8], position: &[u8]) -> String {
        let mut raw = Vec::with_capacity(9 + position.len());
        raw.push(tag);
        raw.extend_from_slice(&fingerprint);
        raw.extend_from_slice(position);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The position inside a token made with the same tag and fingerprint;
    /// `None` for an empty token.
    fn decode(token: &str, tag: u8, fingerprint: [u8; 8]) -> AppResult<Option<Vec<u8>>> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || {
            AppError::invalid(
                "page_token",
                "is not a token from a previous call with the same parameters",
            )
        };
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        if raw.len() < 9 || raw[0] != tag || raw[1..9] != fingerprint {
            return Err(bad());
        }
        Ok(Some(raw[9..].to_vec()))
    }
}

type BoxStream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl FileService for Files {
    async fn upload_file(
        &self,
        request: Request<Streaming<pb::UploadFileRequest>>,
    ) -> Result<Response<pb::UploadFileResponse>, Status> {
        let (principal, stream) = parts(request)?;
        let user_id = principal.user_id;
        let file = upload::upload_stream(self, principal, stream).await?;
        self.usage_changed(user_id).await;
        Ok(Response::new(pb::UploadFileResponse { file: Some(file) }))
    }

    async fn upload_small_file(
        &self,
        request: Request<pb::UploadSmallFileRequest>,
    ) -> Result<Response<pb::UploadSmallFileResponse>, Status> {
        let (principal, req) = parts(request)?;
        let user_id = principal.user_id;
        let file = upload::upload_small(self, principal, req).await?;
        self.usage_changed(user_id).await;
        Ok(Response::new(pb::UploadSmallFileResponse {
            file: Some(file),
        }))
    }

    async fn list_directory(
        &self,
        request: Request<pb::ListDirectoryRequest>,
    ) -> Result<Response<pb::ListDirectoryResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(browse::list_directory(self, principal, req).await)
    }

    async fn download_file(
        &self,
        request: Request<pb::DownloadFileRequest>,
    ) -> Result<Response<BoxStream<HttpBody>>, Status> {
        let (principal, req) = parts(request)?;
        let slot = self.state.stream_slots.acquire(principal.user_id)?;
        let response = browse::download_file(self, principal, req).await?;
        Ok(response.map(|stream| crate::infra::streams::hold(slot, stream)))
    }

    async fn delete_file(
        &self,
        request: Request<pb::DeleteFileRequest>,
    ) -> Result<Response<pb::DeleteFileResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(trash::delete_file(self, principal, req).await)
    }

    async fn list_trash(
        &self,
        request: Request<pb::ListTrashRequest>,
    ) -> Result<Response<pb::ListTrashResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(trash::list_trash(self, principal, req).await)
    }

    async fn restore_file(
        &self,
        request: Request<pb::RestoreFileRequest>,
    ) -> Result<Response<pb::RestoreFileResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(trash::restore_file(self, principal, req).await)
    }

    async fn empty_trash(
        &self,
        request: Request<pb::EmptyTrashRequest>,
    ) -> Result<Response<pb::EmptyTrashResponse>, Status> {
        let (principal, req) = parts(request)?;
        let user_id = principal.user_id;
        let result = trash::empty_trash(self, principal, req).await;
        if result.is_ok() {
            self.usage_changed(user_id).await;
        }
        respond(result)
    }

    async fn list_file_records(
        &self,
        request: Request<pb::ListFileRecordsRequest>,
    ) -> Result<Response<pb::ListFileRecordsResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(records::list_file_records(self, principal, req).await)
    }

    async fn search_files(
        &self,
        request: Request<pb::SearchFilesRequest>,
    ) -> Result<Response<pb::SearchFilesResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(records::search_files(self, principal, req).await)
    }

    async fn list_categories(
        &self,
        request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let (principal, req) = parts(request)?;
        // The everyday request (first page, default size) is cached per
        // user; every category write and every finished organize drop it.
        let cacheable = req.page_token.is_empty() && req.page_size == 0;
        let cache = &self.state.cache;
        if cacheable
            && let Some(hit) = cache
                .get::<pb::ListCategoriesResponse>("categories", principal.user_id)
                .await
        {
            return Ok(Response::new(hit));
        }
        let user_id = principal.user_id;
        let listed = categories::list_categories(self, principal, req).await?;
        if cacheable {
            cache
                .put("categories", user_id, &listed, cache.ttls.categories)
                .await;
        }
        Ok(Response::new(listed))
    }

    async fn create_category(
        &self,
        request: Request<pb::CreateCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let (principal, req) = parts(request)?;
        let user_id = principal.user_id;
        let result = categories::create_category(self, principal, req).await;
        if result.is_ok() {
            self.categories_changed(user_id).await;
        }
        respond(result)
    }

    async fn update_category(
        &self,
        request: Request<pb::UpdateCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let (principal, req) = parts(request)?;
        let user_id = principal.user_id;
        let result = categories::update_category(self, principal, req).await;
        if result.is_ok() {
            self.categories_changed(user_id).await;
        }
        respond(result)
    }

    async fn delete_category(
        &self,
        request: Request<pb::DeleteCategoryRequest>,
    ) -> Result<Response<()>, Status> {
        let (principal, req) = parts(request)?;
        let user_id = principal.user_id;
        let result = categories::delete_category(self, principal, req).await;
        if result.is_ok() {
            self.categories_changed(user_id).await;
        }
        respond(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_keep_out_of_the_trash_and_temp_names() {
        assert_eq!(parse_path("a/b.txt", "path").unwrap().as_str(), "a/b.txt");
        assert!(parse_path("", "path").unwrap().is_root());
        for bad in [
            ".trash",
            ".trash/x",
            "./.trash/x/y",
            "a/.fileorg-tmp-1",
            "../x",
        ] {
            let Err(AppError::InvalidArgument { field, .. }) = parse_path(bad, "path") else {
                panic!("{bad} accepted");
            };
            assert_eq!(field, "path");
        }
        // Only the top-level .trash is the trash.
        assert!(parse_path("docs/.trash/x", "path").is_ok());
        assert!(parse_entry_path(".", "path").is_err());
    }

    #[test]
    fn hashes_and_tokens() {
        assert_eq!(parse_hash("", "h").unwrap(), None);
        let hex = blake3::hash(b"x").to_hex().to_string();
        assert_eq!(
            parse_hash(&hex, "h").unwrap(),
            Some(*blake3::hash(b"x").as_bytes())
        );
        assert!(parse_hash(&hex.to_uppercase(), "h").unwrap().is_some());
        assert!(parse_hash("abc", "h").is_err());

        let fp = PageToken::fingerprint(&[b"a", b"b"]);
        let token = PageToken::encode(7, fp, b"pos");
        assert_eq!(
            PageToken::decode(&token, 7, fp).unwrap(),
            Some(b"pos".to_vec())
        );
        assert_eq!(PageToken::decode("", 7, fp).unwrap(), None);
        let other = PageToken::fingerprint(&[b"ab", b""]);
        assert!(PageToken::decode(&token, 7, other).is_err());
        assert!(PageToken::decode(&token, 8, fp).is_err());
        assert!(PageToken::decode("!!", 7, fp).is_err());
    }
}
