//! DeleteFile, ListTrash, RestoreFile and EmptyTrash.
//!
//! DeleteFile moves the entry to `.trash/<item-id>/<name>` (a folder per
//! item, so names never collide) with `renameat2(RENAME_NOREPLACE)`, after
//! recording the item: a move that fails removes the record again. Nothing
//! is deleted outright; EmptyTrash is the only deletion in the service and
//! removes only what lies under `.trash/`, never following symlinks.
//! RestoreFile moves an item back, never over an existing entry (ALREADY_EXISTS,
//! or the first free ` (n)` name under the RENAME policy).
//!
//! Duplicates an organize moved to `.trash/<operation-id>/…` are taken into
//! the trash before every trash RPC (`db::trash::adopt_operation_trash`).
//! The trash folder itself must be a real folder: a symlink there is refused
//! rather than followed.

use uuid::Uuid;

use super::{
    Files, OnConflict, blocking, conflict_policy, file_entry, parse_entry_path, trash_folder,
};
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
    storage::{MAX_DEPTH, StorageError, UserPath, UserRoot, walk::TreeSize},
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

fn kind_of(meta: &cap_std::fs::Metadata) -> &'static str {
    let file_type = meta.file_type();
    if file_type.is_file() {
        "file"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_symlink() {
        "symlink"
    } else {
        "other"
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

/// Refuses a `.trash` that is not a real folder (a symlink could send
/// deletions elsewhere).
fn check_trash_folder(root: &UserRoot) -> AppResult<()> {
    match root.symlink_metadata(&trash_folder()) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(AppError::FailedPrecondition {
            message: ".trash in your storage is not a folder; move it away to use the trash".into(),
        }),
        Err(StorageError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.at(".trash").into()),
    }
}

/// Total size of everything under the folder `path` (symlinks counted as
/// links, never followed), walked from a handle opened at the moment of use
/// ([`UserRoot::tree_size`]); a tree deeper than [`MAX_DEPTH`] is refused.
fn tree_size(root: &UserRoot, path: &UserPath, field: &str) -> AppResult<TreeSize> {
    Ok(root.tree_size(path, MAX_DEPTH).map_err(|e| e.at(field))?)
}

/// Refuses to restore the folder `current` to `wanted` when its tree would
/// then reach more than [`MAX_DEPTH`] levels below the root: restoring a
/// deep folder into a deep place was how a tree too deep to walk could be
/// made with the API alone (walks and sizes stop at that depth). A file, or
/// anything at a shallow place, passes at the cost of one walk of the item.
fn refuse_too_deep(
    root: &UserRoot,
    current: &UserPath,
    wanted: &UserPath,
    field: &str,
) -> AppResult<()> {
    let level = wanted.components().count();
    if !root
        .symlink_metadata(current)
        .is_ok_and(|meta| meta.is_dir())
    {
        return Ok(());
    }
    match root.tree_size(current, MAX_DEPTH.saturating_sub(level)) {
        Ok(_) => Ok(()),
        Err(StorageError::TooDeep { .. }) => Err(AppError::FailedPrecondition {
            message: format!(
                "{field}: restoring this folder there would nest folders more than \
                 {MAX_DEPTH} levels below your storage root, deeper than the service walks; \
                 restore it to a shallower path"
            ),
        }),
        // Named by where the folder was to go, as the request did.
        Err(StorageError::FolderChanged { .. }) => Err(StorageError::FolderChanged {
            folder: wanted.clone(),
        }
        .at(field)
        .into()),
        Err(e) => Err(e.at(field).into()),
    }
}

/// Removes the now empty folders between `path` and the trash folder.
fn remove_empty_trash_folders(root: &UserRoot, path: &UserPath) {
    let trash = trash_folder();
    let mut current = path.parent();
    while let Some(folder) = current {
        if folder == trash || !folder.starts_with(&trash) {
            break;
        }
        if !matches!(root.remove_dir_if_empty(&folder), Ok(true)) {
            break;
        }
        current = folder.parent();
    }
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
        check_trash_folder(&root)?;
        let meta = root.symlink_metadata(&path).map_err(|e| e.at("path"))?;
        let size = if meta.is_dir() {
            tree_size(&root, &path, "path")?.bytes
        } else {
            meta.len()
        };
        Ok((kind_of(&meta), i64::try_from(size).unwrap_or(i64::MAX)))
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
    let moved = blocking(move || {
        Ok(root
            .rename_noreplace(&path, &trash_path)
            .map_err(|e| e.at("path"))?)
    })
    .await;
    if let Err(error) = moved {
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
    let mut conn = files.state.db.get().await?;
    db::trash::adopt_operation_trash(&mut conn, principal.user_id).await?;
    let item = db::trash::find_active(&mut conn, principal.user_id, &[id])
        .await?
        .pop()
        .ok_or_else(|| AppError::not_found(req.name.clone()))?;
    let wanted = match wanted {
        Some(path) => path,
        None => UserPath::parse(&item.original_path).map_err(|e| {
            AppError::internal(format!("trash item {id} has a bad original path: {e}"))
        })?,
    };
    let current = UserPath::parse(&item.trash_path)
        .map_err(|e| AppError::internal(format!("trash item {id} has a bad trash path: {e}")))?;
    let categorizer = files.categorizer(&principal).await?;
    let root = files.root(&principal)?;
    let name = req.name.clone();
    let field = if req.path.is_empty() { "name" } else { "path" };
    let entry = blocking(move || {
        check_trash_folder(&root)?;
        refuse_too_deep(&root, &current, &wanted, field)?;
        let restored = match on_conflict {
            OnConflict::Rename => root.rename_to_free_name(&current, &wanted),
            OnConflict::Fail => root
                .rename_noreplace(&current, &wanted)
                .map(|()| Some(wanted.clone())),
        };
        let restored = match restored {
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
            Err(e) => return Err(e.at(field).into()),
        };
        remove_empty_trash_folders(&root, &current);
        let io = |e: StorageError| AppError::from(e.at(field));
        let meta = root.symlink_metadata(&restored).map_err(io)?;
        let mut entry = file_entry(restored.as_str(), &meta, Some(&categorizer));
        if meta.is_file() {
            entry.content_hash = root.hash_file(&restored).map_err(io)?.to_hex().to_string();
        }
        Ok(entry)
    })
    .await?;
    db::trash::mark_restored(&mut conn, id, &entry.path).await?;
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
    let root = files.root(&principal)?;
    let checked = root.clone();
    blocking(move || check_trash_folder(&checked)).await?;

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
            purge(&root, &path)
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
        if db::trash::mark_purged(&mut conn, item.id).await? {
            deleted_count += 1;
            freed_bytes += item.size_bytes;
        }
    }
    db::quota::release(&mut conn, principal.user_id, freed_bytes).await?;
    Ok(pb::EmptyTrashResponse {
        deleted_count,
        freed_bytes,
        failed_items,
    })
}

/// Deletes the entry at `path` (inside `.trash/`) for good: a folder with
/// everything in it, never following symlinks, at any depth
/// ([`UserRoot::remove_tree`]). Already gone is fine.
fn purge(root: &UserRoot, path: &UserPath) -> AppResult<()> {
    root.remove_tree(path).map_err(|e| e.at("names"))?;
    remove_empty_trash_folders(root, path);
    Ok(())
}
