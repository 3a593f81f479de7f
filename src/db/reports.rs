//! Report queries: aggregates over an operation's journal (`file_records`)
//! and over a user's operations.
//!
//! Everything is computed by Postgres (GROUP BY, FILTER, ORDER BY … LIMIT);
//! nothing here loads a whole journal. Lists that can be long — duplicate
//! groups and records for an export — are read in keyset pages.
//!
//! Conventions of the journal these queries rely on:
//! - A record of a file the scan found and categorized carries its
//!   fingerprint (`device` is set). Entries the scan skipped outright
//!   (symbolic links, extra hard links, unusable names) carry none and only a
//!   placeholder category, so the category breakdown and the largest files
//!   leave them out.
//! - A duplicate group is its kept record plus the records whose
//!   `duplicate_of` holds the kept record's seq (index
//!   `file_records_duplicate_of_idx`). Their listing order is an aggregate
//!   (most reclaimable bytes first), which no index on the journal can
//!   serve, so the groups' figures live in `duplicate_groups` (migration
//!   000012), one row per group, recomputed by triggers whenever an
//!   operation's journal is written: a page is an index range there, not a
//!   GROUP BY over every duplicate of the operation.
//! - Where a file is now: its `new_path` once moved (status completed or
//!   duplicate), else its `original_path`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    enums,
    file_search::{KEPT_PATH, current_path},
};
use crate::domain::{
    DuplicateFile, DuplicateGroup, OperationKind, OperationState, Record, RecordStatus,
    report::LARGEST_FILES,
};

/// Where the record aliased `f` is now.
static F_PATH: LazyLock<String> = LazyLock::new(|| current_path("f"));
/// Where the record aliased `k` is now.
static K_PATH: LazyLock<String> = LazyLock::new(|| current_path("k"));

/// Outcome counts of an operation's journal.
#[derive(Debug, Default, Clone, Copy, diesel::QueryableByName)]
pub struct Outcomes {
    #[diesel(sql_type = BigInt)]
    pub moved: i64,
    #[diesel(sql_type = BigInt)]
    pub moved_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub skipped: i64,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    #[diesel(sql_type = BigInt)]
    pub duplicate_groups: i64,
    #[diesel(sql_type = BigInt)]
    pub duplicate_files: i64,
    #[diesel(sql_type = BigInt)]
    pub reclaimable_bytes: i64,
    /// Files a `{taken_…}` layout placed by their capture date.
    #[diesel(sql_type = BigInt)]
    pub taken_from_metadata: i64,
    /// Files a `{taken_…}` layout placed by their modification time.
    #[diesel(sql_type = BigInt)]
    pub taken_from_mtime: i64,
}

/// One aggregate pass: outcomes by status and the duplicate summary.
pub async fn outcomes(conn: &mut AsyncPgConnection, operation_id: Uuid) -> QueryResult<Outcomes> {
    static OUTCOMES: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT
                count(*) FILTER (WHERE status IN {moved}) AS moved,
                coalesce(sum(size_bytes) FILTER (WHERE status IN {moved}), 0)::bigint AS moved_bytes,
                count(*) FILTER (WHERE status = {skipped}) AS skipped,
                count(*) FILTER (WHERE status = {failed}) AS failed,
                count(DISTINCT duplicate_of) AS duplicate_groups,
                count(duplicate_of) AS duplicate_files,
                coalesce(sum(size_bytes) FILTER (WHERE duplicate_of IS NOT NULL), 0)::bigint AS reclaimable_bytes,
                count(*) FILTER (WHERE taken_from_metadata) AS taken_from_metadata,
                count(*) FILTER (WHERE NOT taken_from_metadata) AS taken_from_mtime
             FROM file_records WHERE operation_id = $1",
            moved = enums::list(RecordStatus::MOVED),
            skipped = enums::lit(RecordStatus::Skipped),
            failed = enums::lit(RecordStatus::Failed),
        )
    });
    diesel::sql_query(OUTCOMES.as_str())
        .bind::<diesel::sql_types::Uuid, _>(operation_id)
        .get_result(conn)
        .await
}

#[derive(diesel::QueryableByName)]
struct CategoryRow {
    #[diesel(sql_type = Text)]
    category: String,
    #[diesel(sql_type = BigInt)]
    file_count: i64,
    #[diesel(sql_type = BigInt)]
    size_bytes: i64,
}

