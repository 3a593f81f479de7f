//! Operation reports as data, and the writers that export them.
//!
//! The report's numbers come from the journal by aggregation in Postgres
//! (`db::reports`) into the domain's plain values ([`Report`],
//! [`DuplicateGroup`], [`Record`]: `domain::report`); this module turns them
//! into documents. It knows nothing of gRPC: the API layer converts the same
//! values to protobuf messages and streams what the writers produce.
//!
//! # Streaming
//!
//! A writer never holds a whole export. The exporter calls, in this order,
//! [`ReportWriter::begin`] with the report, [`ReportWriter::group`] for each
//! duplicate group, [`ReportWriter::end_groups`], [`ReportWriter::record`] for
//! each file record in seq order, then [`ReportWriter::finish`]; each call
//! appends bytes to a buffer the caller drains whenever it is large enough.
//! The caller reads groups and records from the database in batches, and
//! skips the parts a format does not show ([`Format::needs_report`],
//! [`Format::needs_groups`], [`Format::needs_records`]): a writer must not
//! rely on being called for them.

pub mod compute;
pub mod csv;
pub mod html;
pub mod json;
pub mod usage;

use chrono::{DateTime, SecondsFormat, Utc};

/// The report's values are the domain's (`domain::report`).
pub use crate::domain::report::{
    CategoryShare, DuplicateFile, DuplicateGroup, LARGEST_FILES, Record, Report, TOP_CATEGORIES,
    category_shares, record_name,
};
pub use compute::{REPORT_MEMO, compute, report_of};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Html,
}

impl Format {
    /// The `Content-Type` of the exported document.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    /// The file name extension of a download.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Html => "html",
        }
    }

    /// Whether the document shows the report's aggregates (CSV is records only).
    pub fn needs_report(self) -> bool {
        !matches!(self, Format::Csv)
    }

    pub fn needs_groups(self) -> bool {
        matches!(self, Format::Json | Format::Html)
    }

    pub fn needs_records(self) -> bool {
        matches!(self, Format::Csv | Format::Json)
    }

    /// A fresh writer for one export.
    pub fn writer(self) -> Box<dyn ReportWriter> {
        match self {
            Format::Csv => Box::new(csv::CsvWriter::default()),
            Format::Json => Box::new(json::JsonWriter::default()),
            Format::Html => Box::new(html::HtmlWriter::default()),
        }
    }
}

/// Writes one export incrementally; see the [module docs](self) for the order
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
