//! FileService on a real server, real files and Postgres: uploads, listings,
//! downloads, the trash, file records, search and custom categories, over
//! gRPC and (downloads) REST through the real Envoy.

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    time::Duration,
};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use fileorganizer::{
    db::models::FileRecord,
    domain::RecordStatus,
    pb::fileorganizer::v1::{
        self as pb, FileConflictPolicy, FileKind, FileRecordStatus, OperationState,
        file_service_client::FileServiceClient, upload_file_request::Data,
    },
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, transport::Channel};

use crate::{
    common::{Options, TestApp, assert_code, bad_field, bearer, envoy::Envoy, reason, tree},
    operations::{User, create, organize, records, user, wait_for},
};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

pub(crate) fn files(app: &TestApp) -> FileServiceClient<Channel> {
    FileServiceClient::new(
        Channel::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect_lazy(),
    )
    .max_decoding_message_size(64 << 20)
    .max_encoding_message_size(64 << 20)
}

fn hex_hash(content: &[u8]) -> String {
    blake3::hash(content).to_hex().to_string()
}

/// Deterministic, not very compressible test content.
pub(crate) fn content(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| {
            (i.wrapping_add(seed.wrapping_mul(7919))
                .wrapping_mul(2_654_435_761)
                >> 13) as u8
        })
        .collect()
}

pub(crate) fn small_request(path: &str, content: &[u8]) -> pb::UploadSmallFileRequest {
    pb::UploadSmallFileRequest {
        path: path.into(),
        content: content.to_vec(),
        conflict_policy: 0,
        content_hash: String::new(),
    }
}

pub(crate) async fn upload_small(
    app: &TestApp,
    user: &User,
    request: pb::UploadSmallFileRequest,
) -> Result<pb::FileEntry, Status> {
    files(app)
        .upload_small_file(bearer(request, &user.token))
        .await
        .map(|r| r.into_inner().file.unwrap())
}

fn metadata(path: &str, size: i64) -> pb::UploadFileRequest {
    pb::UploadFileRequest {
        data: Some(Data::Metadata(pb::UploadFileMetadata {
            path: path.into(),
            size_bytes: size,
            conflict_policy: 0,
            content_hash: String::new(),
        })),
    }
}

fn chunk(bytes: &[u8]) -> pb::UploadFileRequest {
    pb::UploadFileRequest {
        data: Some(Data::Chunk(bytes.to_vec())),
    }
}

/// Sends `messages` as one UploadFile stream.
async fn upload_messages(
    app: &TestApp,
    user: &User,
    messages: Vec<pb::UploadFileRequest>,
) -> Result<pb::FileEntry, Status> {
    files(app)
        .upload_file(bearer(tokio_stream::iter(messages), &user.token))
        .await
        .map(|r| r.into_inner().file.unwrap())
}

/// Uploads `content` as a stream of `chunk_size` chunks.
pub(crate) async fn upload_stream(
    app: &TestApp,
    user: &User,
    path: &str,
    content: &[u8],
    chunk_size: usize,
    policy: FileConflictPolicy,
) -> Result<pb::FileEntry, Status> {
    let mut first = metadata(path, content.len() as i64);
    if let Some(Data::Metadata(m)) = &mut first.data {
        m.conflict_policy = policy as i32;
    }
    let mut messages = vec![first];
    messages.extend(content.chunks(chunk_size).map(chunk));
    upload_messages(app, user, messages).await
}

/// Every entry of a folder, through all pages.
async fn list_all(
    app: &TestApp,
    user: &User,
    path: &str,
    show_hidden: bool,
    page_size: i32,
) -> Vec<pb::FileEntry> {
    let mut entries = Vec::new();
    let mut token = String::new();
    loop {
        let page = files(app)
            .list_directory(bearer(
                pb::ListDirectoryRequest {
                    path: path.into(),
                    page_size,
                    page_token: token,
                    show_hidden,
                },
                &user.token,
            ))
            .await
            .unwrap()
            .into_inner();
        let limit = if page_size == 0 { 100 } else { page_size };
        assert!(page.entries.len() as i32 <= limit);
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        token = page.next_page_token;
    }
}

fn names(entries: &[pb::FileEntry]) -> Vec<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

/// Content-Type of the first message and all bytes of a download.
pub(crate) async fn download(
    app: &TestApp,
    user: &User,
    path: &str,
) -> Result<(String, Vec<u8>), Status> {
    let mut stream = files(app)
        .download_file(bearer(
            pb::DownloadFileRequest { path: path.into() },
            &user.token,
        ))
        .await?
        .into_inner();
    let mut content_type = None;
    let mut bytes = Vec::new();
    while let Some(message) = stream.message().await? {
        content_type.get_or_insert(message.content_type);
        bytes.extend_from_slice(&message.data);
    }
    Ok((content_type.unwrap_or_default(), bytes))
}

/// Paths under `root` that belong to uploads in progress.
pub(crate) fn temp_files(root: &Path) -> Vec<String> {
    tree::snapshot(root)
        .into_keys()
        .filter(|k| k.contains(".fileorg-tmp-"))
        .collect()
}

pub(crate) async fn storage_used(app: &TestApp, user: &User) -> i64 {
    app.auth()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &user.token))
        .await
        .unwrap()
        .into_inner()
        .storage_used_bytes
}

fn user_id(user: &User) -> uuid::Uuid {
    uuid::Uuid::parse_str(user.root.file_name().unwrap().to_str().unwrap()).unwrap()
}

