//! Layouts by capture date (`{taken_year}`, `{taken_month}`, …): photos and
//! videos uploaded through the API are placed by the date in their metadata
//! (EXIF DateTimeOriginal, an MP4's `mvhd` creation time), files without one
//! by their modification time, and the report counts both, over gRPC and
//! REST (through a real Envoy) and in the HTML export.
//!
//! The fixtures are built here, byte by byte: a JPEG whose APP1 segment
//! holds a little-endian TIFF/EXIF block, and an MP4 of `ftyp` + `moov/mvhd`.

use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState, ReportFormat};
use serde_json::Value;

use crate::{
    common::{TestApp, bearer, envoy::Envoy, tree},
    files::{small_request, upload_small},
    operations::{User, create, organize, user, wait_for},
};

/// EXIF tags written by [`exif_jpeg`].
const DATE_TIME_ORIGINAL: u16 = 0x9003;
const OFFSET_TIME_ORIGINAL: u16 = 0x9011;
const EXIF_IFD_POINTER: u16 = 0x8769;
const MAKE: u16 = 0x010f;

/// 2001-09-09T01:46:40Z: the modification time of the files that have no
/// capture date.
const OLD_MTIME: u64 = 1_000_000_000;

/// A little-endian IFD at `at` with ASCII `entries` (and `extra` raw
/// entries), its values placed right after it.
fn ifd(at: usize, entries: &[(u16, &str)], extra: &[(u16, u16, u32, u32)]) -> Vec<u8> {
    let count = entries.len() + extra.len();
    let values_at = at + 2 + 12 * count + 4;
    let (mut out, mut values) = ((count as u16).to_le_bytes().to_vec(), Vec::new());
    let mut all: Vec<(u16, u16, u32, Vec<u8>)> = extra
        .iter()
        .map(|&(tag, kind, n, value)| (tag, kind, n, value.to_le_bytes().to_vec()))
        .collect();
    for (tag, text) in entries {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        let n = bytes.len() as u32;
        if bytes.len() > 4 {
            let offset = (values_at + values.len()) as u32;
            values.extend_from_slice(&bytes);
            bytes = offset.to_le_bytes().to_vec();
        }
        bytes.resize(4, 0);
        all.push((*tag, 2, n, bytes));
    }
    all.sort_by_key(|e| e.0);
    for (tag, kind, n, value) in all {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&value);
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&values);
    out
}

/// A small JPEG: SOI, an APP1 "Exif" segment with IFD0 (Make) pointing to
/// an EXIF IFD holding `exif`, a few bytes of scan data, EOI.
fn exif_jpeg(exif: &[(u16, &str)]) -> Vec<u8> {
    let ifd0_len = 2 + 12 * 2 + 4 + 8; // two entries, "Camera\0" after it
    let mut tiff = b"II\x2a\0\x08\0\0\0".to_vec();
    tiff.extend(ifd(
        8,
        &[(MAKE, "Camera")],
        &[(EXIF_IFD_POINTER, 4, 1, (8 + ifd0_len) as u32)],
    ));
    tiff.resize(8 + ifd0_len, 0);
    tiff.extend(ifd(8 + ifd0_len, exif, &[]));
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&[0xff, 0xda, 0x00, 0x08, 1, 1, 0, 0, 0x3f, 0]);
    out.extend((0..512u32).map(|i| (i * 37 % 255) as u8));
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

/// An MP4 whose `mvhd` says it was created at `unix` seconds (UTC).
fn mp4_created(unix: i64) -> Vec<u8> {
    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }
    // Seconds from 1904-01-01 to 1970-01-01.
    let since_1904 = (unix + 2_082_844_800) as u32;
    let mut mvhd = vec![0, 0, 0, 0];
    for value in [since_1904, since_1904, 600, 1200] {
        mvhd.extend_from_slice(&value.to_be_bytes());
    }
    mvhd.extend_from_slice(&[0; 76]);
    mvhd.extend_from_slice(&2u32.to_be_bytes());
    let mut out = boxed(b"ftyp", b"mp42\0\0\0\0mp42isom");
    out.extend(boxed(b"free", &[0; 16]));
    out.extend(boxed(b"moov", &boxed(b"mvhd", &mvhd)));
    out
}

