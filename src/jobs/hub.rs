//! Live progress fan-out inside one process.
//!
//! A running job publishes a full snapshot (at most ~10 per second) into a
//! `watch` channel per operation; every WatchOperation stream on this
//! process subscribes to it. Streams also poll the database once a second,
//! which carries progress of jobs running in other processes (the persisted
//! counters are at most a heartbeat old) and guarantees the terminal state
//! is seen.

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
}

impl ProgressHub {
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
