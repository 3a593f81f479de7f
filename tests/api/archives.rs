//! ImportArchive on a real server: tar, tar.gz, tar.zst and zip (written by
//! Rust's `tar` crate and by Python's tarfile/zipfile, independent writers)
//! extracted with their mtimes; every kind of hostile entry skipped and
//! listed with nothing written outside the target; zip bombs, limits and
//! the quota stopped while the archive streams; truncated archives keeping
//! their complete entries; REST through the real Envoy with a raw body.

use std::{collections::BTreeMap, io::Write, path::Path, time::UNIX_EPOCH};

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, ArchiveEntrySkipReason, ArchiveFormat, FileConflictPolicy,
};
use serde_json::Value;
use tonic::{Code, Status};

use crate::{
    common::{
        Options, TestApp, assert_code, bearer,
        envoy::Envoy,
        python_client, reason,
        tree::{self, Entry},
    },
    files::{content, files, set_quota, storage_used, temp_files},
    operations::{User, user},
};

/// Sends `archive` to ImportArchive in `chunk`-byte messages.
pub(crate) async fn import(
    app: &TestApp,
    user: &User,
    path: &str,
    archive: &[u8],
    chunk: usize,
    policy: FileConflictPolicy,
) -> Result<pb::ImportArchiveResponse, Status> {
    let mut messages = vec![pb::ImportArchiveRequest {
        path: path.into(),
        format: ArchiveFormat::Unspecified as i32,
        conflict_policy: policy as i32,
        body: None,
    }];
    messages.extend(archive.chunks(chunk).map(|data| pb::ImportArchiveRequest {
        body: Some(fileorganizer::pb::google::api::HttpBody {
            content_type: String::new(),
            data: data.to_vec(),
            extensions: Vec::new(),
        }),
        ..Default::default()
    }));
    files(app)
        .import_archive(bearer(tokio_stream::iter(messages), &user.token))
        .await
        .map(|r| r.into_inner())
}

/// A tar of `(name, content, mtime)` files, written by the `tar` crate.
pub(crate) fn tar_of<N: AsRef<str>>(entries: &[(N, Vec<u8>, u64)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data, mtime) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mtime(*mtime);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name.as_ref(), &data[..])
            .unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// Every file (by content hash) and symlink under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeMap<String, Entry> {
    tree::snapshot(dir)
}

fn mtime(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Everything a hostile archive could reach outside the target: the
/// server's whole temp dir (the storage root with every user's root, the
/// data dir, and their common parent), less the target itself.
fn outside(app: &TestApp, target: &Path) -> BTreeMap<String, Entry> {
    tree::snapshot(app.storage.path())
        .into_iter()
        .filter(|(k, _)| {
            !Path::new(k).starts_with(target.strip_prefix(app.storage.path()).unwrap())
        })
        .collect()
}

fn skipped(response: &pb::ImportArchiveResponse) -> BTreeMap<String, String> {
    response
        .skipped_entries
        .iter()
        .map(|s| {
            let reason = ArchiveEntrySkipReason::try_from(s.reason)
                .unwrap()
                .as_str_name()
                .trim_start_matches("ARCHIVE_ENTRY_SKIP_REASON_")
                .to_string();
            (s.name.clone(), reason)
        })
        .collect()
}

fn text(entries: &BTreeMap<String, String>) -> BTreeMap<String, Entry> {
    entries
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Entry::File(blake3::hash(v.as_bytes()).to_hex().to_string()),
            )
        })
        .collect()
}

/// The archives made by tests/clients/make_archives.py, and what they hold.
struct PythonArchives {
    dir: tempfile::TempDir,
    expect: Value,
}

impl PythonArchives {
    async fn make() -> PythonArchives {
        let dir = tempfile::tempdir().unwrap();
        let expect: Value =
            python_client("make_archives.py", vec![dir.path().display().to_string()]).await;
        PythonArchives { dir, expect }
    }

