//! Dependency outages: Postgres made unreachable (the test's own TcpProxy in
//! front of the shared server, which is never stopped) during an operation
//! and API traffic, and a private Redis killed and restarted under load.

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use fileorganizer::pb::fileorganizer::v1::{self as pb, HealthState, OperationState};
use rand::SeedableRng;
use tonic::{Code, transport::Channel};

use crate::{
    common::{KillOnDrop, Options, TestApp, bearer, free_port, tree},
    kills::{Files, assert_records_match_disk, build_tree, moved_away, operation_id, row_state},
    operations::{User, create, organize, plan, records, user, wait_for},
    soak::{is_rate_limited, mixed_read},
};

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy()
}

/// A server with one in-process worker whose database traffic goes through
/// the test's proxy, and a user with `files` files under `in/` being
/// organized at `moves_per_second`; returns once `started` files moved.
async fn organizing_behind_proxy(
    moves_per_second: u32,
    stale_ms: u32,
    files: usize,
    started: usize,
) -> (TestApp, User, Files, pb::Operation) {
    let app = TestApp::spawn_with(Options {
        db_proxy: true,
        env: vec![
            ("WORKERS", "1".into()),
            ("MOVES_PER_SECOND", moves_per_second.to_string()),
            ("JOB_HEARTBEAT_MS", "200".into()),
            ("JOB_STALE_AFTER_MS", stale_ms.to_string()),
            ("JOB_POLL_MS", "100".into()),
        ],
    })
    .await;
    let u = user(&app, "outage").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(files as u64);
    let before = build_tree(&u.root, "in", files, &mut rng);
    let op = create(&app, &u, organize("in")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while moved_away(&u.root, &before) < started {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the organize never started moving"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (app, u, before, op)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_fast_and_loses_nothing() {
    // Cut the database once the moves are under way.
    let (app, u, before, op) = organizing_behind_proxy(100, 1500, 150, 20).await;
    let proxy = app.db_proxy.as_ref().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    proxy.set_down();

    // Every read of the mix (and a write) fails fast with UNAVAILABLE.
    let ch = channel(&app);
    let mut calls = Vec::new();
    for i in 0..6 {
        let (ch, token, name) = (ch.clone(), u.token.clone(), op.name.clone());
        calls.push(tokio::spawn(async move {
            (i, mixed_read(&ch, &token, &name, i).await)
        }));
    }
    let create_during = app
        .operations()
        .create_operation(bearer(
            pb::CreateOperationRequest {
                operation: Some(organize("in")),
                request_id: String::new(),
            },
            &u.token,
        ))
        .await;
    assert_eq!(
        create_during.map(drop).unwrap_err().code(),
        Code::Unavailable
    );
    for call in calls {
        let (i, result) = call.await.unwrap();
        let status = result.expect_err("a call succeeded without its database");
        assert_eq!(status.code(), Code::Unavailable, "mix {i}: {status:?}");
    }
    assert!(
        app.wait_for_health(NOT_SERVING, Duration::from_secs(15))
            .await,
        "health stayed SERVING without the database"
    );
    // Keep the database away until the worker has moved every file and
    // then tried (and failed) to record the outcome: the pool gives up on
    // a connection after 5 s.
    while moved_away(&u.root, &before) < 150 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the moves stopped during the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    proxy.set_up();
    assert!(
        app.wait_for_health(SERVING, Duration::from_secs(15)).await,
        "health did not recover"
    );

    // The job resumes: reconciled against the disk, nothing lost.
    let done = wait_for(
        &app,
        &u,
        &op.name,
        &[
            OperationState::Succeeded,
            OperationState::Failed,
            OperationState::Cancelled,
        ],
    )
    .await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    assert_records_match_disk(
        &app,
        &u.root,
        &op.name,
        &before,
        &["completed", "duplicate"],
    )
    .await;
    assert_eq!(done.counters.unwrap().files_moved, 150);
}

/// A private redis-server on `port` (no persistence), ready to serve.
pub fn start_redis(port: u16) -> KillOnDrop {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start redis-server (apt-get install redis-server)");
    let child = KillOnDrop(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not start on port {port}");
}

async fn overall_status(app: &TestApp, token: &str) -> i32 {
    app.system()
        .get_status(bearer(pb::GetStatusRequest {}, token))
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn wait_for_status(app: &TestApp, token: &str, want: HealthState) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while overall_status(app, token).await != want as i32 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "GetStatus never became {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load() {
    let port = free_port();
    let mut redis = start_redis(port);
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("REDIS_URL", format!("redis://127.0.0.1:{port}")),
            ("REDIS_KEY_PREFIX", "fileorg-outage:".into()),
        ],
        ..Default::default()
    })
    .await;
    let u = user(&app, "redisdown").await;
    for i in 0..30 {
        tree::write(
            &u.root,
            &format!("in/file{i}.txt"),
            format!("{i}").as_bytes(),
        );
    }
    let op = create(&app, &u, organize("in")).await;
    wait_for(&app, &u, &op.name, &[OperationState::Succeeded]).await;
    wait_for_status(&app, &u.token, HealthState::Healthy).await;

    // Twenty clients of mixed reads until told to stop (bounded in count).
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors: Arc<Mutex<BTreeMap<String, u64>>> = Default::default();
    let ch = channel(&app);
    let mut clients = Vec::new();
    for c in 0..20u64 {
        let (stop, ok, errors, ch) = (stop.clone(), ok.clone(), errors.clone(), ch.clone());
        let (token, name) = (u.token.clone(), op.name.clone());
        clients.push(tokio::spawn(async move {
            for i in c..c + 50_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match mixed_read(&ch, &token, &name, i).await {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(s) if is_rate_limited(&s) => {}
                    Err(s) => {
                        *errors
                            .lock()
                            .unwrap()
                            .entry(format!("mix {} {:?}: {}", i % 6, s.code(), s.message()))
                            .or_default() += 1;
                    }
                }
            }
        }));
    }
    let served = |ok: &AtomicU64| ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_kill = served(&ok);

    redis.kill(); // SIGKILL: connections die without a goodbye
    wait_for_status(&app, &u.token, HealthState::Degraded).await;
    // Limits still apply, from the in-process counters.
    let answer = app
        .auth()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &u.token))
        .await
        .unwrap();
    let remaining = answer.metadata().get("x-ratelimit-remaining");
    assert!(remaining.is_some(), "no rate-limit headers without Redis");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during_outage = served(&ok) - before_kill;

    let mut redis = start_redis(port);
    wait_for_status(&app, &u.token, HealthState::Healthy).await;
    let recovered_at = served(&ok);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let after = served(&ok) - recovered_at;
    redis.kill();
    println!(
        "redis outage: {before_kill} calls before the kill, {during_outage} while down, \
         {after} after recovery; errors {:?}",
        errors.lock().unwrap()
    );
    assert!(
        errors.lock().unwrap().is_empty(),
        "calls failed while Redis was down or coming back: {:?}",
        errors.lock().unwrap()
    );
    assert!(before_kill > 0 && during_outage > 0 && after > 0);
}

