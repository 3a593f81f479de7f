//! Prometheus metrics: the process-wide recorder, the `/metrics` endpoint on
//! METRICS_ADDR, and the small helpers the rest of the code records through.
//! docs/observability.md lists every metric with its labels.
//!
//! The `metrics` facade has one global recorder per process, so
//! [`install`] puts a Prometheus recorder in place once (a `OnceLock`) and
//! every server started in the process (tests start many) serves the same
//! registry's `render()` on its own METRICS_ADDR. Until a recorder is
//! installed, which happens only when METRICS_ADDR is set, every `counter!`
//! and `histogram!` call is a no-op.
//!
//! Label values are always from small, closed sets (gRPC method paths of our
//! own services, code names, built-in category names, job kinds and states),
//! so the number of series stays bounded whatever clients send.
//!
//! Two kinds of values are read when Prometheus scrapes rather than recorded
//! as things happen: the process's own (`process_*`, from `metrics-process`,
//! the names client_golang uses) and, through the [`Sampler`] the process
//! passes to [`start`] (`infra::health::sampler`), the state of what it
//! depends on (the job queue, the database pool, Postgres and Redis
//! answering, the storage volume's free space). Each scrape thus shows them
//! as they are now, in `fileorg serve` and `fileorg worker` alike, bounded by
//! [`SCRAPE_TIMEOUT`] so a database that hangs cannot hang the scrape (its
//! `dependency_up` is then 0 and the queue gauges keep their last values).
//! The sampler lives with the health checks: this module stays below the
//! state and the database, which record through it.

