//! Checking what CreateOperation asks for, once.
//!
//! [`OperationSpec::parse`] turns an [`OperationRequest`] into the domain's
//! [`OperationSpec`] field by field, with the engine's own parsers (layout
//! templates, glob patterns) and storage's path rules; it lives here rather
//! than in `domain` because those parsers are the engine's. Every error is
//! INVALID_ARGUMENT naming the request field (`operation.…`), checked in the
//! order of the fields. [`check_on_disk`] then looks at the user's storage
//! for a clear early error; the job trusts neither and opens its folders
//! again, beneath the root, when it uses them (a check is a promise about
//! the past).

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{
    plan::TRASH_FOLDER,
    template::{DEFAULT_TEMPLATE, Template},
};
use crate::{
    domain::{OperationKind, OperationOptions, OperationRequest, OperationSpec},
    error::{AppError, AppResult},
    storage::{StorageError, UserPath, UserRoot},
};

/// At most this many include (or exclude) patterns.
const MAX_GLOBS: usize = 100;
/// The longest pattern, in bytes.
const MAX_GLOB_BYTES: usize = 256;

impl OperationSpec {
    /// The spec of a CreateOperation request, or the first field that is
    /// not right.
    pub fn parse(request: OperationRequest) -> AppResult<OperationSpec> {
        let r = request;
        if r.kind == OperationKind::Undo {
            return Err(AppError::invalid(
                "operation.kind",
                "use UndoOperation to undo an operation",
            ));
        }
        let source = UserPath::parse(&r.source_path).map_err(|e| e.at("operation.source_path"))?;
        let destination = if r.destination_path.trim().is_empty() {
            source.clone()
        } else {
            UserPath::parse(&r.destination_path).map_err(|e| e.at("operation.destination_path"))?
        };
        let trash = UserPath::parse(TRASH_FOLDER).expect("a valid constant");
        if destination.starts_with(&trash) {
            return Err(AppError::invalid(
                "operation.destination_path",
                "must not be inside the trash",
            ));
        }
        let layout_template = if r.layout_template.trim().is_empty() {
            DEFAULT_TEMPLATE.to_string()
        } else {
            r.layout_template
        };
        Template::parse(&layout_template)
            .map_err(|e| AppError::invalid("operation.layout_template", e.to_string()))?;
        check_globs("operation.include_globs", &r.include_globs)?;
        check_globs("operation.exclude_globs", &r.exclude_globs)?;
        // The scan skips excluded folders: a destination inside one would
        // be organized into a place the next scan cannot see.
        if let Some(excluded) = glob_set(&r.exclude_globs).ok().flatten() {
            let inside = destination
                .as_str()
                .strip_prefix(source.as_str())
                .map(|rest| rest.trim_start_matches('/'));
            if let Some(relative) = inside.filter(|rest| !rest.is_empty())
                && excluded.is_match(relative)
            {
                return Err(AppError::invalid(
                    "operation.destination_path",
                    "is inside a folder the exclude globs leave out",
                ));
            }
        }
        Ok(OperationSpec {
            kind: r.kind,
            source_path: source.as_str().to_string(),
            destination_path: destination.as_str().to_string(),
            dry_run: r.dry_run,
            options: OperationOptions {
                layout_template,
                duplicate_policy: r.duplicate_policy,
                conflict_policy: r.conflict_policy,
                include_globs: r.include_globs,
                exclude_globs: r.exclude_globs,
                hash_all_files: r.hash_all_files,
                remove_empty_dirs: r.remove_empty_dirs,
                apply_rules: r.apply_rules,
            },
        })
    }
}

fn check_globs(field: &str, globs: &[String]) -> AppResult<()> {
    if globs.len() > MAX_GLOBS {
        return Err(AppError::invalid(field, "at most 100 patterns"));
    }
    if let Some(bad) = globs
        .iter()
        .find(|g| g.is_empty() || g.len() > MAX_GLOB_BYTES || g.contains('\0'))
    {
        return Err(AppError::invalid(
            field,
            format!("{bad:?} is not a usable pattern"),
        ));
    }
    glob_set(globs)
        .map(|_| ())
        .map_err(|e| AppError::invalid(field, e))
}

/// The matcher of include or exclude patterns (None: no patterns). A
/// pattern matches ignoring case; one without `/` also matches at any depth
/// (so `node_modules` leaves out every folder of that name, and all below
/// it), though that form is case-sensitive as it has always been.
pub fn glob_set(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = globset::GlobBuilder::new(pattern)
            .case_insensitive(true)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("{pattern:?}: {e}"))?;
        builder.add(glob);
        if !pattern.contains('/') {
            builder
                .add(Glob::new(&format!("**/{pattern}")).map_err(|e| format!("{pattern:?}: {e}"))?);
        }
    }
    builder.build().map(Some).map_err(|e| e.to_string())
}

