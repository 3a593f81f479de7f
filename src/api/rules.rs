//! RuleService: the caller's organizing rules (CRUD with etags) and
//! PreviewRules.
//!
//! A rule is read from the request by `api::convert::rule_definition` (the
//! oneofs) and checked by `engine::rule` (the values, against the configured
//! limits) before it is stored, so a plan never meets a rule it cannot
//! compile. Every field error names its path: `rule.conditions[2].name_regex`
//! for a stored rule, `rules[1].action.move.destination_template` for a
//! draft given to PreviewRules.
//!
//! PreviewRules walks the folder as an organize's scan does (one thread, so
//! the first `max_files` files in name order) or takes the sample of paths,
//! and runs the compiled rules over each file exactly as the plan does,
//! content sniffing included; it does not hash, so `is_duplicate` never
//! holds there. Nothing is written.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{convert, parts, respond};
use crate::{
    auth::Principal,
    db::{
        self,
        rules::{RuleValues, Write},
    },
    domain::Rule,
    engine::{
        self,
        categorize::Categorizer,
        progress::Progress,
        rule::{CompiledRules, FileFacts},
        scan::{ScanOptions, ScannedFile},
        template::Template,
    },
    error::{AppError, AppResult},
    pagination,
    pb::fileorganizer::v1::{self as pb, rule_service_server::RuleService},
    state::AppState,
    storage::{UserPath, UserRoot, trash::TRASH_FOLDER},
};

const DEFAULT_PAGE_SIZE: i32 = 100;
const DEFAULT_PREVIEW_FILES: i32 = 1_000;
const MAX_PREVIEW_FILES: i32 = 10_000;

pub struct Rules {
    state: AppState,
}

impl Rules {
    pub fn new(state: AppState) -> Self {
        Rules { state }
    }
}

/// Parses `rules/{id}` from request field `field`.
fn parse_name(name: &str, field: &str) -> AppResult<Uuid> {
    name.strip_prefix(convert::RULE_COLLECTION)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| AppError::invalid(field, "must be rules/{id}"))
}

/// A request's rule as checked values (`field`: `rule` or `rules[i]`).
fn checked(rule: &pb::Rule, field: &str, state: &AppState) -> AppResult<RuleValues> {
    let display_name = rule.display_name.trim().to_string();
    engine::rule::check_display_name(&format!("{field}.display_name"), &display_name)?;
    let definition = convert::rule_definition(rule, field)?;
    let values = RuleValues {
        display_name,
        position: rule.position,
        definition,
    };
    engine::rule::check(
        field,
        &domain_rule(Uuid::nil(), 0, &values),
        &state.config.rule_limits,
    )?;
    Ok(values)
}

fn domain_rule(id: Uuid, version: i64, values: &RuleValues) -> Rule {
    Rule {
        id,
        version,
        display_name: values.display_name.clone(),
        position: values.position,
        definition: values.definition.clone(),
    }
}

fn encode_token(position: i32, created: DateTime<Utc>, id: Uuid) -> String {
    format!("{position}.{}", pagination::encode(created, id))
}

fn decode_token(token: &str) -> AppResult<Option<(i32, DateTime<Utc>, Uuid)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || AppError::invalid("page_token", "is not a token from a previous response");
    let (position, rest) = token.split_once('.').ok_or_else(bad)?;
    let position = position.parse().map_err(|_| bad())?;
    let (created, id) = pagination::decode(rest)?.ok_or_else(bad)?;
    Ok(Some((position, created, id)))
}

impl Rules {
    async fn create(
        &self,
        principal: Principal,
        req: pb::CreateRuleRequest,
    ) -> AppResult<pb::Rule> {
        let rule = req
            .rule
            .ok_or_else(|| AppError::invalid("rule", "is required"))?;
        let values = checked(&rule, "rule", &self.state)?;
        let max = self.state.config.rule_limits.max_rules;
        let mut conn = self.state.db.get().await?;
        let row = db::rules::insert(&mut conn, principal.user_id, &values, max as i64)
            .await?
            .ok_or_else(|| AppError::FailedPrecondition {
                message: format!("you already have {max} rules, the most allowed"),
            })?;
        Ok(convert::rule(&row))
    }

