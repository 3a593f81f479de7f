//! DeleteFile, ListTrash, RestoreFile and EmptyTrash: requests and records.
//! What happens on disk is `storage::trash`'s (layout, measuring, moving
//! back, deleting for good, refusing a `.trash` that is not a real folder).
//!
//! DeleteFile moves the entry to `.trash/<item-id>/<name>` with
//! `renameat2(RENAME_NOREPLACE)`, after recording the item: a move that
//! fails removes the record again. Nothing is deleted outright; EmptyTrash is
//! the only deletion in the service. RestoreFile moves an item back, never
//! over an existing entry (ALREADY_EXISTS, or the first free ` (n)` name
//! under the RENAME policy).
//!
//! Duplicates an organize moved to `.trash/<operation-id>/…` are taken into
//! the trash before every trash RPC (`db::trash::adopt_operation_trash`).

use uuid::Uuid;

use super::{Files, OnConflict, blocking, conflict_policy, file_entry, parse_entry_path};
use crate::{
    api::convert,
    auth::Principal,
    db::{
        self,
        trash::{NewTrashItem, TrashItem},
    },
    error::{AppError, AppResult},
    pagination,
    pb::fileorganizer::v1::{self as pb, ErrorReason},
    storage::{MAX_DEPTH, StorageError, UserPath, UserRoot, trash::trash_folder, walk::Kind},
};

const DEFAULT_PAGE_SIZE: i32 = 100;
const COLLECTION: &str = "trash/";

fn item_name(id: Uuid) -> String {
    format!("{COLLECTION}{id}")
}

fn parse_item_name(raw: &str, field: &str) -> AppResult<Uuid> {
    raw.strip_prefix(COLLECTION)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| AppError::invalid(field, "must be trash/{id}"))
}

/// The `trash_items.kind` of an entry.
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "file",
        Kind::Dir => "directory",
        Kind::Symlink => "symlink",
        Kind::Other => "other",
    }
}

fn trash_item(item: &TrashItem) -> pb::TrashItem {
    let kind = match item.kind.as_str() {
        "file" => pb::FileKind::File,
        "directory" => pb::FileKind::Directory,
        "symlink" => pb::FileKind::Symlink,
        _ => pb::FileKind::Other,
    };
    pb::TrashItem {
        name: item_name(item.id),
        original_path: item.original_path.clone(),
        kind: kind as i32,
        size_bytes: item.size_bytes,
        delete_time: Some(convert::timestamp(item.deleted_at)),
        operation: item
            .operation_id
            .map(|id| format!("{}{id}", convert::OPERATION_COLLECTION))
            .unwrap_or_default(),
    }
}

/// Checks the trash folder before a trash RPC touches it (see
/// [`UserRoot::check_trash`]).
fn check_trash(root: &UserRoot) -> AppResult<()> {
    Ok(root.check_trash().map_err(|e| e.at(".trash"))?)
}

pub(super) async fn delete_file(
    files: &Files,
    principal: Principal,
    req: pb::DeleteFileRequest,
) -> AppResult<pb::DeleteFileResponse> {
    let path = parse_entry_path(&req.path, "path")?;
    let root = files.root(&principal)?;
    let id = Uuid::now_v7();
    let trash_path = trash_folder()
        .join(&id.to_string())
        .and_then(|folder| folder.join(path.file_name().unwrap_or_default()))
        .map_err(|e| e.at("path"))?;
    let probe = (root.clone(), path.clone());
    let (kind, size) = blocking(move || {
        let (root, path) = probe;
        check_trash(&root)?;
        let (kind, size) = root.entry_size(&path).map_err(|e| e.at("path"))?;
        Ok((kind_name(kind), i64::try_from(size).unwrap_or(i64::MAX)))
    })
    .await?;

    let mut conn = files.state.db.get().await?;
    let item = db::trash::insert(
        &mut conn,
        &NewTrashItem {
            id,
            user_id: principal.user_id,
            original_path: path.as_str(),
            trash_path: trash_path.as_str(),
            kind,
            size_bytes: size,
        },
    )
    .await?;
    // Not held while the disk works (a large folder's move can wait on a
    // busy disk; see `restore_file`).
    drop(conn);
    let moved = blocking(move || {
        Ok(root
            .rename_noreplace(&path, &trash_path)
            .map_err(|e| e.at("path"))?)
    })
    .await;
    if let Err(error) = moved {
        let mut conn = files.state.db.get().await?;
        db::trash::forget(&mut conn, id).await?;
        return Err(error);
    }
    Ok(pb::DeleteFileResponse {
        trash_item: Some(trash_item(&item)),
    })
}

