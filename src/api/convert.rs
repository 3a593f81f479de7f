//! Conversions between database rows and protobuf messages.

use chrono::{DateTime, Utc};

use crate::{db::models, domain::Role, pb::fileorganizer::v1 as pb};

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

pub fn duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn from_timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

pub fn user(user: &models::User) -> pb::User {
    pb::User {
        name: format!("users/{}", user.id),
        id: user.id.to_string(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: pb::UserRole::from(user.role) as i32,
        storage_used_bytes: user.storage_used_bytes,
        storage_quota_bytes: user.storage_quota_bytes,
        create_time: Some(timestamp(user.created_at)),
        update_time: Some(timestamp(user.updated_at)),
        last_login_time: user.last_login_at.map(timestamp),
    }
}

impl From<Role> for pb::UserRole {
    fn from(role: Role) -> Self {
        match role {
            Role::User => pb::UserRole::User,
            Role::Admin => pb::UserRole::Admin,
        }
    }
}

pub const API_KEY_COLLECTION: &str = "api-keys/";

pub fn api_key(key: &models::ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        name: format!("{API_KEY_COLLECTION}{}", key.id),
        display_name: key.name.clone(),
        prefix: key.prefix.clone(),
        scopes: key.scopes.iter().flatten().cloned().collect(),
        expire_time: key.expires_at.map(timestamp),
        create_time: Some(timestamp(key.created_at)),
        last_used_time: key.last_used_at.map(timestamp),
        revoke_time: key.revoked_at.map(timestamp),
        revoked: key.revoked_at.is_some(),
    }
}

pub const OPERATION_COLLECTION: &str = "operations/";

pub fn operation_state(state: &str) -> pb::OperationState {
    use pb::OperationState as S;
    match state {
        "queued" => S::Queued,
        "running" => S::Running,
        "planned" => S::Planned,
        "applying" => S::Applying,
        "succeeded" => S::Succeeded,
        "failed" => S::Failed,
        "cancelling" => S::Cancelling,
        "cancelled" => S::Cancelled,
        _ => S::Unspecified,
    }
}

pub fn operation_state_name(state: pb::OperationState) -> Option<&'static str> {
    use pb::OperationState as S;
    Some(match state {
        S::Queued => "queued",
        S::Running => "running",
        S::Planned => "planned",
        S::Applying => "applying",
        S::Succeeded => "succeeded",
        S::Failed => "failed",
        S::Cancelling => "cancelling",
        S::Cancelled => "cancelled",
        S::Unspecified => return None,
    })
}

pub fn operation_kind(kind: &str) -> pb::OperationKind {
    match kind {
        "organize" => pb::OperationKind::Organize,
        "deduplicate" => pb::OperationKind::Deduplicate,
        "undo" => pb::OperationKind::Undo,
        _ => pb::OperationKind::Unspecified,
    }
}

pub fn operation_kind_name(kind: pb::OperationKind) -> Option<&'static str> {
    Some(match kind {
        pb::OperationKind::Organize => "organize",
        pb::OperationKind::Deduplicate => "deduplicate",
        pb::OperationKind::Undo => "undo",
        pb::OperationKind::Unspecified => return None,
    })
}

pub fn operation_phase(phase: Option<&str>) -> pb::OperationPhase {
    use pb::OperationPhase as P;
    match phase.unwrap_or_default() {
        "scan" => P::Scan,
        "categorize" => P::Categorize,
        "hash" => P::Hash,
        "plan" => P::Plan,
        "journal" => P::Journal,
        "apply" => P::Apply,
        "cleanup" => P::Cleanup,
        "report" => P::Report,
        "recover" => P::Recover,
        "undo" => P::Undo,
        _ => P::Unspecified,
    }
}

pub fn counters(c: &models::Counters) -> pb::OperationCounters {
    pb::OperationCounters {
        files_scanned: c.files_scanned,
        files_planned: c.files_planned,
        files_moved: c.files_moved,
        files_skipped: c.files_skipped,
        files_failed: c.files_failed,
        duplicates_found: c.duplicates_found,
        bytes_scanned: c.bytes_scanned,
        bytes_moved: c.bytes_moved,
        reclaimable_bytes: c.reclaimable_bytes,
    }
}

