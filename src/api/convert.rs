//! Conversions between the domain (and database rows) and protobuf messages:
//! the one place that knows both. The enums map variant to variant here and
//! nowhere else.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    db::{models, rules::RuleRow},
    domain::archive::{ArchiveFormat, SkipReason},
    domain::{
        Condition, ConflictPolicy, Counters, DuplicateGroup, DuplicatePolicy, FileConflictPolicy,
        OperationKind, OperationOptions, OperationRequest, OperationState, Phase, Record,
        RecordStatus, Report, Role, RuleAction, RuleDefinition, RuleMatch, Snapshot, TriggerKind,
        Word, report::record_name,
    },
    engine::archive::Imported,
    error::{AppError, AppResult},
    pb::fileorganizer::v1 as pb,
};

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
pub const AUTOMATION_COLLECTION: &str = "automations/";

// The domain's enums and protobuf's, variant to variant: the one mapping.
// Reading a request goes the other way through `from_request`, derived from
// these, so the two directions cannot disagree.

impl From<OperationState> for pb::OperationState {
    fn from(state: OperationState) -> Self {
        use OperationState as S;
        match state {
            S::Queued => pb::OperationState::Queued,
            S::Running => pb::OperationState::Running,
            S::Planned => pb::OperationState::Planned,
            S::Applying => pb::OperationState::Applying,
            S::Succeeded => pb::OperationState::Succeeded,
            S::Failed => pb::OperationState::Failed,
            S::Cancelling => pb::OperationState::Cancelling,
            S::Cancelled => pb::OperationState::Cancelled,
        }
    }
}

impl From<OperationKind> for pb::OperationKind {
    fn from(kind: OperationKind) -> Self {
        match kind {
            OperationKind::Organize => pb::OperationKind::Organize,
            OperationKind::Deduplicate => pb::OperationKind::Deduplicate,
            OperationKind::Undo => pb::OperationKind::Undo,
        }
    }
}

impl From<Phase> for pb::OperationPhase {
    fn from(phase: Phase) -> Self {
        use pb::OperationPhase as P;
        match phase {
            Phase::Scan => P::Scan,
            Phase::Categorize => P::Categorize,
            Phase::Hash => P::Hash,
            Phase::Plan => P::Plan,
            Phase::Journal => P::Journal,
            Phase::Apply => P::Apply,
            Phase::Cleanup => P::Cleanup,
            Phase::Report => P::Report,
            Phase::Recover => P::Recover,
            Phase::Undo => P::Undo,
        }
    }
}

impl From<RecordStatus> for pb::FileRecordStatus {
    fn from(status: RecordStatus) -> Self {
        use pb::FileRecordStatus as S;
        match status {
            RecordStatus::Planned => S::Planned,
            RecordStatus::Completed => S::Completed,
            RecordStatus::Skipped => S::Skipped,
            RecordStatus::Failed => S::Failed,
            RecordStatus::Duplicate => S::Duplicate,
            RecordStatus::Undone => S::Undone,
        }
    }
}

impl From<DuplicatePolicy> for pb::DuplicatePolicy {
    fn from(policy: DuplicatePolicy) -> Self {
        match policy {
            DuplicatePolicy::ReportOnly => pb::DuplicatePolicy::ReportOnly,
            DuplicatePolicy::MoveToDuplicatesFolder => pb::DuplicatePolicy::MoveToDuplicatesFolder,
            DuplicatePolicy::MoveToTrash => pb::DuplicatePolicy::MoveToTrash,
        }
    }
}

impl From<TriggerKind> for pb::TriggerKind {
    fn from(kind: TriggerKind) -> Self {
        match kind {
            TriggerKind::Manual => pb::TriggerKind::Manual,
            TriggerKind::Schedule => pb::TriggerKind::Schedule,
            TriggerKind::Arrival => pb::TriggerKind::Arrival,
            TriggerKind::WatchedFolder => pb::TriggerKind::WatchedFolder,
        }
    }
}