use std::{
    collections::HashMap,
    future::Future,
    sync::{LazyLock, Mutex, OnceLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::domain::{BuiltIn, OperationKind, OperationState, Phase, RecordStatus, TriggerKind};

pub const API_REQUESTS_TOTAL: &str = "api_requests_total";
pub const API_REQUEST_DURATION_SECONDS: &str = "api_request_duration_seconds";
pub const API_REQUEST_SIZE_BYTES: &str = "api_request_size_bytes";
pub const API_RESPONSE_SIZE_BYTES: &str = "api_response_size_bytes";
pub const DB_QUERIES_TOTAL: &str = "db_queries_total";
pub const DB_QUERY_DURATION_SECONDS: &str = "db_query_duration_seconds";
pub const OPERATIONS_TOTAL: &str = "operations_total";
pub const ACTIVE_OPERATIONS: &str = "active_operations";
pub const FILES_ORGANIZED_TOTAL: &str = "files_organized_total";
pub const DUPLICATES_FOUND_TOTAL: &str = "duplicates_found_total";
pub const HASH_BYTES_READ_TOTAL: &str = "hash_bytes_read_total";
pub const HASH_CACHE_HITS_TOTAL: &str = "hash_cache_hits_total";
pub const STORAGE_BYTES_TOTAL: &str = "storage_bytes_total";
pub const ACTIVE_USERS: &str = "active_users";
// The gRPC server families as go-grpc-middleware's Prometheus provider names
// them, so dashboards and alerts written for gRPC services work unchanged.
pub const GRPC_SERVER_STARTED_TOTAL: &str = "grpc_server_started_total";
pub const GRPC_SERVER_HANDLED_TOTAL: &str = "grpc_server_handled_total";
pub const GRPC_SERVER_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
pub const GRPC_SERVER_MSG_RECEIVED_TOTAL: &str = "grpc_server_msg_received_total";
pub const GRPC_SERVER_MSG_SENT_TOTAL: &str = "grpc_server_msg_sent_total";
pub const BUILD_INFO: &str = "fileorg_build_info";
pub const FILES_MOVED_TOTAL: &str = "files_moved_total";
pub const OPERATION_PHASE_DURATION_SECONDS: &str = "operation_phase_duration_seconds";
pub const OPERATIONS_QUEUED: &str = "operations_queued";
pub const OPERATIONS_OLDEST_QUEUED_AGE_SECONDS: &str = "operations_oldest_queued_age_seconds";
pub const OPERATIONS_STALLED: &str = "operations_stalled";
pub const AUTOMATION_FIRINGS_TOTAL: &str = "automation_firings_total";
pub const RATE_LIMIT_REFUSALS_TOTAL: &str = "rate_limit_refusals_total";
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
pub const DB_POOL_MAX_CONNECTIONS: &str = "db_pool_max_connections";
pub const DB_POOL_GET_TIMEOUTS_TOTAL: &str = "db_pool_get_timeouts_total";
pub const DEPENDENCY_UP: &str = "dependency_up";
pub const CACHE_HITS_TOTAL: &str = "cache_hits_total";
pub const CACHE_MISSES_TOTAL: &str = "cache_misses_total";
pub const CACHE_ERRORS_TOTAL: &str = "cache_errors_total";
pub const STORAGE_VOLUME_SIZE_BYTES: &str = "storage_volume_size_bytes";
pub const STORAGE_VOLUME_AVAILABLE_BYTES: &str = "storage_volume_available_bytes";

/// The version and commit this binary was built from (build.rs:
/// FILEORG_GIT_SHA, else `git rev-parse HEAD`, else `unknown`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_SHA: &str = env!("FILEORG_GIT_SHA");

/// Bound on the values read at each scrape ([`scrape_gauges`]).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Buckets for durations: sub-millisecond queries up to long server streams.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];
/// Buckets for job phases: a tiny job's phase to an hour-long hash.
const PHASE_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];
/// Buckets for message bodies: 64 B to 64 MiB in steps of 4.
const BYTES_BUCKETS: &[f64] = &[
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// How often histograms are drained when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// How often `storage_bytes_total` and `active_users` are recomputed.
const GAUGE_REFRESH: Duration = Duration::from_secs(60);
/// A user counts as active this long after their last authenticated call.
const ACTIVE_USER_WINDOW: Duration = Duration::from_secs(15 * 60);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return
/// the same handle) and starts its upkeep thread.
pub fn install() -> anyhow::Result<&'static PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let mut builder = PrometheusBuilder::new();
    for name in [
        API_REQUEST_DURATION_SECONDS,
        DB_QUERY_DURATION_SECONDS,
        GRPC_SERVER_HANDLING_SECONDS,
    ] {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), SECONDS_BUCKETS)?;
    }
    for name in [API_REQUEST_SIZE_BYTES, API_RESPONSE_SIZE_BYTES] {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), BYTES_BUCKETS)?;
    }
    builder = builder.set_buckets_for_metric(
        Matcher::Full(OPERATION_PHASE_DURATION_SECONDS.into()),
        PHASE_BUCKETS,
    )?;
    let handle = builder
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    describe();
    PROCESS.describe();
    gauge!(BUILD_INFO, "version" => VERSION, "git_sha" => GIT_SHA).set(1.0);
    initialize_counters();
    let upkeep = handle.clone();
    // A plain thread: it must outlive any one tokio runtime (tests run many).
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        })?;
    Ok(HANDLE.get_or_init(|| handle))
}

