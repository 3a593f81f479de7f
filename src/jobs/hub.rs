//! Live progress fan-out.
//!
//! A running job publishes a full snapshot (at most ~10 per second) into a
//! `watch` channel per operation, which every WatchOperation stream of the
//! same process subscribes to, and, when Redis is configured, to the Redis
//! pub/sub channel `<prefix>v2:progress:<operation id>`, so streams served by
//! another API process see a job running anywhere. Snapshots are the
//! domain's ([`Snapshot`]; the API turns them into protobuf), as JSON on
//! Redis. They were protobuf on `v1` channels: processes of the two versions
//! side by side do not see each other's live snapshots (their streams go on
//! polling the database) rather than misread them. Streams
//! also poll the database once a second: that carries progress when Redis is
//! absent or away (the persisted counters are at most a heartbeat old) and
//! guarantees the terminal state is seen.
//!
//! Snapshots from other processes arrive through **one** Redis connection per
//! process ([`RemoteFeed`]), not one per stream: every stream opened its own
//! connection before, so 176 streams took a shared Redis from 34 to 210
//! clients (issue 18). A task owns that connection; it subscribes to the
//! channel of an operation when its first watcher arrives ([`ProgressHub::watch`])
//! and unsubscribes when the last one leaves, and it puts what arrives into
//! the same per-operation `watch` channels a local job feeds, so a stream reads
//! one source. When Redis goes away the task reconnects with backoff
//! (0.5 s doubling to 30 s) and subscribes again to everything still watched;
//! meanwhile the streams go on polling the database. The connection is opened
//! by the first watcher, so processes that serve no stream (`fileorg worker`)
//! never open it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::domain::Snapshot;

/// The latest snapshot of an operation, if any yet.
type Latest = Option<Snapshot>;

#[derive(Clone, Default)]
pub struct ProgressHub {
    channels: Arc<Mutex<HashMap<Uuid, watch::Sender<Latest>>>>,
    /// Jobs running in this process, so a cancel served here stops them at
    /// once (other processes notice the flag at their next heartbeat).
    running: Arc<Mutex<HashMap<Uuid, Arc<crate::engine::progress::Progress>>>>,
    /// The shared subscription to other processes' snapshots; None without Redis.
    remote: Option<Arc<RemoteFeed>>,
}

/// A watcher of one operation's snapshots (see [`ProgressHub::watch`]). While
/// it lives, the operation's Redis channel stays subscribed; dropping it
/// releases both.
pub struct Watcher {
    hub: ProgressHub,
    id: Uuid,
    receiver: watch::Receiver<Latest>,
}

impl Watcher {
    /// Waits for the next snapshot; Err when the hub forgot the operation.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.receiver.changed().await
    }

    /// The latest snapshot, marked as seen.
    pub fn latest(&mut self) -> Latest {
        self.receiver.borrow_and_update().clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.hub.unwatch(self.id);
    }
}

impl ProgressHub {
    pub fn register(&self, id: Uuid, progress: Arc<crate::engine::progress::Progress>) {
        self.running.lock().expect("hub lock").insert(id, progress);
    }

    pub fn unregister(&self, id: Uuid) {
        self.running.lock().expect("hub lock").remove(&id);
    }

    /// Stops a job of this process at its next file; false if it runs elsewhere.
    pub fn cancel_local(&self, id: Uuid) -> bool {
        match self.running.lock().expect("hub lock").get(&id) {
            Some(progress) => {
                progress.cancel();
                true
            }
            None => false,
        }
    }

    /// Publishes a snapshot of `id`.
    pub fn publish(&self, id: Uuid, snapshot: Snapshot) {
        let mut channels = self.channels.lock().expect("hub lock");
        let sender = channels.entry(id).or_insert_with(|| watch::channel(None).0);
        sender.send_replace(Some(snapshot));
    }

    /// Watches snapshots of `id`, from a job of this process or (through the
    /// shared Redis subscription) of any other.
    pub fn watch(&self, id: Uuid) -> Watcher {
        let receiver = {
            let mut channels = self.channels.lock().expect("hub lock");
            channels
                .entry(id)
                .or_insert_with(|| watch::channel(None).0)
                .subscribe()
        };
        if let Some(remote) = &self.remote {
            remote.want(self, id);
        }
        Watcher {
            hub: self.clone(),
            id,
            receiver,
        }
    }

