//! Sliding-window rate limits shared by every API process through Redis.
//!
//! The algorithm is the sliding-window counter (see [`Windows`]): each limit
//! is one small Redis hash (`<prefix>v2:rl:<key>`) with the counts of the
//! current and the previous fixed window. One Lua script rolls the windows,
//! estimates, admits or refuses and counts — atomically, with Redis's own
//! clock, so several API processes enforce one limit together — in constant
//! time and memory per limit. When Redis is absent or failing, the same
//! algorithm runs on in-process counters: the limits then hold per process
//! (documented in the README).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tonic::{Status, metadata::MetadataValue};

use crate::{error::AppError, infra::redis::RedisPool, pb::fileorganizer::v1::ErrorReason};

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

    /// `x-ratelimit-*` (and, when refused, `retry-after`) headers, as of now.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        self.headers_at(SystemTime::now())
    }

    /// The headers as of `now`. `x-ratelimit-reset` is, as the seed defines it, the moment
    /// the window has room again in Unix epoch seconds (e.g. `1705840200`), rounded up so a
    /// client that waits until then is admitted; `retry-after` (refusals only, RFC 9110) is the
    /// delay in seconds until that moment, at least 1. Both come from one rounded delay, so
    /// `reset == now + retry-after` to the second.
    pub fn headers_at(&self, now: SystemTime) -> Vec<(&'static str, String)> {
        let delay = self.reset_after.as_secs_f64().ceil().max(1.0) as u64;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut headers = vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", (now + delay).to_string()),
        ];
        if !self.allowed {
            headers.push(("retry-after", delay.to_string()));
        }
        headers
    }

    /// The refusal of a request counted against the limit on `what`:
    /// RESOURCE_EXHAUSTED, reason RATE_LIMITED (its ErrorInfo metadata
    /// `limit` naming `what`), with a RetryInfo of the time until the window
    /// has room again.
    pub fn refusal(&self, what: &str) -> AppError {
        let retry = Duration::from_secs(self.reset_after.as_secs_f64().ceil().max(1.0) as u64);
        AppError::ResourceExhausted {
            reason: ErrorReason::RateLimited,
            message: format!(
                "rate limit exceeded for {what}: {} requests per window; retry in {}s",
                self.limit,
                retry.as_secs()
            ),
            retry_after: Some(retry),
            metadata: vec![("limit", what.to_string())],
        }
    }

    /// [`Decision::refusal`] as the status the layers answer with, through
    /// the service's one conversion, plus the rate-limit headers
    /// (`x-ratelimit-*`, `retry-after`) in its metadata.
    pub fn status(&self, what: &str) -> Status {
        let mut status = Status::from(self.refusal(what));
        for (name, value) in self.headers() {
            if let Ok(value) = MetadataValue::try_from(value) {
                status.metadata_mut().insert(name, value);
            }
        }
        status
    }
}

/// The outcome of taking units (bytes) from a budget ([`Limiter::take`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Every unit asked for fit.
    pub allowed: bool,
    pub limit: u64,
    /// Units still free in the current window.
    pub remaining: u64,
    /// When the window has room again (refused), or frees a unit.
    pub reset_after: Duration,
}

impl Taken {
    /// The refusal of a transfer that ran past the byte budget on `what`:
    /// RESOURCE_EXHAUSTED, reason RATE_LIMITED (ErrorInfo metadata `limit`
    /// naming `what`), with a RetryInfo of the time until the window has
    /// room again.
    pub fn refusal(&self, what: &str) -> AppError {
        let retry = Duration::from_secs(self.reset_after.as_secs_f64().ceil().max(1.0) as u64);
        AppError::ResourceExhausted {
            reason: ErrorReason::RateLimited,
            message: format!(
                "rate limit exceeded for {what}: {} bytes per window; retry in {}s",
                self.limit,
                retry.as_secs()
            ),
            retry_after: Some(retry),
            metadata: vec![("limit", what.to_string())],
        }
    }
}

