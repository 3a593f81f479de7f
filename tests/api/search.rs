//! SearchFiles by name and by content hash across the life of an
//! operation's search index (`db::file_names`): while its names and hashes
//! wait to be indexed, once they are, and after apply renames a file on a
//! conflict.

use std::time::Duration;

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use fileorganizer::pb::fileorganizer::v1::{self as pb, OperationState};
use uuid::Uuid;

use crate::{
    common::{TestApp, tree},
    files::search,
    operations::{User, apply, organize, plan, user, wait_for},
};

async fn find(app: &TestApp, user: &User, name_contains: &str, page_size: i32) -> Vec<String> {
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::SearchFilesRequest {
            name_contains: name_contains.into(),
            page_size,
            page_token,
            ..Default::default()
        };
        let page = search(app, user, request).await.unwrap();
        found.extend(
            page.file_records
                .into_iter()
                .map(|r| format!("{} -> {}", r.original_path, r.new_path)),
        );
        if page.next_page_token.is_empty() {
            return found;
        }
        page_token = page.next_page_token;
    }
}

/// The records holding this content (hex), as "original -> new" paths.
async fn with_content(app: &TestApp, user: &User, content: &[u8]) -> Vec<String> {
    let request = pb::SearchFilesRequest {
        content_hash: blake3::hash(content).to_hex().to_string(),
        page_size: 50,
        ..Default::default()
    };
    let page = search(app, user, request).await.unwrap();
    page.file_records
        .into_iter()
        .map(|r| format!("{} -> {}", r.original_path, r.new_path))
        .collect()
}

/// A dry-run organize of the user's `inbox`, PLANNED, with its id.
async fn plan_inbox(app: &TestApp, user: &User) -> (pb::Operation, Uuid) {
    let op = plan(app, user, organize("inbox")).await;
    let id = Uuid::parse_str(op.name.trim_start_matches("operations/")).unwrap();
    (op, id)
}

async fn pending(conn: &mut AsyncPgConnection, id: Uuid) -> bool {
    fileorganizer::db::file_names::is_pending(conn, id)
        .await
        .unwrap()
}

/// Waits for the background task to index the operation's names.
async fn wait_indexed(conn: &mut AsyncPgConnection, id: Uuid) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while pending(conn, id).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "names of {id} never indexed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(diesel::QueryableByName)]
struct Hash {
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    content_hash: Vec<u8>,
}

#[derive(diesel::QueryableByName)]
struct Names {
    #[diesel(sql_type = diesel::sql_types::Text)]
    names: String,
}

async fn indexed_names(conn: &mut AsyncPgConnection, id: Uuid) -> Vec<String> {
    let rows: Vec<Names> =
        diesel::sql_query("SELECT names FROM file_names WHERE operation_id = $1 ORDER BY seq")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .load(conn)
            .await
            .unwrap();
    rows.into_iter().map(|r| r.names).collect()
}

async fn execute(conn: &mut AsyncPgConnection, sql: &str, id: Uuid) {
    diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_by_name_or_hash_finds_every_record_before_and_after_indexing() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "names").await;
    tree::write(&ann.root, "inbox/Invoice-March.pdf", b"march");
    tree::write(&ann.root, "inbox/old/invoice-april.pdf", b"april");
    tree::write(&ann.root, "inbox/photo.jpg", b"jpeg");
    let (op, id) = plan_inbox(&app, &ann).await;
    let mut conn = app.db().await;

    // A planned dry run is not held by a job: its names get indexed.
    wait_indexed(&mut conn, id).await;
    let mut names = indexed_names(&mut conn, id).await;
    names.sort();
    assert_eq!(
        names,
        [
            "invoice-april.pdf\ninvoice-april.pdf",
            "invoice-march.pdf\ninvoice-march.pdf",
            "photo.jpg\nphoto.jpg",
        ]
    );
    let planned = find(&app, &ann, "INVOICE", 50).await;
    assert_eq!(planned.len(), 2, "{planned:?}");
    // Content hashes are in the same index (migration 000017): March and
    // April share a size, so both were hashed (the photo's size is unique).
    let hashes: Vec<Hash> = diesel::sql_query(
        "SELECT content_hash FROM file_names WHERE operation_id = $1 AND content_hash IS NOT NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .load(&mut conn)
    .await
    .unwrap();
    let mut hashes: Vec<Vec<u8>> = hashes.into_iter().map(|h| h.content_hash).collect();
    hashes.sort();
    let mut expected = vec![
        blake3::hash(b"march").as_bytes().to_vec(),
        blake3::hash(b"april").as_bytes().to_vec(),
    ];
    expected.sort();
    assert_eq!(hashes, expected);
    let march = with_content(&app, &ann, b"march").await;
    assert_eq!(march.len(), 1, "{march:?}");
    assert!(
        march[0].starts_with("inbox/Invoice-March.pdf -> "),
        "{march:?}"
    );

    // Someone takes April's destination before the apply: it is renamed,
    // and the trigger carries the new name into the index.
    tree::write(
        &ann.root,
        "inbox/Documents/invoice-april.pdf",
        b"someone else's",
    );
    apply(&app, &ann, &op.name).await;
    wait_for(&app, &ann, &op.name, &[OperationState::Succeeded]).await;
    assert!(!pending(&mut conn, id).await);
    assert!(
        indexed_names(&mut conn, id)
            .await
            .contains(&"invoice-april.pdf\ninvoice-april (1).pdf".to_string())
    );
    let renamed = find(&app, &ann, "april (1)", 50).await;
    assert_eq!(
        renamed,
        ["inbox/old/invoice-april.pdf -> inbox/Documents/invoice-april (1).pdf"]
    );
    let indexed = find(&app, &ann, "invoice", 50).await;
    assert_eq!(indexed.len(), 2, "{indexed:?}");

    // The state right after a journal is written (db::file_names::start_journal),
    // held there: the indexer cannot take the operation's lock.
    let mut holder = app.db().await;
    execute(
        &mut holder,
        "SELECT pg_advisory_lock(file_names_lock_key($1))",
        id,
    )
    .await;
    repend(&app, &mut conn, id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pending(&mut conn, id).await);
    assert!(indexed_names(&mut conn, id).await.is_empty());
    // Same answers, in the same order, by pages of one too.
    assert_eq!(find(&app, &ann, "invoice", 50).await, indexed);
    assert_eq!(find(&app, &ann, "invoice", 1).await, indexed);
    assert_eq!(find(&app, &ann, "april (1)", 50).await, renamed);
    assert!(find(&app, &ann, "documents", 50).await.is_empty());
    // By content hash too, from the records themselves.
    let pending_march = with_content(&app, &ann, b"march").await;
    assert_eq!(pending_march.len(), 1, "{pending_march:?}");
    assert_eq!(
        pending_march[0].split(" -> ").next(),
        march[0].split(" -> ").next()
    );
    assert!(
        with_content(&app, &ann, b"nobody's content")
            .await
            .is_empty()
    );

    // Let go: the names are indexed again and the answers do not change.
    execute(
        &mut holder,
        "SELECT pg_advisory_unlock(file_names_lock_key($1))",
        id,
    )
    .await;
    app.state.jobs_finished.notify_one();
    wait_indexed(&mut conn, id).await;
    assert_eq!(indexed_names(&mut conn, id).await.len(), 3);
    assert_eq!(find(&app, &ann, "invoice", 1).await, indexed);
    assert_eq!(find(&app, &ann, "april (1)", 50).await, renamed);
    assert_eq!(with_content(&app, &ann, b"march").await, pending_march);
}