impl From<ConflictPolicy> for pb::ConflictPolicy {
    fn from(policy: ConflictPolicy) -> Self {
        match policy {
            ConflictPolicy::Rename => pb::ConflictPolicy::Rename,
            ConflictPolicy::Skip => pb::ConflictPolicy::Skip,
        }
    }
}

impl From<FileConflictPolicy> for pb::FileConflictPolicy {
    fn from(policy: FileConflictPolicy) -> Self {
        match policy {
            FileConflictPolicy::FailIfExists => pb::FileConflictPolicy::Fail,
            FileConflictPolicy::Rename => pb::FileConflictPolicy::Rename,
            FileConflictPolicy::SkipIfIdentical => pb::FileConflictPolicy::SkipIfIdentical,
        }
    }
}

/// A request's FileConflictPolicy field `field`: UNSPECIFIED is the default
/// (FAIL), an undefined number INVALID_ARGUMENT naming the field.
pub fn file_conflict_policy(raw: i32, field: &str) -> AppResult<FileConflictPolicy> {
    Ok(from_request::<FileConflictPolicy, pb::FileConflictPolicy>(
        raw,
        field,
        "unknown conflict policy",
    )?
    .unwrap_or_default())
}

/// The domain value of a request's enum field `field` (`raw` as sent): None
/// for UNSPECIFIED (not given), INVALID_ARGUMENT naming the field with
/// `unknown` as the description for a number the contract does not define.
pub fn from_request<D, P>(raw: i32, field: &str, unknown: &str) -> AppResult<Option<D>>
where
    D: Word,
    P: From<D> + TryFrom<i32> + PartialEq,
{
    let value = P::try_from(raw).map_err(|_| AppError::invalid(field, unknown))?;
    Ok(D::ALL.iter().copied().find(|d| P::from(*d) == value))
}

/// What CreateOperation asks for, with its enums read: an UNSPECIFIED kind
/// or policy is the default one, a number the contract does not define is
/// INVALID_ARGUMENT naming the field. The rest is checked by
/// `OperationSpec::parse`.
pub fn operation_request(op: pb::Operation) -> AppResult<OperationRequest> {
    let kind = from_request::<OperationKind, pb::OperationKind>(
        op.kind,
        "operation.kind",
        "unknown kind",
    )?;
    let duplicate_policy = from_request::<DuplicatePolicy, pb::DuplicatePolicy>(
        op.duplicate_policy,
        "operation.duplicate_policy",
        "unknown policy",
    )?;
    let conflict_policy = from_request::<ConflictPolicy, pb::ConflictPolicy>(
        op.conflict_policy,
        "operation.conflict_policy",
        "unknown policy",
    )?;
    Ok(OperationRequest {
        kind: kind.unwrap_or(OperationKind::Organize),
        source_path: op.source_path,
        destination_path: op.destination_path,
        dry_run: op.dry_run,
        layout_template: op.layout_template,
        duplicate_policy: duplicate_policy.unwrap_or_default(),
        conflict_policy: conflict_policy.unwrap_or_default(),
        include_globs: op.include_globs,
        exclude_globs: op.exclude_globs,
        hash_all_files: op.hash_all_files,
        remove_empty_dirs: op.remove_empty_dirs,
        apply_rules: op.apply_rules,
    })
}

