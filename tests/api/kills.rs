//! SIGKILL at seeded-random points across organize, apply and undo.
//!
//! Each cycle gives a fresh user a small tree (50–200 files, some of them
//! byte-identical) and runs one kind of job in a child `fileorg serve`
//! process (the in-process test server only answers the API; WORKERS=0):
//!
//! - organize: an ORGANIZE job, killed while the row says it is in a
//!   randomly chosen phase (scan … journal) or after N files moved;
//! - apply: a dry run is planned, ApplyOperation queues it, the process is
//!   killed after N files moved;
//! - undo: an organize finishes, UndoOperation queues the undo, the process
//!   is killed after N files moved back.
//!
//! Moves are paced (MOVES_PER_SECOND) so a kill lands among them; "moved"
//! is observed on the disk itself, which is what a kill must not corrupt.
//! Each cycle kills 1–3 processes in a row; after every kill a new process
//! on the same database and storage reclaims the job once its heartbeat is
//! stale. Checked after each kill: every journaled file is at exactly one of
//! its two paths with its content, and the multiset of contents is
//! unchanged. Checked at the end of each cycle: the records agree exactly
//! with the disk (each record's path holds its file, nothing else moved) and
//! every record has the final status.
//!
//! The schedule comes from a seed, printed at the start; `FAULT_SEED=<n>`
//! replays it. Kills are counted by the phase the row was in when the
//! process died; only kills before the job's end count towards the minimum
//! (`FAULT_KILLS`, default 24).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Stdio,
    time::Duration,
};

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{
    common::{
        KillOnDrop, Options, TestApp, free_port,
        tree::{self, Entry},
    },
    operations::{User, apply, create, organize, records, undo, user, wait_for},
};

