//! Configuration, read once from environment variables at start-up.
//!
//! Every variable has a default that works on a developer machine of this
//! project (Postgres and Redis on loopback). A value that does not parse fails
//! start-up with a message naming the variable; nothing is silently ignored.
//! The README's configuration table mirrors [`Config::from_lookup`].

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use ipnet::IpNet;
use rand::RngCore;

/// The deployment environment (`ENVIRONMENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }
}

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A configuration problem; the message always names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

/// Everything the server needs to know about its surroundings.
#[derive(Clone)]
pub struct Config {
    /// `ENVIRONMENT`: development (default), test or production.
    pub environment: Environment,
    /// `DATABASE_URL`: the Postgres database; created if it does not exist.
    pub database_url: String,
    /// `DATABASE_POOL_SIZE`: connections in the pool (default 16).
    pub database_pool_size: u32,
    /// `REDIS_URL`: optional; without it caching and shared limits are off.
    pub redis_url: Option<String>,
    /// `REDIS_KEY_PREFIX` (default `fileorg:`): namespace of every Redis key
    /// and channel, so several deployments (or tests) can share one Redis.
    pub redis_key_prefix: String,
    /// `JWT_SECRET_KEY`: HMAC key for access tokens (see [`Config::from_lookup`]).
    pub jwt_secret: Vec<u8>,
    /// `JWT_ISSUER` / `JWT_AUDIENCE`: the `iss` and `aud` claims.
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// `ACCESS_TOKEN_TTL_SECS` (default 900 = 15 minutes).
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_SECS` (default 30 days).
    pub refresh_token_ttl: Duration,
    /// `CORS_ORIGINS`: comma-separated browser origins allowed to call the API
    /// over grpc-web. Default: localhost dev servers in development, none otherwise.
    pub cors_origins: Vec<String>,
    /// `DATA_DIR` (default `./data`): server-owned files such as the
    /// development JWT secret.
    pub data_dir: PathBuf,
    /// `STORAGE_ROOT` (default `$DATA_DIR/storage`): users' files live in
    /// `STORAGE_ROOT/<user-id>/`.
    pub storage_root: PathBuf,
    /// `GRPC_ADDR` (default 127.0.0.1:50051): gRPC, grpc-web and health.
    pub grpc_addr: SocketAddr,
    /// `METRICS_ADDR` (default: off): where `fileorg serve` and `fileorg
    /// worker` serve Prometheus metrics at `/metrics`.
    pub metrics_addr: Option<SocketAddr>,
    /// `CONSOLE_ADDR` (default: off): where `fileorg serve` serves the browser
    /// console's built files (see [`crate::infra::console`]).
    pub console_addr: Option<SocketAddr>,
    /// `TRUSTED_PROXIES` (default: none): peers whose forwarded-address
    /// header (`x-envoy-external-address`) gives the client's address; see
    /// `crate::layers::request_context`.
    pub trusted_proxies: TrustedProxies,
    /// `CONSOLE_DIR` (default `console/dist`): the console's build output.
    pub console_dir: PathBuf,
    /// `CONSOLE_API_URL` (default: `http://` + the address the gRPC listener
    /// is bound to): the origin the console's grpc-web calls go to, served to
    /// the page in `/config.json` and named in its CSP. The page never takes
    /// it from its own URL (see [`crate::infra::console`]).
    pub console_api_url: Option<String>,
    /// `LOG_FORMAT`: json (default in production) or pretty.
    pub log_format: LogFormat,
    /// `HEALTH_CHECK_INTERVAL_MS` (default 5000): how often the background
    /// check pings the database to drive grpc.health.v1.
    pub health_check_interval: Duration,
    /// `SHUTDOWN_TIMEOUT_SECS` (default 10): how long in-flight calls may run
    /// after SIGINT/SIGTERM before the server stops regardless.
    pub shutdown_timeout: Duration,
    /// `MAX_MESSAGE_BYTES` (default 24 MiB): largest gRPC message accepted or
    /// sent; leaves room for a 16 MiB unary upload plus framing.
    pub max_message_bytes: usize,
    /// `MAX_UPLOAD_BYTES` (default 16 MiB): largest file UploadSmallFile
    /// accepts in its one message; must leave 64 KiB of MAX_MESSAGE_BYTES for
    /// the rest of the message. Streamed uploads are bounded by the quota only.
    pub max_upload_bytes: usize,
    /// `UPLOAD_SESSION_TTL_SECS` (default 86400 = 24 h): how long a
    /// resumable upload session lives after CreateUpload; an unfinished one
    /// is then removed with its bytes (docs/uploads.md).
    pub upload_session_ttl: Duration,
    /// ImportArchive's limits, checked while the archive streams in
    /// (docs/archives.md): `ARCHIVE_MAX_EXPANDED_BYTES` (default 64 GiB),
    /// `ARCHIVE_MAX_ENTRIES` (default 1,000,000), `ARCHIVE_MAX_RATIO`
    /// (default 200) above `ARCHIVE_RATIO_FLOOR_BYTES` (default 64 MiB).
    pub archive_limits: crate::domain::archive::ArchiveLimits,
    /// `WORKERS` (default 2): job workers inside `fileorg serve`; 0 runs none
    /// (then `fileorg worker` processes must run the jobs).
    pub workers: usize,
    /// `HASH_THREADS` (default 2): threads one job uses to hash files.
    pub hash_threads: usize,
    /// `HASH_CACHE_DAYS` (default 30): how long a user's hash cache keeps a
    /// file no run has seen since (`db::hash_cache`); 0 turns the cache off
    /// (every run reads every candidate again).
    pub hash_cache_days: u32,
    /// `ORGANIZE_SPILL_RECORDS` (default 262,144): records one sort or
    /// store of the duplicate finder holds in memory before it writes the
    /// rest, sorted, to unnamed temporary files in `STORAGE_ROOT/.spill`
    /// (`engine::spill`; docs/organize.md, "Memory"). A record is 12 to 48
    /// bytes in memory, so the default bounds each at about 12 MB. Spilling
    /// was measured to cost no hashing time at 1M files (BENCHMARKS.md,
    /// "Memory of an organize"), so the default spills early.
    pub organize_spill_records: std::num::NonZeroUsize,
    /// `JOB_HEARTBEAT_MS` (default 1000): how often a worker renews its claim.
    pub job_heartbeat: Duration,
    /// `JOB_STALE_AFTER_MS` (default 15000): a job whose heartbeat is older
    /// than this is reclaimed (its worker is presumed dead).
    pub job_stale_after: Duration,
    /// `JOB_POLL_MS` (default 1000): how often idle workers look for jobs
    /// queued by other processes.
    pub job_poll: Duration,
    /// `MOVES_PER_SECOND` (default 0 = unlimited): paces moves, so a huge
    /// organize does not starve the API of disk and CPU.
    pub moves_per_second: u32,
    /// `RULES_MAX_PER_USER` (default 200), `RULE_MAX_CONDITIONS` (20),
    /// `RULE_MAX_PATTERN_BYTES` (512), `RULE_REGEX_SIZE_LIMIT` (1048576): how
    /// big organizing rules may be (`engine::rule`).
    pub rule_limits: crate::domain::RuleLimits,
    /// `SCHEDULER_POLL_MS` (default 1000): how often each worker process
    /// looks for due automations (`jobs::automations`).
    pub scheduler_poll: Duration,
    /// `WATCH_RESCAN_SECS` (default 60): how often watched folders are
    /// rescanned, the fallback for changes no notification reported (and
    /// for those made while no process ran).
    pub watch_rescan: Duration,
    /// `SCHEDULER_CLOCK_FILE` (tests only; refused when
    /// ENVIRONMENT=production): the automations' clock reads the instant
    /// written in this file (RFC 3339) instead of the system clock, so tests
    /// drive schedules and quiet periods. It moves nothing but when
    /// automations fire.
    pub scheduler_clock_file: Option<PathBuf>,
    /// Request limits (see [`RateLimits`]).
    pub rate_limits: RateLimits,
    /// `REQUEST_TIMEOUT_SECS` (default 600): upper bound on any call's
    /// handler (a client's shorter `grpc-timeout` wins); streams' bodies are
    /// not cut by it.
    pub request_timeout: Duration,
    /// `MAX_CONCURRENT_REQUESTS_PER_CONNECTION` (default 256): beyond it
    /// calls are shed at once with UNAVAILABLE instead of queueing.
    pub max_concurrent_per_connection: usize,
    /// `MAX_CONCURRENT_STREAMS` (default 512): HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// `IDLE_CONNECTION_TIMEOUT_SECS` (default 300; 0 = never): a connection
    /// to the gRPC port with no call in flight for this long is closed (see
    /// [`crate::layers::idle`]).
    pub idle_connection_timeout: Option<Duration>,
    /// `MAX_STREAMS_PER_USER` (default 16): server streams (WatchOperation,
    /// DownloadFile, ExportReport) one user may have open at once in this
    /// process; more are RESOURCE_EXHAUSTED (see [`crate::infra::streams`]).
    pub max_streams_per_user: usize,
    /// `CACHE_*_TTL_SECS`: how long cached answers live; `CACHE_LOCAL_TTL_MS`
    /// (default 1000, 0 = off): the in-process tier (see `crate::infra::cache`).
    pub cache_ttls: CacheTtls,
}

