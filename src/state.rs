//! Shared state handed to every handler and layer.

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::{auth::tokens::TokenKeys, config::Config, db::DbPool};

use crate::infra::redis::RedisPool;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// Postgres, the system of record.
    pub db: DbPool,
    /// Redis, when REDIS_URL is set. Connections are made lazily, so a Redis
    /// that is down does not stop the server (it reports DEGRADED).
    pub redis: Option<RedisPool>,
    /// Access-token signing and verification (shared: its validation rules
    /// hold sets that would otherwise be copied with every clone of the state).
    pub tokens: Arc<TokenKeys>,
    /// Monotonic start, for uptime.
    pub started: Instant,
    /// Wall-clock start, for GetStatus.
    pub start_time: DateTime<Utc>,
    /// Flips to true when shutdown begins; long-lived streams watch it and end.
    pub shutting_down: watch::Receiver<bool>,
    shutdown_trigger: Arc<watch::Sender<bool>>,
    /// Wakes idle workers of this process when a job is queued here.
    pub jobs_queued: Arc<tokio::sync::Notify>,
    /// Wakes this process's search-names task when one of its jobs ends.
    pub jobs_finished: Arc<tokio::sync::Notify>,
    /// Live progress of jobs running in this process, for WatchOperation.
    pub progress: crate::jobs::hub::ProgressHub,
    /// Request rate limits (Redis-backed when Redis is configured).
    pub limiter: crate::infra::ratelimit::Limiter,
    /// Cache-aside for hot reads (a no-op without Redis).
    pub cache: crate::infra::cache::Cache,
    /// One computation at a time per operation and kind of memo (`infra::memo`).
    pub memo_builds: crate::infra::keyed_lock::KeyedLock<(uuid::Uuid, String)>,
    /// Open server streams per user, capped at MAX_STREAMS_PER_USER.
    pub stream_slots: crate::infra::streams::StreamSlots,
    /// When automations fire (`jobs::clock`): the system clock, or the
    /// test clock of SCHEDULER_CLOCK_FILE.
    pub clock: Arc<dyn crate::jobs::clock::Clock>,
}

impl AppState {
    /// Connects to Postgres (creating the database and applying migrations),
    /// prepares Redis and the storage root.
    pub async fn connect(config: Config) -> anyhow::Result<AppState> {
        let db = crate::db::connect(&config.database_url, config.database_pool_size).await?;
        let redis = match &config.redis_url {
            Some(url) => {
                let manager = bb8_redis::RedisConnectionManager::new(url.as_str())?;
                Some(
                    // Every authenticated call makes one or two short Redis
                    // round trips (rate limits, failed-credential check):
                    // 8 connections ran dry at 100 concurrent clients.
                    bb8::Pool::builder()
                        .max_size(32)
                        .connection_timeout(std::time::Duration::from_secs(1))
                        .build_unchecked(manager),
                )
            }
            None => {
                tracing::warn!("REDIS_URL is not set: caching and shared rate limits are disabled");
                None
            }
        };
        std::fs::create_dir_all(&config.storage_root).map_err(|e| {
            anyhow::anyhow!(
                "STORAGE_ROOT {} cannot be created: {e}",
                config.storage_root.display()
            )
        })?;
        let tokens = Arc::new(TokenKeys::new(
            &config.jwt_secret,
            &config.jwt_issuer,
            &config.jwt_audience,
            config.access_token_ttl,
        )?);
        crate::auth::password::warm_up();
        let (tx, rx) = watch::channel(false);
        let limiter = crate::infra::ratelimit::Limiter::new(
            redis.clone(),
            &config.redis_key_prefix,
            config.rate_limits.window,
        );
        let cache = crate::infra::cache::Cache::new(
            redis.clone(),
            &config.redis_key_prefix,
            config.cache_ttls,
        );
        let progress = crate::jobs::hub::ProgressHub::new(
            config.redis_url.as_deref(),
            &config.redis_key_prefix,
            rx.clone(),
        );
        let stream_slots = crate::infra::streams::StreamSlots::new(config.max_streams_per_user);
        let clock = crate::jobs::clock::from_config(config.scheduler_clock_file.as_deref());
        Ok(AppState {
            clock,
            cache,
            config: Arc::new(config),
            db,
            tokens,
            started: Instant::now(),
            start_time: Utc::now(),
            shutting_down: rx,
            shutdown_trigger: Arc::new(tx),
            jobs_queued: Arc::new(tokio::sync::Notify::new()),
            jobs_finished: Arc::new(tokio::sync::Notify::new()),
            progress,
            limiter,
            redis,
            memo_builds: Default::default(),
            stream_slots,
        })
    }

    /// Signals every stream and background task that shutdown has begun.
    pub fn begin_shutdown(&self) {
        self.shutdown_trigger.send_replace(true);
    }

    /// The storage of one user (created on first use).
    pub fn user_root(
        &self,
        user_id: uuid::Uuid,
    ) -> crate::error::AppResult<crate::storage::root::UserRoot> {
        crate::storage::root::UserRoot::open(&self.config.storage_root, user_id)
            .map_err(|e| crate::error::AppError::internal(format!("opening storage: {e}")))
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutting_down.borrow()
    }
}