/// Counts requests against KEYS[1] (limit ARGV[2], up to ARGV[3] units) and,
/// only if that admitted it, against KEYS[2] (limit ARGV[4], up to ARGV[5]
/// units): the per-user and the global window of one call in a single round
/// trip. Each key is a hash of the current fixed window's index `w`, its
/// count `c` and the previous window's count `p`; the estimate is
/// [`Windows::estimate`] (the same integer formula). Under the limit, it
/// grants as many of the units asked for as fit (one is the request itself,
/// the rest a [`Lease`]). Returns `{granted, previous, current, elapsed}`
/// per key evaluated. Invoked by SHA (`EVALSHA`), loaded on demand.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local index = math.floor(now / window)
local elapsed = now - index * window
local function count(key, limit, want)
  local state = redis.call('HMGET', key, 'w', 'c', 'p')
  local w = tonumber(state[1]) or index
  local current = tonumber(state[2]) or 0
  local previous = tonumber(state[3]) or 0
  if w ~= index then
    if w == index - 1 then previous = current else previous = 0 end
    current = 0
  end
  local estimate = math.floor((previous * (window - elapsed) + window - 1) / window) + current
  local granted = 0
  if limit > 0 and estimate < limit then
    granted = math.min(want, limit - estimate)
    current = current + granted
    redis.call('HSET', key, 'w', index, 'c', current, 'p', previous)
    redis.call('PEXPIRE', key, 2 * window)
  end
  return {granted, previous, current, elapsed}
end
local result = count(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
if KEYS[2] and result[1] > 0 then
  local second = count(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]))
  for _, v in ipairs(second) do table.insert(result, v) end
end
return result
"#;

/// One limit's state under the sliding-window-counter algorithm: the
/// requests admitted in the previous and in the current fixed window, and
/// how far the current window has run.
///
/// The sliding window's count is estimated as the current window's count
/// plus the previous window's, weighted by the share of the sliding window
/// that still overlaps it — rounded up, so a burst is never undercounted
/// while it is younger than `window / previous`. It costs one small hash
/// per limit however many requests it counts (a log of timestamps cost one
/// entry per request: the global window held every request of the minute).
/// Requests of the previous window count as if spread evenly over it, so a
/// burst at the start of a window is forgotten more slowly than by an exact
/// log; `reset_after` accounts for that, so waiting as long as it says
/// always succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Windows {
    /// Window length, ms.
    window: u64,
    previous: u64,
    current: u64,
    /// Time into the current window, ms (< window).
    elapsed: u64,
}

impl Windows {
    /// The previous window's requests still inside the sliding window when
    /// `elapsed` ms of the current one have run (rounded up).
    fn carried(&self, elapsed: u64) -> u64 {
        let overlap = self.window.saturating_sub(elapsed);
        (self.previous * overlap).div_ceil(self.window)
    }

    /// Requests counted in the sliding window that ends now.
    fn estimate(&self) -> u64 {
        self.carried(self.elapsed) + self.current
    }

    /// How long until, with no further requests, the estimate is at most
    /// `target`.
    fn until_at_most(&self, target: u64) -> Duration {
        let left = self.window - self.elapsed;
        let ms = if self.current <= target {
            // Within this window, as the previous one's share decays.
            let room = target - self.current;
            if self.previous <= room {
                0
            } else {
                left - room * self.window / self.previous
            }
        } else {
            // In the next window, where this one is the previous.
            left + self.window - target * self.window / self.current
        };
        Duration::from_millis(ms)
    }

    /// When a slot frees: the whole budget is back for an empty window;
    /// otherwise the time until the estimate drops below the limit (when
    /// refused) or by one (when admitted).
    fn reset_after(&self, limit: u64) -> Duration {
        let estimate = self.estimate();
        if estimate == 0 {
            Duration::from_millis(self.window)
        } else if estimate >= limit {
            self.until_at_most(limit.saturating_sub(1))
        } else {
            self.until_at_most(estimate - 1)
        }
    }
}

