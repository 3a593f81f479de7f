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

use crate::domain::{BuiltIn, OperationKind, OperationState, RecordStatus};

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

/// Buckets for durations: sub-millisecond queries up to long server streams.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
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
    for name in [API_REQUEST_DURATION_SECONDS, DB_QUERY_DURATION_SECONDS] {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), SECONDS_BUCKETS)?;
    }
    for name in [API_REQUEST_SIZE_BYTES, API_RESPONSE_SIZE_BYTES] {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), BYTES_BUCKETS)?;
    }
    let handle = builder
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    describe();
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
}

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
/// `/metrics` on it until `shutdown` turns true. The API server then adds
/// the refresher of the gauges only it maintains ([`refresh_gauges`]).
pub async fn start(
    addr: Option<std::net::SocketAddr>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<Exporter>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let handle = install()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("METRICS_ADDR {addr}"))?;
    let mut stop = shutdown;
    let tasks = vec![tokio::spawn(serve(listener, handle, async move {
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
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            (
                [(
                    http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                handle.render(),
            )
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
