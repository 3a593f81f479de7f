//! DownloadArchive on a real server: a folder out as zip, tar, tar.gz and
//! tar.zst, read back by independent readers (the `tar` crate; Python's
//! zipfile; the service's own ImportArchive, which checks every CRC-32)
//! with bytes and mtimes compared; symlinks never followed, a symlinked
//! folder refused, a wide folder streamed in many bounded messages, bad
//! requests refused naming the field, another user's operation NOT_FOUND,
//! and a client that leaves mid-stream not holding the server. The deep
//! tree (5,000 levels) is in tests/api/walks.rs, under a descriptor limit;
//! REST through Envoy in tests/rest/test_files.py.

use std::{collections::BTreeMap, io::Read, path::Path, time::Duration};

use fileorganizer::pb::fileorganizer::v1::{self as pb, ArchiveFormat, FileConflictPolicy};
use tonic::{Code, Status, transport::Channel};

use crate::{
    archives::import,
    common::{Options, TestApp, assert_code, bad_field, bearer, python, tree},
    files::{content, files},
    operations::{User, create, organize, user},
};

/// What a DownloadArchive stream carried.
#[derive(Debug)]
pub(crate) struct Downloaded {
    pub content_type: String,
    pub disposition: String,
    /// The `data` of each message.
    pub chunks: Vec<Vec<u8>>,
}

impl Downloaded {
    pub fn bytes(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

pub(crate) fn request(path: &str, format: ArchiveFormat) -> pb::DownloadArchiveRequest {
    pb::DownloadArchiveRequest {
        path: path.into(),
        operation: String::new(),
        format: format as i32,
    }
}

/// Reads a whole DownloadArchive stream.
pub(crate) async fn download_archive(
    client: &mut pb::file_service_client::FileServiceClient<Channel>,
    token: &str,
    req: pb::DownloadArchiveRequest,
) -> Result<Downloaded, Status> {
    let response = client.download_archive(bearer(req, token)).await?;
    let disposition = response
        .metadata()
        .get("content-disposition")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let mut stream = response.into_inner();
    let mut content_type = None;
    let mut chunks = Vec::new();
    while let Some(message) = stream.message().await? {
        content_type.get_or_insert(message.content_type);
        chunks.push(message.data);
    }
    Ok(Downloaded {
        content_type: content_type.unwrap_or_default(),
        disposition,
        chunks,
    })
}

async fn download(
    app: &TestApp,
    u: &User,
    req: pb::DownloadArchiveRequest,
) -> Result<Downloaded, Status> {
    download_archive(&mut files(app), &u.token, req).await
}

/// Every entry of a tar: name → (content, mtime, mode), folders ending in `/`.
pub(crate) fn tar_entries(bytes: &[u8]) -> BTreeMap<String, (Vec<u8>, u64, u32)> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut name = entry.path().unwrap().to_str().unwrap().to_string();
        if entry.header().entry_type().is_dir() && !name.ends_with('/') {
            name.push('/');
        }
        let mtime = entry.header().mtime().unwrap();
        let mode = entry.header().mode().unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.insert(name, (data, mtime, mode));
    }
    out
}

/// The test tree under `docs`, with mtimes: name → (content, mtime).
fn sample(root: &Path) -> BTreeMap<String, (Vec<u8>, u64)> {
    let files: Vec<(&str, Vec<u8>, u64)> = vec![
        ("a.txt", b"alpha\n".to_vec(), 1_600_000_000),
        ("zero", Vec::new(), 1_600_000_002),
        (".hidden", b"dot file".to_vec(), 1_600_000_004),
        (
            "sub/deeper/ünï cødé 日本.txt",
            "ß".repeat(100).into_bytes(),
            1_650_000_000,
        ),
        (
            "sub/big.bin",
            content(5 * 1024 * 1024 + 17, 7),
            1_700_000_000,
        ),
        ("sub/photo.jpg", content(3000, 9), 1_700_000_010),
    ];
    let mut expected = BTreeMap::new();
    for (name, data, mtime) in files {
        tree::write(&root.join("docs"), name, &data);
        tree::set_mtime(&root.join("docs"), name, mtime);
        expected.insert(name.to_string(), (data, mtime));
    }
    std::fs::create_dir_all(root.join("docs/empty folder")).unwrap();
    // The service's own entries and links are never exported.
    tree::write(root, "docs/.fileorg-tmp-0123", b"an upload in progress");
    std::fs::create_dir_all(root.join("../outside")).unwrap();
    std::fs::write(root.join("../outside/secret.txt"), b"TOPSECRET").unwrap();
    std::os::unix::fs::symlink(root.join("../outside"), root.join("docs/link-out")).unwrap();
    std::os::unix::fs::symlink(
        root.join("../outside/secret.txt"),
        root.join("docs/sub/file-link"),
    )
    .unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("docs/inside-link")).unwrap();
    expected
}