    /// A watcher of `id` is leaving (its receiver is still alive here).
    fn unwatch(&self, id: Uuid) {
        if let Some(remote) = &self.remote {
            remote.unwant(id);
        }
        let runs_here = self.runs_here(id);
        let mut channels = self.channels.lock().expect("hub lock");
        // The channel of a job running here outlives its watchers (`finish`
        // forgets it); one fed from Redis goes with its last watcher.
        if !runs_here && channels.get(&id).is_some_and(|s| s.receiver_count() <= 1) {
            channels.remove(&id);
        }
    }

    fn runs_here(&self, id: Uuid) -> bool {
        self.running.lock().expect("hub lock").contains_key(&id)
    }

    /// Publishes a snapshot from another process, only to watchers of this
    /// one (no channel is created for an operation nobody here watches).
    fn publish_remote(&self, id: Uuid, snapshot: Snapshot) {
        // A job of this process has already published it locally, fresher.
        if self.runs_here(id) {
            return;
        }
        if let Some(sender) = self.channels.lock().expect("hub lock").get(&id) {
            sender.send_replace(Some(snapshot));
        }
    }

    /// Forgets a finished job once nobody watches it.
    pub fn finish(&self, id: Uuid) {
        let mut channels = self.channels.lock().expect("hub lock");
        if channels.get(&id).is_some_and(|s| s.receiver_count() == 0) {
            channels.remove(&id);
        }
    }
}

/// The Redis pub/sub channel carrying snapshots of one operation.
pub fn redis_channel(prefix: &str, id: Uuid) -> String {
    format!("{}{id}", channel_prefix(prefix))
}

/// What every progress channel of a deployment starts with.
fn channel_prefix(prefix: &str) -> String {
    format!("{prefix}v2:progress:")
}

/// Publishes a snapshot on Redis; failures are logged at debug level only
/// (watchers fall back to polling the database).
pub async fn publish_redis(
    pool: &crate::infra::redis::RedisPool,
    prefix: &str,
    id: Uuid,
    snapshot: &Snapshot,
) {
    let payload = match serde_json::to_vec(snapshot) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::warn!(%error, "could not encode a progress snapshot");
            return;
        }
    };
    let mut conn =
        match tokio::time::timeout(std::time::Duration::from_millis(200), pool.get()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(error)) => {
                tracing::warn!(%error, "no Redis connection for progress");
                return;
            }
            Err(_) => {
                tracing::warn!("no Redis connection for progress within 200 ms");
                return;
            }
        };
    let result: Result<i64, _> = bb8_redis::redis::cmd("PUBLISH")
        .arg(redis_channel(prefix, id))
        .arg(payload)
        .query_async(&mut *conn)
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "could not publish progress on Redis");
    }
}

/// How long connecting, (un)subscribing or a ping may take before the
/// connection is given up and made again.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// Pings on an otherwise quiet subscription, to notice a Redis that vanished
/// without closing the connection.
const PING_EVERY: Duration = Duration::from_secs(15);
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The one Redis pub/sub connection of a process and the channels it should
/// be subscribed to.
pub struct RemoteFeed {
    url: String,
    /// `<prefix>v2:progress:`, the channels' common start.
    channel_prefix: String,
    /// How many watchers of this process want each operation's channel.
    wanted: Mutex<HashMap<Uuid, usize>>,
    /// Wakes the task when `wanted` changed.
    changed: Notify,
    /// The task, started by the first watcher.
    task: OnceLock<()>,
    /// Ends the task (and closes the connection) when shutdown begins.
    shutdown: watch::Receiver<bool>,
}

impl ProgressHub {
    /// A hub whose watchers also receive snapshots published on Redis by other
    /// processes (through one shared connection); without a URL, only this
    /// process's jobs.
    pub fn new(redis_url: Option<&str>, prefix: &str, shutdown: watch::Receiver<bool>) -> Self {
        ProgressHub {
            remote: redis_url.map(|url| {
                Arc::new(RemoteFeed {
                    url: url.to_string(),
                    channel_prefix: channel_prefix(prefix),
                    wanted: Mutex::default(),
                    changed: Notify::new(),
                    task: OnceLock::new(),
                    shutdown,
                })
            }),
            ..Default::default()
        }
    }

    /// The operations this process's shared subscription is asked to follow
    /// (for tests and diagnostics).
    pub fn remote_watched(&self) -> usize {
        self.remote
            .as_ref()
            .map_or(0, |r| r.wanted.lock().expect("hub lock").len())
    }
}

impl RemoteFeed {
    fn want(self: &Arc<Self>, hub: &ProgressHub, id: Uuid) {
        let first = {
            let mut wanted = self.wanted.lock().expect("hub lock");
            let count = wanted.entry(id).or_default();
            *count += 1;
            *count == 1
        };
        if first {
            self.changed.notify_one();
        }
        self.task.get_or_init(|| {
            tokio::spawn(run_feed(hub.clone(), self.clone()));
        });
    }