    fn bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }

    fn map(&self, archive: &str, key: &str) -> BTreeMap<String, String> {
        self.expect[archive][key]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    }

    /// FILES of make_archives.py: name -> content.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.expect["files"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), hex::decode(v.as_str().unwrap()).unwrap()))
            .collect()
    }
}

#[tokio::test]
async fn tar_gzip_and_zstd_archives_round_trip_with_their_mtimes() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "archive-tar").await;
    let entries = vec![
        ("notes.txt", b"plain words\n".to_vec(), 1_500_000_000),
        ("photos/2019/a.jpg", content(700_000, 1), 1_550_000_000),
        (
            "photos/2019/b.jpg",
            content(3 * 1024 * 1024 + 5, 2),
            1_560_000_001,
        ),
        ("empty.bin", Vec::new(), 1_400_000_000),
        ("./deep/er/still/x.md", b"# x".to_vec(), 1_450_000_000),
    ];
    let tar = tar_of(&entries);
    let mut total = 0;
    for (target, archive, format) in [
        ("in/tar", tar.clone(), ArchiveFormat::Tar),
        ("in/gz", gzip(&tar), ArchiveFormat::TarGzip),
        ("in/zst", zstd(&tar), ArchiveFormat::TarZstd),
    ] {
        // Uneven chunks, so that headers and files straddle messages.
        let imported = import(
            &app,
            &ann,
            target,
            &archive,
            65_537,
            FileConflictPolicy::Fail,
        )
        .await
        .unwrap();
        assert_eq!(imported.path, target);
        assert_eq!(imported.format, format as i32, "{target}");
        assert_eq!(imported.file_count, 5, "{target}: {imported:?}");
        // The target, photos, photos/2019, deep, deep/er, deep/er/still
        // (and `in` for the first one).
        let folders = if target == "in/tar" { 7 } else { 6 };
        assert_eq!(imported.folder_count, folders, "{target}: {imported:?}");
        assert!(imported.skipped_entries.is_empty(), "{imported:?}");
        let bytes: usize = entries.iter().map(|e| e.1.len()).sum();
        assert_eq!(imported.total_bytes, bytes as i64);
        total += bytes as i64;
        let dir = ann.root.join(target);
        for (name, data, time) in &entries {
            let path = dir.join(name.trim_start_matches("./"));
            assert_eq!(&std::fs::read(&path).unwrap(), data, "{target}/{name}");
            assert_eq!(mtime(&path), *time, "{target}/{name}");
        }
        assert!(temp_files(&ann.root).is_empty());
    }
    // The quota was charged with exactly the bytes stored (reservations
    // in blocks were given back).
    assert_eq!(storage_used(&app, &ann).await, total);

    // Not an archive: INVALID_ARGUMENT naming the body, and nothing made.
    let status = assert_code(
        import(
            &app,
            &ann,
            "junk",
            b"just some text, no archive",
            1024,
            FileConflictPolicy::Fail,
        )
        .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("not a zip, tar"), "{status:?}");
    assert!(!ann.root.join("junk").exists());
    // A format that does not match the bytes is refused the same way.
    let status = assert_code(
        import_with_format(&app, &ann, "junk", &tar, ArchiveFormat::Zip).await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("not a zip archive"), "{status:?}");
    assert_eq!(storage_used(&app, &ann).await, total);
}

