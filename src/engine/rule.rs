//! Organizing rules (issue 21): checking them, compiling them once per
//! operation, and deciding which one a file falls under.
//!
//! [`CompiledRules::compile`] checks every rule against [`RuleLimits`] and
//! builds its matchers (globs with `globset`, regular expressions with the
//! `regex` crate, which runs in time linear in the name, with its compiled
//! size capped by `RegexBuilder::size_limit`, templates with
//! `engine::template`); an invalid part is INVALID_ARGUMENT naming the field
//! (`rule.conditions[2].name_regex`). The API compiles a rule when it is
//! written; the plan and PreviewRules compile the whole set again (a stored
//! rule that a later, stricter limit would refuse still fails loudly, as an
//! operation error, never silently).
//!
//! [`CompiledRules::decide`] is pure and cheap: the first rule (in the
//! order given) whose conditions hold decides. Conditions are tested in
//! order and stop at the first that settles the rule (all: the first false;
//! any: the first true); the file's content is read only if a content-type
//! condition is reached, and at most once per file ([`FileFacts`]).

use std::{cell::OnceCell, sync::Arc};

use chrono::{DateTime, NaiveDate, Utc};
use globset::{GlobBuilder, GlobMatcher};
use regex::{Regex, RegexBuilder};
use uuid::Uuid;

use super::template::{FileFacts as TemplateFacts, Template};
use crate::{
    domain::{Condition, Rule, RuleAction, RuleLimits, RuleMatch},
    error::{AppError, AppResult},
    storage::{UserPath, trash::TRASH_FOLDER},
};

/// Entries of one extension or content-type set.
const MAX_SET_ENTRIES: usize = 100;
/// The longest display name or category, in characters.
const MAX_NAME_CHARS: usize = 100;
const MAX_CATEGORY_CHARS: usize = 64;
/// The largest age bound, in days (some 270 years).
const MAX_DAYS: i32 = 100_000;

/// What a rule's conditions look at. Built per file by the caller; the
/// content type is asked for (and cached) only when a condition needs it.
pub struct FileFacts<'a, F: FnOnce() -> Option<&'static str>> {
    /// Relative to the user's root.
    pub path: &'a UserPath,
    pub size: u64,
    pub modified: DateTime<Utc>,
    pub duplicate: bool,
    /// The capture date (`engine::taken`), when it was read and found.
    pub taken: Option<NaiveDate>,
    content_type: OnceCell<Option<&'static str>>,
    sniff: std::cell::Cell<Option<F>>,
    lower_name: OnceCell<String>,
}

impl<'a, F: FnOnce() -> Option<&'static str>> FileFacts<'a, F> {
    /// `sniff` gives the file's MIME type from its first bytes (see
    /// [`content_type`]), or None when it is not recognized or unreadable.
    pub fn new(
        path: &'a UserPath,
        size: u64,
        modified: DateTime<Utc>,
        duplicate: bool,
        sniff: F,
    ) -> Self {
        FileFacts {
            path,
            size,
            modified,
            duplicate,
            taken: None,
            content_type: OnceCell::new(),
            sniff: std::cell::Cell::new(Some(sniff)),
            lower_name: OnceCell::new(),
        }
    }

    /// With the file's capture date (None: it has none, or it was not
    /// read), which the capture conditions look at.
    pub fn with_taken(mut self, taken: Option<NaiveDate>) -> Self {
        self.taken = taken;
        self
    }

    /// The instant the capture conditions compare: midnight UTC of the
    /// capture date, else of the modification date (as the template's
    /// `{taken_…}` tokens fall back).
    fn captured(&self) -> DateTime<Utc> {
        self.taken
            .unwrap_or_else(|| self.modified.date_naive())
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
    }

    fn name(&self) -> &'a str {
        self.path.file_name().unwrap_or_default()
    }

    fn lower_name(&self) -> &str {
        self.lower_name.get_or_init(|| self.name().to_lowercase())
    }

    fn content_type(&self) -> Option<&'static str> {
        *self
            .content_type
            .get_or_init(|| self.sniff.take().and_then(|sniff| sniff()))
    }
}

/// The MIME type `infer` recognizes in a file's first bytes.
pub fn content_type(head: &[u8]) -> Option<&'static str> {
    infer::get(head).map(|kind| kind.mime_type())
}

