//! Crash recovery: a `fileorg worker` process is killed with SIGKILL in the
//! middle of an operation, several times; fresh processes reclaim the job
//! once its heartbeat is stale, reconcile the journal with the disk and
//! finish. At every point each file is in exactly one place, and at the end
//! the records agree with the disk and no content was lost.

use std::{
    process::{Child, Stdio},
    time::Duration,
};

use fileorganizer::domain::RecordStatus;
use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState};

use crate::{
    common::{Options, TestApp, tree},
    operations::{User, create, organize, records, user, wait_for},
};

/// Starts a `fileorg worker` process on the app's database and storage.
pub fn spawn_worker(app: &TestApp, extra: &[(&str, String)]) -> Child {
    let mut command = app.fileorg_command(&["worker", "--count", "1"]);
    command
        .env("JOB_HEARTBEAT_MS", "200")
        .env("JOB_STALE_AFTER_MS", "1000")
        .env("JOB_POLL_MS", "100")
        .stderr(Stdio::inherit());
    for (key, value) in extra {
        command.env(key, value);
    }
    command.spawn().expect("start fileorg worker")
}

fn throttle(on: bool) -> Vec<(&'static str, String)> {
    vec![("MOVES_PER_SECOND", if on { "600" } else { "0" }.to_string())]
}

/// Every journaled file is at its original path or its new path, never both
/// and never neither.
async fn assert_each_file_in_one_place(app: &TestApp, user: &User, name: &str) {
    for r in records(app, name).await {
        if r.status == RecordStatus::Skipped {
            continue;
        }
        let at_old = user.root.join(&r.original_path).exists();
        let at_new = r
            .new_path
            .as_ref()
            .is_some_and(|p| user.root.join(p).exists());
        assert!(
            at_old ^ at_new,
            "{r:?}: at original {at_old}, at new {at_new}"
        );
        if r.status == RecordStatus::Completed {
            assert!(
                at_new,
                "{r:?} is recorded as moved but is not at its new path"
            );
        }
    }
}