/// Uploads the mixed set into `inbox/` and dates the files without a
/// capture date to [`OLD_MTIME`] (the photos too: their metadata must win).
async fn upload_mixed(app: &TestApp, u: &User) {
    let files: [(&str, Vec<u8>); 6] = [
        // 19:30 at +02:00: still the 14th wherever the date is read.
        (
            "inbox/beach.jpg",
            exif_jpeg(&[
                (DATE_TIME_ORIGINAL, "2019:07:14 19:30:00"),
                (OFFSET_TIME_ORIGINAL, "+02:00"),
            ]),
        ),
        // No offset: a naive local time, its own date (no shift to UTC).
        (
            "inbox/party.JPG",
            exif_jpeg(&[(DATE_TIME_ORIGINAL, "2018:12:31 23:59:59")]),
        ),
        // 2021-03-02T10:00:00Z.
        ("inbox/clip.mp4", mp4_created(1_614_679_200)),
        // EXIF without a date, and a date that is no date.
        ("inbox/plain.jpg", exif_jpeg(&[])),
        (
            "inbox/zeros.jpg",
            exif_jpeg(&[(DATE_TIME_ORIGINAL, "0000:00:00 00:00:00")]),
        ),
        ("inbox/notes.txt", b"no metadata here".to_vec()),
    ];
    for (path, content) in files {
        upload_small(app, u, small_request(path, &content))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        tree::set_mtime(&u.root, path, OLD_MTIME);
    }
}

