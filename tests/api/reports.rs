//! ReportService on real files, Postgres, Envoy, Python's csv module and
//! headless Chromium.
//!
//! The known tree (`build_tree`) organizes into four categories with three
//! duplicate groups (three identical photos, two identical PDFs, two tiny
//! text files) and two entries the scan skips (a name with a newline, a
//! symbolic link); every expected number below follows from it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use chrono::SecondsFormat;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use fileorganizer::{
    db::models::FileRecord,
    domain::{self, JournalRow, OperationKind, RecordStatus},
    pb::{
        fileorganizer::v1::{
            self as pb, OperationState, ReportFormat, report_service_client::ReportServiceClient,
        },
        google::api::HttpBody,
    },
};
use reqwest::StatusCode;
use serde_json::Value;
use tonic::{Code, metadata::MetadataMap, transport::Channel};

use crate::{
    common::{
        Options, TestApp, assert_code, bad_field, bearer, envoy::Envoy, python_client, repo_root,
        tree,
    },
    operations::{User, create, organize, records, user, wait_for},
};

const PHOTO: &[u8] = &[b'J'; 3000];
const PDF: &[u8] = &[b'P'; 2500];
const SONG: &[u8] = &[b'M'; 5000];
const ZIP: &[u8] = &[b'Z'; 8000];
const TINY: &[u8] = b"tiny";
/// A name with a comma and double quotes (organized like any file).
const NOTES: &str = "inbox/notes, \"draft\".txt";
/// A name that is markup: it must show as text in the HTML export.
const MARKUP: &str = "inbox/<img src=x onerror=\"window.__pwned=1\">.txt";
/// A name with a newline: the scan records it as skipped (not a usable path).
const NEWLINE: &str = "inbox/line\nbreak.txt";

fn build_tree(root: &Path) {
    tree::write(root, "inbox/photos/beach.jpg", PHOTO);
    tree::write(root, "inbox/beach copy.jpg", PHOTO);
    tree::write(root, "inbox/old/beach-2.jpg", PHOTO);
    tree::write(root, "inbox/report.pdf", PDF);
    tree::write(root, "inbox/backup/report.pdf", PDF);
    tree::write(root, "inbox/song.mp3", SONG);
    tree::write(root, "inbox/archive.zip", ZIP);
    tree::write(root, NOTES, b"plain notes 1");
    tree::write(root, "inbox/tiny.txt", TINY);
    tree::write(root, MARKUP, TINY);
    tree::write(root, NEWLINE, b"newline name");
    std::os::unix::fs::symlink("photos/beach.jpg", root.join("inbox/shortcut.jpg")).unwrap();
    // The keepers are the oldest files of their groups.
    for (path, secs) in [
        ("inbox/photos/beach.jpg", 1_000_000_000),
        ("inbox/beach copy.jpg", 1_600_000_000),
        ("inbox/old/beach-2.jpg", 1_600_000_100),
        ("inbox/report.pdf", 1_100_000_000),
        ("inbox/backup/report.pdf", 1_600_000_000),
        ("inbox/tiny.txt", 1_200_000_000),
        (MARKUP, 1_600_000_000),
    ] {
        tree::set_mtime(root, path, secs);
    }
}

fn reports(app: &TestApp) -> ReportServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy();
    ReportServiceClient::new(channel)
}