/// Units of a large limit taken from Redis ahead of use, so that a busy
/// process asks Redis once per lease instead of once per request.
///
/// A process takes up to `limit / LEASE_DIVISOR` units of a limit at a time
/// ([`lease_size`]); below 2 there is no lease, so small limits (the
/// per-user default of 100 a minute) are counted in Redis call by call,
/// exactly. Leased units count in Redis as soon as they are taken, so a
/// lease can only make a limit stricter, never looser: by at most one
/// lease's unused units per API process, until the fixed window it was
/// taken in ends (then the lease lapses). Within the process, the headers
/// count only the units used.
#[derive(Debug, Clone, Copy)]
struct Lease {
    /// Units taken and not yet used.
    left: u64,
    /// The windows as Redis reported them when the units were taken.
    windows: Windows,
    taken_at: Instant,
    /// End of the fixed window the units were counted in.
    expires: Instant,
}

/// A process leases at most this fraction of a limit at a time.
const LEASE_DIVISOR: u32 = 1_000;

/// Units taken from Redis per round trip for `limit` (1: no lease).
fn lease_size(limit: u32) -> u64 {
    u64::from(limit / LEASE_DIVISOR).max(1)
}

impl Lease {
    /// The windows a request that used one of the units sees: the units
    /// still unused do not count, and time has moved on.
    fn windows_at(&self, now: Instant) -> Windows {
        let since = now.duration_since(self.taken_at).as_millis() as u64;
        Windows {
            current: self.windows.current.saturating_sub(self.left),
            elapsed: (self.windows.elapsed + since).min(self.windows.window - 1),
            ..self.windows
        }
    }
}

/// One limit's windows in this process (the fallback without Redis).
#[derive(Debug, Clone, Copy, Default)]
struct LocalSlot {
    index: u64,
    current: u64,
    previous: u64,
}

/// Most keys kept by the in-process fallback before windows that ended
/// are dropped.
const LOCAL_CAPACITY: usize = 100_000;

/// Counts requests against named limits.
#[derive(Clone)]
pub struct Limiter {
    redis: Option<RedisPool>,
    prefix: String,
    window: Duration,
    local: Arc<Mutex<HashMap<String, LocalSlot>>>,
    /// The in-process fallback's clock starts here.
    epoch: Instant,
    warned: Arc<AtomicBool>,
    /// SHA1 of [`SCRIPT`] as Redis reported it on `SCRIPT LOAD`.
    script_sha: Arc<Mutex<Option<String>>>,
    /// Keys a peek found empty, until when that answer is reused (see
    /// [`Limiter::peek`]).
    clear: Arc<Mutex<HashMap<String, Instant>>>,
    /// Units taken from Redis and not yet used, by key.
    leases: Arc<Mutex<HashMap<String, Lease>>>,
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
            epoch: Instant::now(),
            warned: Default::default(),
            script_sha: Default::default(),
            clear: Default::default(),
            leases: Default::default(),
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
        format!("{}v2:rl:{key}", self.prefix)
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

