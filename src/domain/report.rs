//! An operation's report as plain values.
//!
//! Computed by `reports::compute` from the operation's counters and journal
//! aggregates (`db::reports`), stored per version of the operation
//! (`infra::memo`), converted to protobuf by the API and written as CSV,
//! JSON or HTML by the writers of `reports`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Counters, OperationKind, OperationState, RecordStatus};

/// The report of one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub operation_id: Uuid,
    pub kind: OperationKind,
    pub state: OperationState,
    pub dry_run: bool,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// End minus start, or now minus start while the operation runs.
    pub duration: Option<std::time::Duration>,
    pub totals: Counters,
    /// Most bytes first.
    pub categories: Vec<CategoryShare>,
    /// Names of the (up to [`TOP_CATEGORIES`]) categories with the most bytes.
    pub top_categories: Vec<String>,
    /// The (up to [`LARGEST_FILES`]) largest files, largest first.
    pub largest_files: Vec<Record>,
    pub duplicate_group_count: i64,
    pub duplicate_file_count: i64,
    pub reclaimable_bytes: i64,
    pub compute_time: DateTime<Utc>,
    /// Where the dates of a layout with `{taken_…}` tokens came from.
    /// Reports stored before these counts existed read as zero.
    #[serde(default)]
    pub taken_dates: TakenDates,
}

/// How many files an organize placed by their capture date (from the
/// file's metadata) and how many by their modification time (no capture
/// date found), for a layout template with `{taken_…}` tokens. Both are
/// zero when the template has none: the metadata is then not read at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakenDates {
    pub from_metadata: i64,
    pub from_mtime: i64,
}

/// How many categories `top_categories` names.
pub const TOP_CATEGORIES: usize = 5;
/// How many files `largest_files` lists.
pub const LARGEST_FILES: i64 = 10;

impl Report {
    pub fn name(&self) -> String {
        format!("reports/{}", self.operation_id)
    }

    pub fn operation_name(&self) -> String {
        format!("operations/{}", self.operation_id)
    }
}

/// The files of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryShare {
    pub category: String,
    pub file_count: i64,
    pub size_bytes: i64,
    /// Share of all categorized bytes, 0 to 100.
    pub percentage: f64,
}

/// Per-category rows (sorted by bytes, most first) with their percentages,
/// and the names of the top ones.
pub fn category_shares(rows: Vec<(String, i64, i64)>) -> (Vec<CategoryShare>, Vec<String>) {
    let total: i64 = rows.iter().map(|(_, _, bytes)| *bytes).sum();
    let shares: Vec<CategoryShare> = rows
        .into_iter()
        .map(|(category, file_count, size_bytes)| CategoryShare {
            percentage: if total > 0 {
                100.0 * size_bytes as f64 / total as f64
            } else {
                0.0
            },
            category,
            file_count,
            size_bytes,
        })
        .collect();
    let top = shares
        .iter()
        .take(TOP_CATEGORIES)
        .map(|c| c.category.clone())
        .collect();
    (shares, top)
}

/// One journal record as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: i64,
    pub original_path: String,
    pub new_path: Option<String>,
    pub size_bytes: i64,
    pub modify_time: Option<DateTime<Utc>>,
    /// blake3 bytes, when computed.
    pub content_hash: Option<Vec<u8>>,
    pub category: String,
    /// The kept record's seq, for a duplicate.
    pub duplicate_of: Option<i64>,
    /// The kept file's current path, for a duplicate.
    pub duplicate_of_path: Option<String>,
    pub status: RecordStatus,
    pub reason: Option<String>,
    pub create_time: DateTime<Utc>,
    /// The organizing rule that decided the file, if one did (absent from
    /// reports stored before rules existed).
    #[serde(default)]
    pub decided_by: Option<super::DecidedBy>,
}

impl Record {
    /// Where the file is now: its new path once it moved, else where it was.
    pub fn current_path(&self) -> &str {
        match &self.new_path {
            Some(new) if self.status.is_moved() => new,
            _ => &self.original_path,
        }
    }
}

/// Files of one operation with the same content.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateGroup {
    pub content_hash: Vec<u8>,
    pub size_bytes: i64,
    pub file_count: i64,
    /// size × (count − 1).
    pub reclaimable_bytes: i64,
    pub kept_path: String,
    /// The kept file first, then by path.
    pub files: Vec<DuplicateFile>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateFile {
    pub seq: i64,
    pub original_path: String,
    /// Where the file is now.
    pub path: String,
    pub modify_time: Option<DateTime<Utc>>,
    pub kept: bool,
}

/// `operations/{id}/files/{seq}`.
pub fn record_name(operation_id: Uuid, seq: i64) -> String {
    format!("operations/{operation_id}/files/{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_top_categories() {
        let (shares, top) = category_shares(vec![
            ("Images".into(), 2, 300),
            ("Documents".into(), 5, 100),
            ("Other".into(), 1, 0),
        ]);
        assert_eq!(shares[0].percentage, 75.0);
        assert_eq!(shares[1].percentage, 25.0);
        assert_eq!(shares[2].percentage, 0.0);
        assert_eq!(top, ["Images", "Documents", "Other"]);
        let (empty, _) = category_shares(vec![("Other".into(), 1, 0)]);
        assert_eq!(empty[0].percentage, 0.0);
    }
}