/// A user whose known tree has been organized; returns the report name.
async fn organized(app: &TestApp, label: &str) -> (User, String) {
    let alice = user(app, label).await;
    build_tree(&alice.root);
    let op = create(app, &alice, organize("inbox")).await;
    let done = wait_for(
        app,
        &alice,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    let report = op.name.replace("operations/", "reports/");
    (alice, report)
}

pub(crate) async fn get_report(app: &TestApp, u: &User, name: &str) -> pb::OperationReport {
    reports(app)
        .get_operation_report(bearer(
            pb::GetOperationReportRequest { name: name.into() },
            &u.token,
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn list_groups(
    app: &TestApp,
    u: &User,
    parent: &str,
    page_size: i32,
    page_token: &str,
    min_size_bytes: i64,
) -> Result<pb::ListDuplicateGroupsResponse, tonic::Status> {
    reports(app)
        .list_duplicate_groups(bearer(
            pb::ListDuplicateGroupsRequest {
                parent: parent.into(),
                page_size,
                page_token: page_token.into(),
                min_size_bytes,
            },
            &u.token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Every group of a listing, following page tokens.
async fn all_groups(
    app: &TestApp,
    u: &User,
    parent: &str,
    page_size: i32,
    min_size_bytes: i64,
) -> (Vec<pb::DuplicateGroup>, usize) {
    let (mut groups, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let page = list_groups(app, u, parent, page_size, &token, min_size_bytes)
            .await
            .unwrap();
        pages += 1;
        assert!(page.duplicate_groups.len() <= page_size as usize);
        groups.extend(page.duplicate_groups);
        if page.next_page_token.is_empty() {
            return (groups, pages);
        }
        token = page.next_page_token;
    }
}

/// The chunks and response metadata of a gRPC export.
pub(crate) async fn export(
    app: &TestApp,
    u: &User,
    name: &str,
    format: ReportFormat,
) -> (Vec<HttpBody>, MetadataMap) {
    let response = reports(app)
        .export_report(bearer(
            pb::ExportReportRequest {
                name: name.into(),
                format: format as i32,
            },
            &u.token,
        ))
        .await
        .unwrap();
    let metadata = response.metadata().clone();
    let mut stream = response.into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push(chunk);
    }
    (chunks, metadata)
}

pub(crate) fn concat(chunks: &[HttpBody]) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.data.iter().copied()).collect()
}

/// `data/test-artifacts/` in the repository (gitignored with `data/`).
fn artifacts() -> PathBuf {
    let dir = repo_root().join("data/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Where each record's file is now (the keeper path a duplicate points to).
fn current_path(r: &FileRecord) -> String {
    match (&r.new_path, r.status.as_str()) {
        (Some(new), "completed" | "duplicate") => new.clone(),
        _ => r.original_path.clone(),
    }
}

fn by_original<'a>(records: &'a [FileRecord], path: &str) -> &'a FileRecord {
    records
        .iter()
        .find(|r| r.original_path == path)
        .unwrap_or_else(|| panic!("no record for {path:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_totals_categories_and_largest_files_match_the_tree() {
    let app = TestApp::spawn().await;
    let (alice, name) = organized(&app, "report").await;
    let report = get_report(&app, &alice, &name).await;
    let operation = name.replace("reports/", "operations/");

    assert_eq!(report.name, name);
    assert_eq!(report.operation, operation);
    assert_eq!(report.kind, pb::OperationKind::Organize as i32);
    assert_eq!(report.state, OperationState::Succeeded as i32);
    assert!(!report.dry_run);
    let (start, end) = (report.start_time.unwrap(), report.end_time.unwrap());
    let duration = report.duration.unwrap();
    let nanos = |t: &prost_types::Timestamp| t.seconds as i128 * 1_000_000_000 + t.nanos as i128;
    assert_eq!(
        nanos(&end) - nanos(&start),
        duration.seconds as i128 * 1_000_000_000 + duration.nanos as i128
    );

    let totals = report.totals.unwrap();
    assert_eq!(totals.files_scanned, 10);
    assert_eq!(totals.bytes_scanned, 27_021);
    assert_eq!(totals.files_planned, 10);
    assert_eq!(totals.files_moved, 10);
    assert_eq!(totals.bytes_moved, 27_021);
    assert_eq!(totals.files_skipped, 2, "the newline name and the symlink");
    assert_eq!(totals.files_failed, 0);
    assert_eq!(totals.duplicates_found, 4);
    assert_eq!(totals.reclaimable_bytes, 6000 + 2500 + 4);

    let categories: Vec<(&str, i64, i64)> = report
        .categories
        .iter()
        .map(|c| (c.category.as_str(), c.file_count, c.size_bytes))
        .collect();
    assert_eq!(
        categories,
        [
            ("Images", 3, 9000),
            ("Archives", 1, 8000),
            ("Documents", 5, 5021),
            ("Audio", 1, 5000),
        ]
    );
    for c in &report.categories {
        let expected = 100.0 * c.size_bytes as f64 / 27_021.0;
        assert!((c.percentage - expected).abs() < 1e-9, "{c:?}");
    }
    let share: f64 = report.categories.iter().map(|c| c.percentage).sum();
    assert!((share - 100.0).abs() < 1e-9);
    assert_eq!(
        report.top_categories,
        ["Images", "Archives", "Documents", "Audio"]
    );

    // The ten largest are every scanned file here, by size then journal order.
    let sizes: Vec<i64> = report.largest_files.iter().map(|f| f.size_bytes).collect();
    assert_eq!(sizes, [8000, 5000, 3000, 3000, 3000, 2500, 2500, 13, 4, 4]);
    let largest = &report.largest_files[0];
    assert_eq!(largest.original_path, "inbox/archive.zip");
    assert_eq!(largest.new_path, "inbox/Archives/archive.zip");
    assert_eq!(largest.category, "Archives");
    assert_eq!(largest.status, pb::FileRecordStatus::Completed as i32);
    assert!(largest.name.starts_with(&format!("{operation}/files/")));
    let photos = &report.largest_files[2..5];
    assert!(photos.windows(2).all(|w| w[0].seq < w[1].seq));
    let records = records(&app, &operation).await;
    let keeper = by_original(&records, "inbox/photos/beach.jpg");
    for photo in photos {
        if photo.original_path == "inbox/photos/beach.jpg" {
            assert!(photo.duplicate_of.is_empty());
        } else {
            assert_eq!(
                photo.duplicate_of,
                format!("{operation}/files/{}", keeper.seq)
            );
            assert_eq!(photo.duplicate_of_path, "inbox/Images/beach.jpg");
        }
        assert_eq!(photo.content_hash, blake3::hash(PHOTO).to_hex().as_str());
    }

    assert_eq!(report.duplicate_group_count, 3);
    assert_eq!(report.duplicate_file_count, 4);
    assert_eq!(report.reclaimable_bytes, 8504);
    assert!(report.compute_time.is_some());

    // The category breakdown covers exactly the scanned files.
    let counted: i64 = report.categories.iter().map(|c| c.file_count).sum();
    let bytes: i64 = report.categories.iter().map(|c| c.size_bytes).sum();
    assert_eq!(
        (counted, bytes),
        (totals.files_scanned, totals.bytes_scanned)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_groups_are_exact_and_sorted_with_the_keeper_first() {
    let app = TestApp::spawn().await;
    let (alice, name) = organized(&app, "groups").await;
    let operation = name.replace("reports/", "operations/");
    let records = records(&app, &operation).await;

    let page = list_groups(&app, &alice, &name, 0, "", 0).await.unwrap();
    assert_eq!(page.total_size, 3);
    assert!(page.next_page_token.is_empty());
    let groups = page.duplicate_groups;
    let summary: Vec<(String, i64, i64, i64, &str)> = groups
        .iter()
        .map(|g| {
            (
                g.content_hash.clone(),
                g.size_bytes,
                g.file_count,
                g.reclaimable_bytes,
                g.kept_path.as_str(),
            )
        })
        .collect();
    let hex = |b: &[u8]| blake3::hash(b).to_hex().to_string();
    assert_eq!(
        summary,
        [
            (hex(PHOTO), 3000, 3, 6000, "inbox/Images/beach.jpg"),
            (
                hex(PDF),
                2500,
                2,
                2500,
                current_path(by_original(&records, "inbox/report.pdf")).as_str()
            ),
            (hex(TINY), 4, 2, 4, "inbox/Documents/tiny.txt"),
        ]
    );

    // Members: the kept one first, then by current path; every record that
    // points at the keeper, and nothing else.
    let photos: Vec<(&str, &str, bool)> = groups[0]
        .files
        .iter()
        .map(|f| (f.original_path.as_str(), f.path.as_str(), f.kept))
        .collect();
    assert_eq!(
        photos,
        [
            ("inbox/photos/beach.jpg", "inbox/Images/beach.jpg", true),
            ("inbox/beach copy.jpg", "inbox/Images/beach copy.jpg", false),
            ("inbox/old/beach-2.jpg", "inbox/Images/beach-2.jpg", false),
        ]
    );
    for group in &groups {
        let keeper = group.files.iter().find(|f| f.kept).unwrap();
        assert_eq!(keeper.path, group.kept_path);
        assert_eq!(group.files.iter().filter(|f| f.kept).count(), 1);
        let keeper_record = by_original(&records, &keeper.original_path);
        assert_eq!(
            keeper.file_record,
            format!("{operation}/files/{}", keeper_record.seq)
        );
        assert_eq!(keeper_record.duplicate_of, None);
        let pointing: Vec<i64> = records
            .iter()
            .filter(|r| r.duplicate_of == Some(keeper_record.seq))
            .map(|r| r.seq)
            .collect();
        assert_eq!(pointing.len() as i64, group.file_count - 1);
        for f in group.files.iter().filter(|f| !f.kept) {
            let r = by_original(&records, &f.original_path);
            assert_eq!(r.duplicate_of, Some(keeper_record.seq), "{f:?}");
            assert_eq!(f.path, current_path(r));
            assert!(f.modify_time.is_some());
        }
    }
    let pdf_keeper = groups[1].files.iter().find(|f| f.kept).unwrap();
    assert_eq!(pdf_keeper.original_path, "inbox/report.pdf");
    let tiny_keeper = groups[2].files.iter().find(|f| f.kept).unwrap();
    assert_eq!(tiny_keeper.original_path, "inbox/tiny.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_groups_filter_by_size_and_page_with_tokens_bound_to_their_listing() {
    let app = TestApp::spawn().await;
    let (alice, name) = organized(&app, "groups").await;
    let groups = list_groups(&app, &alice, &name, 0, "", 0)
        .await
        .unwrap()
        .duplicate_groups;
    assert_eq!(groups.len(), 3);

    // The minimum size filter.
    for (min, expected) in [(5, 2), (2500, 2), (2501, 1), (3000, 1), (3001, 0)] {
        let page = list_groups(&app, &alice, &name, 0, "", min).await.unwrap();
        assert_eq!(page.duplicate_groups.len(), expected, "min {min}");
        assert_eq!(page.total_size, expected as i64, "min {min}");
        assert!(page.duplicate_groups.iter().all(|g| g.size_bytes >= min));
    }

    // Pages of one visit every group once, in the same order.
    let (paged, pages) = all_groups(&app, &alice, &name, 1, 0).await;
    assert_eq!(pages, 3);
    assert_eq!(paged, groups, "pages of one");
    let (paged, pages) = all_groups(&app, &alice, &name, 2, 5).await;
    assert_eq!((paged.len(), pages), (2, 1));

    // A token is bound to its listing and is opaque.
    let first = list_groups(&app, &alice, &name, 1, "", 0).await.unwrap();
    for (token, min) in [(first.next_page_token.as_str(), 5), ("not-a-token", 0)] {
        let status = assert_code(
            list_groups(&app, &alice, &name, 1, token, min).await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), "page_token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_round_trips_through_python_csv() {
    let app = TestApp::spawn().await;
    let (alice, name) = organized(&app, "csv").await;
    let operation = name.replace("reports/", "operations/");
    let (chunks, metadata) = export(&app, &alice, &name, ReportFormat::Csv).await;
    assert_eq!(chunks[0].content_type, "text/csv; charset=utf-8");
    assert!(chunks[1..].iter().all(|c| c.content_type.is_empty()));
    let id = operation.trim_start_matches("operations/");
    assert_eq!(
        metadata.get("content-disposition").unwrap(),
        format!("attachment; filename=\"report-{id}.csv\"").as_str()
    );
    let csv = concat(&chunks);
    assert!(csv.ends_with(b"\r\n"));
    let path = artifacts().join("report-export.csv");
    std::fs::write(&path, &csv).unwrap();

    let parsed: Vec<BTreeMap<String, String>> =
        python_client("csv_records.py", vec![path.display().to_string()]).await;

    let records = records(&app, &operation).await;
    let current: BTreeMap<i64, String> = records.iter().map(|r| (r.seq, current_path(r))).collect();
    let expected: Vec<BTreeMap<String, String>> = records
        .iter()
        .map(|r| {
            BTreeMap::from([
                ("seq".to_string(), r.seq.to_string()),
                ("original_path".into(), r.original_path.clone()),
                ("new_path".into(), r.new_path.clone().unwrap_or_default()),
                ("status".into(), r.status.to_string()),
                ("category".into(), r.category.clone()),
                ("size_bytes".into(), r.size_bytes.to_string()),
                (
                    "modify_time".into(),
                    r.modified_at
                        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                        .unwrap_or_default(),
                ),
                (
                    "content_hash".into(),
                    r.content_hash
                        .as_deref()
                        .map(hex::encode)
                        .unwrap_or_default(),
                ),
                (
                    "duplicate_of_path".into(),
                    r.duplicate_of
                        .map(|seq| current[&seq].clone())
                        .unwrap_or_default(),
                ),
                ("reason".into(), r.reason.clone().unwrap_or_default()),
                // No rules in this test: no rule decided any file.
                ("rule".into(), String::new()),
                ("rule_version".into(), String::new()),
            ])
        })
        .collect();
    assert_eq!(parsed, expected);
    // The awkward names made the trip intact.
    let originals: Vec<&str> = parsed.iter().map(|r| r["original_path"].as_str()).collect();
    for awkward in [NOTES, MARKUP, NEWLINE] {
        assert!(originals.contains(&awkward), "{awkward:?} missing");
    }
    let notes = parsed.iter().find(|r| r["original_path"] == NOTES).unwrap();
    assert_eq!(notes["new_path"], "inbox/Documents/notes, \"draft\".txt");
    assert_eq!(notes["status"], "completed");
    let newline = parsed
        .iter()
        .find(|r| r["original_path"] == NEWLINE)
        .unwrap();
    assert_eq!(newline["status"], "skipped");
    assert!(
        newline["reason"].contains("control characters"),
        "{newline:?}"
    );

    // The JSON export parses and holds the same records and groups.
    let (chunks, metadata) = export(&app, &alice, &name, ReportFormat::Json).await;
    assert_eq!(chunks[0].content_type, "application/json");
    assert_eq!(
        metadata.get("content-disposition").unwrap(),
        format!("attachment; filename=\"report-{id}.json\"").as_str()
    );
    let json: Value = serde_json::from_slice(&concat(&chunks)).unwrap();
    let exported = json["file_records"].as_array().unwrap();
    assert_eq!(exported.len(), records.len());
    for (e, r) in exported.iter().zip(&records) {
        assert_eq!(e["seq"], r.seq.to_string());
        assert_eq!(e["original_path"], r.original_path.as_str());
        assert_eq!(e["name"], format!("{operation}/files/{}", r.seq));
        assert_eq!(
            e["status"],
            format!("FILE_RECORD_STATUS_{}", r.status.as_str().to_uppercase())
        );
    }
    assert_eq!(json["duplicate_groups"].as_array().unwrap().len(), 3);
    assert_eq!(json["report"]["name"], name.as_str());
    assert_eq!(json["report"]["duplicate_group_count"], "3");
}

/// A known tree organized, served through a real Envoy.
struct RestReport {
    app: TestApp,
    envoy: Envoy,
    http: reqwest::Client,
    alice: User,
    /// `reports/<id>`.
    name: String,
}

impl RestReport {
    async fn new(label: &str) -> RestReport {
        let app = TestApp::spawn().await;
        let envoy = Envoy::start(app.addr.port()).await;
        let (alice, name) = organized(&app, label).await;
        RestReport {
            app,
            envoy,
            http: reqwest::Client::new(),
            alice,
            name,
        }
    }

    /// GET `path` with `token`.
    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.envoy.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// GET `path` as Alice, as JSON.
    async fn json(&self, path: &str) -> Value {
        self.get(path, &self.alice.token)
            .await
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_serves_the_report_and_its_groups_as_json_as_the_json_export_says() {
    let r = RestReport::new("rest-report").await;
    let name = &r.name;
    let report = r.json(&format!("/api/v1/{name}")).await;
    assert_eq!(report["totals"]["files_moved"], "10", "{report}");
    assert_eq!(report["categories"][0]["category"], "Images", "{report}");
    let groups = r
        .json(&format!("/api/v1/{name}/duplicate-groups?page_size=1000"))
        .await;
    assert_eq!(groups["total_size"], "3", "{groups}");
    assert_eq!(groups["next_page_token"], "", "{groups}");
    for path in [
        format!("/api/v1/{name}:export?format=REPORT_FORMAT_JSON"),
        format!("/api/v1/{name}/export?format=REPORT_FORMAT_JSON"),
    ] {
        let exported = r.json(&path).await;
        let without_time = |v: &Value| {
            let mut v = v.clone();
            v.as_object_mut().unwrap().remove("compute_time");
            v
        };
        assert_eq!(
            without_time(&exported["report"]),
            without_time(&report),
            "{path}"
        );
        assert_eq!(
            exported["duplicate_groups"], groups["duplicate_groups"],
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_exports_every_format_at_both_routes_as_grpc_does() {
    let r = RestReport::new("rest-export").await;
    let (app, alice, name) = (&r.app, &r.alice, &r.name);
    let id = name.trim_start_matches("reports/").to_string();
    for (format, content_type, extension) in [
        ("REPORT_FORMAT_CSV", "text/csv; charset=utf-8", "csv"),
        ("REPORT_FORMAT_JSON", "application/json", "json"),
        ("REPORT_FORMAT_HTML", "text/html; charset=utf-8", "html"),
    ] {
        for path in [
            format!("/api/v1/{name}:export?format={format}"),
            format!("/api/v1/{name}/export?format={format}"),
        ] {
            let response = r.get(&path, &alice.token).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers().clone();
            assert_eq!(headers["content-type"], content_type, "{path}");
            assert_eq!(
                headers["content-disposition"],
                format!("attachment; filename=\"report-{id}.{extension}\"").as_str(),
                "{path}"
            );
            let body = response.bytes().await.unwrap();
            let grpc_format = ReportFormat::from_str_name(format).unwrap();
            let (chunks, _) = export(app, alice, name, grpc_format).await;
            let grpc = concat(&chunks);
            match format {
                "REPORT_FORMAT_CSV" => assert_eq!(body.as_ref(), grpc.as_slice(), "{path}"),
                "REPORT_FORMAT_JSON" => {
                    let (mut rest, mut direct): (Value, Value) = (
                        serde_json::from_slice(&body).unwrap(),
                        serde_json::from_slice(&grpc).unwrap(),
                    );
                    for v in [&mut rest, &mut direct] {
                        v["report"].as_object_mut().unwrap().remove("compute_time");
                    }
                    assert_eq!(rest, direct, "{path}");
                }
                _ => {
                    // The same page but for the time it was computed.
                    let untimed = |b: &[u8]| {
                        let text = String::from_utf8(b.to_vec()).unwrap();
                        let start = text.find(" · computed ").unwrap();
                        let end = start + text[start..].find("</p>").unwrap();
                        format!("{}{}", &text[..start], &text[end..])
                    };
                    assert_eq!(untimed(&body), untimed(&grpc), "{path}");
                }
            }
        }
    }
    // Without a format: CSV.
    let default = r.get(&format!("/api/v1/{name}:export"), &alice.token).await;
    assert_eq!(default.headers()["content-type"], "text/csv; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_hides_other_users_reports_like_missing_ones_and_names_bad_fields() {
    let r = RestReport::new("rest-hidden").await;
    let (alice, name) = (&r.alice, &r.name);
    // Another user's report, and a report that does not exist: the same 404.
    let mallory = r
        .app
        .register(&TestApp::email("mallory"))
        .await
        .access_token;
    let missing = format!("reports/{}", uuid::Uuid::now_v7());
    for (report_name, token) in [(name, &mallory), (&missing, &alice.token)] {
        for path in [
            format!("/api/v1/{report_name}"),
            format!("/api/v1/{report_name}/duplicate-groups"),
            format!("/api/v1/{report_name}:export?format=REPORT_FORMAT_CSV"),
        ] {
            let response = r.get(&path, token).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json"),
                "{path}"
            );
            assert!(
                !response.headers().contains_key("content-disposition"),
                "{path}"
            );
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["code"], 5, "{path}: {error}");
            assert_eq!(
                error["message"],
                format!("{report_name} not found"),
                "{path}"
            );
            assert_eq!(error["details"][0]["reason"], "NOT_FOUND", "{path}");
        }
    }
    // Bad input: 400 naming the field.
    let bad = r
        .get(
            &format!("/api/v1/{name}/duplicate-groups?min_size_bytes=-1"),
            &alice.token,
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad: Value = bad.json().await.unwrap();
    let violation = bad["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap();
    assert_eq!(violation["field_violations"][0]["field"], "min_size_bytes");
}

/// What headless Chromium shows of an HTML export (see
/// tests/clients/html_report_check.mjs); saves a full-page screenshot.
async fn chromium_sees(html: &Path, screenshot: &Path, csp: Option<String>) -> Value {
    let script = repo_root().join("tests/clients/html_report_check.mjs");
    let mut command = Command::new("node");
    command
        .arg(script)
        .arg(html)
        .arg(screenshot)
        .args(csp)
        .current_dir(repo_root());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_export_draws_the_category_chart_in_chromium() {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: run scripts/setup-tools.sh (it installs Debian's chromium)"
    );
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let (alice, name) = organized(&app, "html").await;
    let id = name.trim_start_matches("reports/").to_string();
    let report = get_report(&app, &alice, &name).await;

    // Downloaded over REST, with the headers the sidecar really sends.
    let response = reqwest::Client::new()
        .get(envoy.url(&format!("/api/v1/{name}:export?format=REPORT_FORMAT_HTML")))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let html = response.bytes().await.unwrap();
    let html_path = artifacts().join("report-export.html");
    let screenshot = artifacts().join("report-export.png");
    std::fs::write(&html_path, &html).unwrap();
    let _ = std::fs::remove_file(&screenshot);

    let seen = chromium_sees(&html_path, &screenshot, Some(csp)).await;

    // One bar per category, in the report's order, drawn with a width that
    // follows the bytes (the largest the widest).
    let bars = seen["bars"].as_array().unwrap();
    assert_eq!(bars.len(), report.categories.len(), "{seen}");
    for (bar, category) in bars.iter().zip(&report.categories) {
        assert_eq!(bar["category"], category.category.as_str());
        assert_eq!(bar["bytes"], category.size_bytes);
        assert!(bar["width"].as_f64().unwrap() > 0.0, "{bar}");
        assert_ne!(bar["fill"], "none");
    }
    let widths: Vec<f64> = bars.iter().map(|b| b["width"].as_f64().unwrap()).collect();
    assert!(widths.windows(2).all(|w| w[0] >= w[1]), "{widths:?}");
    let ratio = widths[1] / widths[0];
    assert!((ratio - 8000.0 / 9000.0).abs() < 0.01, "{widths:?}");
    assert!(seen["chart"]["width"].as_f64().unwrap() > 100.0);
    assert!(seen["chart"]["height"].as_f64().unwrap() > 50.0);

    // The duplicate groups are listed; a file name that is markup is text.
    assert_eq!(seen["groups"], 3);
    let kept: Vec<&str> = seen["keptFiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(kept[0], "inbox/Images/beach.jpg (kept)");
    let text = seen["duplicatesText"].as_str().unwrap();
    assert!(
        text.contains("inbox/Documents/<img src=x onerror=\"window.__pwned=1\">.txt"),
        "{text}"
    );
    assert_eq!(seen["injectedImages"], 0);
    assert_eq!(seen["scripts"], 0);
    assert_eq!(seen["pwned"], false);
    assert_eq!(seen["dialogs"].as_array().unwrap().len(), 0);
    assert_eq!(seen["externalRequests"], 0, "the page is self-contained");
    assert!(seen["title"].as_str().unwrap().contains(&id));

    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000);

    // Opened as a downloaded file (no CSP header), the page's own styles apply too, under the
    // policy of its own <meta> tag (first in <head>): nothing is refused while it renders, and
    // an <img> smuggled in afterwards is refused by it without a request (issue 18 item 11c).
    let styled = artifacts().join("report-export-styled.png");
    let seen = chromium_sees(&html_path, &styled, None).await;
    assert_eq!(
        seen["bars"].as_array().unwrap().len(),
        report.categories.len()
    );
    assert_eq!(seen["pwned"], false);
    assert!(std::fs::metadata(&styled).unwrap().len() > 5_000);
    let head_first = seen["headFirst"].as_str().unwrap_or_default();
    assert!(
        head_first.starts_with(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"
        ),
        "{seen}"
    );
    assert_eq!(
        seen["thBackground"], "rgb(246, 248, 250)",
        "the style block was refused: {seen}"
    );
    assert_eq!(seen["cspViolations"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["consoleErrors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["probe"]["blocked"], true, "{seen}");
    assert_eq!(seen["probe"]["directive"], "img-src", "{seen}");
    assert_eq!(seen["probe"]["requested"], false, "{seen}");
    assert_eq!(seen["externalRequests"], 0, "{seen}");
}

async fn usage(app: &TestApp, u: &User) -> pb::UsageSummary {
    reports(app)
        .get_usage_summary(bearer(pb::GetUsageSummaryRequest {}, &u.token))
        .await
        .unwrap()
        .into_inner()
}

/// The known tree organized (returns its report name), then a dry run that
/// finds one more duplicate, and 780 bytes of files (and a symlink) in the
/// trash.
async fn organized_with_a_dry_run_and_trash(app: &TestApp) -> (User, String) {
    let (alice, name) = organized(app, "usage").await;
    // A dry run too: planned, nothing moved, its duplicates found all the same.
    tree::write(&alice.root, "later/a.txt", b"same");
    tree::write(&alice.root, "later/b.txt", b"same");
    let dry = create(
        app,
        &alice,
        pb::Operation {
            dry_run: true,
            ..organize("later")
        },
    )
    .await;
    wait_for(app, &alice, &dry.name, &[OperationState::Planned]).await;
    tree::write(&alice.root, ".trash/old/thing.bin", &[0u8; 777]);
    tree::write(&alice.root, ".trash/x.txt", b"abc");
    std::os::unix::fs::symlink("/etc/passwd", alice.root.join(".trash/link")).unwrap();
    (alice, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_summary_counts_operations_storage_and_trash() {
    let app = TestApp::spawn().await;
    let (alice, _) = organized_with_a_dry_run_and_trash(&app).await;
    let summary = usage(&app, &alice).await;
    assert_eq!(summary.operation_count, 2);
    let states: Vec<(i32, i64)> = summary
        .operations_by_state
        .iter()
        .map(|s| (s.state, s.count))
        .collect();
    assert_eq!(
        states,
        [
            (OperationState::Planned as i32, 1),
            (OperationState::Succeeded as i32, 1)
        ]
    );
    assert_eq!(summary.files_organized, 10);
    assert_eq!(summary.bytes_organized, 27_021);
    assert_eq!(summary.duplicates_found, 4 + 1);
    assert_eq!(summary.reclaimable_bytes, 8504 + 4);
    assert_eq!(
        summary.trash_bytes, 780,
        "files only; the symlink is not followed"
    );
    assert_eq!(summary.storage_quota_bytes, 5 * 1024 * 1024 * 1024);
    assert!(summary.compute_time.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_summary_compares_storage_used_with_the_quota() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "usage").await;
    // Storage used versus quota, from the users table.
    {
        use fileorganizer::schema::users;
        let mut conn = app.db().await;
        let id = uuid::Uuid::parse_str(alice.root.file_name().unwrap().to_str().unwrap()).unwrap();
        diesel::update(users::table.find(id))
            .set(users::storage_used_bytes.eq(1024 * 1024 * 1024))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let summary = usage(&app, &alice).await;
    assert_eq!(summary.storage_used_bytes, 1024 * 1024 * 1024);
    assert!((summary.storage_used_percent - 20.0).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undone_files_leave_the_usage_and_the_reports_show_them_back_in_place() {
    let app = TestApp::spawn().await;
    let (alice, name) = organized_with_a_dry_run_and_trash(&app).await;
    let undo = app
        .operations()
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: name.replace("reports/", "operations/"),
                request_id: String::new(),
            },
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let undone = wait_for(
        &app,
        &alice,
        &undo.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(undone.state, OperationState::Succeeded as i32);
    let summary = usage(&app, &alice).await;
    assert_eq!(summary.operation_count, 3);
    assert_eq!(summary.files_organized, 0);
    assert_eq!(summary.bytes_organized, 0);
    assert_eq!(summary.duplicates_found, 5);

    // The undo's own report is its counters; the undone operation's report
    // shows its records back in place.
    let undo_report = get_report(&app, &alice, &undo.name.replace("operations/", "reports/")).await;
    assert_eq!(undo_report.kind, pb::OperationKind::Undo as i32);
    assert_eq!(undo_report.totals.unwrap().files_moved, 10);
    assert!(undo_report.categories.is_empty());
    let report = get_report(&app, &alice, &name).await;
    assert_eq!(report.totals.unwrap().files_moved, 0);
    assert_eq!(report.categories.len(), 4);
    let photos = list_groups(&app, &alice, &name, 1, "", 0).await.unwrap();
    assert_eq!(
        photos.duplicate_groups[0].kept_path,
        "inbox/photos/beach.jpg"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_summary_shows_someone_else_only_their_own_usage() {
    let app = TestApp::spawn().await;
    organized_with_a_dry_run_and_trash(&app).await;
    let bob = user(&app, "usage-bob").await;
    let summary = usage(&app, &bob).await;
    assert_eq!(summary.operation_count, 0);
    assert!(summary.operations_by_state.is_empty());
    assert_eq!(
        (
            summary.files_organized,
            summary.duplicates_found,
            summary.trash_bytes
        ),
        (0, 0, 0)
    );
}

/// A synthetic journal: `count` completed records, the first `2 * pairs` of
/// them in pairs of identical content (the odd one kept).
async fn synthetic_operation(app: &TestApp, u: &User, count: i64, pairs: i64) -> String {
    let user_id = uuid::Uuid::parse_str(u.root.file_name().unwrap().to_str().unwrap()).unwrap();
    let id = uuid::Uuid::now_v7();
    let mut conn = app.db().await;
    fileorganizer::db::operations::insert(
        &mut conn,
        &fileorganizer::db::models::NewOperation {
            id,
            user_id,
            kind: OperationKind::Organize,
            state: domain::OperationState::Succeeded,
            source_path: "bulk",
            destination_path: "bulk",
            dry_run: false,
            options: domain::OperationOptions::default(),
            undo_of: None,
            request_id: None,
            trigger_kind: domain::TriggerKind::Manual,
            automation_id: None,
            trace_parent: None,
        },
    )
    .await
    .unwrap();
    fileorganizer::db::file_records::write_journal(
        &app.database_url,
        id,
        &synthetic_rows(count, pairs),
    )
    .await
    .unwrap();
    format!("reports/{id}")
}

/// `count` completed records, the first `2 * pairs` of them in pairs of
/// identical content (the odd one kept; pair p has files of p * 10 bytes).
fn synthetic_rows(count: i64, pairs: i64) -> Vec<JournalRow> {
    (1..=count)
        .map(|seq| {
            let pair = (seq + 1) / 2;
            let in_pair = seq <= 2 * pairs;
            JournalRow {
                seq,
                original_path: format!("bulk/file-{seq:06}.bin"),
                new_path: Some(format!("bulk/Other/file-{seq:06}.bin")),
                size_bytes: if in_pair { pair * 10 } else { 1_000_000 + seq },
                modified_at: Some(chrono::Utc::now()),
                device: Some(1),
                inode: Some(seq),
                content_hash: in_pair
                    .then(|| blake3::hash(&pair.to_le_bytes()).as_bytes().to_vec()),
                category: "Other".into(),
                duplicate_of: (in_pair && seq % 2 == 0).then_some(seq - 1),
                status: RecordStatus::Completed,
                reason: None,
                mtime_ns: Some(0),
                ctime_ns: None,
                taken_from_metadata: None,
                decided_by: None,
            }
        })
        .collect()
}

#[derive(QueryableByName)]
struct Kept {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    groups: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    totals: i64,
}

/// Rows the operation has in `duplicate_groups` and `duplicate_group_totals`.
async fn kept_groups(app: &TestApp, id: uuid::Uuid) -> Kept {
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM duplicate_groups WHERE operation_id = $1) AS groups,
                (SELECT coalesce(sum(groups), 0)::bigint FROM duplicate_group_totals
                 WHERE operation_id = $1) AS totals",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .get_result(&mut app.db().await)
    .await
    .unwrap()
}

/// The listing reads groups kept by triggers (migration 000012): they follow
/// every change of the journal, whoever makes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_groups_follow_rewritten_updated_and_deleted_journals() {
    let app = TestApp::spawn().await;
    let dora = user(&app, "regroup").await;
    let name = synthetic_operation(&app, &dora, 100, 10).await;
    let id: uuid::Uuid = name.trim_start_matches("reports/").parse().unwrap();
    let first = list_groups(&app, &dora, &name, 100, "", 0).await.unwrap();
    assert_eq!(first.total_size, 10);
    assert_eq!(first.duplicate_groups.len(), 10);

    // The journal is rewritten (an interrupted plan run again): 30 pairs.
    fileorganizer::db::file_records::write_journal(&app.database_url, id, &synthetic_rows(200, 30))
        .await
        .unwrap();
    let (groups, pages) = all_groups(&app, &dora, &name, 7, 0).await;
    assert_eq!(pages, 5);
    let reclaimable: Vec<i64> = groups.iter().map(|g| g.reclaimable_bytes).collect();
    assert_eq!(
        reclaimable,
        (1..=30).rev().map(|p| p * 10).collect::<Vec<_>>()
    );
    for min_size in [0, 10, 11, 210, 300, 301] {
        let page = list_groups(&app, &dora, &name, 100, "", min_size)
            .await
            .unwrap();
        let expected = (1..=30).filter(|p| p * 10 >= min_size).count();
        assert_eq!(page.total_size as usize, expected, "min_size {min_size}");
        assert_eq!(page.duplicate_groups.len(), expected, "min_size {min_size}");
    }

    // A kept file's size changed by hand: its group follows.
    let mut conn = app.db().await;
    diesel::sql_query(
        "UPDATE file_records SET size_bytes = 5000 WHERE operation_id = $1 AND seq = 1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(&mut conn)
    .await
    .unwrap();
    let top = list_groups(&app, &dora, &name, 1, "", 0).await.unwrap();
    assert_eq!(top.duplicate_groups[0].reclaimable_bytes, 5000);
    assert_eq!(top.duplicate_groups[0].size_bytes, 5000);
    assert_eq!(
        list_groups(&app, &dora, &name, 1, "", 400)
            .await
            .unwrap()
            .total_size,
        1
    );

    // Status and path updates (apply, undo) leave the groups alone.
    diesel::sql_query(
        "UPDATE file_records SET status = 'undone', new_path = NULL WHERE operation_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(&mut conn)
    .await
    .unwrap();
    let groups = kept_groups(&app, id).await;
    assert_eq!((groups.groups, groups.totals), (30, 30));
    let top = list_groups(&app, &dora, &name, 1, "", 0).await.unwrap();
    assert_eq!(top.duplicate_groups[0].kept_path, "bulk/file-000001.bin");

    // Deleting the operation deletes its journal and so its groups.
    diesel::sql_query("DELETE FROM operations WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut conn)
        .await
        .unwrap();
    let groups = kept_groups(&app, id).await;
    assert_eq!((groups.groups, groups.totals), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_exports_stream_in_batches_and_chunks() {
    let app = TestApp::spawn().await;
    let carol = user(&app, "bulk").await;
    let (count, pairs) = (12_345i64, 1_200i64);
    let name = synthetic_operation(&app, &carol, count, pairs).await;

    // CSV: every record once, in seq order, across batches and many chunks.
    let (chunks, _) = export(&app, &carol, &name, ReportFormat::Csv).await;
    assert!(chunks.len() > 5, "{} chunks", chunks.len());
    assert_eq!(chunks[0].content_type, "text/csv; charset=utf-8");
    assert!(chunks[1..].iter().all(|c| c.content_type.is_empty()));
    assert!(chunks.iter().all(|c| c.data.len() <= 80 * 1024));
    let csv = String::from_utf8(concat(&chunks)).unwrap();
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(lines.len() as i64, count + 1);
    for (i, line) in lines[1..].iter().enumerate() {
        let seq = i as i64 + 1;
        assert!(
            line.starts_with(&format!("{seq},bulk/file-{seq:06}.bin,")),
            "{line}"
        );
    }

    // JSON: groups across several group batches, records across record batches.
    let (chunks, _) = export(&app, &carol, &name, ReportFormat::Json).await;
    let json: Value = serde_json::from_slice(&concat(&chunks)).unwrap();
    let groups = json["duplicate_groups"].as_array().unwrap();
    assert_eq!(groups.len() as i64, pairs);
    let reclaimable: Vec<i64> = groups
        .iter()
        .map(|g| g["reclaimable_bytes"].as_str().unwrap().parse().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=pairs).rev().map(|p| p * 10).collect();
    assert_eq!(reclaimable, expected);
    let seqs: Vec<i64> = json["file_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs, (1..=count).collect::<Vec<_>>());
    assert_eq!(json["report"]["duplicate_group_count"], pairs.to_string());

    // The listing pages through the same groups.
    let (listed, pages) = all_groups(&app, &carol, &name, 1000, 0).await;
    assert_eq!(pages, 2);
    assert_eq!(listed.len() as i64, pairs);
    assert!(
        listed
            .iter()
            .zip(&expected)
            .all(|(g, r)| g.reclaimable_bytes == *r && g.files.len() == 2 && g.files[0].kept)
    );
    let (big, _) = all_groups(&app, &carol, &name, 1000, 11_000).await;
    assert_eq!(big.len(), 101, "pairs 1100..=1200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_report_requests_name_the_field_and_usage_needs_credentials() {
    let app = TestApp::spawn().await;
    let (alice, name) = organized(&app, "validation").await;
    let mut client = reports(&app);

    for bad in [
        "",
        "reports/nope",
        "operations/x",
        &name.replace("reports/", "operations/"),
    ] {
        let status = assert_code(
            client
                .get_operation_report(bearer(
                    pb::GetOperationReportRequest { name: bad.into() },
                    &alice.token,
                ))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), "name", "{bad}");
        let status = assert_code(
            list_groups(&app, &alice, bad, 0, "", 0).await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), "parent", "{bad}");
    }
    let status = assert_code(
        list_groups(&app, &alice, &name, -1, "", 0).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&status), "page_size");
    let status = assert_code(
        list_groups(&app, &alice, &name, 0, "", -5).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&status), "min_size_bytes");
    let status = assert_code(
        client
            .export_report(bearer(
                pb::ExportReportRequest {
                    name: name.clone(),
                    format: 42,
                },
                &alice.token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&status), "format");
    // Without credentials: UNAUTHENTICATED.
    assert_code(
        client
            .get_usage_summary(pb::GetUsageSummaryRequest {})
            .await,
        Code::Unauthenticated,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_report_answers_like_a_missing_one() {
    let app = TestApp::spawn().await;
    let (alice, name) = organized(&app, "validation").await;
    let bob = user(&app, "validation-bob").await;
    let mut client = reports(&app);
    // Someone else's report and a missing one look the same.
    let missing = format!("reports/{}", uuid::Uuid::now_v7());
    for (report, token) in [(&name, &bob.token), (&missing, &alice.token)] {
        let expected = format!("{report} not found");
        let status = assert_code(
            client
                .get_operation_report(bearer(
                    pb::GetOperationReportRequest {
                        name: report.clone(),
                    },
                    token,
                ))
                .await,
            Code::NotFound,
        );
        assert_eq!(status.message(), expected, "GetOperationReport");
        let status = assert_code(
            client
                .list_duplicate_groups(bearer(
                    pb::ListDuplicateGroupsRequest {
                        parent: report.clone(),
                        ..Default::default()
                    },
                    token,
                ))
                .await,
            Code::NotFound,
        );
        assert_eq!(status.message(), expected, "ListDuplicateGroups");
        let status = assert_code(
            client
                .export_report(bearer(
                    pb::ExportReportRequest {
                        name: report.clone(),
                        format: ReportFormat::Json as i32,
                    },
                    token,
                ))
                .await,
            Code::NotFound,
        );
        assert_eq!(status.message(), expected, "ExportReport");
    }
}

/// The report of an operation at rest is computed once and stored
/// (`operation_memos`): by the job itself once the operation is final, and
/// every request reads it; an undo of the operation makes it stale, and the
/// next request computes the report of the undone journal, once for requests
/// that come at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_at_rest_is_computed_once_and_again_after_an_undo() {
    // Without the in-process cache tier every request reaches the stored report.
    let app = TestApp::spawn_with(Options {
        env: vec![("CACHE_LOCAL_TTL_MS", "0".into())],
        ..Default::default()
    })
    .await;
    let (alice, name) = organized(&app, "stored").await;
    let id = uuid::Uuid::parse_str(name.trim_start_matches("reports/")).unwrap();
    let stored = || async {
        use fileorganizer::schema::operation_memos as m;
        m::table
            .find((id, fileorganizer::reports::REPORT_MEMO))
            .select((m::version, m::value))
            .first::<(String, Vec<u8>)>(&mut app.db().await)
            .await
            .optional()
            .unwrap()
    };
    // The job stores it in its REPORT phase, just after the final state.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (version, bytes) = loop {
        if let Some(stored) = stored().await {
            break stored;
        }
        assert!(std::time::Instant::now() < deadline, "no stored report");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let first = get_report(&app, &alice, &name).await;
    assert!(first.totals.unwrap().files_moved > 0, "{first:?}");
    // What is stored is what is served.
    let kept: fileorganizer::domain::Report = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(fileorganizer::api::convert::report(&kept), first);
    // A heartbeat's late write of the counters leaves an operation at rest,
    // and so the version its report was stored for, alone (even from a
    // worker that still holds it).
    let hold = |holder: Option<&'static str>| {
        let app = &app;
        async move {
            use fileorganizer::schema::operations;
            diesel::update(operations::table.find(id))
                .set(operations::worker_id.eq(holder))
                .execute(&mut app.db().await)
                .await
                .unwrap();
        }
    };
    hold(Some("late-heartbeat")).await;
    let late = fileorganizer::db::operations::set_counters(
        &mut app.db().await,
        id,
        "late-heartbeat",
        &fileorganizer::domain::Counters::default(),
    )
    .await
    .unwrap();
    hold(None).await;
    assert_eq!(late, 0);
    assert_eq!(stored().await.unwrap().0, version);
    assert_eq!(get_report(&app, &alice, &name).await, first);

    let operation = name.replace("reports/", "operations/");
    let undo = crate::operations::undo_and_wait(&app, &alice, &operation).await;
    assert_eq!(undo.state, OperationState::Succeeded as i32);
    let at_once = futures::future::join_all((0..12).map(|_| get_report(&app, &alice, &name))).await;
    let undone = at_once[0].clone();
    for report in &at_once {
        assert_eq!(report, &undone, "computed more than once");
    }
    assert_eq!(undone.totals.unwrap().files_moved, 0, "{undone:?}");
    assert!(undone.compute_time.unwrap().seconds >= first.compute_time.unwrap().seconds);
    assert_ne!(undone.compute_time, first.compute_time);
    let (new_version, _) = stored().await.unwrap();
    assert_ne!(new_version, version);
    assert!(new_version.contains(undo.name.trim_start_matches("operations/")));
}