    async fn get(&self, principal: Principal, req: pb::GetRuleRequest) -> AppResult<pb::Rule> {
        let id = parse_name(&req.name, "name")?;
        let mut conn = self.state.db.get().await?;
        db::rules::find_for_user(&mut conn, principal.user_id, id)
            .await?
            .map(|row| convert::rule(&row))
            .ok_or_else(|| AppError::not_found(req.name))
    }

    async fn list(
        &self,
        principal: Principal,
        req: pb::ListRulesRequest,
    ) -> AppResult<pb::ListRulesResponse> {
        let limit = pagination::page_size(req.page_size, DEFAULT_PAGE_SIZE)?;
        let after = decode_token(&req.page_token)?;
        let mut conn = self.state.db.get().await?;
        let mut rows =
            db::rules::list_for_user(&mut conn, principal.user_id, after, limit + 1).await?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|r| encode_token(r.position, r.created_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListRulesResponse {
            rules: rows.iter().map(convert::rule).collect(),
            next_page_token,
        })
    }

    async fn update(
        &self,
        principal: Principal,
        req: pb::UpdateRuleRequest,
    ) -> AppResult<pb::Rule> {
        let patch = req
            .rule
            .ok_or_else(|| AppError::invalid("rule", "is required"))?;
        let id = parse_name(&patch.name, "rule.name")?;
        let expected = convert::parse_etag(&patch.etag, "rule.etag")?;
        let mut conn = self.state.db.get().await?;
        let current = db::rules::find_for_user(&mut conn, principal.user_id, id)
            .await?
            .ok_or_else(|| AppError::not_found(patch.name.clone()))?;
        if let Some(expected) = expected
            && expected != current.version
        {
            return Err(convert::stale_etag(&patch.name, current.version));
        }
        let mut merged = convert::rule(&current);
        let paths: Vec<&str> = match &req.update_mask {
            Some(mask) if !mask.paths.is_empty() => mask.paths.iter().map(String::as_str).collect(),
            // No mask: every non-empty writable field.
            _ => [
                (!patch.display_name.is_empty()).then_some("display_name"),
                (patch.position != 0).then_some("position"),
                (patch.r#match != 0).then_some("match"),
                (!patch.conditions.is_empty()).then_some("conditions"),
                patch.action.is_some().then_some("action"),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        for path in paths {
            match path {
                "display_name" => merged.display_name = patch.display_name.clone(),
                "position" => merged.position = patch.position,
                "match" => merged.r#match = patch.r#match,
                "conditions" => merged.conditions = patch.conditions.clone(),
                "action" => merged.action = patch.action.clone(),
                other => {
                    return Err(AppError::invalid(
                        "update_mask",
                        format!(
                            "{other:?} cannot be updated; use display_name, position, match, \
                             conditions or action"
                        ),
                    ));
                }
            }
        }
        let values = checked(&merged, "rule", &self.state)?;
        // The version read above: a write in between is stale, not lost.
        match db::rules::update(
            &mut conn,
            principal.user_id,
            id,
            Some(current.version),
            &values,
        )
        .await?
        {
            Write::Done(row) => Ok(convert::rule(&row)),
            Write::Missing => Err(AppError::not_found(patch.name)),
            Write::Stale { current } => Err(convert::stale_etag(&patch.name, current)),
        }
    }

    async fn delete(&self, principal: Principal, req: pb::DeleteRuleRequest) -> AppResult<()> {
        let id = parse_name(&req.name, "name")?;
        let expected = convert::parse_etag(&req.etag, "etag")?;
        let mut conn = self.state.db.get().await?;
        match db::rules::delete(&mut conn, principal.user_id, id, expected).await? {
            Write::Done(()) => Ok(()),
            Write::Missing => Err(AppError::not_found(req.name)),
            Write::Stale { current } => Err(convert::stale_etag(&req.name, current)),
        }
    }

    async fn preview(
        &self,
        principal: Principal,
        req: pb::PreviewRulesRequest,
    ) -> AppResult<pb::PreviewRulesResponse> {
        let limits = self.state.config.rule_limits;
        if req.max_files < 0 {
            return Err(AppError::invalid("max_files", "must not be negative"));
        }
        let max_files = match req.max_files {
            0 => DEFAULT_PREVIEW_FILES,
            n => n.min(MAX_PREVIEW_FILES),
        } as usize;
        if req.paths.len() > MAX_PREVIEW_FILES as usize {
            return Err(AppError::invalid(
                "paths",
                format!("at most {MAX_PREVIEW_FILES} paths"),
            ));
        }
        // Draft rules are named by their index: `rules/-0`, `rules/-1` …
        let (rules, draft) = if req.rules.is_empty() {
            let mut conn = self.state.db.get().await?;
            (
                db::rules::rule_set(&mut conn, principal.user_id)
                    .await?
                    .rules,
                false,
            )
        } else {
            let mut rules = Vec::with_capacity(req.rules.len());
            if req.rules.len() > limits.max_rules {
                return Err(AppError::invalid(
                    "rules",
                    format!("at most {} rules", limits.max_rules),
                ));
            }
            for (i, rule) in req.rules.iter().enumerate() {
                let values = checked(rule, &format!("rules[{i}]"), &self.state)?;
                rules.push(domain_rule(Uuid::nil(), 0, &values));
            }
            (rules, true)
        };
        let compiled = CompiledRules::compile("rules", &rules, &limits, Utc::now())?;
        let paths = req
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| super::files::parse_path(p, &format!("paths[{i}]")))
            .collect::<AppResult<Vec<UserPath>>>()?;
        let folder = if paths.is_empty() {
            Some(super::files::parse_path(&req.folder, "folder")?)
        } else {
            None
        };
        let custom = {
            let mut conn = self.state.db.get().await?;
            db::categories::custom_rules(&mut conn, principal.user_id).await?
        };
        let root = self.state.user_root(principal.user_id)?;
        let names: Vec<String> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if draft {
                    format!("{}-{i}", convert::RULE_COLLECTION)
                } else {
                    format!("{}{}", convert::RULE_COLLECTION, r.id)
                }
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            preview(&root, &compiled, &names, &custom, folder, paths, max_files)
        })
        .await?
    }
}