async fn import_with_format(
    app: &TestApp,
    user: &User,
    path: &str,
    archive: &[u8],
    format: ArchiveFormat,
) -> Result<pb::ImportArchiveResponse, Status> {
    let first = pb::ImportArchiveRequest {
        path: path.into(),
        format: format as i32,
        conflict_policy: 0,
        body: Some(fileorganizer::pb::google::api::HttpBody {
            content_type: String::new(),
            data: archive.to_vec(),
            extensions: Vec::new(),
        }),
    };
    files(app)
        .import_archive(bearer(tokio_stream::iter(vec![first]), &user.token))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn zips_round_trip_with_and_without_data_descriptors() {
    let app = TestApp::spawn().await;
    let bo = user(&app, "archive-zip").await;
    let made = PythonArchives::make().await;
    let mtime0 = made.expect["mtime"].as_u64().unwrap();
    for (archive, target) in [("plain.zip", "plain"), ("streamed.zip", "streamed")] {
        let imported = import(
            &app,
            &bo,
            target,
            &made.bytes(archive),
            100_003,
            FileConflictPolicy::Fail,
        )
        .await
        .unwrap_or_else(|e| panic!("{archive}: {e:?}"));
        assert_eq!(imported.format, ArchiveFormat::Zip as i32);
        assert_eq!(imported.file_count, 4, "{archive}: {imported:?}");
        assert!(
            imported.skipped_entries.is_empty(),
            "{archive}: {imported:?}"
        );
        for (name, data) in made.files() {
            let path = bo.root.join(target).join(&name);
            assert_eq!(std::fs::read(&path).unwrap(), data, "{archive}: {name}");
            // make_archives.py gives its files MTIME + 2i, i = 0..4.
            let t = mtime(&path);
            assert!(
                (mtime0..=mtime0 + 8).contains(&t) && t.is_multiple_of(2),
                "{archive}: {name}: {t}"
            );
        }
        assert!(bo.root.join(target).join("docs").is_dir());
    }
    assert!(temp_files(&bo.root).is_empty());
}

#[tokio::test]
async fn hostile_tar_entries_are_skipped_and_listed_and_nothing_leaves_the_target() {
    let app = TestApp::spawn().await;
    let cy = user(&app, "archive-hostile").await;
    // A file beside the target and one in another user's root, to see
    // that they are untouched.
    tree::write(&cy.root, "mine.txt", b"mine");
    let other = user(&app, "archive-hostile-other").await;
    tree::write(&other.root, "escape.txt", b"other's");
    let made = PythonArchives::make().await;
    let before = outside(&app, &cy.root.join("in"));

    let imported = import(
        &app,
        &cy,
        "in",
        &made.bytes("hostile.tar"),
        4096,
        FileConflictPolicy::Fail,
    )
    .await
    .unwrap();
    let mut want_skipped = made.map("hostile.tar", "skipped");
    want_skipped.insert("dup.txt".into(), "ALREADY_EXISTS".into());
    assert_eq!(skipped(&imported), want_skipped);
    assert_eq!(imported.skipped_count, want_skipped.len() as i64);
    assert_eq!(
        files_under(&cy.root.join("in")),
        text(&made.map("hostile.tar", "stored"))
    );
    // Nothing anywhere else changed: the rest of this user's root, the
    // other user's, the storage root and everything around it.
    assert_eq!(outside(&app, &cy.root.join("in")), before);
    assert!(!app.storage.path().join("escape.txt").exists());
    assert!(!Path::new("/abs.txt").exists());

    // Under RENAME the duplicate gets a free name; the rest is the same.
    let imported = import(
        &app,
        &cy,
        "again",
        &made.bytes("hostile.tar"),
        1 << 20,
        FileConflictPolicy::Rename,
    )
    .await
    .unwrap();
    let renamed: Vec<_> = imported
        .renamed_entries
        .iter()
        .map(|r| (r.name.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(renamed, [("dup.txt", "again/dup (1).txt")]);
    assert_eq!(skipped(&imported), made.map("hostile.tar", "skipped"));
    assert_eq!(
        files_under(&cy.root.join("again")),
        text(&made.map("hostile.tar", "stored_rename"))
    );

    // Imported again into the same folder under FAIL: every file is taken,
    // nothing is overwritten.
    let again = import(
        &app,
        &cy,
        "in",
        &made.bytes("hostile.tar"),
        1 << 20,
        FileConflictPolicy::Fail,
    )
    .await
    .unwrap();
    assert_eq!(again.file_count, 0);
    assert_eq!(
        files_under(&cy.root.join("in")),
        text(&made.map("hostile.tar", "stored"))
    );
    assert!(temp_files(&cy.root).is_empty());
}

#[tokio::test]
async fn hostile_zip_entries_are_skipped_and_zip_symlinks_are_taken_back() {
    let app = TestApp::spawn().await;
    let di = user(&app, "archive-hostile-zip").await;
    let made = PythonArchives::make().await;
    let before = outside(&app, &di.root.join("z"));
    let imported = import(
        &app,
        &di,
        "z",
        &made.bytes("hostile.zip"),
        333,
        FileConflictPolicy::Fail,
    )
    .await
    .unwrap();
    assert_eq!(
        skipped(&imported),
        made.map("hostile.zip", "skipped"),
        "{imported:?}"
    );
    assert_eq!(
        files_under(&di.root.join("z")),
        text(&made.map("hostile.zip", "stored"))
    );
    assert_eq!(imported.file_count, 2);
    assert_eq!(outside(&app, &di.root.join("z")), before);
    // The symlink's stored text was counted, then given back.
    assert_eq!(
        storage_used(&app, &di).await,
        ("fine".len() + "first".len()) as i64
    );
}

#[tokio::test]
async fn bombs_and_limits_stop_an_import_while_it_streams() {
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("ARCHIVE_MAX_RATIO", "50".into()),
            ("ARCHIVE_RATIO_FLOOR_BYTES", (4 << 20).to_string()),
            ("ARCHIVE_MAX_EXPANDED_BYTES", (40 << 20).to_string()),
            ("ARCHIVE_MAX_ENTRIES", "100".into()),
        ],
        ..Default::default()
    })
    .await;
    let ed = user(&app, "archive-bomb").await;
    let made = PythonArchives::make().await;

    // A zip of 256 MiB of zeros in 261 KB: stopped by the ratio long before
    // its expansion is written.
    let status = assert_code(
        import(
            &app,
            &ed,
            "bomb",
            &made.bytes("bomb.zip"),
            64 * 1024,
            FileConflictPolicy::Fail,
        )
        .await,
        Code::ResourceExhausted,
    );
    assert_eq!(reason(&status), "QUOTA_EXCEEDED");
    assert!(status.message().contains("ARCHIVE_MAX_RATIO"), "{status:?}");
    let written: u64 = walkdir::WalkDir::new(&ed.root)
        .into_iter()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(written < 1 << 20, "{written} bytes left behind");
    assert!(temp_files(&ed.root).is_empty());

    // The same as tar.gz.
    let zeros = tar_of(&[("zeros.bin", vec![0u8; 64 << 20], 0)]);
    let status = assert_code(
        import(
            &app,
            &ed,
            "bomb-gz",
            &gzip(&zeros),
            64 * 1024,
            FileConflictPolicy::Fail,
        )
        .await,
        Code::ResourceExhausted,
    );
    assert!(status.message().contains("ARCHIVE_MAX_RATIO"), "{status:?}");
    assert_eq!(files_under(&ed.root.join("bomb-gz")), BTreeMap::new());

    // Past the total expanded size (40 MiB): the files before are kept,
    // and the message says so.
    let big: Vec<_> = (0..5)
        .map(|i| (format!("big{i}.bin"), content(10 << 20, i), 1_600_000_000))
        .collect();
    let status = assert_code(
        import(
            &app,
            &ed,
            "big",
            &tar_of(&big),
            1 << 20,
            FileConflictPolicy::Fail,
        )
        .await,
        Code::ResourceExhausted,
    );
    assert!(
        status.message().contains("ARCHIVE_MAX_EXPANDED_BYTES"),
        "{status:?}"
    );
    assert!(status.message().contains("the 3 files"), "{status:?}");
    let kept = files_under(&ed.root.join("big"));
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(temp_files(&ed.root).is_empty());

    // More entries than allowed.
    let many: Vec<_> = (0..150).map(|i| (format!("f{i}"), vec![b'x'], 0)).collect();
    let status = assert_code(
        import(
            &app,
            &ed,
            "many",
            &tar_of(&many),
            1 << 20,
            FileConflictPolicy::Fail,
        )
        .await,
        Code::ResourceExhausted,
    );
    assert!(
        status.message().contains("ARCHIVE_MAX_ENTRIES"),
        "{status:?}"
    );
    assert_eq!(files_under(&ed.root.join("many")).len(), 100);
}