pub fn counters(c: &Counters) -> pb::OperationCounters {
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

/// Why an operation failed, as a status.
fn error_status(message: &str) -> crate::pb::google::rpc::Status {
    crate::pb::google::rpc::Status {
        code: tonic::Code::Internal as i32,
        message: message.to_string(),
        details: Vec::new(),
    }
}

/// The settings of an operation (what a request sets), the rest unset.
fn operation_settings(
    kind: OperationKind,
    source_path: &str,
    destination_path: &str,
    dry_run: bool,
    options: &OperationOptions,
) -> pb::Operation {
    pb::Operation {
        kind: pb::OperationKind::from(kind) as i32,
        source_path: source_path.to_string(),
        destination_path: destination_path.to_string(),
        dry_run,
        layout_template: options.layout_template.clone(),
        duplicate_policy: pb::DuplicatePolicy::from(options.duplicate_policy) as i32,
        conflict_policy: pb::ConflictPolicy::from(options.conflict_policy) as i32,
        include_globs: options.include_globs.clone(),
        exclude_globs: options.exclude_globs.clone(),
        hash_all_files: options.hash_all_files,
        remove_empty_dirs: options.remove_empty_dirs,
        apply_rules: options.apply_rules,
        ..Default::default()
    }
}

pub fn operation(op: &models::Operation, undone_by: Option<Uuid>) -> pb::Operation {
    let settings = operation_settings(
        op.kind,
        &op.source_path,
        &op.destination_path,
        op.dry_run,
        &op.options,
    );
    pb::Operation {
        name: format!("{OPERATION_COLLECTION}{}", op.id),
        state: pb::OperationState::from(op.state) as i32,
        phase: phase(op.phase) as i32,
        counters: Some(counters(&op.counters())),
        error: op.error.as_deref().map(error_status),
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
        rule_set_version: op.rule_set_version.unwrap_or(0),
        trigger: Some(pb::OperationTrigger {
            kind: pb::TriggerKind::from(op.trigger_kind) as i32,
            automation: op
                .automation_id
                .map(|id| format!("{AUTOMATION_COLLECTION}{id}"))
                .unwrap_or_default(),
        }),
        ..settings
    }
}

/// An operation's phase; none (a queued operation) is UNSPECIFIED.
pub fn phase(phase: Option<Phase>) -> pb::OperationPhase {
    phase.map_or(pb::OperationPhase::Unspecified, pb::OperationPhase::from)
}

/// `operations.phase_seconds` in pipeline order. A phase word this version
/// does not know (written by a newer worker) is left out, as is a value that
/// is not a number of seconds: the timings are informative, and one odd
/// entry must not hide the others or fail the operation.
pub fn phase_durations(seconds: &serde_json::Value) -> Vec<pb::PhaseDuration> {
    let mut durations: Vec<pb::PhaseDuration> = seconds
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(phase, s)| {
            let phase = Phase::parse(phase).ok()?;
            let time = std::time::Duration::try_from_secs_f64(s.as_f64()?).ok()?;
            Some(pb::PhaseDuration {
                phase: pb::OperationPhase::from(phase) as i32,
                duration: Some(duration(time)),
            })
        })
        .collect();
    durations.sort_by_key(|d| d.phase);
    durations
}

/// A progress snapshot, live from a job or made from the row.
pub fn snapshot(s: &Snapshot) -> pb::WatchOperationResponse {
    pb::WatchOperationResponse {
        name: format!("{OPERATION_COLLECTION}{}", s.operation_id),
        state: pb::OperationState::from(s.state) as i32,
        phase: phase(s.phase) as i32,
        counters: Some(counters(&s.counters)),
        current_path: s.current_path.clone(),
        files_per_second: s.files_per_second,
        bytes_per_second: s.bytes_per_second,
        progress_percent: s.progress_percent,
        eta: s.eta.map(duration),
        error: s.error.as_deref().map(error_status),
        snapshot_time: Some(timestamp(s.time)),
    }
}

/// A journal record as reports show it.
pub fn report_record(operation_id: Uuid, r: &Record) -> pb::FileRecord {
    pb::FileRecord {
        name: record_name(operation_id, r.seq),
        operation: format!("{}{operation_id}", OPERATION_COLLECTION),
        seq: r.seq,
        original_path: r.original_path.clone(),
        new_path: r.new_path.clone().unwrap_or_default(),
        size_bytes: r.size_bytes,
        modify_time: r.modify_time.map(timestamp),
        content_hash: r
            .content_hash
            .as_deref()
            .map(hex::encode)
            .unwrap_or_default(),
        category: r.category.clone(),
        duplicate_of: r
            .duplicate_of
            .map(|seq| record_name(operation_id, seq))
            .unwrap_or_default(),
        duplicate_of_path: r.duplicate_of_path.clone().unwrap_or_default(),
        status: pb::FileRecordStatus::from(r.status) as i32,
        reason: r.reason.clone().unwrap_or_default(),
        create_time: Some(timestamp(r.create_time)),
        // The journal keeps no time of the last status change.
        update_time: None,
        rule: r
            .decided_by
            .map(|d| format!("{RULE_COLLECTION}{}", d.rule_id))
            .unwrap_or_default(),
        rule_version: r.decided_by.map_or(0, |d| d.rule_version),
    }
}

