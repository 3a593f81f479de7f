//! C concurrent clients over a request mix, bounded by time and count.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, auth_service_client::AuthServiceClient, file_service_client::FileServiceClient,
    operation_service_client::OperationServiceClient, report_service_client::ReportServiceClient,
};
use tonic::transport::Channel;

use super::{Session, bearer, stats::Histogram, tree::Rng};

#[derive(Clone, Copy, Debug)]
pub enum Mix {
    Realistic,
    GetOperation,
}

impl Mix {
    pub fn parse(s: &str) -> anyhow::Result<Mix> {
        match s {
            "realistic" => Ok(Mix::Realistic),
            "get-operation" => Ok(Mix::GetOperation),
            _ => anyhow::bail!("--mix must be `realistic` or `get-operation`"),
        }
    }
}

/// Weights of the realistic mix, per mille.
const REALISTIC: &[(&str, u64)] = &[
    ("GetOperation", 400),
    ("ListOperations", 150),
    ("ListFileRecords", 200),
    ("GetOperationReport", 100),
    ("SearchFiles", 145),
    ("Login", 5),
];

pub struct Plan {
    pub uri: String,
    pub clients: usize,
    pub duration: Duration,
    pub requests: u64,
    /// Open loop at this many requests per second in total (None: closed loop).
    pub rate: Option<f64>,
    pub mix: Mix,
    pub operation: String,
    pub session: Session,
    pub seed: u64,
    /// Ends the load early once set (the duration still bounds it).
    pub stop: Option<Arc<AtomicBool>>,
}

pub struct LoadResult {
    pub json: serde_json::Value,
    pub rate_limited: u64,
}

#[derive(Default)]
struct ClientStats {
    all: Histogram,
    by_method: BTreeMap<&'static str, Histogram>,
    ok: u64,
    failures: BTreeMap<String, u64>,
    failures_by_method: BTreeMap<String, u64>,
}

struct Shared {
    operation: String,
    report: String,
    token: String,
    email: String,
    hashes: Vec<String>,
    deadline: Instant,
    budget: AtomicU64,
    stop: Option<Arc<AtomicBool>>,
}

