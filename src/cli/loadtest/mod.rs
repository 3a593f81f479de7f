//! `fileorg loadtest`: organize a synthetic tree end to end and/or drive C
//! concurrent gRPC clients against a running server. Loopback targets only;
//! every loop is bounded in count and time.
//!
//! The server's rate limits refuse a load test: start it with high
//! `RATE_LIMIT_*` values (see BENCHMARKS.md).

mod hello;
mod load;
mod rules;
mod search_names;
mod slow_queries;
pub mod stats;
mod tenants;
pub mod tree;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use fileorganizer::domain::{self, Phase};
use fileorganizer::pb::fileorganizer::v1::{
    self as pb, OperationPhase, OperationState, auth_service_client::AuthServiceClient,
    operation_service_client::OperationServiceClient, report_service_client::ReportServiceClient,
};
use tonic::{Request, transport::Channel};

pub const MAX_CONCURRENT: usize = 1000;
pub const MAX_DURATION_SECS: u64 = 3600;
pub const MAX_REQUESTS: u64 = 100_000_000;
pub const MAX_FILES: u64 = 10_000_000;
/// Highest `--rate` (requests per second, all clients together).
pub const MAX_RATE: f64 = 1_000_000.0;
pub const PASSWORD: &str = "loadtest correct horse battery";
pub const RATE_LIMIT_HINT: &str = "the server answered RESOURCE_EXHAUSTED: its rate limits refuse a load test. \
Restart it with high limits, e.g. RATE_LIMIT_API=10000000 RATE_LIMIT_GLOBAL_API=10000000 \
RATE_LIMIT_LOGIN_PER_IP=10000000 RATE_LIMIT_LOGIN_PER_EMAIL=10000000 RATE_LIMIT_BURST=10000000 \
RATE_LIMIT_BURST_PER_SECOND=1000000 fileorg serve (see BENCHMARKS.md)";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server address (loopback only); defaults to GRPC_ADDR or 127.0.0.1:50051.
    #[arg(long)]
    pub addr: Option<String>,
    /// Generate a synthetic tree of N files and organize it through the API.
    #[arg(long)]
    pub files: Option<u64>,
    /// Seed of the synthetic tree (same seed, same tree).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of files that duplicate an earlier one (a quarter of them hard links).
    #[arg(long, default_value_t = 0.1)]
    pub duplicate_fraction: f64,
    /// Concurrent clients for the request mix (at most 1000).
    #[arg(long)]
    pub concurrent: Option<usize>,
    /// Seconds of load (at most 3600; default 10 when --requests is absent).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Stop after this many requests in total.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Open loop: offer this many requests per second in total, spread
    /// evenly over the clients, instead of each client sending its next
    /// request as soon as the last one answered (closed loop, the default,
    /// which measures the maximum throughput). Latency is then measured from
    /// each request's scheduled time, so a server that falls behind shows it.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Request mix: `realistic` or `get-operation` (GetOperation only).
    #[arg(long, default_value = "realistic")]
    pub mix: String,
    /// The server process to sample (peak RSS, average CPU) from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the results as JSON (to --report-path).
    #[arg(long)]
    pub report: bool,
    /// Where --report writes.
    #[arg(long, default_value = "data/reports/load_test_results.json")]
    pub report_path: PathBuf,
    /// Give up on the organize after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub organize_timeout: u64,
    /// Run the bare tonic GetOperation server (the ceiling) on this loopback
    /// address instead of a load test.
    #[arg(long, value_name = "ADDR")]
    pub serve_hello_world: Option<SocketAddr>,
    /// Only write the synthetic tree of `--files N` into this (new) folder,
    /// for benchmarks of other tools on the same tree; no server involved.
    #[arg(long, value_name = "DIR")]
    pub generate_only: Option<PathBuf>,
    /// The target is a `--serve-hello-world` server: no user, no organize;
    /// use with `--mix get-operation`.
    #[arg(long)]
    pub hello_world: bool,
    /// The organize's layout template (empty: the server's default), e.g.
    /// `{taken_year}/{taken_month}/{name}` to measure reading capture dates.
    #[arg(long, default_value = "")]
    pub layout_template: String,
    /// Give the user this many organizing rules before the organize (and
    /// time PreviewRules on the tree first); see `loadtest::rules`.
    #[arg(long, default_value_t = 0)]
    pub rules: usize,
    /// Once the organize of `--files N` succeeded, undo it and time the
    /// undo the same way (the report's `undo`).
    #[arg(long)]
    pub undo: bool,
    /// Many users at once (see `loadtest::tenants`): N new users, each
    /// organizing their own tree of `--files` files, all submitted in one
    /// burst; measures the waits, the fairness between users and
    /// GetOperation meanwhile (`--concurrent` clients at `--poll-rate`).
    #[arg(long, value_name = "N")]
    pub tenants: Option<usize>,
    /// With --tenants: each user's tree in this many folders, one organize
    /// each, queued in a row.
    #[arg(long, default_value_t = 1)]
    pub ops_per_tenant: usize,
    /// With --tenants: GetOperation requests per second (open loop) while
    /// the operations run; 0 for none.
    #[arg(long, default_value_t = 200.0)]
    pub poll_rate: f64,
    /// Before the load, write the test user's access token and the
    /// operation the load asks for to this file (JSON, readable by the owner
    /// only), so an outside load generator can send the same requests
    /// (scripts/bench-getoperation.sh).
    #[arg(long, value_name = "PATH")]
    pub session_file: Option<PathBuf>,
}

