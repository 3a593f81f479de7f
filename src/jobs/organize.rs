//! Running an ORGANIZE or DEDUPLICATE operation: plan (scan, categorize,
//! hash, plan, journal), then apply the journal, resumably.
//!
//! Apply is idempotent and reconciling: each planned record is checked
//! against the disk before it moves. A file already at its new path (same
//! device and inode, or the same size and mtime on another filesystem after a
//! cross-device copy: `Fingerprint::is_moved`), or at the free ` (n)` name a
//! RENAME conflict gave it, and gone from its original path was moved before
//! a crash and is marked completed there; otherwise the move
//! goes through `Mover::move_file`, which re-checks size, mtime and inode and
//! never overwrites. Outcomes and counters are written per batch, together
//! with the applied cursor (the last seq whose outcome is durable), so a
//! million moves cost a thousand small transactions, not a million.
//!
//! The tree may change between plan and apply (a dry run applied later, or a
//! user working meanwhile), so nothing of the plan is trusted:
//! - a file whose size, mtime or inode changed is skipped ("source changed
//!   since the scan"); so is one whose ctime changed, which catches a
//!   rewrite that kept the size and set the mtime back (ctime cannot be set
//!   from user space; it is not in the `Fingerprint` because a rename
//!   changes it too);
//! - a file replaced by a symlink is skipped ("not a regular file"): final
//!   components are never followed;
//! - a source or destination folder replaced by a symlink leading outside
//!   the root fails with "path leads outside the storage root": every parent
//!   is opened beneath the root (`openat2(RESOLVE_BENEATH)`);
//! - a destination that appeared meanwhile is never replaced
//!   (`RENAME_NOREPLACE`): the file gets the next free name under the RENAME
//!   policy, or is skipped under SKIP;
//! - a deleted file fails with "source file is missing".
//!
//! The checks run just before each move, so a change in the microseconds
//! between the check and the `renameat2` can still go unnoticed; what moves is
//! then still the user's file, inside the root, onto a free name.
//!
//! A move across filesystems is a verified copy, which gives the file a new
//! device and inode: those are written back to the record
//! (`RecordUpdate::identity`) so that undo recognises the file where it is.

use std::{collections::BTreeSet, sync::Arc};

use anyhow::Context;

use super::{Interrupted, JobContext, batches};
use crate::{
    db::{
        self,
        file_records::{Expected, JournalChunk, Outcomes, RecordUpdate},
        models::FileRecord,
    },
    domain::{
        OperationKind, OperationOptions, OperationState, OperationState as S, Phase, RecordStatus,
        RuleSet,
    },
    engine::{
        categorize::{Categorizer, FileCategories, read_head},
        plan::{self, ConflictPolicy, DuplicatePolicy, PlanInput},
        progress::Progress,
        rule::CompiledRules,
        scan::{self, ScanOptions},
        spec, taken,
        template::Template,
    },
    storage::{
        CtimeCheck, Fingerprint, Mover, PathError, StorageError, UserPath, UserRoot,
        names::find_free_name,
    },
};

/// Journal rows per chunk sent from the planner to the COPY writer.
const JOURNAL_CHUNK: usize = 4096;
/// Chunks buffered between the planner and the COPY writer.
const JOURNAL_CHUNKS_IN_FLIGHT: usize = 4;