fn describe() {
    describe_counter!(API_REQUESTS_TOTAL, "RPCs finished, by method and gRPC code");
    describe_histogram!(
        API_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "RPC duration until the response (or the server stream) ended"
    );
    describe_histogram!(
        API_REQUEST_SIZE_BYTES,
        Unit::Bytes,
        "request body bytes read by the server (gRPC framing included)"
    );
    describe_histogram!(
        API_RESPONSE_SIZE_BYTES,
        Unit::Bytes,
        "response body bytes sent (gRPC framing included)"
    );
    describe_counter!(DB_QUERIES_TOTAL, "SQL statements run on pooled connections");
    describe_histogram!(
        DB_QUERY_DURATION_SECONDS,
        Unit::Seconds,
        "SQL statement duration on pooled connections"
    );
    describe_counter!(
        OPERATIONS_TOTAL,
        "jobs that reached a final or planned state"
    );
    describe_gauge!(ACTIVE_OPERATIONS, "jobs running in this process");
    describe_counter!(FILES_ORGANIZED_TOTAL, "journal records applied, by outcome");
    describe_counter!(
        DUPLICATES_FOUND_TOTAL,
        "duplicate files found while planning"
    );
    describe_counter!(
        HASH_BYTES_READ_TOTAL,
        Unit::Bytes,
        "file content read by hash phases (what the hash cache did not answer)"
    );
    describe_counter!(
        HASH_CACHE_HITS_TOTAL,
        "files whose hashes a hash phase took from the hash cache"
    );
    describe_gauge!(
        STORAGE_BYTES_TOTAL,
        Unit::Bytes,
        "sum of users.storage_used_bytes"
    );
    describe_gauge!(
        ACTIVE_USERS,
        "distinct users authenticated by this process in the last 15 minutes"
    );
    describe_counter!(GRPC_SERVER_STARTED_TOTAL, "RPCs started on the server");
    describe_counter!(
        GRPC_SERVER_HANDLED_TOTAL,
        "RPCs completed on the server, regardless of success or failure"
    );
    describe_histogram!(
        GRPC_SERVER_HANDLING_SECONDS,
        Unit::Seconds,
        "time until the RPC was handled (a server stream: until it ended)"
    );
    describe_counter!(
        GRPC_SERVER_MSG_RECEIVED_TOTAL,
        "messages received from clients"
    );
    describe_counter!(GRPC_SERVER_MSG_SENT_TOTAL, "messages sent to clients");
    describe_gauge!(BUILD_INFO, "1, labelled with the version and git commit");
    describe_counter!(FILES_MOVED_TOTAL, "files moved by jobs, by job kind");
    describe_histogram!(
        OPERATION_PHASE_DURATION_SECONDS,
        Unit::Seconds,
        "time a job spent in a phase (each run of the phase)"
    );
    describe_gauge!(OPERATIONS_QUEUED, "runnable jobs no worker holds");
    describe_gauge!(
        OPERATIONS_OLDEST_QUEUED_AGE_SECONDS,
        Unit::Seconds,
        "seconds since the oldest waiting job last changed"
    );
    describe_gauge!(
        OPERATIONS_STALLED,
        "runnable jobs whose worker stopped heart-beating"
    );
    describe_counter!(
        AUTOMATION_FIRINGS_TOTAL,
        "operations created by automations, by trigger"
    );
    describe_counter!(
        RATE_LIMIT_REFUSALS_TOTAL,
        "requests refused by a rate limit, by limit and bucket"
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Postgres pool connections, by state (idle, in_use)"
    );
    describe_gauge!(DB_POOL_MAX_CONNECTIONS, "DATABASE_POOL_SIZE");
    describe_counter!(
        DB_POOL_GET_TIMEOUTS_TOTAL,
        "waits for a pooled connection that timed out"
    );
    describe_gauge!(
        DEPENDENCY_UP,
        "1 when the dependency (database, redis) answered the last scrape's check"
    );
    describe_gauge!(
        STORAGE_VOLUME_SIZE_BYTES,
        Unit::Bytes,
        "size of the file system holding STORAGE_ROOT"
    );
    describe_gauge!(
        STORAGE_VOLUME_AVAILABLE_BYTES,
        Unit::Bytes,
        "bytes of that file system available to the service"
    );
}

/// Registers the counters of rare events at 0, so that they are exported
/// (and `rate()` sees their first increment) before anything happened: job
/// outcomes, files moved, rate-limit refusals, automation firings, cache
/// errors.
fn initialize_counters() {
    for kind in OperationKind::ALL {
        for state in [
            OperationState::Succeeded,
            OperationState::Failed,
            OperationState::Cancelled,
        ] {
            counter!(OPERATIONS_TOTAL, "kind" => kind.as_str(), "state" => state.as_str())
                .increment(0);
        }
        counter!(FILES_MOVED_TOTAL, "kind" => kind.as_str()).increment(0);
    }
    let buckets = ["api", "upload", "export"];
    let refusals = [(RefusedBy::Address, "any"), (RefusedBy::Login, "login")]
        .into_iter()
        .chain(buckets.map(|b| (RefusedBy::User, b)))
        .chain(buckets.map(|b| (RefusedBy::AllUsers, b)));
    for (limit, bucket) in refusals {
        counter!(RATE_LIMIT_REFUSALS_TOTAL, "limit" => limit.as_str(), "bucket" => bucket)
            .increment(0);
    }
    for trigger in TriggerKind::ALL {
        if *trigger != TriggerKind::Manual {
            counter!(AUTOMATION_FIRINGS_TOTAL, "trigger" => trigger.as_str()).increment(0);
        }
    }
    counter!(CACHE_ERRORS_TOTAL).increment(0);
}

