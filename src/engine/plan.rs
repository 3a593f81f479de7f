//! Step 4: plan every file's destination.
//!
//! The destination is `destination / template(file)`. A name already taken,
//! on disk or earlier in the same plan, gets ` (1)`, ` (2)` … (the storage
//! layer's one free-name search, `storage::names`; or the file is skipped,
//! by policy): nothing is ever planned onto an existing file, and
//! the apply step re-checks with RENAME_NOREPLACE anyway. Duplicates follow
//! the duplicate policy: organized like any file and reported (default),
//! moved to `_duplicates/` in the destination, or moved to the user's trash
//! (`.trash/<operation>/…`). Nothing is ever deleted.
//!
//! With organizing rules (`engine::rule`), the first rule matching a file
//! decides its destination instead of the template (move, rename, set the
//! category, trash, or leave in place, recorded as skipped), and its row
//! names the rule and version. A duplicate that the duplicate policy moves
//! (to `_duplicates/` or the trash) is the policy's: the operation asked for
//! it explicitly. Everything after the destination (already in place, taken
//! names, the conflict policy) is the same for both.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use super::{
    categorize::read_head,
    duplicates::DuplicateAnalysis,
    rule::{self, CompiledRules, FileFacts},
    scan::ScanResult,
    template::Template,
};
/// The policies are the domain's; re-exported where the planner's callers
/// have always found them.
pub use crate::domain::{ConflictPolicy, DuplicatePolicy};
use crate::{
    domain::{DecidedBy, JournalRow, RecordStatus},
    storage::{
        names::find_free_name,
        path::{PathError, UserPath},
        root::UserRoot,
    },
};

/// Name of the folder, inside the destination, that receives duplicates
/// under the "move to duplicates folder" policy.
pub const DUPLICATES_FOLDER: &str = "_duplicates";
/// The user's trash folder, at the root of their storage.
pub use crate::storage::trash::TRASH_FOLDER;

pub struct PlanInput<'a> {
    pub root: &'a UserRoot,
    pub destination: &'a UserPath,
    pub template: &'a Template,
    pub categories: &'a super::categorize::FileCategories,
    pub duplicates: &'a DuplicateAnalysis,
    pub duplicate_policy: DuplicatePolicy,
    pub conflict_policy: ConflictPolicy,
    /// The operation's id, for the trash sub-folder.
    pub operation_id: uuid::Uuid,
    /// DEDUPLICATE operations: only duplicates are handled; unique files
    /// are recorded as skipped and stay where they are.
    pub only_duplicates: bool,
    /// Each scanned file's capture date (`engine::taken`), indexed like the
    /// scan; empty when the template uses none.
    pub taken: &'a [Option<chrono::NaiveDate>],
    /// The user's organizing rules, when the operation applies them.
    pub rules: Option<&'a CompiledRules>,
}

/// Destination paths chosen earlier in the same plan.
///
/// Kept as 64-bit hashes rather than strings: a million-file plan needs a
/// few tens of megabytes instead of a few hundred. A hash collision can only
/// make a free name look taken, so the file gets a ` (n)` suffix it did not
/// need (odds around 10⁻⁸ at a million files); it can never make a taken name
/// look free.
#[derive(Debug, Default)]
pub struct TakenNames {
    hashes: HashSet<u64>,
    hasher: RandomState,
}

impl TakenNames {
    pub fn with_capacity(capacity: usize) -> TakenNames {
        TakenNames {
            hashes: HashSet::with_capacity(capacity),
            hasher: RandomState::new(),
        }
    }

    pub fn contains(&self, path: &str) -> bool {
        self.hashes.contains(&self.hasher.hash_one(path))
    }

    pub fn insert(&mut self, path: &str) {
        self.hashes.insert(self.hasher.hash_one(path));
    }
}

/// A name for `wanted` free both in the plan so far and on disk (the
/// storage layer's search: `wanted`, then ` (1)`, ` (2)` … up to its bound),
/// or None: then the file is skipped.
fn free_name(
    wanted: &UserPath,
    taken: &TakenNames,
    exists: &dyn Fn(&UserPath) -> bool,
) -> Option<UserPath> {
    find_free_name(wanted, |candidate| {
        Ok::<_, PathError>(!taken.contains(candidate.as_str()) && !exists(candidate))
    })
    .ok()
    .flatten()
}

