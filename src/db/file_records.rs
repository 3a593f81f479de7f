//! The journal (`file_records`): written in bulk before any file moves, then
//! updated in batches as files move.
//!
//! The initial journal goes through a binary `COPY … FROM STDIN` on a
//! separate tokio-postgres connection (diesel-async has no COPY yet): one
//! round trip per hundred-thousand rows instead of one per row. Status
//! updates during apply/undo are one `UPDATE … FROM unnest(…)` per batch,
//! in the same transaction as the operation's counters and applied cursor.

use std::sync::LazyLock;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type};
use uuid::Uuid;

use super::{
    enums,
    models::{CounterColumns, FileRecord},
};
use crate::{
    domain::{Counters, JournalRow, RecordStatus},
    schema::{file_records, operations},
};

/// A piece of a journal streamed to [`write_journal_stream`].
#[derive(Debug)]
pub enum JournalChunk {
    /// The next rows, in seq order.
    Rows(Vec<JournalRow>),
    /// Every row was sent: commit. A channel closed without it (the planner
    /// failed or panicked) rolls the whole journal back.
    End,
}

/// Writes the journal from a slice (see [`write_journal_stream`]).
pub async fn write_journal(
    database_url: &str,
    operation_id: Uuid,
    rows: &[JournalRow],
) -> anyhow::Result<u64> {
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    sender.send(JournalChunk::Rows(rows.to_vec())).await?;
    sender.send(JournalChunk::End).await?;
    drop(sender);
    write_journal_stream(database_url, operation_id, receiver).await
}

/// Writes the journal with binary COPY as its rows arrive (replacing any
/// partial journal of a previous, interrupted planning run), all in one
/// transaction that commits only after [`JournalChunk::End`].
pub async fn write_journal_stream(
    database_url: &str,
    operation_id: Uuid,
    mut chunks: tokio::sync::mpsc::Receiver<JournalChunk>,
) -> anyhow::Result<u64> {
    let (mut client, connection) = tokio::time::timeout(
        super::CONNECTION_TIMEOUT,
        tokio_postgres::connect(database_url, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| super::ConnectTimedOut)??;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "journal connection ended");
        }
    });
    let tx = client.transaction().await?;
    // Each record carries its owner for SearchFiles' index (migration 000012).
    // The lock stands in for a foreign key (migration 000016): the operation
    // exists at commit and is not deleted meanwhile.
    let user_id: Uuid = tx
        .query_opt(
            "SELECT user_id FROM operations WHERE id = $1 FOR KEY SHARE",
            &[&operation_id],
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("operation {operation_id} does not exist"))?
        .get(0);
    tokio_postgres::Transaction::execute(
        &tx,
        "DELETE FROM file_records WHERE operation_id = $1",
        &[&operation_id],
    )
    .await?;
    // SearchFiles' names are indexed after the job (db::file_names).
    super::file_names::start_journal(&tx, operation_id).await?;
    let sink = tx
        .copy_in(
            "COPY file_records (operation_id, seq, original_path, new_path, size_bytes, modified_at, \
             device, inode, content_hash, category, duplicate_of, status, reason, mtime_ns, ctime_ns, user_id, \
             taken_from_metadata, rule_id, rule_version) FROM STDIN BINARY",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::UUID,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TIMESTAMPTZ,
            Type::INT8,
            Type::INT8,
            Type::BYTEA,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::UUID,
            Type::BOOL,
            Type::UUID,
            Type::INT8,
        ],
    );
    futures::pin_mut!(writer);
    loop {
        match chunks.recv().await {
            Some(JournalChunk::Rows(rows)) => {
                for row in &rows {
                    writer
                        .as_mut()
                        .write(&[
                            &operation_id,
                            &row.seq,
                            &row.original_path,
                            &row.new_path,
                            &row.size_bytes,
                            &row.modified_at,
                            &row.device,
                            &row.inode,
                            &row.content_hash,
                            &row.category,
                            &row.duplicate_of,
                            &row.status.as_str(),
                            &row.reason,
                            &row.mtime_ns,
                            &row.ctime_ns,
                            &user_id,
                            &row.taken_from_metadata,
                            &row.decided_by.map(|d| d.rule_id),
                            &row.decided_by.map(|d| d.rule_version),
                        ])
                        .await?;
                }
            }
            Some(JournalChunk::End) => break,
            None => anyhow::bail!("planning stopped before the journal was complete"),
        }
    }
    let written = writer.finish().await?;
    tx.commit().await?;
    drop(client);
    let _ = driver.await;
    Ok(written)
}