pub async fn run(ctx: &JobContext) -> anyhow::Result<()> {
    let op = &ctx.operation;
    let options = &op.options;
    let root = Arc::new(
        ctx.state
            .user_root(op.user_id)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    // Whether this run wrote the journal it is about to apply.
    let mut just_planned = false;
    match (op.state, op.phase) {
        (S::Cancelling, _) => return finish(ctx, S::Cancelled).await,
        (S::Applying, _) | (S::Queued, Some(Phase::Apply)) => {}
        // New, or a plan interrupted by a crash (redone from scratch).
        (S::Queued | S::Running, _) => {
            just_planned = true;
            match plan_phase(ctx, &root, options).await? {
                Some(Interrupted::Abandoned) => return Ok(()),
                Some(Interrupted::Cancelled) => return finish(ctx, S::Cancelled).await,
                None => {}
            }
            if op.dry_run {
                return finish(ctx, S::Planned).await;
            }
        }
        // `db::operations::claim` never hands out an operation at rest.
        (S::Planned | S::Succeeded | S::Failed | S::Cancelled, _) => {
            anyhow::bail!("an operation that is {} has no job to run", op.state)
        }
    }
    match apply_phase(ctx, &root, options, just_planned).await? {
        Some(Interrupted::Abandoned) => Ok(()),
        Some(Interrupted::Cancelled) => finish(ctx, S::Cancelled).await,
        None => finish(ctx, S::Succeeded).await,
    }
}

/// Persists the final counters and state.
async fn finish(ctx: &JobContext, state: OperationState) -> anyhow::Result<()> {
    let phase = if state == S::Planned {
        Phase::Plan
    } else {
        Phase::Report
    };
    ctx.finish(state, phase).await
}

/// Scan → categorize → hash → plan → journal. Nothing on disk changes.
async fn plan_phase(
    ctx: &JobContext,
    root: &Arc<UserRoot>,
    options: &OperationOptions,
) -> anyhow::Result<Option<Interrupted>> {
    let op = &ctx.operation;
    // A plan interrupted by a crash is simply redone from scratch.
    ctx.progress.reset_counters();
    let source = UserPath::parse(&op.source_path).map_err(|e| anyhow::anyhow!("source: {e}"))?;
    let destination =
        UserPath::parse(&op.destination_path).map_err(|e| anyhow::anyhow!("destination: {e}"))?;
    let template = Template::parse(if options.layout_template.is_empty() {
        crate::engine::template::DEFAULT_TEMPLATE
    } else {
        &options.layout_template
    })
    .map_err(|e| anyhow::anyhow!("layout template: {e}"))?;
    let scan_options = ScanOptions {
        exclude: spec::glob_set(&options.exclude_globs).map_err(|e| anyhow::anyhow!(e))?,
        include: spec::glob_set(&options.include_globs).map_err(|e| anyhow::anyhow!(e))?,
        exclude_dirs: vec![
            destination.join(plan::DUPLICATES_FOLDER)?,
            UserPath::parse(plan::TRASH_FOLDER)?,
        ],
        threads: ctx.state.config.hash_threads,
        stop_after: None,
    };
    let rules = {
        let mut conn = ctx.state.db.get().await?;
        db::categories::custom_rules(&mut conn, op.user_id).await?
    };
    let (categorizer, invalid) = Categorizer::new_skipping_invalid(&rules);
    let organizing_rules = organizing_rules(ctx, options).await?;
    for error in invalid {
        tracing::warn!(%error, "ignoring an invalid part of a custom category");
    }

    ctx.set_phase(S::Running, Phase::Scan).await?;
    let progress = ctx.progress.clone();
    let scan_root = root.clone();
    let scanned = tokio::task::spawn_blocking(move || {
        scan::scan(&scan_root, &source, &scan_options, &progress)
    })
    .await?
    .context("scanning")?;
    if let Some(i) = ctx.interrupted() {
        return Ok(Some(i));
    }

    ctx.set_phase(S::Running, Phase::Categorize).await?;
    let progress = ctx.progress.clone();
    let cat_root = root.clone();
    // Capture dates are read only for a template that renders them or rules
    // that look at them.
    let read_taken = template.uses_taken_date()
        || organizing_rules
            .as_ref()
            .is_some_and(CompiledRules::uses_capture_date);
    let taken_threads = ctx.state.config.hash_threads;
    let (scanned, categories, taken) = tokio::task::spawn_blocking(move || {
        progress.start_phase(scanned.files.len() as i64, 0);
        let mut categories = FileCategories::with_capacity(scanned.files.len());
        for file in scanned.files.iter() {
            progress.step(0);
            let category = categorizer.categorize(file.relative(), || read_head(&cat_root, &file));
            categories.push(category.name());
        }
        let taken = if read_taken {
            taken::capture_dates(&cat_root, &scanned.files, taken_threads, &progress)
        } else {
            Vec::new()
        };
        (scanned, categories, taken)
    })
    .await?;
    if let Some(i) = ctx.interrupted() {
        return Ok(Some(i));
    }

    ctx.set_phase(S::Running, Phase::Hash).await?;
    let (scanned, analysis) =
        super::hashing::hash_phase(ctx, root, scanned, options.hash_all_files).await?;
    crate::infra::observability::duplicates_found(analysis.duplicates as u64);
    if let Some(i) = ctx.interrupted() {
        return Ok(Some(i));
    }

    // Plan and journal run as a pipeline: the planner (a blocking thread)
    // sends rows in chunks through a small bounded channel to the COPY
    // writer, so at most a few chunks of the plan are in memory at once.
    ctx.set_phase(S::Running, Phase::Plan).await?;
    let plan_root = root.clone();
    let operation_id = op.id;
    let duplicate_policy = options.duplicate_policy;
    let conflict_policy = options.conflict_policy;
    let only_duplicates = op.kind == OperationKind::Deduplicate;
    let (sender, receiver) = tokio::sync::mpsc::channel(JOURNAL_CHUNKS_IN_FLIGHT);
    let planner = tokio::task::spawn_blocking(move || {
        let (mut planned, mut skipped) = (0i64, 0i64);
        let mut chunk = Vec::with_capacity(JOURNAL_CHUNK);
        let mut open = true;
        let planning = plan::plan(
            &PlanInput {
                root: &plan_root,
                destination: &destination,
                template: &template,
                categories: &categories,
                duplicates: &analysis,
                duplicate_policy,
                conflict_policy,
                operation_id,
                only_duplicates,
                taken: &taken,
                rules: organizing_rules.as_ref(),
            },
            &scanned,
            &mut |row| {
                if row.status == RecordStatus::Planned {
                    planned += 1;
                } else {
                    skipped += 1;
                }
                chunk.push(row);
                if chunk.len() == JOURNAL_CHUNK && open {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(JOURNAL_CHUNK));
                    // A closed channel means the writer failed; its error is reported.
                    open = sender.blocking_send(JournalChunk::Rows(full)).is_ok();
                }
            },
        );
        // A failed plan sends no End: the writer rolls the journal back.
        planning?;
        if open {
            let _ = sender
                .blocking_send(JournalChunk::Rows(chunk))
                .and_then(|()| sender.blocking_send(JournalChunk::End));
        }
        Ok::<_, std::io::Error>((planned, skipped))
    });
    let written =
        db::file_records::write_journal_stream(&ctx.state.config.database_url, op.id, receiver);
    let mut planner = planner;
    let mut written = std::pin::pin!(written);
    let (planner, written) = tokio::select! {
        planner = &mut planner => {
            // Every file is planned; what is left is the journal's: the
            // COPY's last chunks, its statement triggers and the commit.
            if planner.is_ok() {
                ctx.set_phase(S::Running, Phase::Journal).await?;
            }
            (planner, written.await)
        }
        // Only on an error: the planner then finds the channel closed.
        written = &mut written => (planner.await, written),
    };
    let (planned, skipped) = planner.context("planning")?.context("planning")?;
    written.context("writing the journal")?;
    ctx.progress
        .files_planned
        .store(planned, std::sync::atomic::Ordering::Relaxed);
    ctx.progress
        .files_skipped
        .store(skipped, std::sync::atomic::Ordering::Relaxed);
    let mut conn = ctx.state.db.get().await?;
    let holder = ctx.worker_id.as_str();
    db::operations::set_counters(&mut conn, op.id, holder, &ctx.progress.counters()).await?;
    ctx.held(db::operations::set_applied_cursor(&mut conn, op.id, holder, 0).await?)?;
    Ok(ctx.interrupted())
}

