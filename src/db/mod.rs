//! Postgres access: the connection pool, database creation, embedded
//! migrations, and one module of queries per table group.
//!
//! diesel-async over a bb8 pool serves every request. Start-up first makes
//! sure the database named in DATABASE_URL exists (connecting to the server's
//! `postgres` database to create it), then applies the embedded migrations.
//! Migrations run through diesel's synchronous harness on a blocking thread
//! (the async wrapper blocks on the runtime handle), so they work from any
//! tokio runtime flavour.

pub(crate) mod audit;
pub(crate) mod automations;
pub(crate) mod categories;
pub(crate) mod credentials;
pub(crate) mod enums;
pub mod file_names;
pub mod file_records;
pub mod file_search;
pub mod hash_cache;
pub(crate) mod memos;
pub mod models;
pub mod operations;
pub(crate) mod quota;
pub mod reports;
pub(crate) mod rules;
pub(crate) mod trash;
pub(crate) mod uploads;
pub mod users;
pub(crate) mod watch_tokens;

use std::time::Duration;

use anyhow::Context;
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl,
    async_connection_wrapper::AsyncConnectionWrapper,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, bb8::Pool},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub type DbPool = Pool<AsyncPgConnection>;

/// Every migration under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The advisory lock that serializes migration runs of concurrent processes.
const MIGRATION_LOCK: &str =
    "SELECT pg_advisory_lock(hashtextextended('fileorganizer.migrations', 0))";
const MIGRATION_UNLOCK: &str =
    "SELECT pg_advisory_unlock(hashtextextended('fileorganizer.migrations', 0))";

/// How long a request waits for a pooled connection before answering
/// UNAVAILABLE; also the bound on opening the journal's own connection.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

pub use crate::error::ConnectTimedOut;

/// What a versioned update or delete (a rule, an automation) found.
#[derive(Debug)]
pub enum Write<T> {
    Done(T),
    /// No such row of this user.
    Missing,
    /// The row's version is not the expected one; nothing changed.
    Stale {
        current: i64,
    },
}

/// Builds the pool. Connections are made lazily, so a database that is down
/// at this moment does not prevent the pool from existing.
pub fn pool(url: &str, size: u32) -> DbPool {
    let mut manager_config = ManagerConfig::default();
    manager_config.custom_setup = Box::new(|url| {
        Box::pin(async move {
            let mut conn =
                tokio::time::timeout(CONNECTION_TIMEOUT, AsyncPgConnection::establish(url))
                    .await
                    .unwrap_or_else(|_| {
                        Err(diesel::ConnectionError::BadConnection(
                            "timed out connecting to the database".into(),
                        ))
                    })?;
            conn.set_instrumentation(crate::infra::observability::QueryMetrics::default());
            Ok(conn)
        })
    });
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, manager_config);
    Pool::builder()
        .max_size(size)
        .connection_timeout(CONNECTION_TIMEOUT)
        // A connection that died (database restart, network cut) is
        // detected and replaced before a request gets it.
        .test_on_check_out(true)
        .build_unchecked(manager)
}

/// Splits `postgres://…/name?opts` into (URL of the `postgres` maintenance
/// database, `name`).
fn maintenance_url(url: &str) -> anyhow::Result<(String, String)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let slash = base
        .rfind('/')
        .filter(|i| *i > base.find("://").map_or(0, |s| s + 2))
        .context("DATABASE_URL has no database name")?;
    let name = &base[slash + 1..];
    anyhow::ensure!(!name.is_empty(), "DATABASE_URL has no database name");
    anyhow::ensure!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "database name {name:?} must be letters, digits, '_' or '-'"
    );
    let mut admin = format!("{}/postgres", &base[..slash]);
    if let Some(q) = query {
        admin.push('?');
        admin.push_str(q);
    }
    Ok((admin, name.to_string()))
}

/// Creates the database named in `url` unless it exists.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let (admin_url, name) = maintenance_url(url)?;
    let mut conn = AsyncPgConnection::establish(&admin_url)
        .await
        .with_context(|| format!("connecting to {}", crate::config::redact_url(&admin_url)))?;
    let exists: i64 = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM pg_database WHERE datname = '{name}'"
    ))
    .get_result::<Count>(&mut conn)
    .await?
    .n;
    if exists == 0 {
        match diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it at the same moment.
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("already exists") => {}
            Err(e) => return Err(e).context("creating the database"),
        }
    }
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Applies every pending embedded migration; returns the versions applied.
pub async fn run_migrations(url: &str) -> anyhow::Result<Vec<String>> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .context("connecting to run migrations")?;
        // Several processes (API pods, workers) may start at once: a session
        // advisory lock makes them migrate one after the other; the later
        // ones then find nothing pending.
        diesel::RunQueryDsl::execute(diesel::sql_query(MIGRATION_LOCK), &mut conn)
            .context("taking the migration lock")?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(|v| v.to_string()).collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("running migrations: {e}"));
        let _ = diesel::RunQueryDsl::execute(diesel::sql_query(MIGRATION_UNLOCK), &mut conn);
        applied
    })
    .await?
}

/// Reverts every applied migration (used by the down-migration test).
pub async fn revert_all_migrations(url: &str) -> anyhow::Result<Vec<String>> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)?;
        let reverted = conn
            .revert_all_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("reverting migrations: {e}"))?;
        Ok(reverted.iter().map(|v| v.to_string()).collect())
    })
    .await?
}

/// Creates the database if needed, applies migrations and returns the pool.
pub async fn connect(url: &str, pool_size: u32) -> anyhow::Result<DbPool> {
    ensure_database(url).await?;
    let applied = run_migrations(url).await?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied migrations");
    }
    Ok(pool(url, pool_size))
}

/// One round trip to the database, bounded in time; for health checks.
pub async fn ping(pool: &DbPool, timeout: Duration) -> Result<(), String> {
    let check = async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::maintenance_url;

    #[test]
    fn maintenance_url_swaps_the_database_name() {
        let (admin, name) = maintenance_url("postgres://u@h:5432/app_db?sslmode=disable").unwrap();
        assert_eq!(admin, "postgres://u@h:5432/postgres?sslmode=disable");
        assert_eq!(name, "app_db");
        assert!(maintenance_url("postgres://u@h:5432/").is_err());
        assert!(maintenance_url("postgres://u@h/x';drop").is_err());
    }
}
