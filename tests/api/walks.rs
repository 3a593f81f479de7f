//! Walks of a user's tree against hostile shapes (issue 18, classes 1, 2
//! and 9): every RPC that walks, sizes, moves, removes or exports a tree, run by a
//! child `fileorg serve` whose descriptor limit is low, against a tree 5,000
//! levels deep and a folder of 50,000 entries; and an organize whose source
//! is swapped for a symlink between CreateOperation and the job's scan.
//!
//! A child process, not the in-process server: a stack overflow aborts the
//! process, which must not take the test binary with it, and a descriptor
//! limit (RLIMIT_NOFILE) is per process. What the child must survive is
//! checked through its API; that it survived, by its health and exit state.

use std::{
    os::{fd::OwnedFd, unix::process::CommandExt},
    path::Path,
    time::Duration,
};

use fileorganizer::domain::RecordStatus;
use fileorganizer::pb::fileorganizer::v1::{
    self as pb, ArchiveFormat, OperationState, file_service_client::FileServiceClient,
    operation_service_client::OperationServiceClient, report_service_client::ReportServiceClient,
    system_service_client::SystemServiceClient,
};
use rustix::fs::{Mode, OFlags};
use tonic::{Code, transport::Channel};

use crate::{
    common::{KillOnDrop, Options, TestApp, bearer, connect_when_up, free_port, tree},
    exports::{download_archive, request, tar_entries},
    kills::spawn_server,
    operations::{User, create, records, user},
};

/// The child's descriptor limit: a walk that held one descriptor per
/// pending folder (one per subfolder of a wide folder, or per level of a
/// deep one) runs out long before the end; the server's own needs (a
/// database pool, listeners, a mover's bounded cache of 256 folders) fit.
const NOFILE: u64 = 600;

/// Levels of the tree deeper than any walk enters (`storage::MAX_DEPTH` is 4096).
const TOO_DEEP: usize = 5000;
/// Levels of a tree every walk handles (below 4096).
const DEEP: usize = 3000;
/// Entries of the wide folder: subfolders, then files.
const WIDE_FOLDERS: usize = 45_000;
const WIDE_FILES: usize = 5_000;

