//! Issue 20's uploads on a real server, Postgres and (REST) the real Envoy:
//! the SKIP_IF_IDENTICAL conflict policy, modify_time on every upload path,
//! raw-body uploads (UploadRawFile) and resumable upload sessions.

use std::{path::Path, time::Duration};

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, FileConflictPolicy, OperationState, file_service_client::FileServiceClient,
    upload_file_request::Data,
};
use prost_types::Timestamp;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, transport::Channel};

use crate::{
    common::{Options, TestApp, assert_code, bad_field, bearer, envoy::Envoy},
    files::{content, files, small_request},
    operations::{User, create, organize, user, wait_for},
};

/// 2019-06-15T12:00:00Z.
const IN_2019: i64 = 1_560_600_000;

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

pub(crate) fn read(user: &User, path: &str) -> Vec<u8> {
    std::fs::read(user.root.join(path)).unwrap()
}

/// The names in a folder of the user's storage, sorted.
fn names(user: &User, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(user.root.join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn mtime(path: &Path) -> i64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn used_bytes(app: &TestApp, user: &User) -> i64 {
    app.auth()
        .get_current_user(bearer(pb::GetCurrentUserRequest::default(), &user.token))
        .await
        .unwrap()
        .into_inner()
        .storage_used_bytes
}

pub(crate) async fn small(
    app: &TestApp,
    user: &User,
    request: pb::UploadSmallFileRequest,
) -> Result<pb::UploadSmallFileResponse, Status> {
    files(app)
        .upload_small_file(bearer(request, &user.token))
        .await
        .map(|r| r.into_inner())
}

pub(crate) async fn stream(
    app: &TestApp,
    user: &User,
    metadata: pb::UploadFileMetadata,
    content: &[u8],
) -> Result<pb::UploadFileResponse, Status> {
    let mut messages = vec![pb::UploadFileRequest {
        data: Some(Data::Metadata(metadata)),
    }];
    messages.extend(content.chunks(64 * 1024).map(|c| pb::UploadFileRequest {
        data: Some(Data::Chunk(c.to_vec())),
    }));
    files(app)
        .upload_file(bearer(tokio_stream::iter(messages), &user.token))
        .await
        .map(|r| r.into_inner())
}

fn skip(path: &str, content: &[u8]) -> pb::UploadSmallFileRequest {
    pb::UploadSmallFileRequest {
        conflict_policy: FileConflictPolicy::SkipIfIdentical as i32,
        ..small_request(path, content)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_if_identical_never_copies_and_never_overwrites() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "skip").await;

    let first = small(&app, &ann, skip("docs/a.txt", b"one")).await.unwrap();
    assert!(!first.skipped_identical);
    assert_eq!(first.file.unwrap().path, "docs/a.txt");
    let used = used_bytes(&app, &ann).await;
    assert_eq!(used, 3);

    // Retried, over each path: nothing written, the existing file answered.
    let again = small(&app, &ann, skip("docs/a.txt", b"one")).await.unwrap();
    assert!(again.skipped_identical);
    let again = again.file.unwrap();
    assert_eq!(
        (again.path.as_str(), again.content_hash.as_str()),
        ("docs/a.txt", blake3::hash(b"one").to_hex().as_str())
    );
    let streamed = stream(
        &app,
        &ann,
        pb::UploadFileMetadata {
            path: "docs/a.txt".into(),
            size_bytes: 3,
            conflict_policy: FileConflictPolicy::SkipIfIdentical as i32,
            ..Default::default()
        },
        b"one",
    )
    .await
    .unwrap();
    assert!(streamed.skipped_identical);
    assert_eq!(names(&ann, "docs"), ["a.txt"]);
    assert_eq!(
        used_bytes(&app, &ann).await,
        used,
        "a skipped upload is free"
    );

    // Different content under the same name: kept beside, never over it.
    let other = small(&app, &ann, skip("docs/a.txt", b"two!"))
        .await
        .unwrap();
    assert!(!other.skipped_identical);
    assert_eq!(other.file.unwrap().path, "docs/a (1).txt");
    assert_eq!(read(&ann, "docs/a.txt"), b"one");
    assert_eq!(read(&ann, "docs/a (1).txt"), b"two!");
    // Retrying that one finds it under its " (1)" name: still no copy.
    let retried = small(&app, &ann, skip("docs/a.txt", b"two!"))
        .await
        .unwrap();
    assert!(retried.skipped_identical);
    assert_eq!(retried.file.unwrap().path, "docs/a (1).txt");
    assert_eq!(names(&ann, "docs"), ["a (1).txt", "a.txt"]);
    assert_eq!(used_bytes(&app, &ann).await, 7);

    // A folder in the way is not "identical": the upload goes beside it.
    std::fs::create_dir(ann.root.join("docs/b.txt")).unwrap();
    let beside = small(&app, &ann, skip("docs/b.txt", b"one")).await.unwrap();
    assert_eq!(beside.file.unwrap().path, "docs/b (1).txt");

    // The policy is an upload's: a restore refuses it, naming the field.
    let refused = assert_code(
        files(&app)
            .restore_file(bearer(
                pb::RestoreFileRequest {
                    name: format!("trash/{}", uuid::Uuid::new_v4()),
                    path: String::new(),
                    conflict_policy: FileConflictPolicy::SkipIfIdentical as i32,
                },
                &ann.token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&refused), "conflict_policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modify_time_is_set_on_every_upload_path_and_drives_the_layout() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "mtime").await;

    small(
        &app,
        &ann,
        pb::UploadSmallFileRequest {
            modify_time: at(IN_2019),
            ..small_request("inbox/small.jpg", b"small photo")
        },
    )
    .await
    .unwrap();
    stream(
        &app,
        &ann,
        pb::UploadFileMetadata {
            path: "inbox/streamed.jpg".into(),
            size_bytes: 8,
            modify_time: at(IN_2019 + 86_400),
            ..Default::default()
        },
        b"streamed",
    )
    .await
    .unwrap();
    assert_eq!(mtime(&ann.root.join("inbox/small.jpg")), IN_2019);
    assert_eq!(
        mtime(&ann.root.join("inbox/streamed.jpg")),
        IN_2019 + 86_400
    );
    let listing = files(&app)
        .list_directory(bearer(
            pb::ListDirectoryRequest {
                path: "inbox".into(),
                ..Default::default()
            },
            &ann.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let times: Vec<i64> = listing
        .entries
        .iter()
        .map(|e| e.modify_time.unwrap().seconds)
        .collect();
    assert_eq!(times, [IN_2019, IN_2019 + 86_400]);

    // Absurd times are refused before anything is stored, naming the field.
    let now = chrono::Utc::now().timestamp();
    for (time, what) in [
        (
            Timestamp {
                seconds: -1,
                nanos: 0,
            },
            "before 1970",
        ),
        (
            Timestamp {
                seconds: now + 3 * 86_400,
                nanos: 0,
            },
            "in the future",
        ),
        (
            Timestamp {
                seconds: IN_2019,
                nanos: -5,
            },
            "negative nanos",
        ),
        (
            Timestamp {
                seconds: IN_2019,
                nanos: 1_000_000_000,
            },
            "nanos overflow",
        ),
    ] {
        let status = assert_code(
            small(
                &app,
                &ann,
                pb::UploadSmallFileRequest {
                    modify_time: Some(time),
                    ..small_request("inbox/bad.jpg", b"x")
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), "modify_time", "{what}");
        let status = assert_code(
            stream(
                &app,
                &ann,
                pb::UploadFileMetadata {
                    path: "inbox/bad.jpg".into(),
                    size_bytes: 1,
                    modify_time: Some(time),
                    ..Default::default()
                },
                b"x",
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), "metadata.modify_time", "{what}");
    }
    assert_eq!(names(&ann, "inbox"), ["small.jpg", "streamed.jpg"]);

    // The {year}/{month} layout sees the uploaded time, not the upload's.
    let op = create(
        &app,
        &ann,
        pb::Operation {
            destination_path: "sorted".into(),
            layout_template: "{year}/{month}/{name}".into(),
            ..organize("inbox")
        },
    )
    .await;
    wait_for(&app, &ann, &op.name, &[OperationState::Succeeded]).await;
    assert_eq!(read(&ann, "sorted/2019/06/small.jpg"), b"small photo");
    assert_eq!(read(&ann, "sorted/2019/06/streamed.jpg"), b"streamed");
}

/// The pattern of a raw-body test file: every byte value, not text.
fn binary(len: usize) -> Vec<u8> {
    let mut bytes = content(len, 7);
    for (i, b) in bytes.iter_mut().take(256).enumerate() {
        *b = i as u8;
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_body_uploads_through_envoy_are_byte_exact() {
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let ann = user(&app, "raw").await;
    // More than Envoy's 32 MiB transcoder body limit: streamed, not buffered.
    let body = binary(40 * 1024 * 1024 + 12_345);

    let response = http
        .post(envoy.url("/api/v1/files:upload"))
        .query(&[
            ("path", "inbox/big file.iso"),
            ("modify_time", "2019-06-15T12:00:00Z"),
        ])
        .header("content-type", "application/octet-stream")
        .bearer_auth(&ann.token)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["file"]["path"], "inbox/big file.iso", "{stored}");
    assert_eq!(
        stored["file"]["size_bytes"],
        body.len().to_string(),
        "{stored}"
    );
    assert_eq!(
        stored["file"]["content_hash"],
        blake3::hash(&body).to_hex().as_str()
    );
    assert_eq!(stored["skipped_identical"], false);
    assert_eq!(stored["file"]["modify_time"], "2019-06-15T12:00:00Z");

    let downloaded = http
        .get(envoy.url("/api/v1/files:download"))
        .query(&[("path", "inbox/big file.iso")])
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(downloaded.as_ref() == body, "the downloaded bytes differ");
    assert_eq!(mtime(&ann.root.join("inbox/big file.iso")), IN_2019);

    // Retried with SKIP_IF_IDENTICAL: no copy. Without: refused, not overwritten.
    let retried: Value = http
        .post(envoy.url("/api/v1/files:upload"))
        .query(&[
            ("path", "inbox/big file.iso"),
            ("conflict_policy", "FILE_CONFLICT_POLICY_SKIP_IF_IDENTICAL"),
        ])
        .bearer_auth(&ann.token)
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(retried["skipped_identical"], true, "{retried}");
    let refused = http
        .post(envoy.url("/api/v1/files:upload"))
        .query(&[("path", "inbox/big file.iso")])
        .bearer_auth(&ann.token)
        .body(&b"other"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(names(&ann, "inbox"), ["big file.iso"]);

    // An empty body is an empty file; a wrong announced size stores nothing.
    let empty: Value = http
        .post(envoy.url("/api/v1/files:upload"))
        .query(&[("path", "inbox/empty")])
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty["file"]["size_bytes"], "0", "{empty}");
    let short = http
        .post(envoy.url("/api/v1/files:upload"))
        .query(&[("path", "inbox/short"), ("size_bytes", "10")])
        .bearer_auth(&ann.token)
        .body(&b"12345"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let error: Value = short.json().await.unwrap();
    assert!(
        error["message"].as_str().unwrap().contains("size_bytes"),
        "{error}"
    );
    let bad_time = http
        .post(envoy.url("/api/v1/files:upload"))
        .query(&[
            ("path", "inbox/late"),
            ("modify_time", "2999-01-01T00:00:00Z"),
        ])
        .bearer_auth(&ann.token)
        .body(&b"x"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_time.status(), StatusCode::BAD_REQUEST);
    assert_eq!(names(&ann, "inbox"), ["big file.iso", "empty"]);
    assert_eq!(
        used_bytes(&app, &ann).await,
        body.len() as i64,
        "only what was stored counts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_uploads_count_against_the_upload_rate_limit_and_the_quota() {
    let app = TestApp::spawn_with(Options {
        env: vec![("RATE_LIMIT_UPLOAD", "2".into())],
        ..Default::default()
    })
    .await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let ann = user(&app, "raw-limits").await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let response = http
            .post(envoy.url("/api/v1/files:upload"))
            .query(&[("path", format!("inbox/{i}.bin"))])
            .bearer_auth(&ann.token)
            .body(vec![i as u8; 1000])
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(names(&ann, "inbox"), ["0.bin", "1.bin"]);

    // The quota bounds a body of unannounced size as it arrives.
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let bob = user(&app, "raw-quota").await;
    let mut conn = app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE users SET storage_quota_bytes = 3000000"),
        &mut conn,
    )
    .await
    .unwrap();
    let response = http
        .post(envoy.url("/api/v1/files:upload"))
        .query(&[("path", "inbox/too-big.bin")])
        .bearer_auth(&bob.token)
        .body(binary(5 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!bob.root.join("inbox").exists() || names(&bob, "inbox").is_empty());
    assert_eq!(used_bytes(&app, &bob).await, 0);
}

// ---------------------------------------------------------------- sessions

pub(crate) fn session(path: &str, size: usize) -> pb::Upload {
    pb::Upload {
        path: path.into(),
        size_bytes: size as i64,
        ..Default::default()
    }
}

pub(crate) async fn create_session(
    app: &TestApp,
    user: &User,
    upload: pb::Upload,
) -> Result<pb::Upload, Status> {
    files(app)
        .create_upload(bearer(
            pb::CreateUploadRequest {
                upload: Some(upload),
            },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner())
}

pub(crate) async fn get_session(
    app: &TestApp,
    user: &User,
    name: &str,
) -> Result<pb::Upload, Status> {
    files(app)
        .get_upload(bearer(
            pb::GetUploadRequest { name: name.into() },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner())
}

fn append_message(name: &str, offset: usize, data: &[u8]) -> pb::AppendUploadRequest {
    pb::AppendUploadRequest {
        name: name.into(),
        offset: offset as i64,
        content: Some(fileorganizer::pb::google::api::HttpBody {
            content_type: String::new(),
            data: data.to_vec(),
            extensions: Vec::new(),
        }),
    }
}

/// Appends `data` at `offset` in 256 KiB messages.
pub(crate) async fn append(
    app: &TestApp,
    user: &User,
    name: &str,
    offset: usize,
    data: &[u8],
) -> Result<pb::Upload, Status> {
    let mut messages: Vec<_> = data
        .chunks(256 * 1024)
        .enumerate()
        .map(|(i, chunk)| append_message(if i == 0 { name } else { "" }, offset, chunk))
        .collect();
    if messages.is_empty() {
        messages.push(append_message(name, offset, b""));
    }
    files(app)
        .append_upload(bearer(tokio_stream::iter(messages), &user.token))
        .await
        .map(|r| r.into_inner())
}

async fn finish(
    app: &TestApp,
    user: &User,
    name: &str,
) -> Result<pb::FinishUploadResponse, Status> {
    files(app)
        .finish_upload(bearer(
            pb::FinishUploadRequest { name: name.into() },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn cancel(app: &TestApp, user: &User, name: &str) -> Result<(), Status> {
    files(app)
        .cancel_upload(bearer(
            pb::CancelUploadRequest { name: name.into() },
            &user.token,
        ))
        .await
        .map(drop)
}

fn session_files(user: &User) -> Vec<String> {
    match std::fs::read_dir(user.root.join(".fileorg-tmp-uploads")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// ABORTED / RESOURCE_BUSY: another request held the session for longer
/// than the server waits, with a RetryInfo.
fn busy(status: &Status) -> bool {
    let details = tonic_types::StatusExt::get_error_details(status);
    status.code() == Code::Aborted
        && details.error_info().map(|i| i.reason.as_str()) == Some("RESOURCE_BUSY")
        && details.retry_info().is_some()
}

/// An append that the server may still be committing from a cut request
/// is refused as busy for a moment: retried (a bounded number of times).
async fn append_when_free(
    app: &TestApp,
    user: &User,
    name: &str,
    offset: usize,
    data: &[u8],
) -> Result<pb::Upload, Status> {
    for _ in 0..600 {
        match append(app, user, name, offset, data).await {
            Err(status) if busy(&status) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
    panic!("the session stayed busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_after_the_grpc_stream_is_cut_mid_file() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "resume").await;
    let body = binary(3 * 1024 * 1024 + 77);
    let hash = blake3::hash(&body).to_hex().to_string();
    let upload = create_session(
        &app,
        &ann,
        pb::Upload {
            content_hash: hash.clone(),
            modify_time: at(IN_2019),
            ..session("videos/clip.mp4", body.len())
        },
    )
    .await
    .unwrap();
    assert!(upload.name.starts_with("uploads/"), "{upload:?}");
    assert_eq!(upload.committed_offset, 0);
    assert!(upload.expire_time.unwrap().seconds > upload.create_time.unwrap().seconds);
    // The whole size is reserved at once.
    assert_eq!(used_bytes(&app, &ann).await, body.len() as i64);

    // A client that sends 1.5 MiB of its stream and dies.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut client: FileServiceClient<Channel> = files(&app);
    let request = bearer(ReceiverStream::new(rx), &ann.token);
    let call = tokio::spawn(async move { client.append_upload(request).await });
    let sent = 1024 * 1024 + 512 * 1024;
    for (i, chunk) in body[..sent].chunks(512 * 1024).enumerate() {
        let name = if i == 0 { upload.name.as_str() } else { "" };
        tx.send(append_message(name, 0, chunk)).await.unwrap();
    }
    // Let the server take what was sent (it reports no progress mid-stream:
    // poll the committed offset only after the cut).
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.abort();
    drop(tx);

    // Ask where to resume: at most what was sent, every byte of it intact.
    let mut resumed = None;
    for _ in 0..600 {
        match append(&app, &ann, &upload.name, usize::MAX >> 1, b"").await {
            Err(status) if busy(&status) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                resumed = Some(status);
                break;
            }
            Ok(other) => panic!("an offset past the committed one was accepted: {other:?}"),
        }
    }
    // The refusal names the committed offset, in its message and details.
    // (The cut request may still commit after this answer if the server had
    // not started it yet: resuming from an older offset is safe, since bytes
    // that are already there are compared, not written twice.)
    let past = resumed.expect("the session stayed busy");
    let details = tonic_types::StatusExt::get_error_details(&past);
    let committed: usize = details.error_info().unwrap().metadata["committed_offset"]
        .parse()
        .unwrap();
    eprintln!("gRPC append cut after {sent} bytes: {committed} committed");
    assert!(committed <= sent, "{committed} > {sent}");
    assert!(
        past.message()
            .contains(&format!("committed offset {committed}")),
        "{past:?}"
    );
    let now = get_session(&app, &ann, &upload.name).await.unwrap();
    assert!(
        (committed..=sent).contains(&(now.committed_offset as usize)),
        "{now:?}"
    );

    // A finish before every byte is there is refused and keeps the session.
    assert_code(
        finish(&app, &ann, &upload.name).await,
        Code::FailedPrecondition,
    );
    // Resume, repeating a little of what was committed (idempotent).
    let from = committed.saturating_sub(1000);
    let done = append_when_free(&app, &ann, &upload.name, from, &body[from..])
        .await
        .unwrap();
    assert_eq!(done.committed_offset as usize, body.len());
    let mut finished = finish(&app, &ann, &upload.name).await;
    for _ in 0..600 {
        match &finished {
            Err(status) if busy(status) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                finished = finish(&app, &ann, &upload.name).await;
            }
            _ => break,
        }
    }
    let finished = finished.unwrap();
    let file = finished.file.unwrap();
    assert_eq!(
        (file.path.as_str(), file.content_hash.as_str()),
        ("videos/clip.mp4", hash.as_str())
    );
    assert!(
        read(&ann, "videos/clip.mp4") == body,
        "the stored bytes differ"
    );
    assert_eq!(mtime(&ann.root.join("videos/clip.mp4")), IN_2019);
    assert_eq!(used_bytes(&app, &ann).await, body.len() as i64);
    // The session is over, its bytes moved (not copied) into place.
    assert_code(get_session(&app, &ann, &upload.name).await, Code::NotFound);
    assert!(session_files(&ann).is_empty(), "{:?}", session_files(&ann));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_appends_check_offsets_and_hashes() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "offsets").await;
    let body = binary(300_000);
    let upload = create_session(&app, &ann, session("a/b.bin", body.len()))
        .await
        .unwrap();
    let name = upload.name.as_str();
    assert_eq!(
        append(&app, &ann, name, 0, &body[..100_000])
            .await
            .unwrap()
            .committed_offset,
        100_000
    );
    // A retried chunk (same bytes at an earlier offset) changes nothing...
    assert_eq!(
        append(&app, &ann, name, 0, &body[..100_000])
            .await
            .unwrap()
            .committed_offset,
        100_000
    );
    // ...and one that overlaps and goes on appends the new part.
    assert_eq!(
        append(&app, &ann, name, 50_000, &body[50_000..150_000])
            .await
            .unwrap()
            .committed_offset,
        150_000
    );
    // Different bytes over committed ones are refused, and change nothing.
    let mut forged = body[..150_000].to_vec();
    forged[120_000] ^= 1;
    assert_code(
        append(&app, &ann, name, 0, &forged).await,
        Code::FailedPrecondition,
    );
    // Past the committed offset, or past the size: refused.
    let gap = assert_code(
        append(&app, &ann, name, 150_001, &body[150_001..]).await,
        Code::FailedPrecondition,
    );
    assert!(gap.message().contains("150000"), "{gap:?}");
    let mut longer = body[150_000..].to_vec();
    longer.push(0);
    assert_code(
        append(&app, &ann, name, 150_000, &longer).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        get_session(&app, &ann, name)
            .await
            .unwrap()
            .committed_offset,
        150_000
    );
    append(&app, &ann, name, 150_000, &body[150_000..])
        .await
        .unwrap();
    let finished = finish(&app, &ann, name).await.unwrap();
    assert!(read(&ann, "a/b.bin") == body);
    assert!(!finished.skipped_identical);

    // The expected hash is checked at the end: a mismatch discards the
    // session, its bytes and its reservation.
    let used = used_bytes(&app, &ann).await;
    let wrong = create_session(
        &app,
        &ann,
        pb::Upload {
            content_hash: blake3::hash(b"something else").to_hex().to_string(),
            ..session("a/c.bin", 10)
        },
    )
    .await
    .unwrap();
    append(&app, &ann, &wrong.name, 0, b"0123456789")
        .await
        .unwrap();
    assert_eq!(used_bytes(&app, &ann).await, used + 10);
    let status = assert_code(finish(&app, &ann, &wrong.name).await, Code::DataLoss);
    assert_eq!(bad_field(&status), "upload.content_hash");
    assert_code(get_session(&app, &ann, &wrong.name).await, Code::NotFound);
    assert!(!ann.root.join("a/c.bin").exists());
    assert!(session_files(&ann).is_empty());
    assert_eq!(used_bytes(&app, &ann).await, used);

    // SKIP_IF_IDENTICAL at the end of a session: nothing stored, reservation back.
    let same = create_session(
        &app,
        &ann,
        pb::Upload {
            conflict_policy: FileConflictPolicy::SkipIfIdentical as i32,
            ..session("a/b.bin", body.len())
        },
    )
    .await
    .unwrap();
    append(&app, &ann, &same.name, 0, &body).await.unwrap();
    let skipped = finish(&app, &ann, &same.name).await.unwrap();
    assert!(skipped.skipped_identical);
    assert_eq!(skipped.file.unwrap().path, "a/b.bin");
    assert_eq!(names(&ann, "a"), ["b.bin"]);
    assert_eq!(used_bytes(&app, &ann).await, used);

    // FAIL (the default) refuses a taken path at creation.
    let taken = assert_code(
        create_session(&app, &ann, session("a/b.bin", 1)).await,
        Code::AlreadyExists,
    );
    assert!(taken.message().contains("a/b.bin"), "{taken:?}");
    // Bad requests name their field.
    for (upload, field) in [
        (session("../x", 1), "upload.path"),
        (session(".fileorg-tmp-uploads/x", 1), "upload.path"),
        (
            pb::Upload {
                size_bytes: -1,
                ..session("x", 0)
            },
            "upload.size_bytes",
        ),
        (
            pb::Upload {
                content_hash: "xyz".into(),
                ..session("x", 1)
            },
            "upload.content_hash",
        ),
        (
            pb::Upload {
                modify_time: at(-10),
                ..session("x", 1)
            },
            "upload.modify_time",
        ),
    ] {
        let status = assert_code(
            create_session(&app, &ann, upload).await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), field);
    }
    let status = assert_code(
        get_session(&app, &ann, "uploads/nope").await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&status), "name");

    // More than the quota is refused at creation.
    let status = assert_code(
        create_session(&app, &ann, session("huge.bin", 1 << 50)).await,
        Code::ResourceExhausted,
    );
    assert!(status.message().contains("quota"), "{status:?}");

    // Cancel: bytes and reservation gone.
    let dropped = create_session(&app, &ann, session("d.bin", 1000))
        .await
        .unwrap();
    append(&app, &ann, &dropped.name, 0, &[1; 500])
        .await
        .unwrap();
    cancel(&app, &ann, &dropped.name).await.unwrap();
    assert_code(get_session(&app, &ann, &dropped.name).await, Code::NotFound);
    assert!(session_files(&ann).is_empty());
    assert_eq!(used_bytes(&app, &ann).await, used);
    // Session files are never listed, even with show_hidden.
    let root = files(&app)
        .list_directory(bearer(
            pb::ListDirectoryRequest {
                show_hidden: true,
                ..Default::default()
            },
            &ann.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        root.entries.iter().all(|e| !e.name.starts_with(".fileorg")),
        "{root:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_isolated_between_users() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "iso-ann").await;
    let bob = user(&app, "iso-bob").await;
    let upload = create_session(&app, &ann, session("mine.bin", 10))
        .await
        .unwrap();
    append(&app, &ann, &upload.name, 0, b"01234").await.unwrap();

    assert_code(get_session(&app, &bob, &upload.name).await, Code::NotFound);
    assert_code(
        append(&app, &bob, &upload.name, 5, b"EVIL!").await,
        Code::NotFound,
    );
    assert_code(finish(&app, &bob, &upload.name).await, Code::NotFound);
    assert_code(cancel(&app, &bob, &upload.name).await, Code::NotFound);
    assert_eq!(used_bytes(&app, &bob).await, 0);
    assert!(session_files(&bob).is_empty());

    // Ann's session is untouched by all that.
    let got = get_session(&app, &ann, &upload.name).await.unwrap();
    assert_eq!(got.committed_offset, 5);
    append(&app, &ann, &upload.name, 5, b"56789").await.unwrap();
    finish(&app, &ann, &upload.name).await.unwrap();
    assert_eq!(read(&ann, "mine.bin"), b"0123456789");
    assert!(!bob.root.join("mine.bin").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_swept_with_their_bytes_and_reservation() {
    let app = TestApp::spawn_with(Options {
        env: vec![("UPLOAD_SESSION_TTL_SECS", "1".into())],
        ..Default::default()
    })
    .await;
    let ann = user(&app, "expiry").await;
    let upload = create_session(&app, &ann, session("late.bin", 4096))
        .await
        .unwrap();
    let appended = append(&app, &ann, &upload.name, 0, &[9; 100]).await;
    // With a one-second life the append may already be too late.
    if let Err(status) = &appended {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let mut conn = app.db().await;
    let mut swept = false;
    for _ in 0..600 {
        let rows: i64 = diesel_async::RunQueryDsl::get_result(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "(SELECT count(*) FROM upload_sessions)",
            )),
            &mut conn,
        )
        .await
        .unwrap();
        if rows == 0 && session_files(&ann).is_empty() {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swept, "the expired session was not swept");
    assert_code(get_session(&app, &ann, &upload.name).await, Code::NotFound);
    assert_eq!(used_bytes(&app, &ann).await, 0);
    assert!(!ann.root.join("late.bin").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_session_resumes_after_the_connection_is_cut_mid_body() {
    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let ann = user(&app, "rest-resume").await;
    let body = binary(6 * 1024 * 1024 + 3);

    let created: Value = http
        .post(envoy.url("/api/v1/uploads"))
        .bearer_auth(&ann.token)
        .json(&serde_json::json!({
            "path": "iso/disk.img",
            "size_bytes": body.len().to_string(),
            "content_hash": blake3::hash(&body).to_hex().as_str(),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = created["name"]
        .as_str()
        .expect("a session name")
        .to_string();
    assert_eq!(created["committed_offset"], "0", "{created}");

    // A raw HTTP/1.1 request announcing the whole body, cut after 4 MiB.
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", envoy.port))
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/{name}:append?offset=0 HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         authorization: Bearer {}\r\ncontent-type: application/octet-stream\r\n\
         content-length: {}\r\n\r\n",
        ann.token,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let cut = 4 * 1024 * 1024 + 1234;
    socket.write_all(&body[..cut]).await.unwrap();
    socket.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(socket);

    // tus HEAD: where to resume. Retried while the cut request commits.
    let mut committed = None;
    for _ in 0..600 {
        let got: Value = http
            .get(envoy.url(&format!("/api/v1/{name}")))
            .bearer_auth(&ann.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let offset: usize = got["committed_offset"].as_str().unwrap().parse().unwrap();
        // The next append takes the session's lock: when it gets it, the cut
        // request has committed.
        let probe = http
            .post(envoy.url(&format!("/api/v1/{name}:append")))
            .query(&[("offset", offset.to_string())])
            .bearer_auth(&ann.token)
            .send()
            .await
            .unwrap();
        if probe.status() == StatusCode::OK {
            let now: Value = probe.json().await.unwrap();
            committed = Some(
                now["committed_offset"]
                    .as_str()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap(),
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let committed = committed.expect("the session stayed busy");
    eprintln!("REST append cut after {cut} bytes: {committed} committed");
    assert!(committed <= cut, "{committed} > {cut}");

    let resumed = http
        .post(envoy.url(&format!("/api/v1/{name}:append")))
        .query(&[("offset", committed.to_string())])
        .bearer_auth(&ann.token)
        .body(body[committed..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    let finished: Value = http
        .post(envoy.url(&format!("/api/v1/{name}:finish")))
        .bearer_auth(&ann.token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(finished["file"]["path"], "iso/disk.img", "{finished}");
    let downloaded = http
        .get(envoy.url("/api/v1/files:download"))
        .query(&[("path", "iso/disk.img")])
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(downloaded.as_ref() == body, "the downloaded bytes differ");

    // A wrong offset over REST: FAILED_PRECONDITION (HTTP 400).
    let other: Value = http
        .post(envoy.url("/api/v1/uploads"))
        .bearer_auth(&ann.token)
        .json(&serde_json::json!({"path": "iso/other.img", "size_bytes": "10"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other = other["name"].as_str().unwrap().to_string();
    let wrong = http
        .post(envoy.url(&format!("/api/v1/{other}:append")))
        .query(&[("offset", "5")])
        .bearer_auth(&ann.token)
        .body(&b"abcde"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let error: Value = wrong.json().await.unwrap();
    assert_eq!(error["code"], 9, "{error}");
    let cancelled = http
        .delete(envoy.url(&format!("/api/v1/{other}")))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
}

/// An organize that applies in the folder an upload is still writing to
/// leaves the upload's temporary file alone (its scan skips it, its sweep
/// of abandoned temp files takes only old ones, its removal of emptied
/// folders keeps a folder that holds it): the upload then finishes and the
/// file is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organize_applying_beside_an_upload_in_progress_leaves_its_temp_file_alone() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "beside").await;
    crate::common::tree::write(&ann.root, "inbox/sub/photo.jpg", b"jpeg");
    crate::common::tree::write(&ann.root, "inbox/notes.txt", b"notes");
    let body = binary(3 * 1024 * 1024 + 5);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut client: FileServiceClient<Channel> = files(&app);
    let request = bearer(ReceiverStream::new(rx), &ann.token);
    let call = tokio::spawn(async move { client.upload_file(request).await });
    tx.send(pb::UploadFileRequest {
        data: Some(Data::Metadata(pb::UploadFileMetadata {
            path: "inbox/sub/big.bin".into(),
            size_bytes: body.len() as i64,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let half = body.len() / 2;
    tx.send(pb::UploadFileRequest {
        data: Some(Data::Chunk(body[..half].to_vec())),
    })
    .await
    .unwrap();
    // The temp file is there, with the first half in it.
    let temp = loop {
        let found = std::fs::read_dir(ann.root.join("inbox/sub"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".fileorg-tmp-")
                    && std::fs::metadata(p).unwrap().len() == half as u64
            });
        if let Some(found) = found {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // An organize of the folder (removing emptied folders) runs to its end.
    let op = create(&app, &ann, organize("inbox")).await;
    let done = wait_for(
        &app,
        &ann,
        &op.name,
        &[OperationState::Succeeded, OperationState::Failed],
    )
    .await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    assert_eq!(done.counters.unwrap().files_moved, 2, "only the two files");
    assert!(!ann.root.join("inbox/sub/photo.jpg").exists());
    assert!(temp.exists(), "the upload's temp file was removed");
    // The upload goes on and completes.
    tx.send(pb::UploadFileRequest {
        data: Some(Data::Chunk(body[half..].to_vec())),
    })
    .await
    .unwrap();
    drop(tx);
    let stored = call.await.unwrap().unwrap().into_inner();
    assert_eq!(stored.file.unwrap().path, "inbox/sub/big.bin");
    assert_eq!(read(&ann, "inbox/sub/big.bin"), body);
    assert!(!temp.exists());
}

/// A session held by another request: a second append waits a few seconds
/// for it; when the holder goes on, the second is refused ABORTED /
/// RESOURCE_BUSY with a RetryInfo (the SDKs wait that out), having written
/// nothing; when the holder's connection is cut while the second waits, the
/// second goes ahead from the committed offset without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_session_is_waited_for_then_refused_as_busy_with_retry_info() {
    let app = TestApp::spawn().await;
    let bea = user(&app, "busy").await;
    let body = binary(2 * 1024 * 1024);
    let upload = create_session(&app, &bea, session("big.bin", body.len()))
        .await
        .unwrap();

    // The holder: an append stream that sent 512 KiB and then goes quiet.
    let hold = |upload: &pb::Upload, from: usize| {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut client: FileServiceClient<Channel> = files(&app);
        let request = bearer(ReceiverStream::new(rx), &bea.token);
        let call = tokio::spawn(async move { client.append_upload(request).await });
        let first = append_message(&upload.name, from, &body[from..from + 512 * 1024]);
        (tx, call, first)
    };
    let (tx, call, first) = hold(&upload, 0);
    tx.send(first).await.unwrap();
    // Until the server holds the session and wrote what was sent (the
    // second append is then busy).
    let id = upload.name.trim_start_matches("uploads/").replace('-', "");
    let written = || {
        std::fs::read_dir(bea.root.join(".fileorg-tmp-uploads"))
            .into_iter()
            .flatten()
            .map(Result::unwrap)
            .filter(|e| e.file_name().to_string_lossy().contains(&id))
            .map(|e| e.metadata().unwrap().len())
            .max()
            .unwrap_or(0)
    };
    for _ in 0..600 {
        if written() >= 512 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(written(), 512 * 1024, "the holder's bytes never arrived");
    let started = tokio::time::Instant::now();
    let refused = append(&app, &bea, &upload.name, 0, &body[..1024]).await;
    let status = refused.expect_err("an append beside a held session was accepted");
    assert!(busy(&status), "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "refused without waiting for the holder: {:?}",
        started.elapsed()
    );
    assert!(status.message().contains(&upload.name), "{status:?}");

    // The holder's connection is cut while another append waits: that one
    // goes ahead (from what was committed, at most the 512 KiB sent).
    let waiting = {
        let app_files: FileServiceClient<Channel> = files(&app);
        let (name, token, body) = (upload.name.clone(), bea.token.clone(), body.clone());
        tokio::spawn(async move {
            let mut client = app_files;
            // Past the end: the refusal names the committed offset.
            client
                .append_upload(bearer(
                    tokio_stream::iter(vec![append_message(&name, body.len(), b"")]),
                    &token,
                ))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.abort();
    drop(tx);
    let answer = waiting.await.unwrap().expect_err("an offset past the end");
    assert_eq!(
        answer.code(),
        Code::FailedPrecondition,
        "the waiting append did not get the session: {answer:?}"
    );
    let committed: usize = tonic_types::StatusExt::get_error_details(&answer)
        .error_info()
        .unwrap()
        .metadata["committed_offset"]
        .parse()
        .unwrap();
    assert!(committed <= 512 * 1024, "{committed}");
    let done = append_when_free(&app, &bea, &upload.name, committed, &body[committed..])
        .await
        .unwrap();
    assert_eq!(done.committed_offset as usize, body.len());
    finish(&app, &bea, &upload.name).await.unwrap();
    assert!(read(&bea, "big.bin") == body, "the stored bytes differ");
}
