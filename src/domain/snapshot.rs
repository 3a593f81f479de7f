//! Progress snapshots: what WatchOperation streams.
//!
//! A running job publishes one about ten times a second (`jobs`), through
//! the process's hub and Redis (`jobs::hub`, as JSON) to every stream that
//! watches the operation; a stream also makes one from the row when it
//! polls ([`Snapshot::persisted`]). The API converts them to protobuf
//! (`api::convert`), and nothing below it knows that form.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Counters, OperationState, Phase};

/// The full progress of one operation at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub operation_id: Uuid,
    pub state: OperationState,
    pub phase: Option<Phase>,
    pub counters: Counters,
    /// The file being worked on (live snapshots only).
    pub current_path: String,
    pub files_per_second: f64,
    pub bytes_per_second: f64,
    /// 0 to 100.
    pub progress_percent: f64,
    /// Time left at the current rate, when it can be told.
    pub eta: Option<Duration>,
    /// Why the operation failed.
    pub error: Option<String>,
    pub time: DateTime<Utc>,
}

impl Snapshot {
    /// A snapshot from what the database knows (no rates, no current file):
    /// done when succeeded or planned, otherwise the share of planned files
    /// that moved or failed.
    pub fn persisted(
        operation_id: Uuid,
        state: OperationState,
        phase: Option<Phase>,
        counters: Counters,
        error: Option<String>,
    ) -> Snapshot {
        let c = &counters;
        let percent = match state {
            OperationState::Succeeded | OperationState::Planned => 100.0,
            _ if c.files_planned > 0 => {
                100.0 * (c.files_moved + c.files_failed) as f64 / c.files_planned.max(1) as f64
            }
            _ => 0.0,
        };
        Snapshot {
            operation_id,
            state,
            phase,
            counters,
            current_path: String::new(),
            files_per_second: 0.0,
            bytes_per_second: 0.0,
            progress_percent: percent.min(100.0),
            eta: None,
            error,
            time: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persisted_progress() {
        let id = Uuid::now_v7();
        let counters = Counters {
            files_planned: 8,
            files_moved: 3,
            files_failed: 1,
            ..Default::default()
        };
        let at = |state| Snapshot::persisted(id, state, Some(Phase::Apply), counters, None);
        assert_eq!(at(OperationState::Applying).progress_percent, 50.0);
        assert_eq!(at(OperationState::Succeeded).progress_percent, 100.0);
        assert_eq!(at(OperationState::Planned).progress_percent, 100.0);
        let nothing =
            Snapshot::persisted(id, OperationState::Running, None, Counters::default(), None);
        assert_eq!(nothing.progress_percent, 0.0);
        // JSON is how snapshots cross processes (jobs::hub).
        let snapshot = at(OperationState::Failed);
        let json = serde_json::to_vec(&snapshot).unwrap();
        assert_eq!(serde_json::from_slice::<Snapshot>(&json).unwrap(), snapshot);
    }
}