pub fn duplicate_group(operation_id: Uuid, g: DuplicateGroup) -> pb::DuplicateGroup {
    pb::DuplicateGroup {
        content_hash: hex::encode(&g.content_hash),
        size_bytes: g.size_bytes,
        file_count: g.file_count,
        reclaimable_bytes: g.reclaimable_bytes,
        kept_path: g.kept_path,
        files: g
            .files
            .into_iter()
            .map(|f| pb::DuplicateFile {
                file_record: record_name(operation_id, f.seq),
                original_path: f.original_path,
                path: f.path,
                modify_time: f.modify_time.map(timestamp),
                kept: f.kept,
            })
            .collect(),
    }
}

pub fn report(r: &Report) -> pb::OperationReport {
    pb::OperationReport {
        name: r.name(),
        operation: r.operation_name(),
        kind: pb::OperationKind::from(r.kind) as i32,
        state: pb::OperationState::from(r.state) as i32,
        dry_run: r.dry_run,
        start_time: r.start_time.map(timestamp),
        end_time: r.end_time.map(timestamp),
        duration: r.duration.map(duration),
        totals: Some(counters(&r.totals)),
        categories: r
            .categories
            .iter()
            .map(|c| pb::CategoryBreakdown {
                category: c.category.clone(),
                file_count: c.file_count,
                size_bytes: c.size_bytes,
                percentage: c.percentage,
            })
            .collect(),
        top_categories: r.top_categories.clone(),
        largest_files: r
            .largest_files
            .iter()
            .map(|f| report_record(r.operation_id, f))
            .collect(),
        duplicate_group_count: r.duplicate_group_count,
        duplicate_file_count: r.duplicate_file_count,
        reclaimable_bytes: r.reclaimable_bytes,
        compute_time: Some(timestamp(r.compute_time)),
        taken_dates_from_metadata: r.taken_dates.from_metadata,
        taken_dates_from_mtime: r.taken_dates.from_mtime,
    }
}

/// The collection of organizing rules: `rules/{id}`.
pub const RULE_COLLECTION: &str = "rules/";

/// The version an etag from a request names (`field` for the error); None
/// for an empty one. The one parser of the etags [`etag`] gives out (rules,
/// automations): quoted or not, weak (`W/`) or strong.
pub fn parse_etag(etag: &str, field: &str) -> AppResult<Option<i64>> {
    let etag = etag.trim();
    if etag.is_empty() {
        return Ok(None);
    }
    etag.strip_prefix("W/")
        .unwrap_or(etag)
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| AppError::invalid(field, "is not an etag this service gave out"))
}

/// The API message of a stored rule.
pub fn rule(row: &RuleRow) -> pb::Rule {
    let definition = &row.definition;
    pb::Rule {
        name: format!("{RULE_COLLECTION}{}", row.id),
        display_name: row.display_name.clone(),
        position: row.position,
        r#match: match definition.match_mode {
            RuleMatch::All => pb::RuleMatch::All,
            RuleMatch::Any => pb::RuleMatch::Any,
        } as i32,
        conditions: definition.conditions.iter().map(rule_condition).collect(),
        action: Some(rule_action(&definition.action)),
        version: row.version,
        etag: etag(row.version),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
    }
}

