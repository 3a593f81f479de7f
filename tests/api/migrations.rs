//! Migrations: every up has a working down, and they re-apply cleanly.

use diesel_async::RunQueryDsl;

use crate::common::{postgres_base, repo_root};

/// The number of migrations in migrations/ (each is a folder).
fn migration_count() -> usize {
    std::fs::read_dir(repo_root().join("migrations"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
        .count()
}

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
}

async fn tables(url: &str) -> Vec<String> {
    use diesel_async::AsyncConnection;
    let mut conn = diesel_async::AsyncPgConnection::establish(url)
        .await
        .unwrap();
    let mut names: Vec<String> = diesel::sql_query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_name <> '__diesel_schema_migrations'",
    )
    .load::<TableName>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|t| t.table_name)
    .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_revert_and_reapply() {
    let name = format!("fo_test_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{name}", postgres_base());
    fileorganizer::db::ensure_database(&url).await.unwrap();
    // ensure_database is idempotent.
    fileorganizer::db::ensure_database(&url).await.unwrap();

    let applied = fileorganizer::db::run_migrations(&url).await.unwrap();
    assert_eq!(applied.len(), migration_count());
    assert_eq!(
        tables(&url).await,
        [
            "api_keys",
            "audit_log",
            "automations",
            "categories",
            "duplicate_group_totals",
            "duplicate_groups",
            "file_names",
            "file_names_pending",
            "file_records",
            "hash_cache",
            "operation_memos",
            "operations",
            "refresh_tokens",
            "rule_sets",
            "rules",
            "trash_items",
            "upload_sessions",
            "users",
            "watch_tokens"
        ]
    );
    assert!(
        fileorganizer::db::run_migrations(&url)
            .await
            .unwrap()
            .is_empty()
    );

    let reverted = fileorganizer::db::revert_all_migrations(&url)
        .await
        .unwrap();
    assert_eq!(reverted.len(), migration_count());
    assert!(
        tables(&url).await.is_empty(),
        "down migrations left tables behind"
    );

    assert_eq!(
        fileorganizer::db::run_migrations(&url).await.unwrap().len(),
        migration_count()
    );

    use diesel_async::AsyncConnection;
    let mut admin =
        diesel_async::AsyncPgConnection::establish(&format!("{}/postgres", postgres_base()))
            .await
            .unwrap();
    diesel::sql_query(format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// `src/schema.rs` is diesel's `print-schema` output for the migrated
/// database (diesel.toml); this keeps it from drifting from the migrations
/// without needing the diesel CLI: every table and column, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_rs_matches_the_migrated_database() {
    use std::collections::BTreeMap;

    #[derive(diesel::QueryableByName)]
    struct Column {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        column_name: String,
    }

    let schema = std::fs::read_to_string(crate::common::repo_root().join("src/schema.rs")).unwrap();
    let mut declared: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in schema.lines().map(str::trim) {
        if let Some((name, _)) = line.split_once(" (").filter(|_| line.ends_with(") {")) {
            current = Some(name.to_string());
            declared.insert(name.to_string(), Vec::new());
        } else if let (Some(table), Some((column, _))) = (&current, line.split_once(" -> ")) {
            declared.get_mut(table).unwrap().push(column.to_string());
        } else if line == "}" {
            current = None;
        }
    }

    assert!(
        declared.len() >= 8 && declared["users"].contains(&"email".to_string()),
        "{declared:?}"
    );

    let app = crate::common::TestApp::spawn().await;
    let mut conn = app.db().await;
    let rows: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'
         ORDER BY table_name, ordinal_position",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut actual: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        actual
            .entry(row.table_name)
            .or_default()
            .push(row.column_name);
    }
    assert_eq!(
        declared, actual,
        "src/schema.rs differs from the migrations: run `diesel print-schema`"
    );
}

/// Processes starting together (API pods, workers) migrate one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_start_ups_migrate_once() {
    let name = format!("fo_test_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{name}", postgres_base());
    fileorganizer::db::ensure_database(&url).await.unwrap();
    let runs =
        futures::future::join_all((0..4).map(|_| fileorganizer::db::run_migrations(&url))).await;
    let mut applied = 0;
    for run in runs {
        applied += run.expect("a concurrent migration run failed").len();
    }
    assert_eq!(
        applied,
        migration_count(),
        "every migration applied exactly once"
    );
    use diesel_async::AsyncConnection;
    let mut admin =
        diesel_async::AsyncPgConnection::establish(&format!("{}/postgres", postgres_base()))
            .await
            .unwrap();
    diesel::sql_query(format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