enum Matcher {
    Glob(GlobMatcher),
    Regex(Regex),
    /// Lower-case, without the dot.
    Extensions(Vec<String>),
    /// `(type, Some(subtype))` or `(type, None)` for `type/*`.
    ContentTypes(Vec<(String, Option<String>)>),
    Size {
        min: u64,
        max: u64,
    },
    Modified {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
    /// Like `Modified`, on [`FileFacts::captured`].
    Captured {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
    Under(UserPath),
    Duplicate(bool),
}

/// A rule's action, ready to apply.
#[derive(Debug)]
pub enum Action {
    Move(Template),
    Rename(Template),
    SetCategory(Arc<str>),
    Trash,
    LeaveInPlace,
}

struct CompiledRule {
    id: Uuid,
    version: i64,
    display_name: String,
    any: bool,
    conditions: Vec<(Matcher, Condition)>,
    action: Action,
}

/// A user's rules, compiled for one operation or preview.
pub struct CompiledRules {
    rules: Vec<CompiledRule>,
}

/// Why a rule matched, for PreviewRules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The conditions that held and decided.
    pub conditions: Vec<usize>,
    pub text: String,
}

fn invalid(field: &str, description: impl Into<String>) -> AppError {
    AppError::invalid(field, description)
}

fn check_pattern(field: &str, pattern: &str, limits: &RuleLimits) -> AppResult<()> {
    if pattern.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if pattern.len() > limits.max_pattern_bytes {
        return Err(invalid(
            field,
            format!(
                "is {} bytes long; at most {} are allowed",
                pattern.len(),
                limits.max_pattern_bytes
            ),
        ));
    }
    if pattern.contains('\0') {
        return Err(invalid(field, "must not contain a NUL byte"));
    }
    Ok(())
}

fn check_folder_name(field: &str, name: &str, max_chars: usize) -> AppResult<()> {
    if name.trim().is_empty() || name.chars().count() > max_chars {
        return Err(invalid(
            field,
            format!("must be 1 to {max_chars} characters"),
        ));
    }
    if name.contains(['/', '\\']) || name.chars().any(char::is_control) || name.starts_with('.') {
        return Err(invalid(
            field,
            "must not contain '/', '\\' or control characters, nor start with '.' (it names a folder)",
        ));
    }
    Ok(())
}

/// Checks a display name (the API's `display_name`).
pub fn check_display_name(field: &str, name: &str) -> AppResult<()> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn compile_condition(
    field: &str,
    condition: &Condition,
    limits: &RuleLimits,
) -> AppResult<Matcher> {
    let field = &format!("{field}.{}", condition.field());
    Ok(match condition {
        Condition::NameGlob { pattern } => {
            check_pattern(field, pattern, limits)?;
            let glob = GlobBuilder::new(pattern)
                .case_insensitive(true)
                .literal_separator(true)
                .build()
                .map_err(|e| invalid(field, e.to_string()))?;
            Matcher::Glob(glob.compile_matcher())
        }
        Condition::NameRegex { pattern } => {
            check_pattern(field, pattern, limits)?;
            let regex = RegexBuilder::new(pattern)
                .size_limit(limits.regex_size_limit)
                .dfa_size_limit(limits.regex_size_limit)
                .build()
                .map_err(|e| match e {
                    regex::Error::CompiledTooBig(limit) => invalid(
                        field,
                        format!("compiles to more than {limit} bytes; use a simpler expression"),
                    ),
                    other => invalid(field, other.to_string()),
                })?;
            Matcher::Regex(regex)
        }
        Condition::Extensions { extensions } => {
            if extensions.is_empty() || extensions.len() > MAX_SET_ENTRIES {
                return Err(invalid(
                    field,
                    format!("must list 1 to {MAX_SET_ENTRIES} extensions"),
                ));
            }
            let mut out = Vec::with_capacity(extensions.len());
            for ext in extensions {
                let ext = ext.trim();
                let ext = ext.strip_prefix('.').unwrap_or(ext).to_lowercase();
                if ext.is_empty()
                    || ext.len() > 32
                    || ext.starts_with('.')
                    || ext.ends_with('.')
                    || ext.contains(['/', '\\', '*', '?', '['])
                    || ext.chars().any(char::is_control)
                {
                    return Err(invalid(field, format!("{ext:?} is not an extension")));
                }
                out.push(ext);
            }
            Matcher::Extensions(out)
        }
        Condition::ContentType { content_types } => {
            if content_types.is_empty() || content_types.len() > MAX_SET_ENTRIES {
                return Err(invalid(
                    field,
                    format!("must list 1 to {MAX_SET_ENTRIES} content types"),
                ));
            }
            let mut out = Vec::with_capacity(content_types.len());
            for raw in content_types {
                let lower = raw.trim().to_ascii_lowercase();
                let token = |t: &str| {
                    !t.is_empty()
                        && t.len() <= 64
                        && t.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b'_')
                        })
                };
                match lower.split_once('/') {
                    Some((kind, "*")) if token(kind) => out.push((kind.to_string(), None)),
                    Some((kind, sub)) if token(kind) && token(sub) => {
                        out.push((kind.to_string(), Some(sub.to_string())));
                    }
                    _ => {
                        return Err(invalid(
                            field,
                            format!("{raw:?} is not a content type like image/png or image/*"),
                        ));
                    }
                }
            }
            Matcher::ContentTypes(out)
        }
        Condition::Size {
            min_bytes,
            max_bytes,
        } => {
            if min_bytes.is_none() && max_bytes.is_none() {
                return Err(invalid(field, "set min_bytes, max_bytes or both"));
            }
            let min = min_bytes.unwrap_or(0);
            let max = max_bytes.unwrap_or(i64::MAX);
            if min < 0 || max < 0 {
                return Err(invalid(field, "sizes must not be negative"));
            }
            if min > max {
                return Err(invalid(field, "min_bytes is larger than max_bytes"));
            }
            Matcher::Size {
                min: min as u64,
                max: max as u64,
            }
        }
        Condition::ModifyTime { start, end } | Condition::CaptureTime { start, end } => {
            if start.is_none() && end.is_none() {
                return Err(invalid(field, "set start_time, end_time or both"));
            }
            if let (Some(s), Some(e)) = (start, end)
                && s >= e
            {
                return Err(invalid(field, "start_time must be before end_time"));
            }
            let (start, end) = (*start, *end);
            if matches!(condition, Condition::CaptureTime { .. }) {
                Matcher::Captured { start, end }
            } else {
                Matcher::Modified { start, end }
            }
        }
        Condition::Age {
            older_than_days,
            newer_than_days,
        }
        | Condition::CaptureAge {
            older_than_days,
            newer_than_days,
        } => {
            if older_than_days.is_none() && newer_than_days.is_none() {
                return Err(invalid(
                    field,
                    "set older_than_days, newer_than_days or both",
                ));
            }
            for days in [older_than_days, newer_than_days].into_iter().flatten() {
                if !(0..=MAX_DAYS).contains(days) {
                    return Err(invalid(field, format!("days must be 0 to {MAX_DAYS}")));
                }
            }
            if let (Some(older), Some(newer)) = (older_than_days, newer_than_days)
                && older >= newer
            {
                return Err(invalid(
                    field,
                    "older_than_days must be less than newer_than_days (no file could match)",
                ));
            }
            // Resolved against the clock in `compile` (see `Matcher::Modified`).
            Matcher::Modified {
                start: None,
                end: None,
            }
        }
        Condition::UnderFolder { path } => {
            // Empty: the root (every file).
            if path.len() > limits.max_pattern_bytes {
                check_pattern(field, path, limits)?;
            }
            Matcher::Under(UserPath::parse(path).map_err(|e| e.at(field.as_str()))?)
        }
        Condition::IsDuplicate { duplicate } => Matcher::Duplicate(*duplicate),
    })
}

