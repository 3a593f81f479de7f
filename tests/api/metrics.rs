//! Prometheus metrics on METRICS_ADDR, scraped over HTTP like Prometheus does.
//!
//! The recorder is global to the process and every test server records into
//! it, so these tests compare scrapes taken before and after their own calls
//! and assert that each expected series grew by at least what they caused:
//! tests running in parallel can only add to a counter. That each call is
//! recorded exactly once is checked by the layer's unit tests, which use a
//! private recorder.

use std::{collections::HashMap, time::Duration};

use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState};
use tonic::{Code, Request};

use crate::{
    common::{Options, TestApp, assert_code, free_port, tree},
    operations::{create, organize, user, wait_for},
};

/// One scrape: `name{label="value",…}` (labels sorted) → value.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn take(url: &str) -> Scrape {
        let response = reqwest::get(url).await.expect("scrape /metrics");
        assert!(response.status().is_success(), "{}", response.status());
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        Scrape(parse(&response.text().await.unwrap()))
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0.get(&key(name, labels)).copied().unwrap_or(0.0)
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.0.contains_key(&key(name, labels))
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut labels: Vec<&str> = labels
                .split("\",")
                .filter(|l| !l.is_empty())
                .map(|l| l.trim_end_matches('"'))
                .collect();
            labels.sort();
            let labels: Vec<String> = labels.iter().map(|l| format!("{l}\"")).collect();
            Some((format!("{name}{{{}}}", labels.join(",")), value))
        })
        .collect()
}

const GET_HEALTH: &str = "/fileorganizer.v1.SystemService/GetHealth";
const GET_CURRENT_USER: &str = "/fileorganizer.v1.AuthService/GetCurrentUser";
const REGISTER: &str = "/fileorganizer.v1.AuthService/Register";
const WATCH_OPERATION: &str = "/fileorganizer.v1.OperationService/WatchOperation";
const HEALTH_WATCH: &str = "/grpc.health.v1.Health/Watch";
const NO_SUCH_METHOD: &str = "/fileorganizer.v1.NoSuchService/Anything";

async fn spawn_with_metrics() -> (TestApp, String) {
    spawn_with_metrics_and(vec![]).await
}

