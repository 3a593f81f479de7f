//! Live progress fan-out.
//!
//! A running job publishes a full snapshot (at most ~10 per second) into a
//! `watch` channel per operation, which every WatchOperation stream of the
//! same process subscribes to, and, when Redis is configured, to the Redis
//! pub/sub channel `<prefix>v1:progress:<operation id>` (protobuf-encoded), so
//! streams served by another API process see a job running anywhere. Streams
//! also poll the database once a second: that carries progress when Redis is
//! absent (the persisted counters are at most a heartbeat old) and
//! guarantees the terminal state is seen.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;
use uuid::Uuid;

use crate::pb::fileorganizer::v1 as pb;

#[derive(Clone, Default)]
pub struct ProgressHub {
    channels: Arc<Mutex<HashMap<Uuid, watch::Sender<Option<pb::WatchOperationResponse>>>>>,
    /// Jobs running in this process, so a cancel served here stops them at
    /// once (other processes notice the flag at their next heartbeat).
    running: Arc<Mutex<HashMap<Uuid, Arc<crate::engine::progress::Progress>>>>,
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
    pub fn publish(&self, id: Uuid, snapshot: pb::WatchOperationResponse) {
        let mut channels = self.channels.lock().expect("hub lock");
        let sender = channels.entry(id).or_insert_with(|| watch::channel(None).0);
        sender.send_replace(Some(snapshot));
    }

    /// Subscribes to snapshots of `id` (the latest one is available at once).
    pub fn subscribe(&self, id: Uuid) -> watch::Receiver<Option<pb::WatchOperationResponse>> {
        let mut channels = self.channels.lock().expect("hub lock");
        channels
            .entry(id)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
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
    format!("{prefix}v1:progress:{id}")
}

/// Publishes a snapshot on Redis; failures are logged at debug level only
/// (watchers fall back to polling the database).
pub async fn publish_redis(
    pool: &crate::state::RedisPool,
    prefix: &str,
    id: Uuid,
    snapshot: &pb::WatchOperationResponse,
) {
    use prost::Message;
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
        .arg(snapshot.encode_to_vec())
        .query_async(&mut *conn)
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "could not publish progress on Redis");
    }
}

/// A stream of snapshots of `id` from Redis, or None without Redis.
pub async fn subscribe_redis(
    url: Option<&str>,
    prefix: &str,
    id: Uuid,
) -> Option<std::pin::Pin<Box<dyn futures::Stream<Item = pb::WatchOperationResponse> + Send>>> {
    use futures::StreamExt;
    use prost::Message;
    let client = bb8_redis::redis::Client::open(url?).ok()?;
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(redis_channel(prefix, id)).await?;
        Ok::<_, bb8_redis::redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(1), connect).await {
        Ok(Ok(pubsub)) => Some(Box::pin(pubsub.into_on_message().filter_map(
            |msg| async move { pb::WatchOperationResponse::decode(msg.get_payload_bytes()).ok() },
        ))),
        _ => None,
    }
}