impl Shared {
    /// Past the deadline, or told to stop.
    fn over(&self) -> bool {
        Instant::now() >= self.deadline
            || self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// The method of a client's next request: its first one is the mix's
/// `index`-th method (so that with at least as many clients as methods, a
/// short run measures every method of the mix), the others drawn by weight.
fn pick(rng: &mut Rng, mix: Mix, first: Option<usize>) -> &'static str {
    match (mix, first) {
        (Mix::GetOperation, _) => "GetOperation",
        (Mix::Realistic, Some(index)) => REALISTIC[index % REALISTIC.len()].0,
        (Mix::Realistic, None) => {
            let mut r = rng.range(0, 1000);
            for (name, w) in REALISTIC {
                if r < *w {
                    return name;
                }
                r -= w;
            }
            "GetOperation"
        }
    }
}

const NAME_TERMS: &[&str] = &[
    "photos", "work", "_12", "invoice", ".jpg", "notes_", "2023", "zzz",
];

async fn one(
    channel: &Channel,
    method: &str,
    shared: &Shared,
    rng: &mut Rng,
    page_token: &mut String,
) -> Result<(), tonic::Status> {
    let token = &shared.token;
    match method {
        "GetOperation" => {
            OperationServiceClient::new(channel.clone())
                .get_operation(bearer(
                    pb::GetOperationRequest {
                        name: shared.operation.clone(),
                    },
                    token,
                ))
                .await?;
        }
        "ListOperations" => {
            OperationServiceClient::new(channel.clone())
                .list_operations(bearer(
                    pb::ListOperationsRequest {
                        page_size: 50,
                        ..Default::default()
                    },
                    token,
                ))
                .await?;
        }
        "ListFileRecords" => {
            // Walk the journal page by page, starting over at the end.
            let response = FileServiceClient::new(channel.clone())
                .list_file_records(bearer(
                    pb::ListFileRecordsRequest {
                        parent: shared.operation.clone(),
                        page_size: 100,
                        page_token: std::mem::take(page_token),
                        ..Default::default()
                    },
                    token,
                ))
                .await?
                .into_inner();
            *page_token = response.next_page_token;
        }
        "GetOperationReport" => {
            ReportServiceClient::new(channel.clone())
                .get_operation_report(bearer(
                    pb::GetOperationReportRequest {
                        name: shared.report.clone(),
                    },
                    token,
                ))
                .await?;
        }
        "SearchFiles" => {
            let request = if !shared.hashes.is_empty() && rng.range(0, 4) == 0 {
                pb::SearchFilesRequest {
                    content_hash: shared.hashes[rng.range(0, shared.hashes.len() as u64) as usize]
                        .clone(),
                    page_size: 50,
                    ..Default::default()
                }
            } else {
                pb::SearchFilesRequest {
                    name_contains: NAME_TERMS[rng.range(0, NAME_TERMS.len() as u64) as usize]
                        .into(),
                    page_size: 50,
                    ..Default::default()
                }
            };
            FileServiceClient::new(channel.clone())
                .search_files(bearer(request, token))
                .await?;
        }
        "Login" => {
            AuthServiceClient::new(channel.clone())
                .login(pb::LoginRequest {
                    email: shared.email.clone(),
                    password: super::PASSWORD.into(),
                })
                .await?;
        }
        _ => unreachable!("unknown method {method}"),
    }
    Ok(())
}

/// When a client sends: as soon as its last request answered (closed loop),
/// or on a fixed schedule (open loop, `--rate`).
#[derive(Clone, Copy)]
enum Pacing {
    Closed,
    Open { first: Instant, interval: Duration },
}

async fn client(
    channel: Channel,
    shared: Arc<Shared>,
    mix: Mix,
    index: usize,
    seed: u64,
    pacing: Pacing,
) -> ClientStats {
    let mut first = Some(index);
    let mut stats = ClientStats::default();
    let mut rng = Rng::new(seed);
    let mut page_token = String::new();
    let mut sent: u32 = 0;
    loop {
        // Open loop: wait for this request's slot, and measure its latency
        // from the slot, not from when it could finally be sent (a server
        // that falls behind must not hide it by slowing the clients down).
        let scheduled = match pacing {
            Pacing::Closed => None,
            Pacing::Open { first, interval } => {
                let at = first + interval * sent;
                sent = sent.saturating_add(1);
                if at >= shared.deadline {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                Some(at)
            }
        };
        if shared.over() {
            break;
        }
        // Take one request from the shared budget.
        if shared
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_err()
        {
            break;
        }
        let method = pick(&mut rng, mix, first.take());
        let started = scheduled.unwrap_or_else(Instant::now);
        let remaining = shared.deadline.saturating_duration_since(started) + Duration::from_secs(5);
        let result = match tokio::time::timeout(
            remaining,
            one(&channel, method, &shared, &mut rng, &mut page_token),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(tonic::Status::deadline_exceeded("client-side timeout")),
        };
        let elapsed = started.elapsed();
        stats.all.record(elapsed);
        stats.by_method.entry(method).or_default().record(elapsed);
        match result {
            Ok(()) => stats.ok += 1,
            Err(status) => {
                let code = format!("{:?}", status.code());
                *stats
                    .failures_by_method
                    .entry(format!("{method}:{code}"))
                    .or_default() += 1;
                *stats.failures.entry(code).or_default() += 1;
                if status.code() == tonic::Code::ResourceExhausted {
                    // Back off a little instead of hammering a refusing server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    stats
}

/// Content hashes (hex) of some records of the operation, for SearchFiles by hash.
async fn sample_hashes(channel: &Channel, operation: &str, token: &str) -> Vec<String> {
    let Ok(response) = FileServiceClient::new(channel.clone())
        .list_file_records(bearer(
            pb::ListFileRecordsRequest {
                parent: operation.into(),
                page_size: 500,
                ..Default::default()
            },
            token,
        ))
        .await
    else {
        return Vec::new();
    };
    response
        .into_inner()
        .file_records
        .into_iter()
        .map(|r| r.content_hash)
        .filter(|h| !h.is_empty())
        .take(50)
        .collect()
}

pub async fn run(plan: Plan) -> anyhow::Result<LoadResult> {
    let endpoint = tonic::transport::Endpoint::from_shared(plan.uri.clone())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let first = endpoint.connect().await?;
    let hashes = sample_hashes(&first, &plan.operation, &plan.session.token).await;
    let report = plan.operation.replacen("operations/", "reports/", 1);
    println!(
        "load: {} clients ({}), {:?} mix, up to {} s and {} requests, operation {}",
        plan.clients,
        match plan.rate {
            Some(rate) => format!("open loop at {rate} req/s"),
            None => "closed loop".into(),
        },
        plan.mix,
        plan.duration.as_secs(),
        plan.requests,
        plan.operation
    );
    // One connection per client: C clients really are C HTTP/2 connections.
    let mut channels = Vec::with_capacity(plan.clients);
    for _ in 0..plan.clients {
        channels.push(endpoint.connect().await?);
    }
    let started = Instant::now();
    let shared = Arc::new(Shared {
        operation: plan.operation.clone(),
        report,
        token: plan.session.token.clone(),
        email: plan.session.email.clone(),
        hashes,
        deadline: started + plan.duration,
        budget: AtomicU64::new(plan.requests),
        stop: plan.stop.clone(),
    });
    // Open loop: each client sends every clients/rate seconds, the clients'
    // schedules staggered evenly over one interval.
    let interval = plan
        .rate
        .map(|rate| Duration::from_secs_f64(plan.clients as f64 / rate));
    let tasks: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(i, channel)| {
            let pacing = match interval {
                None => Pacing::Closed,
                Some(interval) => Pacing::Open {
                    first: started + interval.mul_f64(i as f64 / plan.clients as f64),
                    interval,
                },
            };
            tokio::spawn(client(
                channel,
                shared.clone(),
                plan.mix,
                i,
                plan.seed.wrapping_add(i as u64 * 7919),
                pacing,
            ))
        })
        .collect();
    let mut total = ClientStats::default();
    for task in tasks {
        let s = task.await?;
        total.all.merge(&s.all);
        for (m, h) in &s.by_method {
            total.by_method.entry(m).or_default().merge(h);
        }
        total.ok += s.ok;
        for (k, v) in s.failures {
            *total.failures.entry(k).or_default() += v;
        }
        for (k, v) in s.failures_by_method {
            *total.failures_by_method.entry(k).or_default() += v;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let requests = total.all.count;
    let failed: u64 = total.failures.values().sum();
    let rate_limited = total
        .failures
        .get("ResourceExhausted")
        .copied()
        .unwrap_or(0);
    let latency = total.all.summary();
    let mut methods = serde_json::Map::new();
    for (m, h) in &total.by_method {
        let mut s = h.summary();
        s["requests_per_second"] = serde_json::json!(h.count as f64 / secs);
        methods.insert((*m).into(), s);
    }
    println!(
        "load: {requests} requests in {secs:.2} s = {:.0} req/s, success {:.2} %, failures {:?}",
        requests as f64 / secs,
        if requests == 0 {
            0.0
        } else {
            total.ok as f64 * 100.0 / requests as f64
        },
        total.failures
    );
    println!(
        "  latency ms: min {:.2} avg {:.2} p50 {:.2} p95 {:.2} p99 {:.2} max {:.2}",
        latency["min_ms"].as_f64().unwrap_or(0.0),
        latency["avg_ms"].as_f64().unwrap_or(0.0),
        latency["p50_ms"].as_f64().unwrap_or(0.0),
        latency["p95_ms"].as_f64().unwrap_or(0.0),
        latency["p99_ms"].as_f64().unwrap_or(0.0),
        latency["max_ms"].as_f64().unwrap_or(0.0),
    );
    for (m, s) in &methods {
        println!(
            "  {m:<19} n={:<8} p50 {:>7.2} p95 {:>7.2} p99 {:>7.2} ms",
            s["count"],
            s["p50_ms"].as_f64().unwrap_or(0.0),
            s["p95_ms"].as_f64().unwrap_or(0.0),
            s["p99_ms"].as_f64().unwrap_or(0.0)
        );
    }
    let json = serde_json::json!({
        "clients": plan.clients,
        "loop": if plan.rate.is_some() { "open" } else { "closed" },
        "offered_rate_rps": plan.rate,
        "mix": format!("{:?}", plan.mix),
        "operation": plan.operation,
        "duration_seconds": secs,
        "total_requests": requests,
        "successful_requests": total.ok,
        "failed_requests": failed,
        "success_rate": if requests == 0 { 0.0 } else { total.ok as f64 / requests as f64 },
        "failures_by_code": total.failures,
        "failures_by_method": total.failures_by_method,
        "rate_limited_requests": rate_limited,
        "non_rate_limit_failures": failed - rate_limited,
        "throughput_rps": requests as f64 / secs,
        "latency_ms": latency,
        "by_method": methods,
    });
    Ok(LoadResult { json, rate_limited })
}
