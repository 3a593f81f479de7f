//! `fileorg db optimize | analyze | stats`: database tuning helpers, plain SQL
//! over tokio-postgres (simple query protocol, text results).
//!
//! `analyze` EXPLAINs the statements the API itself runs for duplicate groups
//! and search (taken from `db::reports` and `db::file_search`, prepared with
//! a first page's parameters), so a plan shown here is the plan a request
//! gets, not that of a hand-copied look-alike that can drift from the code.

use std::process::ExitCode;

use fileorganizer::db::{
    file_search::{NameSource, SearchFilter, search_statements},
    reports::{COUNT_DUPLICATE_GROUPS, duplicate_groups_sql, group_members_sql},
};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

#[derive(clap::Subcommand, Debug)]
pub enum DbCommand {
    /// Ensure every index exists (apply migrations), then ANALYZE.
    Optimize,
    /// EXPLAIN (ANALYZE, BUFFERS) of each hot API query; flags sequential scans.
    Analyze {
        /// The operation to use (default: the one with the most records).
        #[arg(long)]
        operation: Option<uuid::Uuid>,
    },
    /// Row counts, table and index sizes, index usage.
    Stats,
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/fileorganizer".into())
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("database connection: {e}");
        }
    });
    Ok(client)
}

/// Rows of a query as text columns (NULL as "").
async fn rows(client: &Client, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for message in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = message {
            out.push(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("").to_string())
                    .collect(),
            );
        }
    }
    Ok(out)
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(header.to_vec()));
    for r in rows {
        println!("{}", line(r.iter().map(String::as_str).collect()));
    }
}

