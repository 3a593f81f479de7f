//! Migrations: every up has a working down, and they re-apply cleanly.

use diesel_async::RunQueryDsl;

use crate::common::postgres_base;

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
    assert_eq!(applied.len(), 10);
    assert_eq!(
        tables(&url).await,
        [
            "api_keys",
            "audit_log",
            "categories",
            "file_records",
            "operations",
            "refresh_tokens",
            "trash_items",
            "users"
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
    assert_eq!(reverted.len(), 10);
    assert!(
        tables(&url).await.is_empty(),
        "down migrations left tables behind"
    );

    assert_eq!(
        fileorganizer::db::run_migrations(&url).await.unwrap().len(),
        10
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