/// The `process_*` collector (CPU, memory, file descriptors, threads).
static PROCESS: LazyLock<metrics_process::Collector> = LazyLock::new(Default::default);

/// What a process reads at each scrape besides its own `process_*` metrics
/// (`infra::health::sampler`: the queue, the pool, the dependencies).
pub type Sampler =
    std::sync::Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The `/metrics` endpoint and background tasks of one server or worker.
pub struct Exporter {
    tasks: Vec<JoinHandle<()>>,
}

impl Exporter {
    /// Waits (bounded) for the endpoint and refresher to stop after shutdown.
    pub async fn join(self, timeout: Duration) {
        for task in self.tasks {
            let _ = tokio::time::timeout(timeout, task).await;
        }
    }
}

/// When METRICS_ADDR (`addr`) is set: installs the recorder and serves
/// `/metrics` on it (running `sample` at each scrape) until `shutdown` turns
/// true. The API server then adds the refresher of the gauges only it
/// maintains ([`refresh_gauges`]).
pub async fn start(
    addr: Option<std::net::SocketAddr>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    sample: Sampler,
) -> anyhow::Result<Option<Exporter>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let handle = install()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("METRICS_ADDR {addr}"))?;
    let mut stop = shutdown;
    let tasks = vec![tokio::spawn(serve(listener, handle, sample, async move {
        let _ = stop.wait_for(|s| *s).await;
    }))];
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    Ok(Some(Exporter { tasks }))
}

impl Exporter {
    /// Runs `task` with the exporter; [`Exporter::join`] waits for it too.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    handle: &'static PrometheusHandle,
    sample: Sampler,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let sample = sample.clone();
            async move {
                PROCESS.collect();
                if tokio::time::timeout(SCRAPE_TIMEOUT, sample())
                    .await
                    .is_err()
                {
                    gauge!(DEPENDENCY_UP, "dependency" => "database").set(0.0);
                }
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(%error, "the metrics endpoint stopped");
    }
}

/// Recomputes `storage_bytes_total` (from `storage_total`, the sum of the
/// users' storage) and `active_users` every minute, until `shutdown`.
pub async fn refresh_gauges<F, Fut>(
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    storage_total: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<i64>>,
{
    loop {
        match storage_total().await {
            Ok(bytes) => gauge!(STORAGE_BYTES_TOTAL).set(bytes as f64),
            Err(error) => tracing::debug!(%error, "storage_bytes_total not refreshed"),
        }
        prune_active_users(Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(GAUGE_REFRESH) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Last authenticated call per user, for `active_users`.
static ACTIVE: LazyLock<Mutex<ActiveUsers>> = LazyLock::new(Default::default);

#[derive(Default)]
struct ActiveUsers {
    last_seen: HashMap<Uuid, Instant>,
    pruned: Option<Instant>,
}

/// Notes an authenticated call by `user_id` (called by the auth layer).
pub fn user_seen(user_id: Uuid) {
    if HANDLE.get().is_none() {
        return; // metrics are off: keep nothing
    }
    let now = Instant::now();
    let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    if active.last_seen.insert(user_id, now).is_none() {
        // A new user: prune here too, so the map stays bounded even between
        // refreshes.
        if active.pruned.is_none_or(|t| now - t >= GAUGE_REFRESH) {
            active.prune(now);
        }
        gauge!(ACTIVE_USERS).set(active.last_seen.len() as f64);
    }
}

fn prune_active_users(now: Instant) {
    let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    active.prune(now);
    gauge!(ACTIVE_USERS).set(active.last_seen.len() as f64);
}

impl ActiveUsers {
    fn prune(&mut self, now: Instant) {
        self.last_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) < ACTIVE_USER_WINDOW);
        self.pruned = Some(now);
    }
}

/// A rate limit refused a request: which limit, and for which bucket of
/// RPCs (`api`, `upload`, `export`; `any` for the per-address guard,
/// `login` for Login and Register attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBy {
    /// The per-address burst guard, before authentication.
    Address,
    /// The user's own window.
    User,
    /// The window shared by all users.
    AllUsers,
    /// The limit on Login and Register attempts.
    Login,
}

impl RefusedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedBy::Address => "address",
            RefusedBy::User => "per_user",
            RefusedBy::AllUsers => "all_users",
            RefusedBy::Login => "login",
        }
    }
}

