//! The persistent hash cache (docs/organize.md, "Hash cache"): a plan over an
//! unchanged tree reads no file content, a changed file is always read
//! again, one user's rows never answer another's, and the plan is the same
//! with the cache full, empty or off. What a hash phase read is the
//! operation's `bytes_hashed`, counted by the engine as it reads.

use std::{os::unix::fs::MetadataExt, path::Path, time::Duration};

use diesel::sql_types::{BigInt, Bytea, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use fileorganizer::{
    engine::{duplicates::HEAD_BYTES, hash_cache::SETTLE_NS},
    pb::fileorganizer::v1::{self as pb, OperationKind},
};

use crate::{
    common::{Options, TestApp, tree},
    operations::{User, organize, plan, records, user},
};

const BIG: usize = 40_000;

/// `BIG` bytes: the first `HEAD_BYTES` from `head`, the rest from `tail`.
fn body(head: u8, tail: u8) -> Vec<u8> {
    let mut body = vec![head; HEAD_BYTES];
    body.resize(BIG, tail);
    body
}

/// a.bin and copy/a.bin are identical; b.bin shares their size and head but
/// not their tail; the two small files are identical; one file has a size
/// of its own (never read).
fn build(root: &Path) {
    tree::write(root, "inbox/a.bin", &body(1, 2));
    tree::write(root, "inbox/copy/a.bin", &body(1, 2));
    tree::write(root, "inbox/b.bin", &body(1, 3));
    tree::write(root, "inbox/small.txt", b"hello");
    tree::write(root, "inbox/copy/small.txt", b"hello");
    tree::write(root, "inbox/unique.txt", b"only one of this size");
}

/// What reading everything `build` made costs: the five candidates' heads,
/// then the whole of the three that share size and head.
const COLD_BYTES: i64 = (3 * HEAD_BYTES + 2 * 5 + 3 * BIG) as i64;

/// Waits until files written before now are old enough for their hashes to
/// be kept (the cache keeps nothing of a file changed in the last seconds).
async fn settle() {
    let settle = Duration::from_nanos(SETTLE_NS as u64) + Duration::from_millis(300);
    tokio::time::sleep(settle).await;
}

fn user_id(user: &User) -> uuid::Uuid {
    uuid::Uuid::parse_str(user.root.file_name().unwrap().to_str().unwrap()).unwrap()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn bytes_hashed(app: &TestApp, op: &pb::Operation) -> i64 {
    let id = uuid::Uuid::parse_str(op.name.trim_start_matches("operations/")).unwrap();
    let Count { n } = diesel::sql_query("SELECT bytes_hashed AS n FROM operations WHERE id = $1")
        .bind::<SqlUuid, _>(id)
        .get_result(&mut app.db().await)
        .await
        .unwrap();
    n
}

async fn cached_rows(app: &TestApp, user: &User) -> i64 {
    let Count { n } = diesel::sql_query("SELECT count(*) AS n FROM hash_cache WHERE user_id = $1")
        .bind::<SqlUuid, _>(user_id(user))
        .get_result(&mut app.db().await)
        .await
        .unwrap();
    n
}

/// One decision of a plan, without the operation's id: path, destination,
/// status, content hash and the path of the kept copy of a duplicate.
type Decision = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

/// Every decision of a plan, in journal order.
async fn decisions(app: &TestApp, op: &pb::Operation) -> Vec<Decision> {
    let records = records(app, &op.name).await;
    records
        .iter()
        .map(|r| {
            let keeper = r.duplicate_of.map(|seq| {
                let kept = records.iter().find(|k| k.seq == seq).unwrap();
                kept.original_path.clone()
            });
            (
                r.original_path.clone(),
                r.new_path.clone(),
                r.status.as_str().to_string(),
                r.content_hash.as_deref().map(hex::encode),
                keeper,
            )
        })
        .collect()
}

fn keeper_of<'a>(plan: &'a [Decision], path: &str) -> Option<&'a str> {
    plan.iter()
        .find(|d| d.0 == path)
        .unwrap_or_else(|| panic!("{path} not planned: {plan:#?}"))
        .4
        .as_deref()
}

