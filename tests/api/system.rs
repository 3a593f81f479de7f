//! SystemService, grpc.health.v1, the binary's probes and graceful shutdown.

use std::time::Duration;

use fileorganizer::pb::fileorganizer::v1::{self as pb, HealthState};
use tonic::Code;

use crate::common::{Options, TestApp, assert_code, bearer, reason};

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database() {
    let app = TestApp::spawn_with(Options {
        db_proxy: true,
        ..Default::default()
    })
    .await;
    assert_eq!(app.health_status().await, SERVING);
    // Every registered service is reported, not only the server as a whole.
    let per_service = app
        .health()
        .check(tonic_health::pb::HealthCheckRequest {
            service: "fileorganizer.v1.AuthService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(per_service.status, SERVING);

    let proxy = app.db_proxy.as_ref().unwrap();
    proxy.set_down();
    assert!(
        app.wait_for_health(NOT_SERVING, Duration::from_secs(15))
            .await,
        "health did not go NOT_SERVING while the database was unreachable"
    );
    // REST-style health answers UNAVAILABLE meanwhile, not INTERNAL.
    let status = assert_code(
        app.system().get_health(pb::GetHealthRequest {}).await,
        Code::Unavailable,
    );
    assert_eq!(reason(&status), "SERVICE_UNAVAILABLE");
    // Calls that need the database fail with UNAVAILABLE, never INTERNAL.
    let register = app
        .auth()
        .register(pb::RegisterRequest {
            email: TestApp::email("down"),
            password: crate::common::PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(register.code(), Code::Unavailable, "{register:?}");

    proxy.set_up();
    assert!(
        app.wait_for_health(SERVING, Duration::from_secs(15)).await,
        "health did not recover when the database came back"
    );
    app.system()
        .get_health(pb::GetHealthRequest {})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_health_is_public_and_real() {
    let app = TestApp::spawn().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let health = app
        .system()
        .get_health(pb::GetHealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, HealthState::Healthy as i32);
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
    let uptime = health.uptime.unwrap();
    assert!(uptime.seconds > 0 || uptime.nanos > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_status_reports_each_dependency() {
    let app = TestApp::spawn().await;
    let session = app.register(&TestApp::email("status")).await;
    assert_code(
        app.system().get_status(pb::GetStatusRequest {}).await,
        Code::Unauthenticated,
    );

    let status = app
        .system()
        .get_status(bearer(pb::GetStatusRequest {}, &session.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.environment, "test");
    assert_eq!(status.status, HealthState::Healthy as i32);
    let component = |name: &str| {
        status
            .components
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(component("database").state, HealthState::Healthy as i32);
    assert_eq!(component("storage").state, HealthState::Healthy as i32);
    assert_eq!(component("redis").state, HealthState::Disabled as i32);
    assert!(status.start_time.is_some() && status.uptime.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_is_checked_when_configured() {
    // A live Redis: healthy.
    let app = TestApp::spawn_with(Options {
        env: vec![("REDIS_URL", "redis://127.0.0.1:6379".into())],
        ..Default::default()
    })
    .await;
    let token = app.register(&TestApp::email("redis")).await.access_token;
    let status = app
        .system()
        .get_status(bearer(pb::GetStatusRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    let redis = status
        .components
        .iter()
        .find(|c| c.name == "redis")
        .unwrap();
    assert_eq!(redis.state, HealthState::Healthy as i32, "{redis:?}");

    // Nothing listening there: the server still answers, as DEGRADED.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = TestApp::spawn_with(Options {
        env: vec![("REDIS_URL", format!("redis://127.0.0.1:{port}"))],
        ..Default::default()
    })
    .await;
    let token = app.register(&TestApp::email("noredis")).await.access_token;
    let status = app
        .system()
        .get_status(bearer(pb::GetStatusRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, HealthState::Degraded as i32);
    let health = app
        .system()
        .get_health(pb::GetHealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, HealthState::Degraded as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_that_cannot_be_written_is_unhealthy() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let token = app.register(&TestApp::email("storage")).await.access_token;
    let root = app.state.config.storage_root.clone();
    // Replace the root by a file: no user can create anything below it.
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o444)).unwrap();
    let status = app
        .system()
        .get_status(bearer(pb::GetStatusRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    let storage = status
        .components
        .iter()
        .find(|c| c.name == "storage")
        .unwrap();
    assert_eq!(storage.state, HealthState::Unhealthy as i32);
    assert_eq!(status.status, HealthState::Unhealthy as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_command_exits_zero_only_when_serving() {
    let mut app = TestApp::spawn().await;
    let bin = env!("CARGO_BIN_EXE_fileorg");
    let run = move |addr: String| {
        std::process::Command::new(bin)
            .args(["healthcheck", "--addr", &addr, "--timeout", "3"])
            .output()
            .unwrap()
    };
    let addr = app.addr.to_string();
    let ok = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || run(addr)
    })
    .await
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "SERVING");

    app.stop().await.unwrap();
    let down = tokio::task::spawn_blocking(move || run(addr))
        .await
        .unwrap();
    assert!(!down.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_command_writes_the_embedded_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/fileorganizer.pb");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
        .args(["descriptor", "--out", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let written = std::fs::read(&out).unwrap();
    assert_eq!(written, fileorganizer::pb::FILE_DESCRIPTOR_SET);
    // It is the lossless encoding: the google.api.http options survived.
    assert!(
        written
            .windows(b"/api/v1/users/me".len())
            .any(|w| w == b"/api/v1/users/me")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_server_and_health_goes_not_serving() {
    let mut app = TestApp::spawn().await;
    let mut watch = app
        .health()
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, SERVING);
    let stopping = tokio::spawn({
        let state = app.state.clone();
        async move {
            // The shutdown flag flips before the listener closes.
            let mut rx = state.shutting_down.clone();
            rx.wait_for(|s| *s).await.is_ok()
        }
    });
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("server stopped within the shutdown timeout")
        .unwrap();
    assert!(stopping.await.unwrap());
    // The health watch saw NOT_SERVING or ended with the server.
    let last = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap();
    if let Ok(Some(update)) = last {
        assert_eq!(update.status, NOT_SERVING);
    }
    assert!(
        tokio::net::TcpStream::connect(app.addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[test]
fn bad_configuration_fails_fast_naming_the_variable() {
    for (var, value, extra) in [
        ("GRPC_ADDR", "not-an-address", None),
        ("DATABASE_POOL_SIZE", "many", None),
        ("ENVIRONMENT", "production", Some("JWT_SECRET_KEY")),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_fileorg"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATA_DIR", std::env::temp_dir())
            .env(var, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{var}={value} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let named = extra.unwrap_or(var);
        assert!(stderr.contains(named), "{var}={value}: {stderr}");
    }
}