/// Sets the user's storage quota in the database.
pub(crate) async fn set_quota(app: &TestApp, user: &User, bytes: i64) {
    use fileorganizer::schema::users;
    diesel::update(users::table.find(user_id(user)))
        .set(users::storage_quota_bytes.eq(bytes))
        .execute(&mut app.db().await)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_then_list_and_download_identical_bytes() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "files").await;

    // A stream of 64 KiB chunks into a folder that does not exist yet.
    let big = content(300_001, 1);
    let stored = upload_stream(
        &app,
        &alice,
        "docs/report.pdf",
        &big,
        64 * 1024,
        FileConflictPolicy::Unspecified,
    )
    .await
    .unwrap();
    assert_eq!(stored.path, "docs/report.pdf");
    assert_eq!(stored.name, "report.pdf");
    assert_eq!(stored.kind, FileKind::File as i32);
    assert_eq!(stored.size_bytes, big.len() as i64);
    assert_eq!(stored.content_hash, hex_hash(&big));
    assert_eq!(stored.category, "Documents");
    assert!(stored.modify_time.is_some());
    assert_eq!(
        std::fs::read(alice.root.join("docs/report.pdf")).unwrap(),
        big
    );

    // Unary, no extension: categorized by content.
    let cat = upload_small(&app, &alice, small_request("photos/cat", PNG))
        .await
        .unwrap();
    assert_eq!(
        (cat.path.as_str(), cat.category.as_str()),
        ("photos/cat", "Images")
    );
    assert_eq!(cat.content_hash, hex_hash(PNG));

    // Never overwrite: ALREADY_EXISTS, unless a new name is asked for.
    for result in [
        upload_small(&app, &alice, small_request("docs/report.pdf", b"other")).await,
        upload_stream(
            &app,
            &alice,
            "docs/report.pdf",
            b"other",
            2,
            FileConflictPolicy::Fail,
        )
        .await,
    ] {
        let status = assert_code(result, Code::AlreadyExists);
        assert_eq!(reason(&status), "ALREADY_EXISTS");
    }
    let renamed = upload_small(
        &app,
        &alice,
        pb::UploadSmallFileRequest {
            conflict_policy: FileConflictPolicy::Rename as i32,
            ..small_request("docs/report.pdf", b"second")
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.path, "docs/report (1).pdf");
    let streamed = upload_stream(
        &app,
        &alice,
        "docs/report.pdf",
        b"third",
        2,
        FileConflictPolicy::Rename,
    )
    .await
    .unwrap();
    assert_eq!(streamed.path, "docs/report (2).pdf");
    assert_eq!(
        std::fs::read(alice.root.join("docs/report.pdf")).unwrap(),
        big
    );

    // An expected hash that does not match: DATA_LOSS, nothing stored.
    let mismatch = assert_code(
        upload_small(
            &app,
            &alice,
            pb::UploadSmallFileRequest {
                content_hash: hex_hash(b"something else"),
                ..small_request("docs/checked.txt", b"content")
            },
        )
        .await,
        Code::DataLoss,
    );
    assert_eq!(bad_field(&mismatch), "content_hash");
    assert!(!alice.root.join("docs/checked.txt").exists());
    let checked = upload_small(
        &app,
        &alice,
        pb::UploadSmallFileRequest {
            content_hash: hex_hash(b"content"),
            ..small_request("docs/checked.txt", b"content")
        },
    )
    .await
    .unwrap();
    assert_eq!(checked.category, "Documents");

    // Listings: sorted by name, hidden entries only on request, the trash
    // and uploads in progress never.
    tree::write(&alice.root, ".hidden", b"h");
    tree::write(&alice.root, ".trash/x/y.txt", b"trashed");
    tree::write(&alice.root, "docs/.fileorg-tmp-0123", b"partial");
    std::os::unix::fs::symlink("/etc/passwd", alice.root.join("docs/link")).unwrap();
    let root = list_all(&app, &alice, "", false, 0).await;
    assert_eq!(names(&root), ["docs", "photos"]);
    assert!(root.iter().all(|e| e.kind == FileKind::Directory as i32));
    assert!(
        root.iter()
            .all(|e| e.size_bytes == 0 && e.category.is_empty())
    );
    assert_eq!(
        names(&list_all(&app, &alice, ".", true, 0).await),
        [".hidden", "docs", "photos"]
    );
    let docs = list_all(&app, &alice, "docs", false, 0).await;
    assert_eq!(
        names(&docs),
        [
            "checked.txt",
            "link",
            "report (1).pdf",
            "report (2).pdf",
            "report.pdf"
        ]
    );
    let by_name: BTreeMap<&str, &pb::FileEntry> =
        docs.iter().map(|e| (e.name.as_str(), e)).collect();
    assert_eq!(by_name["link"].kind, FileKind::Symlink as i32);
    assert!(by_name["link"].category.is_empty());
    let report = by_name["report.pdf"];
    assert_eq!(report.path, "docs/report.pdf");
    assert_eq!(report.size_bytes, big.len() as i64);
    assert_eq!(report.category, "Documents");
    assert!(report.content_hash.is_empty(), "listings do not hash");

    // Pagination visits every entry once, in order.
    for i in 0..7 {
        tree::write(&alice.root, &format!("many/f{i}.txt"), b"x");
    }
    let paged = list_all(&app, &alice, "many", false, 3).await;
    assert_eq!(
        names(&paged),
        (0..7).map(|i| format!("f{i}.txt")).collect::<Vec<_>>()
    );
    let first = files(&app)
        .list_directory(bearer(
            pb::ListDirectoryRequest {
                path: "many".into(),
                page_size: 3,
                ..Default::default()
            },
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let replayed = assert_code(
        files(&app)
            .list_directory(bearer(
                pb::ListDirectoryRequest {
                    path: "docs".into(),
                    page_token: first.next_page_token,
                    ..Default::default()
                },
                &alice.token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&replayed), "page_token");
    let list = |path: &'static str| {
        let mut client = files(&app);
        let token = alice.token.clone();
        async move {
            client
                .list_directory(bearer(
                    pb::ListDirectoryRequest {
                        path: path.into(),
                        ..Default::default()
                    },
                    &token,
                ))
                .await
        }
    };
    assert_code(list("docs/report.pdf").await, Code::FailedPrecondition);
    assert_code(list("nowhere").await, Code::NotFound);
    assert_eq!(
        bad_field(&assert_code(list(".trash").await, Code::InvalidArgument)),
        "path"
    );

    // Downloads: the same bytes, with a Content-Type.
    let (media, bytes) = download(&app, &alice, "docs/report.pdf").await.unwrap();
    assert_eq!(media, "application/pdf");
    assert!(bytes == big, "downloaded bytes differ");
    let (media, bytes) = download(&app, &alice, "photos/cat").await.unwrap();
    assert_eq!((media.as_str(), bytes.as_slice()), ("image/png", PNG));
    tree::write(&alice.root, "empty.txt", b"");
    let (media, bytes) = download(&app, &alice, "empty.txt").await.unwrap();
    assert_eq!(media, "text/plain; charset=utf-8");
    assert!(bytes.is_empty());
    assert_code(
        download(&app, &alice, "docs").await,
        Code::FailedPrecondition,
    );
    assert_code(download(&app, &alice, "").await, Code::FailedPrecondition);
    let link = assert_code(
        download(&app, &alice, "docs/link").await,
        Code::InvalidArgument,
    );
    assert_eq!(reason(&link), "PATH_ESCAPE");
    assert_code(
        download(&app, &alice, "docs/none.pdf").await,
        Code::NotFound,
    );
    assert!(
        temp_files(&alice.root)
            .iter()
            .all(|t| t == "docs/.fileorg-tmp-0123")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_midway_leaves_nothing() {
    let app = TestApp::spawn().await;
    let bob = user(&app, "abort").await;
    let before = tree::snapshot(&bob.root);

    // The client goes away after three of ten chunks.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut client = files(&app);
    let token = bob.token.clone();
    let call = tokio::spawn(async move {
        client
            .upload_file(bearer(ReceiverStream::new(rx), &token))
            .await
    });
    let piece = content(64 * 1024, 2);
    tx.send(metadata("incoming/deep/big.bin", 10 * piece.len() as i64))
        .await
        .unwrap();
    for _ in 0..3 {
        tx.send(chunk(&piece)).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while temp_files(&bob.root).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    let _ = call.await;
    drop(tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let leftovers = tree::snapshot(&bob.root);
        if leftovers == before && !bob.root.join("incoming").exists() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "an aborted upload left {leftovers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Streams that end early, run long or are malformed store nothing.
    let short = assert_code(
        upload_messages(
            &app,
            &bob,
            vec![metadata("incoming/short.bin", 1000), chunk(&[1; 500])],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&short), "metadata.size_bytes");
    assert!(short.message().contains("500"), "{short:?}");
    let long = assert_code(
        upload_messages(
            &app,
            &bob,
            vec![
                metadata("incoming/long.bin", 10),
                chunk(&[1; 6]),
                chunk(&[1; 6]),
            ],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&long), "metadata.size_bytes");
    for (messages, field) in [
        (vec![chunk(b"no metadata")], "metadata"),
        (vec![], "metadata"),
        (
            vec![
                metadata("incoming/twice.bin", 1),
                metadata("incoming/twice.bin", 1),
            ],
            "metadata",
        ),
        (
            vec![metadata("incoming/negative.bin", -1)],
            "metadata.size_bytes",
        ),
        (vec![metadata("", 1)], "metadata.path"),
    ] {
        let status = assert_code(
            upload_messages(&app, &bob, messages).await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), field, "{status:?}");
    }
    assert_eq!(tree::snapshot(&bob.root), before);
    assert!(!bob.root.join("incoming").exists());
    assert_eq!(storage_used(&app, &bob).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_size_limits_are_enforced() {
    let app = TestApp::spawn_with(Options {
        env: vec![("MAX_UPLOAD_BYTES", "1024".into())],
        ..Default::default()
    })
    .await;
    let carol = user(&app, "quota").await;
    set_quota(&app, &carol, 3000).await;

    // The unary limit.
    let too_big = assert_code(
        upload_small(&app, &carol, small_request("a.bin", &[7; 1025])).await,
        Code::ResourceExhausted,
    );
    assert_eq!(reason(&too_big), "QUOTA_EXCEEDED");
    assert!(too_big.message().contains("1024"), "{too_big:?}");
    upload_small(&app, &carol, small_request("a.bin", &[7; 1024]))
        .await
        .unwrap();
    assert_eq!(storage_used(&app, &carol).await, 1024);
    // Streams are bounded by the quota only.
    upload_stream(
        &app,
        &carol,
        "b.bin",
        &[8; 1500],
        512,
        FileConflictPolicy::Fail,
    )
    .await
    .unwrap();
    assert_eq!(storage_used(&app, &carol).await, 2524);

    // Over the quota: refused before any byte is written.
    let over = assert_code(
        upload_messages(&app, &carol, vec![metadata("c.bin", 500)]).await,
        Code::ResourceExhausted,
    );
    assert_eq!(reason(&over), "QUOTA_EXCEEDED");
    assert!(over.message().contains("quota"), "{over:?}");
    assert_code(
        upload_small(&app, &carol, small_request("c.bin", &[9; 500])).await,
        Code::ResourceExhausted,
    );
    assert!(!carol.root.join("c.bin").exists());
    assert!(temp_files(&carol.root).is_empty());
    assert_eq!(storage_used(&app, &carol).await, 2524);

    // Deleting to the trash frees nothing; emptying the trash does.
    files(&app)
        .delete_file(bearer(
            pb::DeleteFileRequest {
                path: "a.bin".into(),
            },
            &carol.token,
        ))
        .await
        .unwrap();
    assert_eq!(storage_used(&app, &carol).await, 2524);
    assert_code(
        upload_small(&app, &carol, small_request("c.bin", &[9; 500])).await,
        Code::ResourceExhausted,
    );
    let emptied = files(&app)
        .empty_trash(bearer(pb::EmptyTrashRequest::default(), &carol.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((emptied.deleted_count, emptied.freed_bytes), (1, 1024));
    assert_eq!(storage_used(&app, &carol).await, 1500);
    upload_small(&app, &carol, small_request("c.bin", &[9; 500]))
        .await
        .unwrap();
    assert_eq!(storage_used(&app, &carol).await, 2000);
}

pub(crate) async fn delete(
    app: &TestApp,
    user: &User,
    path: &str,
) -> Result<pb::TrashItem, Status> {
    files(app)
        .delete_file(bearer(
            pb::DeleteFileRequest { path: path.into() },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner().trash_item.unwrap())
}

async fn list_trash(app: &TestApp, user: &User) -> pb::ListTrashResponse {
    files(app)
        .list_trash(bearer(pb::ListTrashRequest::default(), &user.token))
        .await
        .unwrap()
        .into_inner()
}

async fn restore(
    app: &TestApp,
    user: &User,
    name: &str,
    path: &str,
    policy: FileConflictPolicy,
) -> Result<pb::FileEntry, Status> {
    files(app)
        .restore_file(bearer(
            pb::RestoreFileRequest {
                name: name.into(),
                path: path.into(),
                conflict_policy: policy as i32,
            },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner().file.unwrap())
}

async fn empty_trash(
    app: &TestApp,
    user: &User,
    names: &[&str],
) -> Result<pb::EmptyTrashResponse, Status> {
    files(app)
        .empty_trash(bearer(
            pb::EmptyTrashRequest {
                names: names.iter().map(|n| n.to_string()).collect(),
            },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_to_trash_restore_and_empty_the_trash() {
    let app = TestApp::spawn().await;
    let dan = user(&app, "trash").await;
    for (path, body) in [
        ("notes/a.txt", &b"alpha"[..]),
        ("notes/b.txt", b"beta"),
        ("album/1.jpg", b"one"),
        ("album/sub/2.jpg", b"two!"),
    ] {
        upload_small(&app, &dan, small_request(path, body))
            .await
            .unwrap();
    }

    let a = delete(&app, &dan, "notes/a.txt").await.unwrap();
    assert!(a.name.starts_with("trash/"));
    assert_eq!(
        (a.original_path.as_str(), a.kind, a.size_bytes),
        ("notes/a.txt", FileKind::File as i32, 5)
    );
    assert!(a.operation.is_empty() && a.delete_time.is_some());
    assert!(!dan.root.join("notes/a.txt").exists());
    let album = delete(&app, &dan, "album").await.unwrap();
    assert_eq!(
        (album.kind, album.size_bytes),
        (FileKind::Directory as i32, 7)
    );
    assert!(!dan.root.join("album").exists());
    // Nothing was deleted: the bytes are in .trash.
    let on_disk = tree::content_multiset(&dan.root.join(".trash"));
    let mut expected = vec![hex_hash(b"alpha"), hex_hash(b"one"), hex_hash(b"two!")];
    expected.sort();
    assert_eq!(on_disk, expected);

    let trash = list_trash(&app, &dan).await;
    assert_eq!(
        trash
            .trash_items
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        [album.name.as_str(), a.name.as_str()],
        "newest first"
    );
    assert_eq!(trash.total_size_bytes, 12);
    assert_eq!(names(&list_all(&app, &dan, "", true, 0).await), ["notes"]);

    // Restore to the original path.
    let back = restore(&app, &dan, &a.name, "", FileConflictPolicy::Unspecified)
        .await
        .unwrap();
    assert_eq!(back.path, "notes/a.txt");
    assert_eq!(back.content_hash, hex_hash(b"alpha"));
    assert_eq!(
        std::fs::read(dan.root.join("notes/a.txt")).unwrap(),
        b"alpha"
    );
    assert_code(
        restore(&app, &dan, &a.name, "", FileConflictPolicy::Unspecified).await,
        Code::NotFound,
    );

    // The original place is taken: never overwritten.
    let a = delete(&app, &dan, "notes/a.txt").await.unwrap();
    upload_small(&app, &dan, small_request("notes/a.txt", b"newer"))
        .await
        .unwrap();
    let taken = assert_code(
        restore(&app, &dan, &a.name, "", FileConflictPolicy::Fail).await,
        Code::AlreadyExists,
    );
    assert!(taken.message().contains("notes/a.txt"), "{taken:?}");
    assert_eq!(
        std::fs::read(dan.root.join("notes/a.txt")).unwrap(),
        b"newer"
    );
    let renamed = restore(&app, &dan, &a.name, "", FileConflictPolicy::Rename)
        .await
        .unwrap();
    assert_eq!(renamed.path, "notes/a (1).txt");
    assert_eq!(
        std::fs::read(dan.root.join("notes/a (1).txt")).unwrap(),
        b"alpha"
    );
    // Or to another path (a folder, with everything in it).
    let moved = restore(
        &app,
        &dan,
        &album.name,
        "restored/album",
        FileConflictPolicy::Unspecified,
    )
    .await
    .unwrap();
    assert_eq!(
        (moved.path.as_str(), moved.kind),
        ("restored/album", FileKind::Directory as i32)
    );
    assert_eq!(
        std::fs::read(dan.root.join("restored/album/sub/2.jpg")).unwrap(),
        b"two!"
    );
    let bad_target = assert_code(
        restore(&app, &dan, &album.name, "../x", FileConflictPolicy::Fail).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&bad_target), "path");

    // EmptyTrash: the named items only, all or nothing, then everything.
    let b = delete(&app, &dan, "notes/b.txt").await.unwrap();
    let again = delete(&app, &dan, "restored").await.unwrap();
    let missing = format!("trash/{}", uuid::Uuid::new_v4());
    assert_code(
        empty_trash(&app, &dan, &[b.name.as_str(), missing.as_str()]).await,
        Code::NotFound,
    );
    assert_eq!(list_trash(&app, &dan).await.trash_items.len(), 2);
    let garbage = assert_code(
        empty_trash(&app, &dan, &["trash/not-an-id"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&garbage), "names");
    let one = empty_trash(&app, &dan, &[b.name.as_str()]).await.unwrap();
    assert_eq!((one.deleted_count, one.freed_bytes), (1, 4));
    let trash = list_trash(&app, &dan).await;
    assert_eq!(trash.trash_items.len(), 1);
    assert_eq!(trash.trash_items[0].name, again.name);
    let all = empty_trash(&app, &dan, &[]).await.unwrap();
    assert_eq!((all.deleted_count, all.freed_bytes), (1, 7));
    assert!(list_trash(&app, &dan).await.trash_items.is_empty());
    assert_eq!(
        std::fs::read_dir(dan.root.join(".trash")).unwrap().count(),
        0,
        "the trash folder is empty"
    );
    assert_code(
        restore(&app, &dan, &b.name, "", FileConflictPolicy::Rename).await,
        Code::NotFound,
    );
    let snapshot = tree::snapshot(&dan.root);
    assert_eq!(
        snapshot.keys().collect::<Vec<_>>(),
        ["notes/a (1).txt", "notes/a.txt"]
    );

    // What cannot be deleted.
    for (path, code) in [
        ("", Code::InvalidArgument),
        (".", Code::InvalidArgument),
        (".trash", Code::InvalidArgument),
        (".trash/x", Code::InvalidArgument),
        ("nope.txt", Code::NotFound),
    ] {
        let status = assert_code(delete(&app, &dan, path).await, code);
        if code == Code::InvalidArgument {
            assert_eq!(bad_field(&status), "path", "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_an_organize_moved_to_the_trash_are_in_the_trash() {
    let app = TestApp::spawn().await;
    let erin = user(&app, "optrash").await;
    tree::write(&erin.root, "in/keep.txt", b"same bytes");
    tree::write(&erin.root, "in/copy.txt", b"same bytes");
    tree::set_mtime(&erin.root, "in/keep.txt", 1_000_000_000);
    let op = create(
        &app,
        &erin,
        pb::Operation {
            duplicate_policy: pb::DuplicatePolicy::MoveToTrash as i32,
            ..organize("in")
        },
    )
    .await;
    wait_for(&app, &erin, &op.name, &[OperationState::Succeeded]).await;
    let trash = list_trash(&app, &erin).await;
    assert_eq!(trash.trash_items.len(), 1, "{trash:?}");
    let item = &trash.trash_items[0];
    assert_eq!(item.operation, op.name);
    assert_eq!(item.original_path, "in/copy.txt");
    assert_eq!(item.size_bytes, 10);
    // Listing again does not take it in twice.
    assert_eq!(list_trash(&app, &erin).await.trash_items.len(), 1);
    let back = restore(&app, &erin, &item.name, "", FileConflictPolicy::Fail)
        .await
        .unwrap();
    assert_eq!(back.path, "in/copy.txt");
    assert_eq!(
        std::fs::read(erin.root.join("in/copy.txt")).unwrap(),
        b"same bytes"
    );
    assert!(list_trash(&app, &erin).await.trash_items.is_empty());
    assert!(
        !erin
            .root
            .join(".trash")
            .join(op.name.trim_start_matches("operations/"))
            .exists()
    );
}

/// One record through every page of a ListFileRecords query.
async fn all_records(
    app: &TestApp,
    user: &User,
    request: pb::ListFileRecordsRequest,
) -> (Vec<pb::FileRecord>, pb::ListFileRecordsResponse) {
    let mut seen = Vec::new();
    let mut request = request;
    loop {
        let page = files(app)
            .list_file_records(bearer(request.clone(), &user.token))
            .await
            .unwrap()
            .into_inner();
        let limit = if request.page_size == 0 {
            100
        } else {
            request.page_size
        };
        assert!(page.file_records.len() as i32 <= limit);
        seen.extend(page.file_records.iter().cloned());
        if page.next_page_token.is_empty() {
            return (seen, page);
        }
        request.page_token = page.next_page_token.clone();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_records_filter_sort_and_page_through_every_record_once() {
    let app = TestApp::spawn().await;
    let fay = user(&app, "records").await;
    let mut i = 0;
    for (name, len) in [
        ("a.jpg", 10),
        ("b.png", 300),
        ("c.pdf", 150),
        ("d.txt", 20),
        ("e.mp3", 500),
        ("f.zip", 99),
        ("g.jpg", 100),
        ("h.docx", 101),
        ("i.rs", 5),
        ("j.gif", 250),
        ("sub/k.jpg", 10),
        ("sub/l.pdf", 150),
        ("sub/m.csv", 42),
        ("sub/deeper/n.png", 300),
        ("Documents/o.pdf", 7),
    ] {
        i += 1;
        tree::write(&fay.root, &format!("in/{name}"), &content(len, i));
    }
    // Duplicates (same content), kept and moved to _duplicates.
    tree::write(&fay.root, "in/dup1.txt", b"duplicate content");
    tree::write(&fay.root, "in/sub/dup2.txt", b"duplicate content");
    tree::write(&fay.root, "in/sub/dup3.txt", b"duplicate content");
    tree::set_mtime(&fay.root, "in/dup1.txt", 1_000_000_000);
    std::os::unix::fs::symlink("/etc/passwd", fay.root.join("in/link")).unwrap();
    let op = create(
        &app,
        &fay,
        pb::Operation {
            duplicate_policy: pb::DuplicatePolicy::MoveToDuplicatesFolder as i32,
            ..organize("in")
        },
    )
    .await;
    wait_for(&app, &fay, &op.name, &[OperationState::Succeeded]).await;
    let journal: Vec<FileRecord> = records(&app, &op.name).await;
    assert!(journal.len() >= 19, "{journal:?}");
    let statuses: HashSet<&str> = journal.iter().map(|r| r.status.as_str()).collect();
    for status in ["completed", "skipped", "duplicate"] {
        assert!(statuses.contains(status), "{statuses:?}");
    }

    type Filter = (FileRecordStatus, &'static str, i64, bool);
    let filters: Vec<Filter> = vec![
        (FileRecordStatus::Unspecified, "", 0, false),
        (FileRecordStatus::Completed, "", 0, false),
        (FileRecordStatus::Skipped, "", 0, false),
        (FileRecordStatus::Duplicate, "", 0, false),
        (FileRecordStatus::Failed, "", 0, false),
        (FileRecordStatus::Unspecified, "images", 0, false),
        (FileRecordStatus::Unspecified, "", 100, false),
        (FileRecordStatus::Unspecified, "", 0, true),
        (FileRecordStatus::Completed, "Documents", 20, false),
    ];
    let status_name = |s: FileRecordStatus| match s {
        FileRecordStatus::Completed => Some(RecordStatus::Completed),
        FileRecordStatus::Skipped => Some(RecordStatus::Skipped),
        FileRecordStatus::Duplicate => Some(RecordStatus::Duplicate),
        FileRecordStatus::Failed => Some(RecordStatus::Failed),
        _ => None,
    };
    let orders = [
        "",
        "create_time desc",
        "size_bytes",
        "size_bytes desc",
        "original_path",
        "original_path desc",
        "new_path",
        "new_path desc",
    ];
    for (status, category, min_size, duplicates_only) in &filters {
        let others = |r: &&FileRecord| {
            (category.is_empty() || r.category.eq_ignore_ascii_case(category))
                && r.size_bytes >= *min_size
                && (!duplicates_only || r.duplicate_of.is_some())
        };
        let matching: Vec<&FileRecord> = journal
            .iter()
            .filter(others)
            .filter(|r| {
                *status == FileRecordStatus::Unspecified || Some(r.status) == status_name(*status)
            })
            .collect();
        for order in orders {
            let mut expected = matching.clone();
            let descending = order.ends_with("desc");
            match order.split(' ').next().unwrap() {
                "size_bytes" => expected.sort_by_key(|r| (r.size_bytes, r.seq)),
                "original_path" => expected.sort_by(|a, b| {
                    (a.original_path.as_bytes(), a.seq).cmp(&(b.original_path.as_bytes(), b.seq))
                }),
                "new_path" => expected.sort_by(|a, b| {
                    let key = |r: &FileRecord| r.new_path.clone().unwrap_or_default();
                    (key(a), a.seq).cmp(&(key(b), b.seq))
                }),
                _ => expected.sort_by_key(|r| r.seq),
            }
            if descending {
                expected.reverse();
            }
            let (seen, last) = all_records(
                &app,
                &fay,
                pb::ListFileRecordsRequest {
                    parent: op.name.clone(),
                    page_size: 4,
                    status: *status as i32,
                    category: category.to_string(),
                    min_size_bytes: *min_size,
                    duplicates_only: *duplicates_only,
                    order_by: order.into(),
                    ..Default::default()
                },
            )
            .await;
            let seen_seqs: Vec<i64> = seen.iter().map(|r| r.seq).collect();
            let expected_seqs: Vec<i64> = expected.iter().map(|r| r.seq).collect();
            assert_eq!(
                seen_seqs, expected_seqs,
                "filter {status:?}/{category}/{min_size}/{duplicates_only}, order {order:?}"
            );
            assert_eq!(last.total_size, expected.len() as i64);
            let counts = last.status_counts.unwrap();
            let base: Vec<&FileRecord> = journal.iter().filter(others).collect();
            let count = |s: RecordStatus| base.iter().filter(|r| r.status == s).count() as i64;
            assert_eq!(counts.total, base.len() as i64);
            assert_eq!(
                (
                    counts.completed,
                    counts.skipped,
                    counts.duplicate,
                    counts.failed,
                    counts.planned,
                    counts.undone
                ),
                (
                    count(RecordStatus::Completed),
                    count(RecordStatus::Skipped),
                    count(RecordStatus::Duplicate),
                    count(RecordStatus::Failed),
                    count(RecordStatus::Planned),
                    count(RecordStatus::Undone)
                )
            );
        }
    }

    // The default page size, and the fields of a duplicate's record.
    let (everything, _) = all_records(
        &app,
        &fay,
        pb::ListFileRecordsRequest {
            parent: op.name.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(everything.len(), journal.len());
    let duplicate = everything
        .iter()
        .find(|r| r.original_path == "in/sub/dup2.txt")
        .unwrap();
    assert_eq!(duplicate.status, FileRecordStatus::Duplicate as i32);
    let keeper = everything
        .iter()
        .find(|r| r.name == duplicate.duplicate_of)
        .unwrap();
    assert_eq!(keeper.original_path, "in/dup1.txt");
    assert_eq!(duplicate.duplicate_of_path, keeper.new_path);
    assert!(duplicate.new_path.contains("_duplicates/"));
    assert_eq!(duplicate.content_hash, hex_hash(b"duplicate content"));
    assert_eq!(
        duplicate.name,
        format!("{}/files/{}", op.name, duplicate.seq)
    );
    assert_eq!(duplicate.operation, op.name);

    // Bad requests name their field; tokens only work with their query.
    let first = files(&app)
        .list_file_records(bearer(
            pb::ListFileRecordsRequest {
                parent: op.name.clone(),
                page_size: 2,
                ..Default::default()
            },
            &fay.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let bad_requests = [
        (
            pb::ListFileRecordsRequest {
                order_by: "size_bytes sideways".into(),
                ..Default::default()
            },
            "order_by",
        ),
        (
            pb::ListFileRecordsRequest {
                order_by: "name".into(),
                ..Default::default()
            },
            "order_by",
        ),
        (
            pb::ListFileRecordsRequest {
                status: 99,
                ..Default::default()
            },
            "status",
        ),
        (
            pb::ListFileRecordsRequest {
                min_size_bytes: -1,
                ..Default::default()
            },
            "min_size_bytes",
        ),
        (
            pb::ListFileRecordsRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListFileRecordsRequest {
                page_token: first.next_page_token.clone(),
                order_by: "size_bytes".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListFileRecordsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ];
    for (request, field) in bad_requests {
        let status = assert_code(
            files(&app)
                .list_file_records(bearer(
                    pb::ListFileRecordsRequest {
                        parent: op.name.clone(),
                        ..request
                    },
                    &fay.token,
                ))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_field(&status), field);
    }
    let bad_parent = assert_code(
        files(&app)
            .list_file_records(bearer(
                pb::ListFileRecordsRequest {
                    parent: "operations/nope".into(),
                    ..Default::default()
                },
                &fay.token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&bad_parent), "parent");
    assert_code(
        files(&app)
            .list_file_records(bearer(
                pb::ListFileRecordsRequest {
                    parent: format!("operations/{}", uuid::Uuid::new_v4()),
                    ..Default::default()
                },
                &fay.token,
            ))
            .await,
        Code::NotFound,
    );
}

pub(crate) async fn search(
    app: &TestApp,
    user: &User,
    request: pb::SearchFilesRequest,
) -> Result<pb::SearchFilesResponse, Status> {
    files(app)
        .search_files(bearer(request, &user.token))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_name_hash_and_category_across_operations() {
    let app = TestApp::spawn().await;
    let gus = user(&app, "search").await;
    let other = user(&app, "search-other").await;
    tree::write(&gus.root, "one/Invoice-2024.pdf", b"same invoice");
    tree::write(&gus.root, "one/photo.jpg", b"jpeg");
    tree::write(&gus.root, "one/50%_off.txt", b"fifty percent");
    tree::write(&gus.root, "one/500.txt", b"five hundred");
    tree::write(&gus.root, "two/old/invoice_copy.pdf", b"same invoice");
    tree::write(&other.root, "x/invoice.pdf", b"same invoice");
    let mut ops = Vec::new();
    for (u, source) in [(&gus, "one"), (&gus, "two"), (&other, "x")] {
        let op = create(
            &app,
            u,
            pb::Operation {
                hash_all_files: true,
                ..organize(source)
            },
        )
        .await;
        wait_for(&app, u, &op.name, &[OperationState::Succeeded]).await;
        ops.push(op);
    }

    let by_name = search(
        &app,
        &gus,
        pb::SearchFilesRequest {
            name_contains: "INVOICE".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let paths: Vec<&str> = by_name
        .file_records
        .iter()
        .map(|r| r.original_path.as_str())
        .collect();
    // Newest first: the second operation's record, then the first's.
    assert_eq!(paths, ["two/old/invoice_copy.pdf", "one/Invoice-2024.pdf"]);
    assert_eq!(
        by_name.file_records[0].new_path,
        "two/Documents/invoice_copy.pdf"
    );
    // "where else do I have this file?"
    let by_hash = search(
        &app,
        &gus,
        pb::SearchFilesRequest {
            content_hash: hex_hash(b"same invoice"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_hash.file_records.len(), 2, "only the caller's records");
    assert!(
        by_hash
            .file_records
            .iter()
            .all(|r| r.content_hash == hex_hash(b"same invoice"))
    );
    // LIKE wildcards in the text are literal.
    let percent = search(
        &app,
        &gus,
        pb::SearchFilesRequest {
            name_contains: "50%".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(percent.file_records.len(), 1);
    assert_eq!(percent.file_records[0].original_path, "one/50%_off.txt");
    // The new name counts too; the folder names do not.
    let documents_folder = search(
        &app,
        &gus,
        pb::SearchFilesRequest {
            name_contains: "Documents".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(documents_folder.file_records.is_empty());
    let by_category = search(
        &app,
        &gus,
        pb::SearchFilesRequest {
            category: "documents".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_category.file_records.len(), 4);
    let combined = search(
        &app,
        &gus,
        pb::SearchFilesRequest {
            name_contains: "invoice".into(),
            category: "Images".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(combined.file_records.is_empty());
    let in_one = search(
        &app,
        &gus,
        pb::SearchFilesRequest {
            name_contains: "invoice".into(),
            operation: ops[0].name.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(in_one.file_records.len(), 1);

    // Pages of one.
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let page = search(
            &app,
            &gus,
            pb::SearchFilesRequest {
                category: "Documents".into(),
                page_size: 1,
                page_token: token,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        paged.extend(page.file_records.into_iter().map(|r| r.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let all: Vec<String> = by_category
        .file_records
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(paged, all);

    // Another user's operation is not found; bad input names its field.
    assert_code(
        search(
            &app,
            &gus,
            pb::SearchFilesRequest {
                name_contains: "invoice".into(),
                operation: ops[2].name.clone(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
    );
    for (request, field) in [
        (
            pb::SearchFilesRequest {
                name_contains: "ab".into(),
                ..Default::default()
            },
            "name_contains",
        ),
        (pb::SearchFilesRequest::default(), "name_contains"),
        (
            pb::SearchFilesRequest {
                content_hash: "xyz".into(),
                ..Default::default()
            },
            "content_hash",
        ),
        (
            pb::SearchFilesRequest {
                category: "Images".into(),
                operation: "ops/1".into(),
                ..Default::default()
            },
            "operation",
        ),
    ] {
        let status = assert_code(search(&app, &gus, request).await, Code::InvalidArgument);
        assert_eq!(bad_field(&status), field);
    }

    // The name search is served by the trigram index of file_names, not a
    // scan (tests/api/search.rs: names not yet indexed).
    #[derive(QueryableByName)]
    struct PlanLine {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let mut conn = app.db().await;
    diesel::sql_query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan: Vec<PlanLine> =
        diesel::sql_query("EXPLAIN SELECT * FROM file_names WHERE names LIKE lower('%invoice%')")
            .load(&mut conn)
            .await
            .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|l| l.line).collect();
    assert!(
        plan.iter().any(|l| l.contains("file_names_trgm_idx")),
        "{plan:#?}"
    );
}

async fn list_categories(app: &TestApp, user: &User) -> Vec<pb::Category> {
    files(app)
        .list_categories(bearer(pb::ListCategoriesRequest::default(), &user.token))
        .await
        .unwrap()
        .into_inner()
        .categories
}

pub(crate) async fn create_category(
    app: &TestApp,
    user: &User,
    category: pb::Category,
) -> Result<pb::Category, Status> {
    files(app)
        .create_category(bearer(
            pb::CreateCategoryRequest {
                category: Some(category),
            },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner())
}

pub(crate) fn category(name: &str, extensions: &[&str], globs: &[&str]) -> pb::Category {
    pb::Category {
        display_name: name.into(),
        extensions: extensions.iter().map(|s| s.to_string()).collect(),
        globs: globs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_categories_drive_the_next_organize_and_built_ins_are_read_only() {
    let app = TestApp::spawn().await;
    let hal = user(&app, "categories").await;
    let ivy = user(&app, "categories-other").await;

    let listed = list_categories(&app, &hal).await;
    assert_eq!(listed.len(), 12);
    assert_eq!(listed[0].name, "categories/documents");
    assert_eq!(listed[11].display_name, "Other");
    assert!(listed.iter().all(|c| c.built_in && c.file_count == 0));
    assert!(listed[1].extensions.contains(&"jpg".to_string()));

    let invoices = create_category(
        &app,
        &hal,
        pb::Category {
            color: "#FFAA00".into(),
            icon: "receipt".into(),
            ..category("Invoices", &[".INV"], &["invoice-*.pdf"])
        },
    )
    .await
    .unwrap();
    assert!(invoices.name.starts_with("categories/") && !invoices.built_in);
    assert_eq!(invoices.extensions, ["inv"]);
    assert_eq!(invoices.globs, ["invoice-*.pdf"]);
    assert_eq!(invoices.color, "#ffaa00");
    assert!(invoices.create_time.is_some());
    // Tried in creation order: Zeta before Alpha, both claiming .dat.
    create_category(&app, &hal, category("Zeta", &["dat"], &[]))
        .await
        .unwrap();
    create_category(&app, &hal, category("Alpha", &["dat"], &[]))
        .await
        .unwrap();

    for (candidate, code, field) in [
        (category("invoices", &["x"], &[]), Code::AlreadyExists, ""),
        (category("IMAGES", &["x"], &[]), Code::AlreadyExists, ""),
        (
            category("Empty", &[], &[]),
            Code::InvalidArgument,
            "category.extensions",
        ),
        (
            category("Bad glob", &[], &["["]),
            Code::InvalidArgument,
            "category.globs",
        ),
        (
            category("a/b", &["x"], &[]),
            Code::InvalidArgument,
            "category.display_name",
        ),
        (
            pb::Category {
                color: "orange".into(),
                ..category("Colored", &["x"], &[])
            },
            Code::InvalidArgument,
            "category.color",
        ),
    ] {
        let status = assert_code(create_category(&app, &hal, candidate).await, code);
        if !field.is_empty() {
            assert_eq!(bad_field(&status), field);
        }
    }

    // The next organize uses them.
    for (path, body) in [
        ("in/invoice-7.pdf", &b"invoice"[..]),
        ("in/bill.inv", b"bill"),
        ("in/report.pdf", b"report"),
        ("in/pic.png", PNG),
        ("in/data.dat", b"data"),
    ] {
        tree::write(&hal.root, path, body);
    }
    let op = create(&app, &hal, organize("in")).await;
    wait_for(&app, &hal, &op.name, &[OperationState::Succeeded]).await;
    let after = tree::snapshot(&hal.root);
    for path in [
        "in/Invoices/invoice-7.pdf",
        "in/Invoices/bill.inv",
        "in/Documents/report.pdf",
        "in/Images/pic.png",
        "in/Zeta/data.dat",
    ] {
        assert!(after.contains_key(path), "{path} missing: {after:?}");
    }
    let counts: BTreeMap<String, i64> = list_categories(&app, &hal)
        .await
        .into_iter()
        .map(|c| (c.display_name, c.file_count))
        .collect();
    assert_eq!(counts["Invoices"], 2);
    assert_eq!(counts["Documents"], 1);
    assert_eq!(counts["Zeta"], 1);
    assert_eq!(counts["Alpha"], 0);
    let names_in_order: Vec<String> = list_categories(&app, &hal)
        .await
        .into_iter()
        .skip(12)
        .map(|c| c.display_name)
        .collect();
    assert_eq!(names_in_order, ["Alpha", "Invoices", "Zeta"]);
    // Paging through the combined list visits each once.
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let page = files(&app)
            .list_categories(bearer(
                pb::ListCategoriesRequest {
                    page_size: 4,
                    page_token: token,
                },
                &hal.token,
            ))
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.categories.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged.len(), 15);
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), 15);

    // Updates: by mask, or every non-empty field without one.
    let update = |category: pb::Category, paths: &[&str]| {
        let mut client = files(&app);
        let token = hal.token.clone();
        let mask = (!paths.is_empty()).then(|| prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        });
        async move {
            client
                .update_category(bearer(
                    pb::UpdateCategoryRequest {
                        category: Some(category),
                        update_mask: mask,
                    },
                    &token,
                ))
                .await
                .map(|r| r.into_inner())
        }
    };
    let renamed = update(
        pb::Category {
            name: invoices.name.clone(),
            display_name: "Bills".into(),
            color: "#000000".into(),
            ..Default::default()
        },
        &["display_name"],
    )
    .await
    .unwrap();
    assert_eq!(renamed.display_name, "Bills");
    assert_eq!(renamed.extensions, ["inv"]);
    assert_eq!(renamed.color, "#ffaa00", "not in the mask");
    let recolored = update(
        pb::Category {
            name: invoices.name.clone(),
            color: "#123456".into(),
            ..Default::default()
        },
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        (recolored.display_name.as_str(), recolored.color.as_str()),
        ("Bills", "#123456")
    );
    let cleared = assert_code(
        update(
            pb::Category {
                name: invoices.name.clone(),
                ..Default::default()
            },
            &["extensions", "globs"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&cleared), "category.extensions");
    let bad_mask = assert_code(
        update(
            pb::Category {
                name: invoices.name.clone(),
                ..Default::default()
            },
            &["built_in"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&bad_mask), "update_mask");
    assert_code(
        update(
            pb::Category {
                name: invoices.name.clone(),
                display_name: "zeta".into(),
                ..Default::default()
            },
            &["display_name"],
        )
        .await,
        Code::AlreadyExists,
    );

    // Built-ins refuse changes.
    let read_only = assert_code(
        update(
            pb::Category {
                name: "categories/images".into(),
                display_name: "Pictures".into(),
                ..Default::default()
            },
            &[],
        )
        .await,
        Code::FailedPrecondition,
    );
    assert!(read_only.message().contains("built-in"), "{read_only:?}");
    let delete_category = |name: String, token: String| {
        let mut client = files(&app);
        async move {
            client
                .delete_category(bearer(pb::DeleteCategoryRequest { name }, &token))
                .await
        }
    };
    assert_code(
        delete_category("categories/images".into(), hal.token.clone()).await,
        Code::FailedPrecondition,
    );
    assert_code(
        delete_category("categories/unknown".into(), hal.token.clone()).await,
        Code::NotFound,
    );
    assert_eq!(
        bad_field(&assert_code(
            delete_category("images".into(), hal.token.clone()).await,
            Code::InvalidArgument,
        )),
        "name"
    );

    // Another user sees none of it and can change none of it.
    assert_eq!(list_categories(&app, &ivy).await.len(), 12);
    assert_code(
        delete_category(invoices.name.clone(), ivy.token.clone()).await,
        Code::NotFound,
    );
    assert_code(
        files(&app)
            .update_category(bearer(
                pb::UpdateCategoryRequest {
                    category: Some(pb::Category {
                        name: invoices.name.clone(),
                        display_name: "Mine".into(),
                        ..Default::default()
                    }),
                    update_mask: None,
                },
                &ivy.token,
            ))
            .await,
        Code::NotFound,
    );

    delete_category(invoices.name.clone(), hal.token.clone())
        .await
        .unwrap();
    assert_code(
        delete_category(invoices.name.clone(), hal.token.clone()).await,
        Code::NotFound,
    );
    assert_eq!(list_categories(&app, &hal).await.len(), 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_leaving_the_root_are_rejected_by_every_rpc() {
    let app = TestApp::spawn().await;
    let jan = user(&app, "escape").await;
    let outside = app.storage.path().join("outside-files");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, jan.root.join("out")).unwrap();
    upload_small(&app, &jan, small_request("mine.txt", b"mine"))
        .await
        .unwrap();
    let item = delete(&app, &jan, "mine.txt").await.unwrap();
    let outside_before = tree::snapshot(&outside);

    let escapes = [
        ("../x.txt", "PATH_ESCAPE"),
        ("a/../../x.txt", "PATH_ESCAPE"),
        ("/etc/passwd", "PATH_ESCAPE"),
        ("out/secret.txt", "PATH_ESCAPE"),
        ("out/new.txt", "PATH_ESCAPE"),
        ("a\0b", "INVALID_ARGUMENT"),
    ];
    for (path, expected_reason) in escapes {
        let mut results: Vec<(Result<(), Status>, &str)> = vec![
            (
                upload_small(&app, &jan, small_request(path, b"x"))
                    .await
                    .map(drop),
                "path",
            ),
            (
                upload_stream(&app, &jan, path, b"x", 1, FileConflictPolicy::Rename)
                    .await
                    .map(drop),
                "metadata.path",
            ),
            (download(&app, &jan, path).await.map(drop), "path"),
            (delete(&app, &jan, path).await.map(drop), "path"),
            (
                restore(&app, &jan, &item.name, path, FileConflictPolicy::Rename)
                    .await
                    .map(drop),
                "path",
            ),
        ];
        let listing = files(&app)
            .list_directory(bearer(
                pb::ListDirectoryRequest {
                    path: path.into(),
                    ..Default::default()
                },
                &jan.token,
            ))
            .await
            .map(drop);
        if path != "out/new.txt" {
            results.push((listing, "path"));
        }
        for (i, (result, field)) in results.into_iter().enumerate() {
            let status = assert_code(result, Code::InvalidArgument);
            assert_eq!(bad_field(&status), field, "{path:?} rpc #{i}: {status:?}");
            assert_eq!(
                reason(&status),
                expected_reason,
                "{path:?} rpc #{i}: {status:?}"
            );
        }
    }
    let out_dir = assert_code(
        files(&app)
            .list_directory(bearer(
                pb::ListDirectoryRequest {
                    path: "out".into(),
                    ..Default::default()
                },
                &jan.token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(reason(&out_dir), "PATH_ESCAPE");
    assert_eq!(tree::snapshot(&outside), outside_before);
    assert!(temp_files(&jan.root).is_empty());
    // The trash item is still there, untouched.
    assert_eq!(list_trash(&app, &jan).await.trash_items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_data_is_not_found() {
    let app = TestApp::spawn().await;
    let kim = user(&app, "owner").await;
    let lou = user(&app, "intruder").await;
    upload_small(&app, &kim, small_request("private/secret.txt", b"secret"))
        .await
        .unwrap();
    upload_small(&app, &kim, small_request("private/old.txt", b"old"))
        .await
        .unwrap();
    let item = delete(&app, &kim, "private/old.txt").await.unwrap();
    let invoices = create_category(&app, &kim, category("Invoices", &["inv"], &[]))
        .await
        .unwrap();
    let op = create(
        &app,
        &kim,
        pb::Operation {
            dry_run: true,
            ..organize("private")
        },
    )
    .await;
    wait_for(&app, &kim, &op.name, &[OperationState::Planned]).await;
    let before = tree::snapshot(&kim.root);

    // Paths resolve in the caller's own storage, where these do not exist.
    assert_code(
        download(&app, &lou, "private/secret.txt").await,
        Code::NotFound,
    );
    assert_code(
        files(&app)
            .list_directory(bearer(
                pb::ListDirectoryRequest {
                    path: "private".into(),
                    ..Default::default()
                },
                &lou.token,
            ))
            .await,
        Code::NotFound,
    );
    assert_code(
        delete(&app, &lou, "private/secret.txt").await,
        Code::NotFound,
    );
    // Ids are looked up with the caller.
    for result in [
        restore(&app, &lou, &item.name, "", FileConflictPolicy::Fail)
            .await
            .map(drop),
        restore(
            &app,
            &lou,
            &item.name,
            "stolen.txt",
            FileConflictPolicy::Fail,
        )
        .await
        .map(drop),
        empty_trash(&app, &lou, &[item.name.as_str()])
            .await
            .map(drop),
        files(&app)
            .list_file_records(bearer(
                pb::ListFileRecordsRequest {
                    parent: op.name.clone(),
                    ..Default::default()
                },
                &lou.token,
            ))
            .await
            .map(drop),
        search(
            &app,
            &lou,
            pb::SearchFilesRequest {
                category: "Documents".into(),
                operation: op.name.clone(),
                ..Default::default()
            },
        )
        .await
        .map(drop),
        files(&app)
            .update_category(bearer(
                pb::UpdateCategoryRequest {
                    category: Some(pb::Category {
                        name: invoices.name.clone(),
                        display_name: "Mine".into(),
                        ..Default::default()
                    }),
                    update_mask: None,
                },
                &lou.token,
            ))
            .await
            .map(drop),
        files(&app)
            .delete_category(bearer(
                pb::DeleteCategoryRequest {
                    name: invoices.name.clone(),
                },
                &lou.token,
            ))
            .await
            .map(drop),
    ] {
        let status = assert_code(result, Code::NotFound);
        assert_eq!(reason(&status), "NOT_FOUND");
    }
    assert!(list_trash(&app, &lou).await.trash_items.is_empty());
    let everything = empty_trash(&app, &lou, &[]).await.unwrap();
    assert_eq!(everything.deleted_count, 0);
    assert_eq!(list_categories(&app, &lou).await.len(), 12);
    assert!(
        search(
            &app,
            &lou,
            pb::SearchFilesRequest {
                category: "Documents".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .file_records
        .is_empty()
    );
    // The owner's things are intact.
    assert_eq!(tree::snapshot(&kim.root), before);
    assert_eq!(list_trash(&app, &kim).await.trash_items.len(), 1);
    assert_eq!(list_categories(&app, &kim).await.len(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_upload_list_and_raw_download_through_envoy() {
    use base64::Engine;
    use reqwest::StatusCode;
    use serde_json::{Value, json};

    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let max = user(&app, "rest-files").await;

    let big = content(200 * 1024 + 3, 9);
    for (path, body) in [
        ("web/pic.png", PNG),
        ("web/notes.txt", &b"plain words\n"[..]),
        ("web/big.bin", &big),
    ] {
        let uploaded = http
            .post(envoy.url("/api/v1/files"))
            .bearer_auth(&max.token)
            .json(&json!({
                "path": path,
                "content": base64::engine::general_purpose::STANDARD.encode(body),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status(), StatusCode::OK, "{path}");
        let uploaded: Value = uploaded.json().await.unwrap();
        assert_eq!(uploaded["file"]["path"], path);
        assert_eq!(uploaded["file"]["content_hash"], hex_hash(body));
    }

    for (path, media, body) in [
        ("web/pic.png", "image/png", PNG),
        (
            "web/notes.txt",
            "text/plain; charset=utf-8",
            &b"plain words\n"[..],
        ),
        ("web/big.bin", "application/octet-stream", &big),
    ] {
        let response = http
            .get(envoy.url("/api/v1/files:download"))
            .query(&[("path", path)])
            .bearer_auth(&max.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], media, "{path}");
        let name = path.rsplit('/').next().unwrap();
        let disposition = response.headers()["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment") && disposition.contains(name),
            "{disposition}"
        );
        let bytes = response.bytes().await.unwrap();
        assert!(
            bytes.as_ref() == body,
            "{path}: the downloaded bytes differ"
        );
    }

    let listing: Value = http
        .get(envoy.url("/api/v1/files"))
        .query(&[("path", "web")])
        .bearer_auth(&max.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["big.bin", "notes.txt", "pic.png"]);
    assert_eq!(listing["entries"][2]["kind"], "FILE_KIND_FILE");

    // A missing file, and another user's: 404 with a JSON error.
    let other = user(&app, "rest-files-other").await;
    for token in [&max.token, &other.token] {
        let path = if token == &max.token {
            "web/none.png"
        } else {
            "web/pic.png"
        };
        let missing = http
            .get(envoy.url("/api/v1/files:download"))
            .query(&[("path", path)])
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let error: Value = missing.json().await.unwrap();
        assert_eq!(error["code"], 5);
    }
    let escape = http
        .get(envoy.url("/api/v1/files:download"))
        .query(&[("path", "../../etc/passwd")])
        .bearer_auth(&max.token)
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), StatusCode::BAD_REQUEST);
    let categories = http
        .get(envoy.url("/api/v1/categories"))
        .bearer_auth(&max.token)
        .send()
        .await
        .unwrap();
    assert_eq!(categories.status(), StatusCode::OK);
}

/// ListFileRecords' counts per status scan the operation's records: at rest
/// they are computed once per version of the operation and set of filters
/// and then read back (`operation_memos`), on every page; an undo of the
/// operation is a new version and they are counted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_counts_are_counted_once_per_version_and_again_after_an_undo() {
    let app = TestApp::spawn().await;
    let gus = user(&app, "counts").await;
    for (path, content) in [("in/a.jpg", "a"), ("in/b.pdf", "bb"), ("in/c.mp3", "ccc")] {
        tree::write(&gus.root, path, content.as_bytes());
    }
    let op = create(&app, &gus, organize("in")).await;
    wait_for(&app, &gus, &op.name, &[OperationState::Succeeded]).await;
    let id = uuid::Uuid::parse_str(op.name.trim_start_matches("operations/")).unwrap();
    let page = |page_token: String| {
        let request = pb::ListFileRecordsRequest {
            parent: op.name.clone(),
            page_size: 2,
            page_token,
            ..Default::default()
        };
        let token = gus.token.clone();
        let app = &app;
        async move {
            files(app)
                .list_file_records(bearer(request, &token))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = page(String::new()).await;
    assert_eq!(first.total_size, 3);
    assert_eq!(first.status_counts.unwrap().completed, 3);

    // The stored counts are what later pages serve: changed behind the
    // service's back (only a test does this), the next page shows them.
    use fileorganizer::schema::operation_memos as m;
    let kinds: Vec<String> = m::table
        .filter(m::operation_id.eq(id))
        .filter(m::kind.like("record_counts%"))
        .select(m::kind)
        .load(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(kinds, ["record_counts::0:false:"], "{kinds:?}");
    let planted = pb::ListFileRecordsResponse {
        total_size: 42,
        ..first.clone()
    };
    diesel::update(m::table.find((id, &kinds[0])))
        .set(m::value.eq(prost::Message::encode_to_vec(&planted)))
        .execute(&mut app.db().await)
        .await
        .unwrap();
    let second = page(first.next_page_token.clone()).await;
    assert_eq!(second.file_records.len(), 1);
    assert_eq!(second.total_size, 42);

    // An undo is a new version: counted again, every record undone.
    let undo = crate::operations::undo_and_wait(&app, &gus, &op.name).await;
    assert_eq!(undo.state, OperationState::Succeeded as i32);
    let undone = page(String::new()).await;
    assert_eq!(undone.total_size, 3);
    let counts = undone.status_counts.unwrap();
    assert_eq!((counts.undone, counts.completed), (3, 0), "{counts:?}");
}