    fn unwant(&self, id: Uuid) {
        let last = {
            let mut wanted = self.wanted.lock().expect("hub lock");
            match wanted.get_mut(&id) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    wanted.remove(&id);
                    true
                }
                None => false,
            }
        };
        if last {
            self.changed.notify_one();
        }
    }

    /// One connection's life: subscribes to what is wanted, delivers what
    /// arrives, follows changes of `wanted`; returns when the connection is
    /// lost (an error after it was up) or cannot be made.
    async fn session(&self, hub: &ProgressHub, connected: &mut bool) -> Result<(), String> {
        use futures::StreamExt;
        let client =
            bb8_redis::redis::Client::open(self.url.as_str()).map_err(|e| e.to_string())?;
        let pubsub = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub())
            .await
            .map_err(|_| "connecting timed out".to_string())?
            .map_err(|e| e.to_string())?;
        *connected = true;
        tracing::debug!("progress subscription connected to Redis");
        let (mut sink, mut messages) = pubsub.split();
        let mut subscribed: HashSet<Uuid> = HashSet::new();
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = true;
        loop {
            if dirty {
                self.sync(&mut sink, &mut subscribed).await?;
                dirty = false;
            }
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => self.deliver(hub, &message),
                    None => return Err("connection lost".into()),
                },
                () = self.changed.notified() => dirty = true,
                _ = ping.tick() => {
                    // Subscribed, Redis answers PING with an array (RESP2), not PONG.
                    tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<bb8_redis::redis::Value>())
                        .await
                        .map_err(|_| "ping timed out".to_string())?
                        .map_err(|e| e.to_string())?;
                }
            }
        }
    }

    /// Subscribes to newly wanted channels and unsubscribes from abandoned ones.
    async fn sync(
        &self,
        sink: &mut bb8_redis::redis::aio::PubSubSink,
        subscribed: &mut HashSet<Uuid>,
    ) -> Result<(), String> {
        let wanted: HashSet<Uuid> = self
            .wanted
            .lock()
            .expect("hub lock")
            .keys()
            .copied()
            .collect();
        let channel = |id: &Uuid| format!("{}{id}", self.channel_prefix);
        let add: Vec<String> = wanted.difference(subscribed).map(channel).collect();
        let drop: Vec<String> = subscribed.difference(&wanted).map(channel).collect();
        if !add.is_empty() {
            tokio::time::timeout(REDIS_TIMEOUT, sink.subscribe(&add))
                .await
                .map_err(|_| "subscribing timed out".to_string())?
                .map_err(|e| e.to_string())?;
        }
        if !drop.is_empty() {
            tokio::time::timeout(REDIS_TIMEOUT, sink.unsubscribe(&drop))
                .await
                .map_err(|_| "unsubscribing timed out".to_string())?
                .map_err(|e| e.to_string())?;
        }
        *subscribed = wanted;
        Ok(())
    }

    fn deliver(&self, hub: &ProgressHub, message: &bb8_redis::redis::Msg) {
        let Some(id) = message
            .get_channel_name()
            .strip_prefix(&self.channel_prefix)
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            return;
        };
        match serde_json::from_slice::<Snapshot>(message.get_payload_bytes()) {
            Ok(snapshot) => hub.publish_remote(id, snapshot),
            // Not ours to read (another version's, say); polling covers it.
            Err(error) => tracing::debug!(%error, operation = %id, "ignored a progress message"),
        }
    }
}

/// The task owning the shared subscription: connects, and after a lost or
/// failed connection waits (0.5 s doubling to 30 s, back to 0.5 s once a
/// connection worked) and connects again, until shutdown.
async fn run_feed(hub: ProgressHub, feed: Arc<RemoteFeed>) {
    let mut shutdown = feed.shutdown.clone();
    // Also ends when the state (and with it the shutdown trigger) is gone.
    let stopping = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    tokio::pin!(stopping);
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut connected = false;
        tokio::select! {
            () = &mut stopping => return,
            outcome = feed.session(&hub, &mut connected) => {
                if let Err(error) = outcome {
                    tracing::warn!(
                        %error,
                        retry_in_ms = backoff.as_millis() as u64,
                        "progress subscription to Redis lost; watchers poll the database meanwhile"
                    );
                }
            }
        }
        if connected {
            backoff = MIN_BACKOFF;
        }
        tokio::select! {
            () = &mut stopping => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
