//! A `tonic::Status` as a snapshot sees it.
//!
//! [`render`] writes what a client can read from a refusal (code, message,
//! ErrorInfo, BadRequest, RetryInfo and any other detail) as stable, readable
//! text for `insta::assert_snapshot!`: map keys sorted, identifiers that
//! change from run to run (UUIDs, request ids, retry delays, names the test
//! chose) replaced by placeholders. A change in what the service tells a
//! client then shows up as a diff of a committed file in `tests/api/snapshots/`.

use std::fmt::Write;

use tonic::Status;
use tonic_types::{ErrorDetail, StatusExt};

/// `status` as text, after replacing each `(value, placeholder)` of `redact`
/// (values the test chose, such as an email) and then every UUID (`<uuid>`).
/// The RetryInfo delay is written as `<delay>`: it depends on the clock.
/// Only its presence, and whether it is positive, are stable.
pub fn render(status: &Status, redact: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let line = |out: &mut String, text: String| writeln!(out, "{text}").unwrap();
    line(&mut out, format!("code: {:?}", status.code()));
    line(&mut out, format!("message: {:?}", status.message()));
    for detail in status.get_error_details_vec() {
        match detail {
            ErrorDetail::ErrorInfo(info) => {
                line(&mut out, "error_info:".into());
                line(&mut out, format!("  reason: {}", info.reason));
                line(&mut out, format!("  domain: {}", info.domain));
                let mut metadata: Vec<_> = info.metadata.into_iter().collect();
                metadata.sort();
                for (key, value) in metadata {
                    line(&mut out, format!("  metadata.{key}: {value:?}"));
                }
            }
            ErrorDetail::BadRequest(bad) => {
                line(&mut out, "bad_request:".into());
                for violation in bad.field_violations {
                    line(&mut out, format!("  - field: {}", violation.field));
                    line(
                        &mut out,
                        format!("    description: {:?}", violation.description),
                    );
                    if !violation.reason.is_empty() {
                        line(&mut out, format!("    reason: {}", violation.reason));
                    }
                }
            }
            ErrorDetail::RetryInfo(retry) => {
                let delay = match retry.retry_delay {
                    Some(delay) if !delay.is_zero() => "<delay>",
                    Some(_) => "0s",
                    None => "none",
                };
                line(&mut out, format!("retry_info:\n  retry_delay: {delay}"));
            }
            ErrorDetail::RequestInfo(info) => {
                line(&mut out, "request_info:\n  request_id: <request id>".into());
                line(&mut out, format!("  serving_data: {:?}", info.serving_data));
            }
            other => line(&mut out, format!("other: {other:?}")),
        }
    }
    for (value, placeholder) in redact {
        out = out.replace(value, placeholder);
    }
    redact_uuids(&out)
}

/// `text` with every hyphenated UUID replaced by `<uuid>`.
fn redact_uuids(text: &str) -> String {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.split('-').map(str::len).eq(SHAPE)
            && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        match rest.get(..36).filter(|head| is_uuid(head)) {
            Some(_) => {
                out.push_str("<uuid>");
                rest = &rest[36..];
            }
            None => {
                let next = rest.chars().next().unwrap();
                out.push(next);
                rest = &rest[next.len_utf8()..];
            }
        }
    }
    out
}

#[test]
fn uuids_are_redacted_wherever_they_stand() {
    let id = "0192f1e2-3c4d-7e8f-9a0b-1c2d3e4f5a6b";
    assert_eq!(
        redact_uuids(&format!("operations/{id} and ({id}) é {}", &id[..35])),
        format!("operations/<uuid> and (<uuid>) é {}", &id[..35])
    );
}
