//! CSV export (RFC 4180): a header row, then one row per file record.
//!
//! Every line ends with CRLF. A field is quoted when it contains a comma, a
//! double quote, CR or LF, and a double quote inside it is doubled; so any
//! path a file system allows (newlines included) survives a round trip
//! through a conforming parser. Missing values are empty fields.
//!
//! # Formula injection
//!
//! A report is opened in spreadsheets, and a cell such as `=HYPERLINK(…)`
//! would run as a formula there (CSV injection). File names and custom
//! category names are user data, so every cell that begins with `=`, `+`,
//! `-`, `@`, a tab or a carriage return gets a single quote in front
//! (OWASP's advice: the spreadsheet shows the text, not a formula). The
//! quote is part of the cell: a program reading the CSV sees `'=cmd` for a
//! file named `=cmd` and strips one leading `'` from such cells to recover
//! the name ([`neutralize`] is the exact rule). Every other cell round-trips
//! unchanged.

use super::{Record, Report, ReportWriter, rfc3339};

/// The header row, in column order.
pub const COLUMNS: [&str; 12] = [
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
    "rule",
    "rule_version",
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

/// Characters that make a spreadsheet read a cell as a formula.
pub const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The cell text written for `field`: prefixed with `'` when it begins with
/// one of [`FORMULA_TRIGGERS`], else unchanged.
pub fn neutralize(field: &str) -> std::borrow::Cow<'_, str> {
    if field.starts_with(FORMULA_TRIGGERS) {
        format!("'{field}").into()
    } else {
        field.into()
    }
}

/// Appends one field: formula triggers neutralized, quoted only when it
/// must be.
pub fn push_field(out: &mut Vec<u8>, field: &str) {
    let field = neutralize(field);
    let field = field.as_ref();
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
        let rule = r
            .decided_by
            .map(|d| format!("rules/{}", d.rule_id))
            .unwrap_or_default();
        let rule_version = r
            .decided_by
            .map(|d| d.rule_version.to_string())
            .unwrap_or_default();
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
                r.status.as_str(),
                &r.category,
                &size,
                &modified,
                &hash,
                r.duplicate_of_path.as_deref().unwrap_or_default(),
                r.reason.as_deref().unwrap_or_default(),
                &rule,
                &rule_version,
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

    #[test]
    fn formula_triggers_are_neutralized() {
        for (raw, written) in [
            (
                "=HYPERLINK(\"http://evil\")",
                "\"'=HYPERLINK(\"\"http://evil\"\")\"",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("=a,b", "\"'=a,b\""),
        ] {
            assert_eq!(field(raw), written, "{raw:?}");
        }
        // Only the first character counts; safe cells are untouched.
        for safe in ["a=b", "1-2", "mail@example.com", "'quoted", " =x", ""] {
            assert_eq!(neutralize(safe), safe);
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Cells: arbitrary text, weighted towards the characters CSV and
        /// spreadsheets care about.
        fn cell() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[=+@\t\r\n\",' a-]{0,8}",
                "[=+@-][^\x00]{0,20}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Rows written by this module and read back by the `csv` crate
            /// (a conforming RFC 4180 parser) give back every cell: exactly
            /// for safe cells, with the one leading quote for formula cells;
            /// and no parsed cell starts with a formula trigger.
            #[test]
            fn rows_round_trip_through_a_csv_parser(
                rows in proptest::collection::vec(proptest::collection::vec(cell(), COLUMNS.len()), 0..6)
            ) {
                let mut out = Vec::new();
                push_row(&mut out, COLUMNS);
                for row in &rows {
                    push_row(&mut out, row.iter().map(String::as_str));
                }
                let mut reader = ::csv::ReaderBuilder::new()
                    .has_headers(true)
                    .from_reader(out.as_slice());
                prop_assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), COLUMNS.to_vec());
                let parsed: Vec<Vec<String>> = reader
                    .records()
                    .map(|r| r.expect("valid CSV").iter().map(str::to_owned).collect())
                    .collect();
                prop_assert_eq!(parsed.len(), rows.len());
                for (written, read) in rows.iter().zip(&parsed) {
                    for (cell, back) in written.iter().zip(read) {
                        prop_assert!(!back.starts_with(FORMULA_TRIGGERS), "{back:?}");
                        if cell.starts_with(FORMULA_TRIGGERS) {
                            prop_assert_eq!(back, &format!("'{cell}"));
                        } else {
                            prop_assert_eq!(back, cell);
                        }
                    }
                }
            }
        }
    }
}
