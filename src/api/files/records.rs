//! ListFileRecords and SearchFiles: the journal, as people read it.
//!
//! Both page with opaque keyset tokens (see [`super::PageToken`]): the
//! position is the last row's sort key and seq, and the fingerprint binds a
//! token to the filters and order it was made for. The SQL lives in
//! `db::file_search`.

use chrono::DateTime;
use uuid::Uuid;

use super::{Files, PageToken, parse_hash};
use crate::{
    api::{convert, operations::parse_name},
    auth::Principal,
    db::{
        self,
        file_search::{
            RecordCursor, RecordFilter, RecordOrder, RecordRow, SearchCursor, SearchFilter, SortKey,
        },
    },
    domain::RecordStatus,
    error::{AppError, AppResult},
    infra::memo::{self, Memo},
    pagination,
    pb::fileorganizer::v1::{self as pb, FileRecordStatus},
};

const RECORDS_PAGE_SIZE: i32 = 100;
const SEARCH_PAGE_SIZE: i32 = 50;
const RECORDS_TAG: u8 = b'r';
const SEARCH_TAG: u8 = b's';
/// Shortest name substring SearchFiles accepts (the trigram index needs 3).
const MIN_NAME_CHARS: usize = 3;

/// The counts of a ListFileRecords page are stored as the API's message
/// (`infra::memo`).
impl Memo for pb::ListFileRecordsResponse {
    fn encode(&self) -> AppResult<Vec<u8>> {
        Ok(prost::Message::encode_to_vec(self))
    }

    fn decode(bytes: &[u8]) -> AppResult<Self> {
        <Self as prost::Message>::decode(bytes).map_err(AppError::internal)
    }
}

/// The API form of a record.
fn file_record(row: &RecordRow) -> pb::FileRecord {
    let operation = format!("{}{}", convert::OPERATION_COLLECTION, row.operation_id);
    pb::FileRecord {
        name: format!("{operation}/files/{}", row.seq),
        seq: row.seq,
        original_path: row.original_path.clone(),
        new_path: row.new_path.clone().unwrap_or_default(),
        size_bytes: row.size_bytes,
        modify_time: row.modified_at.map(convert::timestamp),
        content_hash: row
            .content_hash
            .as_deref()
            .map(hex::encode)
            .unwrap_or_default(),
        category: row.category.clone(),
        duplicate_of: row
            .duplicate_of
            .map(|seq| format!("{operation}/files/{seq}"))
            .unwrap_or_default(),
        duplicate_of_path: row.duplicate_of_path.clone().unwrap_or_default(),
        status: FileRecordStatus::from(row.status) as i32,
        reason: row.reason.clone().unwrap_or_default(),
        create_time: Some(convert::timestamp(row.created_at)),
        // The journal keeps no per-record change time.
        update_time: None,
        operation,
        rule: row
            .rule_id
            .map(|id| format!("{}{id}", convert::RULE_COLLECTION))
            .unwrap_or_default(),
        rule_version: row.rule_version.unwrap_or(0),
    }
}

/// `order_by`: a field, optionally followed by `asc` or `desc`.
fn parse_order(raw: &str) -> AppResult<RecordOrder> {
    let bad = || {
        AppError::invalid(
            "order_by",
            "must be one of create_time, size_bytes, original_path, new_path, \
             optionally followed by \" desc\"",
        )
    };
    let words: Vec<&str> = raw.split_whitespace().collect();
    let (field, descending) = match words.as_slice() {
        [] => {
            return Ok(RecordOrder {
                key: SortKey::Journal,
                descending: false,
            });
        }
        [field] => (*field, false),
        [field, direction] if direction.eq_ignore_ascii_case("desc") => (*field, true),
        [field, direction] if direction.eq_ignore_ascii_case("asc") => (*field, false),
        _ => return Err(bad()),
    };
    let key = match field {
        "create_time" => SortKey::Journal,
        "size_bytes" => SortKey::Size,
        "original_path" => SortKey::OriginalPath,
        "new_path" => SortKey::NewPath,
        _ => return Err(bad()),
    };
    Ok(RecordOrder { key, descending })
}

fn encode_record_cursor(cursor: &RecordCursor) -> Vec<u8> {
    let mut out = Vec::new();
    match cursor {
        RecordCursor::Journal { seq } => out.extend_from_slice(&seq.to_le_bytes()),
        RecordCursor::Size { size, seq } => {
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
        }
        RecordCursor::Path { path, seq } => {
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(path.as_bytes());
        }
    }
    out
}

