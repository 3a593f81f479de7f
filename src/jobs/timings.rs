//! How long each phase of a job took, by the worker's monotonic clock.
//!
//! A job enters a phase with `JobContext::set_phase` and leaves the last one
//! when it stops (`JobContext::finish`); each change closes the phase that
//! was running and writes the totals to `operations.phase_seconds` in the
//! same UPDATE as the new phase, so a reader that sees a phase change sees
//! the time of the phase before it. The API serves them as
//! `Operation.phase_durations`, in pipeline order.
//!
//! A job resumed by another worker (a restart, an apply after a dry run)
//! starts from the stored totals, so a phase that is redone counts every
//! attempt; the time a dead worker spent in its last phase is lost with it.
//! `report` is the last: once the operation is in its final state, the job
//! computes and stores its report (`JobContext::finish`).
//!
//! `plan` and `journal` overlap in the engine: the planner streams its rows
//! into the journal's COPY as it makes them. `plan` ends when the last file
//! is planned; `journal` is what is left of writing the journal after that
//! (the COPY's tail, its statement triggers, the commit).

use std::{collections::BTreeMap, time::Instant};

use serde_json::Value;

use crate::domain::Phase;

/// Totals by phase word. Words this version does not know (written by a
/// newer one) are carried along as they are, and the API leaves them out.
#[derive(Debug, Default)]
pub struct PhaseTimings {
    seconds: BTreeMap<String, f64>,
    running: Option<(Phase, Instant)>,
}

impl PhaseTimings {
    /// Continues from the totals stored by earlier runs of the job (an
    /// object of seconds by phase; anything else counts as none).
    pub fn resume(stored: &Value) -> PhaseTimings {
        let seconds = stored
            .as_object()
            .map(|object| {
                object
                    .iter()
                    .filter_map(|(phase, s)| Some((phase.clone(), s.as_f64()?)))
                    .filter(|(_, s)| s.is_finite() && *s >= 0.0)
                    .collect()
            })
            .unwrap_or_default();
        PhaseTimings {
            seconds,
            running: None,
        }
    }

    /// Closes the running phase, if any, and starts `phase` (None: the job
    /// stops). Re-entering the running phase keeps its clock going. Returns
    /// the phase it closed and the seconds of this run of it.
    pub fn enter(&mut self, phase: Option<Phase>, now: Instant) -> Option<(Phase, f64)> {
        if let (Some((running, _)), Some(next)) = (self.running, phase)
            && running == next
        {
            return None;
        }
        let closed = self.running.take().map(|(running, since)| {
            let seconds = now.duration_since(since).as_secs_f64();
            *self
                .seconds
                .entry(running.as_str().to_string())
                .or_insert(0.0) += seconds;
            (running, seconds)
        });
        self.running = phase.map(|p| (p, now));
        closed
    }

    /// The totals of the phases that have ended, as stored in the row.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.seconds
                .iter()
                .map(|(phase, s)| (phase.clone(), Value::from(*s)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn phases_are_timed_from_entry_to_the_next_phase_and_added_across_runs() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut timings = PhaseTimings::resume(&serde_json::json!({"scan": 1.0, "bogus": "x"}));
        timings.enter(Some(Phase::Scan), at(0));
        // The same phase again (a second set_phase) keeps its clock.
        timings.enter(Some(Phase::Scan), at(200));
        assert_eq!(
            timings.enter(Some(Phase::Hash), at(500)),
            Some((Phase::Scan, 0.5))
        );
        assert_eq!(timings.to_json(), serde_json::json!({"scan": 1.5}));
        timings.enter(None, at(1250));
        assert_eq!(
            timings.to_json(),
            serde_json::json!({"scan": 1.5, "hash": 0.75})
        );
        // Stopped: nothing runs, nothing more is added.
        assert_eq!(timings.enter(None, at(5000)), None);
        assert_eq!(
            timings.to_json(),
            serde_json::json!({"scan": 1.5, "hash": 0.75})
        );
    }

    #[test]
    fn a_stored_value_that_is_not_an_object_of_seconds_counts_as_none() {
        for stored in [
            serde_json::json!(null),
            serde_json::json!([1, 2]),
            serde_json::json!({"scan": -1.0}),
        ] {
            assert_eq!(
                PhaseTimings::resume(&stored).to_json(),
                serde_json::json!({})
            );
        }
    }
}
