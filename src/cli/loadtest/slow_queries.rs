//! The report's `slow_queries`: the database's own view of the run, from
//! `pg_stat_statements`, when the server has it.
//!
//! The extension only counts when its library is loaded at server start
//! (`shared_preload_libraries`) and has been created in the database; neither
//! can be switched on from here without a restart, so the load test never
//! tries: it reports the top statements when both hold and otherwise says
//! exactly which one is missing (BENCHMARKS.md shows how to enable it). The
//! counters are reset for this database only when the run starts, so the
//! figures are the run's own; a role that may not reset them gets cumulative
//! figures, and the report says so.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls};

/// Statements listed per ranking.
pub const TOP: i64 = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The database the server uses (the same default as `fileorg serve`).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/fileorganizer".into())
}

/// Why statistics cannot be collected, or a connection that can collect.
pub enum Source {
    Ready { client: Client, reset: bool },
    Unavailable(String),
}

async fn connect(url: &str) -> Result<Client, String> {
    let connecting = tokio_postgres::connect(url, NoTls);
    let (client, connection) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(format!("could not connect to DATABASE_URL: {e}")),
        Err(_) => return Err("could not connect to DATABASE_URL within 5 s".into()),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Checks that pg_stat_statements counts in this database and resets its
/// counters for this database (so the report covers this run).
pub async fn prepare(url: &str) -> Source {
    let client = match connect(url).await {
        Ok(client) => client,
        Err(reason) => return Source::Unavailable(reason),
    };
    let preload = match client
        .query_one("SELECT current_setting('shared_preload_libraries')", &[])
        .await
    {
        Ok(row) => row.get::<_, String>(0),
        Err(e) => return Source::Unavailable(format!("could not read the settings: {e}")),
    };
    if !preload
        .split(',')
        .any(|library| library.trim().trim_matches('"') == "pg_stat_statements")
    {
        return Source::Unavailable(format!(
            "pg_stat_statements is not in shared_preload_libraries (it is '{preload}'); \
             enabling it needs a PostgreSQL restart (see BENCHMARKS.md)"
        ));
    }
    match client
        .query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'",
            &[],
        )
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Source::Unavailable(
                "pg_stat_statements is loaded but not created in this database: \
                 run CREATE EXTENSION pg_stat_statements"
                    .into(),
            );
        }
        Err(e) => return Source::Unavailable(format!("could not read pg_extension: {e}")),
    }
    let reset = client
        .execute(
            "SELECT pg_stat_statements_reset(0, \
             (SELECT oid FROM pg_database WHERE datname = current_database()), 0)",
            &[],
        )
        .await
        .is_ok();
    Source::Ready { client, reset }
}

async fn top(client: &Client, order: &str) -> Result<Value, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT query, calls, total_exec_time, mean_exec_time, max_exec_time, rows \
                 FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 ORDER BY {order} DESC LIMIT $1"
            ),
            &[&TOP],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "query": r.get::<_, String>("query"),
                "calls": r.get::<_, i64>("calls"),
                "total_ms": r.get::<_, f64>("total_exec_time"),
                "mean_ms": r.get::<_, f64>("mean_exec_time"),
                "max_ms": r.get::<_, f64>("max_exec_time"),
                "rows": r.get::<_, i64>("rows"),
            })
        })
        .collect())
}

/// The report section: the top statements by mean and by total execution
/// time, or why there are none.
pub async fn collect(source: Source) -> Value {
    let (client, reset) = match source {
        Source::Ready { client, reset } => (client, reset),
        Source::Unavailable(reason) => return json!({"collected": false, "reason": reason}),
    };
    let scope = if reset {
        "this database, since the run started (counters reset at its start)"
    } else {
        "this database, cumulative (this role may not reset the counters)"
    };
    match (
        top(&client, "mean_exec_time").await,
        top(&client, "total_exec_time").await,
    ) {
        (Ok(by_mean), Ok(by_total)) => json!({
            "collected": true,
            "source": "pg_stat_statements",
            "scope": scope,
            "by_mean_time": by_mean,
            "by_total_time": by_total,
        }),
        (Err(e), _) | (_, Err(e)) => {
            json!({"collected": false, "reason": format!("could not read pg_stat_statements: {e}")})
        }
    }
}