/// An automation as the API shows it.
pub fn automation(row: &crate::db::automations::Automation) -> pb::Automation {
    use pb::automation::Trigger as T;
    let quiet = Some(duration(std::time::Duration::from_millis(
        row.quiet_period_ms.max(0) as u64,
    )));
    let folder_path = row.folder_path.clone().unwrap_or_default();
    let trigger = match row.trigger_kind {
        TriggerKind::Schedule => Some(T::Schedule(pb::ScheduleTrigger {
            cron: row.cron.clone().unwrap_or_default(),
            time_zone: row.time_zone.clone().unwrap_or_default(),
        })),
        TriggerKind::Arrival => Some(T::Arrival(pb::ArrivalTrigger {
            folder_path,
            quiet_period: quiet,
        })),
        TriggerKind::WatchedFolder => Some(T::WatchedFolder(pb::WatchedFolderTrigger {
            folder_path,
            quiet_period: quiet,
        })),
        // Never stored for an automation.
        TriggerKind::Manual => None,
    };
    pb::Automation {
        name: format!("{AUTOMATION_COLLECTION}{}", row.id),
        display_name: row.display_name.clone(),
        trigger,
        operation: Some(operation_settings(
            row.kind,
            &row.source_path,
            &row.destination_path,
            row.dry_run,
            &row.options,
        )),
        paused: row.paused,
        next_run_time: row.next_run_at.map(timestamp),
        last_run_time: row.last_run_at.map(timestamp),
        last_operation: row
            .last_operation_id
            .map(|id| format!("{OPERATION_COLLECTION}{id}"))
            .unwrap_or_default(),
        run_count: row.run_count,
        last_error: row.last_error.clone().unwrap_or_default(),
        etag: etag(row.version),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
    }
}

fn rule_condition(condition: &Condition) -> pb::RuleCondition {
    use pb::rule_condition::Condition as C;
    let condition = match condition {
        Condition::NameGlob { pattern } => C::NameGlob(pattern.clone()),
        Condition::NameRegex { pattern } => C::NameRegex(pattern.clone()),
        Condition::Extensions { extensions } => C::Extensions(pb::ExtensionSet {
            extensions: extensions.clone(),
        }),
        Condition::ContentType { content_types } => C::ContentType(pb::ContentTypeSet {
            content_types: content_types.clone(),
        }),
        Condition::Size {
            min_bytes,
            max_bytes,
        } => C::Size(pb::SizeRange {
            min_bytes: *min_bytes,
            max_bytes: *max_bytes,
        }),
        Condition::ModifyTime { start, end } => C::ModifyTime(pb::TimeRange {
            start_time: start.map(timestamp),
            end_time: end.map(timestamp),
        }),
        Condition::Age {
            older_than_days,
            newer_than_days,
        } => C::Age(pb::AgeRange {
            older_than_days: *older_than_days,
            newer_than_days: *newer_than_days,
        }),
        Condition::UnderFolder { path } => C::UnderFolder(path.clone()),
        Condition::IsDuplicate { duplicate } => C::IsDuplicate(*duplicate),
        Condition::CaptureTime { start, end } => C::CaptureTime(pb::TimeRange {
            start_time: start.map(timestamp),
            end_time: end.map(timestamp),
        }),
        Condition::CaptureAge {
            older_than_days,
            newer_than_days,
        } => C::CaptureAge(pb::AgeRange {
            older_than_days: *older_than_days,
            newer_than_days: *newer_than_days,
        }),
    };
    pb::RuleCondition {
        condition: Some(condition),
    }
}

fn rule_action(action: &RuleAction) -> pb::RuleAction {
    use pb::rule_action::Action as A;
    let action = match action {
        RuleAction::Move {
            destination_template,
        } => A::Move(pb::MoveAction {
            destination_template: destination_template.clone(),
        }),
        RuleAction::Rename { name_template } => A::Rename(pb::RenameAction {
            name_template: name_template.clone(),
        }),
        RuleAction::SetCategory { category } => A::SetCategory(pb::SetCategoryAction {
            category: category.clone(),
        }),
        RuleAction::Trash => A::Trash(pb::TrashAction {}),
        RuleAction::LeaveInPlace => A::LeaveInPlace(pb::LeaveInPlaceAction {}),
    };
    pb::RuleAction {
        action: Some(action),
    }
}

