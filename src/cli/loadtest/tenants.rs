//! `fileorg loadtest --tenants N --files F`: many users at once (issue 24
//! item 4). N new users each get their own synthetic tree of F files (split
//! into `--ops-per-tenant K` folders, one organize each); every organize is
//! then submitted in one burst, user by user (each user's K in a row, the
//! order in which first come, first served is least fair), as full
//! organizes (planned and applied in one job). While the workers run them,
//! `--poll-rate` GetOperation requests a second (open loop) measure how the
//! API answers. The figures come from the operations' own times as the API
//! gives them (created, started, ended: the server's clock): the total time,
//! the wait in the queue (created → started) and created → ended per
//! operation, each user's time until their last operation ended, and the
//! fairness figure of `db::operations::claim`: for each operation, the most
//! operations any other single user started while it was at the head of its
//! user's queue (created, its user's earlier operations ended) and not yet
//! started — the policy bounds it by 1.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, OperationState, operation_service_client::OperationServiceClient,
};
use futures::{StreamExt as _, TryStreamExt as _};
use tonic::transport::Channel;

use super::{
    Args, Session, bearer, create_organize, load, register, state_name, storage_root, tree,
};

pub const MAX_TENANTS: usize = 1000;
pub const MAX_OPS_PER_TENANT: usize = 100;
/// Trees written at once (the machine's disk and cores, not the server's).
const GENERATORS: usize = 2;

struct Tenant {
    session: Session,
    operations: Vec<String>,
}

/// One finished operation, by the server's clock (seconds since the epoch).
struct Ran {
    user: usize,
    created: f64,
    started: f64,
    ended: f64,
}

