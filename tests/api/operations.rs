//! OperationService and the organize engine, on real files and Postgres.

use std::{
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    time::Duration,
};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use fileorganizer::{
    db::models::FileRecord,
    domain::RecordStatus,
    pb::fileorganizer::v1::{self as pb, OperationState},
    schema::file_records,
};
use tonic::Code;

use crate::common::{
    Options, TestApp, assert_code, bad_field, bearer,
    tree::{self, Entry},
};

/// A registered user with their storage folder.
pub struct User {
    pub token: String,
    pub root: PathBuf,
}

pub async fn user(app: &TestApp, label: &str) -> User {
    let session = app.register(&TestApp::email(label)).await;
    let id = session.user.unwrap().id;
    let root = app.state.config.storage_root.join(&id);
    std::fs::create_dir_all(&root).unwrap();
    User {
        token: session.access_token,
        root,
    }
}

/// The user's operations that ListOperations answers to `request` (one
/// page: tests ask for a page size that holds them all), newest first.
pub async fn list(
    app: &TestApp,
    user: &User,
    request: pb::ListOperationsRequest,
) -> Vec<pb::Operation> {
    app.operations()
        .list_operations(bearer(request, &user.token))
        .await
        .unwrap()
        .into_inner()
        .operations
}

pub async fn create(app: &TestApp, user: &User, operation: pb::Operation) -> pb::Operation {
    app.operations()
        .create_operation(bearer(
            pb::CreateOperationRequest {
                operation: Some(operation),
                request_id: String::new(),
            },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Creates `operation` as a dry run and waits until it is PLANNED.
pub async fn plan(app: &TestApp, user: &User, operation: pb::Operation) -> pb::Operation {
    let op = create(
        app,
        user,
        pb::Operation {
            dry_run: true,
            ..operation
        },
    )
    .await;
    wait_for(app, user, &op.name, &[OperationState::Planned]).await
}

/// Creates `operation` and waits until it has SUCCEEDED (panics if it
/// failed).
pub async fn succeed(app: &TestApp, user: &User, operation: pb::Operation) -> pb::Operation {
    let op = create(app, user, operation).await;
    let finished = [OperationState::Succeeded, OperationState::Failed];
    let done = wait_for(app, user, &op.name, &finished).await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    done
}

/// ApplyOperation of a planned (dry-run) operation; panics on an error.
pub async fn apply(app: &TestApp, user: &User, name: &str) -> pb::Operation {
    app.operations()
        .apply_operation(bearer(
            pb::ApplyOperationRequest { name: name.into() },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// UndoOperation of a finished operation; panics on an error.
pub async fn undo(app: &TestApp, user: &User, name: &str) -> pb::Operation {
    app.operations()
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: name.into(),
                request_id: String::new(),
            },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner()
}

pub fn organize(source: &str) -> pb::Operation {
    pb::Operation {
        source_path: source.into(),
        remove_empty_dirs: true,
        ..Default::default()
    }
}

/// Polls until the operation is in one of `states`.
pub async fn wait_for(
    app: &TestApp,
    user: &User,
    name: &str,
    states: &[OperationState],
) -> pb::Operation {
    wait_until(app, user, name, |op| {
        states.iter().any(|s| *s as i32 == op.state)
    })
    .await
}

/// Polls the operation until `done` holds (for at most two minutes).
pub async fn wait_until(
    app: &TestApp,
    user: &User,
    name: &str,
    done: impl Fn(&pb::Operation) -> bool,
) -> pb::Operation {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let op = app
            .operations()
            .get_operation(bearer(
                pb::GetOperationRequest { name: name.into() },
                &user.token,
            ))
            .await
            .unwrap()
            .into_inner();
        if done(&op) {
            return op;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "operation stuck: {op:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Undoes the operation `name` and waits until the undo has finished.
pub async fn undo_and_wait(app: &TestApp, user: &User, name: &str) -> pb::Operation {
    let undo = app
        .operations()
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: name.into(),
                request_id: String::new(),
            },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let finished = [OperationState::Succeeded, OperationState::Failed];
    wait_for(app, user, &undo.name, &finished).await
}

pub async fn records(app: &TestApp, name: &str) -> Vec<FileRecord> {
    let id = uuid::Uuid::parse_str(name.trim_start_matches("operations/")).unwrap();
    let mut conn = app.db().await;
    file_records::table
        .filter(file_records::operation_id.eq(id))
        .order(file_records::seq.asc())
        .select(FileRecord::as_select())
        .load(&mut conn)
        .await
        .unwrap()
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

/// The test tree under `root/inbox` plus a secret outside the user's root.
fn build_tree(root: &Path, outside: &Path) {
    tree::write(root, "inbox/a_photo.jpg", b"JPEG-A");
    std::fs::hard_link(
        root.join("inbox/a_photo.jpg"),
        root.join("inbox/b_link.jpg"),
    )
    .unwrap();
    tree::write(root, "inbox/doc.pdf", b"PDF-B");
    tree::write(root, "inbox/Documents/doc.pdf", b"OLD-PDF"); // already in place
    tree::write(root, "inbox/music/song.mp3", b"MP3 content C");
    tree::write(root, "inbox/music/a_photo.jpg", b"JPEG-D"); // name conflict
    tree::write(root, "inbox/dup1.txt", b"same text");
    tree::write(root, "inbox/nested/dup2.txt", b"same text");
    tree::set_mtime(root, "inbox/nested/dup2.txt", 1_000_000_000); // older: the keeper
    tree::set_mtime(root, "inbox/dup1.txt", 1_500_000_000);
    tree::write(root, "inbox/.hidden", b"hidden");
    tree::write(root, "inbox/noext", PNG); // sniffed as an image
    let odd = root
        .join("inbox")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.jpg"));
    std::fs::write(odd, b"latin-1 name").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("inbox/escape")).unwrap();
    std::fs::create_dir_all(outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"outside").unwrap();
    std::os::unix::fs::symlink(outside, root.join("inbox/linkdir")).unwrap();
}

/// The test tree (`build_tree`) organized, and what was there before.
struct Organized {
    alice: User,
    /// The operation as created.
    op: pb::Operation,
    /// The operation once it succeeded.
    done: pb::Operation,
    outside: PathBuf,
    /// The contents under Alice's root, and the snapshot outside it, before.
    before: Vec<String>,
    outside_before: std::collections::BTreeMap<String, Entry>,
}

async fn organized_tree(app: &TestApp) -> Organized {
    let alice = user(app, "organize").await;
    let outside = app.storage.path().join("outside");
    build_tree(&alice.root, &outside);
    let before = tree::content_multiset(&alice.root);
    let outside_before = tree::snapshot(&outside);
    let op = create(app, &alice, organize("inbox")).await;
    let done = wait_for(
        app,
        &alice,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    Organized {
        alice,
        op,
        done,
        outside,
        before,
        outside_before,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organize_sorts_the_tree_without_losing_a_file_or_leaving_the_root() {
    let app = TestApp::spawn().await;
    let Organized {
        alice,
        op,
        outside,
        before,
        outside_before,
        ..
    } = organized_tree(&app).await;
    assert_eq!(op.state, OperationState::Queued as i32);
    assert_eq!(op.layout_template, "{category}/{name}");

    let after = tree::snapshot(&alice.root);
    let expected = [
        ("inbox/Images/a_photo.jpg", tree::hash_of(b"JPEG-A")),
        ("inbox/b_link.jpg", tree::hash_of(b"JPEG-A")),
        ("inbox/Documents/doc.pdf", tree::hash_of(b"OLD-PDF")),
        ("inbox/Documents/doc (1).pdf", tree::hash_of(b"PDF-B")),
        ("inbox/Audio/song.mp3", tree::hash_of(b"MP3 content C")),
        ("inbox/Images/a_photo (1).jpg", tree::hash_of(b"JPEG-D")),
        ("inbox/Documents/dup1.txt", tree::hash_of(b"same text")),
        ("inbox/Documents/dup2.txt", tree::hash_of(b"same text")),
        ("inbox/.hidden", tree::hash_of(b"hidden")),
        ("inbox/Images/noext", tree::hash_of(PNG)),
        ("inbox/caf\\xe9.jpg", tree::hash_of(b"latin-1 name")),
        ("inbox/escape", Entry::Symlink("/etc/passwd".into())),
        ("inbox/linkdir", Entry::Symlink(outside.clone())),
    ];
    let expected: std::collections::BTreeMap<String, Entry> = expected
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(after, expected);
    // No file lost or overwritten; nothing outside the root touched.
    assert_eq!(tree::content_multiset(&alice.root), before);
    assert_eq!(tree::snapshot(&outside), outside_before);
    // Emptied source folders were removed.
    assert!(!alice.root.join("inbox/music").exists() && !alice.root.join("inbox/nested").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organize_records_every_decision() {
    let app = TestApp::spawn().await;
    let Organized { op, done, .. } = organized_tree(&app).await;
    let records = records(&app, &op.name).await;
    let by_path = |p: &str| {
        records
            .iter()
            .find(|r| r.original_path == p)
            .unwrap_or_else(|| panic!("no record for {p}"))
    };
    for (original, new) in [
        ("inbox/a_photo.jpg", "inbox/Images/a_photo.jpg"),
        ("inbox/doc.pdf", "inbox/Documents/doc (1).pdf"),
        ("inbox/music/song.mp3", "inbox/Audio/song.mp3"),
        ("inbox/music/a_photo.jpg", "inbox/Images/a_photo (1).jpg"),
        ("inbox/dup1.txt", "inbox/Documents/dup1.txt"),
        ("inbox/nested/dup2.txt", "inbox/Documents/dup2.txt"),
        ("inbox/noext", "inbox/Images/noext"),
    ] {
        let r = by_path(original);
        assert_eq!(r.status, RecordStatus::Completed, "{r:?}");
        assert_eq!(r.new_path.as_deref(), Some(new));
    }
    assert_eq!(by_path("inbox/noext").category, "Images");
    assert_eq!(by_path("inbox/music/song.mp3").category, "Audio");
    // Duplicates: dup2 is older, so it is the keeper.
    let keeper = by_path("inbox/nested/dup2.txt");
    let duplicate = by_path("inbox/dup1.txt");
    assert_eq!(duplicate.duplicate_of, Some(keeper.seq));
    assert_eq!(keeper.duplicate_of, None);
    assert_eq!(
        duplicate.content_hash.as_deref(),
        Some(blake3::hash(b"same text").as_bytes().as_slice())
    );
    // A file with a unique size was never read for hashing.
    assert!(by_path("inbox/music/song.mp3").content_hash.is_none());
    for (path, reason) in [
        ("inbox/b_link.jpg", "hard link"),
        ("inbox/Documents/doc.pdf", "already in place"),
        ("inbox/escape", "symbolic link"),
        ("inbox/linkdir", "symbolic link"),
        ("inbox/caf\u{FFFD}.jpg", "not valid UTF-8"),
    ] {
        let r = by_path(path);
        assert_eq!(r.status, RecordStatus::Skipped, "{r:?}");
        assert!(
            r.reason.as_deref().unwrap_or_default().contains(reason),
            "{r:?}"
        );
    }
    assert!(!records.iter().any(|r| r.original_path.contains(".hidden")));

    let counters = done.counters.unwrap();
    assert_eq!(counters.files_moved, 7);
    assert_eq!(counters.files_planned, 7);
    assert_eq!(counters.duplicates_found, 1);
    assert_eq!(counters.reclaimable_bytes, 9);
    assert_eq!(counters.files_failed, 0);
}

/// The server timed every phase it went through, in pipeline order; all
/// but REPORT (the report computed after the end) within the operation's
/// own start and end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organize_times_every_phase_in_pipeline_order() {
    let app = TestApp::spawn().await;
    let Organized { alice, op, .. } = organized_tree(&app).await;
    use pb::OperationPhase as P;
    let done = report_timed(&app, &alice, &op.name).await;
    let all = [
        P::Scan,
        P::Categorize,
        P::Hash,
        P::Plan,
        P::Journal,
        P::Apply,
        P::Cleanup,
        P::Report,
    ];
    assert_eq!(phases(&done), all);
    let ran = |t: &prost_types::Timestamp| t.seconds as f64 + f64::from(t.nanos) / 1e9;
    let lifetime = ran(done.end_time.as_ref().unwrap()) - ran(done.start_time.as_ref().unwrap());
    let report = phase_seconds(&pb::Operation {
        phase_durations: done.phase_durations[7..].to_vec(),
        ..Default::default()
    });
    assert!(
        phase_seconds(&done) - report <= lifetime + 0.01,
        "{:?} in {lifetime} s",
        done.phase_durations
    );
}

/// The operation once its REPORT phase is timed (the job computes the report
/// just after the operation reaches its final state).
async fn report_timed(app: &TestApp, user: &User, name: &str) -> pb::Operation {
    wait_until(app, user, name, |op| {
        phases(op).contains(&pb::OperationPhase::Report)
    })
    .await
}

/// The phases an operation's `phase_durations` lists, in its order.
fn phases(op: &pb::Operation) -> Vec<pb::OperationPhase> {
    op.phase_durations.iter().map(|d| d.phase()).collect()
}

/// The total of an operation's `phase_durations`, in seconds.
fn phase_seconds(op: &pb::Operation) -> f64 {
    op.phase_durations
        .iter()
        .map(|d| {
            let d = d.duration.as_ref().expect("a duration");
            assert!(d.seconds >= 0 && d.nanos >= 0, "{d:?}");
            d.seconds as f64 + f64::from(d.nanos) / 1e9
        })
        .sum()
}

/// Bob's `box/` (a photo, a PDF, a song) planned by a dry run: Bob, the
/// snapshot of his storage before, and the planned operation once its
/// REPORT phase is timed.
async fn planned_box(
    app: &TestApp,
) -> (
    User,
    std::collections::BTreeMap<String, Entry>,
    pb::Operation,
) {
    let bob = user(app, "dryrun").await;
    for (path, content) in [
        ("box/one.jpg", "1"),
        ("box/two.pdf", "22"),
        ("box/three.mp3", "333"),
    ] {
        tree::write(&bob.root, path, content.as_bytes());
    }
    let before = tree::snapshot(&bob.root);
    let op = create(
        app,
        &bob,
        pb::Operation {
            dry_run: true,
            ..organize("box")
        },
    )
    .await;
    let planned = wait_for(
        app,
        &bob,
        &op.name,
        &[OperationState::Planned, OperationState::Failed],
    )
    .await;
    assert_eq!(planned.state, OperationState::Planned as i32);
    let planned = report_timed(app, &bob, &op.name).await;
    (bob, before, planned)
}

/// The phases of a plan.
const PLANNING: [pb::OperationPhase; 5] = [
    pb::OperationPhase::Scan,
    pb::OperationPhase::Categorize,
    pb::OperationPhase::Hash,
    pb::OperationPhase::Plan,
    pb::OperationPhase::Journal,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_plans_every_file_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (bob, before, planned) = planned_box(&app).await;
    assert_eq!(
        tree::snapshot(&bob.root),
        before,
        "a dry run changed the disk"
    );
    assert_eq!(
        phases(&planned),
        [&PLANNING[..], &[pb::OperationPhase::Report]].concat()
    );
    let plan = records(&app, &planned.name).await;
    assert!(plan.iter().all(|r| r.status == RecordStatus::Planned));
    assert_eq!(
        plan.iter()
            .find(|r| r.original_path == "box/two.pdf")
            .unwrap()
            .new_path
            .as_deref(),
        Some("box/Documents/two.pdf")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_rechecks_each_planned_file_and_keeps_the_plans_phases() {
    let app = TestApp::spawn().await;
    let (bob, _, planned) = planned_box(&app).await;
    // A planned file changes before the plan is applied: it is skipped.
    tree::write(&bob.root, "box/two.pdf", b"changed after planning");
    apply(&app, &bob, &planned.name).await;
    let done = wait_for(
        &app,
        &bob,
        &planned.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(done.state, OperationState::Succeeded as i32);
    // The apply's run adds its phases to the plan's; the plan's are kept.
    use pb::OperationPhase as P;
    let done = report_timed(&app, &bob, &planned.name).await;
    assert_eq!(
        phases(&done),
        [&PLANNING[..], &[P::Apply, P::Cleanup, P::Report]].concat()
    );
    assert_eq!(
        &done.phase_durations[..PLANNING.len()],
        &planned.phase_durations[..PLANNING.len()]
    );
    let after = tree::snapshot(&bob.root);
    assert!(after.contains_key("box/Images/one.jpg") && after.contains_key("box/Audio/three.mp3"));
    assert_eq!(
        after["box/two.pdf"],
        tree::hash_of(b"changed after planning")
    );
    let changed = records(&app, &planned.name)
        .await
        .into_iter()
        .find(|r| r.original_path == "box/two.pdf")
        .unwrap();
    assert_eq!(changed.status, RecordStatus::Skipped);
    assert!(changed.reason.unwrap().contains("changed"));
}

/// ApplyOperation sent the moment the plan shows: the dry run's worker may
/// still be finishing (its report, its timings) and hold the job. It must
/// let go of it then, not leave it held with no heartbeat: the apply would
/// wait for the claim to go stale (here set far beyond the test's patience).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_sent_as_soon_as_the_plan_shows_runs_without_waiting_for_a_stale_claim() {
    let app = TestApp::spawn_with(Options {
        env: vec![("JOB_STALE_AFTER_MS", "600000".into())],
        ..Default::default()
    })
    .await;
    let jo = user(&app, "apply-at-once").await;
    for round in 0..5 {
        let folder = format!("in{round}");
        tree::write(&jo.root, &format!("{folder}/a.txt"), b"a");
        let planned = plan(&app, &jo, organize(&folder)).await;
        apply(&app, &jo, &planned.name).await;
        let done = wait_for(&app, &jo, &planned.name, &[OperationState::Succeeded]).await;
        assert_eq!(done.counters.unwrap().files_moved, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_plan_twice_is_refused() {
    let app = TestApp::spawn().await;
    let (bob, _, planned) = planned_box(&app).await;
    apply(&app, &bob, &planned.name).await;
    let finished = [OperationState::Succeeded, OperationState::Failed];
    wait_for(&app, &bob, &planned.name, &finished).await;
    let again = assert_code(
        app.operations()
            .apply_operation(bearer(
                pb::ApplyOperationRequest {
                    name: planned.name.clone(),
                },
                &bob.token,
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert!(again.message().contains("planned"), "{again:?}");
}

/// The seqs of planned records whose file the test disturbed, by the
/// outcome that follows.
struct Disturbed {
    renamed: Vec<i64>,
    failed: Vec<i64>,
    skipped: Vec<i64>,
}

/// Step 2: outcomes other than "as planned", at a batch's first and last
/// record and inside one: a taken destination (renamed), a vanished source
/// (failed), a changed file (skipped).
fn disturb_the_plan(root: &Path, plan: &[FileRecord]) -> Disturbed {
    let mut renamed = Vec::new();
    for n in [0, 999, 1_000, 1_500] {
        let r = &plan[n];
        tree::write(root, r.new_path.as_deref().unwrap(), b"taken");
        renamed.push(r.seq);
    }
    let mut failed = Vec::new();
    for n in [1, 1_999, 2_599] {
        let r = &plan[n];
        std::fs::remove_file(root.join(&r.original_path)).unwrap();
        failed.push(r.seq);
    }
    let mut skipped = Vec::new();
    for n in [2, 2_000] {
        let r = &plan[n];
        tree::write(root, &r.original_path, b"changed after planning");
        skipped.push(r.seq);
    }
    Disturbed {
        renamed,
        failed,
        skipped,
    }
}

/// Files that move as planned are recorded a batch's range at a time (one
/// UPDATE per batch); the others (renamed on a conflict, failed, skipped)
/// row by row. Over several batches, with each kind of outcome in the
/// middle of one and at a batch's edges, every record ends with its own
/// outcome and none is left planned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_records_every_outcome_across_batches() {
    let app = TestApp::spawn().await;
    let kim = user(&app, "batches").await;
    // Step 1: 2,600 files, three apply batches of 1,000, planned. Every 50th
    // is a copy of the first (a duplicate, moved to _duplicates and marked).
    for i in 0..2_600 {
        let content = if i % 50 == 0 {
            "same".to_string()
        } else {
            format!("file {i}")
        };
        tree::write(
            &kim.root,
            &format!("in/d{}/f{i:04}.txt", i / 100),
            content.as_bytes(),
        );
    }
    let op = plan(
        &app,
        &kim,
        pb::Operation {
            duplicate_policy: pb::DuplicatePolicy::MoveToDuplicatesFolder as i32,
            ..organize("in")
        },
    )
    .await;
    let plan = records(&app, &op.name).await;
    assert_eq!(plan.len(), 2_600, "step 1: the plan");
    let Disturbed {
        renamed: expect_renamed,
        failed: expect_failed,
        skipped: expect_skipped,
    } = disturb_the_plan(&kim.root, &plan);
    apply(&app, &kim, &op.name).await;
    let done = wait_for(
        &app,
        &kim,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(
        done.state,
        OperationState::Succeeded as i32,
        "step 3, apply: {done:?}"
    );
    // Step 4: each record's outcome, in the journal and on disk.
    let journal = records(&app, &op.name).await;
    let disk = tree::snapshot(&kim.root);
    for (r, p) in journal.iter().zip(&plan) {
        assert_eq!(r.seq, p.seq);
        let moved = if r.duplicate_of.is_some() {
            RecordStatus::Duplicate
        } else {
            RecordStatus::Completed
        };
        if expect_failed.contains(&r.seq) || expect_skipped.contains(&r.seq) {
            let expected = if expect_failed.contains(&r.seq) {
                RecordStatus::Failed
            } else {
                RecordStatus::Skipped
            };
            assert_eq!(r.status, expected, "{r:?}");
            assert!(r.reason.is_some(), "{r:?}");
            assert_eq!(
                disk.contains_key(&r.original_path),
                expected == RecordStatus::Skipped,
                "{r:?} on disk"
            );
            continue;
        }
        assert_eq!(r.status, moved, "{r:?}");
        assert!(r.reason.is_none(), "{r:?}");
        if expect_renamed.contains(&r.seq) {
            assert!(r.new_path.as_deref().unwrap().contains(" (1)"), "{r:?}");
        } else {
            assert_eq!(r.new_path, p.new_path, "{r:?}");
        }
        let at = r.new_path.as_deref().unwrap();
        assert!(disk.contains_key(at), "{r:?} is not at its new path");
        assert!(
            !disk.contains_key(&r.original_path),
            "{r:?} is still at its old path"
        );
    }
    // Step 5: the totals.
    let marked = journal
        .iter()
        .filter(|r| r.status == RecordStatus::Duplicate)
        .count();
    assert!(marked >= 45, "{marked} duplicates marked");
    let counters = done.counters.unwrap();
    assert_eq!(counters.files_failed, 3, "{counters:?}");
    assert_eq!(counters.files_moved, 2_600 - 3 - 2, "{counters:?}");
}

/// Apply and undo read the journal in windows of 1,000 seqs
/// (`db::file_records::batch_window`): a window with nothing to do (here
/// the first one and part of the second, settled as by an earlier run) is
/// stepped over, not taken for the end of the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_and_undo_step_over_windows_with_nothing_to_do() {
    let app = TestApp::spawn().await;
    let lee = user(&app, "windows").await;
    for i in 0..2_500 {
        tree::write(
            &lee.root,
            &format!("in/d{}/f{i:04}.txt", i / 100),
            format!("file {i}").as_bytes(),
        );
    }
    let before = tree::snapshot(&lee.root);
    let op = plan(&app, &lee, organize("in")).await;
    let plan = records(&app, &op.name).await;
    assert_eq!(plan.len(), 2_500);
    let settled = plan[1_199].seq;
    assert!(settled >= 1_200, "seqs are dense from the first: {settled}");
    let id = uuid::Uuid::parse_str(op.name.trim_start_matches("operations/")).unwrap();
    let mut conn = app.db().await;
    diesel::update(
        file_records::table
            .filter(file_records::operation_id.eq(id))
            .filter(file_records::seq.le(settled)),
    )
    .set((
        file_records::status.eq("skipped"),
        file_records::reason.eq("settled before this test's apply"),
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    apply(&app, &lee, &op.name).await;
    let done = wait_for(&app, &lee, &op.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.counters.unwrap().files_moved, 1_300);
    let journal = records(&app, &op.name).await;
    let disk = tree::snapshot(&lee.root);
    for r in &journal {
        let (status, at) = if r.seq <= settled {
            (RecordStatus::Skipped, &r.original_path)
        } else {
            (RecordStatus::Completed, r.new_path.as_ref().unwrap())
        };
        assert_eq!(r.status, status, "{r:?}");
        assert!(disk.contains_key(at), "{r:?} is not at {at}");
    }

    let undo_op = undo(&app, &lee, &op.name).await;
    let undone = wait_for(&app, &lee, &undo_op.name, &[OperationState::Succeeded]).await;
    assert_eq!(undone.counters.unwrap().files_moved, 1_300);
    assert_eq!(tree::snapshot(&lee.root), before);
}

/// Undo records the files it moved back as expected a batch's range at a
/// time and the others row by row, like apply. Over three windows, with
/// each outcome at a window's edges and inside one: an occupied original
/// path, a file changed after the organize, a file gone, a rewrite that
/// kept size and mtime (only the content hash tells), a file only touched
/// (chmod: the same content, moved back), and a file already back (an
/// unrecorded move before a crash). Every record ends with its own outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_records_every_outcome_across_batches() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "undo-batches").await;
    let content = |i: usize| format!("file {i:04}");
    for i in 0..2_600 {
        tree::write(
            &ann.root,
            &format!("in/d{}/f{i:04}.txt", i / 100),
            content(i).as_bytes(),
        );
    }
    let before = tree::snapshot(&ann.root);
    // Every file hashed: the journal has each one's content hash.
    let op = create(
        &app,
        &ann,
        pb::Operation {
            hash_all_files: true,
            ..organize("in")
        },
    )
    .await;
    let done = wait_for(&app, &ann, &op.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.counters.unwrap().files_moved, 2_600);
    let journal = records(&app, &op.name).await;
    assert!(journal.iter().all(|r| r.content_hash.is_some()));
    // Undo walks windows of 1,000 seqs down from the last: the edges are
    // at indices 2599, 1600 | 1599, 600 | 599, 0.
    let at = |n: usize| &journal[n];
    let new_path = |n: usize| at(n).new_path.clone().unwrap();
    let occupied = [2_599, 1_600, 1_000];
    for n in occupied {
        tree::write(&ann.root, &at(n).original_path, b"someone else's");
    }
    let changed = [1_599, 601];
    for n in changed {
        tree::write(&ann.root, &new_path(n), b"changed after the organize");
    }
    let gone = [600, 1_500];
    for n in gone {
        std::fs::remove_file(ann.root.join(new_path(n))).unwrap();
    }
    let rewritten = [599, 2_000];
    for n in rewritten {
        let path = ann.root.join(new_path(n));
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, format!("FILE {n:04}")).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    let touched = [0, 1_200];
    for n in touched {
        use std::os::unix::fs::PermissionsExt;
        let path = ann.root.join(new_path(n));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let back = [1, 2_598];
    for n in back {
        let original = ann.root.join(&at(n).original_path);
        std::fs::create_dir_all(original.parent().unwrap()).unwrap();
        std::fs::rename(ann.root.join(new_path(n)), original).unwrap();
    }

    let undo_op = undo(&app, &ann, &op.name).await;
    let undone = wait_for(
        &app,
        &ann,
        &undo_op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(undone.state, OperationState::Succeeded as i32, "{undone:?}");
    let kept: Vec<(&[usize], &str)> = vec![
        (&occupied, "is occupied by another file"),
        (&changed, "changed after the operation"),
        (&gone, "is gone"),
        (&rewritten, "has different content now"),
    ];
    let after = records(&app, &op.name).await;
    let disk = tree::snapshot(&ann.root);
    for (n, r) in after.iter().enumerate() {
        assert_eq!((r.seq, &r.new_path), (at(n).seq, &at(n).new_path));
        let here = |path: &str| disk.get(path).cloned();
        match kept.iter().find(|(which, _)| which.contains(&n)) {
            Some((_, reason)) => {
                assert_eq!(r.status, RecordStatus::Completed, "{r:?}");
                assert!(r.reason.as_deref().unwrap().contains(reason), "{r:?}");
                if !gone.contains(&n) {
                    assert!(here(&new_path(n)).is_some(), "{r:?} left its new path");
                }
                if occupied.contains(&n) {
                    assert_eq!(here(&new_path(n)), before.get(&r.original_path).cloned());
                }
            }
            None => {
                assert_eq!(r.status, RecordStatus::Undone, "{r:?}");
                assert_eq!(r.reason, None, "{r:?}");
                assert_eq!(
                    here(&r.original_path),
                    before.get(&r.original_path).cloned(),
                    "{r:?} is not back"
                );
                assert_eq!(here(&new_path(n)), None, "{r:?} is still at its new path");
            }
        }
    }
    let counters = undone.counters.unwrap();
    assert_eq!(counters.files_failed, 9, "{counters:?}");
    assert_eq!(counters.files_moved, 2_600 - 9, "{counters:?}");
}

/// A batch's outcomes are written either row by row or, for the records
/// that ended exactly as expected, as one range update with the rest listed
/// over it (`db::file_records::Outcomes::add`). Both give the same records,
/// for apply's outcomes (moved as planned, duplicates marked, renamed,
/// skipped, failed, copied to another device) and then for undo's (undone,
/// left in place with a reason), on two identical journals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_expected_outcomes_records_what_rows_would() {
    use fileorganizer::{
        db::file_records::{Expected, Outcomes, RecordUpdate, record_batch},
        domain::Counters,
        schema::operations,
    };
    let app = TestApp::spawn().await;
    let ned = user(&app, "range").await;
    for i in 0..60 {
        // Every fifth file a copy of the first: duplicates.
        let content = if i % 5 == 0 {
            "same".into()
        } else {
            format!("file {i}")
        };
        tree::write(&ned.root, &format!("in/f{i:02}.txt"), content.as_bytes());
    }
    let dry = pb::Operation {
        duplicate_policy: pb::DuplicatePolicy::MoveToDuplicatesFolder as i32,
        ..organize("in")
    };
    let (rows, ranged) = (
        plan(&app, &ned, dry.clone()).await,
        plan(&app, &ned, dry).await,
    );
    let plan_of = |r: &FileRecord| (r.seq, r.original_path.clone(), r.new_path.clone(), r.status);
    let planned = records(&app, &rows.name).await;
    assert_eq!(
        planned.iter().map(plan_of).collect::<Vec<_>>(),
        records(&app, &ranged.name)
            .await
            .iter()
            .map(plan_of)
            .collect::<Vec<_>>(),
        "two plans of one tree"
    );
    assert!(planned.iter().filter(|r| r.duplicate_of.is_some()).count() >= 10);
    let holder = "range-test";
    let ids = [&rows.name, &ranged.name]
        .map(|n| uuid::Uuid::parse_str(n.trim_start_matches("operations/")).unwrap());
    let mut conn = app.db().await;
    diesel::update(operations::table.filter(operations::id.eq_any(ids)))
        .set(operations::worker_id.eq(holder))
        .execute(&mut conn)
        .await
        .unwrap();
    // Writes `outcome(i, record)` for the records in `statuses`: to the
    // first journal row by row, to the second through `Outcomes::add`.
    let mut write =
        async |expected: Expected,
               statuses: &[RecordStatus],
               outcome: &dyn Fn(usize, &FileRecord) -> RecordUpdate| {
            let journal = records(&app, &rows.name).await;
            let (mut listed, mut added) = (Outcomes::default(), Outcomes::default());
            for (i, r) in journal.iter().enumerate() {
                if statuses.contains(&r.status) {
                    listed.updates.push(outcome(i, r));
                    added.add(expected, r, outcome(i, r));
                }
            }
            assert!(listed.as_expected.is_none());
            let run = added.as_expected.expect("some records ended as expected");
            assert!(run.first < run.last && added.updates.len() < listed.updates.len());
            for (id, outcomes) in [(ids[0], &listed), (ids[1], &added)] {
                let recorded = record_batch(
                    &mut conn,
                    id,
                    id,
                    holder,
                    outcomes,
                    &Counters::default(),
                    None,
                )
                .await
                .unwrap();
                assert!(recorded);
            }
            let fields = |r: &FileRecord| {
                (
                    r.seq,
                    r.status,
                    r.new_path.clone(),
                    r.reason.clone(),
                    r.device,
                    r.inode,
                )
            };
            assert_eq!(
                records(&app, &rows.name)
                    .await
                    .iter()
                    .map(fields)
                    .collect::<Vec<_>>(),
                records(&app, &ranged.name)
                    .await
                    .iter()
                    .map(fields)
                    .collect::<Vec<_>>(),
                "{expected:?}"
            );
        };
    let update =
        |r: &FileRecord, status, new_path: Option<String>, reason: Option<&str>| RecordUpdate {
            seq: r.seq,
            status,
            new_path,
            reason: reason.map(str::to_string),
            identity: None,
        };
    let moved = Expected::Moved {
        mark_duplicates: true,
    };
    write(moved, &[RecordStatus::Planned], &|i, r| match i % 6 {
        1 => update(
            r,
            moved.status(r),
            r.new_path.clone().map(|p| p + " (1)"),
            None,
        ),
        2 => update(
            r,
            RecordStatus::Skipped,
            r.new_path.clone(),
            Some("source changed"),
        ),
        3 => update(
            r,
            RecordStatus::Failed,
            r.new_path.clone(),
            Some("source file is missing"),
        ),
        4 => RecordUpdate {
            identity: Some((7, 1_000 + r.seq)),
            ..update(r, moved.status(r), r.new_path.clone(), None)
        },
        _ => update(r, moved.status(r), r.new_path.clone(), None),
    })
    .await;
    write(Expected::Undone, RecordStatus::MOVED, &|i, r| match i % 4 {
        1 => update(
            r,
            r.status,
            r.new_path.clone(),
            Some("cannot undo: occupied"),
        ),
        3 => update(r, r.status, r.new_path.clone(), Some("cannot undo: gone")),
        _ => update(r, RecordStatus::Undone, r.new_path.clone(), None),
    })
    .await;
    let statuses: std::collections::BTreeSet<&str> = records(&app, &ranged.name)
        .await
        .iter()
        .map(|r| r.status.as_str())
        .collect();
    assert_eq!(
        statuses,
        ["completed", "duplicate", "failed", "skipped", "undone"].into(),
    );
}

/// The journal keeps to its operation without a foreign key (migration
/// 000016): deleting a user (an administrator's SQL) deletes their
/// operations' records and nobody else's, and no journal is written for an
/// operation that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_lives_and_dies_with_its_operation() {
    let app = TestApp::spawn().await;
    let ivy = user(&app, "journal-owner").await;
    let other = user(&app, "journal-other").await;
    let mut ops = Vec::new();
    for u in [&ivy, &other] {
        tree::write(&u.root, "in/a.txt", b"same");
        tree::write(&u.root, "in/b.txt", b"same");
        let op = create(&app, u, organize("in")).await;
        wait_for(&app, u, &op.name, &[OperationState::Succeeded]).await;
        assert_eq!(records(&app, &op.name).await.len(), 2);
        ops.push(op);
    }
    let ivy_id = uuid::Uuid::parse_str(ivy.root.file_name().unwrap().to_str().unwrap()).unwrap();
    let mut conn = app.db().await;
    diesel::sql_query("DELETE FROM users WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(ivy_id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(records(&app, &ops[0].name).await.is_empty());
    assert_eq!(records(&app, &ops[1].name).await.len(), 2);

    let missing = uuid::Uuid::new_v4();
    let error = fileorganizer::db::file_records::write_journal(&app.database_url, missing, &[])
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains(&format!("operation {missing} does not exist")),
        "{error:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_gives_the_same_result_as_a_direct_run() {
    let app = TestApp::spawn().await;
    let direct = user(&app, "direct").await;
    let planned = user(&app, "planned").await;
    for u in [&direct, &planned] {
        for (path, content) in [
            ("in/a.png", "a"),
            ("in/b/c.docx", "cc"),
            ("in/b/a.png", "dd"),
            ("in/z.zip", "zz"),
        ] {
            tree::write(&u.root, path, content.as_bytes());
        }
    }
    let op = create(&app, &direct, organize("in")).await;
    wait_for(&app, &direct, &op.name, &[OperationState::Succeeded]).await;
    let op = plan(&app, &planned, organize("in")).await;
    apply(&app, &planned, &op.name).await;
    wait_for(&app, &planned, &op.name, &[OperationState::Succeeded]).await;
    assert_eq!(tree::snapshot(&direct.root), tree::snapshot(&planned.root));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_restores_the_original_tree() {
    let app = TestApp::spawn().await;
    let carol = user(&app, "undo").await;
    let outside = app.storage.path().join("outside-undo");
    build_tree(&carol.root, &outside);
    let original = tree::snapshot(&carol.root);

    let op = create(&app, &carol, organize("inbox")).await;
    wait_for(&app, &carol, &op.name, &[OperationState::Succeeded]).await;
    assert_ne!(tree::snapshot(&carol.root), original);

    let undo = app
        .operations()
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: op.name.clone(),
                request_id: String::new(),
            },
            &carol.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(undo.kind, pb::OperationKind::Undo as i32);
    assert_eq!(undo.undo_of, op.name);
    let undone = wait_for(
        &app,
        &carol,
        &undo.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(undone.state, OperationState::Succeeded as i32, "{undone:?}");
    assert_eq!(undone.counters.unwrap().files_moved, 7);
    assert_eq!(
        tree::snapshot(&carol.root),
        original,
        "undo did not restore the tree"
    );
    // The folders the organize created are gone again.
    assert!(!carol.root.join("inbox/Images").exists());
    assert!(
        records(&app, &op.name)
            .await
            .iter()
            .filter(|r| r.status == RecordStatus::Undone)
            .count()
            == 7
    );

    let target = app
        .operations()
        .get_operation(bearer(
            pb::GetOperationRequest {
                name: op.name.clone(),
            },
            &carol.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(target.undone_by, undo.name);
    // A second undo is refused, and so is undoing an undo.
    assert_code(
        app.operations()
            .undo_operation(bearer(
                pb::UndoOperationRequest {
                    name: op.name.clone(),
                    request_id: String::new(),
                },
                &carol.token,
            ))
            .await,
        Code::AlreadyExists,
    );
    assert_code(
        app.operations()
            .undo_operation(bearer(
                pb::UndoOperationRequest {
                    name: undo.name.clone(),
                    request_id: String::new(),
                },
                &carol.token,
            ))
            .await,
        Code::FailedPrecondition,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_never_overwrites_a_file_that_took_the_original_place() {
    let app = TestApp::spawn().await;
    let dave = user(&app, "undo-conflict").await;
    tree::write(&dave.root, "in/report.pdf", b"v1");
    let op = create(&app, &dave, organize("in")).await;
    wait_for(&app, &dave, &op.name, &[OperationState::Succeeded]).await;
    tree::write(&dave.root, "in/report.pdf", b"a new file with the old name");
    let undo = app
        .operations()
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: op.name.clone(),
                request_id: String::new(),
            },
            &dave.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let done = wait_for(
        &app,
        &dave,
        &undo.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(done.counters.unwrap().files_failed, 1);
    let snapshot = tree::snapshot(&dave.root);
    assert_eq!(
        snapshot["in/report.pdf"],
        tree::hash_of(b"a new file with the old name")
    );
    assert_eq!(snapshot["in/Documents/report.pdf"], tree::hash_of(b"v1"));
    let record = records(&app, &op.name).await.pop().unwrap();
    assert_eq!(record.status, RecordStatus::Completed);
    assert!(record.reason.unwrap().contains("occupied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_midway_then_undo_restores_everything() {
    let app = TestApp::spawn_with(Options {
        env: vec![("MOVES_PER_SECOND", "400".into())],
        ..Default::default()
    })
    .await;
    let erin = user(&app, "cancel").await;
    for i in 0..1200 {
        tree::write(
            &erin.root,
            &format!("big/{:02}/file{i}.txt", i % 20),
            format!("content {i}").as_bytes(),
        );
    }
    let original = tree::snapshot(&erin.root);
    let op = create(&app, &erin, organize("big")).await;
    // Step 1: wait until some files have moved, then cancel.
    wait_until(&app, &erin, &op.name, |now| {
        now.counters.as_ref().is_some_and(|c| c.files_moved >= 100)
    })
    .await;
    let cancelling = app
        .operations()
        .cancel_operation(bearer(
            pb::CancelOperationRequest {
                name: op.name.clone(),
            },
            &erin.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        [
            OperationState::Cancelling as i32,
            OperationState::Cancelled as i32
        ]
        .contains(&cancelling.state),
        "{cancelling:?}"
    );
    let cancelled = wait_for(
        &app,
        &erin,
        &op.name,
        &[OperationState::Cancelled, OperationState::Succeeded],
    )
    .await;
    assert_eq!(
        cancelled.state,
        OperationState::Cancelled as i32,
        "step 1, cancel"
    );
    let moved = cancelled.counters.unwrap().files_moved;
    assert!(moved > 0 && moved < 1200, "step 1: moved {moved}");
    // Step 2: records agree with the disk: what moved is recorded as moved.
    let recs = records(&app, &op.name).await;
    assert_eq!(
        recs.iter()
            .filter(|r| r.status == RecordStatus::Completed)
            .count() as i64,
        moved,
        "step 2: completed records"
    );
    for r in &recs {
        let at_new = r
            .new_path
            .as_ref()
            .is_some_and(|p| erin.root.join(p).exists());
        let at_old = erin.root.join(&r.original_path).exists();
        assert!(
            at_new ^ at_old,
            "{r:?} is in {} places",
            at_new as u8 + at_old as u8
        );
        assert_eq!(r.status == RecordStatus::Completed, at_new, "{r:?}");
    }

    // Step 3: the undo puts everything back.
    let undone = undo_and_wait(&app, &erin, &op.name).await;
    assert_eq!(
        undone.state,
        OperationState::Succeeded as i32,
        "step 3, undo: {undone:?}"
    );
    assert_eq!(
        tree::snapshot(&erin.root),
        original,
        "step 3: the tree after the undo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_leaving_the_root_are_rejected() {
    let app = TestApp::spawn().await;
    let frank = user(&app, "escape").await;
    let outside = app.storage.path().join("outside-escape");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), b"keep").unwrap();
    std::os::unix::fs::symlink(&outside, frank.root.join("out")).unwrap();
    tree::write(&frank.root, "in/x.txt", b"x");
    let cases: Vec<(pb::Operation, &str)> = vec![
        (organize("../"), "operation.source_path"),
        (organize("in/../../x"), "operation.source_path"),
        (organize("/etc"), "operation.source_path"),
        (organize("in\0"), "operation.source_path"),
        (organize("out"), "operation.source_path"),
        (organize("missing"), "operation.source_path"),
        (
            pb::Operation {
                destination_path: "../elsewhere".into(),
                ..organize("in")
            },
            "operation.destination_path",
        ),
        (
            pb::Operation {
                destination_path: "out/inside".into(),
                ..organize("in")
            },
            "operation.destination_path",
        ),
        (
            pb::Operation {
                layout_template: "{category}/../{name}".into(),
                ..organize("in")
            },
            "operation.layout_template",
        ),
        (
            pb::Operation {
                layout_template: "{nonsense}".into(),
                ..organize("in")
            },
            "operation.layout_template",
        ),
        (
            pb::Operation {
                exclude_globs: vec!["[".into()],
                ..organize("in")
            },
            "operation.exclude_globs",
        ),
    ];
    for (operation, field) in cases {
        let status = assert_code(
            app.operations()
                .create_operation(bearer(
                    pb::CreateOperationRequest {
                        operation: Some(operation.clone()),
                        request_id: String::new(),
                    },
                    &frank.token,
                ))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), field, "{operation:?}: {status:?}");
    }
    assert_eq!(std::fs::read(outside.join("keep.txt")).unwrap(), b"keep");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_operations_are_not_found() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "owner").await;
    let mallory = user(&app, "intruder").await;
    tree::write(&alice.root, "mine/a.txt", b"a");
    let op = plan(&app, &alice, organize("mine")).await;
    let missing = format!("operations/{}", uuid::Uuid::new_v4());
    for name in [op.name.clone(), missing] {
        let ops = app.operations();
        let token = &mallory.token;
        let results = [
            ops.clone()
                .get_operation(bearer(
                    pb::GetOperationRequest { name: name.clone() },
                    token,
                ))
                .await
                .map(|_| ()),
            ops.clone()
                .cancel_operation(bearer(
                    pb::CancelOperationRequest { name: name.clone() },
                    token,
                ))
                .await
                .map(|_| ()),
            ops.clone()
                .apply_operation(bearer(
                    pb::ApplyOperationRequest { name: name.clone() },
                    token,
                ))
                .await
                .map(|_| ()),
            ops.clone()
                .undo_operation(bearer(
                    pb::UndoOperationRequest {
                        name: name.clone(),
                        request_id: String::new(),
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            ops.clone()
                .watch_operation(bearer(
                    pb::WatchOperationRequest {
                        name: name.clone(),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
        ];
        for result in results {
            let status = result.unwrap_err();
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            assert_eq!(status.message(), format!("{name} not found"));
        }
    }
    let listed = app
        .operations()
        .list_operations(bearer(pb::ListOperationsRequest::default(), &mallory.token))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.operations.is_empty());
    // Alice's plan is intact.
    let mine = app
        .operations()
        .get_operation(bearer(
            pb::GetOperationRequest {
                name: op.name.clone(),
            },
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.state, OperationState::Planned as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_state_and_pages_newest_first() {
    let app = TestApp::spawn().await;
    let gina = user(&app, "list").await;
    tree::write(&gina.root, "l/a.txt", b"a");
    let mut names = Vec::new();
    for _ in 0..3 {
        let op = create(
            &app,
            &gina,
            pb::Operation {
                dry_run: true,
                ..organize("l")
            },
        )
        .await;
        wait_for(&app, &gina, &op.name, &[OperationState::Planned]).await;
        names.push(op.name);
    }
    let page = |token: String| {
        let mut ops = app.operations();
        let t = gina.token.clone();
        async move {
            ops.list_operations(bearer(
                pb::ListOperationsRequest {
                    page_size: 2,
                    page_token: token,
                    ..Default::default()
                },
                &t,
            ))
            .await
            .unwrap()
            .into_inner()
        }
    };
    let first = page(String::new()).await;
    let second = page(first.next_page_token.clone()).await;
    let listed: Vec<String> = first
        .operations
        .iter()
        .chain(&second.operations)
        .map(|o| o.name.clone())
        .collect();
    names.reverse();
    assert_eq!(listed, names);
    assert!(second.next_page_token.is_empty());
    let succeeded = app
        .operations()
        .list_operations(bearer(
            pb::ListOperationsRequest {
                state: OperationState::Succeeded as i32,
                ..Default::default()
            },
            &gina.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(succeeded.operations.is_empty());
    let bad = assert_code(
        app.operations()
            .list_operations(bearer(
                pb::ListOperationsRequest {
                    state: 99,
                    ..Default::default()
                },
                &gina.token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&bad), "state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_growing_counters_until_the_end() {
    let app = TestApp::spawn_with(Options {
        env: vec![("MOVES_PER_SECOND", "500".into())],
        ..Default::default()
    })
    .await;
    let hana = user(&app, "watch").await;
    for i in 0..400 {
        tree::write(
            &hana.root,
            &format!("w/f{i}.txt"),
            format!("{i}").as_bytes(),
        );
    }
    let op = create(&app, &hana, organize("w")).await;
    let mut stream = app
        .operations()
        .watch_operation(bearer(
            pb::WatchOperationRequest {
                name: op.name.clone(),
                ..Default::default()
            },
            &hana.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut snapshots = Vec::new();
    while let Some(snapshot) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        snapshots.push(snapshot);
    }
    let last = snapshots.last().unwrap();
    assert_eq!(last.state, OperationState::Succeeded as i32);
    assert_eq!(last.counters.unwrap().files_moved, 400);
    assert!(snapshots.len() >= 3, "only {} snapshots", snapshots.len());
    for pair in snapshots.windows(2) {
        let (a, b) = (pair[0].counters.unwrap(), pair[1].counters.unwrap());
        assert!(
            b.files_moved >= a.files_moved && b.files_scanned >= a.files_scanned,
            "{a:?} -> {b:?}"
        );
    }
    assert!(
        snapshots
            .iter()
            .any(|s| s.state == OperationState::Applying as i32)
    );
    // Reconnecting after the end gives the final snapshot at once.
    let mut again = app
        .operations()
        .watch_operation(bearer(
            pb::WatchOperationRequest {
                name: op.name.clone(),
                ..Default::default()
            },
            &hana.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let only = again.message().await.unwrap().unwrap();
    assert_eq!(only.state, OperationState::Succeeded as i32);
    assert!(again.message().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_operations_never_run_at_the_same_time() {
    // Two workers are free, but two operations of one user on overlapping
    // folders must run one after the other.
    let app = TestApp::spawn_with(Options {
        env: vec![("WORKERS", "2".into()), ("MOVES_PER_SECOND", "400".into())],
        ..Default::default()
    })
    .await;
    let lee = user(&app, "serial").await;
    for i in 0..200 {
        tree::write(
            &lee.root,
            &format!("s/a/f{i}.txt"),
            format!("{i}").as_bytes(),
        );
        tree::write(
            &lee.root,
            &format!("s/b/g{i}.jpg"),
            format!("{i}").as_bytes(),
        );
    }
    let outer = create(&app, &lee, organize("s")).await;
    let inner = create(&app, &lee, organize("s/b")).await;
    let first = wait_for(&app, &lee, &outer.name, &[OperationState::Succeeded]).await;
    // The outer organize moves everything out of s/b and removes the empty
    // folder; the inner one then finds its source gone, and says so.
    let second = wait_for(
        &app,
        &lee,
        &inner.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    if second.state == OperationState::Failed as i32 {
        let error = second.error.as_ref().map(|e| e.message.as_str());
        assert!(
            error.is_some_and(|e| e.contains("does not exist any more")),
            "{second:?}"
        );
    }
    let span = |op: &pb::Operation| {
        let s = op.start_time.unwrap();
        let e = op.end_time.unwrap();
        (
            s.seconds as i128 * 1_000_000_000 + s.nanos as i128,
            e.seconds as i128 * 1_000_000_000 + e.nanos as i128,
        )
    };
    let (a, b) = (span(&first), span(&second));
    assert!(
        a.1 <= b.0 || b.1 <= a.0,
        "the operations overlapped: {a:?} {b:?}"
    );
    // Nothing was lost between them.
    assert_eq!(tree::content_multiset(&lee.root).len(), 400);
}

/// Every state and phase is stored as its word and read back as itself; a
/// row holding a word (or, in its settings, a policy) this version does not
/// know fails to load, and the API answers INTERNAL instead of guessing
/// (an unknown duplicate policy used to read as "report only").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_words_round_trip_and_unknown_ones_are_errors() {
    use fileorganizer::{
        db,
        domain::{DuplicatePolicy, OperationState as State, Phase},
        schema::{file_records, operations},
    };
    let app = TestApp::spawn().await;
    let ann = user(&app, "words").await;
    tree::write(&ann.root, "in/a.txt", b"a");
    let op = plan(
        &app,
        &ann,
        pb::Operation {
            duplicate_policy: pb::DuplicatePolicy::MoveToTrash as i32,
            ..organize("in")
        },
    )
    .await;
    let id = uuid::Uuid::parse_str(op.name.trim_start_matches("operations/")).unwrap();
    let mut conn = app.db().await;
    let stored = db::operations::find(&mut conn, id).await.unwrap().unwrap();
    assert_eq!(
        stored.options.duplicate_policy,
        DuplicatePolicy::MoveToTrash
    );
    // Held by a live "worker", so that no real one claims the job while it
    // looks runnable.
    diesel::update(operations::table.find(id))
        .set((
            operations::worker_id.eq("held-by-this-test"),
            operations::heartbeat_at.eq(chrono::Utc::now() + chrono::Duration::hours(1)),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    for (state, phase) in State::ALL.iter().zip(Phase::ALL.iter().cycle()) {
        diesel::update(operations::table.find(id))
            .set((operations::state.eq(state), operations::phase.eq(phase)))
            .execute(&mut conn)
            .await
            .unwrap();
        let word: (String, Option<String>) = operations::table
            .find(id)
            .select((operations::state, operations::phase))
            .first(&mut conn)
            .await
            .unwrap();
        assert_eq!(word, (state.to_string(), Some(phase.to_string())));
        let row = db::operations::find(&mut conn, id).await.unwrap().unwrap();
        assert_eq!((row.state, row.phase), (*state, Some(*phase)));
    }

    // A journal record's status likewise (ListFileRecords reads it).
    for status in RecordStatus::ALL {
        diesel::update(file_records::table.filter(file_records::operation_id.eq(id)))
            .set(file_records::status.eq(status))
            .execute(&mut conn)
            .await
            .unwrap();
        let journal = db::file_records::all_for_operation(&mut conn, id)
            .await
            .unwrap();
        assert!(journal.iter().all(|r| r.status == *status), "{status}");
    }
    diesel::sql_query("UPDATE file_records SET status = 'lost' WHERE operation_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        db::file_records::all_for_operation(&mut conn, id).await,
        Err(diesel::result::Error::DeserializationError(_))
    ));
    let records = crate::files::files(&app)
        .list_file_records(bearer(
            pb::ListFileRecordsRequest {
                parent: op.name.clone(),
                ..Default::default()
            },
            &ann.token,
        ))
        .await;
    assert_code(records, Code::Internal);

    let list = || async {
        app.operations()
            .list_operations(bearer(pb::ListOperationsRequest::default(), &ann.token))
            .await
    };
    assert!(list().await.is_ok());
    for (column, value) in [
        ("state", "'paused'"),
        ("phase", "'polish'"),
        ("options", r#"'{"duplicate_policy": "delete_them"}'::jsonb"#),
    ] {
        diesel::sql_query(format!(
            "UPDATE operations SET {column} = {value} WHERE id = $1"
        ))
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut conn)
        .await
        .unwrap();
        let error = db::operations::find(&mut conn, id).await.unwrap_err();
        assert!(
            matches!(error, diesel::result::Error::DeserializationError(_)),
            "{column}: {error:?}"
        );
        assert_code(list().await, Code::Internal);
        // Put it back for the next column.
        diesel::sql_query(
            "UPDATE operations SET state = 'planned', phase = 'plan', options = '{}' WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut conn)
        .await
        .unwrap();
        assert!(list().await.is_ok(), "{column}");
    }
}

/// A runnable job whose row this version cannot read (here a duplicate
/// policy it does not know, as a newer version might write) fails with the
/// reason instead of being guessed at, and the jobs after it still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_job_fails_with_the_reason_and_the_queue_goes_on() {
    use fileorganizer::schema::operations;
    let app = TestApp::spawn().await;
    let bob = user(&app, "unreadable").await;
    tree::write(&bob.root, "in/a.txt", b"a");
    tree::write(&bob.root, "later/b.txt", b"b");
    let op = plan(&app, &bob, organize("in")).await;
    let id = uuid::Uuid::parse_str(op.name.trim_start_matches("operations/")).unwrap();
    let mut conn = app.db().await;
    diesel::sql_query(
        "UPDATE operations SET state = 'queued', phase = 'apply',
           options = '{\"duplicate_policy\": \"delete_them\"}' WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(&mut conn)
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (state, error) = loop {
        let row: (String, Option<String>) = operations::table
            .find(id)
            .select((operations::state, operations::error))
            .first(&mut conn)
            .await
            .unwrap();
        if row.0 != "queued" {
            break row;
        }
        assert!(std::time::Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(state, "failed");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("cannot read") && error.contains("delete_them"),
        "{error}"
    );
    // Nothing moved, and the next job of the same user runs.
    assert!(bob.root.join("in/a.txt").exists());
    let next = create(&app, &bob, organize("later")).await;
    let done = wait_for(&app, &bob, &next.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.counters.unwrap().files_moved, 1);
}

/// A worker that finished a job releases it only if it still holds it: a
/// worker whose heartbeat went stale may have lost the job to another, and
/// clearing that one's claim would let a third run the job beside it (this
/// raced `stored_words_round_trip_and_unknown_ones_are_errors` under load:
/// the planning worker's release cleared the test's hold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_releases_only_a_job_it_still_holds() {
    use fileorganizer::{db, schema::operations};
    let app = TestApp::spawn().await;
    let ann = user(&app, "release").await;
    tree::write(&ann.root, "in/a.txt", b"a");
    let op = plan(&app, &ann, organize("in")).await;
    let id = uuid::Uuid::parse_str(op.name.trim_start_matches("operations/")).unwrap();
    let mut conn = app.db().await;
    diesel::update(operations::table.find(id))
        .set(operations::worker_id.eq("the-new-holder"))
        .execute(&mut conn)
        .await
        .unwrap();
    let released = db::operations::release(&mut conn, id, "the-old-holder")
        .await
        .unwrap();
    assert_eq!(released, 0);
    assert_eq!(
        holder(&mut conn, id).await.as_deref(),
        Some("the-new-holder")
    );
    let released = db::operations::release(&mut conn, id, "the-new-holder")
        .await
        .unwrap();
    assert_eq!(released, 1);
    assert_eq!(holder(&mut conn, id).await, None);
}

/// Every write a worker makes to its job's row is fenced by its hold: one
/// whose claim went stale and was taken over changes nothing (not the
/// state, not the counters, cursor, rule set version or timings), so it
/// cannot end or rewind the job its new holder is running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_hold_cannot_change_the_job() {
    use fileorganizer::{
        db,
        domain::{Counters, OperationState as State, Phase},
        schema::operations,
    };
    let app = TestApp::spawn().await;
    let ann = user(&app, "fenced").await;
    tree::write(&ann.root, "in/a.txt", b"a");
    let op = plan(&app, &ann, organize("in")).await;
    let id = uuid::Uuid::parse_str(op.name.trim_start_matches("operations/")).unwrap();
    let mut conn = app.db().await;
    // A job being applied, now held by another worker.
    diesel::update(operations::table.find(id))
        .set((
            operations::worker_id.eq("the-new-holder"),
            operations::state.eq(State::Applying),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    let before = db::operations::find(&mut conn, id).await.unwrap().unwrap();
    let seconds = serde_json::json!({ "scan": 99.0 });
    let old = "the-old-holder";
    let ended = db::operations::set_state(
        &mut conn,
        id,
        old,
        State::Failed,
        Some(Phase::Apply),
        &seconds,
    )
    .await
    .unwrap();
    assert!(ended.is_none());
    let counters = Counters {
        files_moved: 12_345,
        ..Default::default()
    };
    assert_eq!(
        db::operations::set_counters(&mut conn, id, old, &counters)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db::operations::set_applied_cursor(&mut conn, id, old, 77)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db::operations::set_rule_set_version(&mut conn, id, old, Some(9))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db::operations::set_phase_seconds(&mut conn, id, old, &seconds)
            .await
            .unwrap(),
        0
    );
    let after = db::operations::find(&mut conn, id).await.unwrap().unwrap();
    assert_eq!(after.state, State::Applying);
    assert_eq!(after.finished_at, before.finished_at);
    assert_eq!(after.counters(), before.counters());
    assert_eq!(after.applied_cursor, before.applied_cursor);
    assert_eq!(after.rule_set_version, before.rule_set_version);
    assert_eq!(after.phase_seconds, before.phase_seconds);
    assert_eq!(
        holder(&mut conn, id).await.as_deref(),
        Some("the-new-holder")
    );
    // The holder's own writes go through.
    let new = "the-new-holder";
    assert_eq!(
        db::operations::set_applied_cursor(&mut conn, id, new, 1)
            .await
            .unwrap(),
        1
    );
    let row = db::operations::set_state(
        &mut conn,
        id,
        new,
        State::Succeeded,
        Some(Phase::Apply),
        &seconds,
    )
    .await
    .unwrap()
    .expect("held");
    assert_eq!(row.state, State::Succeeded);
}

/// The worker that holds operation `id`, if any.
pub(crate) async fn holder(
    conn: &mut diesel_async::AsyncPgConnection,
    id: uuid::Uuid,
) -> Option<String> {
    use fileorganizer::schema::operations;
    operations::table
        .find(id)
        .select(operations::worker_id)
        .first::<Option<String>>(conn)
        .await
        .unwrap()
}