/// The user's organizing rules, compiled, when the operation applies them
/// and the user has any; the rule set version used is recorded on the
/// operation either way (None: no rules). A plan redone after a crash reads
/// them again: nothing was moved yet, and the version recorded is the one
/// the journal was made with.
async fn organizing_rules(
    ctx: &JobContext,
    options: &OperationOptions,
) -> anyhow::Result<Option<CompiledRules>> {
    let op = &ctx.operation;
    let mut conn = ctx.state.db.get().await?;
    let set = if options.wants_rules(op.kind) {
        db::rules::rule_set(&mut conn, op.user_id).await?
    } else {
        RuleSet::default()
    };
    let used = (!set.rules.is_empty()).then_some(set.version);
    ctx.held(db::operations::set_rule_set_version(&mut conn, op.id, &ctx.worker_id, used).await?)?;
    if used.is_none() {
        return Ok(None);
    }
    let compiled = CompiledRules::compile(
        "rules",
        &set.rules,
        &ctx.state.config.rule_limits,
        chrono::Utc::now(),
    )
    .map_err(|e| anyhow::anyhow!("your organizing rules cannot be applied: {e}"))?;
    Ok(Some(compiled))
}

/// The fingerprint a record was journaled with.
pub fn record_fingerprint(record: &FileRecord) -> Option<Fingerprint> {
    Some(Fingerprint {
        size: u64::try_from(record.size_bytes).ok()?,
        mtime_ns: i128::from(record.mtime_ns?),
        dev: record.device? as u64,
        ino: record.inode? as u64,
    })
}