fn compile_action(field: &str, action: &RuleAction, limits: &RuleLimits) -> AppResult<Action> {
    let field = &format!("{field}.{}", action.field());
    Ok(match action {
        RuleAction::Move {
            destination_template,
        } => {
            let field = &format!("{field}.destination_template");
            check_pattern(field, destination_template, limits)?;
            let template =
                Template::parse(destination_template).map_err(|e| invalid(field, e.to_string()))?;
            let first = destination_template.split('/').next().unwrap_or_default();
            if first.eq_ignore_ascii_case(TRASH_FOLDER) {
                return Err(invalid(
                    field,
                    "must not lead into the trash; use the trash action",
                ));
            }
            Action::Move(template)
        }
        RuleAction::Rename { name_template } => {
            let field = &format!("{field}.name_template");
            check_pattern(field, name_template, limits)?;
            if name_template.contains('/') {
                return Err(invalid(
                    field,
                    "must be one name, without '/' (use the move action to change folders)",
                ));
            }
            Action::Rename(
                Template::parse(name_template).map_err(|e| invalid(field, e.to_string()))?,
            )
        }
        RuleAction::SetCategory { category } => {
            let field = &format!("{field}.category");
            check_folder_name(field, category.trim(), MAX_CATEGORY_CHARS)?;
            Action::SetCategory(category.trim().into())
        }
        RuleAction::Trash => Action::Trash,
        RuleAction::LeaveInPlace => Action::LeaveInPlace,
    })
}

/// Checks one rule's definition, naming fields under `field` (`rule`,
/// `rules[3]`).
pub fn check(field: &str, rule: &Rule, limits: &RuleLimits) -> AppResult<()> {
    compile_rule(field, rule, limits, Utc::now()).map(|_| ())
}

fn compile_rule(
    field: &str,
    rule: &Rule,
    limits: &RuleLimits,
    now: DateTime<Utc>,
) -> AppResult<CompiledRule> {
    let definition = &rule.definition;
    if definition.conditions.len() > limits.max_conditions {
        return Err(invalid(
            &format!("{field}.conditions"),
            format!(
                "has {} conditions; at most {} are allowed",
                definition.conditions.len(),
                limits.max_conditions
            ),
        ));
    }
    let mut conditions = Vec::with_capacity(definition.conditions.len());
    for (i, condition) in definition.conditions.iter().enumerate() {
        let mut matcher =
            compile_condition(&format!("{field}.conditions[{i}]"), condition, limits)?;
        if let Condition::Age {
            older_than_days,
            newer_than_days,
        }
        | Condition::CaptureAge {
            older_than_days,
            newer_than_days,
        } = condition
        {
            let before = |days: &i32| now - chrono::Duration::days(i64::from(*days));
            // Older than N days: modified (captured) before now - N; newer
            // than M: after now - M.
            let start = newer_than_days.as_ref().map(before);
            let end = older_than_days.as_ref().map(before);
            matcher = if matches!(condition, Condition::Age { .. }) {
                Matcher::Modified { start, end }
            } else {
                Matcher::Captured { start, end }
            };
        }
        conditions.push((matcher, condition.clone()));
    }
    Ok(CompiledRule {
        id: rule.id,
        version: rule.version,
        display_name: rule.display_name.clone(),
        any: definition.match_mode == RuleMatch::Any,
        conditions,
        action: compile_action(&format!("{field}.action"), &definition.action, limits)?,
    })
}

impl Matcher {
    fn holds<F: FnOnce() -> Option<&'static str>>(&self, file: &FileFacts<'_, F>) -> bool {
        match self {
            Matcher::Glob(glob) => glob.is_match(file.name()),
            Matcher::Regex(regex) => regex.is_match(file.name()),
            Matcher::Extensions(extensions) => {
                let lower = file.lower_name();
                let body = lower.trim_start_matches('.');
                extensions.iter().any(|ext| {
                    body.len() > ext.len() + 1
                        && body.ends_with(ext.as_str())
                        && body.as_bytes()[body.len() - ext.len() - 1] == b'.'
                })
            }
            Matcher::ContentTypes(types) => file.content_type().is_some_and(|mime| {
                let (kind, sub) = mime.split_once('/').unwrap_or((mime, ""));
                types
                    .iter()
                    .any(|(k, s)| k == kind && s.as_deref().is_none_or(|s| s == sub))
            }),
            Matcher::Size { min, max } => (*min..=*max).contains(&file.size),
            Matcher::Modified { start, end } => within(file.modified, *start, *end),
            Matcher::Captured { start, end } => within(file.captured(), *start, *end),
            Matcher::Under(folder) => file.path.starts_with(folder) && file.path != folder,
            Matcher::Duplicate(wanted) => file.duplicate == *wanted,
        }
    }
}

/// Whether `t` lies in `[start, end)` (an unset bound is open).
fn within(t: DateTime<Utc>, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> bool {
    start.is_none_or(|s| t >= s) && end.is_none_or(|e| t < e)
}

impl CompiledRule {
    fn matches<F: FnOnce() -> Option<&'static str>>(&self, file: &FileFacts<'_, F>) -> bool {
        if self.any && !self.conditions.is_empty() {
            self.conditions.iter().any(|(m, _)| m.holds(file))
        } else {
            self.conditions.iter().all(|(m, _)| m.holds(file))
        }
    }
}

/// The rule that decided a file.
pub struct Decision<'r> {
    pub index: usize,
    pub id: Uuid,
    pub version: i64,
    pub display_name: &'r str,
    pub action: &'r Action,
}