fn dedupe(source: &str) -> pb::Operation {
    pb::Operation {
        kind: OperationKind::Deduplicate as i32,
        source_path: source.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_plan_of_an_unchanged_tree_reads_no_content_and_plans_the_same() {
    let app = TestApp::spawn().await;
    let bob = user(&app, "hash-cache-warm").await;
    build(&bob.root);
    settle().await;

    let cold = plan(&app, &bob, organize("inbox")).await;
    assert_eq!(bytes_hashed(&app, &cold).await, COLD_BYTES);
    let cold_plan = decisions(&app, &cold).await;
    assert_eq!(
        keeper_of(&cold_plan, "inbox/copy/a.bin"),
        Some("inbox/a.bin")
    );
    assert_eq!(keeper_of(&cold_plan, "inbox/b.bin"), None);
    // The five candidates; the file of a size of its own was never read.
    assert_eq!(cached_rows(&app, &bob).await, 5);

    let warm = plan(&app, &bob, organize("inbox")).await;
    assert_eq!(
        bytes_hashed(&app, &warm).await,
        0,
        "the warm plan read content"
    );
    assert_eq!(decisions(&app, &warm).await, cold_plan);

    // A deduplicate run over the same tree is answered by the same cache.
    let deduped = plan(&app, &bob, dedupe("inbox")).await;
    assert_eq!(bytes_hashed(&app, &deduped).await, 0);
    assert_eq!(
        deduped.counters.unwrap().duplicates_found,
        cold.counters.unwrap().duplicates_found
    );

    // With the cache off, every run reads everything, keeps nothing, and
    // plans exactly the same.
    let off = TestApp::spawn_with(Options {
        env: vec![("HASH_CACHE_DAYS", "0".into())],
        ..Default::default()
    })
    .await;
    let carol = user(&off, "hash-cache-off").await;
    build(&carol.root);
    settle().await;
    for _ in 0..2 {
        let uncached = plan(&off, &carol, organize("inbox")).await;
        assert_eq!(bytes_hashed(&off, &uncached).await, COLD_BYTES);
        assert_eq!(decisions(&off, &uncached).await, cold_plan);
    }
    assert_eq!(cached_rows(&off, &carol).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_size_rewrite_that_sets_the_mtime_back_is_hashed_again() {
    let app = TestApp::spawn().await;
    let bob = user(&app, "hash-cache-rewrite").await;
    build(&bob.root);
    settle().await;
    plan(&app, &bob, organize("inbox")).await;
    let warm = plan(&app, &bob, organize("inbox")).await;
    assert_eq!(bytes_hashed(&app, &warm).await, 0);
    assert_eq!(
        keeper_of(&decisions(&app, &warm).await, "inbox/copy/a.bin"),
        Some("inbox/a.bin")
    );

    // Same size, same head, another tail, and the old mtime put back: only
    // the ctime tells.
    let path = bob.root.join("inbox/copy/a.bin");
    let before = std::fs::metadata(&path).unwrap();
    let rewritten = body(1, 9);
    std::fs::write(&path, &rewritten).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (after.ino(), after.len(), after.mtime(), after.mtime_nsec()),
        (
            before.ino(),
            before.len(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    assert_ne!(
        (after.ctime(), after.ctime_nsec()),
        (before.ctime(), before.ctime_nsec())
    );

    let changed = plan(&app, &bob, organize("inbox")).await;
    // That file's head and whole content; the others came from the cache.
    assert_eq!(
        bytes_hashed(&app, &changed).await,
        (HEAD_BYTES + BIG) as i64
    );
    let changed_plan = decisions(&app, &changed).await;
    assert_eq!(keeper_of(&changed_plan, "inbox/copy/a.bin"), None);
    let copy = changed_plan
        .iter()
        .find(|d| d.0 == "inbox/copy/a.bin")
        .unwrap();
    assert_eq!(
        copy.3.as_deref(),
        Some(blake3::hash(&rewritten).to_hex().as_str())
    );
    assert_eq!(
        keeper_of(&changed_plan, "inbox/copy/small.txt"),
        Some("inbox/small.txt")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_rows_for_the_same_inode_keys_never_answer() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "hash-cache-alice").await;
    let bob = user(&app, "hash-cache-bob").await;
    // Same size, different heads: not duplicates.
    tree::write(&bob.root, "inbox/p.bin", &body(4, 4));
    tree::write(&bob.root, "inbox/q.bin", &body(5, 5));
    settle().await;

    // Alice's rows carry exactly the keys of Bob's files, and one hash for
    // both: were they taken for Bob, his two files would be duplicates.
    let forged = vec![7u8; 32];
    let mut conn = app.db().await;
    for name in ["inbox/p.bin", "inbox/q.bin"] {
        let meta = std::fs::symlink_metadata(bob.root.join(name)).unwrap();
        diesel::sql_query(
            "INSERT INTO hash_cache
                 (user_id, dev, ino, size, mtime_ns, ctime_ns, head_hash, full_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind::<SqlUuid, _>(user_id(&alice))
        .bind::<BigInt, _>(meta.dev() as i64)
        .bind::<BigInt, _>(meta.ino() as i64)
        .bind::<BigInt, _>(meta.len() as i64)
        .bind::<BigInt, _>(meta.mtime() * 1_000_000_000 + meta.mtime_nsec())
        .bind::<BigInt, _>(meta.ctime() * 1_000_000_000 + meta.ctime_nsec())
        .bind::<Bytea, _>(&forged)
        .execute(&mut conn)
        .await
        .unwrap();
    }

    let first = plan(&app, &bob, organize("inbox")).await;
    assert_eq!(bytes_hashed(&app, &first).await, 2 * HEAD_BYTES as i64);
    let first_plan = decisions(&app, &first).await;
    assert_eq!(keeper_of(&first_plan, "inbox/q.bin"), None);
    assert_eq!(
        cached_rows(&app, &alice).await,
        2,
        "Alice's rows were touched"
    );
    assert_eq!(cached_rows(&app, &bob).await, 2);

    // The control: the same forgery in Bob's own rows is taken (nothing is
    // read), so only the user told the rows apart above.
    diesel::sql_query("UPDATE hash_cache SET head_hash = $2, full_hash = $2 WHERE user_id = $1")
        .bind::<SqlUuid, _>(user_id(&bob))
        .bind::<Bytea, _>(&forged)
        .execute(&mut conn)
        .await
        .unwrap();
    let second = plan(&app, &bob, organize("inbox")).await;
    assert_eq!(bytes_hashed(&app, &second).await, 0);
    assert_eq!(
        keeper_of(&decisions(&app, &second).await, "inbox/q.bin"),
        Some("inbox/p.bin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_files_no_longer_seen_expire_and_hits_keep_theirs() {
    let app = TestApp::spawn().await;
    let bob = user(&app, "hash-cache-expiry").await;
    build(&bob.root);
    settle().await;
    plan(&app, &bob, organize("inbox")).await;
    assert_eq!(cached_rows(&app, &bob).await, 5);

    // b.bin is deleted; every row is made 40 days old (past the default
    // 30), and two days for a.bin's (not refreshed for a day).
    std::fs::remove_file(bob.root.join("inbox/b.bin")).unwrap();
    let a = std::fs::metadata(bob.root.join("inbox/a.bin")).unwrap();
    let mut conn = app.db().await;
    diesel::sql_query(
        "UPDATE hash_cache SET seen_at = now() - CASE WHEN ino = $2 THEN interval '2 days'
                                                      ELSE interval '40 days' END
         WHERE user_id = $1",
    )
    .bind::<SqlUuid, _>(user_id(&bob))
    .bind::<BigInt, _>(a.ino() as i64)
    .execute(&mut conn)
    .await
    .unwrap();

    let next = plan(&app, &bob, organize("inbox")).await;
    // a.bin and copy/a.bin still share size and head: answered by the
    // cache; the small files too.
    assert_eq!(bytes_hashed(&app, &next).await, 0);
    // b.bin's row expired; every hit old enough was touched, so the four
    // files still seen keep theirs.
    assert_eq!(cached_rows(&app, &bob).await, 4);
    let Count { n: fresh } = diesel::sql_query(
        "SELECT count(*) AS n FROM hash_cache
         WHERE user_id = $1 AND seen_at > now() - interval '1 hour'",
    )
    .bind::<SqlUuid, _>(user_id(&bob))
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(fresh, 4);
}
