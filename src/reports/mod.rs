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

pub(crate) mod compute;
pub(crate) mod csv;
pub(crate) mod html;
pub(crate) mod json;
pub(crate) mod usage;
mod writer;

/// The report's values are the domain's (`domain::report`).
pub use crate::domain::report::{
    CategoryShare, DuplicateFile, DuplicateGroup, LARGEST_FILES, Record, Report, TOP_CATEGORIES,
    category_shares, record_name,
};
pub use compute::{REPORT_MEMO, compute, report_of};
pub use writer::{ReportWriter, duration_json, human_bytes, rfc3339};

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