impl CompiledRules {
    /// Compiles `rules` (in the order they are tried), naming a field of the
    /// i-th rule `{field}[i]…`; ages are measured from `now`.
    pub fn compile(
        field: &str,
        rules: &[Rule],
        limits: &RuleLimits,
        now: DateTime<Utc>,
    ) -> AppResult<CompiledRules> {
        if rules.len() > limits.max_rules {
            return Err(invalid(
                field,
                format!(
                    "{} rules; at most {} are allowed",
                    rules.len(),
                    limits.max_rules
                ),
            ));
        }
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| compile_rule(&format!("{field}[{i}]"), rule, limits, now))
            .collect::<AppResult<Vec<_>>>()?;
        Ok(CompiledRules { rules })
    }

    /// Whether any rule looks at capture dates: a capture condition, or an
    /// action template with a `{taken_…}` token. Only then must the caller
    /// read the files' capture dates ([`FileFacts::with_taken`], the
    /// template facts' `taken`).
    pub fn uses_capture_date(&self) -> bool {
        self.rules.iter().any(|rule| {
            rule.conditions
                .iter()
                .any(|(m, _)| matches!(m, Matcher::Captured { .. }))
                || match &rule.action {
                    Action::Move(t) | Action::Rename(t) => t.uses_taken_date(),
                    Action::SetCategory(_) | Action::Trash | Action::LeaveInPlace => false,
                }
        })
    }

    /// The first rule whose conditions hold for the file.
    pub fn decide<F: FnOnce() -> Option<&'static str>>(
        &self,
        file: &FileFacts<'_, F>,
    ) -> Option<Decision<'_>> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.matches(file))
            .map(|(index, rule)| Decision {
                index,
                id: rule.id,
                version: rule.version,
                display_name: &rule.display_name,
                action: &rule.action,
            })
    }

    /// Why rule `index` (which [`CompiledRules::decide`] returned for this
    /// file) matched: every condition for a rule that needs all, the first
    /// that held for one that needs any.
    pub fn explain<F: FnOnce() -> Option<&'static str>>(
        &self,
        index: usize,
        file: &FileFacts<'_, F>,
    ) -> Explanation {
        let rule = &self.rules[index];
        let conditions: Vec<usize> = if rule.any {
            rule.conditions
                .iter()
                .position(|(m, _)| m.holds(file))
                .into_iter()
                .collect()
        } else {
            (0..rule.conditions.len()).collect()
        };
        let described: Vec<String> = conditions
            .iter()
            .map(|&i| {
                let described = describe(i, &rule.conditions[i].1);
                match rule.conditions[i].0 {
                    Matcher::Captured { .. } => match file.taken {
                        Some(date) => format!("{described} (taken on {date})"),
                        None => format!(
                            "{described} (no capture date: modified on {})",
                            file.modified.date_naive()
                        ),
                    },
                    _ => described,
                }
            })
            .collect();
        let text = if described.is_empty() {
            format!(
                "rule {:?} has no conditions: it matches every file",
                rule.display_name
            )
        } else {
            format!(
                "rule {:?}: {} held",
                rule.display_name,
                described.join(if rule.any { " or " } else { " and " })
            )
        };
        Explanation { conditions, text }
    }
}

