//! AutomationService: CRUD, pause and resume of automations (issue 21).
//! They fire in the workers (`jobs::automations`, `jobs::watch`;
//! docs/triggers.md).
//!
//! A request's automation is checked whole: its trigger (cron expression and
//! time zone with `domain::Schedule`, folders with `storage::UserPath`,
//! quiet periods), then its operation exactly as CreateOperation checks one
//! (`OperationSpec::parse`, `engine::spec::check_on_disk`); every error
//! names the field inside the request (`automation.schedule.cron`,
//! `automation.arrival.folder_path`, `automation.operation.layout_template`).

use std::time::Duration;

use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{convert, parts, respond};
use crate::jobs::automations::automations_changed;
use crate::{
    auth::Principal,
    db::{
        self, Write,
        automations::{Automation, AutomationSettings},
    },
    domain::{OperationSpec, QuietPeriod, Schedule, ScheduleError, Trigger},
    engine,
    error::{AppError, AppResult},
    pagination,
    pb::fileorganizer::v1::{
        self as pb, automation::Trigger as PbTrigger, automation_service_server::AutomationService,
    },
    state::AppState,
    storage::UserPath,
};

/// Longest display name, in characters.
const MAX_DISPLAY_NAME: usize = 128;
/// Most automations per user.
const MAX_AUTOMATIONS: usize = 100;
/// UpdateAutomation's mask paths of the trigger: the oneof, or one of its
/// fields (as the proto names them).
const TRIGGER_PATH: &str = "trigger";
const SCHEDULE_PATH: &str = "schedule";
const ARRIVAL_PATH: &str = "arrival";
const WATCHED_FOLDER_PATH: &str = "watched_folder";

pub struct Automations {
    state: AppState,
}

impl Automations {
    pub fn new(state: AppState) -> Self {
        Automations { state }
    }
}

/// Parses `automations/{id}` from request field `field`.
pub fn parse_name(name: &str, field: &str) -> AppResult<Uuid> {
    name.strip_prefix(convert::AUTOMATION_COLLECTION)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| AppError::invalid(field, "must be automations/{id}"))
}

/// An error about field `f` of the operation, renamed to the field of the
/// request (`automation.` + `f`); the watched folder, which is the
/// operation's source, is named as the trigger's field.
fn within(error: AppError, folder_field: Option<&str>) -> AppError {
    match error {
        AppError::InvalidArgument {
            field,
            description,
            reason,
        } => AppError::InvalidArgument {
            field: match folder_field {
                Some(folder) if field == "operation.source_path" => folder.to_string(),
                _ => format!("automation.{field}"),
            },
            description,
            reason,
        },
        other => other,
    }
}

fn quiet_period(value: Option<prost_types::Duration>, field: &str) -> AppResult<QuietPeriod> {
    let period = match value {
        None => None,
        Some(d) if d.seconds < 0 || d.nanos < 0 => {
            return Err(AppError::invalid(field, "must not be negative"));
        }
        Some(d) => Some(Duration::new(d.seconds as u64, d.nanos as u32)),
    };
    QuietPeriod::new(period).map_err(|e| AppError::invalid(field, e))
}

