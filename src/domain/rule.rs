//! Users' organizing rules (issue 21): ordered rules of conditions and one
//! action each, which decide, before the operation's layout template, what
//! an organize does with a file.
//!
//! Not to be confused with [`super::rules`], the custom *category* rules of
//! the categorizer. These types are the rule as written down: stored in the
//! `rules` table (`db::rules`, the definition as JSON), read from and shown
//! to the API (`api::rules`), checked and compiled once per operation by
//! `engine::rule` (which owns the limits and the matching). The JSON keys and
//! words below are what rows hold: change them only with a migration.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a rule's conditions combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMatch {
    /// Every condition must hold (no condition: every file matches).
    #[default]
    All,
    /// At least one must.
    Any,
}

/// One condition on a file (see `proto/fileorganizer/v1/rule.proto`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Condition {
    /// A glob on the file name, ignoring case.
    NameGlob { pattern: String },
    /// A regular expression searched in the file name.
    NameRegex { pattern: String },
    /// The extension is one of these (lower-case, without the dot).
    Extensions { extensions: Vec<String> },
    /// The sniffed content type is one of these (`type/subtype` or `type/*`).
    ContentType { content_types: Vec<String> },
    /// Size in bytes within `[min, max]`.
    Size {
        min_bytes: Option<i64>,
        max_bytes: Option<i64>,
    },
    /// Modification time within `[start, end)`.
    ModifyTime {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
    /// Modified more than `older_than_days` and less than `newer_than_days`
    /// days before the evaluation's clock.
    Age {
        older_than_days: Option<i32>,
        newer_than_days: Option<i32>,
    },
    /// The file lies under this folder (relative to the user's root).
    UnderFolder { path: String },
    /// The capture date (`engine::taken`; the modification date when the
    /// file carries none), as midnight UTC of that calendar day, within
    /// `[start, end)`.
    CaptureTime {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
    /// Captured (as [`Condition::CaptureTime`] reads the date) more than
    /// `older_than_days` and less than `newer_than_days` days before the
    /// evaluation's clock.
    CaptureAge {
        older_than_days: Option<i32>,
        newer_than_days: Option<i32>,
    },
    /// The file is (or is not) a duplicate of an earlier one.
    IsDuplicate { duplicate: bool },
}

impl Condition {
    /// The condition's name in the API (the `oneof` field), for field paths
    /// and explanations.
    pub const fn field(&self) -> &'static str {
        match self {
            Condition::NameGlob { .. } => "name_glob",
            Condition::NameRegex { .. } => "name_regex",
            Condition::Extensions { .. } => "extensions",
            Condition::ContentType { .. } => "content_type",
            Condition::Size { .. } => "size",
            Condition::ModifyTime { .. } => "modify_time",
            Condition::Age { .. } => "age",
            Condition::UnderFolder { .. } => "under_folder",
            Condition::CaptureTime { .. } => "capture_time",
            Condition::CaptureAge { .. } => "capture_age",
            Condition::IsDuplicate { .. } => "is_duplicate",
        }
    }
}

/// What a rule does with a file it matches. Never a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RuleAction {
    /// Move to the layout template rendered inside the operation's
    /// destination.
    Move { destination_template: String },
    /// Rename in its folder by a one-component template.
    Rename { name_template: String },
    /// Give the file this category, then organize it by the operation's
    /// template.
    SetCategory { category: String },
    /// Move to the user's trash (`.trash/<operation>/…`).
    Trash,
    /// Leave it where it is.
    LeaveInPlace,
}

impl RuleAction {
    /// The action's name in the API (the `oneof` field).
    pub const fn field(&self) -> &'static str {
        match self {
            RuleAction::Move { .. } => "move",
            RuleAction::Rename { .. } => "rename",
            RuleAction::SetCategory { .. } => "set_category",
            RuleAction::Trash => "trash",
            RuleAction::LeaveInPlace => "leave_in_place",
        }
    }
}

/// What a rule says: the `rules.definition` column.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Jsonb)]
pub struct RuleDefinition {
    #[serde(rename = "match", default)]
    pub match_mode: RuleMatch,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub action: RuleAction,
}

/// A stored rule, as the engine applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: Uuid,
    /// 1 when created, one more at every update.
    pub version: i64,
    pub display_name: String,
    /// Lower first; ties in creation order (the caller sorts).
    pub position: i32,
    pub definition: RuleDefinition,
}

/// The rules a plan applies: the user's rules in order, and the version of
/// their rule set they were read at (`db::rules::rule_set`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub version: i64,
    pub rules: Vec<Rule>,
}

/// How big rules may be (config: `RULES_MAX_PER_USER`,
/// `RULE_MAX_CONDITIONS`, `RULE_MAX_PATTERN_BYTES`,
/// `RULE_REGEX_SIZE_LIMIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleLimits {
    /// Rules one user may have (and a preview may carry).
    pub max_rules: usize,
    /// Conditions in one rule.
    pub max_conditions: usize,
    /// Bytes of one glob, regular expression or template.
    pub max_pattern_bytes: usize,
    /// Bytes a compiled regular expression may take
    /// (`RegexBuilder::size_limit` and `dfa_size_limit`).
    pub regex_size_limit: usize,
}

impl Default for RuleLimits {
    fn default() -> Self {
        RuleLimits {
            max_rules: 200,
            max_conditions: 20,
            max_pattern_bytes: 512,
            regex_size_limit: 1 << 20,
        }
    }
}

/// The rule that decided a file, as its journal row records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedBy {
    pub rule_id: Uuid,
    pub rule_version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_definitions_keep_their_format() {
        let definition = RuleDefinition {
            match_mode: RuleMatch::Any,
            conditions: vec![
                Condition::NameGlob {
                    pattern: "*.pdf".into(),
                },
                Condition::Size {
                    min_bytes: Some(1),
                    max_bytes: None,
                },
                Condition::IsDuplicate { duplicate: true },
            ],
            action: RuleAction::Trash,
        };
        let stored = serde_json::json!({
            "match": "any",
            "conditions": [
                {"kind": "name_glob", "pattern": "*.pdf"},
                {"kind": "size", "min_bytes": 1, "max_bytes": null},
                {"kind": "is_duplicate", "duplicate": true},
            ],
            "action": {"kind": "trash"},
        });
        assert_eq!(serde_json::to_value(&definition).unwrap(), stored);
        assert_eq!(
            serde_json::from_value::<RuleDefinition>(stored).unwrap(),
            definition
        );
        // An unknown kind is an error, never a default.
        assert!(
            serde_json::from_value::<RuleDefinition>(serde_json::json!({
                "conditions": [{"kind": "smell"}],
                "action": {"kind": "trash"},
            }))
            .is_err()
        );
        assert!(
            serde_json::from_value::<RuleDefinition>(serde_json::json!({
                "action": {"kind": "delete"},
            }))
            .is_err()
        );
    }
}