pub fn rate_limit_refused(limit: RefusedBy, bucket: &'static str) {
    counter!(RATE_LIMIT_REFUSALS_TOTAL, "limit" => limit.as_str(), "bucket" => bucket).increment(1);
}

/// An automation created an operation.
pub fn automation_fired(trigger: TriggerKind) {
    counter!(AUTOMATION_FIRINGS_TOTAL, "trigger" => trigger.as_str()).increment(1);
}

/// A job run moved `files` files (an undo: moved back).
pub fn files_moved(kind: OperationKind, files: u64) {
    if files > 0 {
        counter!(FILES_MOVED_TOTAL, "kind" => kind.as_str()).increment(files);
    }
}

/// A job spent `seconds` in `phase` (one run of it).
pub fn phase_ended(kind: OperationKind, phase: Phase, seconds: f64) {
    histogram!(OPERATION_PHASE_DURATION_SECONDS, "kind" => kind.as_str(), "phase" => phase.as_str())
        .record(seconds);
}

/// A job ended in `state` (succeeded, cancelled, planned or failed).
pub fn operation_finished(kind: OperationKind, state: OperationState) {
    counter!(OPERATIONS_TOTAL, "kind" => kind.as_str(), "state" => state.as_str()).increment(1);
}

/// Counts a job as running in this process while it lives.
pub struct ActiveOperation(());

impl ActiveOperation {
    pub fn start() -> ActiveOperation {
        gauge!(ACTIVE_OPERATIONS).increment(1.0);
        ActiveOperation(())
    }
}

impl Drop for ActiveOperation {
    fn drop(&mut self) {
        gauge!(ACTIVE_OPERATIONS).decrement(1.0);
    }
}

/// One journal record applied with outcome `status`. Custom categories are
/// users' own names, so they share the label `custom`.
pub fn file_organized(category: &str, status: RecordStatus) {
    let category = BuiltIn::ALL
        .iter()
        .map(|b| b.name())
        .find(|name| *name == category)
        .unwrap_or("custom");
    counter!(FILES_ORGANIZED_TOTAL, "category" => category, "status" => status.as_str())
        .increment(1);
}

pub fn duplicates_found(count: u64) {
    counter!(DUPLICATES_FOUND_TOTAL).increment(count);
}

/// One hash phase: bytes of content it read, files the hash cache answered.
pub fn hashed(bytes_read: u64, cache_hits: u64) {
    counter!(HASH_BYTES_READ_TOTAL).increment(bytes_read);
    counter!(HASH_CACHE_HITS_TOTAL).increment(cache_hits);
}

/// diesel instrumentation for every pooled connection: counts finished
/// statements and times each from its start. One slot, not a queue: a
/// statement whose future was dropped never finishes, and its start must not
/// skew the next one (pipelined statements, rare here, are counted but only
/// the first is timed).
#[derive(Default)]
pub struct QueryMetrics {
    started: Option<Instant>,
}

impl Instrumentation for QueryMetrics {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { .. } => {
                counter!(DB_QUERIES_TOTAL).increment(1);
                if let Some(started) = self.started.take() {
                    histogram!(DB_QUERY_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
                }
            }
            _ => {}
        }
    }
}