/// The first and last seq of an operation's journal (None: it is empty).
pub async fn seq_bounds(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
) -> QueryResult<Option<(i64, i64)>> {
    use diesel::dsl::{max, min};
    let (first, last): (Option<i64>, Option<i64>) = file_records::table
        .filter(file_records::operation_id.eq(operation_id))
        .select((min(file_records::seq), max(file_records::seq)))
        .first(conn)
        .await?;
    Ok(first.zip(last))
}

// Apply and undo read the journal in windows of seqs, not as "the next N
// rows in these statuses": the latter's best plan (walk the primary key,
// stop after N matches) depends on the table's statistics, and right after a
// large journal's COPY, before autovacuum has analyzed it, the planner chose
// a bitmap scan of every remaining record of the operation, sorted, for
// each batch: 0.5 s a batch at 1M records (BENCHMARKS.md, round 5). A window
// is a bounded range of the primary key whatever the plan.

/// Journaled rows in `statuses` with `first <= seq <= last`, ascending, or
/// descending with `newest_first` (undo replays the journal backwards).
pub async fn batch_window(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    statuses: &[RecordStatus],
    (first, last): (i64, i64),
    newest_first: bool,
) -> QueryResult<Vec<FileRecord>> {
    let window = file_records::table
        .filter(file_records::operation_id.eq(operation_id))
        .filter(file_records::seq.between(first, last))
        .filter(file_records::status.eq_any(statuses))
        .select(FileRecord::as_select())
        .into_boxed();
    let ordered = if newest_first {
        window.order(file_records::seq.desc())
    } else {
        window.order(file_records::seq.asc())
    };
    ordered.load(conn).await
}

pub async fn all_for_operation(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
) -> QueryResult<Vec<FileRecord>> {
    file_records::table
        .filter(file_records::operation_id.eq(operation_id))
        .order(file_records::seq.asc())
        .select(FileRecord::as_select())
        .load(conn)
        .await
}

/// The outcome of one file in a batch.
#[derive(Debug, Clone)]
pub struct RecordUpdate {
    pub seq: i64,
    pub status: RecordStatus,
    pub new_path: Option<String>,
    pub reason: Option<String>,
    /// The file's new `(device, inode)` when the move gave it another
    /// identity (a verified copy across filesystems); stored in the record's
    /// `device`/`inode` so that undo and recovery recognise the file where
    /// it now is. None: unchanged.
    pub identity: Option<(i64, i64)>,
}

/// A run of the journal whose records all ended exactly as expected,
/// recorded by one range update instead of one row of outcomes per file:
/// about half the database's work per file in an apply or an undo.
#[derive(Debug, Clone, Copy)]
pub struct AsExpected {
    /// First and last seq of the run (inclusive, `first <= last`).
    pub first: i64,
    pub last: i64,
    /// What every record of the run became.
    pub outcome: Expected,
}

/// The outcome a batch expects of its records: what [`AsExpected`] writes
/// for them, and the one place that says which outcomes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Apply: a `planned` record moved to its planned destination with its
    /// identity, no reason; moved duplicates become `duplicate` unless only
    /// reported (`mark_duplicates` false), the others `completed`.
    Moved { mark_duplicates: bool },
    /// Undo: a moved (`completed` or `duplicate`) record whose file is back
    /// at its original path (moved now, or found there after an
    /// interruption); its paths and identity stay, its reason is cleared.
    Undone,
}

impl Expected {
    /// The status a record of `record`'s kind gets from this outcome.
    pub fn status(self, record: &FileRecord) -> RecordStatus {
        match self {
            Expected::Moved { mark_duplicates }
                if mark_duplicates && record.duplicate_of.is_some() =>
            {
                RecordStatus::Duplicate
            }
            Expected::Moved { .. } => RecordStatus::Completed,
            Expected::Undone => RecordStatus::Undone,
        }
    }

    /// Whether `update` of `record` is exactly what the range update of
    /// this outcome writes (so it need not be listed).
    pub fn covers(self, record: &FileRecord, update: &RecordUpdate) -> bool {
        update.seq == record.seq
            && update.status == self.status(record)
            && update.new_path == record.new_path
            && update.reason.is_none()
            && update.identity.is_none()
    }

