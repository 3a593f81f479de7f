//! Soak: 100 concurrent clients, half over native gRPC and half over REST
//! through a real Envoy, against a child `fileorg serve`, for a bounded time,
//! with a few organize jobs running meanwhile.
//!
//! Asserted: no call fails except by a rate-limit refusal (the server runs
//! with very high RATE_LIMIT_* values, so none is expected), every job
//! succeeds, and the server's resident memory stays flat.
//!
//! Each client pauses 0.5–1.5 s between calls (think time), so the offered
//! load stays within what a shared CI machine serves; saturation is
//! `fileorg loadtest`'s subject, not this test's.
//!
//! Memory is sampled from `/proc/<pid>/status` (RssAnon) of the child process
//! once a second. A growth trend is judged robustly on a noisy machine: the
//! first third of the run is warm-up (pools, caches and allocator arenas
//! fill), and the median of the last third must not exceed the median of the
//! middle third by more than 25 % + 16 MiB. Medians ignore the spikes that
//! a burst of concurrent requests or an organize job causes; a leak
//! proportional to requests grows by the same amount in each third and
//! shows up as a steadily higher last third.
//!
//! `SOAK_SECS` (default 40) sets the length; the long form is documented in
//! docs/reliability.md.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, OperationState, auth_service_client::AuthServiceClient,
    file_service_client::FileServiceClient, operation_service_client::OperationServiceClient,
    report_service_client::ReportServiceClient,
};
use tonic::{Code, Status, transport::Channel};

use crate::{
    common::{
        KillOnDrop, PASSWORD, TestApp, bearer, connect_when_up, envoy::Envoy, free_port, tree,
    },
    operations::organize,
};

/// Calls that count as expected refusals under load.
pub fn is_rate_limited(status: &Status) -> bool {
    status.code() == Code::ResourceExhausted
}

fn timed<T>(deadline: Duration, mut request: tonic::Request<T>) -> tonic::Request<T> {
    request.set_timeout(deadline);
    request
}

/// One read of the mix, chosen by `i`, with a deadline that only guards
/// against hangs.
pub async fn mixed_read(
    channel: &Channel,
    token: &str,
    operation: &str,
    i: u64,
) -> Result<(), Status> {
    let id = operation.trim_start_matches("operations/");
    let deadline = Duration::from_secs(30);
    let call = async {
        match i % 6 {
            0 => OperationServiceClient::new(channel.clone())
                .get_operation(timed(
                    deadline,
                    bearer(
                        pb::GetOperationRequest {
                            name: operation.into(),
                        },
                        token,
                    ),
                ))
                .await
                .map(drop),
            1 => OperationServiceClient::new(channel.clone())
                .list_operations(timed(
                    deadline,
                    bearer(
                        pb::ListOperationsRequest {
                            page_size: 20,
                            ..Default::default()
                        },
                        token,
                    ),
                ))
                .await
                .map(drop),
            2 => FileServiceClient::new(channel.clone())
                .list_file_records(timed(
                    deadline,
                    bearer(
                        pb::ListFileRecordsRequest {
                            parent: operation.into(),
                            page_size: 50,
                            ..Default::default()
                        },
                        token,
                    ),
                ))
                .await
                .map(drop),
            3 => ReportServiceClient::new(channel.clone())
                .get_operation_report(timed(
                    deadline,
                    bearer(
                        pb::GetOperationReportRequest {
                            name: format!("reports/{id}"),
                        },
                        token,
                    ),
                ))
                .await
                .map(drop),
            4 => FileServiceClient::new(channel.clone())
                .search_files(timed(
                    deadline,
                    bearer(
                        pb::SearchFilesRequest {
                            name_contains: "file".into(),
                            page_size: 20,
                            ..Default::default()
                        },
                        token,
                    ),
                ))
                .await
                .map(drop),
            _ => AuthServiceClient::new(channel.clone())
                .get_current_user(timed(deadline, bearer(pb::GetCurrentUserRequest {}, token)))
                .await
                .map(drop),
        }
    };
    tokio::time::timeout(deadline + Duration::from_secs(5), call)
        .await
        .unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(
                "client-side guard: the call hung",
            ))
        })
}

