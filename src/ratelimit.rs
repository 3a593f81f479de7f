//! Sliding-window rate limits shared by every API process through Redis.
//!
//! Each limit is a Redis sorted set of request timestamps
//! (`<prefix>v1:rl:<key>`); one Lua script drops entries older than the
//! window, counts, admits or refuses, and reports when the oldest entry
//! leaves the window — atomically, with Redis's own clock, so several API
//! processes enforce one limit together. When Redis is absent or failing,
//! the same algorithm runs on in-process counters: the limits then hold per
//! process (documented in the README).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::{Duration, Instant},
};

use tonic::{Code, Status, metadata::MetadataValue};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{error::ERROR_DOMAIN, state::RedisPool};

/// The outcome of counting one request against one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests still allowed in the current window.
    pub remaining: u32,
    /// When the oldest counted request leaves the window.
    pub reset_after: Duration,
}

impl Decision {
    /// The tighter of two decisions (both were counted).
    pub fn tighter(self, other: Decision) -> Decision {
        match (self.allowed, other.allowed) {
            (true, false) => other,
            (false, true) => self,
            _ if other.remaining < self.remaining => other,
            _ => self,
        }
    }

    /// `x-ratelimit-*` (and, when refused, `retry-after`) headers.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let reset = self.reset_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut headers = vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ];
        if !self.allowed {
            headers.push(("retry-after", reset.to_string()));
        }
        headers
    }

    /// RESOURCE_EXHAUSTED with ErrorInfo RATE_LIMITED, RetryInfo and the
    /// rate-limit metadata.
    pub fn status(&self, what: &str) -> Status {
        let retry = Duration::from_secs(self.reset_after.as_secs_f64().ceil().max(1.0) as u64);
        let mut details = ErrorDetails::with_retry_info(Some(retry));
        details.set_error_info(
            "RATE_LIMITED",
            ERROR_DOMAIN,
            HashMap::from([("limit".to_string(), what.to_string())]),
        );
        let mut status = Status::with_error_details(
            Code::ResourceExhausted,
            format!(
                "rate limit exceeded for {what}: {} requests per window; retry in {}s",
                self.limit,
                retry.as_secs()
            ),
            details,
        );
        for (name, value) in self.headers() {
            if let Ok(value) = MetadataValue::try_from(value) {
                status.metadata_mut().insert(name, value);
            }
        }
        status
    }
}