/// Per-minute request limits (`RATE_LIMIT_*`), enforced over a sliding
/// window shared through Redis (per process without Redis).
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// `RATE_LIMIT_WINDOW_SECS` (default 60).
    pub window: Duration,
    /// `RATE_LIMIT_API` (default 100): any authenticated RPC, per user.
    pub api: u32,
    /// `RATE_LIMIT_UPLOAD` (default 10): uploads per user.
    pub upload: u32,
    /// `RATE_LIMIT_UPLOAD_BYTES` (default 2 GiB): bytes a user may upload
    /// per window, over every path that brings bytes in, counted as they
    /// arrive (`crate::api::files` upload_budget).
    pub upload_bytes: u64,
    /// `RATE_LIMIT_EXPORT` (default 5): report exports and archive downloads per user.
    pub export: u32,
    /// `RATE_LIMIT_GLOBAL_API` (default 1000): all users together.
    pub global_api: u32,
    /// `RATE_LIMIT_GLOBAL_TRANSFER` (default 100): uploads and exports of
    /// all users together.
    pub global_transfer: u32,
    /// `RATE_LIMIT_LOGIN_PER_IP` (default 20): Login/Register per client address.
    pub login_per_ip: u32,
    /// `RATE_LIMIT_LOGIN_PER_EMAIL` (default 10): failed logins per email
    /// from one client address; past it that address may not try the email
    /// again until the window moves on (other addresses may).
    pub login_per_email: u32,
    /// `RATE_LIMIT_LOGIN_FAILURES_PER_EMAIL` (default 100): failed logins
    /// per email from all addresses together; past it only addresses that
    /// have not failed on the email may still try it (`api::auth`).
    pub login_failures_per_email: u32,
    /// `RATE_LIMIT_AUTH_FAILURES_PER_IP` (default 20): rejected credentials
    /// (bad API keys or access tokens, not merely expired ones) per client
    /// address; past it, every credentialed call from that address is
    /// refused until the window moves on (brute-force protection).
    pub auth_failures_per_ip: u32,
    /// `RATE_LIMIT_BURST` (default 200) and `RATE_LIMIT_BURST_PER_SECOND`
    /// (default 100): the in-process burst guard per client address,
    /// before authentication.
    pub burst: u32,
    pub burst_per_second: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("environment", &self.environment)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("jwt_secret", &"<redacted>")
            .field("grpc_addr", &self.grpc_addr)
            .field("storage_root", &self.storage_root)
            .field("cors_origins", &self.cors_origins)
            .finish_non_exhaustive()
    }
}

