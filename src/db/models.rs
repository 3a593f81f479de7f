//! Rows as Rust structs: `X` is what a query returns, `NewX<'a>` what an
//! insert takes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::{
    domain::{
        Counters, OperationKind, OperationOptions, OperationSpec, OperationState, Phase,
        RecordStatus, Role, Snapshot, TriggerKind,
    },
    schema::{api_keys, audit_log, refresh_tokens, users},
};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub storage_used_bytes: i64,
    pub storage_quota_bytes: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub token_hash: Vec<u8>,
    pub scopes: Vec<Option<String>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub token_hash: &'a [u8],
    pub scopes: Vec<Option<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub replaced_by: Option<Uuid>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = audit_log)]
pub struct NewAuditEvent<'a> {
    pub user_id: Option<Uuid>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: &'a str,
    pub client_ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub detail: serde_json::Value,
}

use crate::schema::{file_records, operations};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = operations, check_for_backend(diesel::pg::Pg))]
pub struct Operation {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: OperationKind,
    pub state: OperationState,
    pub phase: Option<Phase>,
    pub source_path: String,
    pub destination_path: String,
    pub dry_run: bool,
    pub options: OperationOptions,
    pub files_scanned: i64,
    pub files_planned: i64,
    pub files_moved: i64,
    pub files_skipped: i64,
    pub files_failed: i64,
    pub duplicates_found: i64,
    pub bytes_scanned: i64,
    pub bytes_moved: i64,
    pub reclaimable_bytes: i64,
    pub undo_of: Option<Uuid>,
    pub request_id: Option<String>,
    pub worker_id: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    pub applied_cursor: i64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds spent in each phase, keyed by phase name (`jobs::timings`).
    pub phase_seconds: serde_json::Value,
    /// The version of the user's rule set the plan used; None when no rules
    /// were applied.
    pub rule_set_version: Option<i64>,
    /// What started it (`manual` for a request).
    pub trigger_kind: TriggerKind,
    /// The automation that created it, if any.
    pub automation_id: Option<Uuid>,
    /// The W3C `traceparent` of the request that created it, for the job's
    /// spans (`infra::otel`).
    pub trace_parent: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = operations)]
pub struct NewOperation<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: OperationKind,
    pub state: OperationState,
    pub source_path: &'a str,
    pub destination_path: &'a str,
    pub dry_run: bool,
    pub options: OperationOptions,
    pub undo_of: Option<Uuid>,
    pub request_id: Option<&'a str>,
    pub trigger_kind: TriggerKind,
    pub automation_id: Option<Uuid>,
    /// Filled by the constructors from the span they run in (the RPC's,
    /// inside a handler), so the job joins the request's trace.
    pub trace_parent: Option<String>,
}

impl<'a> NewOperation<'a> {
    /// A queued operation of `user_id` doing what `spec` says.
    pub fn queued(user_id: Uuid, spec: &'a OperationSpec, request_id: Option<&'a str>) -> Self {
        NewOperation {
            id: Uuid::now_v7(),
            user_id,
            kind: spec.kind,
            state: OperationState::Queued,
            source_path: &spec.source_path,
            destination_path: &spec.destination_path,
            dry_run: spec.dry_run,
            options: spec.options.clone(),
            undo_of: None,
            request_id,
            trigger_kind: TriggerKind::Manual,
            automation_id: None,
            trace_parent: crate::infra::otel::TraceParent::current()
                .map(|t| t.as_str().to_string()),
        }
    }

    /// A queued undo of `target`: it moves files from where the target put
    /// them back to where they were, and has no settings of its own.
    pub fn undo(target: &'a Operation, request_id: Option<&'a str>) -> Self {
        NewOperation {
            id: Uuid::now_v7(),
            user_id: target.user_id,
            kind: OperationKind::Undo,
            state: OperationState::Queued,
            source_path: &target.destination_path,
            destination_path: &target.source_path,
            dry_run: false,
            options: OperationOptions::default(),
            undo_of: Some(target.id),
            request_id,
            trigger_kind: TriggerKind::Manual,
            automation_id: None,
            trace_parent: crate::infra::otel::TraceParent::current()
                .map(|t| t.as_str().to_string()),
        }
    }
}

/// The columns of an operation's [`Counters`], written together.
#[derive(Debug, Clone, Copy, AsChangeset)]
#[diesel(table_name = operations)]
pub struct CounterColumns {
    pub files_scanned: i64,
    pub files_planned: i64,
    pub files_moved: i64,
    pub files_skipped: i64,
    pub files_failed: i64,
    pub duplicates_found: i64,
    pub bytes_scanned: i64,
    pub bytes_moved: i64,
    pub reclaimable_bytes: i64,
}

impl From<Counters> for CounterColumns {
    fn from(c: Counters) -> Self {
        CounterColumns {
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
}

impl Operation {
    /// Its progress as the row tells it (no rates, no current file).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::persisted(
            self.id,
            self.state,
            self.phase,
            self.counters(),
            self.error.clone(),
        )
    }

    pub fn counters(&self) -> Counters {
        Counters {
            files_scanned: self.files_scanned,
            files_planned: self.files_planned,
            files_moved: self.files_moved,
            files_skipped: self.files_skipped,
            files_failed: self.files_failed,
            duplicates_found: self.duplicates_found,
            bytes_scanned: self.bytes_scanned,
            bytes_moved: self.bytes_moved,
            reclaimable_bytes: self.reclaimable_bytes,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = file_records, check_for_backend(diesel::pg::Pg))]
pub struct FileRecord {
    pub operation_id: Uuid,
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
    pub status: RecordStatus,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub mtime_ns: Option<i64>,
    /// Status-change time at scan time (see the migration that added it).
    pub ctime_ns: Option<i64>,
}