/// (category, files, bytes) of the categorized files, most bytes first.
pub async fn categories(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
) -> QueryResult<Vec<(String, i64, i64)>> {
    let rows: Vec<CategoryRow> = diesel::sql_query(
        "SELECT category, count(*) AS file_count, coalesce(sum(size_bytes), 0)::bigint AS size_bytes
         FROM file_records WHERE operation_id = $1 AND device IS NOT NULL
         GROUP BY category
         ORDER BY size_bytes DESC, file_count DESC, category COLLATE \"C\"",
    )
    .bind::<diesel::sql_types::Uuid, _>(operation_id)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.category, r.file_count, r.size_bytes))
        .collect())
}

#[derive(diesel::QueryableByName)]
struct RecordRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    original_path: String,
    #[diesel(sql_type = Nullable<Text>)]
    new_path: Option<String>,
    #[diesel(sql_type = BigInt)]
    size_bytes: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    modified_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    content_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Text)]
    category: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    duplicate_of: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    duplicate_of_path: Option<String>,
    #[diesel(sql_type = Text)]
    status: RecordStatus,
    #[diesel(sql_type = Nullable<Text>)]
    reason: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    rule_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<BigInt>)]
    rule_version: Option<i64>,
}

impl From<RecordRow> for Record {
    fn from(r: RecordRow) -> Record {
        Record {
            seq: r.seq,
            original_path: r.original_path,
            new_path: r.new_path,
            size_bytes: r.size_bytes,
            modify_time: r.modified_at,
            content_hash: r.content_hash,
            category: r.category,
            duplicate_of: r.duplicate_of,
            duplicate_of_path: r.duplicate_of_path,
            status: r.status,
            reason: r.reason,
            create_time: r.created_at,
            decided_by: r
                .rule_id
                .zip(r.rule_version)
                .map(|(rule_id, rule_version)| crate::domain::DecidedBy {
                    rule_id,
                    rule_version,
                }),
        }
    }
}

/// Records with the kept file's current path of a duplicate (a primary-key
/// lookup per listed duplicate: `file_search::KEPT_PATH`).
fn record_select(tail: &str) -> String {
    format!(
        "SELECT f.seq, f.original_path, f.new_path, f.size_bytes, f.modified_at, f.content_hash,
                f.category, f.duplicate_of, {kept} AS duplicate_of_path, f.status, f.reason,
                f.created_at, f.rule_id, f.rule_version
         FROM file_records f
         WHERE f.operation_id = $1 {tail}",
        kept = KEPT_PATH.as_str()
    )
}

/// The largest categorized files, largest first (ties in journal order).
pub async fn largest_files(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
) -> QueryResult<Vec<Record>> {
    let rows: Vec<RecordRow> = diesel::sql_query(record_select(
        "AND f.device IS NOT NULL ORDER BY f.size_bytes DESC, f.seq LIMIT $2",
    ))
    .bind::<diesel::sql_types::Uuid, _>(operation_id)
    .bind::<BigInt, _>(LARGEST_FILES)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(Record::from).collect())
}

/// Up to `limit` records after `after_seq`, in seq order (an export batch).
pub async fn records_after(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    after_seq: i64,
    limit: i64,
) -> QueryResult<Vec<Record>> {
    let rows: Vec<RecordRow> =
        diesel::sql_query(record_select("AND f.seq > $2 ORDER BY f.seq LIMIT $3"))
            .bind::<diesel::sql_types::Uuid, _>(operation_id)
            .bind::<BigInt, _>(after_seq)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(Record::from).collect())
}

/// The position of a group in the listing order: most reclaimable bytes
/// first, then content hash, then the kept record's seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKey {
    pub reclaimable_bytes: i64,
    pub content_hash: Vec<u8>,
    pub keeper_seq: i64,
}

#[derive(diesel::QueryableByName)]
struct GroupRow {
    #[diesel(sql_type = BigInt)]
    keeper_seq: i64,
    #[diesel(sql_type = Bytea)]
    content_hash: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    size_bytes: i64,
    #[diesel(sql_type = BigInt)]
    file_count: i64,
    #[diesel(sql_type = BigInt)]
    reclaimable_bytes: i64,
    #[diesel(sql_type = Text)]
    kept_path: String,
}