pub(super) async fn list_trash(
    files: &Files,
    principal: Principal,
    req: pb::ListTrashRequest,
) -> AppResult<pb::ListTrashResponse> {
    let limit = pagination::page_size(req.page_size, DEFAULT_PAGE_SIZE)?;
    let after = pagination::decode(&req.page_token)?;
    let mut conn = files.state.db.get().await?;
    db::trash::adopt_operation_trash(&mut conn, principal.user_id).await?;
    let mut items = db::trash::list_active(&mut conn, principal.user_id, after, limit + 1).await?;
    let next_page_token = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|i| pagination::encode(i.deleted_at, i.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let total_size_bytes = db::trash::active_size(&mut conn, principal.user_id).await?;
    Ok(pb::ListTrashResponse {
        trash_items: items.iter().map(trash_item).collect(),
        next_page_token,
        total_size_bytes,
    })
}

pub(super) async fn restore_file(
    files: &Files,
    principal: Principal,
    req: pb::RestoreFileRequest,
) -> AppResult<pb::RestoreFileResponse> {
    let id = parse_item_name(&req.name, "name")?;
    let wanted = if req.path.is_empty() {
        None
    } else {
        Some(parse_entry_path(&req.path, "path")?)
    };
    let on_conflict = conflict_policy(req.conflict_policy, "conflict_policy")?;
    if on_conflict == OnConflict::SkipIfIdentical {
        return Err(AppError::invalid(
            "conflict_policy",
            "SKIP_IF_IDENTICAL applies to uploads only; restore with FAIL or RENAME",
        ));
    }
    // Read before the connection below is taken: holding one pooled
    // connection while asking for another waits for itself when the pool is
    // busy (tests/api/retries.rs).
    let categorizer = files.categorizer(&principal).await?;
    let mut conn = files.state.db.get().await?;
    db::trash::adopt_operation_trash(&mut conn, principal.user_id).await?;
    let item = db::trash::find_active(&mut conn, principal.user_id, &[id])
        .await?
        .pop()
        .ok_or_else(|| AppError::not_found(req.name.clone()))?;
    // Not held while the disk works (a folder's move, a large file's hash).
    drop(conn);
    let wanted = match wanted {
        Some(path) => path,
        None => UserPath::parse(&item.original_path).map_err(|e| {
            AppError::internal(format!("trash item {id} has a bad original path: {e}"))
        })?,
    };
    let current = UserPath::parse(&item.trash_path)
        .map_err(|e| AppError::internal(format!("trash item {id} has a bad trash path: {e}")))?;
    let root = files.root(&principal)?;
    let name = req.name.clone();
    let field = if req.path.is_empty() { "name" } else { "path" };
    let entry = blocking(move || {
        check_trash(&root)?;
        let free_name = on_conflict == OnConflict::Rename;
        let restored = match root.restore_from_trash(&current, &wanted, free_name) {
            Ok(Some(restored)) => restored,
            Ok(None) | Err(StorageError::DestinationExists) => {
                return Err(AppError::AlreadyExists {
                    reason: ErrorReason::AlreadyExists,
                    message: format!(
                        "{wanted} already exists; nothing is overwritten (restore with \
                         conflict_policy RENAME, or to another path)"
                    ),
                });
            }
            Err(StorageError::SourceMissing) => {
                return Err(AppError::FailedPrecondition {
                    message: format!("{name} is no longer in .trash on disk"),
                });
            }
            Err(StorageError::TooDeep { .. }) => {
                return Err(AppError::FailedPrecondition {
                    message: format!(
                        "{field}: restoring this folder there would nest folders more than \
                         {MAX_DEPTH} levels below your storage root, deeper than the service \
                         walks; restore it to a shallower path"
                    ),
                });
            }
            Err(e) => return Err(e.at(field).into()),
        };
        let io = |e: StorageError| AppError::from(e.at(field));
        let meta = root.symlink_metadata(&restored).map_err(io)?;
        let mut entry = file_entry(restored.as_str(), &meta, Some(&categorizer));
        if meta.is_file() {
            entry.content_hash = root.hash_file(&restored).map_err(io)?.to_hex().to_string();
        }
        Ok(entry)
    })
    .await?;
    let mut conn = files.state.db.get().await?;
    db::trash::mark_restored(&mut conn, id, &entry.path).await?;
    drop(conn);
    // Back in the user's storage: an arrival, like an upload, for the
    // automations watching where it landed.
    if let Ok(restored) = UserPath::parse(&entry.path) {
        crate::jobs::automations::files_arrived(&files.state, principal.user_id, &restored).await;
    }
    Ok(pb::RestoreFileResponse { file: Some(entry) })
}

pub(super) async fn empty_trash(
    files: &Files,
    principal: Principal,
    req: pb::EmptyTrashRequest,
) -> AppResult<pb::EmptyTrashResponse> {
    let mut ids = Vec::with_capacity(req.names.len());
    for name in &req.names {
        let id = parse_item_name(name, "names")?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut conn = files.state.db.get().await?;
    db::trash::adopt_operation_trash(&mut conn, principal.user_id).await?;
    let items = if ids.is_empty() {
        db::trash::all_active(&mut conn, principal.user_id).await?
    } else {
        let found = db::trash::find_active(&mut conn, principal.user_id, &ids).await?;
        // All or nothing: an unknown name deletes nothing.
        if let Some(missing) = ids.iter().find(|id| !found.iter().any(|i| i.id == **id)) {
            return Err(AppError::not_found(item_name(*missing)));
        }
        found
    };
    // Not held while the disk works: purging a folder of a million files
    // takes minutes, and a pool connection held that long is one fewer for
    // every other request (and, with a pool of one, waits for itself).
    drop(conn);
    let root = files.root(&principal)?;
    let checked = root.clone();
    blocking(move || check_trash(&checked)).await?;

    // One item that cannot be deleted (a bad record, a file the service may
    // not remove) is reported and skipped; it must not keep the rest of the
    // trash from being emptied.
    let (mut deleted_count, mut freed_bytes) = (0i64, 0i64);
    let mut failed_items = Vec::new();
    for item in items {
        let root = root.clone();
        let trash_path = item.trash_path.clone();
        let purged = blocking(move || {
            let path = UserPath::parse(&trash_path)
                .map_err(|e| AppError::internal(format!("trash item has a bad trash path: {e}")))?;
            let trash = trash_folder();
            if !path.starts_with(&trash) || path == trash {
                return Err(AppError::internal(format!(
                    "trash item's path {path} is not inside .trash"
                )));
            }
            Ok(root.purge_from_trash(&path).map_err(|e| e.at("names"))?)
        })
        .await;
        if let Err(error) = purged {
            tracing::warn!(item = %item.id, %error, "EmptyTrash: item skipped");
            failed_items.push(pb::TrashItemFailure {
                name: item_name(item.id),
                reason: tonic::Status::from(error).message().to_string(),
            });
            continue;
        }
        // Recorded item by item, the quota with it: a request cut off
        // midway (the client went away) leaves every purged item marked and
        // its bytes given back, never charged for files that are gone.
        let mut conn = files.state.db.get().await?;
        if db::trash::mark_purged(&mut conn, item.id).await? {
            deleted_count += 1;
            freed_bytes += item.size_bytes;
        }
    }
    Ok(pb::EmptyTrashResponse {
        deleted_count,
        freed_bytes,
        failed_items,
    })
}