#[tokio::test]
async fn the_quota_stops_an_import_and_only_stored_bytes_are_charged() {
    let app = TestApp::spawn().await;
    let fay = user(&app, "archive-quota").await;
    set_quota(&app, &fay, (2 << 20) + (1 << 19)).await; // 2.5 MiB
    let parts: Vec<_> = (0..4)
        .map(|i| (format!("p{i}.bin"), content(1 << 20, i), 1_600_000_000))
        .collect();
    let status = assert_code(
        import(
            &app,
            &fay,
            "q",
            &tar_of(&parts),
            1 << 20,
            FileConflictPolicy::Fail,
        )
        .await,
        Code::ResourceExhausted,
    );
    assert_eq!(reason(&status), "QUOTA_EXCEEDED");
    assert!(status.message().contains("quota"), "{status:?}");
    assert_eq!(files_under(&fay.root.join("q")).len(), 2);
    assert_eq!(storage_used(&app, &fay).await, 2 << 20);
    assert!(temp_files(&fay.root).is_empty());
}

#[tokio::test]
async fn a_truncated_archive_keeps_its_complete_entries_and_says_so() {
    let app = TestApp::spawn().await;
    let gus = user(&app, "archive-cut").await;
    let parts: Vec<_> = (0..3)
        .map(|i| (format!("p{i}.bin"), content(1 << 20, i), 1_600_000_000))
        .collect();
    let tar = tar_of(&parts);
    // Cut in the middle of the third file's data.
    let cut = &tar[..512 * 3 + 2 * (1 << 20) + (1 << 19)];
    let made = PythonArchives::make().await;
    let zip = made.bytes("plain.zip");
    for (target, archive, kept) in [
        ("tar", cut.to_vec(), 2),
        ("gz", gzip(&tar)[..gzip(&tar).len() * 3 / 4].to_vec(), 2),
        // A zip cut before its central directory: every entry is whole.
        ("zip", zip[..zip.len() - 200].to_vec(), 4),
    ] {
        let status = assert_code(
            import(
                &app,
                &gus,
                target,
                &archive,
                100_000,
                FileConflictPolicy::Fail,
            )
            .await,
            Code::InvalidArgument,
        );
        assert!(
            status.message().contains("truncated") || status.message().contains("cut short"),
            "{target}: {status:?}"
        );
        assert!(
            status.message().contains(&format!("the {kept} files")),
            "{target}: {status:?}"
        );
        let stored = files_under(&gus.root.join(target));
        assert_eq!(stored.len(), kept, "{target}: {stored:?}");
        if target != "zip" {
            for (name, data, _) in &parts[..kept] {
                assert_eq!(
                    &std::fs::read(gus.root.join(target).join(name)).unwrap(),
                    data
                );
            }
        }
    }
    assert!(temp_files(&gus.root).is_empty());
}