/// Builds the journal rows (status planned or skipped) for a scan, in seq
/// order, handing each to `emit` as soon as it is decided: the caller
/// streams them into the journal, so a plan is never held whole in memory.
///
/// A template with `{taken_…}` tokens marks each row it places with where
/// its date came from (`JournalRow::taken_from_metadata`), which the report
/// counts.
///
/// An error is the duplicate finder's spilled hashes failing to read back;
/// the rows emitted until then are not a whole plan.
pub fn plan(
    input: &PlanInput<'_>,
    scan: &ScanResult,
    emit: &mut dyn FnMut(JournalRow),
) -> std::io::Result<()> {
    let uses_taken = input.template.uses_taken_date();
    let mut taken = TakenNames::with_capacity(scan.files.len());
    // An unanswerable lookup counts as taken: never risk a collision.
    let exists = |p: &UserPath| input.root.exists(p).unwrap_or(true);
    let trash_root = UserPath::parse(TRASH_FOLDER).expect("valid");
    let trash = trash_root
        .join(&input.operation_id.to_string())
        .expect("valid");
    // Read forward in seq order, whether in memory or spilled.
    let mut hashes = input.duplicates.hashes();
    let mut seq = 0i64;
    for (i, file) in scan.files.iter().enumerate() {
        seq += 1;
        let category = input.categories.get(i);
        let duplicate_of = input.duplicates.duplicate_of(i);
        let mut row = JournalRow {
            seq,
            original_path: file.path.as_str().to_string(),
            new_path: None,
            size_bytes: file.size() as i64,
            modified_at: Some(file.modified()),
            device: Some(file.device() as i64),
            inode: Some(file.inode() as i64),
            content_hash: hashes.get(i)?.map(|h| h.to_vec()),
            category: category.to_string(),
            // Keepers come first in scan order or not: seq = index + 1.
            duplicate_of: duplicate_of.map(|k| k as i64 + 1),
            status: RecordStatus::Planned,
            reason: None,
            mtime_ns: i64::try_from(file.fingerprint.mtime_ns).ok(),
            ctime_ns: i64::try_from(file.ctime_ns).ok(),
            taken_from_metadata: None,
            decided_by: None,
        };
        let taken_on = input.taken.get(i).copied().flatten();
        if let Some(reason) = input.duplicates.unreadable.get(&i) {
            row.status = RecordStatus::Skipped;
            row.reason = Some(format!("could not be read: {reason}"));
            emit(row);
            continue;
        }
        if input.only_duplicates {
            let reason = match (duplicate_of, input.duplicate_policy) {
                (None, _) => Some("not a duplicate".to_string()),
                (Some(k), DuplicatePolicy::ReportOnly) => Some(format!(
                    "duplicate of {} (reported only)",
                    scan.files.get(k).path
                )),
                _ => None,
            };
            if let Some(reason) = reason {
                row.status = RecordStatus::Skipped;
                row.reason = Some(reason);
                emit(row);
                continue;
            }
        }
        let name = file.path.file_name().unwrap_or_default();
        let by_policy = duplicate_of.is_some()
            && matches!(
                input.duplicate_policy,
                DuplicatePolicy::MoveToTrash | DuplicatePolicy::MoveToDuplicatesFolder
            );
        let decision = input.rules.filter(|_| !by_policy).and_then(|rules| {
            let facts = FileFacts::new(
                &file.path,
                file.size(),
                file.modified(),
                duplicate_of.is_some(),
                || {
                    read_head(input.root, &file)
                        .as_deref()
                        .and_then(rule::content_type)
                },
            )
            .with_taken(taken_on);
            rules
                .decide(&facts)
                .map(|d| (d.id, d.version, d.display_name, d.action))
        });
        let wanted = match (duplicate_of, input.duplicate_policy, decision) {
            (_, _, Some((rule_id, rule_version, rule_name, action))) => {
                row.decided_by = Some(DecidedBy {
                    rule_id,
                    rule_version,
                });
                if let Some(set) = action.category() {
                    row.category = set.to_string();
                }
                match rule::destination(
                    action,
                    &file.path,
                    super::template::FileFacts {
                        name,
                        category: &row.category,
                        modified: file.modified(),
                        taken: taken_on,
                    },
                    input.destination,
                    input.template,
                    &trash,
                ) {
                    Ok(None) => {
                        row.status = RecordStatus::Skipped;
                        row.reason = Some(format!("left in place by rule {rule_name:?}"));
                        emit(row);
                        continue;
                    }
                    // Only the trash action leads into the trash (a
                    // rendered `{stem}` could name it otherwise).
                    Ok(Some(path))
                        if path.starts_with(&trash_root)
                            && !matches!(action, rule::Action::Trash) =>
                    {
                        Err(format!("{path} is inside the trash"))
                    }
                    Ok(Some(path)) => Ok(path),
                    Err(reason) => Err(reason),
                }
            }
            (Some(_), DuplicatePolicy::MoveToTrash, None) => {
                trash.join_path(&file.path).map_err(|e| e.to_string())
            }
            (Some(_), DuplicatePolicy::MoveToDuplicatesFolder, None) => input
                .destination
                .join(DUPLICATES_FOLDER)
                .and_then(|d| d.join(name))
                .map_err(|e| e.to_string()),
            _ => {
                if uses_taken {
                    row.taken_from_metadata = Some(taken_on.is_some());
                }
                input
                    .template
                    .render(&super::template::FileFacts {
                        name,
                        category,
                        modified: file.modified(),
                        taken: taken_on,
                    })
                    .map_err(|e| e.to_string())
                    .and_then(|rendered| {
                        input.destination.join(&rendered).map_err(|e| e.to_string())
                    })
            }
        };
        let wanted = match wanted {
            Ok(w) => w,
            Err(reason) => {
                row.status = RecordStatus::Skipped;
                row.reason = Some(format!("no valid destination: {reason}"));
                emit(row);
                continue;
            }
        };
        if wanted == file.path {
            row.status = RecordStatus::Skipped;
            row.reason = Some("already in place".into());
            emit(row);
            continue;
        }
        let chosen = match input.conflict_policy {
            ConflictPolicy::Rename => free_name(&wanted, &taken, &exists),
            ConflictPolicy::Skip => {
                (!taken.contains(wanted.as_str()) && !exists(&wanted)).then(|| wanted.clone())
            }
        };
        match chosen {
            Some(path) => {
                taken.insert(path.as_str());
                row.new_path = Some(path.as_str().to_string());
            }
            None => {
                row.status = RecordStatus::Skipped;
                row.reason = Some(format!("destination {wanted} already exists"));
            }
        }
        emit(row);
    }
    for skipped in &scan.skipped {
        seq += 1;
        emit(JournalRow {
            seq,
            original_path: skipped.path.clone(),
            new_path: None,
            size_bytes: skipped.size as i64,
            modified_at: None,
            device: None,
            inode: None,
            content_hash: None,
            category: "Other".into(),
            duplicate_of: None,
            status: RecordStatus::Skipped,
            reason: Some(skipped.reason.clone()),
            mtime_ns: None,
            ctime_ns: None,
            taken_from_metadata: None,
            decided_by: None,
        });
    }
    Ok(())
}
