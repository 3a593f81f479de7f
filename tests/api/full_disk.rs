//! A full disk, on a real (small) filesystem: a tmpfs of 2 MiB mounted
//! inside a user's storage (the tests run as root; the guard unmounts it).
//!
//! - Uploads that do not fit fail with RESOURCE_EXHAUSTED, leave no temp or
//!   partial file and do not change the usage; earlier files stay intact.
//! - An organize whose destination folder is that tmpfs moves across devices
//!   (rename gives EXDEV, the mover copies): the copy that does not fit fails
//!   cleanly, its source stays intact and its record says why, the other
//!   files move, and undo brings everything back.

use tonic::Code;

use fileorganizer::domain::RecordStatus;
use fileorganizer::pb::fileorganizer::v1::{self as pb, FileConflictPolicy, OperationState};

use crate::common::{TestApp, assert_code, reason, tmpfs::Tmpfs, tree};
use crate::files::{
    content, download, small_request, storage_used, temp_files, upload_small, upload_stream,
};
use crate::operations::{create, organize, records, undo_and_wait, user, wait_for};

const MIB: usize = 1024 * 1024;

fn assert_disk_full(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(status), "QUOTA_EXCEEDED", "{status:?}");
    assert!(
        status.message().starts_with(field) && status.message().contains("full"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_onto_a_full_disk_fail_cleanly() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "full-upload").await;
    let disk = Tmpfs::mount(&ann.root.join("small"), "2m");
    let first = content(MIB, 1);
    upload_small(&app, &ann, small_request("small/first.bin", &first))
        .await
        .unwrap();
    let used = storage_used(&app, &ann).await;
    let before = tree::snapshot(&ann.root);

    let big = content(3 * MIB / 2, 2);
    let streamed = assert_code(
        upload_stream(
            &app,
            &ann,
            "small/big.bin",
            &big,
            256 * 1024,
            FileConflictPolicy::Fail,
        )
        .await,
        Code::ResourceExhausted,
    );
    assert_disk_full(&streamed, "metadata.path");
    let unary = assert_code(
        upload_small(&app, &ann, small_request("small/deeper/big.bin", &big)).await,
        Code::ResourceExhausted,
    );
    assert_disk_full(&unary, "path");

    // Nothing partial or temporary left, not even the folder the upload
    // made; the usage is unchanged and the earlier file intact.
    assert!(temp_files(disk.path()).is_empty());
    assert!(!disk.path().join("deeper").exists());
    assert_eq!(tree::snapshot(&ann.root), before);
    assert_eq!(storage_used(&app, &ann).await, used);
    assert_eq!(
        download(&app, &ann, "small/first.bin").await.unwrap().1,
        first
    );
    // Space is there again once something is freed (here: by hand).
    std::fs::remove_file(disk.path().join("first.bin")).unwrap();
    upload_small(&app, &ann, small_request("small/big.bin", &big))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_device_move_that_does_not_fit_keeps_its_source() {
    let app = TestApp::spawn().await;
    let bea = user(&app, "full-move").await;
    let small = content(100 * 1024, 3);
    let big = content(3 * MIB, 4);
    let last = content(200 * 1024, 5);
    tree::write(&bea.root, "inbox/a_notes.txt", &small);
    tree::write(&bea.root, "inbox/big.bin", &big);
    tree::write(&bea.root, "inbox/z_report.pdf", &last);
    let _disk = Tmpfs::mount(&bea.root.join("sorted"), "2m");
    let original = tree::snapshot(&bea.root);

    let op = create(
        &app,
        &bea,
        pb::Operation {
            destination_path: "sorted".into(),
            ..organize("inbox")
        },
    )
    .await;
    let done = wait_for(
        &app,
        &bea,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    let counters = done.counters.unwrap();
    assert_eq!((counters.files_moved, counters.files_failed), (2, 1));

    let after = tree::snapshot(&bea.root);
    assert_eq!(after["inbox/big.bin"], tree::hash_of(&big), "source intact");
    assert_eq!(after["sorted/Documents/a_notes.txt"], tree::hash_of(&small));
    assert_eq!(after["sorted/Documents/z_report.pdf"], tree::hash_of(&last));
    assert_eq!(after.len(), 3, "no partial or temp file: {after:?}");
    let records = records(&app, &op.name).await;
    let failed = records
        .iter()
        .find(|r| r.original_path == "inbox/big.bin")
        .unwrap();
    assert_eq!(failed.status, RecordStatus::Failed, "{failed:?}");
    assert_eq!(failed.reason.as_deref(), Some("no space left on device"));

    let undone = undo_and_wait(&app, &bea, &op.name).await;
    assert_eq!(undone.state, OperationState::Succeeded as i32, "{undone:?}");
    assert_eq!(undone.counters.unwrap().files_moved, 2);
    assert_eq!(tree::snapshot(&bea.root), original);
}