#[tokio::test]
async fn rest_imports_a_raw_body_larger_than_envoys_buffer_limit() {
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let hal = user(&app, "archive-rest").await;
    // 40 MiB: more than Envoy's max_request_body_size (32 MiB), so it
    // arrives only if Envoy streams it.
    let entries: Vec<_> = (0..10)
        .map(|i| {
            (
                format!("r/f{i}.bin"),
                content(4 << 20, i),
                1_600_000_000 + i as u64,
            )
        })
        .collect();
    let tar = tar_of(&entries);
    let response = reqwest::Client::new()
        .post(envoy.url("/api/v1/files:import"))
        .query(&[
            ("path", "inbox"),
            ("conflict_policy", "FILE_CONFLICT_POLICY_RENAME"),
        ])
        .bearer_auth(&hal.token)
        .header("content-type", "application/x-tar")
        .body(tar)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["file_count"], "10", "{body}");
    assert_eq!(body["format"], "ARCHIVE_FORMAT_TAR");
    for (name, data, t) in &entries {
        let path = hal.root.join("inbox").join(name);
        assert_eq!(&std::fs::read(&path).unwrap(), data);
        assert_eq!(mtime(&path), *t);
    }
    // A hostile one over REST: the skipped entries come back as JSON.
    let made = PythonArchives::make().await;
    let response = reqwest::Client::new()
        .post(envoy.url("/api/v1/files:import"))
        .query(&[("path", "h")])
        .bearer_auth(&hal.token)
        .body(made.bytes("hostile.zip"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let reasons: Vec<&str> = body["skipped_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"ARCHIVE_ENTRY_SKIP_REASON_SYMLINK"),
        "{body}"
    );
    // Not an archive: 400 with the JSON error.
    let response = reqwest::Client::new()
        .post(envoy.url("/api/v1/files:import"))
        .query(&[("path", "x")])
        .bearer_auth(&hal.token)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn an_import_counts_as_one_upload_against_the_rate_limit() {
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_UPLOAD", "2".into())],
        ..Default::default()
    })
    .await;
    let ivy = user(&app, "archive-rate").await;
    // Twenty files in each archive, in many messages: still one request.
    let entries: Vec<_> = (0..20)
        .map(|i| (format!("f{i}.txt"), content(10_000, i), 1_600_000_000))
        .collect();
    let tar = tar_of(&entries);
    for target in ["one", "two"] {
        let imported = import(&app, &ivy, target, &tar, 4096, FileConflictPolicy::Fail)
            .await
            .unwrap();
        assert_eq!(imported.file_count, 20);
    }
    let status = assert_code(
        import(&app, &ivy, "three", &tar, 4096, FileConflictPolicy::Fail).await,
        Code::ResourceExhausted,
    );
    assert_eq!(reason(&status), "RATE_LIMITED");
    assert!(!ivy.root.join("three").exists());
}

