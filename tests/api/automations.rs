//! Automations (issue 21; docs/triggers.md): schedules under a controlled
//! clock, exactly one firing per tick with two server processes on one
//! database, a burst of uploads organized by one operation, a folder
//! changed on disk, a SIGKILL in the middle of an automatic run, pause and
//! resume, tenant isolation and refused input.
//!
//! Time is the test's: servers read the automations' clock from
//! SCHEDULER_CLOCK_FILE ([`TestClock`]), so a tick happens when the test
//! writes the instant, never by waiting. Waits poll with bounded deadlines;
//! nothing asserts on speed.

use std::{path::PathBuf, process::Stdio, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use fileorganizer::{
    pb::fileorganizer::v1::{self as pb, OperationState, TriggerKind, automation::Trigger},
    schema::{automations, operations},
};
use tonic::Code;

use crate::{
    common::{
        KillOnDrop, Options, TestApp, assert_code, bad_field, bearer, free_port, reason, tree,
    },
    files::{delete, files, small_request},
    kills::{assert_consistent_after_kill, build_tree, moved_away},
    operations::{User, user, wait_for},
};

/// The automations' clock of the servers a test starts: the instant in a
/// file they all read.
pub(crate) struct TestClock {
    dir: tempfile::TempDir,
}

impl TestClock {
    fn new(start: DateTime<Utc>) -> TestClock {
        let clock = TestClock {
            dir: tempfile::tempdir().unwrap(),
        };
        clock.set(start);
        clock
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("now")
    }

    /// Moves the clock (atomically: a reader never sees half a write).
    pub(crate) fn set(&self, instant: DateTime<Utc>) {
        let tmp = self.dir.path().join("now.tmp");
        std::fs::write(&tmp, instant.to_rfc3339()).unwrap();
        std::fs::rename(&tmp, self.path()).unwrap();
    }

    /// Server settings for this clock: a fast scheduler and job queue.
    fn env(&self, workers: usize) -> Vec<(&'static str, String)> {
        vec![
            ("SCHEDULER_CLOCK_FILE", self.path().display().to_string()),
            ("SCHEDULER_POLL_MS", "50".into()),
            ("JOB_POLL_MS", "100".into()),
            ("WORKERS", workers.to_string()),
        ]
    }
}

pub(crate) fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, h, m, s).unwrap()
}

fn schedule(cron: &str, time_zone: &str) -> Option<Trigger> {
    Some(Trigger::Schedule(pb::ScheduleTrigger {
        cron: cron.into(),
        time_zone: time_zone.into(),
    }))
}

fn organize_into(source: &str, destination: &str) -> Option<pb::Operation> {
    Some(pb::Operation {
        source_path: source.into(),
        destination_path: destination.into(),
        ..Default::default()
    })
}

