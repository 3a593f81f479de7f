//! Redis cache-aside for hot reads, with its invalidation rules.
//!
//! | cache | key | TTL (default) | invalidated by |
//! |---|---|---|---|
//! | `profile` | user id | 30 min (CACHE_PROFILE_TTL_SECS) | UpdateCurrentUser, login, role change |
//! | `operation` | owner id : operation id | 5 min (CACHE_OPERATION_TTL_SECS) | every state change (API or worker), undo |
//! | `report` | owner id : operation id | 10 min (CACHE_REPORT_TTL_SECS) | the operation's state changes, undo of it |
//! | `categories` | user id | 1 h (CACHE_CATEGORIES_TTL_SECS) | category writes, every organize that finishes |
//! | `api_key` | key prefix | 60 s (CACHE_PRINCIPAL_TTL_SECS) | RevokeApiKey |
//!
//! Keys are `<REDIS_KEY_PREFIX>v2:cache:<cache>:<id>`; the version segment
//! changes whenever a cached message's meaning changes, so old entries are
//! simply never read again. Only operations in a resting state (succeeded,
//! failed, cancelled, planned) are cached, since running ones change every
//! second. Writers invalidate *after* their database write commits, so once
//! a write has returned no reader can get the old value from the cache.
//!
//! Redis is optional: without it every read is a miss. When Redis fails, the
//! cache stops trying for a few seconds (so requests do not wait on a dead
//! Redis), logs once, counts `cache_errors_total`, and resumes by itself.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use prost::Message;

use crate::state::RedisPool;

/// Pause after a Redis failure before the cache tries again.
const BACKOFF: Duration = Duration::from_secs(5);
/// Bound on a cache round trip; a slow Redis counts as a failure.
const TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy)]
pub struct CacheTtls {
    pub profile: Duration,
    pub operation: Duration,
    pub report: Duration,
    pub categories: Duration,
    pub principal: Duration,
}

#[derive(Clone)]
pub struct Cache {
    redis: Option<RedisPool>,
    prefix: String,
    pub ttls: CacheTtls,
    down_until: Arc<Mutex<Option<Instant>>>,
    warned: Arc<AtomicBool>,
    /// Invalidations that could not reach Redis; replayed first thing when
    /// it answers again, so an entry written before an outage cannot
    /// outlive a change made during it (in this process; the TTL bounds the
    /// rest).
    pending: Arc<Mutex<Vec<String>>>,
}

impl Cache {
    pub fn new(redis: Option<RedisPool>, prefix: &str, ttls: CacheTtls) -> Cache {
        Cache {
            redis,
            prefix: prefix.to_string(),
            ttls,
            down_until: Default::default(),
            warned: Default::default(),
            pending: Default::default(),
        }
    }

    pub fn key(&self, cache: &str, id: impl std::fmt::Display) -> String {
        format!("{}v2:cache:{cache}:{id}", self.prefix)
    }

    fn usable(&self) -> Option<&RedisPool> {
        let pool = self.redis.as_ref()?;
        let mut down = self.down_until.lock().expect("cache lock");
        match *down {
            Some(until) if Instant::now() < until => None,
            Some(_) => {
                *down = None;
                Some(pool)
            }
            None => Some(pool),
        }
    }

    fn failed(&self, error: impl std::fmt::Display) {
        *self.down_until.lock().expect("cache lock") = Some(Instant::now() + BACKOFF);
        metrics::counter!("cache_errors_total").increment(1);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "Redis cache unavailable: reading from Postgres until it returns");
        }
    }

    async fn run<T>(&self, command: bb8_redis::redis::Cmd) -> Option<T>
    where
        T: bb8_redis::redis::FromRedisValue,
    {
        let pool = self.usable()?;
        let pending: Vec<String> = std::mem::take(&mut *self.pending.lock().expect("cache lock"));
        let attempt = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            if !pending.is_empty() {
                bb8_redis::redis::cmd("DEL")
                    .arg(&pending)
                    .query_async::<i64>(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            command
                .query_async::<T>(&mut *conn)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(TIMEOUT, attempt).await {
            Ok(Ok(value)) => {
                if self.warned.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis cache available again");
                }
                Some(value)
            }
            Ok(Err(error)) => {
                self.pending.lock().expect("cache lock").extend(pending);
                self.failed(error);
                None
            }
            Err(_) => {
                self.pending.lock().expect("cache lock").extend(pending);
                self.failed("timed out");
                None
            }
        }
    }

    /// A cached message, counting a hit or a miss for `cache`.
    pub async fn get<T: Message + Default>(
        &self,
        cache: &'static str,
        id: impl std::fmt::Display,
    ) -> Option<T> {
        let mut command = bb8_redis::redis::cmd("GET");
        command.arg(self.key(cache, id));
        let bytes: Option<Vec<u8>> = self.run::<Option<Vec<u8>>>(command).await.flatten();
        let value = bytes.and_then(|b| T::decode(b.as_slice()).ok());
        if value.is_some() {
            metrics::counter!("cache_hits_total", "cache" => cache).increment(1);
        } else {
            metrics::counter!("cache_misses_total", "cache" => cache).increment(1);
        }
        value
    }

    /// Stores a message for `ttl`.
    pub async fn put<T: Message>(
        &self,
        cache: &'static str,
        id: impl std::fmt::Display,
        value: &T,
        ttl: Duration,
    ) {
        let mut command = bb8_redis::redis::cmd("SET");
        command
            .arg(self.key(cache, id))
            .arg(value.encode_to_vec())
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        let _: Option<()> = self.run(command).await;
    }

    /// Drops entries; call after the database write that changed them.
    pub async fn invalidate(&self, entries: &[(&'static str, String)]) {
        if entries.is_empty() || self.redis.is_none() {
            return;
        }
        let keys: Vec<String> = entries
            .iter()
            .map(|(cache, id)| self.key(cache, id))
            .collect();
        let mut command = bb8_redis::redis::cmd("DEL");
        command.arg(&keys);
        let deleted: Option<i64> = self.run(command).await;
        if deleted.is_none() {
            self.pending.lock().expect("cache lock").extend(keys);
        }
    }
}

impl Cache {
    /// After an operation changed: its cached status and report (keyed by
    /// owner and id, so a cached answer can only reach its owner).
    pub async fn operation_changed(&self, user_id: uuid::Uuid, id: uuid::Uuid) {
        let key = format!("{user_id}:{id}");
        self.invalidate(&[("operation", key.clone()), ("report", key)])
            .await;
    }
}