/// Counts one request against KEYS[1] (limit ARGV[3]) and, only if that
/// admitted it, against KEYS[2] (limit ARGV[4]): the per-user and the global
/// window of one call in a single round trip. Returns `{allowed, count,
/// reset}` per key evaluated. Invoked by SHA (`EVALSHA`), loaded on demand.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local nonce = ARGV[2]
local function count(key, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  local allowed = 0
  if limit > 0 and n < limit then
    redis.call('ZADD', key, now, now .. '-' .. nonce)
    n = n + 1
    allowed = 1
  end
  redis.call('PEXPIRE', key, window)
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local reset = window
  if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  return {allowed, n, reset}
end
local result = count(KEYS[1], tonumber(ARGV[3]))
if KEYS[2] and result[1] == 1 then
  local second = count(KEYS[2], tonumber(ARGV[4]))
  for _, v in ipairs(second) do table.insert(result, v) end
end
return result
"#;

/// Counts requests against named limits.
#[derive(Clone)]
pub struct Limiter {
    redis: Option<RedisPool>,
    prefix: String,
    window: Duration,
    local: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
    warned: Arc<AtomicBool>,
    /// SHA1 of [`SCRIPT`] as Redis reported it on `SCRIPT LOAD`.
    script_sha: Arc<Mutex<Option<String>>>,
    /// Keys a peek found empty, until when that answer is reused (see
    /// [`Limiter::peek`]).
    clear: Arc<Mutex<HashMap<String, Instant>>>,
}

/// How long a peek that found no requests is believed without asking
/// Redis again (in this process; a hit here forgets it at once).
const CLEAR_MEMORY: Duration = Duration::from_secs(1);
/// Most keys remembered as clear; beyond it, expired ones are dropped, and
/// if that is not enough, all of them.
const CLEAR_CAPACITY: usize = 10_000;

impl Limiter {
    pub fn new(redis: Option<RedisPool>, prefix: &str, window: Duration) -> Limiter {
        Limiter {
            redis,
            prefix: prefix.to_string(),
            window,
            local: Default::default(),
            warned: Default::default(),
            script_sha: Default::default(),
            clear: Default::default(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// "redis" when limits are shared between processes, else "local".
    pub fn backend(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "local"
        }
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}v1:rl:{key}", self.prefix)
    }

    /// Counts one request against `key` (admitted only if under `limit`).
    pub async fn hit(&self, key: &str, limit: u32) -> Decision {
        let [counted, ..] = &self.count(&[(key, limit)], true).await[..] else {
            unreachable!("one key counted")
        };
        counted.decision(limit)
    }

    /// Counts one request against `first` and, only if that admitted it,
    /// against `second` (a per-user and a global limit), in one Redis round
    /// trip; the second decision is None when it was not counted.
    pub async fn hit_both(
        &self,
        first: (&str, u32),
        second: (&str, u32),
    ) -> (Decision, Option<Decision>) {
        let counted = self.count(&[first, second], true).await;
        (
            counted[0].decision(first.1),
            counted.get(1).map(|c| c.decision(second.1)),
        )
    }

    /// The current state of `key` without counting a request.
    ///
    /// Every authenticated call peeks at its address's failed-credential
    /// window, which is nearly always empty: an empty answer is remembered
    /// for [`CLEAR_MEMORY`] in this process (a hit on the key here forgets it
    /// at once), which saves a Redis round trip per call. Failures counted
    /// by another API process are seen here within that second.
    pub async fn peek(&self, key: &str, limit: u32) -> Decision {
        let now = Instant::now();
        if self
            .clear
            .lock()
            .expect("limiter lock")
            .get(key)
            .is_some_and(|until| *until > now)
        {
            return Decision {
                allowed: limit > 0,
                limit,
                remaining: limit,
                reset_after: self.window,
            };
        }
        let [c, ..] = &self.count(&[(key, limit)], false).await[..] else {
            unreachable!("one key counted")
        };
        if c.count == 0 {
            let mut clear = self.clear.lock().expect("limiter lock");
            if clear.len() >= CLEAR_CAPACITY {
                clear.retain(|_, until| *until > now);
                if clear.len() >= CLEAR_CAPACITY {
                    clear.clear();
                }
            }
            clear.insert(key.to_string(), now + CLEAR_MEMORY);
        }
        Decision {
            allowed: c.count < limit,
            limit,
            remaining: limit.saturating_sub(c.count),
            reset_after: c.reset_after,
        }
    }

    /// Forgets every request counted against `key`.
    pub async fn reset(&self, key: &str) {
        if let Some(pool) = &self.redis
            && let Ok(Ok(mut conn)) =
                tokio::time::timeout(Duration::from_millis(500), pool.get()).await
        {
            let _: Result<i64, _> = bb8_redis::redis::cmd("DEL")
                .arg(self.redis_key(key))
                .query_async(&mut *conn)
                .await;
        }
        self.local.lock().expect("limiter lock").remove(key);
        self.clear.lock().expect("limiter lock").remove(key);
    }

    /// Counts against `keys` in order, each only if the one before admitted
    /// the request (one or two keys). Without `record`, counts nothing: a
    /// peek.
    async fn count(&self, keys: &[(&str, u32)], record: bool) -> Vec<Counted> {
        if record {
            let mut clear = self.clear.lock().expect("limiter lock");
            for (key, _) in keys {
                clear.remove(*key);
            }
        }
        if let Some(pool) = &self.redis {
            match self.count_redis(pool, keys, record).await {
                Ok(counted) => return counted,
                Err(error) => {
                    if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(%error, "Redis unavailable for rate limits: using per-process counters");
                    }
                }
            }
        }
        let mut counted = Vec::with_capacity(keys.len());
        for (key, limit) in keys {
            let c = self.count_local(key, *limit, record);
            let admitted = c.admitted;
            counted.push(c);
            if !admitted {
                break;
            }
        }
        counted
    }

    async fn count_redis(
        &self,
        pool: &RedisPool,
        keys: &[(&str, u32)],
        record: bool,
    ) -> Result<Vec<Counted>, String> {
        use bb8_redis::redis::{ErrorKind, ServerErrorKind, cmd};
        let mut conn = tokio::time::timeout(Duration::from_millis(500), pool.get())
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let nonce: u64 = rand::random();
        let mut args = vec![self.window.as_millis() as u64, nonce];
        // A limit of 0 admits (and so records) nothing: a peek.
        args.extend(
            keys.iter()
                .map(|(_, limit)| if record { u64::from(*limit) } else { 0 }),
        );
        let names: Vec<String> = keys.iter().map(|(key, _)| self.redis_key(key)).collect();
        let mut loaded = false;
        let values: Vec<i64> = loop {
            let sha = self.script_sha.lock().expect("limiter lock").clone();
            let sha = match sha {
                Some(sha) => sha,
                None => {
                    let sha: String = cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(SCRIPT)
                        .query_async(&mut *conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    loaded = true;
                    *self.script_sha.lock().expect("limiter lock") = Some(sha.clone());
                    sha
                }
            };
            match cmd("EVALSHA")
                .arg(&sha)
                .arg(names.len())
                .arg(&names)
                .arg(&args)
                .query_async(&mut *conn)
                .await
            {
                Ok(values) => break values,
                // Redis restarted (or flushed its scripts): load it again, once.
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) && !loaded => {
                    *self.script_sha.lock().expect("limiter lock") = None;
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        Ok(values
            .chunks_exact(3)
            .map(|v| Counted {
                admitted: v[0] == 1,
                count: v[1].max(0) as u32,
                reset_after: Duration::from_millis(v[2].max(0) as u64),
            })
            .collect())
    }

    fn count_local(&self, key: &str, limit: u32, record: bool) -> Counted {
        let now = Instant::now();
        let mut map = self.local.lock().expect("limiter lock");
        let entries = map.entry(key.to_string()).or_default();
        while entries
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            entries.pop_front();
        }
        let admitted = record && (entries.len() as u32) < limit;
        if admitted {
            entries.push_back(now);
        }
        let reset_after = entries
            .front()
            .map(|t| self.window.saturating_sub(now.duration_since(*t)))
            .unwrap_or(self.window);
        Counted {
            admitted,
            count: entries.len() as u32,
            reset_after,
        }
    }
}

/// Raw result of one count.
struct Counted {
    admitted: bool,
    count: u32,
    reset_after: Duration,
}

impl Counted {
    fn decision(&self, limit: u32) -> Decision {
        Decision {
            allowed: self.admitted,
            limit,
            remaining: limit.saturating_sub(self.count),
            reset_after: self.reset_after,
        }
    }
}

/// The limit buckets of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Api,
    Upload,
    Export,
}

impl Bucket {
    pub const ALL: [Bucket; 3] = [Bucket::Api, Bucket::Upload, Bucket::Export];

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Api => "api",
            Bucket::Upload => "upload",
            Bucket::Export => "export",
        }
    }

    pub fn parse(name: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The bucket an RPC (gRPC path) counts against.
    pub fn of_path(path: &str) -> Bucket {
        match path.rsplit('/').next().unwrap_or_default() {
            "UploadFile" | "UploadSmallFile" => Bucket::Upload,
            "ExportReport" => Bucket::Export,
            _ => Bucket::Api,
        }
    }

    pub fn user_key(self, user_id: uuid::Uuid) -> String {
        format!("{}:user:{user_id}", self.name())
    }

    pub fn global_key(self) -> String {
        match self {
            Bucket::Api => "api:global".into(),
            // Uploads and exports share one global transfer budget.
            Bucket::Upload | Bucket::Export => "transfer:global".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_window_admits_up_to_the_limit() {
        let limiter = Limiter::new(None, "t:", Duration::from_millis(300));
        for i in 0..3 {
            let d = limiter.hit("k", 3).await;
            assert!(d.allowed, "{i}");
            assert_eq!(d.remaining, 2 - i);
        }
        let refused = limiter.hit("k", 3).await;
        assert!(!refused.allowed);
        assert!(refused.reset_after <= Duration::from_millis(300));
        assert_eq!(limiter.peek("k", 3).await.remaining, 0);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(limiter.hit("k", 3).await.allowed);
        limiter.reset("k").await;
        assert_eq!(limiter.peek("k", 3).await.remaining, 3);
    }

    #[tokio::test]
    async fn an_empty_peek_is_remembered_until_a_hit_here_forgets_it() {
        let limiter = Limiter::new(None, "t:", Duration::from_secs(60));
        assert_eq!(limiter.peek("f", 2).await.remaining, 2);
        // A hit elsewhere (here: straight into the counters, as another
        // process's would land in Redis) is not seen for CLEAR_MEMORY...
        limiter.count_local("f", 2, true);
        assert_eq!(limiter.peek("f", 2).await.remaining, 2);
        // ...and is seen once the memory lapses (the README's "within a second").
        tokio::time::sleep(CLEAR_MEMORY + Duration::from_millis(100)).await;
        assert_eq!(limiter.peek("f", 2).await.remaining, 1);
        // ...but a hit through this limiter forgets the memory at once.
        limiter.hit("f", 2).await;
        let d = limiter.peek("f", 2).await;
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        // A non-empty window is never remembered.
        assert_eq!(limiter.peek("f", 2).await.remaining, 0);
        limiter.reset("f").await;
        assert_eq!(limiter.peek("f", 2).await.remaining, 2);
    }

    #[test]
    fn refusals_carry_retry_info_and_headers() {
        let d = Decision {
            allowed: false,
            limit: 100,
            remaining: 0,
            reset_after: Duration::from_millis(2500),
        };
        let status = d.status("api");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.get_error_details().retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(3))
        );
        assert_eq!(status.metadata().get("retry-after").unwrap(), "3");
        assert_eq!(status.metadata().get("x-ratelimit-limit").unwrap(), "100");
    }

    #[test]
    fn buckets_by_rpc() {
        assert_eq!(
            Bucket::of_path("/fileorganizer.v1.FileService/UploadFile"),
            Bucket::Upload
        );
        assert_eq!(
            Bucket::of_path("/fileorganizer.v1.ReportService/ExportReport"),
            Bucket::Export
        );
        assert_eq!(
            Bucket::of_path("/fileorganizer.v1.OperationService/GetOperation"),
            Bucket::Api
        );
    }
}