fn decode_record_cursor(raw: &[u8], order: RecordOrder) -> AppResult<RecordCursor> {
    let bad = || AppError::invalid("page_token", "is not a token from a previous response");
    let int = |bytes: &[u8]| -> AppResult<i64> {
        Ok(i64::from_le_bytes(bytes.try_into().map_err(|_| bad())?))
    };
    if raw.len() < 8 {
        return Err(bad());
    }
    let seq = int(&raw[..8])?;
    let rest = &raw[8..];
    Ok(match order.key {
        SortKey::Journal if rest.is_empty() => RecordCursor::Journal { seq },
        SortKey::Size => RecordCursor::Size {
            size: int(rest)?,
            seq,
        },
        SortKey::OriginalPath | SortKey::NewPath => RecordCursor::Path {
            path: String::from_utf8(rest.to_vec()).map_err(|_| bad())?,
            seq,
        },
        SortKey::Journal => return Err(bad()),
    })
}

pub(super) async fn list_file_records(
    files: &Files,
    principal: Principal,
    req: pb::ListFileRecordsRequest,
) -> AppResult<pb::ListFileRecordsResponse> {
    let operation_id = parse_name(&req.parent, "parent")?;
    let limit = pagination::page_size(req.page_size, RECORDS_PAGE_SIZE)?;
    let status = convert::from_request::<RecordStatus, FileRecordStatus>(
        req.status,
        "status",
        "unknown status",
    )?;
    if req.min_size_bytes < 0 {
        return Err(AppError::invalid("min_size_bytes", "must not be negative"));
    }
    let category = category_filter(&req.category, "category")?;
    let filter = RecordFilter {
        status,
        category: (!category.is_empty()).then(|| category.to_string()),
        min_size_bytes: (req.min_size_bytes > 0).then_some(req.min_size_bytes),
        duplicates_only: req.duplicates_only,
    };
    let order = parse_order(&req.order_by)?;
    let fingerprint = PageToken::fingerprint(&[
        operation_id.as_bytes(),
        status.map_or("", RecordStatus::as_str).as_bytes(),
        category.to_lowercase().as_bytes(),
        &req.min_size_bytes.to_le_bytes(),
        &[u8::from(req.duplicates_only)],
        format!("{order:?}").as_bytes(),
    ]);
    let after = PageToken::decode(&req.page_token, RECORDS_TAG, fingerprint)?
        .map(|raw| decode_record_cursor(&raw, order))
        .transpose()?;

    let mut conn = files.state.db.get().await?;
    let operation = db::operations::find_for_user(&mut conn, principal.user_id, operation_id)
        .await?
        .ok_or_else(|| AppError::not_found(req.parent.clone()))?;
    let mut rows = db::file_search::list_records(
        &mut conn,
        operation_id,
        &filter,
        order,
        after.as_ref(),
        limit + 1,
    )
    .await?;
    drop(conn);
    // The counts scan the operation's records: once per version of the
    // operation and set of filters, not on every page.
    let kind = format!(
        "record_counts:{}:{}:{}:{}",
        filter.status.map_or("", RecordStatus::as_str),
        filter.min_size_bytes.unwrap_or_default(),
        filter.duplicates_only,
        filter.category.as_deref().unwrap_or_default()
    );
    let counted = memo::memoized(&files.state, &operation, &kind, || async {
        let mut conn = files.state.db.get().await?;
        let counts = db::file_search::status_counts(&mut conn, operation_id, &filter).await?;
        Ok(pb::ListFileRecordsResponse {
            total_size: counts.matching,
            status_counts: Some(pb::FileRecordStatusCounts {
                total: counts.total,
                planned: counts.planned,
                completed: counts.completed,
                skipped: counts.skipped,
                failed: counts.failed,
                duplicate: counts.duplicate,
                undone: counts.undone,
            }),
            ..Default::default()
        })
    })
    .await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|row| {
                let cursor = order.cursor_after(row);
                PageToken::encode(RECORDS_TAG, fingerprint, &encode_record_cursor(&cursor))
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListFileRecordsResponse {
        file_records: rows.iter().map(file_record).collect(),
        next_page_token,
        ..counted
    })
}

/// A category filter, trimmed. Category names hold no control characters
/// (CreateCategory refuses them), and Postgres text cannot hold NUL: such a
/// filter is INVALID_ARGUMENT here rather than a database error.
fn category_filter<'a>(raw: &'a str, field: &str) -> AppResult<&'a str> {
    let category = raw.trim();
    if category.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            "category names contain no control characters",
        ));
    }
    Ok(category)
}