pub async fn run(command: DbCommand) -> anyhow::Result<ExitCode> {
    let url = database_url();
    match command {
        DbCommand::Optimize => {
            fileorganizer::db::ensure_database(&url).await?;
            let applied = fileorganizer::db::run_migrations(&url).await?;
            println!(
                "indexes: migrations up to date ({} applied now)",
                applied.len()
            );
            let client = connect(&url).await?;
            let started = std::time::Instant::now();
            client.batch_execute("ANALYZE").await?;
            println!("ANALYZE done in {:.2} s", started.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Stats => {
            let client = connect(&url).await?;
            println!("tables:");
            let tables = rows(
                &client,
                "SELECT relname, n_live_tup::text, pg_size_pretty(pg_table_size(relid)), \
                 pg_size_pretty(pg_indexes_size(relid)), pg_size_pretty(pg_total_relation_size(relid)), \
                 seq_scan::text, coalesce(idx_scan, 0)::text \
                 FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC",
            )
            .await?;
            print_table(
                &[
                    "table",
                    "rows(est)",
                    "table",
                    "indexes",
                    "total",
                    "seq_scans",
                    "idx_scans",
                ],
                &tables,
            );
            println!("\nexact row counts:");
            let mut counts = Vec::new();
            for t in [
                "users",
                "operations",
                "file_records",
                "file_names",
                "file_names_pending",
                "trash_items",
                "audit_log",
            ] {
                let exists = rows(
                    &client,
                    &format!("SELECT to_regclass('public.{t}') IS NOT NULL"),
                )
                .await?;
                if exists.first().and_then(|r| r.first()).map(String::as_str) == Some("t") {
                    let n = rows(&client, &format!("SELECT count(*) FROM {t}")).await?;
                    counts.push(vec![t.to_string(), n[0][0].clone()]);
                }
            }
            print_table(&["table", "rows"], &counts);
            println!("\nindex usage:");
            let indexes = rows(
                &client,
                "SELECT relname, indexrelname, idx_scan::text, idx_tup_read::text, idx_tup_fetch::text, \
                 pg_size_pretty(pg_relation_size(indexrelid)) \
                 FROM pg_stat_user_indexes ORDER BY relname, indexrelname",
            )
            .await?;
            print_table(
                &[
                    "table",
                    "index",
                    "scans",
                    "tuples_read",
                    "tuples_fetched",
                    "size",
                ],
                &indexes,
            );
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Analyze { operation } => analyze(&url, operation).await,
    }
}

/// `sql` (with `$n` placeholders) prepared, run as `{run} q(params)` and
/// deallocated: the plan the API gets for the same statement.
fn prepared(sql: &str, params: &[String], run: &str) -> String {
    format!(
        "PREPARE fileorg_analyze AS {sql};\n{run} fileorg_analyze({});\nDEALLOCATE fileorg_analyze",
        params.join(", ")
    )
}

async fn analyze(url: &str, operation: Option<uuid::Uuid>) -> anyhow::Result<ExitCode> {
    let client = connect(url).await?;
    // The biggest operation (or the one asked for) and its owner.
    let picked = match operation {
        Some(id) => rows(
            &client,
            &format!("SELECT id::text, user_id::text FROM operations WHERE id = '{id}'"),
        )
        .await?,
        None => rows(
            &client,
            "SELECT id::text, user_id::text FROM operations ORDER BY files_scanned DESC, created_at DESC LIMIT 1",
        )
        .await?,
    };
    let Some(row) = picked.first() else {
        println!(
            "no operations in the database: run an organize first (e.g. fileorg loadtest --files 100000)"
        );
        return Ok(ExitCode::FAILURE);
    };
    // Both are uuids printed by Postgres: safe to inline.
    let (op, user) = (row[0].clone(), row[1].clone());
    let hash = rows(
        &client,
        &format!(
            "SELECT encode(content_hash, 'hex') FROM file_records \
             WHERE operation_id = '{op}' AND content_hash IS NOT NULL LIMIT 1"
        ),
    )
    .await?
    .first()
    .map(|r| r[0].clone())
    .unwrap_or_else(|| "00".into());
    let records = rows(
        &client,
        &format!("SELECT count(*) FROM file_records WHERE operation_id = '{op}'"),
    )
    .await?[0][0]
        .clone();
    println!("operation {op} (user {user}, {records} records)\n");
    let mid = records.parse::<i64>().unwrap_or(0) / 2;
    let queries = [
        (
            "GetOperation (id + user)",
            format!("SELECT * FROM operations WHERE id = '{op}' AND user_id = '{user}'"),
        ),
        (
            "ListOperations (user, newest first)",
            format!(
                "SELECT * FROM operations WHERE user_id = '{user}' \
                 ORDER BY created_at DESC, id DESC LIMIT 51"
            ),
        ),
        (
            "ListFileRecords (page in the middle)",
            format!(
                "SELECT * FROM file_records WHERE operation_id = '{op}' AND seq > {mid} \
                 ORDER BY seq LIMIT 101"
            ),
        ),
        (
            // Its counts per status and GetOperationReport's figures are read
            // from here at rest (`infra::memo`): computed once per version.
            "ListFileRecords counts / GetOperationReport at rest (stored per version)",
            format!(
                "SELECT value FROM operation_memos WHERE operation_id = '{op}' \
                 AND kind = '{kind}' AND version = '0'",
                kind = fileorganizer::reports::REPORT_MEMO
            ),
        ),
    ];
    let mut statements: Vec<(String, String, Vec<String>)> = queries
        .into_iter()
        .map(|(label, sql)| (label.to_string(), sql, Vec::new()))
        .collect();
    // The API's own statements, with the parameters of a first page.
    let op_param = format!("'{op}'::uuid");
    let first_page = vec![op_param.clone(), "0::bigint".into(), "51::bigint".into()];
    let keepers = rows(
        &client,
        &prepared(&duplicate_groups_sql(false), &first_page, "EXECUTE"),
    )
    .await?
    .iter()
    .map(|r| r[0].clone())
    .collect::<Vec<_>>()
    .join(",");
    // One file's whole name: a rare word for the name search.
    let rare = rows(
        &client,
        &format!(
            "SELECT split_part(original_path, '/', -1) FROM file_records \
             WHERE operation_id = '{op}' AND seq = {mid}"
        ),
    )
    .await?
    .first()
    .map(|r| r[0].clone())
    .unwrap_or_else(|| "no-such-name".into());
    statements.extend([
        (
            "ListDuplicateGroups: first page of groups".to_string(),
            duplicate_groups_sql(false),
            first_page,
        ),
        (
            "ListDuplicateGroups: files of those groups".to_string(),
            group_members_sql(),
            vec![op_param.clone(), format!("ARRAY[{keepers}]::bigint[]")],
        ),
        (
            "ListDuplicateGroups: total_size (group count)".to_string(),
            COUNT_DUPLICATE_GROUPS.to_string(),
            vec![op_param, "0::bigint".into()],
        ),
    ]);
    let user_id: uuid::Uuid = user.parse()?;
    let name = |text: &str| SearchFilter {
        name_contains: Some(text.into()),
        ..SearchFilter::default()
    };
    for (label, filter) in [
        (
            "SearchFiles by name substring, common (\"invoice\")".to_string(),
            name("invoice"),
        ),
        (
            format!("SearchFiles by name substring, rare ({rare:?})"),
            name(&rare),
        ),
        (
            "SearchFiles by content hash".to_string(),
            SearchFilter {
                content_hash: Some(hex::decode(&hash).unwrap_or_default()),
                ..SearchFilter::default()
            },
        ),
    ] {
        // The operation's names as if still pending too: what a search costs
        // in the seconds before they are indexed.
        let pending = vec![op.parse()?];
        for (source, statement) in search_statements(user_id, &filter, None, 51, pending) {
            let part = match source {
                None => String::new(),
                Some(NameSource::Indexed) => ": indexed (file_names)".into(),
                Some(NameSource::Pending(_)) => ": were the operation still pending".into(),
            };
            let (sql, params) = statement.explainable();
            statements.push((format!("{label}{part}"), sql, params));
        }
    }
    let mut flagged = 0;
    for (label, sql, params) in statements {
        println!("== {label}");
        let explain = "EXPLAIN (ANALYZE, BUFFERS)";
        let statement = if params.is_empty() {
            format!("{explain} {sql}")
        } else {
            prepared(&sql, &params, &format!("{explain} EXECUTE"))
        };
        let plan = rows(&client, &statement).await?;
        let mut time = String::new();
        for line in &plan {
            let text = &line[0];
            let seq = ["file_records", "file_names", "operations"]
                .iter()
                .any(|table| text.contains(&format!("Seq Scan on {table}")));
            if seq {
                flagged += 1;
            }
            println!("{}{text}", if seq { "!! " } else { "   " });
            if text.starts_with("Execution Time") {
                time = text.clone();
            }
        }
        println!("-> {label}: {time}\n");
    }
    if flagged > 0 {
        println!(
            "{flagged} sequential scan(s) on file_records/file_names/operations (marked !!): fine on small tables, a problem at 1M records; run `fileorg db optimize` and check the indexes"
        );
    } else {
        println!("no sequential scans on file_records/file_names/operations");
    }
    Ok(ExitCode::SUCCESS)
}
