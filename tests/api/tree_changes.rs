//! Files changing under the organizer between plan and apply: a dry run
//! plans, the test changes the tree, ApplyOperation executes the old plan.
//!
//! Every changed file is skipped or refused with a recorded reason, nothing
//! outside the root is touched (a sibling "outside" folder is compared
//! before and after), nothing is overwritten, and the unchanged files are
//! organized.

use std::{os::unix::fs::symlink, path::Path};

use fileorganizer::domain::RecordStatus;
use fileorganizer::pb::fileorganizer::v1::{self as pb, ConflictPolicy, OperationState};

use crate::common::{TestApp, bearer, tree};
use crate::operations::{organize, plan, records, user, wait_for};

/// Step 1: the files the plan will cover, a file inside the storage and
/// files outside it that the changes will point at.
fn write_the_tree(root: &Path, outside: &Path) {
    tree::write(outside, "secret.txt", b"outside secret");
    tree::write(outside, "in_swapped_dir.txt", b"outside, same name");
    tree::write(outside, "rel_swapped.txt", b"outside, relative");
    tree::write(root, "keep/inside.txt", b"inside target");
    for (path, content) in [
        ("inbox/modified.txt", &b"version 1"[..]),
        ("inbox/touched.txt", b"same size"),
        ("inbox/deleted.txt", b"to be deleted"),
        ("inbox/link_inside.txt", b"becomes a link inside"),
        ("inbox/link_outside.txt", b"becomes a link outside"),
        ("inbox/sub/in_swapped_dir.txt", b"in a folder swapped out"),
        (
            "inbox/rel/rel_swapped.txt",
            b"in a folder swapped out (relative)",
        ),
        ("inbox/photo.png", b"destination folder swapped out"),
        ("inbox/taken.pdf", b"destination appears"),
        ("inbox/song.mp3", b"unchanged, organized"),
        ("inbox/clip.mp4", b"unchanged too"),
    ] {
        tree::write(root, path, content);
    }
    tree::set_mtime(root, "inbox/touched.txt", 1_600_000_000);
}

/// Step 3: the tree changes under the plan: contents, a deletion, files
/// and folders swapped for links inside and outside (absolute and
/// relative), a destination folder swapped out and a destination taken.
/// `storage` is the folder that holds both `root` and `outside`.
fn change_the_tree(root: &Path, outside: &Path, storage: &Path) {
    let at = |p: &str| root.join(p);
    tree::write(root, "inbox/modified.txt", b"version 2, longer");
    tree::write(root, "inbox/touched.txt", b"SAME SIZE");
    tree::set_mtime(root, "inbox/touched.txt", 1_600_000_000);
    std::fs::remove_file(at("inbox/deleted.txt")).unwrap();
    std::fs::remove_file(at("inbox/link_inside.txt")).unwrap();
    symlink("../keep/inside.txt", at("inbox/link_inside.txt")).unwrap();
    std::fs::remove_file(at("inbox/link_outside.txt")).unwrap();
    symlink(outside.join("secret.txt"), at("inbox/link_outside.txt")).unwrap();
    std::fs::remove_dir_all(at("inbox/sub")).unwrap();
    symlink(outside, at("inbox/sub")).unwrap();
    std::fs::remove_dir_all(at("inbox/rel")).unwrap();
    let relative_outside = Path::new("../..").join(
        outside
            .strip_prefix(storage)
            .expect("outside is a sibling of the storage"),
    );
    symlink(Path::new("..").join(&relative_outside), at("inbox/rel")).unwrap();
    assert!(
        at("inbox/rel/rel_swapped.txt").exists(),
        "relative link resolves outside"
    );
    symlink(outside, at("inbox/Images")).unwrap();
    tree::write(root, "inbox/Documents/taken.pdf", b"appeared meanwhile");
}

/// Step 5: each file's record, (status, reason).
const OUTCOMES: [(&str, &str, &str); 11] = [
    (
        "inbox/modified.txt",
        "skipped",
        "source changed since the scan",
    ),
    (
        "inbox/touched.txt",
        "skipped",
        "source changed since the scan",
    ),
    ("inbox/deleted.txt", "failed", "source file is missing"),
    (
        "inbox/link_inside.txt",
        "skipped",
        "source is not a regular file",
    ),
    (
        "inbox/link_outside.txt",
        "skipped",
        "source is not a regular file",
    ),
    (
        "inbox/sub/in_swapped_dir.txt",
        "failed",
        "path leads outside the storage root",
    ),
    (
        "inbox/rel/rel_swapped.txt",
        "failed",
        "path leads outside the storage root",
    ),
    (
        "inbox/photo.png",
        "failed",
        "path leads outside the storage root",
    ),
    ("inbox/taken.pdf", "skipped", "destination already exists"),
    ("inbox/song.mp3", "completed", ""),
    ("inbox/clip.mp4", "completed", ""),
];

