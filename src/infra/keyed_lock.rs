//! One holder at a time per key: concurrent requests for the same expensive
//! answer (an operation's report) wait for the first one to compute and store
//! it, then read what it stored, instead of all computing it at once and
//! starving the database pool. Keys nobody holds or waits for are dropped.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
};

type Locks<K> = Arc<Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>>;

pub struct KeyedLock<K> {
    locks: Locks<K>,
}

impl<K> Default for KeyedLock<K> {
    fn default() -> Self {
        KeyedLock {
            locks: Default::default(),
        }
    }
}

impl<K> Clone for KeyedLock<K> {
    fn clone(&self) -> Self {
        KeyedLock {
            locks: self.locks.clone(),
        }
    }
}

/// Held until dropped.
pub struct KeyedGuard<K: Eq + Hash + Clone> {
    locks: Locks<K>,
    key: K,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> KeyedLock<K> {
    /// Waits until no other task holds `key`, and holds it.
    pub async fn lock(&self, key: K) -> KeyedGuard<K> {
        let lock = self
            .locks
            .lock()
            .expect("keyed lock map")
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        KeyedGuard {
            locks: self.locks.clone(),
            key,
            lock,
            guard: Some(guard),
        }
    }

    /// Keys held or waited for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().expect("keyed lock map").len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash + Clone> Drop for KeyedGuard<K> {
    fn drop(&mut self) {
        self.guard.take();
        let mut locks = self.locks.lock().expect("keyed lock map");
        // The map's reference and ours: nobody else waits for this key (a
        // waiter clones its reference under the map's lock, held here).
        if Arc::strong_count(&self.lock) == 2 {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn holders_of_one_key_take_turns_and_other_keys_do_not_wait() {
        let locks = KeyedLock::default();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _held = locks.lock("report").await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        // Another key is free while "report" is busy.
        let other = tokio::time::timeout(Duration::from_secs(1), locks.lock("other")).await;
        assert!(other.is_ok());
        drop(other);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        // Nothing is left behind.
        assert!(locks.is_empty(), "{} keys left", locks.len());
    }
}