fn open_dir(path: &Path) -> OwnedFd {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

/// `levels` nested folders `d` under `base`, made by descriptors (the path
/// is longer than PATH_MAX), with `leaf.txt` at the bottom.
pub(crate) fn deep_tree(base: &Path, levels: usize) {
    std::fs::create_dir_all(base).unwrap();
    let mut dir = open_dir(base);
    for _ in 0..levels {
        rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(
            &dir,
            "d",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
    }
    std::fs::write(
        format!(
            "/proc/self/fd/{}/leaf.txt",
            std::os::fd::AsRawFd::as_raw_fd(&dir)
        ),
        b"leaf",
    )
    .unwrap();
}

/// `fileorg serve` (API and one worker) on the app's database and storage,
/// with at most [`NOFILE`] descriptors.
fn spawn_limited_server(app: &TestApp) -> (KillOnDrop, u16) {
    let port = free_port();
    let mut command = app.fileorg_command(&["serve"]);
    command
        .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKERS", "1")
        .env("JOB_POLL_MS", "100")
        .env("RUST_LOG", "warn,fileorganizer::state=error")
        .envs(crate::common::RATE_LIMITS.map(|k| (k, "1000000")))
        .stderr(std::process::Stdio::inherit());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec here.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: NOFILE,
                rlim_max: NOFILE,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (
        KillOnDrop(command.spawn().expect("start fileorg serve")),
        port,
    )
}

struct Child {
    channel: Channel,
    files: FileServiceClient<Channel>,
    operations: OperationServiceClient<Channel>,
    system: SystemServiceClient<Channel>,
}

impl Child {
    async fn connect(port: u16) -> Child {
        let channel = connect_when_up(port).await;
        Child {
            channel: channel.clone(),
            files: FileServiceClient::new(channel.clone()),
            operations: OperationServiceClient::new(channel.clone()),
            system: SystemServiceClient::new(channel),
        }
    }

    async fn delete(&self, u: &User, path: &str) -> Result<pb::TrashItem, tonic::Status> {
        self.files
            .clone()
            .delete_file(bearer(
                pb::DeleteFileRequest { path: path.into() },
                &u.token,
            ))
            .await
            .map(|r| r.into_inner().trash_item.unwrap())
    }

    async fn restore(
        &self,
        u: &User,
        item: &pb::TrashItem,
        path: &str,
    ) -> Result<pb::FileEntry, tonic::Status> {
        self.files
            .clone()
            .restore_file(bearer(
                pb::RestoreFileRequest {
                    name: item.name.clone(),
                    path: path.into(),
                    conflict_policy: 0,
                },
                &u.token,
            ))
            .await
            .map(|r| r.into_inner().file.unwrap())
    }

    async fn empty_trash(&self, u: &User) -> pb::EmptyTrashResponse {
        self.files
            .clone()
            .empty_trash(bearer(pb::EmptyTrashRequest { names: vec![] }, &u.token))
            .await
            .expect("EmptyTrash")
            .into_inner()
    }

    async fn upload(&self, u: &User, path: &str, content: &[u8]) {
        self.files
            .clone()
            .upload_small_file(bearer(crate::files::small_request(path, content), &u.token))
            .await
            .expect("UploadSmallFile");
    }

    async fn list(&self, u: &User, path: &str, page_token: &str) -> pb::ListDirectoryResponse {
        self.files
            .clone()
            .list_directory(bearer(
                pb::ListDirectoryRequest {
                    path: path.into(),
                    page_size: 1000,
                    page_token: page_token.into(),
                    show_hidden: false,
                },
                &u.token,
            ))
            .await
            .expect("ListDirectory")
            .into_inner()
    }

    async fn wait(&self, u: &User, name: &str, states: &[OperationState]) -> pb::Operation {
        for _ in 0..1200 {
            let op = self
                .operations
                .clone()
                .get_operation(bearer(
                    pb::GetOperationRequest { name: name.into() },
                    &u.token,
                ))
                .await
                .expect("GetOperation")
                .into_inner();
            if states.iter().any(|s| *s as i32 == op.state) {
                return op;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("{name} did not reach {states:?}");
    }
}

fn assert_failed_precondition(result: Result<impl std::fmt::Debug, tonic::Status>, words: &str) {
    let status = result.expect_err("a clear error");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains(words), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_that_walks_a_tree_survives_5000_levels_and_50000_entries_in_bounded_descriptors()
{
    let app = TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await;
    let u = user(&app, "walks").await;
    deep_tree(&u.root.join("too-deep"), TOO_DEEP);
    deep_tree(&u.root.join("deep"), DEEP);
    for i in 0..WIDE_FOLDERS {
        std::fs::create_dir_all(u.root.join(format!("wide/folder-{i:05}"))).unwrap();
    }
    for i in 0..WIDE_FILES {
        // Every tenth file has a twin, so the organize hashes and groups.
        let body = format!("file {}", i - i % 10 * usize::from(i % 10 == 1));
        std::fs::write(u.root.join(format!("wide/file-{i:05}.txt")), body).unwrap();
    }
    let (mut server, port) = spawn_limited_server(&app);
    let child = Child::connect(port).await;

    // Listing a wide folder, page by page, and a deep one.
    let first = child.list(&u, "wide", "").await;
    assert_eq!(first.entries.len(), 1000);
    let second = child.list(&u, "wide", &first.next_page_token).await;
    assert_eq!(second.entries.len(), 1000);
    assert!(first.entries.last().unwrap().path < second.entries[0].path);
    assert_eq!(child.list(&u, "too-deep/d/d", "").await.entries.len(), 1);

    // Archive downloads: the wide folder streams whole, in many messages;
    // the 3,000-level tree is exported to its leaf; the 5,000-level one
    // ends with a clear error once the walk reaches 4,096 levels.
    let mut files = child.files.clone();
    let wide = download_archive(&mut files, &u.token, request("wide", ArchiveFormat::Tar))
        .await
        .expect("DownloadArchive wide");
    assert!(wide.chunks.len() > 10, "{} messages", wide.chunks.len());
    assert_eq!(tar_entries(&wide.bytes()).len(), WIDE_FOLDERS + WIDE_FILES);
    let deep = download_archive(&mut files, &u.token, request("deep", ArchiveFormat::Zip))
        .await
        .expect("DownloadArchive deep");
    let leaf = format!("{}leaf.txt", "d/".repeat(DEEP));
    assert!(
        deep.bytes()
            .windows(leaf.len())
            .any(|w| w == leaf.as_bytes()),
        "the leaf 3,000 levels down is in the zip"
    );
    assert_failed_precondition(
        download_archive(
            &mut files,
            &u.token,
            request("too-deep", ArchiveFormat::Tar),
        )
        .await
        .map(|d| d.chunks.len()),
        "4096 levels",
    );

    // The probe's abort, with the API alone: a folder 1,500 levels deep is
    // restored 1,500 levels down another, and the 3,000-level result is
    // deleted and purged.
    let chain = "d/".repeat(1500);
    child.upload(&u, &format!("a/{chain}leaf.txt"), b"a").await;
    child.upload(&u, &format!("b/{chain}leaf.txt"), b"b").await;
    let a = child.delete(&u, "a").await.expect("DeleteFile a");
    let restored = child
        .restore(&u, &a, &format!("b/{chain}a"))
        .await
        .expect("RestoreFile a into b, 3,002 levels deep");
    assert_eq!(restored.kind, pb::FileKind::Directory as i32);
    let b = child.delete(&u, "b").await.expect("DeleteFile b");
    assert!(b.size_bytes >= 2, "{b:?}");
    // ...but it cannot be nested deeper still, past what walks enter.
    assert_failed_precondition(
        child
            .restore(&u, &b, &format!("e/{}b", "d/".repeat(1100)))
            .await,
        "levels",
    );

    // Deep and wide trees through the trash: sized, restored, purged.
    let deep = child.delete(&u, "deep").await.expect("DeleteFile deep");
    assert_eq!(deep.size_bytes, 4);
    let wide = child.delete(&u, "wide").await.expect("DeleteFile wide");
    assert_eq!(deep.kind, pb::FileKind::Directory as i32);
    child
        .restore(&u, &wide, "")
        .await
        .expect("RestoreFile wide");
    let wide = child
        .delete(&u, "wide")
        .await
        .expect("DeleteFile wide again");
    let usage = ReportServiceClient::new(child.channel.clone())
        .get_usage_summary(bearer(pb::GetUsageSummaryRequest {}, &u.token))
        .await
        .expect("GetUsageSummary sizes the trash")
        .into_inner();
    assert!(usage.storage_used_bytes >= 0, "{usage:?}");
    let emptied = child.empty_trash(&u).await;
    assert!(emptied.failed_items.is_empty(), "{emptied:?}");
    assert_eq!(
        emptied.deleted_count, 3,
        "b (with a in it), deep, wide: {emptied:?}"
    );
    assert!(emptied.freed_bytes >= deep.size_bytes + wide.size_bytes);
    for gone in ["a", "b", "e", "deep", "wide"] {
        assert!(!u.root.join(gone).exists(), "{gone} still on disk");
    }
    let trash = std::fs::read_dir(u.root.join(".trash")).map(|d| d.count());
    assert!(matches!(trash, Ok(0) | Err(_)), "{trash:?}");

    // A tree deeper than any walk enters: a clear error, nothing moved.
    assert_failed_precondition(child.delete(&u, "too-deep").await, "4096 levels");
    assert!(u.root.join("too-deep/d/d").is_dir());

    // An organize of the whole root: the deep tree is scanned as far as a
    // path can reach and reported, the rest organized, then undone.
    for i in 0..WIDE_FILES / 10 {
        std::fs::create_dir_all(u.root.join(format!("wide2/{i:04}"))).unwrap();
        std::fs::write(u.root.join(format!("wide2/{i:04}/f.txt")), format!("{i}")).unwrap();
    }
    let before = tree::content_multiset(&u.root.join("wide2"));
    let op = create(
        &app,
        &u,
        pb::Operation {
            source_path: String::new(),
            ..Default::default()
        },
    )
    .await;
    let done = child
        .wait(
            &u,
            &op.name,
            &[OperationState::Succeeded, OperationState::Failed],
        )
        .await;
    assert_eq!(done.state, OperationState::Succeeded as i32, "{done:?}");
    let recorded = records(&app, &op.name).await;
    assert_eq!(
        recorded
            .iter()
            .filter(|r| r.status == RecordStatus::Completed)
            .count(),
        WIDE_FILES / 10,
        "every file of wide2 moved"
    );
    assert!(
        recorded.iter().any(|r| r.status == RecordStatus::Skipped
            && r.original_path.starts_with("too-deep/d/d/")
            && r.reason
                .as_deref()
                .is_some_and(|why| why.contains("4096 bytes"))),
        "the part of too-deep no path can name is reported as skipped"
    );
    let undo = child
        .operations
        .clone()
        .undo_operation(bearer(
            pb::UndoOperationRequest {
                name: op.name.clone(),
                request_id: String::new(),
            },
            &u.token,
        ))
        .await
        .expect("UndoOperation")
        .into_inner();
    child
        .wait(&u, &undo.name, &[OperationState::Succeeded])
        .await;
    assert_eq!(
        tree::content_multiset(&u.root.join("wide2")),
        before,
        "undo restored every byte"
    );
    assert!(u.root.join("too-deep/d/d").is_dir());

    // Alive, never aborted, and still serving.
    assert!(server.0.try_wait().unwrap().is_none(), "the server died");
    let health = child
        .system
        .clone()
        .get_health(pb::GetHealthRequest {})
        .await;
    assert!(health.is_ok(), "{health:?}");
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organize_never_scans_through_a_folder_swapped_for_a_symlink_after_it_was_created() {
    let app = TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await;
    let alice = user(&app, "racer").await;
    let bob = user(&app, "victim").await;
    tree::write(&bob.root, "bob-secret.txt", b"bob's");
    let outside = tempfile::tempdir().unwrap();
    tree::write(outside.path(), "private/ssl-cert-snakeoil.key", b"key");

    // The probe's race, made certain: the operations are created (and their
    // sources checked) while nothing runs them, then the sources change.
    tree::write(&alice.root, "racesrc/mine.txt", b"mine");
    tree::write(&alice.root, "racesrc2/sub/mine.txt", b"mine too");
    tree::write(&alice.root, "racesrc2/top.txt", b"top");
    tree::write(&alice.root, "elsewhere/other.txt", b"other");
    let dry = |source: &str| pb::Operation {
        source_path: source.into(),
        dry_run: true,
        ..Default::default()
    };
    let whole = create(&app, &alice, dry("racesrc")).await;
    let sub = create(&app, &alice, dry("racesrc2")).await;
    let inside = create(&app, &alice, dry("elsewhere")).await;
    std::fs::rename(alice.root.join("racesrc"), alice.root.join("was-racesrc")).unwrap();
    std::os::unix::fs::symlink(&bob.root, alice.root.join("racesrc")).unwrap();
    std::fs::rename(alice.root.join("racesrc2/sub"), alice.root.join("was-sub")).unwrap();
    std::os::unix::fs::symlink(outside.path(), alice.root.join("racesrc2/sub")).unwrap();
    // Even a symlink that stays inside the root is not walked through.
    std::fs::rename(
        alice.root.join("elsewhere"),
        alice.root.join("was-elsewhere"),
    )
    .unwrap();
    std::os::unix::fs::symlink("was-racesrc", alice.root.join("elsewhere")).unwrap();

    let _server = spawn_server(&app, 0);
    let done = [OperationState::Planned, OperationState::Failed];
    let whole = crate::operations::wait_for(&app, &alice, &whole.name, &done).await;
    let sub = crate::operations::wait_for(&app, &alice, &sub.name, &done).await;
    let inside = crate::operations::wait_for(&app, &alice, &inside.name, &done).await;

    for op in [&whole, &inside] {
        assert_eq!(op.state, OperationState::Failed as i32, "{op:?}");
        let error = op.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
        assert!(error.contains("symbolic link"), "{op:?}");
        assert!(records(&app, &op.name).await.is_empty(), "{op:?}");
    }
    assert_eq!(sub.state, OperationState::Planned as i32, "{sub:?}");
    let recorded = records(&app, &sub.name).await;
    let paths: Vec<&str> = recorded.iter().map(|r| r.original_path.as_str()).collect();
    assert!(paths.contains(&"racesrc2/top.txt"), "{paths:?}");
    assert!(
        recorded.iter().any(|r| r.original_path == "racesrc2/sub"
            && r.status == RecordStatus::Skipped
            && r.reason
                .as_deref()
                .is_some_and(|w| w.contains("symbolic link"))),
        "{recorded:?}"
    );
    for r in &recorded {
        for leaked in ["snakeoil", "private", "bob-secret", "mine.txt"] {
            assert!(!r.original_path.contains(leaked), "{leaked} leaked: {r:?}");
        }
    }
}