    /// Takes `units` (bytes, say) from the budget of `limit` units per
    /// window of `key`, shared by every process through Redis like the
    /// request limits. Allowed only if all of them fit; when they do not,
    /// those that fit are counted (the budget is then spent for the window)
    /// and the answer is a refusal whose `reset_after` is the time until
    /// the window has room again.
    pub async fn take(&self, key: &str, limit: u64, units: u64) -> Taken {
        let window = self.window_ms();
        let counted = match &self.redis {
            Some(pool) => {
                let names = [self.redis_key(key)];
                match self.eval(pool, &names, &[window, limit, units]).await {
                    Ok(v) if v.len() >= 4 => Some((
                        v[0].max(0) as u64,
                        Windows {
                            window,
                            previous: v[1].max(0) as u64,
                            current: v[2].max(0) as u64,
                            elapsed: (v[3].max(0) as u64).min(window - 1),
                        },
                    )),
                    Ok(_) => None,
                    Err(error) => {
                        if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            tracing::warn!(%error, "Redis unavailable for rate limits: using per-process counters");
                        }
                        None
                    }
                }
            }
            None => None,
        };
        let (granted, windows) = counted.unwrap_or_else(|| {
            let now = self.epoch.elapsed().as_millis() as u64;
            let mut map = self.local.lock().expect("limiter lock");
            take_local_at(&mut map, key, limit, units, now, window)
        });
        Taken {
            allowed: granted == units,
            limit,
            remaining: limit.saturating_sub(windows.estimate()),
            reset_after: windows.reset_after(limit),
        }
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
        let estimate = c.windows.estimate();
        if estimate == 0 {
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
            allowed: estimate < u64::from(limit),
            ..c.decision(limit)
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
        self.leases.lock().expect("limiter lock").remove(key);
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
        let mut counted = Vec::with_capacity(keys.len());
        let mut rest = keys;
        if let Some(pool) = &self.redis {
            // Keys with leased units left are counted here, in order, until
            // one has none: it and the keys after it go to Redis.
            if record {
                while let Some(((key, _), tail)) = rest.split_first() {
                    let Some(leased) = self.take_leased(key) else {
                        break;
                    };
                    counted.push(leased);
                    rest = tail;
                }
                if rest.is_empty() {
                    return counted;
                }
            }
            match self.count_redis(pool, rest, record).await {
                Ok(more) => {
                    counted.extend(more);
                    return counted;
                }
                Err(error) => {
                    if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(%error, "Redis unavailable for rate limits: using per-process counters");
                    }
                }
            }
        }
        for (key, limit) in rest {
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
        let mut args = vec![self.window_ms()];
        // A limit of 0 admits (and so records) nothing: a peek.
        for (_, limit) in keys {
            if record {
                args.extend([u64::from(*limit), lease_size(*limit)]);
            } else {
                args.extend([0, 0]);
            }
        }
        let names: Vec<String> = keys.iter().map(|(key, _)| self.redis_key(key)).collect();
        let values = self.eval(pool, &names, &args).await?;
        let window = self.window_ms();
        Ok(values
            .chunks_exact(4)
            .zip(keys)
            .map(|(v, (key, _))| {
                let windows = Windows {
                    window,
                    previous: v[1].max(0) as u64,
                    current: v[2].max(0) as u64,
                    elapsed: (v[3].max(0) as u64).min(window - 1),
                };
                let granted = v[0].max(0) as u64;
                let left = if granted > 1 {
                    self.store_lease(key, granted - 1, windows)
                } else {
                    0
                };
                Counted {
                    admitted: granted > 0,
                    windows: Windows {
                        current: windows.current.saturating_sub(left),
                        ..windows
                    },
                }
            })
            .collect())
    }