/// The request's automation, checked (see the module docs), as the row's
/// settings; `paused` keeps a paused automation without a next run.
async fn settings_of(
    state: &AppState,
    user_id: Uuid,
    automation: pb::Automation,
    paused: bool,
) -> AppResult<AutomationSettings> {
    let display_name = automation.display_name.trim().to_string();
    if display_name.chars().count() > MAX_DISPLAY_NAME || display_name.chars().any(char::is_control)
    {
        return Err(AppError::invalid(
            "automation.display_name",
            "must be at most 128 printable characters",
        ));
    }
    let (trigger, folder_field) = match automation.trigger {
        None => {
            return Err(AppError::invalid(
                "automation.trigger",
                "one of schedule, arrival or watched_folder is required",
            ));
        }
        Some(PbTrigger::Schedule(s)) => {
            let schedule = Schedule::parse(&s.cron, &s.time_zone).map_err(|e| match e {
                ScheduleError::Cron(m) => AppError::invalid("automation.schedule.cron", m),
                ScheduleError::TimeZone(m) => AppError::invalid("automation.schedule.time_zone", m),
            })?;
            (Trigger::Schedule(Box::new(schedule)), None)
        }
        Some(PbTrigger::Arrival(a)) => {
            let field = "automation.arrival.folder_path";
            let folder = UserPath::parse(&a.folder_path).map_err(|e| e.at(field))?;
            let quiet = quiet_period(a.quiet_period, "automation.arrival.quiet_period")?;
            let folder = folder.as_str().to_string();
            (Trigger::Arrival { folder, quiet }, Some(field))
        }
        Some(PbTrigger::WatchedFolder(w)) => {
            let field = "automation.watched_folder.folder_path";
            let folder = UserPath::parse(&w.folder_path).map_err(|e| e.at(field))?;
            let quiet = quiet_period(w.quiet_period, "automation.watched_folder.quiet_period")?;
            let folder = folder.as_str().to_string();
            (Trigger::WatchedFolder { folder, quiet }, Some(field))
        }
    };
    let mut operation = automation
        .operation
        .ok_or_else(|| AppError::invalid("automation.operation", "is required"))?;
    if let Trigger::Arrival { folder, .. } | Trigger::WatchedFolder { folder, .. } = &trigger {
        operation.source_path = folder.clone();
    }
    let request = convert::operation_request(operation).map_err(|e| within(e, folder_field))?;
    let spec = OperationSpec::parse(request).map_err(|e| within(e, folder_field))?;
    if let Trigger::WatchedFolder { folder, .. } = &trigger {
        let folder = UserPath::parse(folder).expect("parsed above");
        let destination = UserPath::parse(&spec.destination_path).expect("parsed by the spec");
        if destination.starts_with(&folder) {
            return Err(AppError::invalid(
                "automation.operation.destination_path",
                "must lie outside the watched folder (its own moves would fire it again)",
            ));
        }
    }
    let root = state.user_root(user_id)?;
    let checked = spec.clone();
    let create = match &trigger {
        Trigger::Arrival { folder, .. } | Trigger::WatchedFolder { folder, .. } => {
            Some(UserPath::parse(folder).expect("parsed above"))
        }
        Trigger::Schedule(_) => None,
    };
    tokio::task::spawn_blocking(move || {
        // The watched folder is created if missing, so uploads can go there.
        if let Some(folder) = create
            && !folder.is_root()
        {
            root.create_dir_all(&folder)
                .map_err(|e| e.at("operation.source_path"))?;
        }
        engine::spec::check_on_disk(&root, &checked)
    })
    .await?
    .map_err(|e| within(e, folder_field))?;

    let now = state.clock.now();
    let (kind, cron, time_zone, folder_path, quiet, next_run_at) = match &trigger {
        Trigger::Schedule(s) => (
            trigger.kind(),
            Some(s.expression().to_string()),
            Some(s.zone_name().to_string()),
            None,
            QuietPeriod::DEFAULT,
            s.next_after(now),
        ),
        Trigger::Arrival { folder, quiet } | Trigger::WatchedFolder { folder, quiet } => (
            trigger.kind(),
            None,
            None,
            Some(folder.clone()),
            *quiet,
            None,
        ),
    };
    Ok(AutomationSettings {
        display_name,
        trigger_kind: kind,
        cron,
        time_zone,
        folder_path,
        quiet_period_ms: quiet.get().as_millis() as i64,
        kind: spec.kind,
        source_path: spec.source_path,
        destination_path: spec.destination_path,
        dry_run: spec.dry_run,
        options: spec.options,
        next_run_at: if paused { None } else { next_run_at },
        pending_since: None,
        folder_fingerprint: None,
    })
}