/// How many of the operation's files are at their new path on disk.
async fn moved_on_disk(app: &TestApp, user: &User, name: &str) -> usize {
    records(app, name)
        .await
        .iter()
        .filter(|r| {
            r.new_path
                .as_ref()
                .is_some_and(|p| user.root.join(p).exists())
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_operation_is_recovered_without_loss() {
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("WORKERS", "0".into()),
            ("JOB_STALE_AFTER_MS", "1000".into()),
        ],
        ..Default::default()
    })
    .await;
    let ivan = user(&app, "crash").await;
    let files = 1500;
    for i in 0..files {
        let ext = ["jpg", "pdf", "mp3", "txt", "zip"][i % 5];
        tree::write(
            &ivan.root,
            &format!("data/{:02}/file{i}.{ext}", i % 30),
            format!("payload {i}").as_bytes(),
        );
    }
    let before = tree::content_multiset(&ivan.root);
    let op = create(&app, &ivan, organize("data")).await;

    // Kill at different points: the first after a fixed pause (while
    // planning or early in the moves, wherever it lands), the others once
    // the moves are seen to have advanced, so a slow machine (a worker that
    // takes long to start) still has kills land in the middle of the moves.
    let mut moved_at_kill = Vec::new();
    for advance in [None, Some(100), Some(300)] {
        let mut worker = spawn_worker(&app, &throttle(true));
        match advance {
            None => tokio::time::sleep(Duration::from_millis(400)).await,
            Some(step) => {
                let target = (moved_at_kill.last().copied().unwrap_or(0) + step).min(files - 200);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                while moved_on_disk(&app, &ivan, &op.name).await < target {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the worker moved fewer than {target} files in 120 s"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        worker.kill().expect("SIGKILL"); // Child::kill sends SIGKILL
        worker.wait().unwrap();
        assert_eq!(
            tree::content_multiset(&ivan.root),
            before,
            "content lost after SIGKILL"
        );
        assert_each_file_in_one_place(&app, &ivan, &op.name).await;
        moved_at_kill.push(moved_on_disk(&app, &ivan, &op.name).await);
    }
    assert!(
        moved_at_kill.iter().any(|&m| m > 0 && m < files),
        "no kill landed in the middle of the moves: {moved_at_kill:?}"
    );
    let moved_before_last = app
        .operations()
        .get_operation(crate::common::bearer(
            pb::GetOperationRequest {
                name: op.name.clone(),
            },
            &ivan.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        moved_before_last.state != OperationState::Succeeded as i32,
        "the operation finished before the last kill; slow it down"
    );

    // A fresh worker reclaims the stale job and finishes it.
    let mut worker = spawn_worker(&app, &throttle(false));
    let done = wait_for(
        &app,
        &ivan,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    assert_eq!(tree::content_multiset(&ivan.root), before);
    assert_each_file_in_one_place(&app, &ivan, &op.name).await;
    let recs = records(&app, &op.name).await;
    assert_eq!(recs.len(), files);
    assert!(
        recs.iter().all(|r| r.status == RecordStatus::Completed),
        "{:?}",
        recs.iter().find(|r| r.status != RecordStatus::Completed)
    );
    assert_eq!(done.counters.unwrap().files_moved, files as i64);
    // Nothing is left in the old folders.
    assert!(!ivan.root.join("data/00").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_live_progress_of_a_job_in_another_process() {
    let prefix = format!("fileorg-test-{}:", uuid::Uuid::new_v4().simple());
    let redis = [
        ("REDIS_URL", "redis://127.0.0.1:6379".to_string()),
        ("REDIS_KEY_PREFIX", prefix.clone()),
    ];
    let app = TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into()), redis[0].clone(), redis[1].clone()],
        ..Default::default()
    })
    .await;
    let june = user(&app, "remote-watch").await;
    for i in 0..300 {
        tree::write(
            &june.root,
            &format!("r/f{i}.txt"),
            format!("{i}").as_bytes(),
        );
    }
    let op = create(&app, &june, organize("r")).await;
    let mut stream = app
        .operations()
        .watch_operation(crate::common::bearer(
            pb::WatchOperationRequest {
                name: op.name.clone(),
                ..Default::default()
            },
            &june.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut env = vec![("MOVES_PER_SECOND", "300".to_string())];
    env.extend(redis.iter().cloned());
    let mut worker = spawn_worker(&app, &env);
    let mut snapshots = Vec::new();
    while let Some(s) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        snapshots.push(s);
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(
        snapshots.last().unwrap().state,
        OperationState::Succeeded as i32
    );
    // Only live snapshots (published by the worker process over Redis) carry
    // the current path and a rate; database polls do not.
    let live = snapshots
        .iter()
        .filter(|s| !s.current_path.is_empty() && s.state == OperationState::Applying as i32)
        .count();
    assert!(
        live >= 3,
        "{live} live snapshots out of {}",
        snapshots.len()
    );
    assert!(snapshots.iter().any(|s| s.files_per_second > 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_job_back_for_another_worker_at_once() {
    let app = TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await;
    let kim = user(&app, "graceful").await;
    for i in 0..600 {
        tree::write(&kim.root, &format!("g/f{i}.txt"), format!("{i}").as_bytes());
    }
    let before = tree::content_multiset(&kim.root);
    let op = create(&app, &kim, organize("g")).await;
    // Staleness would take a minute: only a hand-back lets the job go on soon.
    let never_stale = ("JOB_STALE_AFTER_MS", "60000".to_string());
    let mut first = spawn_worker(
        &app,
        &[("MOVES_PER_SECOND", "200".into()), never_stale.clone()],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !records(&app, &op.name).await.iter().any(|r| {
        r.new_path
            .as_ref()
            .is_some_and(|p| kim.root.join(p).exists())
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first worker never moved a file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(first.id() as i32, libc::SIGTERM) }, 0);
    let status = first.wait().unwrap();
    assert!(status.success(), "worker exited with {status}");
    let mut second = spawn_worker(&app, &[never_stale]);
    let done = tokio::time::timeout(
        Duration::from_secs(30),
        wait_for(
            &app,
            &kim,
            &op.name,
            &[OperationState::Succeeded, OperationState::Failed],
        ),
    )
    .await
    .expect("the job was not handed back");
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(done.state, OperationState::Succeeded as i32);
    assert_eq!(done.counters.unwrap().files_moved, 600);
    assert_eq!(tree::content_multiset(&kim.root), before);
}
