//! The journal's rows as the engine plans them.

use chrono::{DateTime, Utc};

use super::{DecidedBy, RecordStatus};

/// One journal row, as planned: the engine emits these (`engine::plan`) and
/// `db::file_records` writes them to `file_records`.
#[derive(Debug, Clone)]
pub struct JournalRow {
    pub seq: i64,
    pub original_path: String,
    pub new_path: Option<String>,
    pub size_bytes: i64,
    pub modified_at: Option<DateTime<Utc>>,
    pub device: Option<i64>,
    pub inode: Option<i64>,
    pub content_hash: Option<Vec<u8>>,
    pub category: String,
    pub duplicate_of: Option<i64>,
    /// Planned or skipped.
    pub status: RecordStatus,
    pub reason: Option<String>,
    pub mtime_ns: Option<i64>,
    /// Status-change time at scan time, nanoseconds since the epoch.
    pub ctime_ns: Option<i64>,
    /// Where the date of a layout with `{taken_…}` tokens came from: true,
    /// the file's metadata (its capture date); false, its modification
    /// time. None when the layout used no such date for this file (the
    /// template has no `{taken_…}` token, or the file was not placed by the
    /// template). The report counts these (`TakenDates`).
    pub taken_from_metadata: Option<bool>,
    /// The organizing rule that decided the file, if one did.
    pub decided_by: Option<DecidedBy>,
}
