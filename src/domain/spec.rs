//! What an operation is asked to do.
//!
//! CreateOperation's request becomes an [`OperationRequest`] (its enums read
//! by `api::convert`, an unknown value refused there), which
//! `OperationSpec::parse` checks once, field by field, into an
//! [`OperationSpec`]. That constructor lives in `engine::spec`, beside the
//! template and pattern parsers it checks with, so that this module depends
//! on nothing else in the crate. The spec is stored as the row's `kind`,
//! paths, `dry_run` and `options` ([`OperationOptions`]); jobs read it back
//! from there.

use serde::{Deserialize, Serialize};

use super::{ConflictPolicy, DuplicatePolicy, OperationKind};

/// What CreateOperation asks for, as received: the enums read, the text not
/// yet checked.
#[derive(Debug, Clone)]
pub struct OperationRequest {
    pub kind: OperationKind,
    pub source_path: String,
    /// Empty: the source.
    pub destination_path: String,
    pub dry_run: bool,
    /// Empty: the default template.
    pub layout_template: String,
    pub duplicate_policy: DuplicatePolicy,
    pub conflict_policy: ConflictPolicy,
    pub include_globs: Vec<String>,
    pub exclude_globs: Vec<String>,
    pub hash_all_files: bool,
    pub remove_empty_dirs: bool,
    /// Whether the user's organizing rules decide first; None: yes when
    /// they have any (resolved when the plan is made).
    pub apply_rules: Option<bool>,
}

/// An operation's checked settings (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationSpec {
    /// Organize or deduplicate (an undo is made by UndoOperation).
    pub kind: OperationKind,
    /// Folders inside the user's storage, normalized (`storage::UserPath`).
    pub source_path: String,
    pub destination_path: String,
    pub dry_run: bool,
    pub options: OperationOptions,
}

/// The immutable settings of an operation: the `operations.options` column.
///
/// The JSON keys and words are the ones rows already hold, so every stored
/// operation still loads. A missing key takes its default (an undo stores
/// no settings of its own); a word that names no policy is an error, not a
/// default.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Jsonb)]
#[serde(default)]
pub struct OperationOptions {
    /// The layout template (`engine::template`); the default is filled in at
    /// creation, so it is empty only for an undo.
    pub layout_template: String,
    pub duplicate_policy: DuplicatePolicy,
    pub conflict_policy: ConflictPolicy,
    pub include_globs: Vec<String>,
    pub exclude_globs: Vec<String>,
    /// Hash every file, not only those that share a size with another.
    pub hash_all_files: bool,
    /// Remove the folders the moves left empty.
    pub remove_empty_dirs: bool,
    /// Whether the user's organizing rules (`domain::rule`) decide where
    /// files go before the layout template. None (the default, and every
    /// operation stored before rules existed): yes when the user has rules
    /// when the plan is made, so operations created by any path (the API,
    /// triggers) pick the rules up. Not written when unset, so older rows
    /// and new ones read the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_rules: Option<bool>,
}

impl OperationOptions {
    /// Whether a plan should read the user's rules: not when the request
    /// said no, and never for a deduplication (it only handles duplicates).
    pub fn wants_rules(&self, kind: super::OperationKind) -> bool {
        kind == super::OperationKind::Organize && self.apply_rules != Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_options_keep_their_format() {
        let options = OperationOptions {
            layout_template: "{category}/{name}".into(),
            duplicate_policy: DuplicatePolicy::MoveToTrash,
            conflict_policy: ConflictPolicy::Skip,
            include_globs: vec!["*.jpg".into()],
            exclude_globs: vec![],
            hash_all_files: true,
            remove_empty_dirs: false,
            apply_rules: None,
        };
        // Exactly what CreateOperation wrote before OperationSpec existed.
        let stored = serde_json::json!({
            "layout_template": "{category}/{name}",
            "duplicate_policy": "move_to_trash",
            "conflict_policy": "skip",
            "include_globs": ["*.jpg"],
            "exclude_globs": [],
            "hash_all_files": true,
            "remove_empty_dirs": false,
        });
        assert_eq!(serde_json::to_value(&options).unwrap(), stored);
        assert_eq!(
            serde_json::from_value::<OperationOptions>(stored).unwrap(),
            options
        );
    }

    #[test]
    fn an_undo_stores_no_options_and_unknown_policies_are_errors() {
        let undo: OperationOptions = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(undo, OperationOptions::default());
        assert_eq!(undo.apply_rules, None);
        let chosen: OperationOptions =
            serde_json::from_value(serde_json::json!({ "apply_rules": false })).unwrap();
        assert_eq!(chosen.apply_rules, Some(false));
        assert!(!chosen.wants_rules(super::super::OperationKind::Organize));
        assert!(undo.wants_rules(super::super::OperationKind::Organize));
        assert!(!undo.wants_rules(super::super::OperationKind::Deduplicate));
        assert_eq!(undo.duplicate_policy, DuplicatePolicy::ReportOnly);
        assert_eq!(undo.conflict_policy, ConflictPolicy::Rename);
        for (key, word) in [
            ("duplicate_policy", "delete_them"),
            ("duplicate_policy", ""),
            ("conflict_policy", "overwrite"),
        ] {
            let error =
                serde_json::from_value::<OperationOptions>(serde_json::json!({ key: word }))
                    .unwrap_err()
                    .to_string();
            assert!(
                error.contains(word) && error.contains("expected"),
                "{error}"
            );
        }
    }
}