fn describe(index: usize, condition: &Condition) -> String {
    let what = match condition {
        Condition::NameGlob { pattern } | Condition::NameRegex { pattern } => {
            format!("{pattern:?}")
        }
        Condition::Extensions { extensions } => extensions.join(", "),
        Condition::ContentType { content_types } => content_types.join(", "),
        Condition::Size {
            min_bytes,
            max_bytes,
        } => format!(
            "{}..{} bytes",
            min_bytes.map(|b| b.to_string()).unwrap_or_default(),
            max_bytes.map(|b| b.to_string()).unwrap_or_default()
        ),
        Condition::ModifyTime { start, end } | Condition::CaptureTime { start, end } => format!(
            "{}..{}",
            start.map(|t| t.to_rfc3339()).unwrap_or_default(),
            end.map(|t| t.to_rfc3339()).unwrap_or_default()
        ),
        Condition::Age {
            older_than_days,
            newer_than_days,
        }
        | Condition::CaptureAge {
            older_than_days,
            newer_than_days,
        } => [
            older_than_days.map(|d| format!("older than {d} days")),
            newer_than_days.map(|d| format!("newer than {d} days")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and "),
        Condition::UnderFolder { path } => format!("{path:?}"),
        Condition::IsDuplicate { duplicate } => duplicate.to_string(),
    };
    format!("conditions[{index}] {} {what}", condition.field())
}

/// Where a rule's action sends a file: `Ok(None)` leaves it in place; the
/// path is relative to the user's root (`destination` is the operation's
/// destination folder, `trash` the operation's trash folder). `facts` are
/// what templates render: the file's name, its category (which a
/// set-category action replaces, see [`Action::category`]) and its dates.
pub fn destination(
    action: &Action,
    path: &UserPath,
    facts: TemplateFacts<'_>,
    destination: &UserPath,
    template: &Template,
    trash: &UserPath,
) -> Result<Option<UserPath>, String> {
    let category = facts.category;
    let render = |template: &Template, category: &str| {
        template
            .render(&TemplateFacts { category, ..facts })
            .map_err(|e| e.to_string())
    };
    let joined =
        |base: &UserPath, rendered: String| base.join(&rendered).map_err(|e| e.to_string());
    match action {
        Action::Move(t) => joined(destination, render(t, category)?).map(Some),
        Action::Rename(t) => joined(
            &path.parent().unwrap_or_else(UserPath::root),
            render(t, category)?,
        )
        .map(Some),
        Action::SetCategory(c) => joined(destination, render(template, c)?).map(Some),
        Action::Trash => trash.join_path(path).map(Some).map_err(|e| e.to_string()),
        Action::LeaveInPlace => Ok(None),
    }
}

impl Action {
    /// The category a file gets under this action, when it sets one.
    pub fn category(&self) -> Option<&Arc<str>> {
        match self {
            Action::SetCategory(c) => Some(c),
            Action::Move(_) | Action::Rename(_) | Action::Trash | Action::LeaveInPlace => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RuleDefinition;

    const DAY: i64 = 86_400;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn rule(match_mode: RuleMatch, conditions: Vec<Condition>, action: RuleAction) -> Rule {
        Rule {
            id: Uuid::now_v7(),
            version: 1,
            display_name: "r".into(),
            position: 0,
            definition: RuleDefinition {
                match_mode,
                conditions,
                action,
            },
        }
    }

    fn all(conditions: Vec<Condition>) -> Rule {
        rule(RuleMatch::All, conditions, RuleAction::LeaveInPlace)
    }

    fn compile(rules: &[Rule]) -> CompiledRules {
        CompiledRules::compile("rules", rules, &RuleLimits::default(), now()).unwrap()
    }

    fn refused(rules: &[Rule]) -> String {
        match CompiledRules::compile("rules", rules, &RuleLimits::default(), now()) {
            Err(AppError::InvalidArgument { field, .. }) => field,
            Err(other) => panic!("expected INVALID_ARGUMENT, got {other:?}"),
            Ok(_) => panic!("accepted {rules:?}"),
        }
    }

    /// A file for the matchers: `path`, `size` bytes, modified at
    /// `modified`, with content type `mime`.
    #[derive(Debug)]
    struct File {
        path: UserPath,
        size: u64,
        modified: DateTime<Utc>,
        duplicate: bool,
        mime: Option<&'static str>,
        taken: Option<NaiveDate>,
    }

    fn file(path: &str) -> File {
        File {
            path: UserPath::parse(path).unwrap(),
            size: 100,
            modified: now() - chrono::Duration::days(1),
            duplicate: false,
            mime: None,
            taken: None,
        }
    }

    impl File {
        fn facts(&self) -> FileFacts<'_, impl FnOnce() -> Option<&'static str> + '_> {
            FileFacts::new(
                &self.path,
                self.size,
                self.modified,
                self.duplicate,
                move || self.mime,
            )
            .with_taken(self.taken)
        }
    }

    fn holds(condition: Condition, file: &File) -> bool {
        compile(&[all(vec![condition])])
            .decide(&file.facts())
            .is_some()
    }

    #[test]
    fn each_condition_matches_what_it_says() {
        let glob = |p: &str| Condition::NameGlob { pattern: p.into() };
        assert!(holds(glob("*.PDF"), &file("a/Invoice.pdf")));
        assert!(!holds(glob("*.pdf"), &file("a.pdf/readme.txt")));
        // A glob sees the name only: `*` does not reach into folders.
        assert!(!holds(glob("a/*.pdf"), &file("a/x.pdf")));

        let regex = |p: &str| Condition::NameRegex { pattern: p.into() };
        assert!(holds(
            regex(r"^IMG_\d{4}\.jpe?g$"),
            &file("DCIM/IMG_0001.jpg")
        ));
        assert!(!holds(regex(r"^IMG_\d{4}$"), &file("IMG_0001.jpg")));
        assert!(
            holds(regex("inv"), &file("my-invoice.pdf")),
            "searched, not anchored"
        );

        let exts = |e: &[&str]| Condition::Extensions {
            extensions: e.iter().map(|s| s.to_string()).collect(),
        };
        assert!(holds(exts(&[".JPG"]), &file("x.jpg")));
        assert!(holds(exts(&["tar.gz"]), &file("backup.TAR.GZ")));
        assert!(holds(exts(&["gz"]), &file("backup.tar.gz")));
        assert!(
            !holds(exts(&["gz"]), &file(".gz")),
            "a dot file has no extension"
        );
        assert!(!holds(exts(&["pdf"]), &file("pdf")));

        let types = |t: &[&str]| Condition::ContentType {
            content_types: t.iter().map(|s| s.to_string()).collect(),
        };
        let png = File {
            mime: Some("image/png"),
            ..file("x.dat")
        };
        assert!(holds(types(&["image/*"]), &png));
        assert!(holds(types(&["application/pdf", "IMAGE/PNG"]), &png));
        assert!(!holds(types(&["image/jpeg"]), &png));
        assert!(!holds(types(&["image/*"]), &file("unknown.png")));

        let size = |min: Option<i64>, max: Option<i64>| Condition::Size {
            min_bytes: min,
            max_bytes: max,
        };
        assert!(holds(size(Some(100), Some(100)), &file("a")), "inclusive");
        assert!(!holds(size(Some(101), None), &file("a")));
        assert!(!holds(size(None, Some(99)), &file("a")));

        let old = File {
            modified: now() - chrono::Duration::days(91),
            ..file("old.log")
        };
        let age = |older: Option<i32>, newer: Option<i32>| Condition::Age {
            older_than_days: older,
            newer_than_days: newer,
        };
        assert!(holds(age(Some(90), None), &old));
        assert!(!holds(age(Some(90), None), &file("new.log")));
        assert!(holds(age(None, Some(2)), &file("new.log")));
        assert!(holds(age(Some(30), Some(365)), &old));
        assert!(!holds(age(Some(30), Some(60)), &old));

        let range = Condition::ModifyTime {
            start: Some(now() - chrono::Duration::seconds(2 * DAY)),
            end: Some(now() - chrono::Duration::seconds(DAY)),
        };
        assert!(!holds(range.clone(), &file("x")), "the end is exclusive");
        let inside = File {
            modified: now() - chrono::Duration::seconds(DAY + 1),
            ..file("x")
        };
        assert!(holds(range, &inside));

        let captured = |start: Option<&str>, end: Option<&str>| Condition::CaptureTime {
            start: start.map(|d| format!("{d}T00:00:00Z").parse().unwrap()),
            end: end.map(|d| format!("{d}T00:00:00Z").parse().unwrap()),
        };
        let photo = File {
            // Modified now, taken long ago: the capture date decides.
            modified: now(),
            taken: NaiveDate::from_ymd_opt(2023, 5, 1),
            ..file("IMG_1.jpg")
        };
        assert!(holds(
            captured(Some("2023-05-01"), Some("2023-05-02")),
            &photo
        ));
        assert!(
            !holds(captured(None, Some("2023-05-01")), &photo),
            "the end is exclusive"
        );
        assert!(!holds(captured(Some("2023-05-02"), None), &photo));
        // Without a capture date, the modification date stands in.
        let mtime_day = file("x").modified.date_naive().to_string();
        assert!(holds(captured(Some(&mtime_day), None), &file("x")));
        assert!(!holds(
            captured(Some(&mtime_day), None),
            &File {
                taken: NaiveDate::from_ymd_opt(2000, 1, 1),
                ..file("x")
            }
        ));
        let capture_age = |older: Option<i32>, newer: Option<i32>| Condition::CaptureAge {
            older_than_days: older,
            newer_than_days: newer,
        };
        // Taken 2023-05-01, `now()` is 2027-01-15: over 365 days ago.
        assert!(holds(capture_age(Some(365), None), &photo));
        assert!(!holds(age(Some(365), None), &photo), "the mtime is recent");
        assert!(!holds(capture_age(None, Some(365)), &photo));
        assert!(
            holds(capture_age(None, Some(2)), &file("new.jpg")),
            "falls back to the mtime"
        );

        let under = |p: &str| Condition::UnderFolder { path: p.into() };
        assert!(holds(under("a"), &file("a/b/c.txt")));
        assert!(
            holds(under(""), &file("c.txt")),
            "the root holds everything"
        );
        assert!(!holds(under("a"), &file("ab/c.txt")), "component-wise");
        assert!(!holds(under("a/b/c.txt"), &file("a/b/c.txt")), "not itself");

        let dup = File {
            duplicate: true,
            ..file("x")
        };
        assert!(holds(Condition::IsDuplicate { duplicate: true }, &dup));
        assert!(!holds(
            Condition::IsDuplicate { duplicate: true },
            &file("x")
        ));
        assert!(holds(
            Condition::IsDuplicate { duplicate: false },
            &file("x")
        ));
    }

    #[test]
    fn the_content_is_sniffed_only_when_a_condition_needs_it_and_once() {
        let calls = std::cell::Cell::new(0);
        let path = UserPath::parse("a.pdf").unwrap();
        let rules = compile(&[
            all(vec![Condition::Extensions {
                extensions: vec!["jpg".into()],
            }]),
            rule(
                RuleMatch::Any,
                vec![
                    Condition::ContentType {
                        content_types: vec!["image/*".into()],
                    },
                    Condition::ContentType {
                        content_types: vec!["application/pdf".into()],
                    },
                ],
                RuleAction::Trash,
            ),
        ]);
        let facts = FileFacts::new(&path, 1, now(), false, || {
            calls.set(calls.get() + 1);
            Some("application/pdf")
        });
        assert_eq!(rules.decide(&facts).unwrap().index, 1);
        assert_eq!(calls.get(), 1);
        let by_name = compile(&[all(vec![Condition::NameGlob {
            pattern: "*.pdf".into(),
        }])]);
        let facts = FileFacts::new(&path, 1, now(), false, || -> Option<&'static str> {
            panic!("no content condition: nothing to read")
        });
        assert!(by_name.decide(&facts).is_some());
    }

    #[test]
    fn the_first_matching_rule_wins_and_explains_itself() {
        let pdf = Condition::Extensions {
            extensions: vec!["pdf".into()],
        };
        let big = Condition::Size {
            min_bytes: Some(50),
            max_bytes: None,
        };
        let rules = compile(&[
            all(vec![
                pdf.clone(),
                Condition::Size {
                    min_bytes: Some(1_000),
                    max_bytes: None,
                },
            ]),
            rule(
                RuleMatch::Any,
                vec![big.clone(), pdf.clone()],
                RuleAction::Trash,
            ),
            all(vec![]),
        ]);
        let f = file("a.pdf");
        let decision = rules.decide(&f.facts()).unwrap();
        assert_eq!(decision.index, 1);
        let why = rules.explain(1, &f.facts());
        assert_eq!(why.conditions, [0], "any: the first that held");
        assert!(
            why.text.contains("conditions[0] size 50.. bytes"),
            "{}",
            why.text
        );
        // No condition: every file (the catch-all).
        let small = File {
            size: 1,
            ..file("b.txt")
        };
        assert_eq!(rules.decide(&small.facts()).unwrap().index, 2);
        assert!(rules.explain(2, &small.facts()).conditions.is_empty());
        assert!(compile(&[]).decide(&small.facts()).is_none());
        let all_of = compile(&[all(vec![pdf, big])]);
        assert_eq!(all_of.explain(0, &f.facts()).conditions, [0, 1]);
    }

    #[test]
    fn actions_stay_inside_the_destination_or_the_trash() {
        let destination = UserPath::parse("sorted").unwrap();
        let trash = UserPath::parse(".trash/op").unwrap();
        let template = Template::default();
        let path = UserPath::parse("in/sub/IMG_1.jpg").unwrap();
        let modified = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let go = |action: RuleAction| {
            let compiled = compile(&[rule(RuleMatch::All, vec![], action)]);
            let f = File {
                path: path.clone(),
                ..file("x")
            };
            let decision = compiled.decide(&f.facts()).unwrap();
            super::destination(
                decision.action,
                &path,
                TemplateFacts {
                    name: path.file_name().unwrap_or_default(),
                    category: "Images",
                    modified,
                    taken: None,
                },
                &destination,
                &template,
                &trash,
            )
            .unwrap()
            .map(|p| p.as_str().to_string())
        };
        assert_eq!(
            go(RuleAction::Move {
                destination_template: "Photos/{year}/{name}".into()
            })
            .as_deref(),
            Some("sorted/Photos/2023/IMG_1.jpg")
        );
        assert_eq!(
            go(RuleAction::Rename {
                name_template: "{year}-{month}-{stem}.{ext}".into()
            })
            .as_deref(),
            Some("in/sub/2023-11-IMG_1.jpg")
        );
        assert_eq!(
            go(RuleAction::SetCategory {
                category: "Camera".into()
            })
            .as_deref(),
            Some("sorted/Camera/IMG_1.jpg")
        );
        assert_eq!(
            go(RuleAction::Trash).as_deref(),
            Some(".trash/op/in/sub/IMG_1.jpg")
        );
        assert_eq!(go(RuleAction::LeaveInPlace), None);
    }

    #[test]
    fn hostile_rules_are_refused_naming_the_field() {
        let move_to = |t: &str| RuleAction::Move {
            destination_template: t.into(),
        };
        let regex = |p: String| Condition::NameRegex { pattern: p };
        let leave = |c: Vec<Condition>| all(c);
        let cases: Vec<(Vec<Rule>, &str)> = vec![
            (
                vec![leave(vec![regex(r"(?:\w{100}){100}".into())])],
                "rules[0].conditions[0].name_regex",
            ),
            (
                vec![all(vec![]), leave(vec![regex("x".repeat(513))])],
                "rules[1].conditions[0].name_regex",
            ),
            (
                vec![leave(vec![regex("(".into())])],
                "rules[0].conditions[0].name_regex",
            ),
            (
                vec![leave(vec![Condition::NameGlob {
                    pattern: "{a,".into(),
                }])],
                "rules[0].conditions[0].name_glob",
            ),
            (
                vec![leave(vec![Condition::NameGlob {
                    pattern: "*".repeat(10_000),
                }])],
                "rules[0].conditions[0].name_glob",
            ),
            (
                vec![rule(RuleMatch::All, vec![], move_to("../{name}"))],
                "rules[0].action.move.destination_template",
            ),
            (
                vec![rule(RuleMatch::All, vec![], move_to("/abs/{name}"))],
                "rules[0].action.move.destination_template",
            ),
            (
                vec![rule(
                    RuleMatch::All,
                    vec![],
                    move_to("a/{name}/../../x{name}"),
                )],
                "rules[0].action.move.destination_template",
            ),
            (
                vec![rule(RuleMatch::All, vec![], move_to(".TRASH/{name}"))],
                "rules[0].action.move.destination_template",
            ),
            (
                vec![rule(RuleMatch::All, vec![], move_to("{category}"))],
                "rules[0].action.move.destination_template",
            ),
            (
                vec![rule(
                    RuleMatch::All,
                    vec![],
                    RuleAction::Rename {
                        name_template: "x/{name}".into(),
                    },
                )],
                "rules[0].action.rename.name_template",
            ),
            (
                vec![rule(
                    RuleMatch::All,
                    vec![],
                    RuleAction::SetCategory {
                        category: ".hidden".into(),
                    },
                )],
                "rules[0].action.set_category.category",
            ),
            (
                vec![leave(vec![Condition::UnderFolder {
                    path: "/etc".into(),
                }])],
                "rules[0].conditions[0].under_folder",
            ),
            (
                vec![leave(vec![Condition::Extensions { extensions: vec![] }])],
                "rules[0].conditions[0].extensions",
            ),
            (
                vec![leave(vec![Condition::CaptureTime {
                    start: None,
                    end: None,
                }])],
                "rules[0].conditions[0].capture_time",
            ),
            (
                vec![leave(vec![Condition::CaptureTime {
                    start: Some(now()),
                    end: Some(now()),
                }])],
                "rules[0].conditions[0].capture_time",
            ),
            (
                vec![leave(vec![Condition::CaptureAge {
                    older_than_days: Some(MAX_DAYS + 1),
                    newer_than_days: None,
                }])],
                "rules[0].conditions[0].capture_age",
            ),
            (
                vec![leave(vec![Condition::CaptureAge {
                    older_than_days: Some(30),
                    newer_than_days: Some(30),
                }])],
                "rules[0].conditions[0].capture_age",
            ),
            (
                vec![leave(vec![Condition::Extensions {
                    extensions: vec!["a/b".into()],
                }])],
                "rules[0].conditions[0].extensions",
            ),
            (
                vec![leave(vec![Condition::ContentType {
                    content_types: vec!["image".into()],
                }])],
                "rules[0].conditions[0].content_type",
            ),
            (
                vec![leave(vec![Condition::Size {
                    min_bytes: None,
                    max_bytes: None,
                }])],
                "rules[0].conditions[0].size",
            ),
            (
                vec![leave(vec![Condition::Size {
                    min_bytes: Some(-1),
                    max_bytes: None,
                }])],
                "rules[0].conditions[0].size",
            ),
            (
                vec![leave(vec![Condition::Age {
                    older_than_days: Some(10),
                    newer_than_days: Some(5),
                }])],
                "rules[0].conditions[0].age",
            ),
            (
                vec![leave(vec![Condition::ModifyTime {
                    start: Some(now()),
                    end: Some(now()),
                }])],
                "rules[0].conditions[0].modify_time",
            ),
            (
                vec![leave(
                    (0..21)
                        .map(|_| Condition::IsDuplicate { duplicate: true })
                        .collect(),
                )],
                "rules[0].conditions",
            ),
            ((0..201).map(|_| all(vec![])).collect(), "rules"),
        ];
        for (rules, field) in cases {
            assert_eq!(refused(&rules), field, "{rules:?}");
        }
        // The classic catastrophic pattern is harmless in a linear-time
        // engine: accepted, and a long near-miss is answered at once.
        let redos = compile(&[leave(vec![regex("^(a+)+$".into())])]);
        let name = format!("{}b", "a".repeat(200));
        assert!(redos.decide(&file(&name).facts()).is_none());
        // A smaller size limit refuses what the default allows.
        let tight = RuleLimits {
            regex_size_limit: 4_096,
            ..RuleLimits::default()
        };
        let unicode = leave(vec![regex(r"\w{10}".into())]);
        assert!(
            CompiledRules::compile(
                "rules",
                std::slice::from_ref(&unicode),
                &RuleLimits::default(),
                now()
            )
            .is_ok()
        );
        assert!(CompiledRules::compile("rules", &[unicode], &tight, now()).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn condition() -> impl Strategy<Value = Condition> {
            prop_oneof![
                proptest::sample::select(vec!["*.pdf", "a*", "*b*", "[ab]*", "?"])
                    .prop_map(|p| Condition::NameGlob { pattern: p.into() }),
                proptest::sample::select(vec!["^a", "b$", r"\d", "^(a+)+$", "(?i)PDF"])
                    .prop_map(|p| Condition::NameRegex { pattern: p.into() }),
                proptest::sample::subsequence(vec!["pdf", "txt", "gz", "tar.gz"], 1..3).prop_map(
                    |e| Condition::Extensions {
                        extensions: e.into_iter().map(String::from).collect(),
                    }
                ),
                (0i64..200, 0i64..200).prop_map(|(a, b)| Condition::Size {
                    min_bytes: Some(a.min(b)),
                    max_bytes: Some(a.max(b)),
                }),
                (0i32..50).prop_map(|d| Condition::Age {
                    older_than_days: Some(d),
                    newer_than_days: None,
                }),
                (0i32..50, proptest::option::of(51i32..100)).prop_map(|(d, n)| {
                    Condition::CaptureAge {
                        older_than_days: Some(d),
                        newer_than_days: n,
                    }
                }),
                (0i64..100, 1i64..50).prop_map(|(from, len)| Condition::CaptureTime {
                    start: Some(now() - chrono::Duration::days(from + len)),
                    end: Some(now() - chrono::Duration::days(from)),
                }),
                proptest::sample::select(vec!["a", "b", "a/b"])
                    .prop_map(|p| Condition::UnderFolder { path: p.into() }),
                any::<bool>().prop_map(|d| Condition::IsDuplicate { duplicate: d }),
            ]
        }

        fn a_file() -> impl Strategy<Value = File> {
            (
                proptest::sample::select(vec!["a", "b", "a/b", "c"]),
                "[ab1.]{0,6}(\\.pdf|\\.txt|\\.tar\\.gz)?",
                0u64..200,
                0i64..100,
                any::<bool>(),
                proptest::option::of(0i64..120),
            )
                .prop_filter_map(
                    "a valid name",
                    |(dir, name, size, days, duplicate, taken_days)| {
                        let path = UserPath::parse(&format!("{dir}/{name}")).ok()?;
                        path.file_name().filter(|n| !n.is_empty())?;
                        Some(File {
                            path,
                            size,
                            modified: now() - chrono::Duration::days(days),
                            duplicate,
                            mime: None,
                            taken: taken_days
                                .map(|d| (now() - chrono::Duration::days(d)).date_naive()),
                        })
                    },
                )
        }

        fn one(condition: &Condition, f: &File) -> bool {
            holds(condition.clone(), f)
        }

        proptest! {
            /// All is the conjunction of the conditions, any their
            /// disjunction (and no condition matches everything).
            #[test]
            fn all_and_any_combine_single_conditions(
                conditions in proptest::collection::vec(condition(), 0..5),
                f in a_file(),
            ) {
                let singles: Vec<bool> = conditions.iter().map(|c| one(c, &f)).collect();
                let all_rule = compile(&[all(conditions.clone())]);
                let any_rule = compile(&[rule(RuleMatch::Any, conditions.clone(), RuleAction::Trash)]);
                prop_assert_eq!(all_rule.decide(&f.facts()).is_some(), singles.iter().all(|s| *s));
                prop_assert_eq!(
                    any_rule.decide(&f.facts()).is_some(),
                    singles.is_empty() || singles.iter().any(|s| *s)
                );
            }

            /// A capture condition reads the capture date whatever the
            /// mtime, and a file without one exactly as if it had been
            /// captured on its modification day.
            #[test]
            fn capture_conditions_read_the_capture_date_else_the_mtime_day(
                condition in condition(),
                f in a_file(),
                other_mtime_days in 0i64..400,
            ) {
                if !matches!(condition, Condition::CaptureTime { .. } | Condition::CaptureAge { .. }) {
                    return Ok(());
                }
                let result = one(&condition, &f);
                if let Some(day) = f.taken {
                    let moved = File {
                        modified: now() - chrono::Duration::days(other_mtime_days),
                        ..File { path: f.path.clone(), mime: None, ..f }
                    };
                    prop_assert_eq!(one(&condition, &moved), result);
                    let as_mtime = File {
                        modified: day.and_time(chrono::NaiveTime::MIN).and_utc(),
                        taken: None,
                        path: moved.path.clone(),
                        ..moved
                    };
                    prop_assert_eq!(one(&condition, &as_mtime), result);
                } else {
                    let taken = File { taken: Some(f.modified.date_naive()), path: f.path.clone(), ..f };
                    prop_assert_eq!(one(&condition, &taken), result);
                }
            }

            /// The decision is the first rule that matches on its own.
            #[test]
            fn the_first_matching_rule_decides(
                rules in proptest::collection::vec(
                    (proptest::collection::vec(condition(), 1..3), any::<bool>()),
                    0..6,
                ),
                f in a_file(),
            ) {
                let rules: Vec<Rule> = rules
                    .into_iter()
                    .map(|(c, any)| rule(if any { RuleMatch::Any } else { RuleMatch::All }, c, RuleAction::Trash))
                    .collect();
                let first = rules
                    .iter()
                    .position(|r| compile(std::slice::from_ref(r)).decide(&f.facts()).is_some());
                let compiled = compile(&rules);
                prop_assert_eq!(compiled.decide(&f.facts()).map(|d| d.index), first);
                if let Some(i) = first {
                    prop_assert_eq!(compiled.decide(&f.facts()).unwrap().id, rules[i].id);
                }
            }

            /// Whatever the name, a move stays inside the destination, a
            /// rename inside the file's folder, a trash inside the trash.
            #[test]
            fn destinations_never_leave_their_folder(
                name in "[^/\u{0}]{1,40}",
                template in proptest::sample::select(vec![
                    "{name}", "{stem}.{ext}", "{category}/{year}/{name}", "x{ext}/{stem}",
                ]),
            ) {
                let Ok(path) = UserPath::parse(&format!("in/{name}")) else { return Ok(()); };
                if path.parent() != UserPath::parse("in").ok() { return Ok(()); }
                let destination = UserPath::parse("out").unwrap();
                let trash = UserPath::parse(".trash/op").unwrap();
                let parsed = Template::parse(template).unwrap();
                for (action, inside) in [
                    (Action::Move(parsed.clone()), &destination),
                    (Action::Rename(Template::parse("{year}-{name}").unwrap()), &UserPath::parse("in").unwrap()),
                    (Action::SetCategory("..".into()), &destination),
                    (Action::Trash, &trash),
                ] {
                    if let Ok(Some(to)) = destination_for(&action, &path, &destination, &parsed, &trash) {
                        prop_assert!(to.starts_with(inside) && &to != inside, "{to} outside {inside}");
                    }
                }
            }
        }

        fn destination_for(
            action: &Action,
            path: &UserPath,
            to: &UserPath,
            template: &Template,
            trash: &UserPath,
        ) -> Result<Option<UserPath>, String> {
            destination(
                action,
                path,
                TemplateFacts {
                    name: path.file_name().unwrap_or_default(),
                    category: "../..",
                    modified: now(),
                    taken: None,
                },
                to,
                template,
                trash,
            )
        }
    }
}