/// Starts `fileorg serve` (API and one worker) on the app's database and
/// storage, with a fast heartbeat so a killed process is replaced quickly.
pub fn spawn_server(app: &TestApp, moves_per_second: u32) -> KillOnDrop {
    let child = app
        .fileorg_command(&["serve"])
        .env("GRPC_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("WORKERS", "1")
        .env("JOB_HEARTBEAT_MS", "200")
        .env("JOB_STALE_AFTER_MS", "1000")
        .env("JOB_POLL_MS", "100")
        .env("MOVES_PER_SECOND", moves_per_second.to_string())
        // The children run without Redis on purpose; say so only once.
        .env("RUST_LOG", "warn,fileorganizer::state=error")
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fileorg serve");
    KillOnDrop(child)
}

/// A file tree: path (relative to the user's root) → content hash.
pub type Files = BTreeMap<String, Entry>;

/// Paths of the regular files under `root` (no hashing: cheap to poll).
fn file_paths(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Writes `count` files under `root/<dir>`, every seventh a copy of an
/// earlier one (duplicates), and returns the snapshot.
pub fn build_tree(root: &Path, dir: &str, count: usize, rng: &mut StdRng) -> Files {
    const EXTENSIONS: [&str; 6] = ["jpg", "pdf", "mp3", "txt", "zip", "csv"];
    let mut bodies: Vec<String> = Vec::with_capacity(count);
    for i in 0..count {
        let (body, ext) = if i % 7 == 6 {
            (bodies[i - 3].clone(), EXTENSIONS[(i - 3) % 6])
        } else {
            let padding = "x".repeat(rng.random_range(0..4096));
            (format!("content {i}{padding}"), EXTENSIONS[i % 6])
        };
        tree::write(
            root,
            &format!("{dir}/d{:02}/file{i}.{ext}", i % 9),
            body.as_bytes(),
        );
        bodies.push(body);
    }
    tree::snapshot(root)
}

/// How many files are no longer at a path of `before` (moved by organize).
pub fn moved_away(root: &Path, before: &Files) -> usize {
    file_paths(root)
        .iter()
        .filter(|p| !before.contains_key(*p))
        .count()
}

/// How many files are back at a path of `before` (moved back by undo).
fn moved_back(root: &Path, before: &Files) -> usize {
    file_paths(root)
        .iter()
        .filter(|p| before.contains_key(*p))
        .count()
}

/// After a kill (records may lag behind the disk): every journaled file is
/// at exactly one of its two paths, with its content; no other path
/// appeared; the multiset of contents is unchanged.
pub async fn assert_consistent_after_kill(app: &TestApp, root: &Path, name: &str, before: &Files) {
    let now = tree::snapshot(root);
    assert_eq!(
        sorted_contents(&now),
        sorted_contents(before),
        "content lost or duplicated after a kill"
    );
    let mut known: BTreeSet<&str> = before.keys().map(String::as_str).collect();
    let recs = records(app, name).await;
    for r in &recs {
        let content = &before[&r.original_path];
        let at_old = now.get(&r.original_path) == Some(content);
        let at_new = r
            .new_path
            .as_ref()
            .is_some_and(|p| now.get(p) == Some(content));
        assert!(
            at_old ^ at_new,
            "{r:?}: at original {at_old}, at new {at_new}"
        );
        // The journal never claims more than the disk: a record says
        // undone only once its file is back.
        assert!(
            r.status.as_str() != "undone" || at_old,
            "{r:?} is recorded undone but is not at its original path"
        );
        if let Some(p) = &r.new_path {
            known.insert(p);
        }
    }
    for path in now.keys() {
        assert!(known.contains(path.as_str()), "unexpected file {path}");
    }
}

/// At the end: the disk is exactly `before` with each moved record's file
/// at its new path, and every record has one of `statuses`.
pub async fn assert_records_match_disk(
    app: &TestApp,
    root: &Path,
    name: &str,
    before: &Files,
    statuses: &[&str],
) {
    let recs = records(app, name).await;
    assert_eq!(recs.len(), before.len(), "not every file was journaled");
    let mut expected = before.clone();
    for r in &recs {
        assert!(statuses.contains(&r.status.as_str()), "{r:?}");
        if matches!(r.status.as_str(), "completed" | "duplicate") {
            let content = expected.remove(&r.original_path).unwrap();
            let new_path = r.new_path.clone().expect("a moved record has a new path");
            assert!(
                expected.insert(new_path, content).is_none(),
                "two records claim one path: {r:?}"
            );
        }
    }
    let now = tree::snapshot(root);
    if now != expected {
        let missing: Vec<_> = expected.keys().filter(|k| !now.contains_key(*k)).collect();
        let extra: Vec<_> = now.keys().filter(|k| !expected.contains_key(*k)).collect();
        panic!("records and disk disagree: missing {missing:?}, unexpected {extra:?}");
    }
}

fn sorted_contents(files: &Files) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = files.values().collect();
    v.sort();
    v
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Organize,
    Apply,
    Undo,
}

/// When to pull the trigger.
#[derive(Debug)]
enum Trigger {
    /// As soon as the row says this phase (or a later one).
    Phase(&'static str),
    /// Once this many files have moved (on disk).
    Moved(usize),
}

const PLAN_PHASES: [&str; 5] = ["scan", "categorize", "hash", "plan", "journal"];

pub async fn row_state(conn: &mut AsyncPgConnection, id: uuid::Uuid) -> (String, Option<String>) {
    use fileorganizer::schema::operations;
    operations::table
        .find(id)
        .select((operations::state, operations::phase))
        .first(conn)
        .await
        .unwrap()
}

pub fn operation_id(name: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(name.trim_start_matches("operations/")).unwrap()
}

/// Waits for `trigger` (bounded), SIGKILLs the child and returns the row's
/// (state, phase) at that moment.
async fn kill_on(
    child: &mut KillOnDrop,
    trigger: &Trigger,
    conn: &mut AsyncPgConnection,
    id: uuid::Uuid,
    moved: &dyn Fn() -> usize,
) -> (String, Option<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (state, phase) = row_state(conn, id).await;
        let finished = matches!(
            state.as_str(),
            "succeeded" | "failed" | "cancelled" | "planned"
        );
        let fire = finished
            || tokio::time::Instant::now() > deadline
            || match trigger {
                Trigger::Phase(target) => {
                    let rank = |p: &str| PLAN_PHASES.iter().position(|x| *x == p);
                    state == "applying"
                        || phase.as_deref().and_then(rank) >= rank(target)
                            && phase.as_deref().and_then(rank).is_some()
                }
                Trigger::Moved(n) => moved() >= *n,
            };
        if fire {
            child.kill(); // SIGKILL
            // The row as the dead process left it.
            return row_state(conn, id).await;
        }
        match trigger {
            // Planning phases last milliseconds on these trees: poll the
            // row back to back (bounded by the deadline above).
            Trigger::Phase(_) => tokio::task::yield_now().await,
            Trigger::Moved(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// Waits until the job `name`, run by `child`, has ended, stops `child`,
/// and checks that the job succeeded.
async fn succeeded(app: &TestApp, u: &User, name: &str, mut child: KillOnDrop) -> pb::Operation {
    let done = wait_for(
        app,
        u,
        name,
        &[
            OperationState::Succeeded,
            OperationState::Failed,
            OperationState::Cancelled,
        ],
    )
    .await;
    child.kill();
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    done
}

/// The kill schedule's seed (FAULT_SEED, or a random one), printed so a
/// failure can be replayed, and its generator.
fn schedule() -> (u64, StdRng) {
    let seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .map(|s| s.parse().expect("FAULT_SEED is a number"))
        .unwrap_or_else(rand::random);
    println!("kill schedule seed: {seed} (replay with FAULT_SEED={seed})");
    (seed, StdRng::seed_from_u64(seed))
}

/// The in-process test server only answers the API (WORKERS=0): the jobs
/// run in the child processes the tests kill.
async fn without_workers() -> TestApp {
    TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_never_loses_a_file() {
    let (seed, mut rng) = schedule();
    let minimum: usize = std::env::var("FAULT_KILLS")
        .ok()
        .map(|s| s.parse().expect("FAULT_KILLS is a number"))
        .unwrap_or(24);
    let app = without_workers().await;
    let mut conn = app.db().await;
    let mut by_phase: BTreeMap<String, usize> = BTreeMap::new();
    let mut mid_operation = 0;
    let mut after_end = 0;
    let mut cycle = 0;
    while mid_operation < minimum {
        // A cycle kills 1–3 times; three cycles per kill bound the loop.
        assert!(
            cycle < 3 * minimum,
            "{mid_operation} kills in {cycle} cycles: {by_phase:?}"
        );
        let kind = [Kind::Organize, Kind::Apply, Kind::Undo][cycle % 3];
        cycle += 1;
        let files = rng.random_range(50..=200);
        let pace = rng.random_range(100..=250);
        let kills = rng.random_range(1..=3);
        let u: User = user(&app, &format!("kill{cycle}")).await;
        let before = build_tree(&u.root, "in", files, &mut rng);
        let mut child = spawn_server(&app, pace);

        // Set the job up to the point where the kills begin.
        let (name, target) = match kind {
            Kind::Organize => {
                // Hashing every file makes the hash phase long enough to hit.
                let op = pb::Operation {
                    hash_all_files: rng.random_bool(0.5),
                    ..organize("in")
                };
                (create(&app, &u, op).await.name, None)
            }
            Kind::Apply => {
                let op = create(
                    &app,
                    &u,
                    pb::Operation {
                        dry_run: true,
                        ..organize("in")
                    },
                )
                .await;
                wait_for(&app, &u, &op.name, &[OperationState::Planned]).await;
                apply(&app, &u, &op.name).await;
                (op.name, None)
            }
            Kind::Undo => {
                let op = create(&app, &u, organize("in")).await;
                wait_for(&app, &u, &op.name, &[OperationState::Succeeded]).await;
                let undo = undo(&app, &u, &op.name).await;
                (undo.name, Some(op.name))
            }
        };
        // The journal lives on the organize; an undo rewrites its records.
        let journal = target.clone().unwrap_or_else(|| name.clone());
        let id = operation_id(&name);
        let moved = || match kind {
            Kind::Undo => moved_back(&u.root, &before),
            _ => moved_away(&u.root, &before),
        };

        for k in 0..kills {
            let now = moved();
            let trigger = match kind {
                Kind::Organize if k == 0 && rng.random_bool(0.75) => {
                    Trigger::Phase(PLAN_PHASES[rng.random_range(0..PLAN_PHASES.len())])
                }
                _ if now + 1 < files => Trigger::Moved(rng.random_range(now + 1..files)),
                _ => break,
            };
            let (state, phase) = kill_on(&mut child, &trigger, &mut conn, id, &moved).await;
            let label =
                format!("{kind:?}/{state}/{}", phase.as_deref().unwrap_or("-")).to_lowercase();
            if matches!(
                state.as_str(),
                "succeeded" | "failed" | "cancelled" | "planned"
            ) {
                after_end += 1;
            } else {
                mid_operation += 1;
                *by_phase.entry(label).or_default() += 1;
            }
            assert_consistent_after_kill(&app, &u.root, &journal, &before).await;
            child = spawn_server(&app, pace);
        }

        // The last process finishes the job.
        let done = succeeded(&app, &u, &name, child).await;
        let statuses: &[&str] = match kind {
            Kind::Undo => &["undone"],
            _ => &["completed", "duplicate"],
        };
        assert_records_match_disk(&app, &u.root, &journal, &before, statuses).await;
        if let Kind::Undo = kind {
            // Everything is back where it was, to the byte.
            assert_eq!(tree::snapshot(&u.root), before);
        }
        let counters = done.counters.unwrap();
        assert_eq!(counters.files_moved, files as i64, "{counters:?}");
    }
    println!(
        "seed {seed}: {cycle} cycles, {mid_operation} kills during a job, \
         {after_end} after its end; by kind/state/phase: {by_phase:#?}"
    );
}

/// SIGKILL in the middle of an undo that spans several batches (3,500
/// files: four windows of 1,000 seqs), so that a batch's outcomes are being
/// recorded while the next one moves back: the kill leaves up to two
/// batches moved back but unrecorded. Each new process reclaims the undo,
/// finds those files already back and finishes: every file is back at its
/// original path exactly once, every record is undone, and the counters
/// count each file once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_pipelined_undo_is_resumed_exactly() {
    let (_, mut rng) = schedule();
    let app = without_workers().await;
    let mut conn = app.db().await;
    let u: User = user(&app, "undo-batches").await;
    let files = 3_500;
    let before = build_tree(&u.root, "in", files, &mut rng);
    // The organize at full speed, in a process of its own.
    let mut child = spawn_server(&app, 0);
    let op = create(&app, &u, organize("in")).await;
    let organized = wait_for(
        &app,
        &u,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    child.kill();
    assert_eq!(organized.state, OperationState::Succeeded as i32);
    assert_eq!(moved_away(&u.root, &before), files);

    let undo_op = undo(&app, &u, &op.name).await;
    let id = operation_id(&undo_op.name);
    let moved = || moved_back(&u.root, &before);
    // Paced so that the kills land among the moves, not after them.
    let pace = 2_000;
    let mut child = spawn_server(&app, pace);
    let (mut kills, mut unrecorded) = (0, 0);
    for _ in 0..2 {
        let now = moved();
        // Past the first batch, short of the last.
        let (low, high) = (now.max(1_000) + 100, files - 300);
        if low >= high {
            break;
        }
        let trigger = Trigger::Moved(rng.random_range(low..high));
        let (state, phase) = kill_on(&mut child, &trigger, &mut conn, id, &moved).await;
        assert_eq!(
            (state.as_str(), phase.as_deref()),
            ("running", Some("undo")),
            "the kill ({trigger:?}) landed outside the undo"
        );
        kills += 1;
        assert_consistent_after_kill(&app, &u.root, &op.name, &before).await;
        let recorded = records(&app, &op.name)
            .await
            .iter()
            .filter(|r| r.status.as_str() == "undone")
            .count();
        let back = moved();
        println!("kill {kills}: {back} files back on disk, {recorded} recorded undone");
        // What the next process must reconcile: moved back, not recorded
        // (the batch moving, and perhaps the one being recorded).
        unrecorded = unrecorded.max(back - recorded);
        child = spawn_server(&app, pace);
    }
    assert!(kills > 0, "no kill landed");
    assert!(
        unrecorded > 0,
        "no kill left a file moved back but unrecorded"
    );
    let done = succeeded(&app, &u, &undo_op.name, child).await;
    assert_records_match_disk(&app, &u.root, &op.name, &before, &["undone"]).await;
    // Every file back where it was, to the byte, and nothing else left.
    assert_eq!(tree::snapshot(&u.root), before);
    let counters = done.counters.unwrap();
    assert_eq!(counters.files_moved, files as i64, "{counters:?}");
    assert_eq!(counters.files_failed, 0, "{counters:?}");
}
