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
        modify_time: None,
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
            modify_time: None,
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

/// Alice, with `docs/report.pdf` (300,001 bytes, streamed in 64 KiB chunks
/// into a folder that did not exist yet): its bytes and its entry.
async fn alice_with_a_report(app: &TestApp) -> (User, Vec<u8>, pb::FileEntry) {
    let alice = user(app, "files").await;
    let big = content(300_001, 1);
    let stored = upload_stream(
        app,
        &alice,
        "docs/report.pdf",
        &big,
        64 * 1024,
        FileConflictPolicy::Unspecified,
    )
    .await
    .unwrap();
    (alice, big, stored)
}

/// Alice's storage after every kind of upload: `docs/` holds `checked.txt`,
/// `report.pdf` (the big one) and `report (1).pdf`, `report (2).pdf` (asked
/// for under a new name); `photos/cat` is a PNG without an extension.
async fn alice_with_uploads(app: &TestApp) -> (User, Vec<u8>) {
    let (alice, big, _) = alice_with_a_report(app).await;
    upload_small(app, &alice, small_request("photos/cat", PNG))
        .await
        .unwrap();
    for _ in 0..2 {
        let renamed = pb::UploadSmallFileRequest {
            conflict_policy: FileConflictPolicy::Rename as i32,
            ..small_request("docs/report.pdf", b"again")
        };
        upload_small(app, &alice, renamed).await.unwrap();
    }
    upload_small(app, &alice, small_request("docs/checked.txt", b"content"))
        .await
        .unwrap();
    (alice, big)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_store_identical_bytes_and_categorize_by_extension_or_content() {
    let app = TestApp::spawn().await;
    let (alice, big, stored) = alice_with_a_report(&app).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_never_overwrite_unless_a_new_name_is_asked_for() {
    let app = TestApp::spawn().await;
    let (alice, big, _) = alice_with_a_report(&app).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_expected_hash_differs_is_data_loss_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "files").await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_sorted_by_name_and_hide_the_trash_and_uploads_in_progress() {
    let app = TestApp::spawn().await;
    let (alice, big) = alice_with_uploads(&app).await;
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
        [".hidden", "docs", "photos"],
        "hidden entries on request"
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_through_every_entry_once_and_refuse_what_is_not_a_folder() {
    let app = TestApp::spawn().await;
    let (alice, ..) = alice_with_a_report(&app).await;
    for i in 0..7 {
        tree::write(&alice.root, &format!("many/f{i}.txt"), b"x");
    }
    let paged = list_all(&app, &alice, "many", false, 3).await;
    assert_eq!(
        names(&paged),
        (0..7).map(|i| format!("f{i}.txt")).collect::<Vec<_>>()
    );
    let list = |request: pb::ListDirectoryRequest| {
        let mut client = files(&app);
        let request = bearer(request, &alice.token);
        async move { client.list_directory(request).await }
    };
    let path = |path: &str| pb::ListDirectoryRequest {
        path: path.into(),
        ..Default::default()
    };
    let first = list(pb::ListDirectoryRequest {
        page_size: 3,
        ..path("many")
    })
    .await
    .unwrap()
    .into_inner();
    // A page token works only with the listing it came from.
    let replayed = assert_code(
        list(pb::ListDirectoryRequest {
            page_token: first.next_page_token,
            ..path("docs")
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&replayed), "page_token");
    assert_code(
        list(path("docs/report.pdf")).await,
        Code::FailedPrecondition,
    );
    assert_code(list(path("nowhere")).await, Code::NotFound);
    assert_eq!(
        bad_field(&assert_code(
            list(path(".trash")).await,
            Code::InvalidArgument
        )),
        "path"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_return_the_same_bytes_with_a_content_type() {
    let app = TestApp::spawn().await;
    let (alice, big) = alice_with_uploads(&app).await;
    tree::write(&alice.root, "docs/.fileorg-tmp-0123", b"partial");
    std::os::unix::fs::symlink("/etc/passwd", alice.root.join("docs/link")).unwrap();
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
            .all(|t| t == "docs/.fileorg-tmp-0123"),
        "downloads leave no temporary file"
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

pub(crate) async fn restore(
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

pub(crate) async fn empty_trash(
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

/// Dan, with `notes/a.txt` ("alpha"), `notes/b.txt` ("beta"), `album/1.jpg`
/// ("one") and `album/sub/2.jpg` ("two!").
async fn dan_with_files(app: &TestApp) -> User {
    let dan = user(app, "trash").await;
    for (path, body) in [
        ("notes/a.txt", &b"alpha"[..]),
        ("notes/b.txt", b"beta"),
        ("album/1.jpg", b"one"),
        ("album/sub/2.jpg", b"two!"),
    ] {
        upload_small(app, &dan, small_request(path, body))
            .await
            .unwrap();
    }
    dan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_moves_files_and_folders_to_the_trash() {
    let app = TestApp::spawn().await;
    let dan = dan_with_files(&app).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_goes_to_the_original_or_another_path_and_never_overwrites() {
    let app = TestApp::spawn().await;
    let dan = dan_with_files(&app).await;
    let a = delete(&app, &dan, "notes/a.txt").await.unwrap();
    let album = delete(&app, &dan, "album").await.unwrap();

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_trash_deletes_the_named_items_all_or_nothing_then_everything() {
    let app = TestApp::spawn().await;
    let dan = dan_with_files(&app).await;
    let b = delete(&app, &dan, "notes/b.txt").await.unwrap();
    let album = delete(&app, &dan, "album").await.unwrap();
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
    assert_eq!(trash.trash_items[0].name, album.name);
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
    assert_eq!(snapshot.keys().collect::<Vec<_>>(), ["notes/a.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_the_trash_and_missing_paths_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let dan = dan_with_files(&app).await;
    delete(&app, &dan, "notes/b.txt").await.unwrap(); // .trash exists
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

/// Fay's organize of 15 files of every category, three duplicates (one
/// kept, two moved to `_duplicates`) and a symlink (skipped): the
/// operation and its journal, with completed, skipped and duplicate records.
async fn fay_organized(app: &TestApp) -> (User, pb::Operation, Vec<FileRecord>) {
    let fay = user(app, "records").await;
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
        app,
        &fay,
        pb::Operation {
            duplicate_policy: pb::DuplicatePolicy::MoveToDuplicatesFolder as i32,
            ..organize("in")
        },
    )
    .await;
    wait_for(app, &fay, &op.name, &[OperationState::Succeeded]).await;
    let journal: Vec<FileRecord> = records(app, &op.name).await;
    assert!(journal.len() >= 19, "{journal:?}");
    let statuses: HashSet<&str> = journal.iter().map(|r| r.status.as_str()).collect();
    for status in ["completed", "skipped", "duplicate"] {
        assert!(statuses.contains(status), "{statuses:?}");
    }
    (fay, op, journal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_records_filter_sort_and_page_through_every_record_once() {
    let app = TestApp::spawn().await;
    let (fay, op, journal) = fay_organized(&app).await;

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
            let what = format!("filter {status:?}/{category}/{min_size}/{duplicates_only}");
            let seen_seqs: Vec<i64> = seen.iter().map(|r| r.seq).collect();
            let expected_seqs: Vec<i64> = expected.iter().map(|r| r.seq).collect();
            assert_eq!(seen_seqs, expected_seqs, "{what}, order {order:?}");
            assert_eq!(last.total_size, expected.len() as i64, "{what}: total_size");
            let counts = last.status_counts.unwrap();
            let base: Vec<&FileRecord> = journal.iter().filter(others).collect();
            let count = |s: RecordStatus| base.iter().filter(|r| r.status == s).count() as i64;
            assert_eq!(
                counts.total,
                base.len() as i64,
                "{what}: status_counts.total"
            );
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
                ),
                "{what}: status_counts (completed, skipped, duplicate, failed, planned, undone)"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_records_page_by_default_and_name_a_duplicates_keeper() {
    let app = TestApp::spawn().await;
    let (fay, op, journal) = fay_organized(&app).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_records_bad_requests_name_their_field_and_tokens_only_work_with_their_query() {
    let app = TestApp::spawn().await;
    let (fay, op, _) = fay_organized(&app).await;
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
        let what = format!("{request:?}");
        let request = pb::ListFileRecordsRequest {
            parent: op.name.clone(),
            ..request
        };
        let status = files(&app)
            .list_file_records(bearer(request, &fay.token))
            .await
            .expect_err(&what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(bad_field(&status), field, "{what}");
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

/// Gus's two organizes (`one`, then `two`) and another user's (`x`), every
/// file hashed; `same invoice` is in all three.
async fn searchable(app: &TestApp) -> (User, Vec<pb::Operation>) {
    let gus = user(app, "search").await;
    let other = user(app, "search-other").await;
    tree::write(&gus.root, "one/Invoice-2024.pdf", b"same invoice");
    tree::write(&gus.root, "one/photo.jpg", b"jpeg");
    tree::write(&gus.root, "one/50%_off.txt", b"fifty percent");
    tree::write(&gus.root, "one/500.txt", b"five hundred");
    tree::write(&gus.root, "two/old/invoice_copy.pdf", b"same invoice");
    tree::write(&other.root, "x/invoice.pdf", b"same invoice");
    let mut ops = Vec::new();
    for (u, source) in [(&gus, "one"), (&gus, "two"), (&other, "x")] {
        let op = create(
            app,
            u,
            pb::Operation {
                hash_all_files: true,
                ..organize(source)
            },
        )
        .await;
        wait_for(app, u, &op.name, &[OperationState::Succeeded]).await;
        ops.push(op);
    }
    (gus, ops)
}

/// A search by `user` that must succeed.
async fn found(app: &TestApp, user: &User, request: pb::SearchFilesRequest) -> Vec<pb::FileRecord> {
    search(app, user, request).await.unwrap().file_records
}

fn name_contains(text: &str) -> pb::SearchFilesRequest {
    pb::SearchFilesRequest {
        name_contains: text.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_name_ignores_case_and_wildcards_and_not_folders_newest_first() {
    let app = TestApp::spawn().await;
    let (gus, _) = searchable(&app).await;
    let by_name = found(&app, &gus, name_contains("INVOICE")).await;
    let paths: Vec<&str> = by_name.iter().map(|r| r.original_path.as_str()).collect();
    // Newest first: the second operation's record, then the first's.
    assert_eq!(paths, ["two/old/invoice_copy.pdf", "one/Invoice-2024.pdf"]);
    assert_eq!(by_name[0].new_path, "two/Documents/invoice_copy.pdf");
    // LIKE wildcards in the text are literal.
    let percent = found(&app, &gus, name_contains("50%")).await;
    assert_eq!(percent.len(), 1);
    assert_eq!(percent[0].original_path, "one/50%_off.txt");
    // The new name counts too; the folder names do not.
    let documents_folder = found(&app, &gus, name_contains("Documents")).await;
    assert!(documents_folder.is_empty(), "{documents_folder:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_hash_finds_the_callers_copies_only() {
    let app = TestApp::spawn().await;
    let (gus, _) = searchable(&app).await;
    // "where else do I have this file?"
    let request = pb::SearchFilesRequest {
        content_hash: hex_hash(b"same invoice"),
        ..Default::default()
    };
    let by_hash = found(&app, &gus, request).await;
    assert_eq!(by_hash.len(), 2, "only the caller's records");
    assert!(
        by_hash
            .iter()
            .all(|r| r.content_hash == hex_hash(b"same invoice"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_category_combines_with_name_and_operation_and_pages() {
    let app = TestApp::spawn().await;
    let (gus, ops) = searchable(&app).await;
    let category = |category: &str| pb::SearchFilesRequest {
        category: category.into(),
        ..Default::default()
    };
    let by_category = found(&app, &gus, category("documents")).await;
    assert_eq!(by_category.len(), 4);
    let combined = pb::SearchFilesRequest {
        category: "Images".into(),
        ..name_contains("invoice")
    };
    assert!(found(&app, &gus, combined).await.is_empty());
    let in_one = pb::SearchFilesRequest {
        operation: ops[0].name.clone(),
        ..name_contains("invoice")
    };
    assert_eq!(found(&app, &gus, in_one).await.len(), 1);

    // Pages of one.
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let request = pb::SearchFilesRequest {
            page_size: 1,
            page_token: token,
            ..category("Documents")
        };
        let page = search(&app, &gus, request).await.unwrap();
        paged.extend(page.file_records.into_iter().map(|r| r.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let all: Vec<String> = by_category.into_iter().map(|r| r.name).collect();
    assert_eq!(paged, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_in_another_users_operation_is_not_found_and_bad_input_names_its_field() {
    let app = TestApp::spawn().await;
    let (gus, ops) = searchable(&app).await;
    let theirs = pb::SearchFilesRequest {
        operation: ops[2].name.clone(),
        ..name_contains("invoice")
    };
    assert_code(search(&app, &gus, theirs).await, Code::NotFound);
    for (request, field) in [
        (name_contains("ab"), "name_contains"),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_search_is_served_by_the_trigram_index() {
    // Not a scan (tests/api/search.rs: names not yet indexed).
    let app = TestApp::spawn().await;
    searchable(&app).await;
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

/// UpdateCategory by `user`, with `paths` as the update mask (none when
/// empty: every non-empty field).
async fn update_category(
    app: &TestApp,
    user: &User,
    category: pb::Category,
    paths: &[&str],
) -> Result<pb::Category, Status> {
    let mask = (!paths.is_empty()).then(|| prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    });
    let request = pb::UpdateCategoryRequest {
        category: Some(category),
        update_mask: mask,
    };
    files(app)
        .update_category(bearer(request, &user.token))
        .await
        .map(|r| r.into_inner())
}

async fn delete_category(app: &TestApp, user: &User, name: &str) -> Result<(), Status> {
    let request = pb::DeleteCategoryRequest { name: name.into() };
    files(app)
        .delete_category(bearer(request, &user.token))
        .await
        .map(drop)
}

/// Hal, with the categories Invoices (`.INV` and `invoice-*.pdf`, a color
/// and an icon), then Zeta and Alpha (both claiming `.dat`); returns Invoices.
async fn hal_with_categories(app: &TestApp) -> (User, pb::Category) {
    let hal = user(app, "categories").await;
    let invoices = create_category(
        app,
        &hal,
        pb::Category {
            color: "#FFAA00".into(),
            icon: "receipt".into(),
            ..category("Invoices", &[".INV"], &["invoice-*.pdf"])
        },
    )
    .await
    .unwrap();
    // Tried in creation order: Zeta before Alpha, both claiming .dat.
    for name in ["Zeta", "Alpha"] {
        create_category(app, &hal, category(name, &["dat"], &[]))
            .await
            .unwrap();
    }
    (hal, invoices)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_has_the_twelve_built_in_categories() {
    let app = TestApp::spawn().await;
    let hal = user(&app, "categories").await;
    let listed = list_categories(&app, &hal).await;
    assert_eq!(listed.len(), 12);
    assert_eq!(listed[0].name, "categories/documents");
    assert_eq!(listed[11].display_name, "Other");
    assert!(listed.iter().all(|c| c.built_in && c.file_count == 0));
    assert!(listed[1].extensions.contains(&"jpg".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_categories_are_normalized_and_bad_ones_name_their_field() {
    let app = TestApp::spawn().await;
    let (hal, invoices) = hal_with_categories(&app).await;
    assert!(invoices.name.starts_with("categories/") && !invoices.built_in);
    assert_eq!(invoices.extensions, ["inv"]);
    assert_eq!(invoices.globs, ["invoice-*.pdf"]);
    assert_eq!(invoices.color, "#ffaa00");
    assert!(invoices.create_time.is_some());

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
        let what = candidate.display_name.clone();
        let status = assert_code(create_category(&app, &hal, candidate).await, code);
        if !field.is_empty() {
            assert_eq!(bad_field(&status), field, "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_categories_drive_the_next_organize_in_creation_order() {
    let app = TestApp::spawn().await;
    let (hal, _) = hal_with_categories(&app).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_categories_list_after_the_built_ins_by_name_and_page_once_each() {
    let app = TestApp::spawn().await;
    let (hal, _) = hal_with_categories(&app).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_update_by_mask_or_every_non_empty_field() {
    let app = TestApp::spawn().await;
    let (hal, invoices) = hal_with_categories(&app).await;
    let update = |category: pb::Category, paths: &'static [&'static str]| {
        let name = invoices.name.clone();
        update_category(&app, &hal, pb::Category { name, ..category }, paths)
    };
    let renamed = update(
        pb::Category {
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
        update(pb::Category::default(), &["extensions", "globs"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&cleared), "category.extensions");
    let bad_mask = assert_code(
        update(pb::Category::default(), &["built_in"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(bad_field(&bad_mask), "update_mask");
    let taken = pb::Category {
        display_name: "zeta".into(),
        ..Default::default()
    };
    assert_code(update(taken, &["display_name"]).await, Code::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_categories_are_read_only() {
    let app = TestApp::spawn().await;
    let hal = user(&app, "categories").await;
    let images = pb::Category {
        name: "categories/images".into(),
        display_name: "Pictures".into(),
        ..Default::default()
    };
    let read_only = assert_code(
        update_category(&app, &hal, images, &[]).await,
        Code::FailedPrecondition,
    );
    assert!(read_only.message().contains("built-in"), "{read_only:?}");
    assert_code(
        delete_category(&app, &hal, "categories/images").await,
        Code::FailedPrecondition,
    );
    assert_code(
        delete_category(&app, &hal, "categories/unknown").await,
        Code::NotFound,
    );
    assert_eq!(
        bad_field(&assert_code(
            delete_category(&app, &hal, "images").await,
            Code::InvalidArgument,
        )),
        "name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_sees_and_changes_none_of_a_users_categories() {
    let app = TestApp::spawn().await;
    let (hal, invoices) = hal_with_categories(&app).await;
    let ivy = user(&app, "categories-other").await;
    assert_eq!(list_categories(&app, &ivy).await.len(), 12);
    assert_code(
        delete_category(&app, &ivy, &invoices.name).await,
        Code::NotFound,
    );
    let mine = pb::Category {
        name: invoices.name.clone(),
        display_name: "Mine".into(),
        ..Default::default()
    };
    assert_code(update_category(&app, &ivy, mine, &[]).await, Code::NotFound);

    // Its owner deletes it, once.
    delete_category(&app, &hal, &invoices.name).await.unwrap();
    assert_code(
        delete_category(&app, &hal, &invoices.name).await,
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

/// Kim's things Lou goes after: a file, a trash item, a category and a
/// planned operation.
struct Intruded {
    kim: User,
    lou: User,
    item: pb::TrashItem,
    invoices: pb::Category,
    op: pb::Operation,
    before: BTreeMap<String, tree::Entry>,
}

async fn kim_and_intruder(app: &TestApp) -> Intruded {
    let kim = user(app, "owner").await;
    let lou = user(app, "intruder").await;
    upload_small(app, &kim, small_request("private/secret.txt", b"secret"))
        .await
        .unwrap();
    upload_small(app, &kim, small_request("private/old.txt", b"old"))
        .await
        .unwrap();
    let item = delete(app, &kim, "private/old.txt").await.unwrap();
    let invoices = create_category(app, &kim, category("Invoices", &["inv"], &[]))
        .await
        .unwrap();
    let op = create(
        app,
        &kim,
        pb::Operation {
            dry_run: true,
            ..organize("private")
        },
    )
    .await;
    wait_for(app, &kim, &op.name, &[OperationState::Planned]).await;
    let before = tree::snapshot(&kim.root);
    Intruded {
        kim,
        lou,
        item,
        invoices,
        op,
        before,
    }
}

impl Intruded {
    /// The owner's things are intact.
    async fn assert_intact(&self, app: &TestApp) {
        assert_eq!(tree::snapshot(&self.kim.root), self.before, "Kim's files");
        let trash = list_trash(app, &self.kim).await.trash_items;
        assert_eq!(trash.len(), 1, "Kim's trash");
        assert_eq!(
            list_categories(app, &self.kim).await.len(),
            13,
            "Kim's categories"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_paths_resolve_in_the_callers_own_storage() {
    let app = TestApp::spawn().await;
    let it = kim_and_intruder(&app).await;
    let lou = &it.lou;
    assert_code(
        download(&app, lou, "private/secret.txt").await,
        Code::NotFound,
    );
    let list = pb::ListDirectoryRequest {
        path: "private".into(),
        ..Default::default()
    };
    assert_code(
        files(&app).list_directory(bearer(list, &lou.token)).await,
        Code::NotFound,
    );
    assert_code(
        delete(&app, lou, "private/secret.txt").await,
        Code::NotFound,
    );
    it.assert_intact(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let it = kim_and_intruder(&app).await;
    let (lou, item) = (&it.lou, it.item.name.as_str());
    let (op, invoices) = (it.op.name.clone(), it.invoices.name.clone());
    let fail = FileConflictPolicy::Fail;
    let records = pb::ListFileRecordsRequest {
        parent: op.clone(),
        ..Default::default()
    };
    let in_op = pb::SearchFilesRequest {
        category: "Documents".into(),
        operation: op,
        ..Default::default()
    };
    let mine = pb::Category {
        name: invoices.clone(),
        display_name: "Mine".into(),
        ..Default::default()
    };
    for (what, result) in [
        (
            "RestoreFile",
            restore(&app, lou, item, "", fail).await.map(drop),
        ),
        (
            "RestoreFile elsewhere",
            restore(&app, lou, item, "stolen.txt", fail).await.map(drop),
        ),
        (
            "EmptyTrash",
            empty_trash(&app, lou, &[item]).await.map(drop),
        ),
        (
            "ListFileRecords",
            files(&app)
                .list_file_records(bearer(records, &lou.token))
                .await
                .map(drop),
        ),
        ("SearchFiles", search(&app, lou, in_op).await.map(drop)),
        (
            "UpdateCategory",
            update_category(&app, lou, mine, &[]).await.map(drop),
        ),
        (
            "DeleteCategory",
            delete_category(&app, lou, &invoices).await,
        ),
    ] {
        let status = assert_code(result, Code::NotFound);
        assert_eq!(reason(&status), "NOT_FOUND", "{what}");
    }
    it.assert_intact(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_trash_categories_and_records_are_not_in_the_callers_lists() {
    let app = TestApp::spawn().await;
    let it = kim_and_intruder(&app).await;
    let lou = &it.lou;
    assert!(list_trash(&app, lou).await.trash_items.is_empty());
    let everything = empty_trash(&app, lou, &[]).await.unwrap();
    assert_eq!(everything.deleted_count, 0);
    assert_eq!(list_categories(&app, lou).await.len(), 12);
    let documents = pb::SearchFilesRequest {
        category: "Documents".into(),
        ..Default::default()
    };
    assert!(found(&app, lou, documents).await.is_empty());
    it.assert_intact(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_uploads_list_and_download_the_same_raw_bytes_through_envoy() {
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
    assert_eq!(listed, ["big.bin", "notes.txt", "pic.png"], "{listing}");
    assert_eq!(listing["entries"][2]["kind"], "FILE_KIND_FILE", "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_download_errors_are_json_client_errors() {
    use reqwest::StatusCode;
    use serde_json::Value;

    let app = TestApp::spawn().await;
    let envoy = Envoy::start(app.addr.port()).await;
    let http = reqwest::Client::new();
    let max = user(&app, "rest-files").await;
    upload_small(&app, &max, small_request("web/pic.png", PNG))
        .await
        .unwrap();

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
        assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{path}");
        let error: Value = missing.json().await.unwrap();
        assert_eq!(error["code"], 5, "{path}: {error}");
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