pub(super) async fn search_files(
    files: &Files,
    principal: Principal,
    req: pb::SearchFilesRequest,
) -> AppResult<pb::SearchFilesResponse> {
    let name = req.name_contains.trim();
    if !name.is_empty() {
        if name.chars().count() < MIN_NAME_CHARS {
            return Err(AppError::invalid(
                "name_contains",
                format!("must be empty or at least {MIN_NAME_CHARS} characters"),
            ));
        }
        if name.contains('/') || name.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "name_contains",
                "is matched against file names, which contain no '/' or control characters",
            ));
        }
    }
    let category = category_filter(&req.category, "category")?;
    let hash = parse_hash(req.content_hash.trim(), "content_hash")?;
    if name.is_empty() && category.is_empty() && hash.is_none() {
        return Err(AppError::invalid(
            "name_contains",
            "give at least one of name_contains, category and content_hash",
        ));
    }
    let operation_id = if req.operation.is_empty() {
        None
    } else {
        Some(parse_name(&req.operation, "operation")?)
    };
    let limit = pagination::page_size(req.page_size, SEARCH_PAGE_SIZE)?;
    let fingerprint = PageToken::fingerprint(&[
        name.to_lowercase().as_bytes(),
        category.to_lowercase().as_bytes(),
        hash.as_ref().map_or(&[][..], |h| &h[..]),
        operation_id.as_ref().map_or(&[][..], |id| id.as_bytes()),
    ]);
    let after = PageToken::decode(&req.page_token, SEARCH_TAG, fingerprint)?
        .map(|raw| decode_search_cursor(&raw))
        .transpose()?;

    let mut conn = files.state.db.get().await?;
    if let Some(id) = operation_id {
        db::operations::find_for_user(&mut conn, principal.user_id, id)
            .await?
            .ok_or_else(|| AppError::not_found(req.operation.clone()))?;
    }
    let filter = SearchFilter {
        name_contains: (!name.is_empty()).then(|| name.to_string()),
        category: (!category.is_empty()).then(|| category.to_string()),
        content_hash: hash.map(|h| h.to_vec()),
        operation_id,
    };
    let mut rows = db::file_search::search(
        &mut conn,
        principal.user_id,
        &filter,
        after.as_ref(),
        limit + 1,
    )
    .await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|row| {
                let cursor = SearchCursor::after(row);
                PageToken::encode(SEARCH_TAG, fingerprint, &encode_search_cursor(&cursor))
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::SearchFilesResponse {
        file_records: rows.iter().map(file_record).collect(),
        next_page_token,
    })
}

fn encode_search_cursor(cursor: &SearchCursor) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&cursor.created_at.timestamp_micros().to_le_bytes());
    out.extend_from_slice(cursor.operation_id.as_bytes());
    out.extend_from_slice(&cursor.seq.to_le_bytes());
    out
}

fn decode_search_cursor(raw: &[u8]) -> AppResult<SearchCursor> {
    let bad = || AppError::invalid("page_token", "is not a token from a previous response");
    if raw.len() != 32 {
        return Err(bad());
    }
    let micros = i64::from_le_bytes(raw[..8].try_into().map_err(|_| bad())?);
    Ok(SearchCursor {
        created_at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        operation_id: Uuid::from_slice(&raw[8..24]).map_err(|_| bad())?,
        seq: i64::from_le_bytes(raw[24..].try_into().map_err(|_| bad())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_parse() {
        let o = |raw| parse_order(raw).map(|o| (o.key, o.descending));
        assert_eq!(o("").unwrap(), (SortKey::Journal, false));
        assert_eq!(o("size_bytes desc").unwrap(), (SortKey::Size, true));
        assert_eq!(o(" new_path  ASC ").unwrap(), (SortKey::NewPath, false));
        assert_eq!(o("original_path").unwrap(), (SortKey::OriginalPath, false));
        for bad in ["size", "size_bytes sideways", "create_time desc x", "seq"] {
            assert!(parse_order(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        for (cursor, key) in [
            (RecordCursor::Journal { seq: 7 }, SortKey::Journal),
            (RecordCursor::Size { size: 99, seq: 3 }, SortKey::Size),
            (
                RecordCursor::Path {
                    path: "a/é b".into(),
                    seq: 1,
                },
                SortKey::NewPath,
            ),
        ] {
            let order = RecordOrder {
                key,
                descending: true,
            };
            let raw = encode_record_cursor(&cursor);
            assert_eq!(decode_record_cursor(&raw, order).unwrap(), cursor);
        }
        let search = SearchCursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            operation_id: Uuid::now_v7(),
            seq: 42,
        };
        assert_eq!(
            decode_search_cursor(&encode_search_cursor(&search)).unwrap(),
            search
        );
        assert!(decode_search_cursor(b"short").is_err());
    }
}