#[tokio::test]
async fn skip_if_identical_compares_each_entrys_content_and_never_overwrites() {
    let app = TestApp::spawn().await;
    let kim = user(&app, "archive-identical").await;
    std::fs::create_dir_all(kim.root.join("in")).unwrap();
    std::fs::write(kim.root.join("in/same.txt"), b"same content").unwrap();
    std::fs::write(kim.root.join("in/changed.txt"), b"the stored version").unwrap();
    let tar = tar_of(&[
        ("same.txt", b"same content".to_vec(), 1_600_000_000),
        ("changed.txt", b"a newer version".to_vec(), 1_600_000_000),
        ("new.txt", b"new".to_vec(), 1_600_000_000),
    ]);
    let import_again = || async {
        import(
            &app,
            &kim,
            "in",
            &tar,
            4096,
            FileConflictPolicy::SkipIfIdentical,
        )
        .await
        .unwrap()
    };
    let imported = import_again().await;
    assert_eq!(imported.file_count, 2);
    assert_eq!(
        skipped(&imported),
        BTreeMap::from([("same.txt".to_string(), "IDENTICAL".to_string())])
    );
    assert!(
        imported.skipped_entries[0].detail.contains("in/same.txt"),
        "{imported:?}"
    );
    let renamed: Vec<_> = imported
        .renamed_entries
        .iter()
        .map(|r| (r.name.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(renamed, [("changed.txt", "in/changed (1).txt")]);
    let stored = text(&BTreeMap::from([
        ("in/same.txt".to_string(), "same content".to_string()),
        (
            "in/changed.txt".to_string(),
            "the stored version".to_string(),
        ),
        (
            "in/changed (1).txt".to_string(),
            "a newer version".to_string(),
        ),
        ("in/new.txt".to_string(), "new".to_string()),
    ]));
    let on_disk = |root: &Path| -> BTreeMap<String, Entry> {
        files_under(root)
            .into_iter()
            .map(|(k, v)| (format!("in/{k}"), v))
            .collect()
    };
    assert_eq!(on_disk(&kim.root.join("in")), stored);
    // The same archive again stores nothing: every entry is found, the
    // changed one under its ` (1)` name.
    let again = import_again().await;
    assert_eq!(again.file_count, 0);
    assert_eq!(
        skipped(&again),
        BTreeMap::from(
            ["same.txt", "changed.txt", "new.txt"].map(|n| (n.to_string(), "IDENTICAL".into()))
        )
    );
    assert_eq!(on_disk(&kim.root.join("in")), stored);
    assert_eq!(
        storage_used(&app, &kim).await,
        ("a newer version".len() + "new".len()) as i64
    );
}

/// The soft limit on open files of /proc/`pid`/limits.
fn soft_open_files_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// A server started with a soft limit of 64 open files (what a careless
/// service manager might give it; systemd's default is 1,024) raises it to
/// the hard limit, so an import whose batch keeps over a thousand files
/// pending (each holding its folder open until the batch's `syncfs`) does
/// not fail with "too many open files" halfway through a user's archive.
#[tokio::test]
async fn a_server_started_with_few_open_files_allowed_imports_a_large_archive() {
    use std::os::unix::process::CommandExt;
    let app = TestApp::spawn().await;
    let ida = user(&app, "archive-fds").await;
    let port = crate::common::free_port();
    let mut command = app.fileorg_command(&["serve"]);
    command
        .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKERS", "0")
        .env("RATE_LIMIT_UPLOAD", "1000")
        .stderr(std::process::Stdio::inherit());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the
    // child between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = crate::common::KillOnDrop(command.spawn().expect("start fileorg serve"));
    let channel = crate::common::connect_when_up(port).await;

    let entries: Vec<_> = (0..1500)
        .map(|i| {
            (
                format!("many/f{i:04}.txt"),
                format!("file {i}").into_bytes(),
                1_600_000_000,
            )
        })
        .collect();
    let archive = tar_of(&entries);
    let mut messages = vec![pb::ImportArchiveRequest {
        path: "in".into(),
        format: ArchiveFormat::Unspecified as i32,
        conflict_policy: FileConflictPolicy::Fail as i32,
        body: None,
    }];
    messages.extend(
        archive
            .chunks(64 * 1024)
            .map(|data| pb::ImportArchiveRequest {
                body: Some(fileorganizer::pb::google::api::HttpBody {
                    content_type: String::new(),
                    data: data.to_vec(),
                    extensions: Vec::new(),
                }),
                ..Default::default()
            }),
    );
    let response = pb::file_service_client::FileServiceClient::new(channel)
        .import_archive(bearer(tokio_stream::iter(messages), &ida.token))
        .await
        .expect("the import succeeds")
        .into_inner();
    assert_eq!(response.file_count, 1500, "{response:?}");
    assert_eq!(response.skipped_count, 0, "{response:?}");
    let stored = files_under(&ida.root.join("in/many"));
    assert_eq!(stored.len(), 1500);
    assert_eq!(
        std::fs::read(ida.root.join("in/many/f1499.txt")).unwrap(),
        b"file 1499"
    );
    assert!(temp_files(&ida.root).is_empty());
    assert_eq!(soft_open_files_limit(child.id()), 4096);
}