/// Moves the planned records of the journal, batch by batch.
async fn apply_phase(
    ctx: &JobContext,
    root: &Arc<UserRoot>,
    options: &OperationOptions,
    just_planned: bool,
) -> anyhow::Result<Option<Interrupted>> {
    let op = &ctx.operation;
    ctx.set_phase(S::Applying, Phase::Apply).await?;
    // Temp files of a copy or an upload cut short by a crash: only those
    // nobody has touched for long. Uploads and imports into the same folders
    // run beside this job, and their temp files are theirs alone.
    let sweep_root = root.clone();
    let older_than = crate::storage::abandoned_after(ctx.state.config.request_timeout);
    let swept =
        tokio::task::spawn_blocking(move || sweep_root.sweep_temp_files(older_than)).await?;
    if swept > 0 {
        tracing::info!(operation = %op.id, swept, "removed temp files left by an interrupted copy");
    }
    let mut conn = ctx.state.db.get().await?;
    let cursor = db::operations::applied_cursor(&mut conn, op.id).await?;
    // Counters are rebuilt from the journal: after an interruption the
    // persisted ones may include moves whose outcome was not yet recorded.
    // A journal this run has just written holds what its planner counted
    // (and nothing is moved yet): no need to count a million records again.
    let totals = if just_planned && cursor == 0 {
        let counters = ctx.progress.counters();
        db::file_records::StatusTotals {
            planned: counters.files_planned,
            skipped: counters.files_skipped,
            ..Default::default()
        }
    } else {
        db::file_records::status_totals(&mut conn, op.id).await?
    };
    let last_seq = db::file_records::seq_bounds(&mut conn, op.id)
        .await?
        .map_or(cursor, |(_, last)| last);
    let remaining = totals.planned;
    {
        use std::sync::atomic::Ordering::Relaxed;
        let p = &ctx.progress;
        p.files_moved.store(totals.moved, Relaxed);
        p.bytes_moved.store(totals.moved_bytes, Relaxed);
        p.files_failed.store(totals.failed, Relaxed);
        p.files_skipped.store(totals.skipped, Relaxed);
    }
    ctx.progress.start_phase(remaining, 0);
    drop(conn);
    let mark_duplicates = options.duplicate_policy != DuplicatePolicy::ReportOnly;
    let conflict = options.conflict_policy;
    let mut touched_dirs: BTreeSet<UserPath> = BTreeSet::new();
    // The batches are walked by the pipeline apply and undo share
    // (`super::batches`): one batch recorded while the next one moves.
    let pace = pace(ctx.state.config.moves_per_second);
    let (progress, abandoned, batch_root) =
        (ctx.progress.clone(), ctx.abandoned.clone(), root.clone());
    let interrupted = batches::walk(
        ctx,
        batches::Journal {
            operation_id: op.id,
            statuses: &[RecordStatus::Planned],
            walk: batches::Walk::Ascending {
                after: cursor,
                last: last_seq,
            },
            cursor: true,
        },
        move |batch| {
            apply_batch(
                &batch_root,
                &batch,
                &progress,
                &abandoned,
                conflict,
                mark_duplicates,
                pace,
            )
        },
        |dirs| touched_dirs.extend(dirs),
    )
    .await?;
    if interrupted.is_some() {
        return Ok(interrupted);
    }
    if options.remove_empty_dirs {
        ctx.set_phase(S::Applying, Phase::Cleanup).await?;
        let source = UserPath::parse(&op.source_path)?;
        let cleanup_root = root.clone();
        tokio::task::spawn_blocking(move || {
            remove_empty_dirs(&cleanup_root, &source, touched_dirs)
        })
        .await?;
    }
    Ok(ctx.interrupted().filter(|i| *i == Interrupted::Abandoned))
}