/// Accepts `host:port` or `http://host:port` whose every resolved address is
/// loopback; anything else is refused.
pub async fn loopback_uri(addr: &str) -> anyhow::Result<String> {
    let hostport = addr
        .strip_prefix("http://")
        .unwrap_or(addr)
        .trim_end_matches('/');
    if hostport.contains("://") || hostport.contains('/') {
        anyhow::bail!("--addr {addr}: expected HOST:PORT or http://HOST:PORT");
    }
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(hostport)
        .await
        .map_err(|e| anyhow::anyhow!("--addr {addr}: {e}"))?
        .collect();
    if resolved.is_empty() || resolved.iter().any(|a| !a.ip().is_loopback()) {
        anyhow::bail!(
            "--addr {addr}: the load test only targets loopback addresses (127.0.0.0/8, ::1, localhost); refusing {resolved:?}"
        );
    }
    Ok(format!("http://{hostport}"))
}

fn storage_root() -> PathBuf {
    match std::env::var("STORAGE_ROOT") {
        Ok(s) if !s.is_empty() => PathBuf::from(s),
        _ => PathBuf::from(std::env::var("DATA_DIR").unwrap_or_else(|_| "./data".into()))
            .join("storage"),
    }
}

pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

pub struct Session {
    pub email: String,
    pub token: String,
    pub user_id: String,
}

async fn register(channel: &Channel) -> anyhow::Result<Session> {
    let email = format!("loadtest-{}@example.com", uuid::Uuid::new_v4().simple());
    let response = AuthServiceClient::new(channel.clone())
        .register(pb::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            display_name: "load test".into(),
        })
        .await
        .map_err(|s| {
            if s.code() == tonic::Code::ResourceExhausted {
                eprintln!("hint: {RATE_LIMIT_HINT}");
            }
            anyhow::anyhow!("Register: {}: {}", s.code(), s.message())
        })?
        .into_inner();
    let user_id = response
        .user
        .map(|u| u.id)
        .ok_or_else(|| anyhow::anyhow!("Register returned no user"))?;
    Ok(Session {
        email,
        token: response.access_token,
        user_id,
    })
}

/// Writes `--session-file`: the token is a credential, so the file is the
/// owner's only (created so, never widened after the fact).
fn write_session(path: &std::path::Path, session: &Session, operation: &str) -> anyhow::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let json = serde_json::json!({
        "user_id": session.user_id,
        "access_token": session.token,
        "operation": operation,
    });
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("--session-file {}: {e}", path.display()))?;
    file.write_all(serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok(())
}

