//! Redis cache-aside: hits are served without the database, writes
//! invalidate, and a dead Redis only costs speed.

use std::time::Duration;

use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState};

use crate::{
    common::{Options, TestApp, bearer, free_port, tree},
    operations::{create, organize, user, wait_for},
};

fn redis() -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", "redis://127.0.0.1:6379".into()),
        (
            "REDIS_KEY_PREFIX",
            format!("fileorg-test-{}:", uuid::Uuid::new_v4().simple()),
        ),
    ]
}

async fn counter(port: u16, name: &str, cache: &str) -> f64 {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("cache=\"{cache}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The answer of `get` while the database is down. A Redis read slower than the cache's timeout
/// (a machine loaded by parallel builds) makes the server skip Redis for a few seconds and ask
/// the database, which is down: that answer is UNAVAILABLE, never a wrong one. The property under
/// test is that an answer does come from the cache while the database is down, so a slow read
/// is retried after the cache's back-off, a bounded number of times.
async fn from_the_cache<T, F, Fut>(get: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match get().await {
            Ok(answer) => return answer.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable && attempts < 4 => {
                tokio::time::sleep(Duration::from_secs(6)).await
            }
            Err(status) => panic!("attempt {attempts}: {status:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_operation_is_served_without_the_database() {
    let port = free_port();
    let mut env = redis();
    env.push(("METRICS_ADDR", format!("127.0.0.1:{port}")));
    let app = TestApp::spawn_with(Options {
        db_proxy: true,
        env,
    })
    .await;
    let alice = user(&app, "cached").await;
    tree::write(&alice.root, "c/a.txt", b"a");
    let op = create(&app, &alice, organize("c")).await;
    wait_for(&app, &alice, &op.name, &[OperationState::Succeeded]).await;
    let get = || {
        let mut client = app.operations();
        let request = bearer(
            pb::GetOperationRequest {
                name: op.name.clone(),
            },
            &alice.token,
        );
        async move { client.get_operation(request).await }
    };
    let other = app
        .register(&TestApp::email("other-cache"))
        .await
        .access_token;
    let first = get().await.unwrap().into_inner(); // fills the cache
    let hits = counter(port, "cache_hits_total", "operation").await;

    // The database is now unreachable; the cached answer still comes back.
    app.db_proxy.as_ref().unwrap().set_down();
    let cached = from_the_cache(get).await;
    assert_eq!(cached, first);
    assert!(counter(port, "cache_hits_total", "operation").await >= hits + 1.0);
    // Another user cannot read it from the cache (nor at all).
    let denied = app
        .operations()
        .get_operation(bearer(
            pb::GetOperationRequest {
                name: op.name.clone(),
            },
            &other,
        ))
        .await
        .unwrap_err();
    assert_ne!(denied.code(), tonic::Code::Ok);
    app.db_proxy.as_ref().unwrap().set_up();
    assert!(app.wait_for_health(1, Duration::from_secs(15)).await);

    // A write invalidates: after an undo is queued the target shows it.
    let undo = app
        .operations()
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: op.name.clone(),
                request_id: String::new(),
            },
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let fresh = get().await.unwrap().into_inner();
    assert_eq!(fresh.undone_by, undo.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_is_cached_and_updates_are_never_stale() {
    let app = TestApp::spawn_with(Options {
        env: redis(),
        ..Default::default()
    })
    .await;
    let session = app.register(&TestApp::email("profile")).await;
    let me = || {
        let mut client = app.auth();
        let request = bearer(pb::GetCurrentUserRequest {}, &session.access_token);
        async move { client.get_current_user(request).await.unwrap().into_inner() }
    };
    assert_eq!(me().await.display_name, "");
    assert_eq!(me().await.display_name, ""); // from the cache
    app.auth()
        .update_current_user(bearer(
            pb::UpdateCurrentUserRequest {
                user: Some(pb::User {
                    display_name: "Renamed".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &session.access_token,
        ))
        .await
        .unwrap();
    assert_eq!(me().await.display_name, "Renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_api_keys_stop_working_at_once_despite_the_cache() {
    let app = TestApp::spawn_with(Options {
        env: redis(),
        ..Default::default()
    })
    .await;
    let session = app.register(&TestApp::email("key-cache")).await;
    let created = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                api_key: Some(pb::ApiKey {
                    display_name: "k".into(),
                    ..Default::default()
                }),
            },
            &session.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let with_key = || {
        let mut client = app.auth();
        let request = crate::common::api_key(pb::GetCurrentUserRequest {}, &created.secret);
        async move { client.get_current_user(request).await }
    };
    with_key().await.unwrap();
    with_key().await.unwrap(); // cached principal
    app.auth()
        .revoke_api_key(bearer(
            pb::RevokeApiKeyRequest {
                name: created.api_key.unwrap().name,
            },
            &session.access_token,
        ))
        .await
        .unwrap();
    assert_eq!(
        with_key().await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_only_costs_speed() {
    let closed = free_port();
    let app = TestApp::spawn_with(Options {
        env: vec![("REDIS_URL", format!("redis://127.0.0.1:{closed}"))],
        ..Default::default()
    })
    .await;
    let alice = user(&app, "no-redis").await;
    tree::write(&alice.root, "n/a.txt", b"a");
    let op = create(&app, &alice, organize("n")).await;
    let done = wait_for(&app, &alice, &op.name, &[OperationState::Succeeded]).await;
    assert_eq!(done.counters.unwrap().files_moved, 1);
    for _ in 0..3 {
        app.operations()
            .get_operation(bearer(
                pb::GetOperationRequest {
                    name: op.name.clone(),
                },
                &alice.token,
            ))
            .await
            .unwrap();
    }
    let status = app
        .system()
        .get_status(bearer(pb::GetStatusRequest {}, &alice.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, pb::HealthState::Degraded as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_report_survives_a_database_outage_and_an_undo_refreshes_it() {
    use fileorganizer::pb::fileorganizer::v1::report_service_client::ReportServiceClient;
    let app = TestApp::spawn_with(Options {
        db_proxy: true,
        env: redis(),
    })
    .await;
    let alice = user(&app, "report-cache").await;
    tree::write(&alice.root, "r/a.txt", b"aaa");
    tree::write(&alice.root, "r/b.jpg", b"bbbb");
    let op = create(&app, &alice, organize("r")).await;
    wait_for(&app, &alice, &op.name, &[OperationState::Succeeded]).await;
    let report_name = op.name.replace("operations/", "reports/");
    let reports = || {
        ReportServiceClient::new(
            tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
                .unwrap()
                .connect_lazy(),
        )
    };
    let get = || {
        let mut client = reports();
        let request = bearer(
            pb::GetOperationReportRequest {
                name: report_name.clone(),
            },
            &alice.token,
        );
        async move { client.get_operation_report(request).await }
    };
    let first = get().await.unwrap().into_inner();
    assert_eq!(first.totals.unwrap().files_moved, 2);

    app.db_proxy.as_ref().unwrap().set_down();
    let cached = from_the_cache(get).await;
    assert_eq!(
        cached, first,
        "the second report did not come from the cache"
    );
    app.db_proxy.as_ref().unwrap().set_up();
    assert!(app.wait_for_health(1, Duration::from_secs(15)).await);

    let undo = app
        .operations()
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: op.name.clone(),
                request_id: String::new(),
            },
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    wait_for(&app, &alice, &undo.name, &[OperationState::Succeeded]).await;
    let fresh = get().await.unwrap().into_inner();
    assert_eq!(
        fresh.totals.unwrap().files_moved,
        0,
        "the report is stale after the undo"
    );
}