/// Whether the spec's folders can be used, as the storage is now: the source
/// must be a folder reached through no symbolic link, and every existing
/// part of the destination a real folder (a link there could lead the moves
/// elsewhere). Blocking: run it off the async workers.
pub fn check_on_disk(root: &UserRoot, spec: &OperationSpec) -> AppResult<()> {
    let source = UserPath::parse(&spec.source_path).map_err(|e| e.at("operation.source_path"))?;
    root.open_walk(&source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            AppError::invalid("operation.source_path", "is not a folder in your storage")
        } else {
            StorageError::from(e).at("operation.source_path").into()
        }
    })?;
    let field = "operation.destination_path";
    let destination = UserPath::parse(&spec.destination_path).map_err(|e| e.at(field))?;
    let mut prefix = UserPath::root();
    for component in destination.components() {
        prefix = prefix.join(component).map_err(|e| e.at(field))?;
        match root.symlink_metadata(&prefix) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(AppError::path_escape(
                    field,
                    format!("{prefix} is a symbolic link"),
                ));
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(AppError::invalid(
                    field,
                    format!("{prefix} is not a folder"),
                ));
            }
            Ok(_) => {}
            Err(StorageError::NotFound(_)) => break,
            Err(e) => return Err(e.at(field).into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConflictPolicy, DuplicatePolicy};

    fn request(source: &str) -> OperationRequest {
        OperationRequest {
            kind: OperationKind::Organize,
            source_path: source.into(),
            destination_path: String::new(),
            dry_run: false,
            layout_template: String::new(),
            duplicate_policy: DuplicatePolicy::default(),
            conflict_policy: ConflictPolicy::default(),
            include_globs: vec![],
            exclude_globs: vec![],
            hash_all_files: false,
            remove_empty_dirs: false,
            apply_rules: None,
        }
    }

    /// The field an invalid request is refused for.
    fn refused(request: OperationRequest) -> String {
        match OperationSpec::parse(request) {
            Err(AppError::InvalidArgument { field, .. }) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_is_normalized_and_filled_in() {
        let spec = OperationSpec::parse(OperationRequest {
            kind: OperationKind::Deduplicate,
            destination_path: "out/./sorted/".into(),
            dry_run: true,
            duplicate_policy: DuplicatePolicy::MoveToTrash,
            conflict_policy: ConflictPolicy::Skip,
            exclude_globs: vec!["node_modules".into()],
            hash_all_files: true,
            ..request("inbox/")
        })
        .unwrap();
        assert_eq!(spec.kind, OperationKind::Deduplicate);
        assert_eq!(spec.source_path, "inbox");
        assert_eq!(spec.destination_path, "out/sorted");
        assert!(spec.dry_run);
        let o = &spec.options;
        assert_eq!(o.layout_template, DEFAULT_TEMPLATE);
        assert_eq!(o.duplicate_policy, DuplicatePolicy::MoveToTrash);
        assert_eq!(o.conflict_policy, ConflictPolicy::Skip);
        assert_eq!(o.exclude_globs, ["node_modules"]);
        assert!(o.hash_all_files && !o.remove_empty_dirs);
        // No destination: the source is organized in place.
        let in_place = OperationSpec::parse(request("inbox")).unwrap();
        assert_eq!(in_place.destination_path, "inbox");
    }

    #[test]
    fn each_invalid_field_is_named() {
        let cases: Vec<(OperationRequest, &str)> = vec![
            (
                OperationRequest {
                    kind: OperationKind::Undo,
                    ..request("in")
                },
                "operation.kind",
            ),
            (request("../x"), "operation.source_path"),
            (request("/etc"), "operation.source_path"),
            (request("in\0"), "operation.source_path"),
            (
                OperationRequest {
                    destination_path: "../elsewhere".into(),
                    ..request("in")
                },
                "operation.destination_path",
            ),
            (
                OperationRequest {
                    destination_path: ".trash/x".into(),
                    ..request("in")
                },
                "operation.destination_path",
            ),
            (
                OperationRequest {
                    layout_template: "{nonsense}".into(),
                    ..request("in")
                },
                "operation.layout_template",
            ),
            (
                OperationRequest {
                    include_globs: vec![String::new()],
                    ..request("in")
                },
                "operation.include_globs",
            ),
            (
                OperationRequest {
                    include_globs: vec!["*.jpg".into(); MAX_GLOBS + 1],
                    ..request("in")
                },
                "operation.include_globs",
            ),
            (
                OperationRequest {
                    exclude_globs: vec!["[".into()],
                    ..request("in")
                },
                "operation.exclude_globs",
            ),
            (
                OperationRequest {
                    exclude_globs: vec!["a\0b".into()],
                    ..request("in")
                },
                "operation.exclude_globs",
            ),
            (
                OperationRequest {
                    destination_path: "in/node_modules".into(),
                    exclude_globs: vec!["node_modules".into()],
                    ..request("in")
                },
                "operation.destination_path",
            ),
        ];
        for (request, field) in cases {
            let shown = format!("{request:?}");
            assert_eq!(refused(request), field, "{shown}");
        }
    }

    #[test]
    fn patterns_without_a_slash_cover_whole_folders() {
        let set = glob_set(&["node_modules".into()]).unwrap().unwrap();
        assert!(set.is_match("node_modules"));
        assert!(set.is_match("a/node_modules"));
        assert!(set.is_match("Node_Modules"));
        assert!(!set.is_match("a/node_modules_x"));
        assert!(glob_set(&[]).unwrap().is_none());
        assert!(glob_set(&["[".into()]).is_err());
    }
}