/// A file to preview, or the path that cannot be, and why.
type Previewed = Result<ScannedFile, (UserPath, String)>;

/// The blocking part of PreviewRules.
fn preview(
    root: &UserRoot,
    rules: &CompiledRules,
    names: &[String],
    custom: &[crate::domain::CustomRule],
    folder: Option<UserPath>,
    paths: Vec<UserPath>,
    max_files: usize,
) -> AppResult<pb::PreviewRulesResponse> {
    let (categorizer, _) = Categorizer::new_skipping_invalid(custom);
    let template = Template::default();
    let trash_root = UserPath::parse(TRASH_FOLDER).expect("a valid constant");
    let trash = trash_root.join("{operation}").expect("a valid name");
    let mut entries = Vec::new();
    let mut truncated = false;
    let (files, source): (Vec<Previewed>, UserPath) = match folder {
        Some(folder) => {
            let progress = Progress::default();
            let options = ScanOptions {
                exclude_dirs: vec![trash_root.clone()],
                threads: 1,
                stop_after: Some(max_files as i64 + 1),
                ..Default::default()
            };
            let mut scanned =
                engine::scan::scan(root, &folder, &options, &progress).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        AppError::invalid("folder", "is not a folder in your storage")
                    } else {
                        crate::storage::StorageError::from(e).at("folder").into()
                    }
                })?;
            if scanned.files.len() > max_files {
                scanned.files.truncate(max_files);
                truncated = true;
            }
            (scanned.files.iter().map(Ok).collect(), folder)
        }
        None => (
            paths
                .into_iter()
                .map(|path| match root.symlink_metadata(&path) {
                    Ok(meta) if meta.file_type().is_file() => {
                        let fingerprint = crate::storage::Fingerprint::of(&meta);
                        // The ctime only matters to a move: none here.
                        let ctime = 0;
                        Ok(ScannedFile::new(
                            path,
                            &UserPath::root(),
                            fingerprint,
                            ctime,
                        ))
                    }
                    Ok(_) => Err((path, "not a regular file".to_string())),
                    Err(e) => Err((path, e.reason().to_string())),
                })
                .collect(),
            UserPath::root(),
        ),
    };
    let mut matched_count = 0i64;
    let read_taken = rules.uses_capture_date();
    for file in files {
        let file = match file {
            Ok(file) => file,
            Err((path, error)) => {
                entries.push(pb::RulePreviewEntry {
                    path: path.as_str().to_string(),
                    error,
                    ..Default::default()
                });
                continue;
            }
        };
        let head = std::cell::OnceCell::new();
        let read = || {
            head.get_or_init(|| engine::categorize::read_head(root, &file))
                .clone()
        };
        // Capture dates are read only when a rule looks at them, as in the
        // plan.
        let taken = read_taken
            .then(|| engine::taken::capture_date_of(root, &file))
            .flatten();
        let facts = FileFacts::new(&file.path, file.size(), file.modified(), false, || {
            read().as_deref().and_then(engine::rule::content_type)
        })
        .with_taken(taken);
        let mut entry = pb::RulePreviewEntry {
            path: file.path.as_str().to_string(),
            ..Default::default()
        };
        if let Some(decision) = rules.decide(&facts) {
            matched_count += 1;
            let explanation = rules.explain(decision.index, &facts);
            let category = match decision.action.category() {
                Some(set) => set.to_string(),
                None => categorizer
                    .categorize(file.relative(), read)
                    .name()
                    .to_string(),
            };
            let destination = engine::rule::destination(
                decision.action,
                &file.path,
                engine::template::FileFacts {
                    name: file.path.file_name().unwrap_or_default(),
                    category: &category,
                    modified: file.modified(),
                    taken,
                },
                &source,
                &template,
                &trash,
            );
            entry.rule = names[decision.index].clone();
            entry.rule_display_name = decision.display_name.to_string();
            entry.matched_conditions = explanation.conditions.iter().map(|&i| i as i32).collect();
            entry.explanation = explanation.text;
            match destination {
                Ok(Some(path)) => entry.destination = path.as_str().to_string(),
                Ok(None) => {}
                Err(reason) => entry.error = format!("no valid destination: {reason}"),
            }
        }
        entries.push(entry);
    }
    Ok(pb::PreviewRulesResponse {
        entries,
        truncated,
        matched_count,
    })
}

#[tonic::async_trait]
impl RuleService for Rules {
    async fn create_rule(
        &self,
        request: Request<pb::CreateRuleRequest>,
    ) -> Result<Response<pb::Rule>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.create(principal, req).await)
    }

    async fn get_rule(
        &self,
        request: Request<pb::GetRuleRequest>,
    ) -> Result<Response<pb::Rule>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.get(principal, req).await)
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.list(principal, req).await)
    }

    async fn update_rule(
        &self,
        request: Request<pb::UpdateRuleRequest>,
    ) -> Result<Response<pb::Rule>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.update(principal, req).await)
    }

    async fn delete_rule(
        &self,
        request: Request<pb::DeleteRuleRequest>,
    ) -> Result<Response<()>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.delete(principal, req).await)
    }

    async fn preview_rules(
        &self,
        request: Request<pb::PreviewRulesRequest>,
    ) -> Result<Response<pb::PreviewRulesResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.preview(principal, req).await)
    }
}
