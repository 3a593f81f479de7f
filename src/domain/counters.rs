//! What an operation counts as it works.

use serde::{Deserialize, Serialize};

/// The counters of an operation: kept live by the engine
/// (`engine::progress`), persisted with the row, rebuilt from the journal
/// after an interruption, and shown in snapshots and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub files_scanned: i64,
    pub files_planned: i64,
    pub files_moved: i64,
    pub files_skipped: i64,
    pub files_failed: i64,
    pub duplicates_found: i64,
    pub bytes_scanned: i64,
    pub bytes_moved: i64,
    pub reclaimable_bytes: i64,
}

impl Counters {
    /// Per-field maximum, so that snapshots from several sources (the live
    /// job, the persisted row) never make a counter go backwards.
    pub fn max_with(self, other: Counters) -> Counters {
        Counters {
            files_scanned: self.files_scanned.max(other.files_scanned),
            files_planned: self.files_planned.max(other.files_planned),
            files_moved: self.files_moved.max(other.files_moved),
            files_skipped: self.files_skipped.max(other.files_skipped),
            files_failed: self.files_failed.max(other.files_failed),
            duplicates_found: self.duplicates_found.max(other.duplicates_found),
            bytes_scanned: self.bytes_scanned.max(other.bytes_scanned),
            bytes_moved: self.bytes_moved.max(other.bytes_moved),
            reclaimable_bytes: self.reclaimable_bytes.max(other.reclaimable_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_with_takes_each_field_on_its_own() {
        let a = Counters {
            files_scanned: 10,
            files_moved: 1,
            bytes_moved: 500,
            ..Default::default()
        };
        let b = Counters {
            files_scanned: 7,
            files_moved: 3,
            reclaimable_bytes: 9,
            ..Default::default()
        };
        let m = a.max_with(b);
        assert_eq!(
            (
                m.files_scanned,
                m.files_moved,
                m.bytes_moved,
                m.reclaimable_bytes
            ),
            (10, 3, 500, 9)
        );
        assert_eq!(m, b.max_with(a));
    }
}
