//! SearchFiles' index (`file_names`, migrations 000015 and 000017): the
//! lower-cased file names of each journal record, original and new, with a
//! trigram GIN index, and its content hash with a btree, written after the
//! job that wrote the journal has finished.
//!
//! Why not indexes on `file_records` itself: every journal row then paid for
//! its trigram entries and a random insert into the content-hash btree inside
//! the organize, more than half of the plan + journal phase at 1M files
//! (BENCHMARKS.md, rounds 4 to 6). Here the journal's COPY only lists the
//! operation in `file_names_pending`; [`index_next`] (run by
//! `jobs::search_names` once no job holds the operation) copies the names and
//! hashes in one statement and removes the listing, in one transaction.
//! SearchFiles matches the records of a listed operation by the name
//! expression and `file_records.content_hash` instead (`db::file_search`), so
//! no record is ever missing from a search.
//!
//! The journal writer, [`index_next`] and the trigger that follows renames
//! (`file_records_rename_names`) all take the operation's advisory lock
//! (`file_names_lock_key`), so a name changed while the names are copied
//! waits for the copy and then updates the copied row.

use diesel::sql_types::{Bool, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Marks an operation's names as pending, dropping any indexed ones. Runs in
/// the journal's transaction (tokio-postgres), before its COPY.
pub async fn start_journal(
    tx: &tokio_postgres::Transaction<'_>,
    operation_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(file_names_lock_key($1))",
        &[&operation_id],
    )
    .await?;
    tx.execute(
        "DELETE FROM file_names WHERE operation_id = $1",
        &[&operation_id],
    )
    .await?;
    tx.execute(
        "INSERT INTO file_names_pending (operation_id) VALUES ($1)
         ON CONFLICT (operation_id) DO UPDATE SET since = now()",
        &[&operation_id],
    )
    .await?;
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Candidate {
    #[diesel(sql_type = SqlUuid)]
    operation_id: Uuid,
}

/// One boolean column named `answer`.
#[derive(diesel::QueryableByName)]
struct Answer {
    #[diesel(sql_type = Bool)]
    answer: bool,
}

/// An operation whose names were indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    pub operation_id: Uuid,
    pub names: u64,
}

/// Indexes the names of the longest-waiting pending operation that no job
/// holds and no other process is indexing. `None`: nothing to do now.
pub async fn index_next(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Option<Indexed>> {
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        // Not while a job holds the operation: its apply is still changing
        // names, and the copy would compete with it for the database.
        let candidates: Vec<Candidate> = diesel::sql_query(
            "SELECT p.operation_id FROM file_names_pending p
             JOIN operations o ON o.id = p.operation_id
             WHERE o.worker_id IS NULL ORDER BY p.since LIMIT 8",
        )
        .load(conn)
        .await?;
        for Candidate { operation_id } in candidates {
            let Answer { answer: locked } = diesel::sql_query(
                "SELECT pg_try_advisory_xact_lock(file_names_lock_key($1)) AS answer",
            )
            .bind::<SqlUuid, _>(operation_id)
            .get_result(conn)
            .await?;
            if !locked {
                continue; // another process is on it, or its journal is being rewritten
            }
            // Taken since the candidates were read (this statement sees
            // commits made before the lock was ours).
            let still_pending =
                diesel::sql_query("DELETE FROM file_names_pending WHERE operation_id = $1")
                    .bind::<SqlUuid, _>(operation_id)
                    .execute(conn)
                    .await?;
            if still_pending == 0 {
                continue;
            }
            diesel::sql_query("DELETE FROM file_names WHERE operation_id = $1")
                .bind::<SqlUuid, _>(operation_id)
                .execute(conn)
                .await?;
            let names = diesel::sql_query(
                "INSERT INTO file_names (operation_id, seq, names, content_hash)
                 SELECT operation_id, seq, file_record_names(original_path, new_path), content_hash
                 FROM file_records WHERE operation_id = $1",
            )
            .bind::<SqlUuid, _>(operation_id)
            .execute(conn)
            .await?;
            return Ok(Some(Indexed {
                operation_id,
                names: names as u64,
            }));
        }
        Ok(None)
    })
    .await
}

/// Whether an operation's names wait to be indexed.
pub async fn is_pending(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
) -> diesel::QueryResult<bool> {
    let Answer { answer } = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM file_names_pending WHERE operation_id = $1) AS answer",
    )
    .bind::<SqlUuid, _>(operation_id)
    .get_result(conn)
    .await?;
    Ok(answer)
}

/// Refreshes the planner's statistics of the journal and the names, after a
/// large operation was indexed. Until autovacuum gets to them (a minute or
/// more later), a million new rows are invisible to the planner, which then
/// chose plans built for a nearly empty table: a name search of a user with
/// few records took 7 s this way at 1M names (BENCHMARKS.md, round 5).
/// ANALYZE samples a fixed number of rows, so this costs well under a second
/// whatever the size.
pub async fn analyze(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    diesel::sql_query("ANALYZE file_names, file_records")
        .execute(conn)
        .await
        .map(|_| ())
}
