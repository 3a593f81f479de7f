//! Live progress of a running job, shared between the engine's threads and
//! the job runner that persists and publishes it.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicI64, Ordering},
};

use crate::domain::Counters;

/// Counters as atomics (cheap to bump from any thread), the current path
/// and the cancel flag the engine checks before each file.
#[derive(Debug, Default)]
pub struct Progress {
    pub files_scanned: AtomicI64,
    pub files_planned: AtomicI64,
    pub files_moved: AtomicI64,
    pub files_skipped: AtomicI64,
    pub files_failed: AtomicI64,
    pub duplicates_found: AtomicI64,
    pub bytes_scanned: AtomicI64,
    pub bytes_moved: AtomicI64,
    pub reclaimable_bytes: AtomicI64,
    /// Files (and bytes) the current phase has to get through, when known.
    pub total_files: AtomicI64,
    pub total_bytes: AtomicI64,
    /// Files (and bytes) done in the current phase.
    pub done_files: AtomicI64,
    pub done_bytes: AtomicI64,
    current_path: Mutex<String>,
    cancel: AtomicBool,
}

impl Progress {
    /// Starts from the counters already persisted (a resumed job).
    pub fn from_counters(c: &Counters) -> Progress {
        let p = Progress::default();
        p.files_scanned.store(c.files_scanned, Ordering::Relaxed);
        p.files_planned.store(c.files_planned, Ordering::Relaxed);
        p.files_moved.store(c.files_moved, Ordering::Relaxed);
        p.files_skipped.store(c.files_skipped, Ordering::Relaxed);
        p.files_failed.store(c.files_failed, Ordering::Relaxed);
        p.duplicates_found
            .store(c.duplicates_found, Ordering::Relaxed);
        p.bytes_scanned.store(c.bytes_scanned, Ordering::Relaxed);
        p.bytes_moved.store(c.bytes_moved, Ordering::Relaxed);
        p.reclaimable_bytes
            .store(c.reclaimable_bytes, Ordering::Relaxed);
        p
    }

    /// Zeroes every counter (a plan restarted from scratch).
    pub fn reset_counters(&self) {
        for counter in [
            &self.files_scanned,
            &self.files_planned,
            &self.files_moved,
            &self.files_skipped,
            &self.files_failed,
            &self.duplicates_found,
            &self.bytes_scanned,
            &self.bytes_moved,
            &self.reclaimable_bytes,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    pub fn counters(&self) -> Counters {
        let get = |a: &AtomicI64| a.load(Ordering::Relaxed);
        Counters {
            files_scanned: get(&self.files_scanned),
            files_planned: get(&self.files_planned),
            files_moved: get(&self.files_moved),
            files_skipped: get(&self.files_skipped),
            files_failed: get(&self.files_failed),
            duplicates_found: get(&self.duplicates_found),
            bytes_scanned: get(&self.bytes_scanned),
            bytes_moved: get(&self.bytes_moved),
            reclaimable_bytes: get(&self.reclaimable_bytes),
        }
    }

    pub fn add(counter: &AtomicI64, n: i64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Begins a phase with `files` / `bytes` to get through.
    pub fn start_phase(&self, files: i64, bytes: i64) {
        self.total_files.store(files, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
        self.done_files.store(0, Ordering::Relaxed);
        self.done_bytes.store(0, Ordering::Relaxed);
    }

    pub fn step(&self, bytes: i64) {
        self.done_files.fetch_add(1, Ordering::Relaxed);
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_current(&self, path: &str) {
        if let Ok(mut current) = self.current_path.try_lock() {
            current.clear();
            current.push_str(path);
        }
    }

    pub fn current(&self) -> String {
        self.current_path
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}