    /// The range statement: $1 operation, $2 and $3 the run's first and
    /// last seq. It changes only records still in the statuses the batch
    /// read (`planned`, or the moved ones), so it never touches a record
    /// outside the batch whatever lies in the range.
    fn statement(self) -> &'static str {
        static MOVED_MARKED: LazyLock<String> = LazyLock::new(|| moved_statement(true));
        static MOVED: LazyLock<String> = LazyLock::new(|| moved_statement(false));
        static UNDONE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "UPDATE file_records SET status = {undone}, reason = NULL
                 WHERE operation_id = $1 AND seq BETWEEN $2 AND $3 AND status IN {moved}",
                undone = enums::lit(RecordStatus::Undone),
                moved = enums::list(RecordStatus::MOVED),
            )
        });
        match self {
            Expected::Moved {
                mark_duplicates: true,
            } => &MOVED_MARKED,
            Expected::Moved {
                mark_duplicates: false,
            } => &MOVED,
            Expected::Undone => &UNDONE,
        }
    }
}

fn moved_statement(mark_duplicates: bool) -> String {
    let completed = enums::lit(RecordStatus::Completed);
    let status = if mark_duplicates {
        format!(
            "CASE WHEN duplicate_of IS NOT NULL THEN {} ELSE {completed} END",
            enums::lit(RecordStatus::Duplicate)
        )
    } else {
        completed
    };
    format!(
        "UPDATE file_records SET status = {status}
         WHERE operation_id = $1 AND seq BETWEEN $2 AND $3 AND status = {planned}",
        planned = enums::lit(RecordStatus::Planned),
    )
}

/// The outcomes of one batch.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// Written as given, row by row.
    pub updates: Vec<RecordUpdate>,
    /// The records of this range that the batch read ended as expected,
    /// except those in `updates` (written after the range, over it).
    pub as_expected: Option<AsExpected>,
}

impl Outcomes {
    /// Adds `record`'s outcome: to the range when `expected` covers it,
    /// to the listed updates otherwise.
    pub fn add(&mut self, expected: Expected, record: &FileRecord, update: RecordUpdate) {
        if !expected.covers(record, &update) {
            self.updates.push(update);
            return;
        }
        let seq = record.seq;
        self.as_expected = Some(match self.as_expected {
            Some(run) => AsExpected {
                first: run.first.min(seq),
                last: run.last.max(seq),
                ..run
            },
            None => AsExpected {
                first: seq,
                last: seq,
                outcome: expected,
            },
        });
    }
}