/// Removes folders (deepest first) that the moves left empty, never `stop`
/// itself or anything above it.
pub fn remove_empty_dirs(root: &UserRoot, stop: &UserPath, dirs: BTreeSet<UserPath>) {
    let mut candidates: BTreeSet<UserPath> = BTreeSet::new();
    for dir in dirs {
        let mut current = Some(dir);
        while let Some(d) = current {
            if d == *stop || !d.starts_with(stop) {
                break;
            }
            current = d.parent();
            candidates.insert(d);
        }
    }
    let mut ordered: Vec<UserPath> = candidates.into_iter().collect();
    ordered.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for dir in ordered {
        let _ = root.remove_dir_if_empty(&dir);
    }
}

/// The pause between two moves for a MOVES_PER_SECOND limit.
pub fn pace(moves_per_second: u32) -> Option<std::time::Duration> {
    (moves_per_second > 0)
        .then(|| std::time::Duration::from_secs_f64(1.0 / f64::from(moves_per_second)))
}

/// Applies one batch. Files that moved exactly as planned are not listed
/// one by one: the outcomes cover them as a range
/// ([`Expected::Moved`], `db::file_records::Outcomes::add`).
fn apply_batch(
    root: &UserRoot,
    batch: &[FileRecord],
    progress: &Progress,
    abandoned: &std::sync::atomic::AtomicBool,
    conflict: ConflictPolicy,
    mark_duplicates: bool,
    pace: Option<std::time::Duration>,
) -> batches::Done<Vec<UserPath>> {
    let expected = Expected::Moved { mark_duplicates };
    let mut mover = Mover::new(root);
    let mut outcomes = Outcomes::default();
    let mut dirs = Vec::new();
    let mut last_folder: Option<&str> = None;
    let mut done = None;
    for record in batch {
        if progress.is_cancelled() || abandoned.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        progress.set_current(&record.original_path);
        let update = apply_one(root, &mut mover, record, conflict, expected);
        crate::infra::observability::file_organized(&record.category, update.status);
        if update.status.is_moved() {
            Progress::add(&progress.files_moved, 1);
            Progress::add(&progress.bytes_moved, record.size_bytes);
            // A folder's files are neighbours in the journal (scan
            // order): one entry per run, not per file, for the cleanup's
            // ordered set (a million path comparisons otherwise).
            let folder = record.original_path.rsplit_once('/').map(|(p, _)| p);
            if folder.is_some() && folder != last_folder {
                last_folder = folder;
                dirs.extend(folder.and_then(|f| UserPath::parse(f).ok()));
            }
        } else if update.status == RecordStatus::Skipped {
            Progress::add(&progress.files_skipped, 1);
        } else {
            Progress::add(&progress.files_failed, 1);
        }
        progress.step(record.size_bytes);
        outcomes.add(expected, record, update);
        done = Some(record.seq);
        if let Some(pause) = pace {
            std::thread::sleep(pause);
        }
    }
    batches::Done {
        outcomes,
        collected: dirs,
        through: done,
    }
}

/// The file's `(device, inode)` at `target` when the move changed them (a
/// verified copy to another filesystem), for the journal: undo checks the
/// file where it now is against the record.
fn moved_identity(root: &UserRoot, target: &UserPath, before: &Fingerprint) -> Option<(i64, i64)> {
    let now = root.fingerprint(target).ok()?;
    ((now.dev, now.ino) != (before.dev, before.ino)).then_some((now.dev as i64, now.ino as i64))
}

