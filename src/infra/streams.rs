//! The per-user cap on concurrent server streams (`MAX_STREAMS_PER_USER`).
//!
//! A server stream holds resources for as long as the client keeps it open: a task, a
//! database poll every second and a share of the Redis subscription (WatchOperation), an open
//! file (DownloadFile), a folder walk (DownloadArchive), a journal walk (ExportReport). Rate
//! limits count calls, not how long they last, so one user could hold thousands. These four
//! therefore take a [`StreamSlot`] before they start, counted together per user; beyond the
//! cap the call is RESOURCE_EXHAUSTED at once. The slot travels with the response stream
//! ([`hold`]) and is given back when tonic drops that stream: when it ends, or when the client
//! resets it or its connection goes away.
//!
//! The count is per process: with several API processes behind a balancer a user may hold up
//! to the cap on each. (A shared count in Redis would outlive a process that crashed holding
//! slots; the per-process count cannot leak.)

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use tokio_stream::Stream;
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    pb::fileorganizer::v1::ErrorReason,
};

/// When a refused client may try again: slots come free whenever another stream ends, so
/// this is a polite pace rather than a promise.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Open server streams per user. Cheap to clone (a handle).
#[derive(Clone)]
pub struct StreamSlots {
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
    per_user: usize,
}

/// One open stream of one user; gives its slot back when dropped.
pub struct StreamSlot {
    slots: StreamSlots,
    user: Uuid,
}

impl StreamSlots {
    pub fn new(per_user: usize) -> Self {
        StreamSlots {
            open: Arc::default(),
            per_user,
        }
    }

    /// A slot for one more stream of `user`, or RESOURCE_EXHAUSTED at the cap.
    pub fn acquire(&self, user: Uuid) -> AppResult<StreamSlot> {
        let mut open = self.open.lock().expect("stream slots lock");
        let count = open.entry(user).or_default();
        if *count >= self.per_user {
            return Err(AppError::exhausted(
                ErrorReason::RateLimited,
                format!(
                    "too many open streams: at most {} WatchOperation, DownloadFile, \
                     DownloadArchive and ExportReport streams per user at a time (MAX_STREAMS_PER_USER); close one \
                     and retry",
                    self.per_user
                ),
                RETRY_AFTER,
            ));
        }
        *count += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            user,
        })
    }

    /// The streams `user` has open in this process.
    pub fn open(&self, user: Uuid) -> usize {
        let open = self.open.lock().expect("stream slots lock");
        open.get(&user).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("stream slots lock");
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// A response stream that keeps its slot for as long as it exists.
pub struct Holding<S> {
    inner: S,
    _slot: StreamSlot,
}

impl<S: Stream + Unpin> Stream for Holding<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// `stream`, holding `slot` until tonic drops it.
pub fn hold<T: 'static>(
    slot: StreamSlot,
    stream: Pin<Box<dyn Stream<Item = T> + Send>>,
) -> Pin<Box<dyn Stream<Item = T> + Send>> {
    Box::pin(Holding {
        inner: stream,
        _slot: slot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_per_user_and_slots_come_back() {
        let slots = StreamSlots::new(2);
        let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let first = slots.acquire(ann).unwrap();
        let _second = slots.acquire(ann).unwrap();
        let refused = slots.acquire(ann).err().unwrap();
        assert!(matches!(refused, AppError::ResourceExhausted { .. }));
        let _bobs = slots.acquire(bob).unwrap();
        drop(first);
        assert_eq!(slots.open(ann), 1);
        let _third = slots.acquire(ann).unwrap();
        assert_eq!(slots.open(ann), 2);
    }
}
