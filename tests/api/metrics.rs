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
    let port = free_port();
    let app = TestApp::spawn_with(Options {
        env: vec![("METRICS_ADDR", format!("127.0.0.1:{port}"))],
        ..Default::default()
    })
    .await;
    (app, format!("http://127.0.0.1:{port}/metrics"))
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
    let mut raw = tonic::client::Grpc::new(
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    raw.ready().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streams_are_counted_and_timed_until_they_end_or_are_cancelled() {
    let (app, url) = spawn_with_metrics().await;
    let alice = user(&app, "metrics").await;
    tree::write(&alice.root, "in/a.txt", b"same words");
    let before = Scrape::take(&url).await;

    // A server stream followed to its end: an organize job, watched.
    let op = create(&app, &alice, organize("in")).await;
    let mut watch = app
        .operations()
        .watch_operation(crate::common::bearer(
            pb::WatchOperationRequest {
                name: op.name.clone(),
                ..Default::default()
            },
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(snapshot) = tokio::time::timeout(Duration::from_secs(60), watch.message())
        .await
        .unwrap()
        .unwrap()
    {
        last = Some(snapshot);
    }
    assert_eq!(last.unwrap().state, OperationState::Succeeded as i32);

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