/// Hides the password part of a connection URL for logging.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/fileorganizer";
const MIN_JWT_SECRET_BYTES: usize = 32;
/// Room MAX_MESSAGE_BYTES must leave beside MAX_UPLOAD_BYTES for the rest of
/// an UploadSmallFile message (path, hash, framing).
const UPLOAD_MESSAGE_OVERHEAD: usize = 64 * 1024;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds a configuration from any key lookup (tests pass a map).
    ///
    /// JWT_SECRET_KEY: required in production (at least 32 bytes). In other
    /// environments, when absent, a random secret is generated once and kept in
    /// `$DATA_DIR/jwt_secret` so tokens survive restarts; a warning says so.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());

        let environment = match get("ENVIRONMENT").as_deref().map(str::to_ascii_lowercase) {
            None => Environment::Development,
            Some(v) => match v.as_str() {
                "development" | "dev" => Environment::Development,
                "test" => Environment::Test,
                "production" | "prod" => Environment::Production,
                other => {
                    return Err(err(
                        "ENVIRONMENT",
                        format!(
                            "unknown value {other:?}; expected development, test or production"
                        ),
                    ));
                }
            },
        };

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(err("DATABASE_URL", "must be a postgres:// URL"));
        }
        let redis_url = get("REDIS_URL");
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(err("REDIS_URL", "must be a redis:// or rediss:// URL"));
        }

        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let storage_root = get("STORAGE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("storage"));

        let jwt_secret = match get("JWT_SECRET_KEY") {
            Some(secret) if secret.len() < MIN_JWT_SECRET_BYTES => {
                return Err(err(
                    "JWT_SECRET_KEY",
                    format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
                ));
            }
            Some(secret) => secret.into_bytes(),
            None if environment == Environment::Production => {
                return Err(err(
                    "JWT_SECRET_KEY",
                    "is required when ENVIRONMENT=production",
                ));
            }
            None => development_secret(&data_dir)?,
        };

        let cors_origins = match get("CORS_ORIGINS") {
            Some(list) => list
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .map(|o| {
                    if o == "*" || o.starts_with("http://") || o.starts_with("https://") {
                        Ok(o)
                    } else {
                        Err(err(
                            "CORS_ORIGINS",
                            format!("{o:?} is not an origin like https://app.example.com"),
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
            None if environment == Environment::Production => Vec::new(),
            None => [
                "http://localhost:3000",
                "http://127.0.0.1:3000",
                "http://localhost:5173",
            ]
            .map(String::from)
            .to_vec(),
        };

        let log_format = match get("LOG_FORMAT").as_deref() {
            None if environment == Environment::Production => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("unknown value {other:?}; expected json or pretty"),
                ));
            }
        };

        let max_message_bytes = parse(
            &get,
            "MAX_MESSAGE_BYTES",
            24 * 1024 * 1024usize,
            64 * 1024..=1024 * 1024 * 1024,
        )?;
        let max_upload_bytes = parse(
            &get,
            "MAX_UPLOAD_BYTES",
            16 * 1024 * 1024usize,
            0..=1024 * 1024 * 1024,
        )?;
        if max_upload_bytes + UPLOAD_MESSAGE_OVERHEAD > max_message_bytes {
            return Err(err(
                "MAX_UPLOAD_BYTES",
                format!(
                    "{max_upload_bytes} does not fit in a message of MAX_MESSAGE_BYTES \
                     ({max_message_bytes}) with {UPLOAD_MESSAGE_OVERHEAD} bytes to spare"
                ),
            ));
        }

        Ok(Config {
            environment,
            database_url,
            database_pool_size: parse(&get, "DATABASE_POOL_SIZE", 16u32, 1..=1000)?,
            redis_url,
            redis_key_prefix: get("REDIS_KEY_PREFIX").unwrap_or_else(|| "fileorg:".into()),
            jwt_secret,
            jwt_issuer: get("JWT_ISSUER").unwrap_or_else(|| "fileorganizer".into()),
            jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| "fileorganizer-api".into()),
            access_token_ttl: Duration::from_secs(parse(
                &get,
                "ACCESS_TOKEN_TTL_SECS",
                900u64,
                10..=86_400,
            )?),
            refresh_token_ttl: Duration::from_secs(parse(
                &get,
                "REFRESH_TOKEN_TTL_SECS",
                30 * 86_400u64,
                60..=365 * 86_400,
            )?),
            cors_origins,
            data_dir,
            storage_root,
            grpc_addr: parse_addr(&get, "GRPC_ADDR", "127.0.0.1:50051")?
                .expect("GRPC_ADDR has a default"),
            metrics_addr: parse_addr(&get, "METRICS_ADDR", "")?,
            console_addr: parse_addr(&get, "CONSOLE_ADDR", "")?,
            trusted_proxies: get("TRUSTED_PROXIES")
                .unwrap_or_default()
                .parse()
                .map_err(|e: String| err("TRUSTED_PROXIES", e))?,
            console_dir: PathBuf::from(get("CONSOLE_DIR").unwrap_or_else(|| "console/dist".into())),
            console_api_url: get("CONSOLE_API_URL")
                .map(|url| parse_origin("CONSOLE_API_URL", &url))
                .transpose()?,
            log_format,
            health_check_interval: Duration::from_millis(parse(
                &get,
                "HEALTH_CHECK_INTERVAL_MS",
                5_000u64,
                50..=600_000,
            )?),
            shutdown_timeout: Duration::from_secs(parse(
                &get,
                "SHUTDOWN_TIMEOUT_SECS",
                10u64,
                0..=3_600,
            )?),
            max_message_bytes,
            max_upload_bytes,
            upload_session_ttl: Duration::from_secs(parse(
                &get,
                "UPLOAD_SESSION_TTL_SECS",
                86_400u64,
                1..=30 * 86_400,
            )?),
            archive_limits: crate::domain::archive::ArchiveLimits {
                max_expanded_bytes: parse(
                    &get,
                    "ARCHIVE_MAX_EXPANDED_BYTES",
                    64 * 1024 * 1024 * 1024u64,
                    1..=u64::MAX / 2,
                )?,
                max_entries: parse(&get, "ARCHIVE_MAX_ENTRIES", 1_000_000u64, 1..=u64::MAX / 2)?,
                max_ratio: parse(&get, "ARCHIVE_MAX_RATIO", 200u64, 1..=1_000_000)?,
                ratio_floor_bytes: parse(
                    &get,
                    "ARCHIVE_RATIO_FLOOR_BYTES",
                    64 * 1024 * 1024u64,
                    0..=u64::MAX / 2,
                )?,
            },
            workers: parse(&get, "WORKERS", 2usize, 0..=64)?,
            hash_threads: parse(&get, "HASH_THREADS", 2usize, 1..=64)?,
            hash_cache_days: parse(&get, "HASH_CACHE_DAYS", 30u32, 0..=3650)?,
            organize_spill_records: std::num::NonZeroUsize::new(parse(
                &get,
                "ORGANIZE_SPILL_RECORDS",
                262_144usize,
                1..=usize::MAX,
            )?)
            .expect("parsed in 1.."),
            job_heartbeat: Duration::from_millis(parse(
                &get,
                "JOB_HEARTBEAT_MS",
                1_000u64,
                50..=60_000,
            )?),
            job_stale_after: Duration::from_millis(parse(
                &get,
                "JOB_STALE_AFTER_MS",
                15_000u64,
                200..=3_600_000,
            )?),
            job_poll: Duration::from_millis(parse(&get, "JOB_POLL_MS", 1_000u64, 10..=60_000)?),
            moves_per_second: parse(&get, "MOVES_PER_SECOND", 0u32, 0..=10_000_000)?,
            rule_limits: crate::domain::RuleLimits {
                max_rules: parse(&get, "RULES_MAX_PER_USER", 200usize, 1..=10_000)?,
                max_conditions: parse(&get, "RULE_MAX_CONDITIONS", 20usize, 1..=1_000)?,
                max_pattern_bytes: parse(&get, "RULE_MAX_PATTERN_BYTES", 512usize, 16..=65_536)?,
                regex_size_limit: parse(
                    &get,
                    "RULE_REGEX_SIZE_LIMIT",
                    1_048_576usize,
                    4_096..=64 << 20,
                )?,
            },
            scheduler_poll: Duration::from_millis(parse(
                &get,
                "SCHEDULER_POLL_MS",
                1_000u64,
                10..=60_000,
            )?),
            watch_rescan: Duration::from_secs(parse(&get, "WATCH_RESCAN_SECS", 60u64, 1..=86_400)?),
            scheduler_clock_file: match get("SCHEDULER_CLOCK_FILE").filter(|v| !v.is_empty()) {
                Some(_) if environment == Environment::Production => {
                    return Err(err(
                        "SCHEDULER_CLOCK_FILE",
                        "is for tests and refused when ENVIRONMENT=production",
                    ));
                }
                other => other.map(PathBuf::from),
            },
            request_timeout: Duration::from_secs(parse(
                &get,
                "REQUEST_TIMEOUT_SECS",
                600u64,
                1..=86_400,
            )?),
            max_concurrent_per_connection: parse(
                &get,
                "MAX_CONCURRENT_REQUESTS_PER_CONNECTION",
                256usize,
                1..=1_000_000,
            )?,
            max_concurrent_streams: parse(&get, "MAX_CONCURRENT_STREAMS", 512u32, 1..=1_000_000)?,
            max_streams_per_user: parse(&get, "MAX_STREAMS_PER_USER", 16usize, 1..=100_000)?,
            idle_connection_timeout: match parse(
                &get,
                "IDLE_CONNECTION_TIMEOUT_SECS",
                300u64,
                0..=86_400,
            )? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            cache_ttls: CacheTtls {
                profile: Duration::from_secs(parse(
                    &get,
                    "CACHE_PROFILE_TTL_SECS",
                    1800u64,
                    1..=604_800,
                )?),
                operation: Duration::from_secs(parse(
                    &get,
                    "CACHE_OPERATION_TTL_SECS",
                    300u64,
                    1..=604_800,
                )?),
                report: Duration::from_secs(parse(
                    &get,
                    "CACHE_REPORT_TTL_SECS",
                    600u64,
                    1..=604_800,
                )?),
                categories: Duration::from_secs(parse(
                    &get,
                    "CACHE_CATEGORIES_TTL_SECS",
                    3600u64,
                    1..=604_800,
                )?),
                principal: Duration::from_secs(parse(
                    &get,
                    "CACHE_PRINCIPAL_TTL_SECS",
                    60u64,
                    1..=86_400,
                )?),
                local: Duration::from_millis(parse(
                    &get,
                    "CACHE_LOCAL_TTL_MS",
                    1000u64,
                    0..=60_000,
                )?),
            },
            rate_limits: RateLimits {
                window: Duration::from_secs(parse(
                    &get,
                    "RATE_LIMIT_WINDOW_SECS",
                    60u64,
                    1..=86_400,
                )?),
                api: parse(&get, "RATE_LIMIT_API", 100u32, 1..=10_000_000)?,
                upload: parse(&get, "RATE_LIMIT_UPLOAD", 10u32, 1..=10_000_000)?,
                upload_bytes: parse(
                    &get,
                    "RATE_LIMIT_UPLOAD_BYTES",
                    2u64 << 30,
                    1..=(1u64 << 50),
                )?,
                export: parse(&get, "RATE_LIMIT_EXPORT", 5u32, 1..=10_000_000)?,
                global_api: parse(&get, "RATE_LIMIT_GLOBAL_API", 1000u32, 1..=100_000_000)?,
                global_transfer: parse(
                    &get,
                    "RATE_LIMIT_GLOBAL_TRANSFER",
                    100u32,
                    1..=100_000_000,
                )?,
                login_per_ip: parse(&get, "RATE_LIMIT_LOGIN_PER_IP", 20u32, 1..=10_000_000)?,
                login_per_email: parse(&get, "RATE_LIMIT_LOGIN_PER_EMAIL", 10u32, 1..=10_000_000)?,
                login_failures_per_email: parse(
                    &get,
                    "RATE_LIMIT_LOGIN_FAILURES_PER_EMAIL",
                    100u32,
                    1..=10_000_000,
                )?,
                auth_failures_per_ip: parse(
                    &get,
                    "RATE_LIMIT_AUTH_FAILURES_PER_IP",
                    20u32,
                    1..=10_000_000,
                )?,
                burst: parse(&get, "RATE_LIMIT_BURST", 200u32, 1..=10_000_000)?,
                burst_per_second: parse(
                    &get,
                    "RATE_LIMIT_BURST_PER_SECOND",
                    100u32,
                    1..=1_000_000,
                )?,
            },
        })
    }
}