async fn create(
    app: &TestApp,
    user: &User,
    automation: pb::Automation,
) -> Result<pb::Automation, tonic::Status> {
    app.automations()
        .create_automation(bearer(
            pb::CreateAutomationRequest {
                automation: Some(automation),
            },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn get(app: &TestApp, user: &User, name: &str) -> pb::Automation {
    app.automations()
        .get_automation(bearer(
            pb::GetAutomationRequest { name: name.into() },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner()
}

fn id_of(name: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(name.rsplit('/').next().unwrap()).unwrap()
}

/// Operations the automation created, counted in the database.
async fn runs_in_db(app: &TestApp, automation: &str) -> i64 {
    let mut conn = app.db().await;
    operations::table
        .filter(operations::automation_id.eq(id_of(automation)))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap()
}

/// The automation's runs as ListOperations shows them, newest first.
async fn runs(app: &TestApp, user: &User, automation: &str) -> Vec<pb::Operation> {
    let request = pb::ListOperationsRequest {
        page_size: 1000,
        automation: automation.into(),
        ..Default::default()
    };
    crate::operations::list(app, user, request).await
}

/// Polls until the automation has created `n` operations (bounded).
pub(crate) async fn wait_for_runs(app: &TestApp, automation: &str, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let count = runs_in_db(app, automation).await;
        assert!(count <= n, "{automation}: {count} runs, expected {n}");
        if count == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{automation}: still {count} runs, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Gives every scheduler many polls (SCHEDULER_POLL_MS=50) to do something
/// it must not do; a check after it can only fail if it did.
async fn let_schedulers_poll() {
    tokio::time::sleep(Duration::from_millis(1_000)).await;
}

/// Polls until the automation's next run is `next` (the scheduler handled
/// the tick before it).
async fn wait_for_next_run(app: &TestApp, user: &User, name: &str, next: DateTime<Utc>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = get(app, user, name).await;
        let seen = a.next_run_time.map(|t| t.seconds);
        if seen == Some(next.timestamp()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "next run is {seen:?}, expected {next}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn timestamp(t: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

/// A server (one worker) under a test clock at 00:00:30, a user (`label`) with `inbox/a.txt`,
/// and their automation "every five minutes" organizing inbox into sorted.
pub(crate) async fn every_five_minutes(label: &str) -> (TestClock, TestApp, User, pb::Automation) {
    let clock = TestClock::new(at(0, 0, 30));
    let app = TestApp::spawn_with(Options {
        env: clock.env(1),
        ..Default::default()
    })
    .await;
    let owner = user(&app, label).await;
    tree::write(&owner.root, "inbox/a.txt", b"a");
    let automation = create(
        &app,
        &owner,
        pb::Automation {
            display_name: "every five minutes".into(),
            trigger: schedule("*/5 * * * *", "UTC"),
            operation: organize_into("inbox", "sorted"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (clock, app, owner, automation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_on_its_ticks_catches_up_once_and_pauses() {
    let (clock, app, alice, automation) = every_five_minutes("schedule").await;
    let name = automation.name.clone();
    assert_eq!(automation.next_run_time, timestamp(at(0, 5, 0)));
    assert_eq!(automation.run_count, 0);

    // Before the tick nothing fires.
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 0);

    // The tick: one run, an ordinary operation that says what started it.
    clock.set(at(0, 5, 0));
    wait_for_runs(&app, &name, 1).await;
    let first = runs(&app, &alice, &name).await.remove(0);
    let trigger = first.trigger.clone().unwrap();
    assert_eq!(trigger.kind, TriggerKind::Schedule as i32);
    assert_eq!(trigger.automation, name);
    let done = wait_for(&app, &alice, &first.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.counters.unwrap().files_moved, 1);
    assert!(alice.root.join("sorted").is_dir());
    let after = get(&app, &alice, &name).await;
    assert_eq!(after.run_count, 1);
    assert_eq!(after.last_operation, first.name);
    assert_eq!(after.last_run_time, timestamp(at(0, 5, 0)));
    assert_eq!(after.next_run_time, timestamp(at(0, 10, 0)));
    // A manual operation says so.
    let manual =
        crate::operations::create(&app, &alice, crate::operations::organize("sorted")).await;
    assert_eq!(
        manual.trigger.unwrap(),
        pb::OperationTrigger {
            kind: TriggerKind::Manual as i32,
            automation: String::new(),
        }
    );
    wait_for(&app, &alice, &manual.name, &[OperationState::Succeeded]).await;

    // Ticks missed (00:10 … 00:25): one catch-up run, then the schedule.
    clock.set(at(0, 27, 0));
    wait_for_runs(&app, &name, 2).await;
    wait_for_next_run(&app, &alice, &name, at(0, 30, 0)).await;
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 2);

    // Paused: no next run, no firing at its tick.
    let paused = app
        .automations()
        .pause_automation(bearer(
            pb::PauseAutomationRequest { name: name.clone() },
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(paused.paused);
    assert_eq!(paused.next_run_time, None);
    clock.set(at(0, 31, 0));
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 2);
    // Resumed: the next tick after now, not the one missed while paused.
    let resumed = app
        .automations()
        .resume_automation(bearer(
            pb::ResumeAutomationRequest { name: name.clone() },
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!resumed.paused);
    assert_eq!(resumed.next_run_time, timestamp(at(0, 35, 0)));
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 2);
    clock.set(at(0, 35, 0));
    wait_for_runs(&app, &name, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_during_a_running_run_is_skipped() {
    let clock = TestClock::new(at(0, 0, 30));
    let app = TestApp::spawn_with(Options {
        env: [
            clock.env(1),
            // Slow enough that the run outlives the next tick.
            vec![("MOVES_PER_SECOND", "2".into())],
        ]
        .concat(),
        ..Default::default()
    })
    .await;
    let alice = user(&app, "overlap").await;
    for i in 0..200 {
        tree::write(&alice.root, &format!("inbox/f{i}.txt"), b"x");
    }
    let name = create(
        &app,
        &alice,
        pb::Automation {
            trigger: schedule("* * * * *", ""),
            operation: organize_into("inbox", "sorted"),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .name;
    clock.set(at(0, 1, 0));
    wait_for_runs(&app, &name, 1).await;
    let first = runs(&app, &alice, &name).await.remove(0);
    // The next tick comes while the first run moves files: it is handled
    // (the next run moves on) without a second operation.
    clock.set(at(0, 2, 0));
    wait_for_next_run(&app, &alice, &name, at(0, 3, 0)).await;
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 1);
    app.operations()
        .cancel_operation(bearer(
            pb::CancelOperationRequest {
                name: first.name.clone(),
            },
            &alice.token,
        ))
        .await
        .unwrap();
    wait_for(&app, &alice, &first.name, &[OperationState::Cancelled]).await;
    // Once it ended, the next tick fires again.
    clock.set(at(0, 3, 0));
    wait_for_runs(&app, &name, 2).await;
}

/// `fileorg serve` with one worker on the app's database and storage,
/// following `clock`.
fn spawn_server(app: &TestApp, clock: &TestClock, moves_per_second: u32) -> KillOnDrop {
    let child = app
        .fileorg_command(&["serve"])
        .env("GRPC_ADDR", format!("127.0.0.1:{}", free_port()))
        .envs(clock.env(1))
        .env("JOB_HEARTBEAT_MS", "200")
        .env("JOB_STALE_AFTER_MS", "1000")
        .env("MOVES_PER_SECOND", moves_per_second.to_string())
        // Without Redis on purpose, on the test clock on purpose: quiet.
        .env(
            "RUST_LOG",
            "warn,fileorganizer::state=error,fileorganizer::jobs::clock=error",
        )
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fileorg serve");
    KillOnDrop(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_fire_each_tick_exactly_once() {
    const TICKS: u32 = 6;
    let clock = TestClock::new(at(0, 0, 30));
    // Two schedulers on one database: this process and a child.
    let app = TestApp::spawn_with(Options {
        env: clock.env(1),
        ..Default::default()
    })
    .await;
    let _other = spawn_server(&app, &clock, 0);
    // Eight schedules (of two users) due at the same instants: a firing
    // holds its rows for a while, so both processes compete for them.
    let owners = [
        user(&app, "two-servers-a").await,
        user(&app, "two-servers-b").await,
    ];
    let mut schedules = Vec::new();
    for owner in &owners {
        for n in 0..4 {
            std::fs::create_dir_all(owner.root.join(format!("inbox{n}"))).unwrap();
            let name = create(
                &app,
                owner,
                pb::Automation {
                    trigger: schedule("* * * * *", "Europe/Paris"),
                    operation: organize_into(&format!("inbox{n}"), &format!("sorted{n}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .name;
            schedules.push((owner, name));
        }
    }
    for minute in 1..=TICKS {
        clock.set(at(0, minute, 0));
        for (owner, name) in &schedules {
            wait_for_runs(&app, name, minute as i64).await;
            wait_for_next_run(&app, owner, name, at(0, minute + 1, 0)).await;
        }
        // Both schedulers poll many times at this instant: still one each.
        let_schedulers_poll().await;
        for (owner, name) in &schedules {
            assert_eq!(runs_in_db(&app, name).await, minute as i64, "tick {minute}");
            let latest = runs(&app, owner, name).await.remove(0);
            wait_for(&app, owner, &latest.name, &[OperationState::Succeeded]).await;
        }
    }
    let mut conn = app.db().await;
    let automatic: i64 = operations::table
        .filter(operations::automation_id.is_not_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(automatic, (schedules.len() as u32 * TICKS) as i64);
    let run_counts: Vec<i64> = automations::table
        .select(automations::run_count)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(run_counts, vec![TICKS as i64; schedules.len()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_while_no_process_ran_fire_once_at_start() {
    let clock = TestClock::new(at(0, 0, 30));
    // The API alone: no scheduler runs.
    let app = TestApp::spawn_with(Options {
        env: clock.env(0),
        ..Default::default()
    })
    .await;
    let alice = user(&app, "catch-up").await;
    std::fs::create_dir_all(alice.root.join("inbox")).unwrap();
    let name = create(
        &app,
        &alice,
        pb::Automation {
            trigger: schedule("* * * * *", "UTC"),
            operation: organize_into("inbox", "sorted"),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .name;
    // Ten ticks pass with no process to fire them.
    clock.set(at(0, 10, 30));
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 0);
    // The first worker process to start fires once, then follows the schedule.
    let _worker = spawn_server(&app, &clock, 0);
    wait_for_runs(&app, &name, 1).await;
    wait_for_next_run(&app, &alice, &name, at(0, 11, 0)).await;
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 1);
    assert_eq!(
        get(&app, &alice, &name).await.last_run_time,
        timestamp(at(0, 10, 30))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_uploads_makes_one_operation() {
    const FILES: usize = 500;
    let clock = TestClock::new(at(12, 0, 0));
    let app = TestApp::spawn_with(Options {
        env: clock.env(1),
        ..Default::default()
    })
    .await;
    let alice = user(&app, "burst").await;
    let name = create(
        &app,
        &alice,
        pb::Automation {
            trigger: Some(Trigger::Arrival(pb::ArrivalTrigger {
                folder_path: "inbox".into(),
                quiet_period: Some(prost_types::Duration {
                    seconds: 5,
                    nanos: 0,
                }),
            })),
            operation: organize_into("", "sorted"),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .name;
    // The watched folder is the source, whatever the operation said.
    let created = get(&app, &alice, &name).await;
    assert_eq!(created.operation.unwrap().source_path, "inbox");
    assert_eq!(created.next_run_time, None);

    // 499 unary uploads, 8 at a time, and one streamed, all inside the
    // quiet period (the clock stands still).
    let mut pending = Vec::new();
    for i in 0..FILES - 1 {
        let client = files(&app);
        let token = alice.token.clone();
        pending.push(async move {
            client
                .clone()
                .upload_small_file(bearer(
                    small_request(
                        &format!("inbox/d{}/f{i}.txt", i % 7),
                        i.to_string().as_bytes(),
                    ),
                    &token,
                ))
                .await
                .unwrap();
        });
        if pending.len() == 8 {
            futures::future::join_all(std::mem::take(&mut pending)).await;
        }
    }
    futures::future::join_all(pending).await;
    let streamed = vec![
        pb::UploadFileRequest {
            data: Some(pb::upload_file_request::Data::Metadata(
                pb::UploadFileMetadata {
                    path: "inbox/streamed.bin".into(),
                    size_bytes: 3,
                    ..Default::default()
                },
            )),
        },
        pb::UploadFileRequest {
            data: Some(pb::upload_file_request::Data::Chunk(b"abc".to_vec())),
        },
    ];
    files(&app)
        .upload_file(bearer(tokio_stream::iter(streamed), &alice.token))
        .await
        .unwrap();
    // An upload elsewhere is no arrival for it.
    files(&app)
        .upload_small_file(bearer(small_request("elsewhere/x.txt", b"x"), &alice.token))
        .await
        .unwrap();

    let waiting = get(&app, &alice, &name).await;
    assert_eq!(waiting.next_run_time, timestamp(at(12, 0, 5)));
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 0);

    clock.set(at(12, 0, 5));
    wait_for_runs(&app, &name, 1).await;
    let run = runs(&app, &alice, &name).await.remove(0);
    assert_eq!(run.trigger.unwrap().kind, TriggerKind::Arrival as i32);
    let done = wait_for(&app, &alice, &run.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.counters.unwrap().files_moved, FILES as i64);
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 1);
    let after = get(&app, &alice, &name).await;
    assert_eq!(after.next_run_time, None);
    assert_eq!(after.run_count, 1);
    assert!(alice.root.join("elsewhere/x.txt").is_file());
}

/// Polls until nothing is left in `folder` but folders (bounded).
async fn wait_until_emptied(folder: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let files = walkdir::WalkDir::new(folder)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .count();
        if files == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still holds {files} files",
            folder.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn watched_folder(app: &TestApp, user: &User) -> String {
    create(
        app,
        user,
        pb::Automation {
            trigger: Some(Trigger::WatchedFolder(pb::WatchedFolderTrigger {
                folder_path: "share".into(),
                quiet_period: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
            })),
            operation: organize_into("", "sorted"),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .name
}

/// Polls until a rescan stored what it saw of the watched folder.
async fn wait_for_first_rescan(app: &TestApp, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut conn = app.db().await;
        let seen: Option<String> = automations::table
            .find(id_of(name))
            .select(automations::folder_fingerprint)
            .get_result(&mut conn)
            .await
            .unwrap();
        if seen.is_some() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no rescan");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_dropped_on_disk_into_a_watched_folder_is_organized() {
    // The system clock, and no periodic rescan during the test: only the
    // filesystem notification can notice the drop.
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("WORKERS", "1".into()),
            ("SCHEDULER_POLL_MS", "50".into()),
            ("JOB_POLL_MS", "100".into()),
            ("WATCH_RESCAN_SECS", "3600".into()),
        ],
        ..Default::default()
    })
    .await;
    let alice = user(&app, "watched").await;
    let name = watched_folder(&app, &alice).await;
    assert!(alice.root.join("share").is_dir(), "the folder is created");
    wait_for_first_rescan(&app, &name).await;
    assert_eq!(
        runs_in_db(&app, &name).await,
        0,
        "an empty folder fires nothing"
    );

    // Dropped by "something else" (here: the test, straight on disk).
    tree::write(&alice.root, "share/scans/page1.pdf", b"%PDF-1.4 one");
    tree::write(&alice.root, "share/page2.txt", b"two");
    wait_until_emptied(&alice.root.join("share")).await;
    let run = runs(&app, &alice, &name).await.remove(0);
    assert_eq!(run.trigger.unwrap().kind, TriggerKind::WatchedFolder as i32);
    let done = wait_for(&app, &alice, &run.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.counters.unwrap().files_moved, 2);
    // Its own moves did not fire it again.
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_changed_while_no_worker_ran_is_organized_at_start() {
    // The API alone (no worker, so no watcher) …
    let clock = TestClock::new(at(8, 0, 0));
    let app = TestApp::spawn_with(Options {
        env: clock.env(0),
        ..Default::default()
    })
    .await;
    let alice = user(&app, "restart").await;
    let name = watched_folder(&app, &alice).await;
    tree::write(&alice.root, "share/while-down.txt", b"dropped while down");
    // … then a worker process starts: its first rescan notices the change.
    let _worker = spawn_server(&app, &clock, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while get(&app, &alice, &name).await.next_run_time.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "change not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get(&app, &alice, &name).await.next_run_time,
        timestamp(at(8, 0, 1))
    );
    clock.set(at(8, 0, 1));
    wait_until_emptied(&alice.root.join("share")).await;
    assert_eq!(runs_in_db(&app, &name).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_is_recovered_and_not_fired_again() {
    let clock = TestClock::new(at(0, 30, 0));
    // The API only; runs happen in child processes that get killed.
    let app = TestApp::spawn_with(Options {
        env: clock.env(0),
        ..Default::default()
    })
    .await;
    let alice = user(&app, "killed-run").await;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(21);
    let before = build_tree(&alice.root, "inbox", 120, &mut rng);
    let name = create(
        &app,
        &alice,
        pb::Automation {
            trigger: schedule("0 * * * *", "UTC"),
            operation: organize_into("inbox", "sorted"),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .name;
    let mut first = spawn_server(&app, &clock, 40);
    clock.set(at(1, 0, 0));
    wait_for_runs(&app, &name, 1).await;
    let run = runs(&app, &alice, &name).await.remove(0);
    // SIGKILL once some files moved.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while moved_away(&alice.root, &before) < 10 {
        assert!(tokio::time::Instant::now() < deadline, "no file moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    assert_consistent_after_kill(&app, &alice.root, &run.name, &before).await;

    // Another process reclaims the run like any killed job; the tick that
    // started it does not fire again.
    let _second = spawn_server(&app, &clock, 0);
    let done = wait_for(&app, &alice, &run.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.counters.unwrap().files_moved, 120);
    let_schedulers_poll().await;
    assert_eq!(runs_in_db(&app, &name).await, 1);
    assert_eq!(
        get(&app, &alice, &name).await.next_run_time,
        timestamp(at(2, 0, 0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automations_are_private_to_their_owner() {
    let clock = TestClock::new(at(9, 0, 0));
    let app = TestApp::spawn_with(Options {
        env: clock.env(1),
        ..Default::default()
    })
    .await;
    let alice = user(&app, "owner").await;
    let mallory = user(&app, "other").await;
    let arrival = pb::Automation {
        trigger: Some(Trigger::Arrival(pb::ArrivalTrigger {
            folder_path: "inbox".into(),
            quiet_period: None,
        })),
        operation: organize_into("", "sorted"),
        ..Default::default()
    };
    let name = create(&app, &alice, arrival).await.unwrap().name;

    let client = app.automations();
    let token = &mallory.token;
    assert_code(
        client
            .clone()
            .get_automation(bearer(
                pb::GetAutomationRequest { name: name.clone() },
                token,
            ))
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .clone()
            .update_automation(bearer(
                pb::UpdateAutomationRequest {
                    automation: Some(pb::Automation {
                        name: name.clone(),
                        display_name: "mine now".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["display_name".into()],
                    }),
                },
                token,
            ))
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .clone()
            .pause_automation(bearer(
                pb::PauseAutomationRequest { name: name.clone() },
                token,
            ))
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .clone()
            .delete_automation(bearer(
                pb::DeleteAutomationRequest {
                    name: name.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await,
        Code::NotFound,
    );
    let listed = client
        .clone()
        .list_automations(bearer(pb::ListAutomationsRequest::default(), token))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.automations.is_empty());

    // Mallory's uploads into her own "inbox" are no arrival for Alice.
    files(&app)
        .upload_small_file(bearer(small_request("inbox/m.txt", b"m"), token))
        .await
        .unwrap();
    assert_eq!(get(&app, &alice, &name).await.next_run_time, None);
    // Alice's are.
    files(&app)
        .upload_small_file(bearer(small_request("inbox/a.txt", b"a"), &alice.token))
        .await
        .unwrap();
    assert_eq!(
        get(&app, &alice, &name).await.next_run_time,
        timestamp(at(9, 0, 5))
    );
    clock.set(at(9, 0, 5));
    wait_for_runs(&app, &name, 1).await;
    // Her runs are not listed to Mallory, even filtered by the name.
    assert!(runs(&app, &mallory, &name).await.is_empty());
    assert_eq!(runs(&app, &alice, &name).await.len(), 1);
    assert!(mallory.root.join("inbox/m.txt").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_triggers_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "bad-triggers").await;
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), alice.root.join("link")).unwrap();
    std::fs::create_dir_all(alice.root.join("share")).unwrap();
    let arrival = |folder: &str| {
        Some(Trigger::Arrival(pb::ArrivalTrigger {
            folder_path: folder.into(),
            quiet_period: None,
        }))
    };
    let watched = |folder: &str, quiet: i64| {
        Some(Trigger::WatchedFolder(pb::WatchedFolderTrigger {
            folder_path: folder.into(),
            quiet_period: Some(prost_types::Duration {
                seconds: quiet,
                nanos: 0,
            }),
        }))
    };
    let cases: Vec<(Option<Trigger>, Option<pb::Operation>, &str)> = vec![
        (None, organize_into("", "s"), "automation.trigger"),
        (
            schedule("", "UTC"),
            organize_into("", "s"),
            "automation.schedule.cron",
        ),
        (
            schedule("* * * *", "UTC"),
            organize_into("", "s"),
            "automation.schedule.cron",
        ),
        (
            schedule("0 25 * * *", "UTC"),
            organize_into("", "s"),
            "automation.schedule.cron",
        ),
        (
            schedule("0 0 31 2 *", "UTC"),
            organize_into("", "s"),
            "automation.schedule.cron",
        ),
        (
            schedule(&"1,".repeat(300), "UTC"),
            organize_into("", "s"),
            "automation.schedule.cron",
        ),
        (
            schedule("0 3 * * *", "Mars/Olympus"),
            organize_into("", "s"),
            "automation.schedule.time_zone",
        ),
        (
            schedule("0 3 * * *", "UTC+1"),
            organize_into("", "s"),
            "automation.schedule.time_zone",
        ),
        (
            arrival("../up"),
            organize_into("", "s"),
            "automation.arrival.folder_path",
        ),
        (
            arrival("/etc"),
            organize_into("", "s"),
            "automation.arrival.folder_path",
        ),
        (
            arrival("link/in"),
            organize_into("", "s"),
            "automation.arrival.folder_path",
        ),
        (
            watched("a/../../b", 5),
            organize_into("", "s"),
            "automation.watched_folder.folder_path",
        ),
        (
            watched("link", 5),
            organize_into("", "s"),
            "automation.watched_folder.folder_path",
        ),
        (
            watched("share", 0),
            organize_into("", "s"),
            "automation.watched_folder.quiet_period",
        ),
        (
            watched("share", 5),
            organize_into("", "share/sorted"),
            "automation.operation.destination_path",
        ),
        (
            watched("share", 5),
            organize_into("", ""),
            "automation.operation.destination_path",
        ),
        (
            schedule("0 3 * * *", ""),
            organize_into("../x", "s"),
            "automation.operation.source_path",
        ),
        (schedule("0 3 * * *", ""), None, "automation.operation"),
        (
            schedule("0 3 * * *", ""),
            Some(pb::Operation {
                layout_template: "{nope}/{name}".into(),
                ..Default::default()
            }),
            "automation.operation.layout_template",
        ),
    ];
    for (trigger, operation, field) in cases {
        let status = assert_code(
            create(
                &app,
                &alice,
                pb::Automation {
                    trigger: trigger.clone(),
                    operation,
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), field, "{trigger:?}: {status:?}");
    }
    // Nothing was created, and nothing outside the root.
    let listed = app
        .automations()
        .list_automations(bearer(pb::ListAutomationsRequest::default(), &alice.token))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.automations.is_empty());
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());

    // An update is checked like a create, and the etag guards it.
    let created = create(
        &app,
        &alice,
        pb::Automation {
            trigger: schedule("0 3 * * *", ""),
            operation: organize_into("", "s"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let update = |automation: pb::Automation, path: &str| pb::UpdateAutomationRequest {
        automation: Some(automation),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![path.into()],
        }),
    };
    let status = assert_code(
        app.automations()
            .update_automation(bearer(
                update(
                    pb::Automation {
                        name: created.name.clone(),
                        trigger: schedule("0 3 * * *", "Nowhere/Land"),
                        ..Default::default()
                    },
                    "schedule",
                ),
                &alice.token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&status), "automation.schedule.time_zone");
    let renamed = app
        .automations()
        .update_automation(bearer(
            update(
                pb::Automation {
                    name: created.name.clone(),
                    display_name: "renamed".into(),
                    etag: created.etag.clone(),
                    ..Default::default()
                },
                "display_name",
            ),
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.display_name, "renamed");
    assert_eq!(renamed.trigger, created.trigger);
    // An update carrying `etag`, as alice.
    let rename_with = |etag: String| {
        let mut client = app.automations();
        let request = bearer(
            update(
                pb::Automation {
                    name: created.name.clone(),
                    display_name: "stale".into(),
                    etag,
                    ..Default::default()
                },
                "display_name",
            ),
            &alice.token,
        );
        async move { client.update_automation(request).await }
    };
    let stale = assert_code(rename_with(created.etag.clone()).await, Code::Aborted);
    assert_eq!(reason(&stale), "ETAG_MISMATCH");
    // The etag is parsed like a rule's: the same version unquoted is the
    // same (stale) etag, and a malformed one names the field.
    let unquoted = assert_code(
        rename_with(created.etag.trim_matches('"').to_string()).await,
        Code::Aborted,
    );
    assert_eq!(reason(&unquoted), "ETAG_MISMATCH");
    let garbage = assert_code(
        rename_with("not-an-etag".into()).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&garbage), "automation.etag");
    // A stale etag deletes nothing; the current one deletes.
    let delete = |etag: &str| pb::DeleteAutomationRequest {
        name: created.name.clone(),
        etag: etag.into(),
    };
    let stale_delete = assert_code(
        app.automations()
            .delete_automation(bearer(delete(&created.etag), &alice.token))
            .await,
        Code::Aborted,
    );
    assert_eq!(reason(&stale_delete), "ETAG_MISMATCH");
    app.automations()
        .delete_automation(bearer(delete(&renamed.etag), &alice.token))
        .await
        .unwrap();
    assert_code(
        app.automations()
            .delete_automation(bearer(delete(&renamed.etag), &alice.token))
            .await,
        Code::NotFound,
    );
}

/// Polls the automation until `check` holds for it (bounded).
async fn wait_for_automation(
    app: &TestApp,
    user: &User,
    name: &str,
    what: &str,
    check: impl Fn(&pb::Automation) -> bool,
) -> pb::Automation {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = get(app, user, name).await;
        if check(&a) {
            return a;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A run that cannot start (its folder was removed) and a run whose
/// operation fails (a stored rule no longer compiles) both show on the
/// automation as `last_error`; the next run that succeeds clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_shows_as_the_automations_last_error_until_one_succeeds() {
    let (clock, app, ann, automation) = every_five_minutes("automation-errors").await;
    let name = automation.name.clone();
    assert_eq!(automation.last_error, "");

    // The folder is gone at the tick: no operation, the reason shown.
    std::fs::remove_dir_all(ann.root.join("inbox")).unwrap();
    clock.set(at(0, 5, 0));
    let failed = wait_for_automation(&app, &ann, &name, "an error for the missing folder", |a| {
        !a.last_error.is_empty()
    })
    .await;
    assert!(
        failed.last_error.contains("could not start") && failed.last_error.contains("source_path"),
        "{failed:?}"
    );
    assert_eq!(runs_in_db(&app, &name).await, 0);
    assert_eq!(failed.next_run_time, timestamp(at(0, 10, 0)));

    // The folder is back but a stored rule no longer compiles: the run
    // starts and its operation fails.
    tree::write(&ann.root, "inbox/a.txt", b"a");
    let made = crate::rules::create_rule(
        &app,
        &ann,
        crate::rules::rule(
            "soon broken",
            vec![pb::rule_condition::Condition::NameRegex("a".into())],
            crate::rules::move_to("x/{name}"),
        ),
    )
    .await
    .unwrap();
    {
        let mut conn = app.db().await;
        diesel::sql_query(
            "UPDATE rules SET definition = jsonb_set(definition, '{conditions,0,pattern}', '\"(unclosed\"') WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(id_of(&made.name))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    clock.set(at(0, 10, 0));
    wait_for_runs(&app, &name, 1).await;
    let run = runs(&app, &ann, &name).await.remove(0);
    wait_for(&app, &ann, &run.name, &[OperationState::Failed]).await;
    let failed = wait_for_automation(&app, &ann, &name, "the failed operation", |a| {
        a.last_error.contains(&id_of(&run.name).to_string())
    })
    .await;
    assert!(
        failed.last_error.contains("rules cannot be applied"),
        "{failed:?}"
    );
    assert_eq!(failed.last_operation, run.name);

    // Fixed: the next run succeeds and clears the error.
    crate::rules::rules(&app)
        .delete_rule(bearer(
            pb::DeleteRuleRequest {
                name: made.name.clone(),
                etag: String::new(),
            },
            &ann.token,
        ))
        .await
        .unwrap();
    clock.set(at(0, 15, 0));
    wait_for_runs(&app, &name, 2).await;
    let run = runs(&app, &ann, &name).await.remove(0);
    wait_for(&app, &ann, &run.name, &[OperationState::Succeeded]).await;
    wait_for_automation(&app, &ann, &name, "the error cleared", |a| {
        a.last_error.is_empty()
    })
    .await;
    assert!(ann.root.join("sorted").is_dir());
}

/// An arrival automation on "inbox" with a quiet period of 5 s.
fn arrival_in(folder: &str) -> pb::Automation {
    pb::Automation {
        trigger: Some(Trigger::Arrival(pb::ArrivalTrigger {
            folder_path: folder.into(),
            quiet_period: Some(prost_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
        })),
        operation: organize_into("", "sorted"),
        ..Default::default()
    }
}

/// Uploads are no arrival for a user without arrival automations, and
/// what marks one follows every change of the user's automations at once
/// (the arrival folders are cached: creating, moving, pausing, resuming
/// and deleting must each be seen by the next upload). A file restored
/// from the trash into a watched folder is an arrival like an upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_follow_every_change_of_the_automations_and_restores_arrive() {
    let clock = TestClock::new(at(9, 0, 0));
    let app = TestApp::spawn_with(Options {
        env: clock.env(0),
        ..Default::default()
    })
    .await;
    let ada = user(&app, "arrivals-cached").await;
    let upload = |path: &str| {
        let (mut client, request) = (
            files(&app),
            bearer(small_request(path, path.as_bytes()), &ada.token),
        );
        async move { client.upload_small_file(request).await.unwrap() }
    };
    // No automation yet: the uploads fill the cache with "none".
    upload("inbox/before.txt").await;
    upload("inbox/before2.txt").await;
    let name = create(&app, &ada, arrival_in("inbox")).await.unwrap().name;
    assert_eq!(get(&app, &ada, &name).await.next_run_time, None);
    // Created: the next upload into inbox is an arrival.
    upload("inbox/a.txt").await;
    assert_eq!(
        get(&app, &ada, &name).await.next_run_time,
        timestamp(at(9, 0, 5))
    );
    // Moved to another folder: inbox is no longer watched, "drop" is.
    let moved = app
        .automations()
        .update_automation(bearer(
            pb::UpdateAutomationRequest {
                automation: Some(pb::Automation {
                    name: name.clone(),
                    ..arrival_in("drop")
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["arrival".into()],
                }),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    clock.set(at(9, 0, 10));
    upload("inbox/b.txt").await;
    assert_eq!(
        get(&app, &ada, &name).await.next_run_time,
        moved.next_run_time
    );
    upload("drop/b.txt").await;
    assert_eq!(
        get(&app, &ada, &name).await.next_run_time,
        timestamp(at(9, 0, 15))
    );
    // Paused: nothing is marked; resumed: marked again.
    let pause = |paused: bool| {
        let mut client = app.automations();
        let (token, name) = (ada.token.clone(), name.clone());
        async move {
            if paused {
                client
                    .pause_automation(bearer(pb::PauseAutomationRequest { name }, &token))
                    .await
                    .unwrap();
            } else {
                client
                    .resume_automation(bearer(pb::ResumeAutomationRequest { name }, &token))
                    .await
                    .unwrap();
            }
        }
    };
    pause(true).await;
    clock.set(at(9, 0, 20));
    upload("drop/c.txt").await;
    assert_eq!(get(&app, &ada, &name).await.next_run_time, None);
    // (All within ten quiet periods of the first pending arrival, the cap.)
    clock.set(at(9, 0, 25));
    pause(false).await;
    upload("drop/d.txt").await;
    assert_eq!(
        get(&app, &ada, &name).await.next_run_time,
        timestamp(at(9, 0, 30))
    );

    // A restore into the watched folder is an arrival; one elsewhere is not.
    upload("elsewhere/r.txt").await;
    upload("elsewhere/s.txt").await;
    let r = delete(&app, &ada, "elsewhere/r.txt").await.unwrap();
    let s = delete(&app, &ada, "elsewhere/s.txt").await.unwrap();
    clock.set(at(9, 0, 35));
    let restore = |item: &pb::TrashItem, path: &str| {
        let mut client = files(&app);
        let request = bearer(
            pb::RestoreFileRequest {
                name: item.name.clone(),
                path: path.into(),
                ..Default::default()
            },
            &ada.token,
        );
        async move { client.restore_file(request).await.unwrap() }
    };
    restore(&s, "").await;
    assert_eq!(
        get(&app, &ada, &name).await.next_run_time,
        timestamp(at(9, 0, 30))
    );
    restore(&r, "drop/r.txt").await;
    assert!(ada.root.join("drop/r.txt").is_file());
    assert_eq!(
        get(&app, &ada, &name).await.next_run_time,
        timestamp(at(9, 0, 40))
    );

    // Deleted: uploads are no arrivals (and do not fail).
    app.automations()
        .delete_automation(bearer(
            pb::DeleteAutomationRequest {
                name: name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    upload("drop/e.txt").await;
    assert!(ada.root.join("drop/e.txt").is_file());
}
