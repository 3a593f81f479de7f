//! What the FileService handlers share: the service value itself
//! ([`Files`]: the state, the caller's root and categorizer), the blocking
//! pool, the rules of request paths and conflict policies, the conversion of
//! a stored entry to a [`pb::FileEntry`] and ListDirectory's page tokens.
//! It lives apart from `api::files` (which dispatches the RPCs to the
//! submodules) so that the submodules and their parent never import each
//! other (docs/architecture.md).

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use cap_std::fs::MetadataExt;
use tonic::Status;

use crate::{
    auth::Principal,
    engine::categorize::{BuiltIn, Categorizer},
    error::{AppError, AppResult},
    infra::ratelimit::Bucket,
    pb::fileorganizer::v1::{self as pb},
    state::AppState,
    storage::{TEMP_PREFIX, UserPath, UserRoot, trash::trash_folder},
};

/// The limit a byte-budget refusal names (ErrorInfo metadata `limit`).
pub(super) const UPLOAD_BYTES: &str = "upload bytes";

/// The FileService handlers.
#[derive(Clone)]
pub struct Files {
    pub(super) state: AppState,
}

impl Files {
    /// The cached profile shows storage used: drop it after uploads and
    /// emptying the trash.
    pub(super) async fn usage_changed(&self, user_id: uuid::Uuid) {
        self.state
            .cache
            .invalidate(&[("profile", user_id.to_string())])
            .await;
    }

    /// The cached category list is stale after any category write.
    pub(super) async fn categories_changed(&self, user_id: uuid::Uuid) {
        self.state
            .cache
            .invalidate(&[("categories", user_id.to_string())])
            .await;
    }

    pub fn new(state: AppState) -> Self {
        Files { state }
    }

    /// Counts `bytes` that just arrived for an upload of `user_id` against
    /// their byte budget (`RATE_LIMIT_UPLOAD_BYTES` per window, shared by
    /// every process through Redis like the request limits). Every path that
    /// brings bytes in calls it before it writes them, so a transfer that
    /// runs past the budget is refused midway: RESOURCE_EXHAUSTED with a
    /// RetryInfo, and the path's failure rule decides what was kept.
    pub(super) async fn take_upload_bytes(
        &self,
        user_id: uuid::Uuid,
        bytes: usize,
    ) -> AppResult<()> {
        if bytes == 0 {
            return Ok(());
        }
        let budget = self.state.config.rate_limits.upload_bytes;
        let taken = self
            .state
            .limiter
            .take(&Bucket::upload_bytes_key(user_id), budget, bytes as u64)
            .await;
        if taken.allowed {
            Ok(())
        } else {
            Err(taken.refusal(UPLOAD_BYTES))
        }
    }

    /// The caller's storage root, shareable with blocking tasks.
    pub(super) fn root(&self, principal: &Principal) -> AppResult<Arc<UserRoot>> {
        self.state.user_root(principal.user_id).map(Arc::new)
    }

    /// The caller's categorizer: their custom rules, then the built-in ones.
    pub(super) async fn categorizer(&self, principal: &Principal) -> AppResult<Categorizer> {
        let mut conn = self.state.db.get().await?;
        let rules = crate::db::categories::custom_rules(&mut conn, principal.user_id).await?;
        Ok(Categorizer::new_skipping_invalid(&rules).0)
    }
}

/// Runs storage work on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    tokio::task::spawn_blocking(work).await?
}

/// Parses request field `field` as a path, refusing what the trash RPCs own
/// (`.trash/…`) and reserved temporary names.
pub(crate) fn parse_path(raw: &str, field: &str) -> AppResult<UserPath> {
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
pub(super) fn parse_entry_path(raw: &str, field: &str) -> AppResult<UserPath> {
    let path = parse_path(raw, field)?;
    if path.is_root() {
        return Err(AppError::invalid(
            field,
            "must name a file or folder, not your storage root",
        ));
    }
    Ok(path)
}

/// What a conflict policy field asks for (the domain's
/// [`FileConflictPolicy`](crate::domain::FileConflictPolicy)).
pub(super) use crate::domain::FileConflictPolicy as OnConflict;

/// The conflict policy of request field `field` (UNSPECIFIED is FAIL).
pub(super) fn conflict_policy(raw: i32, field: &str) -> AppResult<OnConflict> {
    crate::api::convert::file_conflict_policy(raw, field)
}

/// Parses an optional modification time of request field `field`: not
/// before 1970 and at most [`MAX_CLOCK_SKEW`] in the future (a clock a day
/// off is plausible; a date beyond it is a bug or an attack on the layout).
pub(super) fn parse_modify_time(
    raw: Option<&prost_types::Timestamp>,
    field: &str,
) -> AppResult<Option<SystemTime>> {
    let Some(ts) = raw else {
        return Ok(None);
    };
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| AppError::invalid(field, "nanos must be between 0 and 999,999,999"))?;
    let seconds = u64::try_from(ts.seconds)
        .map_err(|_| AppError::invalid(field, "must not be before 1970-01-01T00:00:00Z"))?;
    let time = UNIX_EPOCH + Duration::new(seconds, nanos);
    if time > SystemTime::now() + MAX_CLOCK_SKEW {
        return Err(AppError::invalid(
            field,
            "must not be more than one day in the future",
        ));
    }
    Ok(Some(time))
}

/// How far in the future a client's modify_time may be.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(24 * 3600);

/// Parses a lower-case (or upper-case) hex blake3 hash; empty is `None`.
pub(super) fn parse_hash(raw: &str, field: &str) -> AppResult<Option<[u8; 32]>> {
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
pub(super) fn file_entry(
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
pub(super) struct PageToken;

impl PageToken {
    pub(super) fn fingerprint(parts: &[&[u8]]) -> [u8; 8] {
        let mut hasher = blake3::Hasher::new();
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let mut out = [0u8; 8];
        out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        out
    }

    pub(super) fn encode(tag: u8, fingerprint: [u8; 8], position: &[u8]) -> String {
        let mut raw = Vec::with_capacity(9 + position.len());
        raw.push(tag);
        raw.extend_from_slice(&fingerprint);
        raw.extend_from_slice(position);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The position inside a token made with the same tag and fingerprint;
    /// `None` for an empty token.
    pub(super) fn decode(token: &str, tag: u8, fingerprint: [u8; 8]) -> AppResult<Option<Vec<u8>>> {
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

pub(super) type BoxStream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

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
