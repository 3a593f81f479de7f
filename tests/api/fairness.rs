//! The fair job queue (issue 24 item 4; `db::operations::claim`): users take
//! turns, so one user's many queued operations delay another user's by at
//! most one of them, and a job that already started goes first.
//!
//! Deterministic: every operation is queued while no worker runs (the test
//! server has WORKERS=0), then one `fileorg worker` process runs them one by
//! one, so the order they start in is the claim's order alone; the
//! assertions are on the operations' start and end times as the API gives
//! them, never on durations.

use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState};

use crate::{
    common::{KillOnDrop, Options, TestApp, tree},
    operations::{User, apply, create, organize, plan, user, wait_for},
    recovery::spawn_worker,
};

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await
}

/// Queues an organize of a folder of its own (`q{n}`, one file) for `user`.
async fn queue(app: &TestApp, user: &User, n: usize) -> pb::Operation {
    let folder = format!("q{n}");
    tree::write(
        &user.root,
        &format!("{folder}/file{n}.txt"),
        format!("{n}").as_bytes(),
    );
    let op = create(app, user, organize(&folder)).await;
    assert_eq!(op.state, OperationState::Queued as i32, "{op:?}");
    op
}

fn worker(app: &TestApp) -> KillOnDrop {
    KillOnDrop(spawn_worker(app, &[]))
}

fn nanos(t: Option<prost_types::Timestamp>) -> i128 {
    let t = t.expect("timestamp set");
    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
}

/// Waits until every operation succeeded; returns their names in the order
/// they started.
async fn start_order(app: &TestApp, queued: &[(&User, pb::Operation)]) -> Vec<String> {
    let mut ran = Vec::new();
    for (user, op) in queued {
        let done = wait_for(app, user, &op.name, &[OperationState::Succeeded]).await;
        ran.push((nanos(done.start_time), op.name.clone()));
    }
    ran.sort();
    ran.into_iter().map(|(_, name)| name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_many_operations_delay_anothers_by_one_at_most() {
    let app = app().await;
    let ann = user(&app, "fair-many").await;
    let bob = user(&app, "fair-one").await;
    let mut queued = Vec::new();
    for n in 0..4 {
        queued.push((&ann, queue(&app, &ann, n).await));
    }
    queued.push((&bob, queue(&app, &bob, 0).await));
    let _worker = worker(&app);
    let order = start_order(&app, &queued).await;
    // First come, first served ran all four of Ann's before Bob's one.
    let name = |i: usize| queued[i].1.name.clone();
    assert_eq!(
        order,
        [name(0), name(4), name(1), name(2), name(3)],
        "Bob's operation waited behind more than one of Ann's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_take_turns() {
    let app = app().await;
    let ann = user(&app, "turns-a").await;
    let bob = user(&app, "turns-b").await;
    let cal = user(&app, "turns-c").await;
    // Queued in this order: Ann's three, Bob's two, Cal's one.
    let mut queued = Vec::new();
    for (who, count) in [(&ann, 3), (&bob, 2), (&cal, 1)] {
        for n in 0..count {
            queued.push((who, queue(&app, who, n).await));
        }
    }
    let _worker = worker(&app);
    let order = start_order(&app, &queued).await;
    let name = |i: usize| queued[i].1.name.clone();
    // Round robin: each user's oldest first, users in the order they first
    // queued (none had started a job before), then around again. No user's
    // operation waited behind more than one of another's.
    assert_eq!(
        order,
        [name(0), name(3), name(5), name(1), name(4), name(2)]
    );
}

/// A job that already started goes before every job that has not: the job
/// of a worker that died (reclaimed as soon as a worker looks, not after the
/// queue) and an apply queued after its dry run (it continues the turn its
/// user had).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_job_goes_before_new_ones() {
    let app = app().await;
    let ann = user(&app, "started-apply").await;
    let dan = user(&app, "started-dead").await;
    let bob = user(&app, "started-new-b").await;
    let cal = user(&app, "started-new-c").await;

    // Ann's dry run is planned by a worker that then goes away.
    tree::write(&ann.root, "inbox/a.txt", b"a");
    let mut first = worker(&app);
    let planned = plan(&app, &ann, organize("inbox")).await;
    // PLANNED shows before the worker lets go of the job: killed in between,
    // the job stays held until its heartbeat is stale (JOB_STALE_AFTER_MS),
    // the recovery path that Dan's job below stands for. Here the
    // worker goes away after letting go, as it does when it is stopped.
    let planned_id = uuid::Uuid::parse_str(planned.name.trim_start_matches("operations/")).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while crate::operations::holder(&mut app.db().await, planned_id)
        .await
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never let go of the planned job"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first.kill();

    // Dan's job was claimed by a worker that died at once: the row as the
    // claim leaves it, its heartbeat long stale.
    let dead = queue(&app, &dan, 0).await;
    let id = uuid::Uuid::parse_str(dead.name.trim_start_matches("operations/")).unwrap();
    let mut conn = app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(
            "UPDATE operations SET state = 'running', worker_id = 'a-dead-worker',
               heartbeat_at = now() - interval '1 hour', started_at = now() WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(id),
        &mut conn,
    )
    .await
    .unwrap();

    // Then new jobs of two users who never ran one (first in the turn order
    // among jobs that have not started), and Ann's apply, queued last.
    let new_b = queue(&app, &bob, 0).await;
    let new_c = queue(&app, &cal, 0).await;
    apply(&app, &ann, &planned.name).await;

    let _worker = worker(&app);
    let succeeded = [OperationState::Succeeded];
    let applied = wait_for(&app, &ann, &planned.name, &succeeded).await;
    let reclaimed = wait_for(&app, &dan, &dead.name, &succeeded).await;
    let b = wait_for(&app, &bob, &new_b.name, &succeeded).await;
    let c = wait_for(&app, &cal, &new_c.name, &succeeded).await;
    assert_eq!(applied.counters.unwrap().files_moved, 1);
    assert_eq!(reclaimed.counters.unwrap().files_moved, 1);
    let first_new = nanos(b.start_time).min(nanos(c.start_time));
    assert!(
        nanos(applied.end_time) < first_new,
        "the apply waited behind a new job"
    );
    assert!(
        nanos(reclaimed.end_time) < first_new,
        "the dead worker's job waited behind a new job"
    );
    // The started jobs kept their first start time; the new ones took
    // their turns in the order they were queued.
    assert_eq!(applied.start_time, planned.start_time);
    assert!(nanos(b.start_time) < nanos(c.start_time));
}