/// The same mix over REST (Envoy transcoding); returns the HTTP status.
async fn mixed_rest(
    http: &reqwest::Client,
    envoy: &Envoy,
    token: &str,
    operation: &str,
    i: u64,
) -> Result<u16, String> {
    let id = operation.trim_start_matches("operations/");
    let path = match i % 6 {
        0 => format!("/api/v1/operations/{id}"),
        1 => "/api/v1/operations?page_size=20".into(),
        2 => format!("/api/v1/operations/{id}/files?page_size=50"),
        3 => format!("/api/v1/reports/{id}"),
        4 => "/api/v1/files:search?name_contains=file&page_size=20".into(),
        _ => "/api/v1/users/me".into(),
    };
    let response = http
        .get(envoy.url(&path))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let status = response.status().as_u16();
    // Read the body: a cut response must count as an error.
    response
        .bytes()
        .await
        .map_err(|e| format!("{path}: body: {e}"))?;
    Ok(status)
}

/// Resident anonymous memory (RssAnon: heap and stacks) of a process, in
/// KiB. Not VmRSS: that includes pages of the mapped binary, which the
/// kernel drops and reloads under page-cache pressure (tens of MiB for a
/// debug build), unrelated to what the process allocates.
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

async fn login(channel: &Channel, email: &str) -> String {
    let mut auth = AuthServiceClient::new(channel.clone());
    auth.register(pb::RegisterRequest {
        email: email.into(),
        password: PASSWORD.into(),
        display_name: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .access_token
}

async fn user_id(channel: &Channel, token: &str) -> String {
    AuthServiceClient::new(channel.clone())
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, token))
        .await
        .unwrap()
        .into_inner()
        .id
}

