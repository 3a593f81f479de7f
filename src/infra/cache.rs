//! Redis cache-aside for hot reads, with its invalidation rules.
//!
//! | cache | key | TTL (default) | invalidated by |
//! |---|---|---|---|
//! | `profile` | user id | 30 min (CACHE_PROFILE_TTL_SECS) | UpdateCurrentUser, login, role change |
//! | `operation` | owner id : operation id | 5 min (CACHE_OPERATION_TTL_SECS) | every state change (API or worker), undo |
//! | `report` | owner id : operation id | 10 min (CACHE_REPORT_TTL_SECS) | the operation's state changes, undo of it |
//!
//! Behind the `report` cache, a report of an operation at rest is also stored
//! in Postgres for the operation's current version (`infra::memo`), so that
//! without Redis it is still computed once, not once a second.
//! | `categories` | user id | 1 h (CACHE_CATEGORIES_TTL_SECS) | category writes, every organize that finishes |
//! | `api_key_v3` | key prefix | 60 s (CACHE_PRINCIPAL_TTL_SECS) | RevokeApiKey |
//! | `auth_user` | user id | 60 s (CACHE_PRINCIPAL_TTL_SECS) | `fileorg user promote/demote/disable/enable` (twice: `auth::sessions`) |
//! | `session` | refresh-token family id | 60 s (CACHE_PRINCIPAL_TTL_SECS) | Logout, reuse detection, password change (twice: `auth::sessions`) |
//! | `arrival_folders` | user id | 60 s (CACHE_PRINCIPAL_TTL_SECS) | every automation write of the user (`jobs::automations::automations_changed`) |
//!
//! Keys are `<REDIS_KEY_PREFIX>v2:cache:<cache>:<id>`; the version segment
//! changes whenever a cached message's meaning changes, so old entries are
//! simply never read again. Only operations in a resting state (succeeded,
//! failed, cancelled, planned) are cached, since running ones change every
//! second. Writers invalidate *after* their database write commits, so once
//! a write has returned no reader can get the old value from the cache.
//!
//! Redis is optional. When Redis fails, the cache stops trying for a few
//! seconds (so requests do not wait on a dead Redis), logs once, counts
//! `cache_errors_total`, and resumes by itself.
//!
//! ## The in-process tier
//!
//! In front of Redis sits a small in-process tier (`CACHE_LOCAL_TTL_MS`,
//! default 1 s, 0 turns it off; at most 10,000 entries): a hot resting
//! operation polled by a hundred clients is answered from memory, without a
//! Redis or Postgres round trip (BENCHMARKS.md: GetOperation throughput).
//! An entry lives for the shorter of its cache's TTL and the local TTL. It is
//! used with or without Redis.
//!
//! Its consistency, precisely:
//! - In the process that made a change, nothing stale is ever served: an
//!   invalidation evicts the local entry synchronously, and leaves a
//!   tombstone for one local TTL so that a reader that fetched the old value
//!   just before the write cannot put it back (the race every cache-aside
//!   has; closed here because a database read takes far less than the TTL).
//! - In another process (a second API replica, or `fileorg worker` scaled
//!   out), an entry can outlive a change made elsewhere by at most the local
//!   TTL (1 s by default). Operations are cached only at rest, and what
//!   moves them out of rest (apply, undo, cancel) are API calls, so with a
//!   single API process GetOperation is exact; set `CACHE_LOCAL_TTL_MS=0`
//!   where several replicas must agree at once.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use prost::Message;

use crate::infra::redis::RedisPool;

/// Pause after a Redis failure before the cache tries again.
const BACKOFF: Duration = Duration::from_secs(5);
/// Bound on a cache round trip; a slow Redis counts as a failure.
const TIMEOUT: Duration = Duration::from_millis(300);

pub use crate::config::CacheTtls;

/// Most entries the in-process tier holds; beyond it expired entries are
/// dropped, and if that is not enough, all of them.
const LOCAL_CAPACITY: usize = 10_000;