/// A partial partition: the worker running a job loses the database (its
/// proxy is cut) but not the disk; its claim goes stale and a second worker
/// process, which still reaches the database, reclaims the job and finishes
/// it while the first is still moving files. When the first worker reaches
/// the database again it must not record over what the new holder found:
/// only the claim's holder records (fencing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_claim_records_nothing() {
    let (app, u, before, op) = organizing_behind_proxy(40, 1000, 200, 10).await;
    let proxy = app.db_proxy.as_ref().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    proxy.set_down();
    // The second worker reaches the database directly and moves unpaced.
    let mut second = KillOnDrop(
        app.fileorg_command(&["worker", "--count", "1"])
            .env("JOB_HEARTBEAT_MS", "200")
            .env("JOB_STALE_AFTER_MS", "1000")
            .env("JOB_POLL_MS", "100")
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fileorg worker"),
    );
    // The API is behind the cut proxy too: watch the row directly.
    let mut conn = app.db().await;
    let id = operation_id(&op.name);
    while row_state(&mut conn, id).await.0 != "succeeded" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second worker did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = records(&app, &op.name).await;
    // The first worker is still in its batch; let it reach the database.
    proxy.set_up();
    tokio::time::sleep(Duration::from_secs(8)).await;
    second.kill();
    assert_records_match_disk(
        &app,
        &u.root,
        &op.name,
        &before,
        &["completed", "duplicate"],
    )
    .await;
    assert_eq!(row_state(&mut conn, id).await.0, "succeeded");
    let after = records(&app, &op.name).await;
    assert_eq!(
        after.iter().map(|r| &r.status).collect::<Vec<_>>(),
        done.iter().map(|r| &r.status).collect::<Vec<_>>(),
        "records changed after the job succeeded"
    );
    // Nor do the counters of the finished operation go back.
    let op = wait_for(&app, &u, &op.name, &[OperationState::Succeeded]).await;
    assert_eq!(op.counters.unwrap().files_moved, 200);
}

/// A worker whose job failed after another worker took the job over (its
/// claim went stale) must not mark the new holder's job failed: only the
/// claim's holder fails a job (`db::operations::fail`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_claims_holder_can_fail_a_job() {
    use diesel_async::RunQueryDsl;
    let app = TestApp::spawn().await;
    let u = user(&app, "fail-holder").await;
    tree::write(&u.root, "inbox/a.txt", b"a");
    let op = plan(&app, &u, organize("inbox")).await;
    let id = operation_id(&op.name);
    let mut conn = app.db().await;
    // The worker that planned it lets go of the row just after the state.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        use diesel::QueryDsl;
        use fileorganizer::schema::operations;
        let holder: Option<String> = operations::table
            .find(id)
            .select(operations::worker_id)
            .first(&mut conn)
            .await
            .unwrap();
        if holder.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still held by {holder:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // As if worker B had reclaimed the job from worker A and were running it.
    diesel::sql_query(
        "UPDATE operations SET state = 'running', worker_id = 'worker-B' WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(&mut conn)
    .await
    .unwrap();
    let by_a = fileorganizer::db::operations::fail(&mut conn, id, "worker-A", "A's error")
        .await
        .unwrap();
    assert!(by_a.is_none(), "{by_a:?}");
    assert_eq!(row_state(&mut conn, id).await.0, "running");
    let by_b = fileorganizer::db::operations::fail(&mut conn, id, "worker-B", "B's error")
        .await
        .unwrap()
        .expect("the holder fails its job");
    assert_eq!(by_b.state, fileorganizer::domain::OperationState::Failed);
    assert_eq!(by_b.error.as_deref(), Some("B's error"));
    assert_eq!(by_b.worker_id, None);
}