/// The definition a request's rule gives (`field`: `rule` or `rules[i]`):
/// the enum and oneofs read, an unset or unknown one refused naming its
/// field. The values themselves are checked by `engine::rule`.
pub fn rule_definition(rule: &pb::Rule, field: &str) -> AppResult<RuleDefinition> {
    use pb::{rule_action::Action as A, rule_condition::Condition as C};
    let match_mode = match pb::RuleMatch::try_from(rule.r#match) {
        Ok(pb::RuleMatch::Unspecified | pb::RuleMatch::All) => RuleMatch::All,
        Ok(pb::RuleMatch::Any) => RuleMatch::Any,
        Err(_) => return Err(AppError::invalid(format!("{field}.match"), "unknown match")),
    };
    let time = |ts: &Option<prost_types::Timestamp>, name: &str| -> AppResult<_> {
        ts.as_ref()
            .map(|ts| {
                from_timestamp(ts).ok_or_else(|| {
                    AppError::invalid(format!("{field}.{name}"), "is not a valid time")
                })
            })
            .transpose()
    };
    let mut conditions = Vec::with_capacity(rule.conditions.len());
    for (i, condition) in rule.conditions.iter().enumerate() {
        let here = format!("{field}.conditions[{i}]");
        conditions.push(match &condition.condition {
            None => return Err(AppError::invalid(here, "set one condition")),
            Some(C::NameGlob(pattern)) => Condition::NameGlob {
                pattern: pattern.clone(),
            },
            Some(C::NameRegex(pattern)) => Condition::NameRegex {
                pattern: pattern.clone(),
            },
            Some(C::Extensions(set)) => Condition::Extensions {
                extensions: set.extensions.clone(),
            },
            Some(C::ContentType(set)) => Condition::ContentType {
                content_types: set.content_types.clone(),
            },
            Some(C::Size(range)) => Condition::Size {
                min_bytes: range.min_bytes,
                max_bytes: range.max_bytes,
            },
            Some(C::ModifyTime(range)) => Condition::ModifyTime {
                start: time(
                    &range.start_time,
                    &format!("conditions[{i}].modify_time.start_time"),
                )?,
                end: time(
                    &range.end_time,
                    &format!("conditions[{i}].modify_time.end_time"),
                )?,
            },
            Some(C::Age(range)) => Condition::Age {
                older_than_days: range.older_than_days,
                newer_than_days: range.newer_than_days,
            },
            Some(C::UnderFolder(path)) => Condition::UnderFolder { path: path.clone() },
            Some(C::IsDuplicate(duplicate)) => Condition::IsDuplicate {
                duplicate: *duplicate,
            },
            Some(C::CaptureTime(range)) => Condition::CaptureTime {
                start: time(
                    &range.start_time,
                    &format!("conditions[{i}].capture_time.start_time"),
                )?,
                end: time(
                    &range.end_time,
                    &format!("conditions[{i}].capture_time.end_time"),
                )?,
            },
            Some(C::CaptureAge(range)) => Condition::CaptureAge {
                older_than_days: range.older_than_days,
                newer_than_days: range.newer_than_days,
            },
        });
    }
    let action = match rule.action.as_ref().and_then(|a| a.action.as_ref()) {
        None => {
            return Err(AppError::invalid(
                format!("{field}.action"),
                "set one action",
            ));
        }
        Some(A::Move(m)) => RuleAction::Move {
            destination_template: m.destination_template.clone(),
        },
        Some(A::Rename(r)) => RuleAction::Rename {
            name_template: r.name_template.clone(),
        },
        Some(A::SetCategory(c)) => RuleAction::SetCategory {
            category: c.category.trim().to_string(),
        },
        Some(A::Trash(_)) => RuleAction::Trash,
        Some(A::LeaveInPlace(_)) => RuleAction::LeaveInPlace,
    };
    Ok(RuleDefinition {
        match_mode,
        conditions,
        action,
    })
}

/// The etag of a row version (a rule's, an automation's): the version,
/// quoted as HTTP writes entity tags.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The refusal of a write whose etag is not `name`'s current version:
/// ABORTED (AIP-154), nothing written.
pub fn stale_etag(name: &str, current: i64) -> AppError {
    AppError::Aborted {
        message: format!(
            "{name} has changed since it was read (its etag is now {}); read it again",
            etag(current)
        ),
    }
}