pub async fn run(
    channel: &Channel,
    uri: &str,
    tenants: usize,
    args: &Args,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let files = args.files.unwrap_or(0);
    let parts = args.ops_per_tenant;
    anyhow::ensure!(
        (1..=MAX_TENANTS).contains(&tenants),
        "--tenants must be between 1 and {MAX_TENANTS}"
    );
    anyhow::ensure!(
        (1..=MAX_OPS_PER_TENANT).contains(&parts),
        "--ops-per-tenant must be between 1 and {MAX_OPS_PER_TENANT}"
    );
    anyhow::ensure!(
        files >= parts as u64,
        "--tenants needs --files (per user) of at least --ops-per-tenant"
    );
    anyhow::ensure!(
        args.poll_rate.is_finite() && (0.0..=super::MAX_RATE).contains(&args.poll_rate),
        "--poll-rate must be between 0 and {}",
        super::MAX_RATE
    );

    let sessions: Vec<Session> = futures::stream::iter((0..tenants).map(|_| register(channel)))
        .buffered(8)
        .try_collect()
        .await?;
    println!("{tenants} users registered");

    // Each user's tree, K folders of F / K files, seeded per user and folder.
    let started = Instant::now();
    let (fraction, seed) = (args.duplicate_fraction.clamp(0.0, 0.9), args.seed);
    let per_part = files / parts as u64;
    let jobs = sessions.iter().enumerate().flat_map(|(u, session)| {
        let root = storage_root().join(&session.user_id).join("tenant");
        (0..parts).map(move |k| {
            let part = root.join(format!("part{k}"));
            let seed = seed.wrapping_add((u * parts + k) as u64);
            tokio::task::spawn_blocking(move || tree::generate(&part, per_part, seed, fraction))
        })
    });
    let trees: Vec<tree::TreeSummary> = futures::stream::iter(jobs)
        .buffered(GENERATORS)
        .map(|joined| joined.map_err(anyhow::Error::from).and_then(|r| r))
        .try_collect()
        .await?;
    let tree_files: u64 = trees.iter().map(|t| t.files).sum();
    let tree_bytes: u64 = trees.iter().map(|t| t.bytes).sum();
    println!(
        "{tree_files} files ({:.1} GiB) in {} folders written in {:.1} s",
        tree_bytes as f64 / (1u64 << 30) as f64,
        trees.len(),
        started.elapsed().as_secs_f64()
    );

    // The burst: user by user, each user's folders in a row.
    let mut ops = OperationServiceClient::new(channel.clone());
    let burst = Instant::now();
    let mut all = Vec::with_capacity(tenants);
    for session in sessions {
        let mut operations = Vec::with_capacity(parts);
        for k in 0..parts {
            let source = format!("tenant/part{k}");
            let op = create_organize(&mut ops, &session, &source, args).await?;
            operations.push(op.name);
        }
        all.push(Tenant {
            session,
            operations,
        });
    }
    let burst_seconds = burst.elapsed().as_secs_f64();
    println!(
        "{} operations submitted in {burst_seconds:.2} s",
        tenants * parts
    );

    // GetOperation from other clients while the jobs run, until they end.
    let stop = Arc::new(AtomicBool::new(false));
    let poll = (args.poll_rate > 0.0).then(|| {
        let plan = load::Plan {
            uri: uri.to_string(),
            clients: args.concurrent.unwrap_or(20),
            duration: Duration::from_secs(args.organize_timeout),
            requests: super::MAX_REQUESTS,
            rate: Some(args.poll_rate),
            mix: load::Mix::GetOperation,
            operation: all[0].operations[0].clone(),
            session: Session {
                email: all[0].session.email.clone(),
                token: all[0].session.token.clone(),
                user_id: all[0].session.user_id.clone(),
            },
            seed: args.seed,
            stop: Some(stop.clone()),
        };
        tokio::spawn(load::run(plan))
    });

    let finished = wait_all(channel, &all, Duration::from_secs(args.organize_timeout)).await;
    stop.store(true, Ordering::Relaxed);
    let wall_seconds = burst.elapsed().as_secs_f64();
    let load = match poll {
        Some(task) => task.await??.json,
        None => serde_json::Value::Null,
    };
    let finished = finished?;

    let mut ran = Vec::new();
    let mut states: HashMap<String, u64> = HashMap::new();
    let mut files_moved = 0;
    for (user, ops) in finished.iter().enumerate() {
        for op in ops {
            *states.entry(state_name(op.state)).or_default() += 1;
            files_moved += op.counters.as_ref().map_or(0, |c| c.files_moved);
            ran.push(Ran {
                user,
                created: seconds(op.create_time),
                started: seconds(op.start_time),
                ended: seconds(op.end_time),
            });
        }
    }
    let succeeded = states
        .get(&state_name(OperationState::Succeeded as i32))
        .copied()
        .unwrap_or(0)
        == ran.len() as u64;
    let first_created = ran.iter().map(|r| r.created).fold(f64::INFINITY, f64::min);
    let last_ended = ran.iter().map(|r| r.ended).fold(0.0, f64::max);
    let waits: Vec<f64> = ran.iter().map(|r| r.started - r.created).collect();
    let ends: Vec<f64> = ran.iter().map(|r| r.ended - r.created).collect();
    let users_done: Vec<f64> = (0..tenants)
        .map(|u| {
            let mine = ran.iter().filter(|r| r.user == u);
            let created = mine
                .clone()
                .map(|r| r.created)
                .fold(f64::INFINITY, f64::min);
            mine.map(|r| r.ended).fold(0.0, f64::max) - created
        })
        .collect();
    let (worst, over_bound) = started_ahead(&ran);
    let result = serde_json::json!({
        "tenants": tenants,
        "ops_per_tenant": parts,
        "files_per_tenant": per_part * parts as u64,
        "files": tree_files,
        "bytes": tree_bytes,
        "dry_run": false,
        "submit_seconds": burst_seconds,
        "total_seconds": last_ended - first_created,
        "wall_seconds": wall_seconds,
        "files_per_second": tree_files as f64 / (last_ended - first_created).max(1e-9),
        "files_moved": files_moved,
        "states": states,
        "wait_seconds": summary(waits),
        "end_to_end_seconds": summary(ends),
        "user_done_seconds": summary(users_done),
        "fairness": {
            "most_started_ahead_by_one_user": worst,
            "operations_over_bound": over_bound,
            "bound": 1,
            "note": "for each operation, the most operations any other single user started \
                     while it was at the head of its user's queue (created, its user's earlier \
                     operations ended) and not yet started",
        },
        "get_operation": load,
    });
    println!(
        "tenants: {} operations, {tree_files} files: total {:.1} s; wait p50 {:.1} p95 {:.1} s; \
         end to end p50 {:.1} p95 {:.1} s; fairness: at most {worst} started ahead by one user \
         ({over_bound} operations over the bound of 1); states {states:?}",
        ran.len(),
        last_ended - first_created,
        result["wait_seconds"]["p50"].as_f64().unwrap_or(0.0),
        result["wait_seconds"]["p95"].as_f64().unwrap_or(0.0),
        result["end_to_end_seconds"]["p50"].as_f64().unwrap_or(0.0),
        result["end_to_end_seconds"]["p95"].as_f64().unwrap_or(0.0),
    );
    Ok((result, succeeded))
}