/// Organizes `inbox` into `sorted` with `template`; returns the report.
async fn organize_with(app: &TestApp, u: &User, template: &str) -> pb::OperationReport {
    let op = create(
        app,
        u,
        pb::Operation {
            destination_path: "sorted".into(),
            layout_template: template.into(),
            ..organize("inbox")
        },
    )
    .await;
    let done = wait_for(
        app,
        u,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    crate::reports::get_report(app, u, &op.name.replace("operations/", "reports/")).await
}

/// The files under `folder` of the user's root, relative, sorted.
fn listing(u: &User, folder: &str) -> Vec<String> {
    let base = u.root.join(folder);
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(&base).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_tokens_place_files_by_capture_date_and_the_report_counts_the_sources() {
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let alice = user(&app, "taken-dates").await;
    upload_mixed(&app, &alice).await;

    let report = organize_with(
        &app,
        &alice,
        "{taken_year}/{taken_month}/{taken_date} {name}",
    )
    .await;
    assert_eq!(
        listing(&alice, "sorted"),
        [
            "2001/09/2001-09-09 notes.txt",
            "2001/09/2001-09-09 plain.jpg",
            "2001/09/2001-09-09 zeros.jpg",
            "2018/12/2018-12-31 party.JPG",
            "2019/07/2019-07-14 beach.jpg",
            "2021/03/2021-03-02 clip.mp4",
        ]
    );
    assert!(listing(&alice, "inbox").is_empty());
    assert_eq!(
        (
            report.taken_dates_from_metadata,
            report.taken_dates_from_mtime
        ),
        (3, 3),
        "{report:?}"
    );

    // REST through Envoy, and the HTML export, show the same counts.
    let rest: Value = reqwest::Client::new()
        .get(envoy.url(&format!("/api/v1/{}", report.name)))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["taken_dates_from_metadata"], "3", "{rest}");
    assert_eq!(rest["taken_dates_from_mtime"], "3", "{rest}");
    let (chunks, _) = crate::reports::export(&app, &alice, &report.name, ReportFormat::Html).await;
    let html = String::from_utf8(crate::reports::concat(&chunks)).unwrap();
    assert!(
        html.contains("<dt>Dates from metadata</dt><dd>3</dd>")
            && html.contains("<dt>Dates from modification time</dt><dd>3</dd>"),
        "{html}"
    );

    // The same files with a template without taken tokens: nothing is read
    // for dates and nothing counted; {year}/{month} is the modification time.
    let bob = user(&app, "taken-dates-default").await;
    upload_mixed(&app, &bob).await;
    let report = organize_with(&app, &bob, "{year}/{month}/{name}").await;
    assert_eq!(
        listing(&bob, "sorted"),
        [
            "2001/09/beach.jpg",
            "2001/09/clip.mp4",
            "2001/09/notes.txt",
            "2001/09/party.JPG",
            "2001/09/plain.jpg",
            "2001/09/zeros.jpg",
        ]
    );
    assert_eq!(
        (
            report.taken_dates_from_metadata,
            report.taken_dates_from_mtime
        ),
        (0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_taken_token_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "taken-unknown").await;
    std::fs::create_dir_all(alice.root.join("inbox")).unwrap();
    let status = app
        .operations()
        .create_operation(bearer(
            pb::CreateOperationRequest {
                operation: Some(pb::Operation {
                    layout_template: "{taken_week}/{name}".into(),
                    ..organize("inbox")
                }),
                request_id: String::new(),
            },
            &alice.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(
        crate::common::bad_field(&status),
        "operation.layout_template"
    );
    assert!(status.message().contains("{taken_week}"), "{status:?}");
    assert!(status.message().contains("{taken_date}"), "{status:?}");
}

/// A `capture_time` range: from `start` (a day) to `end` (exclusive).
fn capture_between(start: &str, end: &str) -> pb::rule_condition::Condition {
    let day = |d: &str| {
        let t = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        Some(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        })
    };
    pb::rule_condition::Condition::CaptureTime(pb::TimeRange {
        start_time: day(start),
        end_time: day(end),
    })
}

/// Rules on the capture date: PreviewRules says which photo was taken when
/// (or that a file had no date and its modification date stood in), the
/// organize applies the same decisions — including a rule's own
/// `{taken_year}` with an operation template that has no taken token — and
/// bad ranges are refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_on_the_capture_date_preview_and_organize_by_it() {
    use crate::rules::{create_rule, move_to, preview, rule};
    use pb::rule_condition::Condition;

    let app = TestApp::spawn().await;
    let alice = user(&app, "taken-rules").await;
    upload_mixed(&app, &alice).await;
    let taken_2019 = rule(
        "taken in 2019",
        vec![capture_between("2019-01-01", "2020-01-01")],
        move_to("{taken_year}/{name}"),
    );
    let ancient = rule(
        "taken over ten years ago",
        vec![Condition::CaptureAge(pb::AgeRange {
            older_than_days: Some(3650),
            newer_than_days: None,
        })],
        move_to("old/{name}"),
    );

    let shown = preview(
        &app,
        &alice,
        pb::PreviewRulesRequest {
            folder: "inbox".into(),
            rules: vec![taken_2019.clone(), ancient.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let entry = |p: &str| {
        shown
            .entries
            .iter()
            .find(|e| e.path == p)
            .unwrap_or_else(|| panic!("{p} not in {shown:?}"))
    };
    let beach = entry("inbox/beach.jpg");
    assert_eq!(beach.rule, "rules/-0", "{beach:?}");
    assert!(
        beach.explanation.contains("capture_time")
            && beach.explanation.contains("taken on 2019-07-14"),
        "{beach:?}"
    );
    assert_eq!(beach.destination, "inbox/2019/beach.jpg");
    // No date in the file: its modification date (2001) stands in.
    let plain = entry("inbox/plain.jpg");
    assert_eq!(plain.rule, "rules/-1", "{plain:?}");
    assert!(
        plain
            .explanation
            .contains("no capture date: modified on 2001-09-09"),
        "{plain:?}"
    );
    assert_eq!(entry("inbox/notes.txt").rule, "rules/-1");
    // Taken in 2018 and 2021: neither in 2019 nor ten years ago, though
    // their modification time (2001) would be.
    assert_eq!(entry("inbox/party.JPG").rule, "");
    assert_eq!(entry("inbox/clip.mp4").rule, "");
    assert_eq!(shown.matched_count, 4);

    for r in [taken_2019, ancient] {
        create_rule(&app, &alice, r).await.unwrap();
    }
    organize_with(&app, &alice, "{name}").await;
    assert_eq!(
        listing(&alice, "sorted"),
        [
            "2019/beach.jpg",
            "clip.mp4",
            "old/notes.txt",
            "old/plain.jpg",
            "old/zeros.jpg",
            "party.JPG",
        ]
    );

    for (condition, field) in [
        (
            capture_between("2020-01-01", "2019-01-01"),
            "rule.conditions[0].capture_time",
        ),
        (
            Condition::CaptureTime(pb::TimeRange::default()),
            "rule.conditions[0].capture_time",
        ),
        (
            Condition::CaptureAge(pb::AgeRange {
                older_than_days: Some(-1),
                newer_than_days: None,
            }),
            "rule.conditions[0].capture_age",
        ),
        (
            Condition::CaptureTime(pb::TimeRange {
                start_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                end_time: None,
            }),
            "rule.conditions[0].capture_time.start_time",
        ),
    ] {
        let status = create_rule(
            &app,
            &alice,
            rule("bad", vec![condition], move_to("x/{name}")),
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert_eq!(crate::common::bad_field(&status), field, "{status:?}");
    }
}