/// A server with METRICS_ADDR and `env`, and the URL of its /metrics.
async fn spawn_with_metrics_and(mut env: Vec<(&'static str, String)>) -> (TestApp, String) {
    let port = free_port();
    env.push(("METRICS_ADDR", format!("127.0.0.1:{port}")));
    let app = TestApp::spawn_with(Options {
        env,
        ..Default::default()
    })
    .await;
    (app, format!("http://127.0.0.1:{port}/metrics"))
}

/// A Register that fails with INVALID_ARGUMENT (a handler error).
async fn register_an_invalid_email(app: &TestApp) {
    assert_code(
        app.auth()
            .register(pb::RegisterRequest {
                email: "not an email".into(),
                password: crate::common::PASSWORD.into(),
                display_name: String::new(),
            })
            .await,
        Code::InvalidArgument,
    );
}

/// A gRPC client with no generated code, for any path and codec.
async fn raw_client(app: &TestApp) -> tonic::client::Grpc<tonic::transport::Channel> {
    let mut raw = tonic::client::Grpc::new(
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    raw.ready().await.unwrap();
    raw
}

/// How much each series of `after` grew since `before`.
fn growth<'a>(before: &'a Scrape, after: &'a Scrape) -> impl Fn(&str, &[(&str, &str)]) -> f64 + 'a {
    move |name, labels| after.get(name, labels) - before.get(name, labels)
}

/// Asserts that each of `methods` has a duration and sizes recorded since `before`.
fn assert_timed_and_sized(before: &Scrape, after: &Scrape, methods: &[&str]) {
    let grew = growth(before, after);
    for method in methods {
        for histogram in [
            "api_request_duration_seconds_count",
            "api_request_size_bytes_count",
            "api_response_size_bytes_count",
        ] {
            assert!(
                grew(histogram, &[("method", method)]) >= 1.0,
                "{histogram}{{method={method:?}}} did not grow"
            );
        }
    }
}

fn assert_counted(before: &Scrape, after: &Scrape, calls: &[(&str, &str)]) {
    let grew = growth(before, after);
    for (method, code) in calls {
        let labels = [("method", *method), ("code", *code)];
        assert!(
            grew("api_requests_total", &labels) >= 1.0,
            "api_requests_total{{method={method:?},code={code:?}}} did not grow"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_are_counted_by_method_and_code_timed_and_sized() {
    let (app, url) = spawn_with_metrics().await;
    let before = Scrape::take(&url).await;

    // A success (over gRPC and over grpc-web, where the status travels in
    // the body), a rejection by the auth layer, a handler error, a method
    // nobody serves.
    app.system()
        .get_health(pb::GetHealthRequest {})
        .await
        .unwrap();
    let grpc_web = reqwest::Client::new()
        .post(format!("http://{}{GET_HEALTH}", app.addr))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&grpc_web).contains("grpc-status:0"));
    assert_code(
        app.auth()
            .get_current_user(pb::GetCurrentUserRequest {})
            .await,
        Code::Unauthenticated,
    );
    register_an_invalid_email(&app).await;
    let mut raw = raw_client(&app).await;
    let unknown: Result<tonic::Response<()>, _> = raw
        .unary(
            Request::new(()),
            http::uri::PathAndQuery::from_static(NO_SUCH_METHOD),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await;
    assert_code(unknown, Code::Unauthenticated);

    let after = Scrape::take(&url).await;
    let grew = growth(&before, &after);
    assert!(
        grew(
            "api_requests_total",
            &[("method", GET_HEALTH), ("code", "OK")]
        ) >= 2.0,
        "GetHealth over gRPC and grpc-web"
    );
    assert_counted(
        &before,
        &after,
        &[
            (GET_CURRENT_USER, "UNAUTHENTICATED"),
            (REGISTER, "INVALID_ARGUMENT"),
            ("unknown", "UNAUTHENTICATED"),
        ],
    );
    assert!(
        !after.0.keys().any(|k| k.contains("NoSuchService")),
        "an unserved path got its own label"
    );
    // Each call also has its duration and sizes.
    assert_timed_and_sized(&before, &after, &[GET_HEALTH, REGISTER]);
    assert!(grew("api_request_size_bytes_sum", &[("method", REGISTER)]) > 0.0);
    // Buckets, not a summary.
    assert!(after.has(
        "api_request_duration_seconds_bucket",
        &[("method", GET_HEALTH), ("le", "0.005")]
    ));
    assert!(after.has(
        "api_response_size_bytes_bucket",
        &[("method", GET_HEALTH), ("le", "1024")]
    ));
}

/// Watches operation `name` until its stream ends; its snapshots.
async fn watch_to_end(
    app: &TestApp,
    user: &crate::operations::User,
    name: &str,
) -> Vec<pb::WatchOperationResponse> {
    let mut watch = app
        .operations()
        .watch_operation(crate::common::bearer(
            pb::WatchOperationRequest {
                name: name.into(),
                ..Default::default()
            },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut snapshots = Vec::new();
    while let Some(snapshot) = tokio::time::timeout(Duration::from_secs(60), watch.message())
        .await
        .unwrap()
        .unwrap()
    {
        snapshots.push(snapshot);
    }
    snapshots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streams_are_counted_and_timed_until_they_end_or_are_cancelled() {
    let (app, url) = spawn_with_metrics().await;
    let alice = user(&app, "metrics").await;
    tree::write(&alice.root, "in/a.txt", b"same words");
    let before = Scrape::take(&url).await;

    // A server stream followed to its end: an organize job, watched.
    let op = create(&app, &alice, organize("in")).await;
    let snapshots = watch_to_end(&app, &alice, &op.name).await;
    assert_eq!(
        snapshots.last().unwrap().state,
        OperationState::Succeeded as i32
    );

    // A server stream the client walks away from.
    let mut health = app
        .health()
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    health.message().await.unwrap().unwrap();
    drop(health);

    // The server learns of the cancellation asynchronously.
    let cancelled = [("method", HEALTH_WATCH), ("code", "CANCELLED")];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let scrape = Scrape::take(&url).await;
        if scrape.get("api_requests_total", &cancelled)
            > before.get("api_requests_total", &cancelled)
            || tokio::time::Instant::now() > deadline
        {
            break scrape;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_counted(
        &before,
        &after,
        &[(WATCH_OPERATION, "OK"), (HEALTH_WATCH, "CANCELLED")],
    );
    // The stream sent messages and was timed until it ended.
    assert_timed_and_sized(&before, &after, &[WATCH_OPERATION, HEALTH_WATCH]);
    let grew = growth(&before, &after);
    assert!(
        grew(
            "api_response_size_bytes_sum",
            &[("method", WATCH_OPERATION)]
        ) > 0.0
    );
    assert!(
        grew(
            "api_request_duration_seconds_sum",
            &[("method", WATCH_OPERATION)]
        ) > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organize_counts_queries_operations_files_and_duplicates() {
    let (app, url) = spawn_with_metrics().await;
    let alice = user(&app, "metrics").await;
    tree::write(&alice.root, "in/a.txt", b"same words");
    tree::write(&alice.root, "in/b.txt", b"same words");
    tree::write(&alice.root, "in/c.pdf", b"PDF");
    let before = Scrape::take(&url).await;
    let op = create(&app, &alice, organize("in")).await;
    wait_for(&app, &alice, &op.name, &[OperationState::Succeeded]).await;
    let after = Scrape::take(&url).await;
    let grew = growth(&before, &after);
    assert!(
        grew("db_queries_total", &[]) > 0.0,
        "db_queries_total did not grow"
    );
    assert!(grew("db_query_duration_seconds_count", &[]) > 0.0);
    assert!(
        grew(
            "operations_total",
            &[("kind", "organize"), ("state", "succeeded")]
        ) >= 1.0,
        "operations_total"
    );
    assert!(
        grew(
            "files_organized_total",
            &[("category", "Documents"), ("status", "completed")]
        ) >= 3.0,
        "files_organized_total"
    );
    assert!(grew("duplicates_found_total", &[]) >= 1.0);
    assert!(after.has("active_operations", &[]));
    assert!(after.get("active_users", &[]) >= 1.0);
    assert!(after.has("storage_bytes_total", &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_in_one_process_share_one_recorder() {
    let (first, first_url) = spawn_with_metrics().await;
    let (second, second_url) = spawn_with_metrics().await;
    let labels = [("method", GET_HEALTH), ("code", "OK")];
    let before = Scrape::take(&first_url).await;
    first
        .system()
        .get_health(pb::GetHealthRequest {})
        .await
        .unwrap();
    second
        .system()
        .get_health(pb::GetHealthRequest {})
        .await
        .unwrap();
    // Both endpoints render the same registry.
    let after = Scrape::take(&second_url).await;
    assert!(
        after.get("api_requests_total", &labels) - before.get("api_requests_total", &labels) >= 2.0
    );
    drop(first);
    // The second keeps serving when the first is gone.
    Scrape::take(&second_url).await;
}

// ------------------------------------------------------------------------
// The standard gRPC server families (go-grpc-middleware's names and labels).

/// The labels of one method in the standard families.
fn grpc(kind: &'static str, path: &'static str) -> [(&'static str, &'static str); 3] {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .expect("a gRPC path");
    [
        ("grpc_type", kind),
        ("grpc_service", service),
        ("grpc_method", method),
    ]
}

fn with_code<'a>(labels: [(&'a str, &'a str); 3], code: &'a str) -> [(&'a str, &'a str); 4] {
    let [a, b, c] = labels;
    [a, b, c, ("grpc_code", code)]
}

const SERVER_REFLECTION_INFO: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const UPLOAD_FILE: &str = "/fileorganizer.v1.FileService/UploadFile";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_grpc_families_count_starts_codes_times_and_messages() {
    let (app, url) = spawn_with_metrics().await;
    let alice = user(&app, "grpc-families").await;
    let before = Scrape::take(&url).await;

    // Unary: a success, and a failure with its code.
    app.system()
        .get_health(pb::GetHealthRequest {})
        .await
        .unwrap();
    register_an_invalid_email(&app).await;
    // A client stream: metadata and three chunks in, one answer out.
    let content = vec![7u8; 3 * 64 * 1024];
    crate::uploads::stream(
        &app,
        &alice,
        pb::UploadFileMetadata {
            path: "in/streamed.bin".into(),
            size_bytes: content.len() as i64,
            ..Default::default()
        },
        &content,
    )
    .await
    .unwrap();
    // A bidirectional stream: two reflection requests, two answers.
    let mut raw = raw_client(&app).await;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, ServerReflectionResponse,
        server_reflection_request::MessageRequest,
    };
    let list = || ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = raw
        .streaming(
            Request::new(tokio_stream::iter([list(), list()])),
            http::uri::PathAndQuery::from_static(SERVER_REFLECTION_INFO),
            tonic_prost::ProstCodec::<ServerReflectionRequest, ServerReflectionResponse>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut answered = 0;
    while answers.message().await.unwrap().is_some() {
        answered += 1;
    }
    assert_eq!(answered, 2);
    // A server stream: an organize job watched to its end.
    let op = create(&app, &alice, organize("in")).await;
    let snapshots = watch_to_end(&app, &alice, &op.name).await.len() as f64;

    let after = Scrape::take(&url).await;
    let grew = growth(&before, &after);
    let health = grpc("unary", GET_HEALTH);
    let register = grpc("unary", REGISTER);
    let upload = grpc("client_stream", UPLOAD_FILE);
    let reflection = grpc("bidi_stream", SERVER_REFLECTION_INFO);
    let watch = grpc("server_stream", WATCH_OPERATION);
    for labels in [&health, &register, &upload, &reflection, &watch] {
        assert!(
            grew("grpc_server_started_total", labels) >= 1.0,
            "grpc_server_started_total{labels:?}"
        );
        assert!(
            grew("grpc_server_handling_seconds_count", labels) >= 1.0,
            "grpc_server_handling_seconds{labels:?}"
        );
    }
    for (labels, code) in [
        (health, "OK"),
        (register, "InvalidArgument"),
        (upload, "OK"),
        (reflection, "OK"),
        (watch, "OK"),
    ] {
        let labels = with_code(labels, code);
        assert!(
            grew("grpc_server_handled_total", &labels) >= 1.0,
            "grpc_server_handled_total{labels:?}"
        );
    }
    // Go's spelling of the codes, not the spec's.
    assert!(
        !after
            .0
            .keys()
            .any(|k| k.starts_with("grpc_server_handled_total") && k.contains("INVALID_ARGUMENT"))
    );
    // Messages: each one counted, whatever the HTTP/2 frames.
    let received = |labels| grew("grpc_server_msg_received_total", labels);
    let sent = |labels| grew("grpc_server_msg_sent_total", labels);
    assert!(received(&upload) >= 4.0, "{}", received(&upload));
    assert!(sent(&upload) >= 1.0);
    assert!(received(&reflection) >= 2.0 && sent(&reflection) >= 2.0);
    assert!(received(&watch) >= 1.0 && sent(&watch) >= snapshots);
    assert!(received(&health) >= 1.0 && sent(&health) >= 1.0);
    // A failed unary call sent no message (as in grpc-go).
    assert!(received(&register) >= 1.0);
    // Buckets, not a summary.
    assert!(after.has(
        "grpc_server_handling_seconds_bucket",
        &[health[0], health[1], health[2], ("le", "0.005")]
    ));
    // A path nobody serves makes no series of these.
    assert!(
        !after
            .0
            .keys()
            .any(|k| k.starts_with("grpc_server_") && k.contains("unknown"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_refusals_are_counted_by_limit() {
    let (app, url) = spawn_with_metrics_and(vec![
        ("RATE_LIMIT_BURST", "2".into()),
        ("RATE_LIMIT_BURST_PER_SECOND", "1".into()),
    ])
    .await;
    let before = Scrape::take(&url).await;
    let mut refused = 0.0;
    for _ in 0..8 {
        match app.system().get_health(pb::GetHealthRequest {}).await {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused += 1.0;
            }
        }
    }
    assert!(refused >= 1.0, "the burst guard refused nothing");
    let after = Scrape::take(&url).await;
    let grew = growth(&before, &after);
    assert!(
        grew(
            "rate_limit_refusals_total",
            &[("limit", "address"), ("bucket", "any")]
        ) >= refused
    );
    assert!(
        grew(
            "grpc_server_handled_total",
            &with_code(grpc("unary", GET_HEALTH), "ResourceExhausted")
        ) >= refused
    );
    // The other limits are exported before they ever refuse.
    assert!(after.has(
        "rate_limit_refusals_total",
        &[("limit", "per_user"), ("bucket", "upload")]
    ));
}

// ------------------------------------------------------------------------
// Process, build and dependency metrics.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_build_and_dependency_metrics_are_exported() {
    let (app, url) = spawn_with_metrics().await;
    let scrape = Scrape::take(&url).await;
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        assert!(scrape.get(name, &[]) > 0.0, "{name}");
    }
    // A counter, as client_golang has it (metrics-process keeps whole
    // seconds); it never goes back.
    let cpu = scrape.get("process_cpu_seconds_total", &[]);
    assert!(scrape.has("process_cpu_seconds_total", &[]));
    let later = Scrape::take(&url).await;
    assert!(later.get("process_cpu_seconds_total", &[]) >= cpu);

    // The build: this crate's version and the commit it was built from.
    let sha = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8(out.stdout).unwrap().trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        scrape.get(
            "fileorg_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("git_sha", &sha)]
        ),
        1.0,
        "{:?}",
        scrape
            .0
            .keys()
            .filter(|k| k.starts_with("fileorg_build_info"))
            .collect::<Vec<_>>()
    );

    // What the process depends on, as of this scrape.
    assert_eq!(
        scrape.get("dependency_up", &[("dependency", "database")]),
        1.0
    );
    assert_eq!(
        scrape.get("db_pool_max_connections", &[]),
        app.state.config.database_pool_size as f64
    );
    assert!(scrape.has("db_pool_connections", &[("state", "idle")]));
    assert!(scrape.has("db_pool_connections", &[("state", "in_use")]));
    assert!(scrape.has("db_pool_get_timeouts_total", &[]));
    let size = scrape.get("storage_volume_size_bytes", &[]);
    let available = scrape.get("storage_volume_available_bytes", &[]);
    assert!(
        size > 0.0 && available > 0.0 && available <= size,
        "{available} of {size}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_answers_is_up_and_one_that_does_not_is_down() {
    let (app, url) =
        spawn_with_metrics_and(vec![("REDIS_URL", "redis://127.0.0.1:6379".into())]).await;
    // Other servers of this process set the same gauge at their scrapes:
    // scrape until this one's value shows (bounded).
    let redis = [("dependency", "redis")];
    scrape_until(&url, |s| s.get("dependency_up", &redis) == 1.0).await;
    drop(app);
    // A Redis nobody listens on: the same gauge says 0 at the next scrape.
    let (_down, url) = spawn_with_metrics_and(vec![(
        "REDIS_URL",
        format!("redis://127.0.0.1:{}", free_port()),
    )])
    .await;
    scrape_until(&url, |s| {
        s.has("dependency_up", &redis) && s.get("dependency_up", &redis) == 0.0
    })
    .await;
}

// ------------------------------------------------------------------------
// Jobs: outcomes, moves, phases, the queue, automations.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_records_its_moves_and_each_phase() {
    let (app, url) = spawn_with_metrics().await;
    let alice = user(&app, "phases").await;
    tree::write(&alice.root, "in/a.txt", b"one");
    tree::write(&alice.root, "in/b.txt", b"two");
    let before = Scrape::take(&url).await;
    let op = create(&app, &alice, organize("in")).await;
    let done = wait_for(&app, &alice, &op.name, &[OperationState::Succeeded]).await;
    let after = Scrape::take(&url).await;
    let grew = growth(&before, &after);
    assert_eq!(done.counters.unwrap().files_moved, 2);
    assert!(grew("files_moved_total", &[("kind", "organize")]) >= 2.0);
    for phase in &done.phase_durations {
        let phase = pb::OperationPhase::try_from(phase.phase).unwrap();
        let word = phase
            .as_str_name()
            .trim_start_matches("OPERATION_PHASE_")
            .to_lowercase();
        assert!(
            grew(
                "operation_phase_duration_seconds_count",
                &[("kind", "organize"), ("phase", &word)]
            ) >= 1.0,
            "phase {word}"
        );
    }
    assert!(
        done.phase_durations.len() >= 3,
        "{:?}",
        done.phase_durations
    );
    assert!(after.has(
        "operation_phase_duration_seconds_bucket",
        &[("kind", "organize"), ("phase", "scan"), ("le", "3600")]
    ));
    // Outcomes of every kind are exported from the start.
    assert!(after.has("operations_total", &[("kind", "undo"), ("state", "failed")]));
}

/// Scrapes until `ok` holds (other servers in this process may set the same
/// gauges from their own database between two scrapes), bounded.
async fn scrape_until(url: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..50 {
        let scrape = Scrape::take(url).await;
        if ok(&scrape) {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the scrape never showed what was expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_gauges_show_waiting_and_stalled_jobs() {
    let (app, url) = spawn_with_metrics_and(vec![("WORKERS", "0".into())]).await;
    let alice = user(&app, "queue").await;
    let bob = user(&app, "queue-stalled").await;
    tree::write(&alice.root, "in/a.txt", b"a");
    tree::write(&bob.root, "in/b.txt", b"b");
    // No worker: both wait.
    let first = create(&app, &alice, organize("in")).await;
    let second = create(&app, &bob, organize("in")).await;
    let scrape = scrape_until(&url, |s| s.get("operations_queued", &[]) == 2.0).await;
    assert!(scrape.has("operations_oldest_queued_age_seconds", &[]));
    // The oldest has waited since it was created (its row says since when).
    {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use fileorganizer::schema::operations;
        let mut db = app.db().await;
        // Alice's job was created an hour ago; Bob's is held by a worker that
        // stopped heart-beating ten minutes ago.
        let first_id = uuid::Uuid::parse_str(first.name.rsplit('/').next().unwrap()).unwrap();
        let second_id = uuid::Uuid::parse_str(second.name.rsplit('/').next().unwrap()).unwrap();
        diesel::update(operations::table.find(first_id))
            .set(operations::updated_at.eq(chrono::Utc::now() - chrono::Duration::hours(1)))
            .execute(&mut db)
            .await
            .unwrap();
        diesel::update(operations::table.find(second_id))
            .set((
                operations::state.eq("running"),
                operations::worker_id.eq("a-dead-worker"),
                operations::heartbeat_at.eq(chrono::Utc::now() - chrono::Duration::minutes(10)),
            ))
            .execute(&mut db)
            .await
            .unwrap();
    }
    let scrape = scrape_until(&url, |s| {
        s.get("operations_queued", &[]) == 1.0 && s.get("operations_stalled", &[]) == 1.0
    })
    .await;
    let age = scrape.get("operations_oldest_queued_age_seconds", &[]);
    assert!((3600.0..3600.0 * 2.0).contains(&age), "{age}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automation_firings_are_counted_by_trigger() {
    let (_metrics_app, url) = spawn_with_metrics().await;
    let (clock, app, _owner, automation) =
        crate::automations::every_five_minutes("metrics-automation").await;
    let before = Scrape::take(&url).await;
    clock.set(crate::automations::at(0, 5, 0));
    crate::automations::wait_for_runs(&app, &automation.name, 1).await;
    let after = Scrape::take(&url).await;
    assert!(growth(&before, &after)("automation_firings_total", &[("trigger", "schedule")]) >= 1.0);
    assert!(after.has("automation_firings_total", &[("trigger", "arrival")]));
}

// ------------------------------------------------------------------------
// deploy/observability: every metric the dashboard and the alert rules
// query is one the server exports.

/// The metric names a PromQL expression selects: identifiers that are not
/// functions, aggregations, keywords, label names (inside `{…}` or after
/// `by`/`without`/`on`/`ignoring`), durations or numbers.
fn metric_names(expr: &str) -> Vec<String> {
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    // Skips from an opening `open` to past its matching `close`, over strings.
    let skip_group = |mut i: usize, open: char, close: char| {
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => {
                    let quote = chars[i];
                    i += 1;
                    while i < chars.len() && chars[i] != quote {
                        i += if chars[i] == '\\' { 2 } else { 1 };
                    }
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    let next_non_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_group(i, '{', '}');
        } else if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_group(i, c, c);
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = next_non_space(i);
            if KEYWORDS.contains(&word.as_str()) {
                // A label list follows the grouping keywords.
                if chars.get(next) == Some(&'(') {
                    i = skip_group(next, '(', ')');
                }
            } else if AGGREGATIONS.contains(&word.as_str()) || chars.get(next) == Some(&'(') {
                // A function or an aggregation.
            } else {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{x="y{z}", le!="1"}[5m])))
               / on (job) group_left (v) b{} > 0.5 and c offset 5m or sum without (i) (d_total{}[$__rate_interval]))"#
        ),
        ["a_bucket", "b", "c", "d_total"]
    );
    assert_eq!(metric_names("max by (job) (e{}) > 1e11"), ["e"]);
}

/// Every expression of the dashboard (panels, nested rows included) and of
/// the alert rules, with where it comes from.
fn observability_queries() -> Vec<(String, String)> {
    let dir = crate::common::repo_root().join("deploy/observability");
    let mut queries = Vec::new();
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("grafana-dashboard.json")).unwrap())
            .unwrap();
    fn panels(value: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for panel in value["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((
                        format!("dashboard panel {}", panel["title"]),
                        expr.to_string(),
                    ));
                }
            }
            panels(panel, out);
        }
    }
    panels(&dashboard, &mut queries);
    // The rules: `expr:` on one line, or a `|` block below it.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let lines: Vec<&str> = rules.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let Some((indent, rest)) = line.split_once("expr:") else {
            continue;
        };
        let rest = rest.trim();
        let expr = if rest == "|" || rest == ">" {
            lines[n + 1..]
                .iter()
                .take_while(|l| {
                    l.trim().is_empty() || l.len() - l.trim_start().len() > indent.len()
                })
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            rest.to_string()
        };
        queries.push((format!("alerts.yml line {}", n + 1), expr));
    }
    queries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exported() {
    let queries = observability_queries();
    assert!(
        queries
            .iter()
            .filter(|(at, _)| at.starts_with("dashboard"))
            .count()
            >= 30
    );
    assert!(
        queries
            .iter()
            .filter(|(at, _)| at.starts_with("alerts"))
            .count()
            >= 9
    );

    // A server with Redis, after the calls and a job that make every family
    // appear (rare events are registered at 0 from the start).
    let (app, url) = spawn_with_metrics_and(vec![
        ("REDIS_URL", "redis://127.0.0.1:6379".into()),
        (
            "REDIS_KEY_PREFIX",
            format!("fileorg-test-{}:", uuid::Uuid::new_v4().simple()),
        ),
    ])
    .await;
    let alice = user(&app, "dashboard").await;
    tree::write(&alice.root, "in/a.txt", b"same");
    tree::write(&alice.root, "in/b.txt", b"same");
    let op = create(&app, &alice, organize("in")).await;
    wait_for(&app, &alice, &op.name, &[OperationState::Succeeded]).await;
    for _ in 0..2 {
        app.operations()
            .get_operation(crate::common::bearer(
                pb::GetOperationRequest {
                    name: op.name.clone(),
                },
                &alice.token,
            ))
            .await
            .unwrap();
    }
    let scrape = Scrape::take(&url).await;
    let exported: std::collections::BTreeSet<&str> = scrape
        .0
        .keys()
        .map(|k| k.split_once('{').map_or(k.as_str(), |(name, _)| name))
        .collect();

    // `up` is Prometheus's own, for each target it scrapes.
    let mut missing = Vec::new();
    let mut checked = 0;
    for (at, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{at}: no metric in {expr}");
        for name in names {
            checked += 1;
            if name != "up" && !exported.contains(name.as_str()) {
                missing.push(format!("{at}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not exported: {missing:#?}\nexported: {exported:?}"
    );
    assert!(checked >= 40, "{checked}");
}