/// Where a file whose source is missing was moved before an interruption:
/// its planned destination, or (under the RENAME policy, when that name was
/// taken at apply time) the free ` (n)` name after it that the move took.
/// The move tried the names of `find_free_name` in order and took the first
/// free one, so retracing the same names, the search stops at the first
/// that holds the file (found) or nothing (the file was not moved).
fn moved_before(
    root: &UserRoot,
    planned: &UserPath,
    expect: &Fingerprint,
    conflict: ConflictPolicy,
) -> Option<UserPath> {
    let holds = |path: &UserPath| {
        root.fingerprint(path)
            .map(|found| expect.is_moved(&found))
            .ok()
    };
    if conflict != ConflictPolicy::Rename {
        return (holds(planned) == Some(true)).then(|| planned.clone());
    }
    let last = find_free_name(planned, |candidate| {
        Ok::<_, PathError>(holds(candidate) != Some(false))
    })
    .ok()
    .flatten()?;
    (holds(&last) == Some(true)).then_some(last)
}

fn apply_one(
    root: &UserRoot,
    mover: &mut Mover<'_>,
    record: &FileRecord,
    conflict: ConflictPolicy,
    expected: Expected,
) -> RecordUpdate {
    let moved_status = expected.status(record);
    let outcome =
        |status: RecordStatus, new_path: Option<String>, reason: Option<String>| RecordUpdate {
            seq: record.seq,
            status,
            new_path,
            reason,
            identity: None,
        };
    let (Ok(original), Some(Ok(planned)), Some(expect)) = (
        UserPath::parse(&record.original_path),
        record.new_path.as_deref().map(UserPath::parse),
        record_fingerprint(record),
    ) else {
        return outcome(
            RecordStatus::Failed,
            record.new_path.clone(),
            Some("journal entry is incomplete".into()),
        );
    };
    let moved = |mover: &Mover<'_>, target: &UserPath| RecordUpdate {
        // A copy across filesystems has a new device and inode; a rename
        // keeps them (no lookup needed).
        identity: if mover.last_move_was_copy() {
            moved_identity(root, target, &expect)
        } else {
            None
        },
        ..outcome(moved_status, Some(target.as_str().to_string()), None)
    };
    // A rewrite that kept the size and set the mtime back still moved the
    // ctime, which nobody can set: the mover skips such a file like any
    // change (checked on the same lstat as the fingerprint).
    let ctime = record
        .ctime_ns
        .map_or(CtimeCheck::Any, |c| CtimeCheck::Equal(i128::from(c)));
    let mut move_to =
        |target: &UserPath| mover.move_file_unchanged(&original, target, &expect, ctime);
    // Under RENAME a destination taken since the plan sends the file to the
    // first free ` (n)` name after it, each claimed by the move itself
    // (RENAME_NOREPLACE): the storage layer's one search, which
    // `moved_before` retraces after an interruption.
    let result = match conflict {
        ConflictPolicy::Rename => find_free_name(&planned, |target| match move_to(target) {
            Ok(()) => Ok(true),
            Err(StorageError::DestinationExists) => Ok(false),
            Err(error) => Err(error),
        }),
        ConflictPolicy::Skip => move_to(&planned).map(|()| Some(planned.clone())),
    };
    match result {
        Ok(Some(target)) => moved(mover, &target),
        Ok(None) | Err(StorageError::Path(_)) => outcome(
            RecordStatus::Skipped,
            record.new_path.clone(),
            Some("no free destination name".into()),
        ),
        // Reconcile with a move that happened before an interruption: the
        // source is gone and the planned destination (or, after a conflict,
        // the free name it was renamed to) holds the very file. Checked only
        // when the source is missing, so the common case costs no extra
        // lookup.
        Err(StorageError::SourceMissing) => {
            if let Some(found) = moved_before(root, &planned, &expect, conflict) {
                return RecordUpdate {
                    identity: moved_identity(root, &found, &expect),
                    ..outcome(moved_status, Some(found.as_str().to_string()), None)
                };
            }
            outcome(
                RecordStatus::Failed,
                record.new_path.clone(),
                Some(StorageError::SourceMissing.reason().to_string()),
            )
        }
        Err(
            error @ (StorageError::DestinationExists
            | StorageError::SourceChanged
            | StorageError::NotARegularFile),
        ) => outcome(
            RecordStatus::Skipped,
            record.new_path.clone(),
            Some(error.reason().to_string()),
        ),
        Err(error) => outcome(
            RecordStatus::Failed,
            record.new_path.clone(),
            Some(error.reason().to_string()),
        ),
    }
}