/// One sequence (plan, change the tree, apply), in named steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_changed_between_plan_and_apply_are_skipped_with_a_reason() {
    let app = TestApp::spawn().await;
    let eve = user(&app, "changing").await;
    let root = eve.root.clone();
    let outside = app.storage.path().join("outside");
    write_the_tree(&root, &outside);

    // Step 2: the plan.
    let op = plan(
        &app,
        &eve,
        pb::Operation {
            conflict_policy: ConflictPolicy::Skip as i32,
            ..organize("inbox")
        },
    )
    .await;
    let plan = records(&app, &op.name).await;
    assert!(
        plan.iter().all(|r| r.status == RecordStatus::Planned),
        "step 2, plan: {plan:#?}"
    );

    change_the_tree(&root, &outside, app.storage.path());
    let outside_before = tree::snapshot(&outside);
    let inside_before = tree::snapshot(&root.join("keep"));
    let changed = tree::snapshot(&root);

    // Step 4: apply.
    app.operations()
        .apply_operation(bearer(
            pb::ApplyOperationRequest {
                name: op.name.clone(),
            },
            &eve.token,
        ))
        .await
        .expect("step 4, ApplyOperation");
    let done = wait_for(
        &app,
        &eve,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(
        done.state,
        OperationState::Succeeded as i32,
        "step 4: {done:?}"
    );

    // Step 5: containment: nothing outside changed, nor the link's target
    // inside; each file has the outcome and reason it should.
    assert_eq!(
        tree::snapshot(&outside),
        outside_before,
        "step 5: outside the storage"
    );
    assert_eq!(
        tree::snapshot(&root.join("keep")),
        inside_before,
        "step 5: the inside link's target"
    );
    let records = records(&app, &op.name).await;
    for (path, status, reason) in OUTCOMES {
        let record = records
            .iter()
            .find(|r| r.original_path == path)
            .unwrap_or_else(|| panic!("step 5: no record for {path}"));
        let outcome = (
            record.status.as_str(),
            record.reason.clone().unwrap_or_default(),
        );
        assert_eq!(outcome, (status, reason.to_string()), "step 5: {path}");
    }

    // Step 6: only the two unchanged files moved; everything else is
    // exactly as the test left it (nothing overwritten, no link followed).
    let mut expected = changed.clone();
    for (from, to) in [
        ("inbox/song.mp3", "inbox/Audio/song.mp3"),
        ("inbox/clip.mp4", "inbox/Videos/clip.mp4"),
    ] {
        let entry = expected.remove(from).unwrap();
        expected.insert(to.to_string(), entry);
    }
    assert_eq!(
        tree::snapshot(&root),
        expected,
        "step 6: the tree after apply"
    );
}

/// A move under the RENAME policy that took a free ` (n)` name (its planned
/// destination had appeared meanwhile) and was interrupted before its
/// outcome was recorded: the next apply finds the file under that name
/// (not only at the planned destination), records it as moved there, and
/// undo brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecorded_move_to_a_renamed_destination_is_reconciled_and_undone() {
    let app = TestApp::spawn().await;
    let eve = user(&app, "renamed-move").await;
    let root = eve.root.clone();
    tree::write(&root, "inbox/report.pdf", b"the user's report");
    tree::write(&root, "inbox/song.mp3", b"organized normally");
    let op = plan(
        &app,
        &eve,
        pb::Operation {
            conflict_policy: ConflictPolicy::Rename as i32,
            ..organize("inbox")
        },
    )
    .await;
    let plan = records(&app, &op.name).await;
    let planned = plan
        .iter()
        .find(|r| r.original_path == "inbox/report.pdf")
        .and_then(|r| r.new_path.clone())
        .expect("report.pdf is planned");
    // What an interrupted apply leaves: the destination appeared, the file
    // was moved to the next free name, and the outcome never reached the
    // journal.
    let renamed = planned.replace("report.pdf", "report (1).pdf");
    tree::write(&root, &planned, b"someone else's file");
    std::fs::rename(root.join("inbox/report.pdf"), root.join(&renamed)).unwrap();

    crate::operations::apply(&app, &eve, &op.name).await;
    let done = wait_for(
        &app,
        &eve,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    let records = records(&app, &op.name).await;
    let report = records
        .iter()
        .find(|r| r.original_path == "inbox/report.pdf")
        .unwrap();
    assert_eq!(report.status, RecordStatus::Completed, "{report:?}");
    assert_eq!(
        report.new_path.as_deref(),
        Some(renamed.as_str()),
        "{report:?}"
    );
    assert_eq!(
        std::fs::read(root.join(&planned)).unwrap(),
        b"someone else's file"
    );

    let undone = crate::operations::undo_and_wait(&app, &eve, &op.name).await;
    assert_eq!(undone.state, OperationState::Succeeded as i32, "{undone:?}");
    assert_eq!(
        std::fs::read(root.join("inbox/report.pdf")).unwrap(),
        b"the user's report"
    );
    assert!(!root.join(&renamed).exists());
    assert_eq!(
        std::fs::read(root.join(&planned)).unwrap(),
        b"someone else's file"
    );
    assert_eq!(
        std::fs::read(root.join("inbox/song.mp3")).unwrap(),
        b"organized normally"
    );
}
