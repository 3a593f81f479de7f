//! JSON export: one object `{"report": …, "duplicate_groups": […],
//! "file_records": […]}`.
//!
//! Each value is the proto3 JSON mapping of the matching message
//! (OperationReport, DuplicateGroup, FileRecord) as the REST API prints it:
//! proto field names, int64 as strings, enums by name, Timestamps in RFC 3339,
//! fields at their default value printed, unset messages left out. It is
//! written by hand, field by field, so that groups and records can be
//! streamed one at a time; a test compares it with what Envoy prints.

use super::{
    CategoryShare, DuplicateGroup, Record, Report, ReportWriter, duration_json, record_name,
    rfc3339,
};
use crate::domain::{OperationKind, OperationState, RecordStatus, Word};

#[derive(Debug, Default)]
pub struct JsonWriter {
    operation_id: uuid::Uuid,
    /// Elements written to the array currently open.
    written: u64,
}

/// Builds one JSON object; values are escaped, keys are trusted literals.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        push_str(out, value);
        self
    }

    /// int64 values are JSON strings in the proto3 mapping.
    fn int64(&mut self, key: &str, value: i64) -> &mut Self {
        let out = self.key(key);
        out.extend_from_slice(format!("\"{value}\"").as_bytes());
        self
    }

    fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        let out = self.key(key);
        out.extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    fn double(&mut self, key: &str, value: f64) -> &mut Self {
        let out = self.key(key);
        push_double(out, value);
        self
    }

    fn time(&mut self, key: &str, value: Option<chrono::DateTime<chrono::Utc>>) -> &mut Self {
        if let Some(t) = value {
            self.str(key, &rfc3339(t));
        }
        self
    }

    fn close(&mut self) {
        self.out.push(b'}');
    }
}

fn push_str(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail");
}

/// Integral values without a fraction (as protobuf prints `50`, not `50.0`);
/// others in the shortest form that reads back exactly.
fn push_double(out: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        // The mapping's spelling of NaN and infinities; never produced here.
        push_str(out, &format!("{value}"));
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        out.extend_from_slice(format!("{}", value as i64).as_bytes());
    } else {
        out.extend_from_slice(format!("{value}").as_bytes());
    }
}

/// `Completed` → `FILE_RECORD_STATUS_COMPLETED`: the protobuf JSON name,
/// which is the enum's prefix and the domain's word in capitals
/// (`api::convert`'s tests check it against the protobuf enums).
pub fn status_enum(status: RecordStatus) -> String {
    protobuf_name("FILE_RECORD_STATUS", status)
}

pub fn kind_enum(kind: OperationKind) -> String {
    protobuf_name("OPERATION_KIND", kind)
}

pub fn state_enum(state: OperationState) -> String {
    protobuf_name("OPERATION_STATE", state)
}

fn protobuf_name(prefix: &str, value: impl Word) -> String {
    format!("{prefix}_{}", value.as_str().to_ascii_uppercase())
}

fn push_array<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

fn push_category(out: &mut Vec<u8>, c: &CategoryShare) {
    Obj::open(out)
        .str("category", &c.category)
        .int64("file_count", c.file_count)
        .int64("size_bytes", c.size_bytes)
        .double("percentage", c.percentage)
        .close();
}

/// A FileRecord message.
pub fn push_record(out: &mut Vec<u8>, operation_id: uuid::Uuid, r: &Record) {
    let mut o = Obj::open(out);
    o.str("name", &record_name(operation_id, r.seq))
        .str("operation", &format!("operations/{operation_id}"))
        .int64("seq", r.seq)
        .str("original_path", &r.original_path)
        .str("new_path", r.new_path.as_deref().unwrap_or_default())
        .int64("size_bytes", r.size_bytes)
        .time("modify_time", r.modify_time)
        .str(
            "content_hash",
            &r.content_hash
                .as_deref()
                .map(hex::encode)
                .unwrap_or_default(),
        )
        .str("category", &r.category)
        .str(
            "duplicate_of",
            &r.duplicate_of
                .map(|seq| record_name(operation_id, seq))
                .unwrap_or_default(),
        )
        .str(
            "duplicate_of_path",
            r.duplicate_of_path.as_deref().unwrap_or_default(),
        )
        .str("status", &status_enum(r.status))
        .str("reason", r.reason.as_deref().unwrap_or_default())
        .time("create_time", Some(r.create_time))
        .str(
            "rule",
            &r.decided_by
                .map(|d| format!("rules/{}", d.rule_id))
                .unwrap_or_default(),
        )
        .int64("rule_version", r.decided_by.map_or(0, |d| d.rule_version))
        .close();
}