impl Automations {
    async fn find(&self, principal: &Principal, name: &str, field: &str) -> AppResult<Automation> {
        let id = parse_name(name, field)?;
        let mut conn = self.state.db.get().await?;
        db::automations::find_for_user(&mut conn, principal.user_id, id)
            .await?
            .ok_or_else(|| AppError::not_found(name.to_string()))
    }

    async fn create(
        &self,
        principal: Principal,
        req: pb::CreateAutomationRequest,
    ) -> AppResult<pb::Automation> {
        let automation = req
            .automation
            .ok_or_else(|| AppError::invalid("automation", "is required"))?;
        {
            let mut conn = self.state.db.get().await?;
            let existing =
                db::automations::list_for_user(&mut conn, principal.user_id, None, 1_000).await?;
            if existing.len() >= MAX_AUTOMATIONS {
                return Err(AppError::FailedPrecondition {
                    message: format!("at most {MAX_AUTOMATIONS} automations per user"),
                });
            }
        }
        let settings = settings_of(&self.state, principal.user_id, automation, false).await?;
        let mut conn = self.state.db.get().await?;
        let row = db::automations::insert(&mut conn, Uuid::now_v7(), principal.user_id, &settings)
            .await?;
        automations_changed(&self.state, principal.user_id).await;
        Ok(convert::automation(&row))
    }

    async fn list(
        &self,
        principal: Principal,
        req: pb::ListAutomationsRequest,
    ) -> AppResult<pb::ListAutomationsResponse> {
        let limit = pagination::page_size(req.page_size, pagination::DEFAULT_PAGE_SIZE)?;
        let after = pagination::decode(&req.page_token)?;
        let mut conn = self.state.db.get().await?;
        let mut rows =
            db::automations::list_for_user(&mut conn, principal.user_id, after, limit + 1).await?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|r| pagination::encode(r.created_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListAutomationsResponse {
            automations: rows.iter().map(convert::automation).collect(),
            next_page_token,
        })
    }

    async fn update(
        &self,
        principal: Principal,
        req: pb::UpdateAutomationRequest,
    ) -> AppResult<pb::Automation> {
        let patch = req
            .automation
            .ok_or_else(|| AppError::invalid("automation", "is required"))?;
        let existing = self
            .find(&principal, &patch.name, "automation.name")
            .await?;
        if let Some(expected) = convert::parse_etag(&patch.etag, "automation.etag")?
            && expected != existing.version
        {
            return Err(convert::stale_etag(&patch.name, existing.version));
        }
        let mut merged = convert::automation(&existing);
        let paths: Vec<&str> = match &req.update_mask {
            Some(mask) if !mask.paths.is_empty() => mask.paths.iter().map(String::as_str).collect(),
            _ => vec!["display_name", TRIGGER_PATH, "operation"],
        };
        for path in paths {
            match path {
                "display_name" => merged.display_name = patch.display_name.clone(),
                // The oneof and its members (proto field names, not the
                // domain's trigger words).
                TRIGGER_PATH | SCHEDULE_PATH | ARRIVAL_PATH | WATCHED_FOLDER_PATH => {
                    merged.trigger = patch.trigger.clone()
                }
                "operation" => merged.operation = patch.operation.clone(),
                other => {
                    return Err(AppError::invalid(
                        "update_mask",
                        format!(
                            "{other:?} cannot be updated; use display_name, schedule, arrival, \
                             watched_folder or operation"
                        ),
                    ));
                }
            }
        }
        let settings = settings_of(&self.state, principal.user_id, merged, existing.paused).await?;
        let mut conn = self.state.db.get().await?;
        let row = db::automations::update(
            &mut conn,
            principal.user_id,
            existing.id,
            existing.version,
            &settings,
        )
        .await?;
        match row {
            Write::Done(row) => {
                automations_changed(&self.state, principal.user_id).await;
                Ok(convert::automation(&row))
            }
            Write::Missing => Err(AppError::not_found(patch.name)),
            Write::Stale { current } => Err(convert::stale_etag(&patch.name, current)),
        }
    }