/// A request's archive format: `None` to detect it (UNSPECIFIED, AUTO).
pub fn archive_format(raw: i32, field: &str) -> AppResult<Option<ArchiveFormat>> {
    match pb::ArchiveFormat::try_from(raw) {
        Ok(pb::ArchiveFormat::Unspecified | pb::ArchiveFormat::Auto) => Ok(None),
        Ok(pb::ArchiveFormat::Zip) => Ok(Some(ArchiveFormat::Zip)),
        Ok(pb::ArchiveFormat::Tar) => Ok(Some(ArchiveFormat::Tar)),
        Ok(pb::ArchiveFormat::TarGzip) => Ok(Some(ArchiveFormat::TarGzip)),
        Ok(pb::ArchiveFormat::TarZstd) => Ok(Some(ArchiveFormat::TarZstd)),
        Err(_) => Err(AppError::invalid(field, "unknown archive format")),
    }
}

impl From<ArchiveFormat> for pb::ArchiveFormat {
    fn from(format: ArchiveFormat) -> Self {
        match format {
            ArchiveFormat::Zip => pb::ArchiveFormat::Zip,
            ArchiveFormat::Tar => pb::ArchiveFormat::Tar,
            ArchiveFormat::TarGzip => pb::ArchiveFormat::TarGzip,
            ArchiveFormat::TarZstd => pb::ArchiveFormat::TarZstd,
        }
    }
}

impl From<SkipReason> for pb::ArchiveEntrySkipReason {
    fn from(reason: SkipReason) -> Self {
        use pb::ArchiveEntrySkipReason as R;
        match reason {
            SkipReason::UnsafePath => R::UnsafePath,
            SkipReason::Symlink => R::Symlink,
            SkipReason::HardLink => R::HardLink,
            SkipReason::SpecialFile => R::SpecialFile,
            SkipReason::NameNotUtf8 => R::NameNotUtf8,
            SkipReason::InvalidName => R::InvalidName,
            SkipReason::TooDeep => R::TooDeep,
            SkipReason::AlreadyExists => R::AlreadyExists,
            SkipReason::NotAFolder => R::NotAFolder,
            SkipReason::Identical => R::Identical,
        }
    }
}