/// A DuplicateGroup message.
pub fn push_group(out: &mut Vec<u8>, operation_id: uuid::Uuid, g: &DuplicateGroup) {
    let mut o = Obj::open(out);
    o.str("content_hash", &hex::encode(&g.content_hash))
        .int64("size_bytes", g.size_bytes)
        .int64("file_count", g.file_count)
        .int64("reclaimable_bytes", g.reclaimable_bytes)
        .str("kept_path", &g.kept_path);
    push_array(o.key("files"), &g.files, |out, f| {
        Obj::open(out)
            .str("file_record", &record_name(operation_id, f.seq))
            .str("original_path", &f.original_path)
            .str("path", &f.path)
            .time("modify_time", f.modify_time)
            .bool("kept", f.kept)
            .close();
    });
    o.close();
}

/// An OperationReport message.
pub fn push_report(out: &mut Vec<u8>, r: &Report) {
    let t = &r.totals;
    let mut o = Obj::open(out);
    o.str("name", &r.name())
        .str("operation", &r.operation_name())
        .str("kind", &kind_enum(r.kind))
        .str("state", &state_enum(r.state))
        .bool("dry_run", r.dry_run)
        .time("start_time", r.start_time)
        .time("end_time", r.end_time);
    if let Some(d) = r.duration {
        o.str("duration", &duration_json(d));
    }
    Obj::open(o.key("totals"))
        .int64("files_scanned", t.files_scanned)
        .int64("files_planned", t.files_planned)
        .int64("files_moved", t.files_moved)
        .int64("files_skipped", t.files_skipped)
        .int64("files_failed", t.files_failed)
        .int64("duplicates_found", t.duplicates_found)
        .int64("bytes_scanned", t.bytes_scanned)
        .int64("bytes_moved", t.bytes_moved)
        .int64("reclaimable_bytes", t.reclaimable_bytes)
        .close();
    push_array(o.key("categories"), &r.categories, push_category);
    push_array(o.key("top_categories"), &r.top_categories, |out, name| {
        push_str(out, name)
    });
    push_array(o.key("largest_files"), &r.largest_files, |out, f| {
        push_record(out, r.operation_id, f)
    });
    o.int64("duplicate_group_count", r.duplicate_group_count)
        .int64("duplicate_file_count", r.duplicate_file_count)
        .int64("reclaimable_bytes", r.reclaimable_bytes)
        .time("compute_time", Some(r.compute_time))
        .int64("taken_dates_from_metadata", r.taken_dates.from_metadata)
        .int64("taken_dates_from_mtime", r.taken_dates.from_mtime)
        .close();
}

impl JsonWriter {
    /// A comma before every element of an array but the first.
    fn separator(&mut self, out: &mut Vec<u8>) {
        if self.written > 0 {
            out.extend_from_slice(b",\n");
        }
        self.written += 1;
    }
}

impl ReportWriter for JsonWriter {
    fn begin(&mut self, out: &mut Vec<u8>, report: &Report) {
        self.operation_id = report.operation_id;
        out.extend_from_slice(b"{\"report\":");
        push_report(out, report);
        out.extend_from_slice(b",\n\"duplicate_groups\":[");
        self.written = 0;
    }

    fn group(&mut self, out: &mut Vec<u8>, group: &DuplicateGroup) {
        self.separator(out);
        push_group(out, self.operation_id, group);
    }

    fn end_groups(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"],\n\"file_records\":[");
        self.written = 0;
    }

    fn record(&mut self, out: &mut Vec<u8>, record: &Record) {
        self.separator(out);
        push_record(out, self.operation_id, record);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"]}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_protobuf() {
        let print = |v: f64| {
            let mut out = Vec::new();
            push_double(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(print(50.0), "50");
        assert_eq!(print(0.0), "0");
        assert_eq!(print(100.0 / 3.0), "33.333333333333336");
    }

    #[test]
    fn enums_by_name() {
        assert_eq!(
            status_enum(RecordStatus::Completed),
            "FILE_RECORD_STATUS_COMPLETED"
        );
        assert_eq!(
            kind_enum(OperationKind::Deduplicate),
            "OPERATION_KIND_DEDUPLICATE"
        );
        assert_eq!(
            state_enum(OperationState::Succeeded),
            "OPERATION_STATE_SUCCEEDED"
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        Obj::open(&mut out).str("path", "a\"b\n\u{1}").close();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["path"], "a\"b\n\u{1}");
    }
}
