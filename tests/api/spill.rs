//! Duplicate grouping and the full hashes spill to disk past
//! ORGANIZE_SPILL_RECORDS (docs/organize.md, "Memory"): a server that
//! spills at 3 records journals exactly what a server that keeps everything
//! in memory journals, for the same tree, and leaves nothing in its spill
//! folder.

use std::path::Path;

use fileorganizer::{
    domain::RecordStatus, engine::duplicates::HEAD_BYTES, pb::fileorganizer::v1 as pb,
};

use crate::{
    common::{Options, TestApp, tree},
    operations::{organize, plan, records, succeed, user},
};

/// A few hundred files in several folders: duplicate groups of small and
/// big files (kept by the oldest copy), files of one size but other
/// content, big files with one head and other tails, and names repeated
/// across folders, so the destination has collisions to number. Every
/// mtime is set, so both servers see the same tree.
fn build(root: &Path) {
    let mut n = 0u64;
    let mut write = |path: String, body: Vec<u8>| {
        tree::write(root, &path, &body);
        n += 1;
        tree::set_mtime(root, &path, 1_600_000_000 + (n * 7919) % 1000);
    };
    for i in 0..300u32 {
        let folder = ["inbox", "inbox/a", "inbox/b/c", "inbox/d"][(i / 40) as usize % 4];
        let folder = format!("{folder}/{}", i / 160);
        let ext = ["jpg", "txt", "pdf", "mp3", "bin"][i as usize % 5];
        // 40 names over 300 files (unique in a folder): most names collide
        // in the destination.
        let name = format!("file-{}.{ext}", i % 40);
        let body = match i % 6 {
            // 30 distinct contents, each in about 2 files.
            0 | 1 => format!("content {}", i % 30).into_bytes(),
            // One size, many contents.
            2 => format!("same-size {:04}", i).into_bytes(),
            // Big files: 5 heads × 2 tails.
            3 => {
                let mut body = vec![(i % 5) as u8; HEAD_BYTES];
                body.resize(HEAD_BYTES + 3_000, (i % 2) as u8);
                body
            }
            // Unique sizes.
            4 => vec![b'u'; 200 + i as usize],
            _ => b"the same five hundred".to_vec(),
        };
        write(format!("{folder}/{name}"), body);
        if i % 10 == 0 {
            write(format!("{folder}/sub/{name}"), vec![b'x'; 64]);
        }
    }
}

/// The journal rows users see, in seq order: original path, new path,
/// duplicate of (as a seq), content hash, category, status.
type Row = (
    String,
    Option<String>,
    Option<i64>,
    Option<Vec<u8>>,
    String,
    RecordStatus,
);

async fn journal(app: &TestApp, name: &str) -> Vec<Row> {
    records(app, name)
        .await
        .into_iter()
        .map(|r| {
            (
                r.original_path,
                r.new_path,
                r.duplicate_of,
                r.content_hash,
                r.category,
                r.status,
            )
        })
        .collect()
}

/// The journals of a dry run hashing every file and of an organize moving
/// duplicates to `_duplicates`, on a server started with `env`.
async fn organize_with(env: Vec<(&'static str, String)>) -> (Vec<Row>, Vec<Row>, TestApp) {
    let app = TestApp::spawn_with(Options {
        env,
        ..Default::default()
    })
    .await;
    let kim = user(&app, "spill").await;
    build(&kim.root);
    let all = plan(
        &app,
        &kim,
        pb::Operation {
            hash_all_files: true,
            ..organize("inbox")
        },
    )
    .await;
    let hashed_all = journal(&app, &all.name).await;
    let op = succeed(
        &app,
        &kim,
        pb::Operation {
            duplicate_policy: pb::DuplicatePolicy::MoveToDuplicatesFolder as i32,
            ..organize("inbox")
        },
    )
    .await;
    let organized = journal(&app, &op.name).await;
    (hashed_all, organized, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organize_that_spills_journals_what_one_in_memory_journals() {
    let (memory_all, memory, memory_app) = organize_with(vec![]).await;
    let (spilled_all, spilled, spilling_app) =
        organize_with(vec![("ORGANIZE_SPILL_RECORDS", "3".into())]).await;

    // The tree has what the comparison needs.
    assert!(memory.len() > 300, "{}", memory.len());
    let duplicates = memory.iter().filter(|r| r.2.is_some()).count();
    assert!(duplicates > 50, "{duplicates}");
    let numbered = memory
        .iter()
        .filter(|r| r.1.as_deref().is_some_and(|p| p.contains(" (1)")))
        .count();
    assert!(numbered > 10, "{numbered}");
    assert!(
        memory.iter().all(|r| RecordStatus::MOVED.contains(&r.5)),
        "{memory:#?}"
    );
    assert!(memory_all.iter().all(|r| r.3.is_some()));

    assert_eq!(spilled, memory);
    assert_eq!(spilled_all, memory_all);

    // The runs had no names: nothing is left in the spill folder, made on
    // the storage volume (the one writable in every deployment) only by the
    // server that spilled.
    let spill = spilling_app.state.config.storage_root.join(".spill");
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
    assert!(!memory_app.state.config.storage_root.join(".spill").exists());
}