/// A page of the groups kept in `duplicate_groups` (migration 000012: one
/// row per group, maintained by triggers on `file_records`), in listing
/// order, with the kept file's current path from its record. `CURSOR` is
/// empty on the first page: the two statements differ in text, so each keeps
/// an index-driven plan whether prepared generically or not.
const GROUP_PAGE: &str = "SELECT g.keeper_seq, g.content_hash, g.size_bytes, g.file_count,
        g.reclaimable_bytes, KPATH AS kept_path
    FROM duplicate_groups g
    JOIN file_records k ON k.operation_id = g.operation_id AND k.seq = g.keeper_seq
    WHERE g.operation_id = $1 AND g.size_bytes >= $2 CURSOR
    ORDER BY g.reclaimable_bytes DESC, g.content_hash, g.keeper_seq
    LIMIT $3";

/// After the group ($4 bytes, $5 hash, $6 keeper): descending bytes,
/// ascending hash and seq. The first condition bounds the index scan, the
/// second spells out the mixed directions.
const GROUP_CURSOR: &str = "AND g.reclaimable_bytes <= $4
      AND (g.reclaimable_bytes < $4 OR (g.content_hash, g.keeper_seq) > ($5, $6))";

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The statement of [`count_duplicate_groups`]: $1 operation, $2 minimum size.
/// The kept total answers whenever every group passes the size filter;
/// only a larger filter counts groups (the second subquery runs only then).
pub const COUNT_DUPLICATE_GROUPS: &str = "SELECT coalesce(
        (SELECT t.groups FROM duplicate_group_totals t
         WHERE t.operation_id = $1 AND t.smallest_size_bytes >= $2),
        (SELECT count(*) FROM duplicate_groups WHERE operation_id = $1 AND size_bytes >= $2)
    ) AS n";

/// Number of duplicate groups whose files are at least `min_size` bytes.
pub async fn count_duplicate_groups(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    min_size: i64,
) -> QueryResult<i64> {
    let row: Count = diesel::sql_query(COUNT_DUPLICATE_GROUPS)
        .bind::<diesel::sql_types::Uuid, _>(operation_id)
        .bind::<BigInt, _>(min_size)
        .get_result(conn)
        .await?;
    Ok(row.n)
}

/// The statement of [`duplicate_groups`]: $1 operation, $2 minimum size,
/// $3 the limit, and with a cursor $4..$6 the last group's key.
pub fn duplicate_groups_sql(with_cursor: bool) -> String {
    GROUP_PAGE
        .replace("KPATH", &K_PATH)
        .replace("CURSOR", if with_cursor { GROUP_CURSOR } else { "" })
}

/// A page of duplicate groups after `after` (keyset), with their files,
/// each with its listing key (the last one is where the next page starts).
pub async fn duplicate_groups(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    min_size: i64,
    after: Option<&GroupKey>,
    limit: i64,
) -> QueryResult<Vec<(GroupKey, DuplicateGroup)>> {
    let mut query = diesel::sql_query(duplicate_groups_sql(after.is_some()))
        .into_boxed::<diesel::pg::Pg>()
        .bind::<diesel::sql_types::Uuid, _>(operation_id)
        .bind::<BigInt, _>(min_size)
        .bind::<BigInt, _>(limit);
    if let Some(key) = after {
        query = query
            .bind::<BigInt, _>(key.reclaimable_bytes)
            .bind::<Bytea, _>(key.content_hash.clone())
            .bind::<BigInt, _>(key.keeper_seq);
    }
    let rows: Vec<GroupRow> = query.load(conn).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let keepers: Vec<i64> = rows.iter().map(|r| r.keeper_seq).collect();
    // Members arrive in keeper order, groups in listing order: index them.
    let mut by_keeper: std::collections::HashMap<i64, Vec<DuplicateFile>> =
        std::collections::HashMap::with_capacity(rows.len());
    for (keeper, file) in group_members(conn, operation_id, &keepers).await? {
        by_keeper.entry(keeper).or_default().push(file);
    }
    let mut page = Vec::with_capacity(rows.len());
    for row in rows {
        let files = by_keeper.remove(&row.keeper_seq).unwrap_or_default();
        page.push((
            GroupKey {
                reclaimable_bytes: row.reclaimable_bytes,
                content_hash: row.content_hash.clone(),
                keeper_seq: row.keeper_seq,
            },
            DuplicateGroup {
                content_hash: row.content_hash,
                size_bytes: row.size_bytes,
                file_count: row.file_count,
                reclaimable_bytes: row.reclaimable_bytes,
                kept_path: row.kept_path,
                files,
            },
        ));
    }
    Ok(page)
}

