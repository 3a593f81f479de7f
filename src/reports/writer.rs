//! What every export writer shares: the [`ReportWriter`] trait and the
//! formatting of times, durations and sizes. Apart from `reports/mod.rs`
//! (which picks a writer per [`Format`](super::Format)) so that the writers
//! and the module that dispatches to them never import each other
//! (docs/architecture.md).

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::report::{DuplicateGroup, Record, Report};

/// Writes one export incrementally; see the [module docs](super) for the order
/// of calls. Parts a format does not show are no-ops.
pub trait ReportWriter: Send {
    fn begin(&mut self, out: &mut Vec<u8>, report: &Report);
    fn group(&mut self, _out: &mut Vec<u8>, _group: &DuplicateGroup) {}
    fn end_groups(&mut self, _out: &mut Vec<u8>) {}
    fn record(&mut self, _out: &mut Vec<u8>, _record: &Record) {}
    fn finish(&mut self, out: &mut Vec<u8>);
}

/// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as the protobuf JSON
/// mapping prints a Timestamp.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Seconds with 0, 3, 6 or 9 fractional digits and an `s`, as the protobuf
/// JSON mapping prints a Duration.
pub fn duration_json(d: std::time::Duration) -> String {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    if nanos == 0 {
        format!("{secs}s")
    } else if nanos % 1_000_000 == 0 {
        format!("{secs}.{:03}s", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{secs}.{:06}s", nanos / 1_000)
    } else {
        format!("{secs}.{nanos:09}s")
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes.unsigned_abs() < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_json_times() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        let t = DateTime::from_timestamp(1_700_000_000, 120_000_000).unwrap();
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.120Z");
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123456Z");
        use std::time::Duration;
        assert_eq!(duration_json(Duration::from_secs(3)), "3s");
        assert_eq!(duration_json(Duration::from_millis(1500)), "1.500s");
        assert_eq!(duration_json(Duration::from_micros(1_000_001)), "1.000001s");
        assert_eq!(duration_json(Duration::from_nanos(5)), "0.000000005s");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