#[derive(diesel::QueryableByName)]
struct Analyzed {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    at: Option<chrono::DateTime<chrono::Utc>>,
}

/// When `file_names` was last analyzed by an explicit ANALYZE (migrations,
/// the indexer), not by autovacuum (which has a column of its own).
async fn last_analyze(conn: &mut AsyncPgConnection) -> Option<chrono::DateTime<chrono::Utc>> {
    let row: Analyzed = diesel::sql_query(
        "SELECT last_analyze AS at FROM pg_stat_user_tables WHERE relname = 'file_names'",
    )
    .get_result(conn)
    .await
    .unwrap();
    row.at
}

/// Lists an indexed operation as pending again, as its journal's writer
/// does, and wakes the indexer.
async fn repend(app: &TestApp, conn: &mut AsyncPgConnection, id: Uuid) {
    execute(conn, "DELETE FROM file_names WHERE operation_id = $1", id).await;
    execute(
        conn,
        "INSERT INTO file_names_pending (operation_id) VALUES ($1)",
        id,
    )
    .await;
    app.state.jobs_finished.notify_one();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexing_a_large_operation_refreshes_the_planners_statistics_and_a_small_one_does_not() {
    let app = TestApp::spawn().await;
    let ann = user(&app, "analyze").await;
    tree::write(&ann.root, "inbox/a.txt", b"a");
    tree::write(&ann.root, "inbox/b.txt", b"b");
    let (_, id) = plan_inbox(&app, &ann).await;
    let mut conn = app.db().await;
    wait_indexed(&mut conn, id).await;
    // The migrations analyzed the empty table; two names are no reason to
    // analyze again.
    let migrated = last_analyze(&mut conn).await;
    repend(&app, &mut conn, id).await;
    wait_indexed(&mut conn, id).await;
    assert_eq!(indexed_names(&mut conn, id).await.len(), 2);
    assert_eq!(last_analyze(&mut conn).await, migrated);

    // 10,000 more records in the same journal (jobs::search_names'
    // threshold), written in SQL rather than as 10,000 files.
    execute(
        &mut conn,
        "INSERT INTO file_records (operation_id, seq, original_path, category, status, user_id)
         SELECT o.id, 100 + n, 'inbox/generated-' || n || '.txt', 'Documents', 'skipped', o.user_id
         FROM operations o, generate_series(1, 10000) AS n WHERE o.id = $1",
        id,
    )
    .await;
    repend(&app, &mut conn, id).await;
    wait_indexed(&mut conn, id).await;
    assert_eq!(indexed_names(&mut conn, id).await.len(), 10_002);
    // The ANALYZE runs right after the indexing transaction commits.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let analyzed = last_analyze(&mut conn).await;
        if analyzed.is_some() && analyzed > migrated {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "file_names was not analyzed after 10,002 names (last: {analyzed:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(find(&app, &ann, "generated-9999.", 50).await.len(), 1);
}