/// ImportArchive's answer for an import into `path`.
pub fn imported(path: &str, imported: Imported) -> pb::ImportArchiveResponse {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    pb::ImportArchiveResponse {
        path: path.to_string(),
        format: imported
            .format
            .map_or(pb::ArchiveFormat::Unspecified, pb::ArchiveFormat::from) as i32,
        file_count: count(imported.files),
        folder_count: count(imported.folders),
        total_bytes: count(imported.bytes),
        skipped_entries: imported
            .skipped
            .into_iter()
            .map(|s| pb::SkippedArchiveEntry {
                name: s.name,
                reason: pb::ArchiveEntrySkipReason::from(s.reason) as i32,
                detail: s.detail,
            })
            .collect(),
        renamed_entries: imported
            .renamed
            .into_iter()
            .map(|(name, path)| pb::RenamedArchiveEntry {
                name,
                path: path.as_str().to_string(),
            })
            .collect(),
        skipped_count: count(imported.skipped_count),
        renamed_count: count(imported.renamed_count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every protobuf value of an enum, UNSPECIFIED included.
    fn all_pb<P: TryFrom<i32>>() -> Vec<P> {
        (0..64).filter_map(|n| P::try_from(n).ok()).collect()
    }

    /// Domain → protobuf is one-to-one and misses only UNSPECIFIED, and a
    /// request's value reads back as the same domain value; UNSPECIFIED
    /// reads as none, an undefined number as INVALID_ARGUMENT on the field.
    fn maps_one_to_one<D, P>()
    where
        D: Word,
        P: From<D> + TryFrom<i32> + PartialEq + Copy + Into<i32> + std::fmt::Debug,
    {
        let mapped: Vec<P> = D::ALL.iter().map(|d| P::from(*d)).collect();
        let unspecified: Vec<P> = all_pb::<P>()
            .into_iter()
            .filter(|p| !mapped.contains(p))
            .collect();
        assert_eq!(
            unspecified
                .iter()
                .map(|p| (*p).into())
                .collect::<Vec<i32>>(),
            [0],
            "{} values without a domain value: {unspecified:?}",
            D::WHAT
        );
        for d in D::ALL {
            assert_eq!(mapped.iter().filter(|p| **p == P::from(*d)).count(), 1);
            let raw: i32 = P::from(*d).into();
            assert_eq!(from_request::<D, P>(raw, "f", "unknown").unwrap(), Some(*d));
        }
        assert_eq!(from_request::<D, P>(0, "f", "unknown").unwrap(), None);
        match from_request::<D, P>(9999, "the.field", "unknown thing") {
            Err(AppError::InvalidArgument {
                field, description, ..
            }) => assert_eq!(
                (field.as_str(), description.as_str()),
                ("the.field", "unknown thing")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_enum_maps_to_protobuf_one_to_one() {
        maps_one_to_one::<OperationState, pb::OperationState>();
        maps_one_to_one::<OperationKind, pb::OperationKind>();
        maps_one_to_one::<Phase, pb::OperationPhase>();
        maps_one_to_one::<RecordStatus, pb::FileRecordStatus>();
        maps_one_to_one::<Role, pb::UserRole>();
        maps_one_to_one::<DuplicatePolicy, pb::DuplicatePolicy>();
        maps_one_to_one::<ConflictPolicy, pb::ConflictPolicy>();
        maps_one_to_one::<FileConflictPolicy, pb::FileConflictPolicy>();
    }

    /// The JSON export prints protobuf's enum names without going through
    /// protobuf (`reports` is below the API): they must agree.
    #[test]
    fn export_enum_names_are_protobufs() {
        use crate::reports::json;
        for s in OperationState::ALL {
            assert_eq!(
                json::state_enum(*s),
                pb::OperationState::from(*s).as_str_name()
            );
        }
        for k in OperationKind::ALL {
            assert_eq!(
                json::kind_enum(*k),
                pb::OperationKind::from(*k).as_str_name()
            );
        }
        for r in RecordStatus::ALL {
            assert_eq!(
                json::status_enum(*r),
                pb::FileRecordStatus::from(*r).as_str_name()
            );
        }
    }

    fn create(op: pb::Operation) -> AppResult<OperationRequest> {
        operation_request(op)
    }

    #[test]
    fn a_requests_enums_are_read_once_with_their_defaults() {
        let plain = create(pb::Operation {
            source_path: "in".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(plain.kind, OperationKind::Organize);
        assert_eq!(plain.duplicate_policy, DuplicatePolicy::ReportOnly);
        assert_eq!(plain.conflict_policy, ConflictPolicy::Rename);
        let chosen = create(pb::Operation {
            kind: pb::OperationKind::Deduplicate as i32,
            duplicate_policy: pb::DuplicatePolicy::MoveToDuplicatesFolder as i32,
            conflict_policy: pb::ConflictPolicy::Skip as i32,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(chosen.kind, OperationKind::Deduplicate);
        assert_eq!(
            chosen.duplicate_policy,
            DuplicatePolicy::MoveToDuplicatesFolder
        );
        assert_eq!(chosen.conflict_policy, ConflictPolicy::Skip);
        for (op, field) in [
            (
                pb::Operation {
                    kind: 77,
                    ..Default::default()
                },
                "operation.kind",
            ),
            (
                pb::Operation {
                    duplicate_policy: 77,
                    ..Default::default()
                },
                "operation.duplicate_policy",
            ),
            (
                pb::Operation {
                    conflict_policy: -1,
                    ..Default::default()
                },
                "operation.conflict_policy",
            ),
        ] {
            match create(op) {
                Err(AppError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        // UNDO is a defined kind: refused by OperationSpec::parse, not here.
        let undo = create(pb::Operation {
            kind: pb::OperationKind::Undo as i32,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(undo.kind, OperationKind::Undo);
    }

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