#[derive(diesel::QueryableByName)]
struct MemberRow {
    #[diesel(sql_type = BigInt)]
    keeper_seq: i64,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    original_path: String,
    #[diesel(sql_type = Text)]
    path: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    modified_at: Option<DateTime<Utc>>,
}

/// The statement of [`group_members`]: $1 operation, $2 the keepers' seqs.
pub fn group_members_sql() -> String {
    format!(
        "SELECT coalesce(f.duplicate_of, f.seq) AS keeper_seq, f.seq, f.original_path,
                {path} AS path, f.modified_at
         FROM file_records f
         WHERE f.operation_id = $1 AND (f.seq = ANY($2) OR f.duplicate_of = ANY($2))
         ORDER BY keeper_seq, f.duplicate_of IS NOT NULL, ({path}) COLLATE \"C\", f.seq",
        path = F_PATH.as_str()
    )
}

/// The files of the groups kept by `keepers`: (keeper seq, file), each
/// group's kept file first, then by current path (byte order, whatever the
/// database's collation).
async fn group_members(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    keepers: &[i64],
) -> QueryResult<Vec<(i64, DuplicateFile)>> {
    let rows: Vec<MemberRow> = diesel::sql_query(group_members_sql())
        .bind::<diesel::sql_types::Uuid, _>(operation_id)
        .bind::<diesel::sql_types::Array<BigInt>, _>(keepers)
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.keeper_seq,
                DuplicateFile {
                    kept: r.keeper_seq == r.seq,
                    seq: r.seq,
                    original_path: r.original_path,
                    path: r.path,
                    modify_time: r.modified_at,
                },
            )
        })
        .collect())
}

#[derive(diesel::QueryableByName)]
struct StateRow {
    #[diesel(sql_type = Text)]
    state: OperationState,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A user's operations per state.
pub async fn operations_by_state(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<(OperationState, i64)>> {
    let rows: Vec<StateRow> = diesel::sql_query(
        "SELECT state, count(*) AS n FROM operations WHERE user_id = $1 GROUP BY state",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.state, r.n)).collect())
}

/// Totals over a user's operations, from their counters.
#[derive(Debug, Default, Clone, Copy, diesel::QueryableByName)]
pub struct UsageTotals {
    #[diesel(sql_type = BigInt)]
    pub files_organized: i64,
    #[diesel(sql_type = BigInt)]
    pub bytes_organized: i64,
    #[diesel(sql_type = BigInt)]
    pub duplicates_found: i64,
    #[diesel(sql_type = BigInt)]
    pub reclaimable_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub storage_used_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub storage_quota_bytes: i64,
}

/// One pass over the user's operations (not their journals): files moved by
/// organize and deduplicate operations minus those their undos moved back,
/// duplicates found, plus the storage columns of `users`.
///
/// Counters rather than journals keep this O(operations); every worker
/// rebuilds its counters from the journal, so they agree with it.
pub async fn usage_totals(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<UsageTotals> {
    static USAGE_TOTALS: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT
                coalesce(sum(o.files_moved) FILTER (WHERE o.kind <> {undo}), 0)::bigint
                  - coalesce(sum(o.files_moved) FILTER (WHERE o.kind = {undo}), 0)::bigint AS files_organized,
                coalesce(sum(o.bytes_moved) FILTER (WHERE o.kind <> {undo}), 0)::bigint
                  - coalesce(sum(o.bytes_moved) FILTER (WHERE o.kind = {undo}), 0)::bigint AS bytes_organized,
                coalesce(sum(o.duplicates_found) FILTER (WHERE o.kind <> {undo}), 0)::bigint AS duplicates_found,
                coalesce(sum(o.reclaimable_bytes) FILTER (WHERE o.kind <> {undo}), 0)::bigint AS reclaimable_bytes,
                u.storage_used_bytes, u.storage_quota_bytes
             FROM users u LEFT JOIN operations o ON o.user_id = u.id
             WHERE u.id = $1
             GROUP BY u.id",
            undo = enums::lit(OperationKind::Undo),
        )
    });
    diesel::sql_query(USAGE_TOTALS.as_str())
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .get_result(conn)
        .await
}