fn parse<T>(
    get: &impl Fn(&str) -> Option<String>,
    key: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(key) else {
        return Ok(default);
    };
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| err(key, format!("{raw:?} is not a number")))?;
    if !range.contains(&value) {
        return Err(err(
            key,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

fn parse_addr(
    get: &impl Fn(&str) -> Option<String>,
    key: &'static str,
    default: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let raw = get(key).unwrap_or_else(|| default.to_string());
    if raw.is_empty() {
        return Ok(None);
    }
    raw.trim().parse().map(Some).map_err(|_| {
        err(
            key,
            format!("{raw:?} is not an address like 127.0.0.1:50051"),
        )
    })
}

/// An origin such as `https://api.example.com` or `http://127.0.0.1:50051`
/// (one trailing `/` tolerated), returned without the slash. Nothing else
/// passes: no path, query, user info, quote, space or `;`, since the value is
/// pasted into the console's Content-Security-Policy header.
pub fn parse_origin(variable: &'static str, raw: &str) -> Result<String, ConfigError> {
    let bad = || {
        err(
            variable,
            format!("{raw:?} is not an origin like https://api.example.com"),
        )
    };
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let (scheme, authority) = trimmed.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https")
        || authority.is_empty()
        || !authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err(bad());
    }
    // host, host:port, [v6] or [v6]:port, with a non-empty host and a numeric port.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (address, rest) = v6.split_once(']').ok_or_else(bad)?;
            address.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            let port = match rest {
                "" => None,
                rest => Some(rest.strip_prefix(':').ok_or_else(bad)?),
            };
            (address, port)
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    if host.is_empty() || host.contains(['[', ']']) || !port_ok {
        return Err(bad());
    }
    Ok(trimmed.to_string())
}

/// Loads (or creates, mode 0600) the development JWT secret under `data_dir`.
fn development_secret(data_dir: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    let path = data_dir.join("jwt_secret");
    if let Ok(existing) = std::fs::read(&path)
        && existing.len() >= MIN_JWT_SECRET_BYTES
    {
        return Ok(existing);
    }
    let mut secret = [0u8; 48];
    rand::rng().fill_bytes(&mut secret);
    let encoded = hex::encode(secret).into_bytes();
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(data_dir)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(&encoded)?;
        file.sync_all()
    };
    write().map_err(|e| {
        err(
            "JWT_SECRET_KEY",
            format!(
                "is not set and {} could not be written: {e}",
                path.display()
            ),
        )
    })?;
    tracing::warn!(
        path = %path.display(),
        "JWT_SECRET_KEY is not set: generated a development secret; set JWT_SECRET_KEY in production"
    );
    Ok(encoded)
}

/// How long each cache keeps its entries (`CACHE_*_TTL_SECS`; the rules
/// are `crate::infra::cache`'s).
#[derive(Debug, Clone, Copy)]
pub struct CacheTtls {
    pub profile: Duration,
    pub operation: Duration,
    pub report: Duration,
    pub categories: Duration,
    pub principal: Duration,
    /// The in-process tier's TTL (`CACHE_LOCAL_TTL_MS`); zero turns it off.
    pub local: Duration,
}

/// The peers whose forwarded-address header is believed (`TRUSTED_PROXIES`;
/// how it is used: `crate::layers::request_context`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No proxy is trusted (the default).
    pub fn none() -> TrustedProxies {
        TrustedProxies::default()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses (`127.0.0.2`) and CIDR ranges
    /// (`10.0.0.0/29`). A range covering every address is refused: trusting
    /// everyone is exactly what this setting exists to prevent.
    fn from_str(raw: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip.to_canonical()),
                    Err(_) => {
                        return Err(format!(
                            "{item:?} is not an address or CIDR range like 127.0.0.2 or 10.0.0.0/29"
                        ));
                    }
                },
            };
            if net.prefix_len() == 0 {
                return Err(format!("{item:?} would trust every client"));
            }
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn production_requires_a_jwt_secret() {
        let e = config(&[("ENVIRONMENT", "production")]).unwrap_err();
        assert_eq!(e.variable, "JWT_SECRET_KEY");
        assert!(config(&[("ENVIRONMENT", "production"), ("JWT_SECRET_KEY", SECRET)]).is_ok());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (key, value) in [
            ("GRPC_ADDR", "nowhere"),
            ("CONSOLE_ADDR", "nowhere"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("ENVIRONMENT", "staging"),
            ("ACCESS_TOKEN_TTL_SECS", "soon"),
            ("ACCESS_TOKEN_TTL_SECS", "1"),
            ("CORS_ORIGINS", "example.com"),
            ("CONSOLE_API_URL", "127.0.0.1:50051"),
            ("CONSOLE_API_URL", "https://api.example.com; script-src *"),
            ("CONSOLE_API_URL", "https://api.example.com/path"),
            ("CONSOLE_API_URL", "https://user@api.example.com"),
            ("CONSOLE_API_URL", "javascript://x"),
            ("JWT_SECRET_KEY", "short"),
            ("LOG_FORMAT", "xml"),
            ("MAX_UPLOAD_BYTES", "25165824"),
            ("TRUSTED_PROXIES", "127.0.0.2,localhost"),
            ("TRUSTED_PROXIES", "0.0.0.0/0"),
            ("MAX_STREAMS_PER_USER", "0"),
            ("IDLE_CONNECTION_TIMEOUT_SECS", "soon"),
        ] {
            let mut vars = vec![(key, value)];
            if key != "JWT_SECRET_KEY" {
                vars.push(("JWT_SECRET_KEY", SECRET));
            }
            let e = config(&vars)
                .err()
                .unwrap_or_else(|| panic!("{key}={value} was accepted"));
            assert_eq!(e.variable, key, "{e}");
        }
    }

    #[test]
    fn spill_records_are_a_positive_count() {
        let records = |value: &str| {
            config(&[
                ("JWT_SECRET_KEY", SECRET),
                ("ORGANIZE_SPILL_RECORDS", value),
            ])
            .map(|c| c.organize_spill_records.get())
        };
        let default = config(&[("JWT_SECRET_KEY", SECRET)]).unwrap();
        assert_eq!(default.organize_spill_records.get(), 262_144);
        assert_eq!(records("3").unwrap(), 3);
        assert_eq!(records(" 1 ").unwrap(), 1);
        for bad in ["0", "abc", "-1", "1.5"] {
            let e = records(bad).expect_err(bad);
            assert_eq!(e.variable, "ORGANIZE_SPILL_RECORDS", "{e}");
            assert!(e.to_string().contains("ORGANIZE_SPILL_RECORDS"), "{e}");
        }
    }

    #[test]
    fn development_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let first = config(&[("DATA_DIR", data)]).unwrap().jwt_secret;
        let second = config(&[("DATA_DIR", data)]).unwrap().jwt_secret;
        assert!(first.len() >= MIN_JWT_SECRET_BYTES);
        assert_eq!(first, second);
    }

    #[test]
    fn defaults() {
        let c = config(&[("JWT_SECRET_KEY", SECRET)]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(c.storage_root, PathBuf::from("./data/storage"));
        assert_eq!(c.access_token_ttl, Duration::from_secs(900));
        assert!(c.redis_url.is_none());
        assert_eq!(c.max_upload_bytes, 16 * 1024 * 1024);
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.max_streams_per_user, 16);
        assert_eq!(c.idle_connection_timeout, Some(Duration::from_secs(300)));
        let never = config(&[
            ("JWT_SECRET_KEY", SECRET),
            ("IDLE_CONNECTION_TIMEOUT_SECS", "0"),
        ]);
        assert_eq!(never.unwrap().idle_connection_timeout, None);
    }

    #[test]
    fn origins_are_kept_as_given_without_a_trailing_slash() {
        for (raw, origin) in [
            ("https://api.example.com/", "https://api.example.com"),
            ("http://127.0.0.1:50051", "http://127.0.0.1:50051"),
            ("http://[::1]:50051", "http://[::1]:50051"),
        ] {
            assert_eq!(parse_origin("CONSOLE_API_URL", raw).unwrap(), origin);
        }
        for raw in [
            "http://",
            "http://:80",
            "http://host:port",
            "http://host:",
            "https://a b",
            "http://[::1]x",
            "http://[nope]:80",
        ] {
            assert!(parse_origin("CONSOLE_API_URL", raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