/// One entry of the in-process tier: a value, or a tombstone left by an
/// invalidation (which a racing fill must not overwrite).
struct LocalEntry {
    expires: Instant,
    value: Option<Arc<[u8]>>,
}

/// The in-process tier (see the module docs).
#[derive(Default)]
struct LocalTier {
    entries: Mutex<std::collections::HashMap<String, LocalEntry>>,
}

impl LocalTier {
    fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let entries = self.entries.lock().expect("local cache lock");
        let entry = entries.get(key)?;
        (entry.expires > Instant::now())
            .then(|| entry.value.clone())
            .flatten()
    }

    fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("local cache lock");
        if entries
            .get(key)
            .is_some_and(|e| e.value.is_none() && e.expires > now)
        {
            return; // invalidated moments ago: the value may predate the change
        }
        if entries.len() >= LOCAL_CAPACITY {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= LOCAL_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            key.to_string(),
            LocalEntry {
                expires: now + ttl,
                value: Some(value.into()),
            },
        );
    }

    fn invalidate(&self, key: &str, ttl: Duration) {
        let mut entries = self.entries.lock().expect("local cache lock");
        entries.insert(
            key.to_string(),
            LocalEntry {
                expires: Instant::now() + ttl,
                value: None,
            },
        );
    }
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
    local: Arc<LocalTier>,
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
            local: Default::default(),
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
        metrics::counter!(super::observability::CACHE_ERRORS_TOTAL).increment(1);
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
        let key = self.key(cache, id);
        let local = self.local_ttl(cache);
        let value = match local.and_then(|_| self.local.get(&key)) {
            Some(bytes) => T::decode(&bytes[..]).ok(),
            None => {
                let mut command = bb8_redis::redis::cmd("GET");
                command.arg(&key);
                let bytes: Option<Vec<u8>> = self.run::<Option<Vec<u8>>>(command).await.flatten();
                if let (Some(ttl), Some(bytes)) = (local, &bytes) {
                    self.local.put(&key, bytes, ttl);
                }
                bytes.and_then(|b| T::decode(b.as_slice()).ok())
            }
        };
        if value.is_some() {
            metrics::counter!(super::observability::CACHE_HITS_TOTAL, "cache" => cache)
                .increment(1);
        } else {
            metrics::counter!(super::observability::CACHE_MISSES_TOTAL, "cache" => cache)
                .increment(1);
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
        let key = self.key(cache, id);
        let bytes = value.encode_to_vec();
        if let Some(local) = self.local_ttl(cache) {
            self.local.put(&key, &bytes, local.min(ttl));
        }
        if self.redis.is_none() {
            return;
        }
        let mut command = bb8_redis::redis::cmd("SET");
        command
            .arg(key)
            .arg(bytes)
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        let _: Option<()> = self.run(command).await;
    }

    /// Drops entries; call after the database write that changed them.
    pub async fn invalidate(&self, entries: &[(&'static str, String)]) {
        let keys: Vec<String> = entries
            .iter()
            .map(|(cache, id)| self.key(cache, id))
            .collect();
        if !self.ttls.local.is_zero() {
            for key in &keys {
                self.local.invalidate(key, self.ttls.local);
            }
        }
        if keys.is_empty() || self.redis.is_none() {
            return;
        }
        let mut command = bb8_redis::redis::cmd("DEL");
        command.arg(&keys);
        let deleted: Option<i64> = self.run(command).await;
        if deleted.is_none() {
            self.pending.lock().expect("cache lock").extend(keys);
        }
    }
}

impl Cache {
    /// The in-process TTL for entries of `cache` (None: the tier is off).
    fn local_ttl(&self, cache: &str) -> Option<Duration> {
        let of_cache = match cache {
            "profile" => self.ttls.profile,
            "operation" => self.ttls.operation,
            "report" => self.ttls.report,
            "categories" => self.ttls.categories,
            _ => self.ttls.principal,
        };
        Some(self.ttls.local.min(of_cache)).filter(|ttl| !ttl.is_zero())
    }

    /// After an operation changed: its cached status and report (keyed by
    /// owner and id, so a cached answer can only reach its owner).
    pub async fn operation_changed(&self, user_id: uuid::Uuid, id: uuid::Uuid) {
        let key = format!("{user_id}:{id}");
        self.invalidate(&[("operation", key.clone()), ("report", key)])
            .await;
    }

    /// After only the operation's own row changed, not its journal (the
    /// phase timings a job adds once the operation is final): its cached
    /// status, not its report.
    pub async fn operation_row_changed(&self, user_id: uuid::Uuid, id: uuid::Uuid) {
        self.invalidate(&[("operation", format!("{user_id}:{id}"))])
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttls(local: Duration) -> CacheTtls {
        let long = Duration::from_secs(60);
        CacheTtls {
            profile: long,
            operation: long,
            report: long,
            categories: long,
            principal: long,
            local,
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Text {
        #[prost(string, tag = "1")]
        value: String,
    }

    fn message(text: &str) -> Text {
        Text {
            value: text.to_string(),
        }
    }

    #[tokio::test]
    async fn without_redis_the_local_tier_serves_what_was_put() {
        let cache = Cache::new(None, "t:", ttls(Duration::from_secs(5)));
        assert!(cache.get::<Text>("operation", "a").await.is_none());
        cache
            .put("operation", "a", &message("one"), Duration::from_secs(60))
            .await;
        assert_eq!(
            cache.get::<Text>("operation", "a").await,
            Some(message("one"))
        );
        // Another key, another cache: misses.
        assert!(cache.get::<Text>("operation", "b").await.is_none());
        assert!(cache.get::<Text>("report", "a").await.is_none());
    }

    #[tokio::test]
    async fn an_invalidation_evicts_and_a_racing_fill_cannot_put_the_old_value_back() {
        let cache = Cache::new(None, "t:", ttls(Duration::from_secs(5)));
        cache
            .put("operation", "a", &message("old"), Duration::from_secs(60))
            .await;
        cache.invalidate(&[("operation", "a".to_string())]).await;
        assert!(cache.get::<Text>("operation", "a").await.is_none());
        // A reader that fetched "old" before the write puts it afterwards:
        // the tombstone refuses it for one local TTL.
        cache
            .put("operation", "a", &message("old"), Duration::from_secs(60))
            .await;
        assert!(cache.get::<Text>("operation", "a").await.is_none());
    }

    #[tokio::test]
    async fn entries_expire_after_the_shorter_ttl_and_zero_turns_the_tier_off() {
        let cache = Cache::new(None, "t:", ttls(Duration::from_millis(50)));
        cache
            .put("operation", "a", &message("one"), Duration::from_secs(60))
            .await;
        assert!(cache.get::<Text>("operation", "a").await.is_some());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(cache.get::<Text>("operation", "a").await.is_none());
        // The cache's own TTL is shorter than the local one here.
        let cache = Cache::new(None, "t:", ttls(Duration::from_secs(5)));
        cache
            .put("operation", "b", &message("two"), Duration::from_millis(30))
            .await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(cache.get::<Text>("operation", "b").await.is_none());
        let off = Cache::new(None, "t:", ttls(Duration::ZERO));
        off.put("operation", "a", &message("one"), Duration::from_secs(60))
            .await;
        assert!(off.get::<Text>("operation", "a").await.is_none());
    }

    #[test]
    fn the_local_tier_stays_bounded() {
        let tier = LocalTier::default();
        for i in 0..LOCAL_CAPACITY + 10 {
            tier.put(&format!("k{i}"), b"v", Duration::from_secs(60));
        }
        let held = tier.entries.lock().unwrap().len();
        assert!(held <= LOCAL_CAPACITY, "{held} entries");
        assert!(tier.get(&format!("k{}", LOCAL_CAPACITY + 9)).is_some());
    }
}