/// Polls every operation (GetOperation, by its owner) every two seconds
/// until all are at rest; the final operations, per user.
async fn wait_all(
    channel: &Channel,
    all: &[Tenant],
    timeout: Duration,
) -> anyhow::Result<Vec<Vec<pb::Operation>>> {
    let deadline = Instant::now() + timeout;
    let mut ops = OperationServiceClient::new(channel.clone());
    let mut done: Vec<Vec<Option<pb::Operation>>> =
        all.iter().map(|t| vec![None; t.operations.len()]).collect();
    let at_rest = [
        OperationState::Succeeded,
        OperationState::Failed,
        OperationState::Cancelled,
    ]
    .map(|s| s as i32);
    loop {
        let mut pending = 0;
        for (tenant, slots) in all.iter().zip(done.iter_mut()) {
            for (name, slot) in tenant.operations.iter().zip(slots.iter_mut()) {
                if slot.is_some() {
                    continue;
                }
                let op = ops
                    .get_operation(bearer(
                        pb::GetOperationRequest { name: name.clone() },
                        &tenant.session.token,
                    ))
                    .await
                    .map_err(|s| anyhow::anyhow!("GetOperation: {}: {}", s.code(), s.message()))?
                    .into_inner();
                if at_rest.contains(&op.state) {
                    *slot = Some(op);
                } else {
                    pending += 1;
                }
            }
        }
        if pending == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{pending} operations did not finish within {} s",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(done
        .into_iter()
        .map(|slots| slots.into_iter().flatten().collect())
        .collect())
}

fn seconds(t: Option<prost_types::Timestamp>) -> f64 {
    t.map_or(f64::NAN, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

/// The fairness figure (see the module doc): the worst count, and how many
/// operations had some user start more than one ahead of them.
fn started_ahead(ran: &[Ran]) -> (usize, usize) {
    let mut worst = 0;
    let mut over = 0;
    for job in ran {
        let head_since = ran
            .iter()
            .filter(|r| r.user == job.user && r.started < job.started)
            .map(|r| r.ended)
            .fold(job.created, f64::max);
        let mut ahead: HashMap<usize, usize> = HashMap::new();
        for other in ran.iter().filter(|r| r.user != job.user) {
            if other.started > head_since && other.started < job.started {
                *ahead.entry(other.user).or_default() += 1;
            }
        }
        let most = ahead.values().copied().max().unwrap_or(0);
        worst = worst.max(most);
        over += usize::from(most > 1);
    }
    (worst, over)
}

/// p50/p95/max/mean of `values` (seconds).
fn summary(mut values: Vec<f64>) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        if values.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
        values[rank.min(values.len()) - 1]
    };
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    serde_json::json!({
        "p50": at(50.0),
        "p95": at(95.0),
        "max": values.last().copied().unwrap_or(0.0),
        "mean": mean,
        "count": values.len(),
    })
}
