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
//! - [`upload`]: UploadFile / UploadSmallFile / UploadRawFile (sizes, hash,
//!   quota, conflict policies, modify_time; the file
//!   itself is a `storage::NewFile`: temp file, fsync, no-replace publish);
//! - [`browse`]: ListDirectory / DownloadFile;
//! - [`import`]: ImportArchive (the stream fed to `engine::archive`);
//! - [`export`]: DownloadArchive (`engine::archive::export` into the stream);
//! - [`trash`]: DeleteFile / ListTrash / RestoreFile / EmptyTrash;
//! - [`sessions`]: resumable uploads (CreateUpload, GetUpload,
//!   AppendUpload, FinishUpload, CancelUpload; their expiry sweep);
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
mod export;
mod import;
mod records;
mod sessions;
mod shared;
mod trash;
mod upload;

use tonic::{Request, Response, Status, Streaming};

use super::{parts, respond};
use crate::pb::{
    fileorganizer::v1::{self as pb, file_service_server::FileService},
    google::api::HttpBody,
};
pub use sessions::run_sweeper as run_upload_sweeper;
pub use shared::Files;
pub(super) use shared::parse_path;
use shared::{
    BoxStream, OnConflict, PageToken, blocking, conflict_policy, file_entry, parse_entry_path,
    parse_hash, parse_modify_time,
};

#[tonic::async_trait]
impl FileService for Files {
    async fn upload_file(
        &self,
        request: Request<Streaming<pb::UploadFileRequest>>,
    ) -> Result<Response<pb::UploadFileResponse>, Status> {
        let (principal, stream) = parts(request)?;
        let user_id = principal.user_id;
        let stored = upload::upload_stream(self, principal, stream).await?;
        self.usage_changed(user_id).await;
        Ok(Response::new(pb::UploadFileResponse {
            file: Some(stored.entry),
            skipped_identical: stored.skipped_identical,
        }))
    }

    async fn upload_small_file(
        &self,
        request: Request<pb::UploadSmallFileRequest>,
    ) -> Result<Response<pb::UploadSmallFileResponse>, Status> {
        let (principal, req) = parts(request)?;
        let user_id = principal.user_id;
        let stored = upload::upload_small(self, principal, req).await?;
        self.usage_changed(user_id).await;
        Ok(Response::new(pb::UploadSmallFileResponse {
            file: Some(stored.entry),
            skipped_identical: stored.skipped_identical,
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

    async fn download_archive(
        &self,
        request: Request<pb::DownloadArchiveRequest>,
    ) -> Result<Response<BoxStream<HttpBody>>, Status> {
        let (principal, req) = parts(request)?;
        let slot = self.state.stream_slots.acquire(principal.user_id)?;
        let response = export::download_archive(self, principal, req).await?;
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

    async fn upload_raw_file(
        &self,
        request: Request<Streaming<pb::UploadRawFileRequest>>,
    ) -> Result<Response<pb::UploadRawFileResponse>, Status> {
        let (principal, stream) = parts(request)?;
        let user_id = principal.user_id;
        let stored = upload::upload_raw(self, principal, stream).await?;
        self.usage_changed(user_id).await;
        Ok(Response::new(pb::UploadRawFileResponse {
            file: Some(stored.entry),
            skipped_identical: stored.skipped_identical,
        }))
    }

    async fn create_upload(
        &self,
        request: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::Upload>, Status> {
        let (principal, req) = parts(request)?;
        let user_id = principal.user_id;
        let result = sessions::create_upload(self, principal, req).await;
        if result.is_ok() {
            // The reservation counts as used.
            self.usage_changed(user_id).await;
        }
        respond(result)
    }

    async fn get_upload(
        &self,
        request: Request<pb::GetUploadRequest>,
    ) -> Result<Response<pb::Upload>, Status> {
        let (principal, req) = parts(request)?;
        respond(sessions::get_upload(self, principal, req).await)
    }

    async fn append_upload(
        &self,
        request: Request<Streaming<pb::AppendUploadRequest>>,
    ) -> Result<Response<pb::Upload>, Status> {
        let (principal, stream) = parts(request)?;
        Ok(Response::new(
            sessions::append_upload(self, principal, stream).await?,
        ))
    }

    async fn finish_upload(
        &self,
        request: Request<pb::FinishUploadRequest>,
    ) -> Result<Response<pb::FinishUploadResponse>, Status> {
        let (principal, req) = parts(request)?;
        let user_id = principal.user_id;
        let result = sessions::finish_upload(self, principal, req).await;
        self.usage_changed(user_id).await;
        let stored = result?;
        Ok(Response::new(pb::FinishUploadResponse {
            file: Some(stored.entry),
            skipped_identical: stored.skipped_identical,
        }))
    }

    async fn cancel_upload(
        &self,
        request: Request<pb::CancelUploadRequest>,
    ) -> Result<Response<()>, Status> {
        let (principal, req) = parts(request)?;
        let user_id = principal.user_id;
        let result = sessions::cancel_upload(self, principal, req).await;
        if result.is_ok() {
            self.usage_changed(user_id).await;
        }
        respond(result)
    }

    async fn import_archive(
        &self,
        request: Request<Streaming<pb::ImportArchiveRequest>>,
    ) -> Result<Response<pb::ImportArchiveResponse>, Status> {
        let (principal, stream) = parts(request)?;
        let imported = import::import_archive(self, principal, stream).await?;
        Ok(Response::new(imported))
    }
}