    async fn set_paused(
        &self,
        principal: Principal,
        name: &str,
        paused: bool,
    ) -> AppResult<pb::Automation> {
        let existing = self.find(&principal, name, "name").await?;
        if existing.paused == paused {
            return Ok(convert::automation(&existing));
        }
        let now = self.state.clock.now();
        let next_run_at = if paused {
            None
        } else {
            match crate::jobs::automations::schedule_of(&existing) {
                Ok(Some(schedule)) => schedule.next_after(now),
                // Arrivals recorded before the pause are organized now.
                Ok(None) => existing.pending_since.map(|_| now),
                Err(error) => return Err(AppError::internal(error)),
            }
        };
        let mut conn = self.state.db.get().await?;
        let row = db::automations::set_paused(
            &mut conn,
            principal.user_id,
            existing.id,
            paused,
            next_run_at,
        )
        .await?
        .ok_or_else(|| AppError::not_found(name.to_string()))?;
        automations_changed(&self.state, principal.user_id).await;
        Ok(convert::automation(&row))
    }
}

#[tonic::async_trait]
impl AutomationService for Automations {
    async fn create_automation(
        &self,
        request: Request<pb::CreateAutomationRequest>,
    ) -> Result<Response<pb::Automation>, Status> {
        let ctx = crate::layers::RequestContext::of(&request);
        let (principal, req) = parts(request)?;
        let result = self.create(principal.clone(), req).await;
        if let Err(error) = &result {
            super::audit_path_escape(&self.state, &ctx, &principal, error).await;
        }
        respond(result)
    }

    async fn get_automation(
        &self,
        request: Request<pb::GetAutomationRequest>,
    ) -> Result<Response<pb::Automation>, Status> {
        let (principal, req) = parts(request)?;
        respond(
            self.find(&principal, &req.name, "name")
                .await
                .map(|row| convert::automation(&row)),
        )
    }

    async fn list_automations(
        &self,
        request: Request<pb::ListAutomationsRequest>,
    ) -> Result<Response<pb::ListAutomationsResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.list(principal, req).await)
    }

    async fn update_automation(
        &self,
        request: Request<pb::UpdateAutomationRequest>,
    ) -> Result<Response<pb::Automation>, Status> {
        let ctx = crate::layers::RequestContext::of(&request);
        let (principal, req) = parts(request)?;
        let result = self.update(principal.clone(), req).await;
        if let Err(error) = &result {
            super::audit_path_escape(&self.state, &ctx, &principal, error).await;
        }
        respond(result)
    }

    async fn delete_automation(
        &self,
        request: Request<pb::DeleteAutomationRequest>,
    ) -> Result<Response<()>, Status> {
        let (principal, req) = parts(request)?;
        let result = async {
            let id = parse_name(&req.name, "name")?;
            let expected = convert::parse_etag(&req.etag, "etag")?;
            let mut conn = self.state.db.get().await?;
            match db::automations::delete(&mut conn, principal.user_id, id, expected).await? {
                Write::Done(()) => {
                    automations_changed(&self.state, principal.user_id).await;
                    Ok(())
                }
                Write::Missing => Err(AppError::not_found(req.name.clone())),
                Write::Stale { current } => Err(convert::stale_etag(&req.name, current)),
            }
        }
        .await;
        respond(result)
    }

    async fn pause_automation(
        &self,
        request: Request<pb::PauseAutomationRequest>,
    ) -> Result<Response<pb::Automation>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.set_paused(principal, &req.name, true).await)
    }

    async fn resume_automation(
        &self,
        request: Request<pb::ResumeAutomationRequest>,
    ) -> Result<Response<pb::Automation>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.set_paused(principal, &req.name, false).await)
    }
}
