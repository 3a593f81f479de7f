//! CSV export (RFC 4180): a header row, then one row per file record.
//!
//! Every line ends with CRLF. A field is quoted when it contains a comma, a
//! double quote, CR or LF, and a double quote inside it is doubled; so any
//! path a file system allows (newlines included) survives a round trip
//! through a conforming parser. Missing values are empty fields.

use super::{Record, Report, ReportWriter, rfc3339};

/// The header row, in column order.
pub const COLUMNS: [&str; 10] = [
    "seq",
    "original_path",
    "new_path",
    "status",
    "category",
    "size_bytes",
    "modify_time",
    "content_hash",
    "duplicate_of_path",
    "reason",
];

#[derive(Debug, Default)]
pub struct CsvWriter {
    header_written: bool,
}

impl CsvWriter {
    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.header_written {
            push_row(out, COLUMNS);
            self.header_written = true;
        }
    }
}

/// Appends one field, quoted only when it must be.
pub fn push_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push(b'"');
        for part in field.split('"').enumerate() {
            if part.0 > 0 {
                out.extend_from_slice(b"\"\"");
            }
            out.extend_from_slice(part.1.as_bytes());
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

fn push_row<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'a str>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_field(out, field);
    }
    out.extend_from_slice(b"\r\n");
}

impl ReportWriter for CsvWriter {
    fn begin(&mut self, out: &mut Vec<u8>, _report: &Report) {
        self.header(out);
    }

    fn record(&mut self, out: &mut Vec<u8>, r: &Record) {
        self.header(out);
        let seq = r.seq.to_string();
        let size = r.size_bytes.to_string();
        let modified = r.modify_time.map(rfc3339).unwrap_or_default();
        let hash = r
            .content_hash
            .as_deref()
            .map(hex::encode)
            .unwrap_or_default();
        push_row(
            out,
            [
                seq.as_str(),
                &r.original_path,
                r.new_path.as_deref().unwrap_or_default(),
                &r.status,
                &r.category,
                &size,
                &modified,
                &hash,
                r.duplicate_of_path.as_deref().unwrap_or_default(),
                r.reason.as_deref().unwrap_or_default(),
            ],
        );
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.header(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &str) -> String {
        let mut out = Vec::new();
        push_field(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(field("plain/path.txt"), "plain/path.txt");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("cr\r"), "\"cr\r\"");
        assert_eq!(field("\""), "\"\"\"\"");
    }

    #[test]
    fn rows_end_with_crlf() {
        let mut out = Vec::new();
        push_row(&mut out, ["1", "a,b", ""]);
        assert_eq!(out, b"1,\"a,b\",\r\n");
    }
}
