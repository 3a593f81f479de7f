//! The per-user byte budget of uploads (`RATE_LIMIT_UPLOAD_BYTES`): counted
//! as the bytes arrive on every path, refused midway with RetryInfo, and
//! what arrived before the refusal follows the path's failure rule.

use fileorganizer::pb::fileorganizer::v1::{self as pb, FileConflictPolicy};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    archives::{import, tar_of},
    common::{Options, TestApp, assert_code, reason},
    files::{content, small_request, storage_used, temp_files},
    operations::user,
    uploads::{append, create_session, get_session, session, small, stream},
};

/// A server whose users may upload `budget` bytes per window, counted in
/// Redis (under a prefix of its own) like the request limits.
async fn with_budget(budget: u64) -> TestApp {
    TestApp::spawn_with(Options {
        env: vec![
            ("REDIS_URL", "redis://127.0.0.1:6379".into()),
            (
                "REDIS_KEY_PREFIX",
                format!("fileorg-test-{}:", uuid::Uuid::new_v4().simple()),
            ),
            ("RATE_LIMIT_UPLOAD_BYTES", budget.to_string()),
        ],
        ..Default::default()
    })
    .await
}

/// Checks a byte-budget refusal: RATE_LIMITED naming the budget, with a
/// RetryInfo delay within the window.
fn assert_budget_refusal(result: Result<impl std::fmt::Debug, Status>) -> Status {
    let status = assert_code(result, Code::ResourceExhausted);
    assert_eq!(reason(&status), "RATE_LIMITED", "{status:?}");
    let details = status.get_error_details();
    assert_eq!(
        details.error_info().unwrap().metadata["limit"],
        "upload bytes"
    );
    let delay = details
        .retry_info()
        .expect("a refusal has a RetryInfo")
        .retry_delay
        .expect("with a delay");
    assert!(delay.as_secs() >= 1 && delay.as_secs() <= 120, "{delay:?}");
    status
}

fn metadata(path: &str, size: usize) -> pb::UploadFileMetadata {
    pb::UploadFileMetadata {
        path: path.into(),
        size_bytes: size as i64,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_that_runs_past_the_byte_budget_is_refused_midway_and_leaves_nothing() {
    let app = with_budget(300_000).await;
    let ann = user(&app, "budget-ann").await;
    let first = content(200_000, 1);
    stream(&app, &ann, metadata("a.bin", first.len()), &first)
        .await
        .unwrap();
    // The second crosses the budget in its second 64 KiB chunk.
    let second = content(200_000, 2);
    assert_budget_refusal(stream(&app, &ann, metadata("b.bin", second.len()), &second).await);
    assert!(!ann.root.join("b.bin").exists());
    assert!(
        temp_files(&ann.root).is_empty(),
        "{:?}",
        temp_files(&ann.root)
    );
    assert_eq!(storage_used(&app, &ann).await, 200_000);
    // The budget is spent: one more byte by any path is refused too.
    assert_budget_refusal(small(&app, &ann, small_request("c.txt", b"c")).await);
    assert!(!ann.root.join("c.txt").exists());
    assert_eq!(std::fs::read(ann.root.join("a.bin")).unwrap(), first);

    // Another user's budget is their own.
    let bob = user(&app, "budget-bob").await;
    stream(&app, &bob, metadata("b.bin", second.len()), &second)
        .await
        .unwrap();
    assert_eq!(std::fs::read(bob.root.join("b.bin")).unwrap(), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_that_crosses_the_byte_budget_keeps_its_complete_entries_and_says_so() {
    let app = with_budget((2 << 20) + (1 << 19)).await; // 2.5 MiB
    let cat = user(&app, "budget-import").await;
    let parts: Vec<_> = (0..4)
        .map(|i| (format!("p{i}.bin"), content(1 << 20, i), 1_600_000_000))
        .collect();
    let status = assert_budget_refusal(
        import(
            &app,
            &cat,
            "q",
            &tar_of(&parts),
            256 << 10,
            FileConflictPolicy::Fail,
        )
        .await,
    );
    // The first 2.5 MiB arrived: two whole files, the third cut.
    assert!(
        status.message().contains("the 2 files (2097152 bytes)"),
        "{status:?}"
    );
    let mut stored: Vec<_> = std::fs::read_dir(cat.root.join("q"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    stored.sort();
    assert_eq!(stored, ["p0.bin", "p1.bin"]);
    for (name, data, _) in &parts[..2] {
        assert_eq!(&std::fs::read(cat.root.join("q").join(name)).unwrap(), data);
    }
    assert!(temp_files(&cat.root).is_empty());
    assert_eq!(storage_used(&app, &cat).await, 2 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_append_past_the_byte_budget_commits_what_arrived_before() {
    let app = with_budget(300_000).await;
    let dee = user(&app, "budget-session").await;
    let data = content(512 << 10, 3);
    let upload = create_session(&app, &dee, session("big.bin", data.len()))
        .await
        .unwrap();
    // Two 256 KiB messages: the first fits, the second does not.
    assert_budget_refusal(append(&app, &dee, &upload.name, 0, &data).await);
    let now = get_session(&app, &dee, &upload.name).await.unwrap();
    assert_eq!(now.committed_offset, 256 << 10);
    assert!(!dee.root.join("big.bin").exists());
}