/// Python's zipfile on `zip`: every member's name, size and DOS time, after
/// `testzip()` checked every CRC-32.
pub(crate) fn python_zip_listing(zip: &[u8]) -> BTreeMap<String, (u64, [u32; 6])> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zip");
    std::fs::write(&path, zip).unwrap();
    let script = "import json, sys, zipfile\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        assert z.testzip() is None\n\
        print(json.dumps({i.filename: [i.file_size, list(i.date_time)] for i in z.infolist()}))";
    let output = std::process::Command::new(python())
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: BTreeMap<String, (u64, Vec<u32>)> = serde_json::from_slice(&output.stdout).unwrap();
    listed
        .into_iter()
        .map(|(k, (size, t))| (k, (size, t.try_into().unwrap())))
        .collect()
}

fn dos(secs: u64) -> [u32; 6] {
    let t = chrono::DateTime::from_timestamp(secs as i64, 0).unwrap();
    use chrono::{Datelike, Timelike};
    [
        t.year() as u32,
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second() / 2 * 2,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_round_trips_as_zip_and_tar_with_bytes_and_mtimes_and_no_links() {
    let app = TestApp::spawn().await;
    let u = user(&app, "export").await;
    let expected = sample(&u.root);

    // tar, tar.gz, tar.zst: the same entries, read by the `tar` crate.
    for (format, media, ext, unpack) in [
        (ArchiveFormat::Tar, "application/x-tar", "tar", None),
        (
            ArchiveFormat::TarGzip,
            "application/gzip",
            "tar.gz",
            Some("gz"),
        ),
        (
            ArchiveFormat::TarZstd,
            "application/zstd",
            "tar.zst",
            Some("zst"),
        ),
    ] {
        let got = download(&app, &u, request("docs", format)).await.unwrap();
        assert_eq!(got.content_type, media);
        assert!(
            got.disposition
                .contains(&format!("filename=\"docs.{ext}\"")),
            "{}",
            got.disposition
        );
        let bytes = match unpack {
            None => got.bytes(),
            Some("gz") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&got.bytes()[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            Some(_) => zstd::decode_all(&got.bytes()[..]).unwrap(),
        };
        let entries = tar_entries(&bytes);
        let folders: Vec<_> = entries
            .keys()
            .filter(|k| k.ends_with('/'))
            .cloned()
            .collect();
        assert_eq!(folders, ["empty folder/", "sub/", "sub/deeper/"]);
        let files: BTreeMap<_, _> = entries
            .into_iter()
            .filter(|(k, _)| !k.ends_with('/'))
            .map(|(k, (data, mtime, mode))| {
                assert_eq!(mode & 0o777, 0o644, "{k}");
                (k, (data, mtime))
            })
            .collect();
        assert_eq!(files, expected, "{format:?}");
        assert!(!bytes.windows(9).any(|w| w == b"TOPSECRET"));
    }

    // zip: Python's zipfile checks every CRC and gives names, sizes, times.
    let got = download(&app, &u, request("docs", ArchiveFormat::Unspecified))
        .await
        .unwrap();
    assert_eq!(got.content_type, "application/zip");
    assert!(
        got.disposition.contains("filename=\"docs.zip\""),
        "{}",
        got.disposition
    );
    let zip = got.bytes();
    let listed = python_zip_listing(&zip);
    let mut want: BTreeMap<String, (u64, [u32; 6])> = expected
        .iter()
        .map(|(k, (data, mtime))| (k.clone(), (data.len() as u64, dos(*mtime))))
        .collect();
    for folder in ["empty folder/", "sub/", "sub/deeper/"] {
        let (size, time) = listed
            .get(folder)
            .cloned()
            .unwrap_or_else(|| panic!("{folder} in {listed:?}"));
        assert_eq!(size, 0);
        want.insert(folder.into(), (0, time));
    }
    assert_eq!(listed, want);

    // ...and the service's own ImportArchive takes it back whole, with the
    // exact mtimes (the extended-timestamp field) and every CRC-32 checked.
    let imported = import(&app, &u, "back", &zip, 256 * 1024, FileConflictPolicy::Fail)
        .await
        .unwrap();
    assert_eq!(imported.file_count as usize, expected.len(), "{imported:?}");
    assert!(imported.skipped_entries.is_empty(), "{imported:?}");
    for (name, (data, mtime)) in &expected {
        let path = u.root.join("back").join(name);
        assert_eq!(&std::fs::read(&path).unwrap(), data, "{name}");
        let got = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(
            got,
            std::time::UNIX_EPOCH + Duration::from_secs(*mtime),
            "{name}"
        );
    }
    assert!(u.root.join("back/empty folder").is_dir());
    assert!(!u.root.join("back/link-out").exists());
    assert!(!u.root.join("back/inside-link").exists());

    // The whole root: named after no folder, the trash never in it.
    tree::write(&u.root, ".trash/old/x.txt", b"trashed");
    let got = download(&app, &u, request("", ArchiveFormat::Tar))
        .await
        .unwrap();
    assert!(
        got.disposition.contains("filename=\"files.tar\""),
        "{}",
        got.disposition
    );
    let entries = tar_entries(&got.bytes());
    assert!(entries.contains_key("docs/sub/big.bin"));
    assert!(
        !entries.keys().any(|k| k.starts_with(".trash")),
        "{:?}",
        entries.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_folder_streams_in_many_bounded_messages() {
    let app = TestApp::spawn().await;
    let u = user(&app, "export-wide").await;
    const ENTRIES: usize = 50_000;
    std::fs::create_dir_all(u.root.join("wide")).unwrap();
    for i in 0..ENTRIES {
        std::fs::write(u.root.join(format!("wide/{i:05}.txt")), b"").unwrap();
    }
    let got = download(&app, &u, request("wide", ArchiveFormat::Tar))
        .await
        .unwrap();
    // 50,000 headers of 512 bytes: about 25 MiB in messages of at most 1 MiB.
    assert!(got.chunks.len() >= 20, "{} messages", got.chunks.len());
    assert!(got.chunks.iter().all(|c| c.len() <= 1024 * 1024));
    assert_eq!(tar_entries(&got.bytes()).len(), ENTRIES);

    let got = download(&app, &u, request("wide", ArchiveFormat::Zip))
        .await
        .unwrap();
    assert!(got.chunks.len() >= 4, "{} messages", got.chunks.len());
    assert_eq!(python_zip_listing(&got.bytes()).len(), ENTRIES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_naming_the_field_and_symlinked_folders_are_not_followed() {
    let app = TestApp::spawn().await;
    let u = user(&app, "export-bad").await;
    tree::write(&u.root, "real/a.txt", b"a");
    std::fs::create_dir_all(u.root.join("../elsewhere")).unwrap();
    tree::write(&u.root, "../elsewhere/private.txt", b"PRIVATE");
    std::os::unix::fs::symlink(u.root.join("../elsewhere"), u.root.join("out")).unwrap();
    std::os::unix::fs::symlink("real", u.root.join("in")).unwrap();

    let missing = assert_code(
        download(&app, &u, request("nope", ArchiveFormat::Zip)).await,
        Code::NotFound,
    );
    assert!(missing.message().contains("path"), "{missing:?}");
    for escape in ["../x", "/etc", "real/../../x"] {
        let status = assert_code(
            download(&app, &u, request(escape, ArchiveFormat::Zip)).await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), "path", "{escape}: {status:?}");
    }
    // A folder that is a symlink, inside or out, and one reached through a
    // symlink: refused, never followed (the walk starts from a handle).
    for link in ["out", "in", "in/."] {
        let status = assert_code(
            download(&app, &u, request(link, ArchiveFormat::Tar)).await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), "path", "{link}: {status:?}");
    }
    let file = assert_code(
        download(&app, &u, request("real/a.txt", ArchiveFormat::Zip)).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&file), "path");
    let auto = assert_code(
        download(&app, &u, request("real", ArchiveFormat::Auto)).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&auto), "format");
    let unknown = assert_code(
        download(
            &app,
            &u,
            pb::DownloadArchiveRequest {
                format: 99,
                ..request("real", ArchiveFormat::Zip)
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&unknown), "format");
    let both = pb::DownloadArchiveRequest {
        operation: "operations/00000000-0000-0000-0000-000000000000".into(),
        ..request("real", ArchiveFormat::Zip)
    };
    assert_eq!(
        bad_field(&assert_code(
            download(&app, &u, both).await,
            Code::InvalidArgument
        )),
        "operation"
    );
    let garbled = pb::DownloadArchiveRequest {
        operation: "operations/x".into(),
        ..request("", ArchiveFormat::Zip)
    };
    assert_eq!(
        bad_field(&assert_code(
            download(&app, &u, garbled).await,
            Code::InvalidArgument
        )),
        "operation"
    );
    // A folder swapped for a symlink after a first export: the next one refuses it.
    download(&app, &u, request("real", ArchiveFormat::Tar))
        .await
        .unwrap();
    std::fs::rename(u.root.join("real"), u.root.join("real-moved")).unwrap();
    std::os::unix::fs::symlink(u.root.join("../elsewhere"), u.root.join("real")).unwrap();
    let swapped = assert_code(
        download(&app, &u, request("real", ArchiveFormat::Tar)).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&swapped), "path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operations_destination_is_exported_for_its_owner_only() {
    let app = TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await;
    let ann = user(&app, "export-op").await;
    let bob = user(&app, "export-op-other").await;
    tree::write(&ann.root, "inbox/a.txt", b"ann's");
    tree::write(&ann.root, "sorted/kept.txt", b"already sorted");
    tree::write(&bob.root, "sorted/bob.txt", b"bob's");
    let op = create(
        &app,
        &ann,
        pb::Operation {
            destination_path: "sorted".into(),
            ..organize("inbox")
        },
    )
    .await;
    let by_operation = pb::DownloadArchiveRequest {
        operation: op.name.clone(),
        ..request("", ArchiveFormat::Tar)
    };
    let got = download(&app, &ann, by_operation.clone()).await.unwrap();
    assert!(
        got.disposition.contains("filename=\"sorted.tar\""),
        "{}",
        got.disposition
    );
    let names: Vec<_> = tar_entries(&got.bytes()).into_keys().collect();
    assert_eq!(names, ["kept.txt"]);
    // Bob cannot name it (nor tell it from an operation that does not exist).
    let status = assert_code(download(&app, &bob, by_operation).await, Code::NotFound);
    assert!(status.message().contains(&op.name), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_frees_the_server() {
    let app = TestApp::spawn_with(Options {
        env: vec![("MAX_STREAMS_PER_USER", "1".into())],
        ..Default::default()
    })
    .await;
    let u = user(&app, "export-gone").await;
    for i in 0..4 {
        tree::write(
            &u.root,
            &format!("big/{i}.bin"),
            &content(4 * 1024 * 1024, i),
        );
    }
    let mut stream = files(&app)
        .download_archive(bearer(request("big", ArchiveFormat::Tar), &u.token))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.data.len(), 1024 * 1024);
    drop(stream);
    // The one stream slot comes back once the server noticed, and the next
    // export runs to its end (bounded wait, not a timing assertion).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let got = loop {
        match download(&app, &u, request("big", ArchiveFormat::Tar)).await {
            Ok(got) => break got,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot never came back"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(tar_entries(&got.bytes()).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_count_against_the_export_rate_limit() {
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_EXPORT", "1".into())],
        ..Default::default()
    })
    .await;
    let u = user(&app, "export-limit").await;
    tree::write(&u.root, "a/x.txt", b"x");
    download(&app, &u, request("a", ArchiveFormat::Zip))
        .await
        .unwrap();
    let refused = assert_code(
        download(&app, &u, request("a", ArchiveFormat::Tar)).await,
        Code::ResourceExhausted,
    );
    assert_eq!(
        crate::common::reason(&refused),
        "RATE_LIMITED",
        "{refused:?}"
    );
    // Other calls are in another bucket.
    files(&app)
        .list_directory(bearer(pb::ListDirectoryRequest::default(), &u.token))
        .await
        .unwrap();
}