    /// Runs [`SCRIPT`] on `names` with `args` (loading it when Redis does
    /// not know it).
    async fn eval(
        &self,
        pool: &RedisPool,
        names: &[String],
        args: &[u64],
    ) -> Result<Vec<i64>, String> {
        use bb8_redis::redis::{ErrorKind, ServerErrorKind, cmd};
        let mut conn = tokio::time::timeout(Duration::from_millis(500), pool.get())
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let mut loaded = false;
        loop {
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
                .arg(names)
                .arg(args)
                .query_async(&mut *conn)
                .await
            {
                Ok(values) => return Ok(values),
                // Redis restarted (or flushed its scripts): load it again, once.
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) && !loaded => {
                    *self.script_sha.lock().expect("limiter lock") = None;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Uses one leased unit of `key`, if it has one left in its window.
    fn take_leased(&self, key: &str) -> Option<Counted> {
        let now = Instant::now();
        let mut leases = self.leases.lock().expect("limiter lock");
        let lease = leases.get_mut(key)?;
        if lease.left == 0 || now >= lease.expires {
            leases.remove(key);
            return None;
        }
        lease.left -= 1;
        Some(Counted {
            admitted: true,
            windows: lease.windows_at(now),
        })
    }

    /// Keeps `units` just taken for `key` (with any still unused from before,
    /// which Redis counted too); returns how many are left in all.
    fn store_lease(&self, key: &str, units: u64, windows: Windows) -> u64 {
        let now = Instant::now();
        let mut leases = self.leases.lock().expect("limiter lock");
        let before = leases
            .get(key)
            .filter(|lease| now < lease.expires)
            .map_or(0, |lease| lease.left);
        let left = before + units;
        if leases.len() >= LOCAL_CAPACITY {
            leases.retain(|_, lease| now < lease.expires);
        }
        leases.insert(
            key.to_string(),
            Lease {
                left,
                windows,
                taken_at: now,
                expires: now + Duration::from_millis(windows.window - windows.elapsed),
            },
        );
        left
    }

    /// The window in ms (at least 1).
    fn window_ms(&self) -> u64 {
        (self.window.as_millis() as u64).max(1)
    }

    fn count_local(&self, key: &str, limit: u32, record: bool) -> Counted {
        let now = self.epoch.elapsed().as_millis() as u64;
        let mut map = self.local.lock().expect("limiter lock");
        let counted = count_local_at(&mut map, key, limit, record, now, self.window_ms());
        if map.len() > LOCAL_CAPACITY {
            let index = now / self.window_ms();
            map.retain(|_, slot| slot.index + 1 >= index);
        }
        counted
    }
}

/// The in-process sliding-window counter of `key` at `now` ms.
fn count_local_at(
    map: &mut HashMap<String, LocalSlot>,
    key: &str,
    limit: u32,
    record: bool,
    now: u64,
    window: u64,
) -> Counted {
    let (granted, windows) =
        take_local_at(map, key, u64::from(limit), u64::from(record), now, window);
    Counted {
        admitted: granted > 0,
        windows,
    }
}

/// Takes up to `units` of the budget `limit` of `key` at `now` ms: as many
/// as fit (none once the window holds `limit`). Returns the units granted
/// and the windows after counting them.
fn take_local_at(
    map: &mut HashMap<String, LocalSlot>,
    key: &str,
    limit: u64,
    units: u64,
    now: u64,
    window: u64,
) -> (u64, Windows) {
    let index = now / window;
    let mut slot = map.get(key).copied().unwrap_or(LocalSlot {
        index,
        ..Default::default()
    });
    if slot.index != index {
        slot.previous = if slot.index + 1 == index {
            slot.current
        } else {
            0
        };
        slot.current = 0;
        slot.index = index;
    }
    let mut windows = Windows {
        window,
        previous: slot.previous,
        current: slot.current,
        elapsed: now - index * window,
    };
    let granted = units.min(limit.saturating_sub(windows.estimate()));
    if granted > 0 {
        windows.current += granted;
        slot.current += granted;
        map.insert(key.to_string(), slot);
    }
    (granted, windows)
}

/// Raw result of one count.
struct Counted {
    admitted: bool,
    /// The windows after counting.
    windows: Windows,
}

impl Counted {
    fn decision(&self, limit: u32) -> Decision {
        let estimate = u32::try_from(self.windows.estimate()).unwrap_or(u32::MAX);
        Decision {
            allowed: self.admitted,
            limit,
            remaining: limit.saturating_sub(estimate),
            reset_after: self.windows.reset_after(u64::from(limit)),
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
            // One request per file (or per archive): a resumable upload counts
            // once, at CreateUpload; its appends and finish are ordinary calls.
            "UploadFile" | "UploadSmallFile" | "UploadRawFile" | "CreateUpload"
            | "ImportArchive" => Bucket::Upload,
            // A whole folder read out: as heavy as a report export.
            "ExportReport" | "DownloadArchive" => Bucket::Export,
            _ => Bucket::Api,
        }
    }

    pub fn user_key(self, user_id: uuid::Uuid) -> String {
        format!("{}:user:{user_id}", self.name())
    }

    /// The key of a user's byte budget for uploads (`RATE_LIMIT_UPLOAD_BYTES`).
    pub fn upload_bytes_key(user_id: uuid::Uuid) -> String {
        format!("upload-bytes:user:{user_id}")
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
        let window = Duration::from_millis(300);
        let limiter = Limiter::new(None, "t:", window);
        for i in 0..3 {
            let d = limiter.hit("k", 3).await;
            assert!(d.allowed, "{i}");
            assert_eq!(d.remaining, 2 - i);
        }
        let refused = limiter.hit("k", 3).await;
        assert!(!refused.allowed);
        assert!(refused.reset_after <= 2 * window, "{refused:?}");
        assert_eq!(limiter.peek("k", 3).await.remaining, 0);
        // Waiting as long as the refusal said is enough.
        tokio::time::sleep(refused.reset_after + Duration::from_millis(5)).await;
        assert!(limiter.hit("k", 3).await.allowed);
        limiter.reset("k").await;
        assert_eq!(limiter.peek("k", 3).await.remaining, 3);
    }

    /// Hits `key` at `now` on a copy of `map`, leaving `map` as it was.
    fn probe(map: &HashMap<String, LocalSlot>, now: u64, limit: u32, window: u64) -> bool {
        count_local_at(&mut map.clone(), "k", limit, true, now, window).admitted
    }

    #[test]
    fn the_counter_never_admits_more_than_the_limit_per_window_and_its_reset_is_exact() {
        let (window, limit) = (1_000, 10);
        // A small deterministic generator: gaps from 0 to 300 ms, in bursts.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut map = HashMap::new();
        let mut now = 0;
        let mut admitted_in: HashMap<u64, u32> = HashMap::new();
        let (mut admitted, mut refused) = (0, 0);
        for _ in 0..5_000 {
            now += if next(4) == 0 { next(300) } else { next(3) };
            let counted = count_local_at(&mut map, "k", limit, true, now, window);
            let decision = counted.decision(limit);
            let estimate = counted.windows.estimate();
            assert_eq!(
                decision.remaining,
                limit.saturating_sub(estimate as u32),
                "at {now}"
            );
            if counted.admitted {
                admitted += 1;
                *admitted_in.entry(now / window).or_default() += 1;
            } else {
                refused += 1;
                // Refused until exactly reset_after has passed.
                let wait = decision.reset_after.as_millis() as u64;
                assert!(wait > 0 && wait <= 2 * window, "wait {wait} at {now}");
                assert!(!probe(&map, now + wait - 1, limit, window), "at {now}");
                assert!(probe(&map, now + wait, limit, window), "at {now}");
            }
        }
        assert!(
            admitted > 1_000 && refused > 1_000,
            "{admitted} / {refused}"
        );
        assert!(admitted_in.values().all(|n| *n <= limit), "{admitted_in:?}");
    }

    #[test]
    fn a_burst_is_counted_whole_until_its_share_of_the_window_decays() {
        let window = 60_000;
        let mut map = HashMap::new();
        // 100 requests at the end of one window...
        for _ in 0..100 {
            assert!(count_local_at(&mut map, "k", 100, true, 59_990, window).admitted);
        }
        // ...are all still counted just after the next one starts...
        assert!(!probe(&map, 60_010, 100, window));
        assert!(!probe(&map, 60_599, 100, window));
        // ...and one slot frees once 1/100 of the window has run.
        assert!(probe(&map, 60_600, 100, window));
        // Two windows later nothing is left.
        let fresh = count_local_at(&mut map, "k", 100, false, 180_000, window);
        assert_eq!(fresh.windows.estimate(), 0);
        assert_eq!(fresh.decision(100).reset_after, Duration::from_secs(60));
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

    /// A limiter on the local Redis under a prefix of its own. Its window is
    /// a day, so that no window ends during a test (at midnight UTC one
    /// would, and the previous window's weight would change the counts).
    async fn on_redis(prefix: &str) -> Limiter {
        let manager = bb8_redis::RedisConnectionManager::new("redis://127.0.0.1:6379").unwrap();
        let pool = bb8::Pool::builder().build(manager).await.unwrap();
        Limiter::new(Some(pool), prefix, Duration::from_secs(86_400))
    }

    /// What Redis counted for `key` in this and the previous window.
    async fn counted_in_redis(limiter: &Limiter, key: &str) -> u64 {
        let pool = limiter.redis.as_ref().unwrap();
        let mut conn = pool.get().await.unwrap();
        let (current, previous): (Option<u64>, Option<u64>) = bb8_redis::redis::cmd("HMGET")
            .arg(limiter.redis_key(key))
            .arg("c")
            .arg("p")
            .query_async(&mut *conn)
            .await
            .unwrap();
        current.unwrap_or(0) + previous.unwrap_or(0)
    }

    #[tokio::test]
    async fn large_limits_are_leased_and_small_ones_counted_call_by_call() {
        let prefix = format!("fileorg-test-{}:", uuid::Uuid::new_v4().simple());
        let limiter = on_redis(&prefix).await;
        // 5,000 a minute: leases of 5 units; the headers count each call.
        for i in 1..=11u32 {
            let (user, all) = limiter.hit_both(("big", 5_000), ("all", 100)).await;
            assert!(user.allowed && all.unwrap().allowed);
            assert_eq!(user.remaining, 5_000 - i, "call {i}");
            assert_eq!(all.unwrap().remaining, 100 - i, "call {i}");
        }
        // Three leases taken for 11 calls; the small limit, call by call.
        assert_eq!(counted_in_redis(&limiter, "big").await, 15);
        assert_eq!(counted_in_redis(&limiter, "all").await, 11);
        // A reset forgets the lease too.
        limiter.reset("big").await;
        assert_eq!(limiter.hit("big", 5_000).await.remaining, 4_999);
        assert_eq!(counted_in_redis(&limiter, "big").await, 5);
    }

    #[tokio::test]
    async fn leases_never_let_processes_admit_more_than_the_limit() {
        let prefix = format!("fileorg-test-{}:", uuid::Uuid::new_v4().simple());
        // Two API processes sharing one limit of 4,000 (leases of 4).
        let (a, b) = (on_redis(&prefix).await, on_redis(&prefix).await);
        let mut admitted = 0;
        let mut refused_in_a_row = 0;
        for i in 0..6_000 {
            let limiter = if i % 3 == 0 { &a } else { &b };
            if limiter.hit("shared", 4_000).await.allowed {
                admitted += 1;
                refused_in_a_row = 0;
            } else {
                refused_in_a_row += 1;
                if refused_in_a_row == 10 {
                    break;
                }
            }
        }
        assert!(admitted <= 4_000, "{admitted} admitted");
        // At most one lease's unused units per process are lost.
        assert!(admitted >= 4_000 - 2 * 4, "{admitted} admitted");
        assert_eq!(refused_in_a_row, 10);
        assert!(counted_in_redis(&a, "shared").await <= 4_000);
    }

    #[tokio::test]
    async fn byte_budgets_are_taken_whole_or_refused_and_shared_by_processes() {
        let prefix = format!("fileorg-test-{}:", uuid::Uuid::new_v4().simple());
        // Two API processes sharing a budget of 1,000 bytes.
        let (a, b) = (on_redis(&prefix).await, on_redis(&prefix).await);
        let taken = a.take("bytes", 1_000, 600).await;
        assert!(taken.allowed);
        assert_eq!(taken.remaining, 400);
        assert!(b.take("bytes", 1_000, 400).await.allowed);
        // Spent, whichever process asks; the refusal says when to retry.
        let refused = a.take("bytes", 1_000, 1).await;
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!(refused.reset_after > Duration::ZERO);
        assert!(!b.take("bytes", 1_000, 1).await.allowed);
        // Another key has its own budget; an ask larger than what is left
        // is refused, and what fitted is spent.
        assert!(!a.take("other", 1_000, 1_500).await.allowed);
        assert!(!b.take("other", 1_000, 1).await.allowed);
        assert_eq!(counted_in_redis(&a, "bytes").await, 1_000);
        // Without Redis the same rule holds in the process.
        let local = Limiter::new(None, "t:", Duration::from_secs(60));
        assert!(local.take("bytes", 10, 10).await.allowed);
        let refused = local.take("bytes", 10, 1).await;
        assert!(!refused.allowed);
        assert!(matches!(
            refused.refusal("upload bytes"),
            AppError::ResourceExhausted {
                reason: ErrorReason::RateLimited,
                retry_after: Some(_),
                ..
            }
        ));
    }

    /// A refusal goes through the one `From<AppError> for Status` and
    /// keeps what clients and Envoy rely on: RetryInfo, the ErrorInfo
    /// naming the limit, and the rate-limit headers.
    #[test]
    fn refusals_carry_retry_info_and_headers() {
        use tonic::Code;
        use tonic_types::StatusExt;

        let d = Decision {
            allowed: false,
            limit: 100,
            remaining: 0,
            reset_after: Duration::from_millis(2500),
        };
        let status = d.status("api");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "rate limit exceeded for api: 100 requests per window; retry in 3s"
        );
        let details = status.get_error_details();
        assert_eq!(
            details.retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(3))
        );
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "RATE_LIMITED");
        assert_eq!(info.domain, crate::error::ERROR_DOMAIN);
        assert_eq!(info.metadata["limit"], "api");
        let header = |name| status.metadata().get(name).unwrap().to_str().unwrap();
        assert_eq!(header("retry-after"), "3");
        assert_eq!(header("x-ratelimit-limit"), "100");
        assert_eq!(header("x-ratelimit-remaining"), "0");
        // Epoch seconds, as the seed defines it: now plus the rounded-up delay.
        let reset: u64 = header("x-ratelimit-reset").parse().unwrap();
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            reset > 1_700_000_000 && reset <= before + 3 && reset + 60 >= before + 3,
            "{reset}"
        );
        let at = UNIX_EPOCH + Duration::from_millis(1_705_840_196_400);
        let headers: HashMap<_, _> = d.headers_at(at).into_iter().collect();
        assert_eq!(headers["x-ratelimit-reset"], "1705840199");
        assert_eq!(headers["retry-after"], "3");
        // An admitted call carries no retry-after; its reset is at least a second away.
        let admitted = Decision {
            allowed: true,
            remaining: 7,
            reset_after: Duration::from_millis(10),
            ..d
        };
        let headers: HashMap<_, _> = admitted.headers_at(at).into_iter().collect();
        assert_eq!(headers["x-ratelimit-reset"], "1705840197");
        assert_eq!(headers["x-ratelimit-remaining"], "7");
        assert!(!headers.contains_key("retry-after"));
        // The refusal itself is the service's error, ready for any handler.
        assert!(matches!(
            d.refusal("api"),
            AppError::ResourceExhausted {
                reason: ErrorReason::RateLimited,
                retry_after: Some(_),
                ..
            }
        ));
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
            Bucket::of_path("/fileorganizer.v1.FileService/DownloadArchive"),
            Bucket::Export
        );
        assert_eq!(
            Bucket::of_path("/fileorganizer.v1.OperationService/GetOperation"),
            Bucket::Api
        );
    }
}
