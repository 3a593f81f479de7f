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

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if limit > 0 and count < limit then
  redis.call('ZADD', KEYS[1], now, now .. '-' .. ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, count, reset}
"#;

/// Counts requests against named limits.
#[derive(Clone)]
pub struct Limiter {
    redis: Option<RedisPool>,
    prefix: String,
    window: Duration,
    local: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
    warned: Arc<AtomicBool>,
}

impl Limiter {
    pub fn new(redis: Option<RedisPool>, prefix: &str, window: Duration) -> Limiter {
        Limiter {
            redis,
            prefix: prefix.to_string(),
            window,
            local: Default::default(),
            warned: Default::default(),
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
        let c = self.count(key, limit, true).await;
        Decision {
            allowed: c.admitted,
            limit,
            remaining: limit.saturating_sub(c.count),
            reset_after: c.reset_after,
        }
    }

    /// The current state of `key` without counting a request.
    pub async fn peek(&self, key: &str, limit: u32) -> Decision {
        let c = self.count(key, limit, false).await;
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
    }

    async fn count(&self, key: &str, limit: u32, record: bool) -> Counted {
        if let Some(pool) = &self.redis {
            // A limit of 0 admits (and so records) nothing: a peek.
            match self
                .count_redis(pool, key, if record { limit } else { 0 })
                .await
            {
                Ok(counted) => return counted,
                Err(error) => {
                    if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(%error, "Redis unavailable for rate limits: using per-process counters");
                    }
                }
            }
        }
        self.count_local(key, limit, record)
    }

    async fn count_redis(
        &self,
        pool: &RedisPool,
        key: &str,
        limit: u32,
    ) -> Result<Counted, String> {
        let mut conn = tokio::time::timeout(Duration::from_millis(500), pool.get())
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let nonce: u64 = rand::random();
        let (allowed, count, reset): (i64, i64, i64) = bb8_redis::redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(1)
            .arg(self.redis_key(key))
            .arg(self.window.as_millis() as u64)
            .arg(limit)
            .arg(nonce)
            .query_async(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Counted {
            admitted: allowed == 1,
            count: count.max(0) as u32,
            reset_after: Duration::from_millis(reset.max(0) as u64),
        })
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