/// Applies a batch of outcomes, the operation's counters and (optionally) its
/// applied cursor in one transaction: after a crash the journal and the
/// counters agree. Records only while `holder` holds the claim on
/// `counters_owner` (the running job) and returns whether it did; `false`
/// means another worker reclaimed the job and the caller must stop.
pub async fn record_batch(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    counters_owner: Uuid,
    holder: &str,
    outcomes: &Outcomes,
    counters: &Counters,
    cursor: Option<i64>,
) -> QueryResult<bool> {
    let holder = holder.to_string();
    let updates = &outcomes.updates;
    let as_expected = outcomes.as_expected;
    let seqs: Vec<i64> = updates.iter().map(|u| u.seq).collect();
    let statuses: Vec<RecordStatus> = updates.iter().map(|u| u.status).collect();
    let new_paths: Vec<Option<String>> = updates.iter().map(|u| u.new_path.clone()).collect();
    let reasons: Vec<Option<String>> = updates.iter().map(|u| u.reason.clone()).collect();
    let devices: Vec<Option<i64>> = updates.iter().map(|u| u.identity.map(|i| i.0)).collect();
    let inodes: Vec<Option<i64>> = updates.iter().map(|u| u.identity.map(|i| i.1)).collect();
    let counters = CounterColumns::from(*counters);
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        // Fencing: only the worker that holds the claim may record. One that
        // lost it (its heartbeat went stale while it could not reach the
        // database, and another worker reclaimed the job) must not overwrite
        // what the new holder found on disk.
        let current: Option<String> = operations::table
            .find(counters_owner)
            .select(operations::worker_id)
            .for_update()
            .first(conn)
            .await?;
        if current.as_deref() != Some(holder.as_str()) {
            return Ok(false);
        }
        // The range first: every record the batch read and processed, as
        // expected; then the listed outcomes over it (for an undo the
        // records left in place keep their moved status, which the range's
        // condition alone cannot tell from the undone ones).
        if let Some(run) = as_expected {
            use diesel::sql_types::BigInt;
            diesel::sql_query(run.outcome.statement())
                .bind::<diesel::sql_types::Uuid, _>(operation_id)
                .bind::<BigInt, _>(run.first)
                .bind::<BigInt, _>(run.last)
                .execute(conn)
                .await?;
        }
        if !seqs.is_empty() {
            use diesel::sql_types::{Array, BigInt, Nullable, Text};
            diesel::sql_query(
                "UPDATE file_records f SET status = u.status, new_path = u.new_path, reason = u.reason,
                   device = COALESCE(u.device, f.device), inode = COALESCE(u.inode, f.inode)
                 FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
                   AS u(seq, status, new_path, reason, device, inode)
                 WHERE f.operation_id = $1 AND f.seq = u.seq",
            )
            .bind::<diesel::sql_types::Uuid, _>(operation_id)
            .bind::<Array<BigInt>, _>(&seqs)
            .bind::<Array<Text>, _>(&statuses)
            .bind::<Array<Nullable<Text>>, _>(&new_paths)
            .bind::<Array<Nullable<Text>>, _>(&reasons)
            .bind::<Array<Nullable<BigInt>>, _>(&devices)
            .bind::<Array<Nullable<BigInt>>, _>(&inodes)
            .execute(conn)
            .await?;
        }
        let update = diesel::update(operations::table.find(counters_owner));
        match cursor {
            Some(cursor) => {
                update
                    .set((&counters, operations::applied_cursor.eq(cursor), operations::updated_at.eq(Utc::now())))
                    .execute(conn)
                    .await?
            }
            None => {
                update
                    .set((&counters, operations::updated_at.eq(Utc::now())))
                    .execute(conn)
                    .await?
            }
        };
        Ok(true)
    })
    .await
}

/// Totals of an operation's journal by status.
#[derive(Debug, Default, Clone, Copy, diesel::QueryableByName)]
pub struct StatusTotals {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub moved: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub moved_bytes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub skipped: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub failed: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub planned: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub undone: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub undone_bytes: i64,
}

/// Counts the journal by status (one aggregate query), so counters can be
/// rebuilt exactly from the journal after an interruption.
pub async fn status_totals(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
) -> QueryResult<StatusTotals> {
    static STATUS_TOTALS: LazyLock<String> = LazyLock::new(|| {
        use RecordStatus as S;
        let is = |status| format!("status = {}", enums::lit(status));
        format!(
            "SELECT
                count(*) FILTER (WHERE status IN {moved}) AS moved,
                coalesce(sum(size_bytes) FILTER (WHERE status IN {moved}), 0)::bigint AS moved_bytes,
                count(*) FILTER (WHERE {skipped}) AS skipped,
                count(*) FILTER (WHERE {failed}) AS failed,
                count(*) FILTER (WHERE {planned}) AS planned,
                count(*) FILTER (WHERE {undone}) AS undone,
                coalesce(sum(size_bytes) FILTER (WHERE {undone}), 0)::bigint AS undone_bytes
             FROM file_records WHERE operation_id = $1",
            moved = enums::list(S::MOVED),
            skipped = is(S::Skipped),
            failed = is(S::Failed),
            planned = is(S::Planned),
            undone = is(S::Undone),
        )
    });
    diesel::sql_query(STATUS_TOTALS.as_str())
        .bind::<diesel::sql_types::Uuid, _>(operation_id)
        .get_result(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that accepts the connection and never answers: the journal
    /// gives up after the connect timeout with an error the worker treats as
    /// "database unreachable" (the job is handed back, not failed), instead
    /// of waiting forever.
    #[tokio::test]
    async fn a_silent_database_times_out_as_unreachable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let url = format!("postgres://postgres@127.0.0.1:{port}/journal");
        let started = std::time::Instant::now();
        let error = write_journal(&url, Uuid::new_v4(), &[]).await.unwrap_err();
        assert!(started.elapsed() < super::super::CONNECTION_TIMEOUT * 3);
        assert!(crate::error::is_database_unreachable(&error), "{error:#}");
        held.abort();
    }
}