fn phase_name(phase: i32) -> String {
    OperationPhase::try_from(phase)
        .map(|p| {
            p.as_str_name()
                .trim_start_matches("OPERATION_PHASE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("phase_{phase}"))
}

fn state_name(state: i32) -> String {
    OperationState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("OPERATION_STATE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("state_{state}"))
}

/// Writes a tree into the user's storage, organizes it and watches it.
async fn organize(
    channel: &Channel,
    session: &Session,
    files: u64,
    args: &Args,
) -> anyhow::Result<(serde_json::Value, String, bool)> {
    let user_root = storage_root().join(&session.user_id);
    let root = user_root.join("loadtest");
    println!(
        "generating {files} files (seed {}, duplicates {:.0} %) under {}",
        args.seed,
        args.duplicate_fraction * 100.0,
        root.display()
    );
    let (seed, fraction) = (args.seed, args.duplicate_fraction.clamp(0.0, 0.9));
    let gen_root = root.clone();
    let tree =
        tokio::task::spawn_blocking(move || tree::generate(&gen_root, files, seed, fraction))
            .await??;
    println!(
        "  {} files, {} dirs, {:.1} MiB ({} copies, {} hard links, {} large) in {:.1} s",
        tree.files,
        tree.directories,
        tree.bytes as f64 / 1048576.0,
        tree.duplicate_copies,
        tree.hard_links,
        tree.large_files,
        tree.seconds
    );

    let preview = if args.rules > 0 {
        rules::create(channel, session, args.rules).await?;
        Some(rules::preview(channel, session, "loadtest", args.rules).await?)
    } else {
        None
    };
    let sampler = sample(args)?;
    let mut ops = OperationServiceClient::new(channel.clone());
    let started = Instant::now();
    let created = create_organize(&mut ops, session, "loadtest", args).await?;
    let (op, last, snapshots) = watch_to_end(
        &mut ops,
        "CreateOperation",
        Ok(tonic::Response::new(created)),
        &session.token,
        started,
        args,
    )
    .await?;
    // The report as the user gets it (the job builds it once the operation is final).
    let succeeded = last
        .as_ref()
        .is_some_and(|l| l.state == OperationState::Succeeded as i32);
    let (report_seconds, report) = if succeeded {
        let asked = Instant::now();
        let report = ReportServiceClient::new(channel.clone())
            .get_operation_report(bearer(
                pb::GetOperationReportRequest {
                    name: op.name.replacen("operations/", "reports/", 1),
                },
                &session.token,
            ))
            .await
            .map_err(|s| anyhow::anyhow!("GetOperationReport: {}: {}", s.code(), s.message()))?
            .into_inner();
        (Some(asked.elapsed().as_secs_f64()), Some(report))
    } else {
        (None, None)
    };
    let elapsed = started.elapsed();
    let server = match sampler {
        Some(s) => s.finish().await,
        None => not_measured(),
    };
    print_server("organize", &server);
    let last = last.ok_or_else(|| anyhow::anyhow!("WatchOperation sent nothing"))?;
    // The server's own phase clock (Operation.phase_durations). Its REPORT
    // phase is written just after the report it computed is stored: wait
    // for it a little.
    let finished = timed_row(&mut ops, &op.name, &session.token, succeeded).await?;
    let (breakdown, order) = phase_breakdown(&finished);
    let counters = last.counters.unwrap_or_default();
    let secs = elapsed.as_secs_f64();
    println!(
        "organize {}: {} in {secs:.2} s, {:.0} files/s",
        op.name,
        state_name(last.state),
        tree.files as f64 / secs
    );
    for p in &order {
        println!(
            "  {p:<11} {:>8.3} s",
            breakdown[p.as_str()].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(error) = &last.error {
        println!("  error: {}", error.message);
    }
    // The search names are indexed in the background once the job is done.
    let names = search_names::wait_indexed(
        &slow_queries::database_url(),
        &op.name,
        Duration::from_secs(args.organize_timeout),
    )
    .await;
    let search_names = match &names {
        Ok(seconds) => {
            println!(
                "  (search names indexed {seconds:.3} s after the organize, in the background)"
            );
            serde_json::json!({"seconds_after_organize": seconds})
        }
        Err(reason) => {
            println!("  (search names: not measured: {reason})");
            serde_json::json!({"seconds_after_organize": null, "note": reason})
        }
    };
    let result = serde_json::json!({
        "operation": op.name,
        "state": state_name(last.state),
        "succeeded": succeeded,
        "tree": tree,
        "files": tree.files,
        "end_to_end_seconds": secs,
        "files_per_second": tree.files as f64 / secs,
        "phase_seconds": breakdown,
        "phase_order": order,
        "search_names_indexed": search_names,
        "phase_note": PHASE_NOTE,
        "report_fetch_seconds": report_seconds,
        "layout_template": args.layout_template,
        "taken_dates": report.map(|r| serde_json::json!({
            "from_metadata": r.taken_dates_from_metadata,
            "from_mtime": r.taken_dates_from_mtime,
        })),
        "snapshots": snapshots,
        "counters": {
            "files_scanned": counters.files_scanned,
            "files_planned": counters.files_planned,
            "files_moved": counters.files_moved,
            "files_skipped": counters.files_skipped,
            "files_failed": counters.files_failed,
            "duplicates_found": counters.duplicates_found,
            "bytes_scanned": counters.bytes_scanned,
            "bytes_moved": counters.bytes_moved,
            "reclaimable_bytes": counters.reclaimable_bytes,
        },
        "error": last.error.map(|e| e.message),
        "server": server,
        "rules": args.rules,
        "rule_set_version": finished.rule_set_version,
        "preview_rules": preview,
    });
    Ok((result, op.name, succeeded))
}

/// Watches the operation `created` by `method` (started at `started`)
/// until its stream ends (the operation is at rest) or `--organize-timeout`
/// passed; returns the operation, its last snapshot and how many were sent.
async fn watch_to_end(
    ops: &mut OperationServiceClient<Channel>,
    method: &str,
    created: Result<tonic::Response<pb::Operation>, tonic::Status>,
    token: &str,
    started: Instant,
    args: &Args,
) -> anyhow::Result<(pb::Operation, Option<pb::WatchOperationResponse>, u64)> {
    let op = created
        .map_err(|s| anyhow::anyhow!("{method}: {}: {}", s.code(), s.message()))?
        .into_inner();
    let name = op.name.as_str();
    let deadline = started + Duration::from_secs(args.organize_timeout);
    let mut stream = ops
        .watch_operation(bearer(
            pb::WatchOperationRequest {
                name: name.to_string(),
                ..Default::default()
            },
            token,
        ))
        .await
        .map_err(|s| anyhow::anyhow!("WatchOperation: {}: {}", s.code(), s.message()))?
        .into_inner();
    let mut last = None;
    let mut snapshots = 0u64;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.message()).await {
            Err(_) => anyhow::bail!("{name} did not finish in time"),
            Ok(Err(s)) => anyhow::bail!("WatchOperation: {}: {}", s.code(), s.message()),
            Ok(Ok(None)) => return Ok((op, last, snapshots)),
            Ok(Ok(Some(snapshot))) => {
                snapshots += 1;
                last = Some(snapshot);
            }
        }
    }
}

/// The operation with the server's own phase clock
/// (Operation.phase_durations). Its REPORT phase is written just after the
/// job's last step: wait for it a little when the operation succeeded.
async fn timed_row(
    ops: &mut OperationServiceClient<Channel>,
    name: &str,
    token: &str,
    succeeded: bool,
) -> anyhow::Result<pb::Operation> {
    let asked = Instant::now();
    loop {
        let row = ops
            .get_operation(bearer(
                pb::GetOperationRequest {
                    name: name.to_string(),
                },
                token,
            ))
            .await
            .map_err(|s| anyhow::anyhow!("GetOperation: {}: {}", s.code(), s.message()))?
            .into_inner();
        let timed = row
            .phase_durations
            .iter()
            .any(|d| d.phase == OperationPhase::Report as i32);
        if timed || !succeeded || asked.elapsed() > Duration::from_secs(10) {
            return Ok(row);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Undoes operation `name` (the organize just measured) and watches the
/// undo to its end: the same tree moved back, timed like the organize.
async fn undo(
    channel: &Channel,
    session: &Session,
    name: &str,
    args: &Args,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let sampler = sample(args)?;
    let mut ops = OperationServiceClient::new(channel.clone());
    let started = Instant::now();
    let created = ops
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: name.to_string(),
                request_id: String::new(),
            },
            &session.token,
        ))
        .await;
    let (op, last, snapshots) = watch_to_end(
        &mut ops,
        "UndoOperation",
        created,
        &session.token,
        started,
        args,
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let server = match sampler {
        Some(s) => s.finish().await,
        None => not_measured(),
    };
    print_server("undo", &server);
    let last = last.ok_or_else(|| anyhow::anyhow!("WatchOperation sent nothing"))?;
    let succeeded = last.state == OperationState::Succeeded as i32;
    let finished = timed_row(&mut ops, &op.name, &session.token, succeeded).await?;
    let (breakdown, order) = phase_breakdown(&finished);
    let counters = last.counters.unwrap_or_default();
    println!(
        "undo {}: {} in {elapsed:.2} s, {} files moved back, {} not",
        op.name,
        state_name(last.state),
        counters.files_moved,
        counters.files_failed
    );
    for p in &order {
        println!(
            "  {p:<11} {:>8.3} s",
            breakdown[p.as_str()].as_f64().unwrap_or(0.0)
        );
    }
    let result = serde_json::json!({
        "operation": op.name,
        "state": state_name(last.state),
        "succeeded": succeeded,
        "end_to_end_seconds": elapsed,
        "phase_seconds": breakdown,
        "phase_order": order,
        "snapshots": snapshots,
        "counters": {
            "files_moved": counters.files_moved,
            "files_failed": counters.files_failed,
            "bytes_moved": counters.bytes_moved,
        },
        "error": last.error.map(|e| e.message),
        "server": server,
    });
    Ok((result, succeeded))
}

/// CreateOperation: a full organize (no dry run) of `source` in the user's
/// storage, with the run's layout template.
async fn create_organize(
    ops: &mut OperationServiceClient<Channel>,
    session: &Session,
    source: &str,
    args: &Args,
) -> anyhow::Result<pb::Operation> {
    Ok(ops
        .create_operation(bearer(
            pb::CreateOperationRequest {
                operation: Some(pb::Operation {
                    kind: pb::OperationKind::Organize as i32,
                    source_path: source.into(),
                    remove_empty_dirs: true,
                    layout_template: args.layout_template.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &session.token,
        ))
        .await
        .map_err(|s| anyhow::anyhow!("CreateOperation: {}: {}", s.code(), s.message()))?
        .into_inner())
}

const PHASE_NOTE: &str = "queued: from create_time to start_time; the others: the server's own \
clock (Operation.phase_durations; plan and journal overlap, journal is what is left of writing \
the journal once every file is planned; report is the job computing the report once the \
operation is final); 0 for a phase the operation did not go through. end_to_end_seconds runs \
from CreateOperation until the first GetOperationReport answered (report_fetch_seconds, the \
client's clock, from the end of WatchOperation)";

/// Seconds per phase of the pipeline (every phase present, 0 when the
/// operation did not go through it) and the phases it did go through, in order.
fn phase_breakdown(
    operation: &pb::Operation,
) -> (serde_json::Map<String, serde_json::Value>, Vec<String>) {
    let seconds = |d: &prost_types::Duration| d.seconds as f64 + f64::from(d.nanos) / 1e9;
    let at = |t: &prost_types::Timestamp| t.seconds as f64 + f64::from(t.nanos) / 1e9;
    let queued = match (&operation.create_time, &operation.start_time) {
        (Some(created), Some(started)) => (at(started) - at(created)).max(0.0),
        _ => 0.0,
    };
    // The wait in the queue first, as if it were a phase, then the pipeline.
    let waiting = domain::OperationState::Queued.as_str();
    let mut breakdown: serde_json::Map<String, serde_json::Value> = std::iter::once(waiting)
        .chain(Phase::PIPELINE.iter().map(|phase| phase.as_str()))
        .map(|phase| (phase.to_string(), 0.0.into()))
        .collect();
    breakdown.insert(waiting.into(), queued.into());
    let mut order = vec![waiting.to_string()];
    for measured in &operation.phase_durations {
        let phase = phase_name(measured.phase);
        breakdown.insert(
            phase.clone(),
            measured
                .duration
                .as_ref()
                .map(seconds)
                .unwrap_or(0.0)
                .into(),
        );
        order.push(phase);
    }
    (breakdown, order)
}

/// Starts sampling the server (`--server-pid`) from /proc, if given.
fn sample(args: &Args) -> anyhow::Result<Option<stats::ProcSampler>> {
    args.server_pid.map(stats::ProcSampler::start).transpose()
}

fn not_measured() -> serde_json::Value {
    serde_json::json!({"note": "not measured: pass --server-pid PID of the server"})
}

fn print_server(what: &str, server: &serde_json::Value) {
    if let Some(rss) = server.get("peak_rss_mb") {
        println!(
            "server during {what}: peak RSS {:.1} MB, avg CPU {:.0} % of one core",
            rss.as_f64().unwrap_or(0.0),
            server["avg_cpu_percent"].as_f64().unwrap_or(0.0)
        );
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(addr) = args.serve_hello_world {
        hello::serve(addr).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = &args.generate_only {
        let files = args
            .files
            .filter(|n| (1..=MAX_FILES).contains(n))
            .ok_or_else(|| anyhow::anyhow!("--generate-only needs --files 1..={MAX_FILES}"))?;
        anyhow::ensure!(
            !dir.exists() || std::fs::read_dir(dir)?.next().is_none(),
            "{} exists and is not empty",
            dir.display()
        );
        let tree = tree::generate(
            dir,
            files,
            args.seed,
            args.duplicate_fraction.clamp(0.0, 0.9),
        )?;
        println!("{}", serde_json::to_string_pretty(&tree)?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.undo && args.files.is_none() {
        anyhow::bail!("--undo needs --files N (it undoes that organize)");
    }
    if args.hello_world && (args.files.is_some() || args.mix != "get-operation") {
        anyhow::bail!("--hello-world takes no --files and needs --mix get-operation");
    }
    if args.files.is_none() && args.concurrent.is_none() {
        anyhow::bail!("nothing to do: pass --files N and/or --concurrent C");
    }
    if let Some(n) = args.files
        && !(1..=MAX_FILES).contains(&n)
    {
        anyhow::bail!("--files must be between 1 and {MAX_FILES}");
    }
    if !(0.0..=0.9).contains(&args.duplicate_fraction) {
        anyhow::bail!("--duplicate-fraction must be between 0 and 0.9");
    }
    if let Some(c) = args.concurrent
        && !(1..=MAX_CONCURRENT).contains(&c)
    {
        anyhow::bail!("--concurrent must be between 1 and {MAX_CONCURRENT}");
    }
    if args
        .duration
        .is_some_and(|s| s == 0 || s > MAX_DURATION_SECS)
    {
        anyhow::bail!("--duration must be between 1 and {MAX_DURATION_SECS} seconds");
    }
    if args
        .rate
        .is_some_and(|r| !(r.is_finite() && (0.1..=MAX_RATE).contains(&r)))
    {
        anyhow::bail!("--rate must be between 0.1 and {MAX_RATE} requests per second");
    }
    if args.requests.is_some_and(|n| n == 0 || n > MAX_REQUESTS) {
        anyhow::bail!("--requests must be between 1 and {MAX_REQUESTS}");
    }
    // Before any load, so the statistics are the run's own.
    let statements = if args.report {
        slow_queries::prepare(&slow_queries::database_url()).await
    } else {
        slow_queries::Source::Unavailable("only collected with --report".into())
    };
    let mix = load::Mix::parse(&args.mix)?;
    let addr = match &args.addr {
        Some(a) => a.clone(),
        None => std::env::var("GRPC_ADDR").unwrap_or_else(|_| "127.0.0.1:50051".into()),
    };
    let uri = loopback_uri(&addr).await?;
    let channel = tonic::transport::Endpoint::from_shared(uri.clone())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("connect {uri}: {e}"))?;
    if let Some(tenants) = args.tenants {
        anyhow::ensure!(
            !args.hello_world && args.rules == 0 && args.rate.is_none(),
            "--tenants takes none of --hello-world, --rules, --rate"
        );
        let (result, ok) = tenants::run(&channel, &uri, tenants, &args).await?;
        let sections = serde_json::json!({ "tenants": result });
        return write_report(&args, &uri, sections, statements, ok).await;
    }
    let session = if args.hello_world {
        Session {
            email: "hello-world@example.com".into(),
            token: "unused".into(),
            user_id: "none".into(),
        }
    } else {
        register(&channel).await?
    };
    println!(
        "target {uri}; test user {} ({})",
        session.email, session.user_id
    );

    if args.server_pid.is_none() {
        println!(
            "note: no --server-pid: server RSS and CPU are not measured (pass the pid of `fileorg serve`)"
        );
    }

    let mut ok = true;
    let mut organize_result = serde_json::Value::Null;
    let mut undo_result = serde_json::Value::Null;
    let mut operation = None;
    if let Some(files) = args.files {
        let (result, name, succeeded) = organize(&channel, &session, files, &args).await?;
        ok &= succeeded;
        organize_result = result;
        if args.undo && succeeded {
            let (result, succeeded) = undo(&channel, &session, &name, &args).await?;
            ok &= succeeded;
            undo_result = result;
        }
        operation = Some(name);
    }

    let mut load_result = serde_json::Value::Null;
    if let Some(clients) = args.concurrent {
        // The mix needs an operation with records: organize a small tree
        // when --files was not given.
        let operation = match operation {
            Some(name) => name,
            None if args.hello_world => hello::OPERATION.to_string(),
            None => {
                let (result, name, succeeded) = organize(&channel, &session, 500, &args).await?;
                ok &= succeeded;
                if organize_result.is_null() {
                    organize_result = serde_json::json!({"seed_tree": result});
                }
                name
            }
        };
        if let Some(path) = &args.session_file {
            write_session(path, &session, &operation)?;
        }
        let duration = Duration::from_secs(args.duration.unwrap_or(if args.requests.is_some() {
            MAX_DURATION_SECS
        } else {
            10
        }));
        let plan = load::Plan {
            uri: uri.clone(),
            clients,
            duration,
            requests: args.requests.unwrap_or(MAX_REQUESTS),
            rate: args.rate,
            mix,
            operation,
            session,
            seed: args.seed,
            stop: None,
        };
        let sampler = sample(&args)?;
        let result = load::run(plan).await?;
        let server = match sampler {
            Some(s) => s.finish().await,
            None => not_measured(),
        };
        print_server("load", &server);
        if result.rate_limited > 0 {
            eprintln!("hint: {RATE_LIMIT_HINT}");
        }
        let failed = result.json["failed_requests"].as_u64().unwrap_or(0);
        if failed > 0 {
            // The report is still written; the exit status says the run was not clean.
            eprintln!("{failed} requests failed (load.failures_by_code in the report)");
            ok = false;
        }
        load_result = result.json;
        load_result["server"] = server;
    }

    let sections = serde_json::json!({
        "organize": organize_result,
        "undo": undo_result,
        "load": load_result,
    });
    write_report(&args, &uri, sections, statements, ok).await
}

/// The JSON report (with --report): the run's settings and machine, the
/// `sections` measured and the slowest statements; the exit status says
/// whether the run was clean.
async fn write_report(
    args: &Args,
    uri: &str,
    sections: serde_json::Value,
    statements: slow_queries::Source,
    ok: bool,
) -> anyhow::Result<ExitCode> {
    let mut report = serde_json::json!({
        "tool": "fileorg loadtest",
        "version": env!("CARGO_PKG_VERSION"),
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "target": uri,
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "mem_total_kb": std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok())),
            "load_average": std::fs::read_to_string("/proc/loadavg").ok().map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        },
        "options": {
            "files": args.files,
            "seed": args.seed,
            "duplicate_fraction": args.duplicate_fraction,
            "concurrent": args.concurrent,
            "duration_secs": args.duration,
            "requests": args.requests,
            "rate_rps": args.rate,
            "mix": args.mix,
            "hello_world": args.hello_world,
            "tenants": args.tenants,
            "ops_per_tenant": args.ops_per_tenant,
            "poll_rate_rps": args.poll_rate,
        },
        "slow_queries": slow_queries::collect(statements).await,
    });
    if let (Some(report), Some(sections)) = (report.as_object_mut(), sections.as_object()) {
        report.extend(sections.clone());
    }
    if args.report {
        if let Some(dir) = args
            .report_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&args.report_path, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", args.report_path.display());
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