fn error_status(op: &models::Operation) -> Option<crate::pb::google::rpc::Status> {
    op.error
        .as_ref()
        .map(|message| crate::pb::google::rpc::Status {
            code: tonic::Code::Internal as i32,
            message: message.clone(),
            details: Vec::new(),
        })
}

pub fn operation(op: &models::Operation, undone_by: Option<uuid::Uuid>) -> pb::Operation {
    let options: crate::jobs::OperationOptions =
        serde_json::from_value(op.options.clone()).unwrap_or_default();
    pb::Operation {
        name: format!("{OPERATION_COLLECTION}{}", op.id),
        kind: operation_kind(&op.kind) as i32,
        state: operation_state(&op.state) as i32,
        phase: operation_phase(op.phase.as_deref()) as i32,
        source_path: op.source_path.clone(),
        destination_path: op.destination_path.clone(),
        dry_run: op.dry_run,
        layout_template: options.layout_template.clone(),
        duplicate_policy: options.duplicate_policy_pb() as i32,
        conflict_policy: options.conflict_policy_pb() as i32,
        include_globs: options.include_globs.clone(),
        exclude_globs: options.exclude_globs.clone(),
        hash_all_files: options.hash_all_files,
        remove_empty_dirs: options.remove_empty_dirs,
        counters: Some(counters(&op.counters())),
        error: error_status(op),
        undo_of: op
            .undo_of
            .map(|id| format!("{OPERATION_COLLECTION}{id}"))
            .unwrap_or_default(),
        undone_by: undone_by
            .map(|id| format!("{OPERATION_COLLECTION}{id}"))
            .unwrap_or_default(),
        create_time: Some(timestamp(op.created_at)),
        start_time: op.started_at.map(timestamp),
        end_time: op.finished_at.map(timestamp),
        update_time: Some(timestamp(op.updated_at)),
        phase_durations: phase_durations(&op.phase_seconds),
    }
}

/// `operations.phase_seconds` in pipeline order (phases the API does not
/// know are left out).
pub fn phase_durations(seconds: &serde_json::Value) -> Vec<pb::PhaseDuration> {
    let mut durations: Vec<pb::PhaseDuration> = seconds
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(phase, s)| {
            let phase = operation_phase(Some(phase));
            let time = std::time::Duration::try_from_secs_f64(s.as_f64()?).ok()?;
            (phase != pb::OperationPhase::Unspecified).then(|| pb::PhaseDuration {
                phase: phase as i32,
                duration: Some(duration(time)),
            })
        })
        .collect();
    durations.sort_by_key(|d| d.phase);
    durations
}

/// A progress snapshot from what the database knows (no rates).
pub fn snapshot(op: &models::Operation) -> pb::WatchOperationResponse {
    let c = op.counters();
    let percent = match op.state.as_str() {
        "succeeded" | "planned" => 100.0,
        _ if c.files_planned > 0 => {
            100.0 * (c.files_moved + c.files_failed) as f64 / c.files_planned.max(1) as f64
        }
        _ => 0.0,
    };
    pb::WatchOperationResponse {
        name: format!("{OPERATION_COLLECTION}{}", op.id),
        state: operation_state(&op.state) as i32,
        phase: operation_phase(op.phase.as_deref()) as i32,
        counters: Some(counters(&c)),
        current_path: String::new(),
        files_per_second: 0.0,
        bytes_per_second: 0.0,
        progress_percent: percent.min(100.0),
        eta: None,
        error: error_status(op),
        snapshot_time: Some(timestamp(chrono::Utc::now())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_durations_come_in_pipeline_order_and_unknown_or_bad_entries_are_left_out() {
        let stored = serde_json::json!({
            "report": 0.0, "apply": 2.25, "scan": 1.5, "journal": 0.125,
            "later": 1.0, "hash": -1.0, "plan": "x", "cleanup": 1e300,
        });
        let got: Vec<(pb::OperationPhase, i64, i32)> = phase_durations(&stored)
            .into_iter()
            .map(|d| {
                let time = d.duration.unwrap();
                (d.phase(), time.seconds, time.nanos)
            })
            .collect();
        use pb::OperationPhase as P;
        assert_eq!(
            got,
            [
                (P::Scan, 1, 500_000_000),
                (P::Journal, 0, 125_000_000),
                (P::Apply, 2, 250_000_000),
                (P::Report, 0, 0),
            ]
        );
    }
}