/// Creates an organize of `source` and waits (bounded) for its end.
async fn organize_and_wait(channel: &Channel, token: &str, source: &str) -> pb::Operation {
    let mut ops = OperationServiceClient::new(channel.clone());
    let op = ops
        .create_operation(bearer(
            pb::CreateOperationRequest {
                operation: Some(organize(source)),
                request_id: String::new(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = ops
            .get_operation(bearer(
                pb::GetOperationRequest {
                    name: op.name.clone(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        if [
            OperationState::Succeeded,
            OperationState::Failed,
            OperationState::Cancelled,
        ]
        .iter()
        .any(|s| *s as i32 == now.state)
        {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "job stuck: {now:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const CLIENTS: usize = 100;
const HIGH: &str = "1000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_grpc_and_rest_with_flat_memory() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("SOAK_SECS is a number of seconds"))
        .unwrap_or(40);
    let app = TestApp::spawn_with(crate::common::Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await;
    let port = free_port();
    let prefix = format!("fileorg-soak-{}:", uuid::Uuid::new_v4().simple());
    let mut command = app.fileorg_command(&["serve"]);
    command
        .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKERS", "2")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("REDIS_KEY_PREFIX", &prefix)
        .env("DATABASE_POOL_SIZE", "16")
        .stderr(std::process::Stdio::inherit());
    for limit in crate::common::RATE_LIMITS {
        command.env(limit, HIGH);
    }
    let mut server = KillOnDrop(command.spawn().expect("start fileorg serve"));
    let pid = server.id();
    let channel = connect_when_up(port).await;
    let envoy = Envoy::start(port).await;

    // A reader with a finished operation to read, and job users with trees.
    let token = login(&channel, &TestApp::email("soak")).await;
    let root = app
        .state
        .config
        .storage_root
        .join(user_id(&channel, &token).await);
    for i in 0..60 {
        tree::write(
            &root,
            &format!("base/f{i}.txt"),
            format!("file {i}").as_bytes(),
        );
    }
    let base = organize_and_wait(&channel, &token, "base").await;
    assert_eq!(base.state, OperationState::Succeeded as i32);
    let jobs = (secs / 8).clamp(2, 20) as usize;
    let mut job_users = Vec::new();
    for j in 0..jobs {
        let t = login(&channel, &TestApp::email(&format!("soakjob{j}"))).await;
        let r = app
            .state
            .config
            .storage_root
            .join(user_id(&channel, &t).await);
        for i in 0..100 {
            tree::write(
                &r,
                &format!("job/d{}/file{i}.bin", i % 5),
                format!("job {j} file {i}").as_bytes(),
            );
        }
        job_users.push((t, r));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let errors: Arc<Mutex<BTreeMap<String, u64>>> = Default::default();
    let envoy = Arc::new(envoy);
    let http = reqwest::Client::new();
    // Ten connections for the gRPC clients (HTTP/2 multiplexes the rest).
    let mut channels = Vec::new();
    for _ in 0..10 {
        channels.push(connect_when_up(port).await);
    }
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (stop, ok, limited, errors) =
            (stop.clone(), ok.clone(), limited.clone(), errors.clone());
        let (token, operation) = (token.clone(), base.name.clone());
        let channel = channels[c % channels.len()].clone();
        let (http, envoy) = (http.clone(), envoy.clone());
        tasks.push(tokio::spawn(async move {
            // Bounded in count as well as in time.
            for i in (c as u64)..(c as u64 + 200_000) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let outcome = if c % 2 == 0 {
                    match mixed_read(&channel, &token, &operation, i).await {
                        Ok(()) => Ok(()),
                        Err(s) if is_rate_limited(&s) => Err(None),
                        Err(s) => Err(Some(format!("grpc {:?}: {}", s.code(), s.message()))),
                    }
                } else {
                    match mixed_rest(&http, &envoy, &token, &operation, i).await {
                        Ok(200) => Ok(()),
                        Ok(429) => Err(None),
                        Ok(code) => Err(Some(format!("rest {code} (mix {})", i % 6))),
                        Err(e) => Err(Some(format!("rest {e}"))),
                    }
                };
                // Think time: clients of a real service pause between calls.
                // Without it 100 closed-loop clients saturate a loaded CI
                // machine and measure queueing (calls wait for a database
                // connection past the pool's 5 s and get UNAVAILABLE, the
                // designed answer to overload), not leaks or errors.
                let pause = 500 + (i * 7919 + c as u64 * 104_729) % 1000;
                tokio::time::sleep(Duration::from_millis(pause)).await;
                match outcome {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(None) => limited.fetch_add(1, Ordering::Relaxed),
                    Err(Some(e)) => {
                        *errors.lock().unwrap().entry(e).or_default() += 1;
                        0
                    }
                };
            }
        }));
    }
    // A few organize jobs spread over the run.
    let job_runner = {
        let channel = channel.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut results = Vec::new();
            for (t, r) in job_users {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let before = tree::content_multiset(&r);
                let done = organize_and_wait(&channel, &t, "job").await;
                results.push((done, before == tree::content_multiset(&r)));
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            results
        })
    };

    let mut rss = Vec::new();
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss.push(rss_anon_kib(pid).expect("the server process is gone"));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let results = job_runner.await.unwrap();
    server.kill();

    let (ok, limited) = (ok.load(Ordering::Relaxed), limited.load(Ordering::Relaxed));
    let third = rss.len() / 3;
    let (middle, last) = (median(&rss[third..2 * third]), median(&rss[2 * third..]));
    println!(
        "soak {secs}s, {CLIENTS} clients: {ok} ok, {limited} rate-limited, errors {:?}, \
         {} jobs; RssAnon KiB every second: {rss:?}; median middle third {middle}, last third {last}",
        errors.lock().unwrap(),
        results.len()
    );
    assert!(
        errors.lock().unwrap().is_empty(),
        "errors under load: {:?}",
        errors.lock().unwrap()
    );
    assert!(ok > CLIENTS as u64, "the clients barely ran: {ok} calls");
    assert!(results.len() >= 2, "fewer than two jobs ran");
    for (op, same_content) in &results {
        assert_eq!(op.state, OperationState::Succeeded as i32, "{op:?}");
        assert!(same_content, "a job changed file contents: {op:?}");
    }
    assert!(
        last <= middle + middle / 4 + 16 * 1024,
        "server memory grows: median {middle} KiB in the middle third, {last} KiB in the last"
    );
}
