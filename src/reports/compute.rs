//! Computing an operation's report, for the API and for the job that
//! finishes the operation alike.
//!
//! Scan facts (files and bytes scanned, files planned) are the operation's
//! counters; outcomes, the categories, the largest files, duplicates and
//! where a `{taken_…}` layout's dates came from are aggregated from its
//! journal by Postgres (`db::reports`). The report of an
//! operation at rest is stored per version of the operation
//! (`infra::memo`, as the domain's JSON under [`REPORT_MEMO`]): computed
//! once, by the job in its REPORT phase, and read by every request after.

use chrono::Utc;

use crate::{
    db::{self, models::Operation},
    domain::{OperationKind, Report, TakenDates, report::category_shares},
    error::{AppError, AppResult},
    infra::memo::{self, Memo},
    state::AppState,
};

/// The `operation_memos` kind of a stored report. Reports were stored as
/// protobuf under `report` before they were the domain's; those rows are
/// simply not read any more (a new kind rather than a new format under the
/// old one, so that processes of both versions can run side by side).
pub const REPORT_MEMO: &str = "report.json";

impl Memo for Report {
    fn encode(&self) -> AppResult<Vec<u8>> {
        serde_json::to_vec(self).map_err(AppError::internal)
    }

    fn decode(bytes: &[u8]) -> AppResult<Self> {
        serde_json::from_slice(bytes).map_err(AppError::internal)
    }
}

/// The report of `op`: stored for its current version, or computed (and
/// stored when the operation is at rest).
pub async fn report_of(state: &AppState, op: &Operation) -> AppResult<Report> {
    memo::memoized(state, op, REPORT_MEMO, || compute(state, op)).await
}

/// Computes the report of `op` now. An UNDO operation has no journal of its
/// own (it changes its target's), so its report is its counters.
pub async fn compute(state: &AppState, op: &Operation) -> AppResult<Report> {
    let now = Utc::now();
    let mut report = Report {
        operation_id: op.id,
        kind: op.kind,
        state: op.state,
        dry_run: op.dry_run,
        start_time: op.started_at,
        end_time: op.finished_at,
        duration: op
            .started_at
            .and_then(|start| (op.finished_at.unwrap_or(now) - start).to_std().ok()),
        totals: op.counters(),
        categories: Vec::new(),
        top_categories: Vec::new(),
        largest_files: Vec::new(),
        duplicate_group_count: 0,
        duplicate_file_count: 0,
        reclaimable_bytes: 0,
        compute_time: now,
        taken_dates: TakenDates::default(),
    };
    if op.kind == OperationKind::Undo {
        return Ok(report);
    }
    let mut conn = state.db.get().await?;
    let outcomes = db::reports::outcomes(&mut conn, op.id).await?;
    let t = &mut report.totals;
    t.files_moved = outcomes.moved;
    t.bytes_moved = outcomes.moved_bytes;
    t.files_skipped = outcomes.skipped;
    t.files_failed = outcomes.failed;
    t.duplicates_found = outcomes.duplicate_files;
    t.reclaimable_bytes = outcomes.reclaimable_bytes;
    report.duplicate_group_count = outcomes.duplicate_groups;
    report.duplicate_file_count = outcomes.duplicate_files;
    report.reclaimable_bytes = outcomes.reclaimable_bytes;
    report.taken_dates = TakenDates {
        from_metadata: outcomes.taken_from_metadata,
        from_mtime: outcomes.taken_from_mtime,
    };
    let (categories, top) = category_shares(db::reports::categories(&mut conn, op.id).await?);
    report.categories = categories;
    report.top_categories = top;
    report.largest_files = db::reports::largest_files(&mut conn, op.id).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Counters, OperationState, Record, RecordStatus, report::CategoryShare};

    /// What is stored is what is read back, to the nanosecond.
    #[test]
    fn a_stored_report_reads_back_whole() {
        let now = Utc::now();
        let report = Report {
            operation_id: uuid::Uuid::now_v7(),
            kind: OperationKind::Deduplicate,
            state: OperationState::Succeeded,
            dry_run: true,
            start_time: Some(now),
            end_time: None,
            duration: Some(std::time::Duration::from_nanos(1_500_000_001)),
            totals: Counters {
                files_moved: 3,
                reclaimable_bytes: 9,
                ..Default::default()
            },
            categories: vec![CategoryShare {
                category: "Images".into(),
                file_count: 2,
                size_bytes: 10,
                percentage: 100.0 / 3.0,
            }],
            top_categories: vec!["Images".into()],
            largest_files: vec![Record {
                seq: 1,
                original_path: "a/b.jpg".into(),
                new_path: Some("Images/b.jpg".into()),
                size_bytes: 10,
                modify_time: Some(now),
                content_hash: Some(vec![0xab; 32]),
                category: "Images".into(),
                duplicate_of: None,
                duplicate_of_path: None,
                status: RecordStatus::Duplicate,
                reason: None,
                create_time: now,
                decided_by: None,
            }],
            duplicate_group_count: 1,
            duplicate_file_count: 1,
            reclaimable_bytes: 9,
            compute_time: now,
            taken_dates: TakenDates {
                from_metadata: 4,
                from_mtime: 5,
            },
        };
        assert_eq!(Report::decode(&report.encode().unwrap()).unwrap(), report);
        assert!(Report::decode(b"\x0a\x05bytes").is_err());
        // A report stored before the date counts existed reads them as zero.
        let mut older: serde_json::Value =
            serde_json::from_slice(&report.encode().unwrap()).unwrap();
        older
            .as_object_mut()
            .unwrap()
            .remove("taken_dates")
            .unwrap();
        let read = Report::decode(&serde_json::to_vec(&older).unwrap()).unwrap();
        assert_eq!(read.taken_dates, TakenDates::default());
        assert_eq!(read.largest_files, report.largest_files);
    }
}
