//! Reading the journal (`file_records`) for people: ListFileRecords (one
//! operation, filtered, sorted, keyset-paginated, with status counts) and
//! SearchFiles (all of a user's records by name, category or content hash).
//!
//! Both build their SQL from a closed set of fragments (the sort column is an
//! enum, never request text) with every value bound as a parameter. Keyset
//! pagination: a page continues strictly after the (sort key, seq) of the
//! previous page's last row, so concurrent changes never make a page repeat
//! or skip a row that did not itself change. Paths sort in byte order
//! (`COLLATE "C"`), as ListDirectory does.
//!
//! The name search matches `file_record_names(original_path, new_path)`
//! (original and new file name, lower-cased), kept with a trigram index in
//! `file_names` (`db::file_names`, migration 000015); patterns have at least
//! three characters so the index always applies.
//!
//! SearchFiles scopes by `file_records.user_id` (the operation's owner,
//! copied by `write_journal`) rather than a join with `operations`: the index
//! `(user_id, created_at, operation_id, seq)` of migration 000012 is exactly
//! the listing order of one user's records, so a page of a common word is a
//! short walk of it, newest first, instead of fetching and sorting every
//! match the trigram index finds; the planner still takes the trigram bitmap
//! for rare words. Measured at 1M records in BENCHMARKS.md.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::{
    pg::Pg,
    query_builder::{BoxedSqlQuery, SqlQuery},
    sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::enums;
use crate::domain::RecordStatus;

/// A record as the API shows it, with the kept file's current path for a
/// duplicate.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct RecordRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub operation_id: Uuid,
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub original_path: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub new_path: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub size_bytes: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub modified_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    pub content_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Text)]
    pub category: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub duplicate_of: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub duplicate_of_path: Option<String>,
    #[diesel(sql_type = Text)]
    pub status: RecordStatus,
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// The organizing rule that decided the record, and its version.
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub rule_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub rule_version: Option<i64>,
}

/// The current path of a duplicate's kept file (NULL for other records).
///
/// A correlated subquery, i.e. one primary-key probe per listed row, and not
/// a `LEFT JOIN` of the journal to itself: given `f.operation_id = <op>`, the
/// planner rewrote the join's `k.operation_id = f.operation_id` into
/// `k.operation_id = <op>` and, for an operation newer than the table's
/// statistics (estimated at one record), rescanned all of the operation's
/// records for each listed row. 45-180 ms a page for a 500-file operation
/// beside a 1M-record one (BENCHMARKS.md, round 5).
pub(crate) static KEPT_PATH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "CASE WHEN f.duplicate_of IS NULL THEN NULL ELSE \
         (SELECT {} \
          FROM file_records k WHERE k.operation_id = f.operation_id AND k.seq = f.duplicate_of) END",
        current_path("k")
    )
});

/// Where the record aliased `alias` is now: its `new_path` once moved,
/// else its `original_path`.
pub(crate) fn current_path(alias: &str) -> String {
    format!(
        "CASE WHEN {alias}.status IN {moved} AND {alias}.new_path IS NOT NULL \
         THEN {alias}.new_path ELSE {alias}.original_path END",
        moved = enums::list(RecordStatus::MOVED)
    )
}

/// The columns of [`RecordRow`], of the journal record `f`.
fn record_columns() -> String {
    format!(
        "f.operation_id, f.seq, f.original_path, f.new_path, f.size_bytes, f.modified_at, \
         f.content_hash, f.category, f.duplicate_of, {kept} AS duplicate_of_path, \
         f.status, f.reason, f.created_at, f.rule_id, f.rule_version",
        kept = KEPT_PATH.as_str()
    )
}

/// A value bound to a `$n` placeholder.
enum Bind {
    Uuid(Uuid),
    Int(i64),
    Text(String),
    Time(DateTime<Utc>),
    Bytes(Vec<u8>),
    Uuids(Vec<Uuid>),
}

impl Bind {
    /// The value as a typed SQL literal.
    fn literal(&self) -> String {
        let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
        match self {
            Bind::Uuid(v) => format!("'{v}'::uuid"),
            Bind::Int(v) => format!("{v}::bigint"),
            Bind::Text(v) => format!("{}::text", quote(v)),
            Bind::Time(v) => format!("{}::timestamptz", quote(&v.to_rfc3339())),
            Bind::Bytes(v) => format!("'\\x{}'::bytea", hex::encode(v)),
            Bind::Uuids(v) => format!(
                "ARRAY[{}]::uuid[]",
                v.iter()
                    .map(|id| format!("'{id}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// SQL text plus its parameters, numbered as they are added.
#[derive(Default)]
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn push(&mut self, fragment: &str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Adds a parameter and returns its placeholder.
    fn param(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// The statement with its parameters as SQL literals, for `PREPARE` +
    /// `EXPLAIN EXECUTE` in `fileorg db analyze` (the exact SQL the API runs).
    pub fn explainable(&self) -> (String, Vec<String>) {
        (
            self.text.clone(),
            self.binds.iter().map(Bind::literal).collect(),
        )
    }

    fn query(self) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        let mut query = diesel::sql_query(self.text).into_boxed::<Pg>();
        for bind in self.binds {
            query = match bind {
                Bind::Uuid(v) => query.bind::<diesel::sql_types::Uuid, _>(v),
                Bind::Int(v) => query.bind::<BigInt, _>(v),
                Bind::Text(v) => query.bind::<Text, _>(v),
                Bind::Time(v) => query.bind::<Timestamptz, _>(v),
                Bind::Bytes(v) => query.bind::<Bytea, _>(v),
                Bind::Uuids(v) => {
                    query.bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(v)
                }
            };
        }
        query
    }
}

/// The filters of ListFileRecords (all optional).
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub status: Option<RecordStatus>,
    /// Category display name, compared case-insensitively.
    pub category: Option<String>,
    pub min_size_bytes: Option<i64>,
    pub duplicates_only: bool,
}

impl RecordFilter {
    /// `AND …` conditions on `f` except the status one.
    fn push_common(&self, sql: &mut Sql) {
        if let Some(category) = &self.category {
            let p = sql.param(Bind::Text(category.clone()));
            sql.push(&format!(" AND lower(f.category) = lower({p})"));
        }
        if let Some(min) = self.min_size_bytes {
            let p = sql.param(Bind::Int(min));
            sql.push(&format!(" AND f.size_bytes >= {p}"));
        }
        if self.duplicates_only {
            sql.push(" AND f.duplicate_of IS NOT NULL");
        }
    }
}

/// What ListFileRecords sorts by; ties are always broken by seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Journal order (seq): `create_time`.
    Journal,
    Size,
    OriginalPath,
    NewPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOrder {
    pub key: SortKey,
    pub descending: bool,
}

/// Where the previous page ended: its last row's sort key and seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordCursor {
    Journal { seq: i64 },
    Size { size: i64, seq: i64 },
    Path { path: String, seq: i64 },
}

impl RecordOrder {
    /// The SQL expression sorted on (before seq).
    fn expression(self) -> Option<&'static str> {
        match self.key {
            SortKey::Journal => None,
            SortKey::Size => Some("f.size_bytes"),
            SortKey::OriginalPath => Some("f.original_path COLLATE \"C\""),
            SortKey::NewPath => Some("coalesce(f.new_path, '') COLLATE \"C\""),
        }
    }

    /// The cursor after `row` in this order.
    pub fn cursor_after(self, row: &RecordRow) -> RecordCursor {
        let seq = row.seq;
        match self.key {
            SortKey::Journal => RecordCursor::Journal { seq },
            SortKey::Size => RecordCursor::Size {
                size: row.size_bytes,
                seq,
            },
            SortKey::OriginalPath => RecordCursor::Path {
                path: row.original_path.clone(),
                seq,
            },
            SortKey::NewPath => RecordCursor::Path {
                path: row.new_path.clone().unwrap_or_default(),
                seq,
            },
        }
    }
}

/// One page of an operation's records.
pub async fn list_records(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    filter: &RecordFilter,
    order: RecordOrder,
    after: Option<&RecordCursor>,
    limit: i64,
) -> diesel::QueryResult<Vec<RecordRow>> {
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {} FROM file_records f WHERE f.operation_id = ",
        record_columns()
    ));
    let p = sql.param(Bind::Uuid(operation_id));
    sql.push(&p);
    if let Some(status) = filter.status {
        let p = sql.param(Bind::Text(status.as_str().into()));
        sql.push(&format!(" AND f.status = {p}"));
    }
    filter.push_common(&mut sql);
    let cmp = if order.descending { "<" } else { ">" };
    match after {
        None => {}
        Some(RecordCursor::Journal { seq }) => {
            let p = sql.param(Bind::Int(*seq));
            sql.push(&format!(" AND f.seq {cmp} {p}"));
        }
        Some(RecordCursor::Size { size, seq }) => {
            let (a, b) = (sql.param(Bind::Int(*size)), sql.param(Bind::Int(*seq)));
            sql.push(&format!(" AND (f.size_bytes, f.seq) {cmp} ({a}, {b})"));
        }
        Some(RecordCursor::Path { path, seq }) => {
            let expression = order.expression().unwrap_or("f.original_path");
            let (a, b) = (
                sql.param(Bind::Text(path.clone())),
                sql.param(Bind::Int(*seq)),
            );
            sql.push(&format!(
                " AND ({expression}, f.seq) {cmp} ({a} COLLATE \"C\", {b})"
            ));
        }
    }
    let direction = if order.descending { "DESC" } else { "ASC" };
    sql.push(" ORDER BY ");
    if let Some(expression) = order.expression() {
        sql.push(&format!("{expression} {direction}, "));
    }
    let p = sql.param(Bind::Int(limit));
    sql.push(&format!("f.seq {direction} LIMIT {p}"));
    sql.query().load(conn).await
}

/// Counts of an operation's records per status, under the category, size
/// and duplicates filters, plus how many also pass the status filter.
#[derive(Debug, Clone, Copy, Default, diesel::QueryableByName)]
pub struct StatusCounts {
    /// Records passing every filter, the status one included.
    #[diesel(sql_type = BigInt)]
    pub matching: i64,
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    #[diesel(sql_type = BigInt)]
    pub planned: i64,
    #[diesel(sql_type = BigInt)]
    pub completed: i64,
    #[diesel(sql_type = BigInt)]
    pub skipped: i64,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    #[diesel(sql_type = BigInt)]
    pub duplicate: i64,
    #[diesel(sql_type = BigInt)]
    pub undone: i64,
}

pub async fn status_counts(
    conn: &mut AsyncPgConnection,
    operation_id: Uuid,
    filter: &RecordFilter,
) -> diesel::QueryResult<StatusCounts> {
    let mut sql = Sql::default();
    let matching = match filter.status {
        Some(status) => {
            let p = sql.param(Bind::Text(status.as_str().into()));
            format!("count(*) FILTER (WHERE f.status = {p})")
        }
        None => "count(*)".into(),
    };
    let count = |status| format!("count(*) FILTER (WHERE f.status = {})", enums::lit(status));
    use RecordStatus as S;
    sql.push(&format!(
        "SELECT {matching} AS matching, count(*) AS total,
            {planned} AS planned,
            {completed} AS completed,
            {skipped} AS skipped,
            {failed} AS failed,
            {duplicate} AS duplicate,
            {undone} AS undone
         FROM file_records f WHERE f.operation_id = ",
        planned = count(S::Planned),
        completed = count(S::Completed),
        skipped = count(S::Skipped),
        failed = count(S::Failed),
        duplicate = count(S::Duplicate),
        undone = count(S::Undone),
    ));
    let p = sql.param(Bind::Uuid(operation_id));
    sql.push(&p);
    filter.push_common(&mut sql);
    sql.query().get_result(conn).await
}

/// What SearchFiles looks for (at least one of the first three is set).
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// A substring of the file name, not yet escaped for LIKE.
    pub name_contains: Option<String>,
    pub category: Option<String>,
    pub content_hash: Option<Vec<u8>>,
    pub operation_id: Option<Uuid>,
}

impl SearchFilter {
    /// Whether the search reads the search index (`file_names`: names and
    /// content hashes), and so has a [`NameSource`] per statement.
    fn uses_index(&self) -> bool {
        self.name_contains.is_some() || self.content_hash.is_some()
    }
}

/// Where the previous search page ended (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCursor {
    pub created_at: DateTime<Utc>,
    pub operation_id: Uuid,
    pub seq: i64,
}

impl SearchCursor {
    pub fn after(row: &RecordRow) -> SearchCursor {
        SearchCursor {
            created_at: row.created_at,
            operation_id: row.operation_id,
            seq: row.seq,
        }
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern (default escape `\`).
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Where a search by name or content hash looks (`db::file_names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameSource {
    /// Records of operations whose names and hashes are indexed: the trigram
    /// and content-hash indexes of `file_names`.
    Indexed,
    /// Records of these operations, still pending, matched by the name
    /// expression and `file_records.content_hash` themselves.
    Pending(Vec<Uuid>),
}

#[derive(diesel::QueryableByName)]
struct PendingOperation {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    operation_id: Uuid,
}

/// A page of the user's records matching `filter`, newest first.
///
/// A search by name or content hash reads, in one snapshot (a read-only REPEATABLE READ
/// transaction), the user's operations whose names are still pending, then
/// one statement per [`NameSource`], and merges the pages here. An
/// operation is in exactly one source at any snapshot, so no record is
/// missed or listed twice. Separate statements rather than one UNION ALL,
/// and the pending operations named rather than joined, because each
/// statement then gets its own best plan for "newest first, stop after a
/// page" (a common word walks the user's records newest first, a rare one
/// takes the trigram bitmap, the pending part walks only those operations'
/// records); the planner sorted every match of a UNION ALL, and scanned the
/// whole journal for a join with an empty pending list (BENCHMARKS.md,
/// round 5).
pub async fn search(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    filter: &SearchFilter,
    after: Option<&SearchCursor>,
    limit: i64,
) -> diesel::QueryResult<Vec<RecordRow>> {
    if !filter.uses_index() {
        return search_statement(user_id, filter, after, limit, None)
            .query()
            .load(conn)
            .await;
    }
    let (filter, after) = (filter.clone(), after.cloned());
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async move |conn| {
            let pending: Vec<PendingOperation> = diesel::sql_query(
                "SELECT p.operation_id FROM file_names_pending p
                 JOIN operations o ON o.id = p.operation_id WHERE o.user_id = $1",
            )
            .bind::<diesel::sql_types::Uuid, _>(user_id)
            .load(conn)
            .await?;
            let pending: Vec<Uuid> = pending.into_iter().map(|p| p.operation_id).collect();
            let mut rows: Vec<RecordRow> = Vec::new();
            for (_, statement) in
                search_statements(user_id, &filter, after.as_ref(), limit, pending)
            {
                rows.extend(statement.query().load::<RecordRow>(conn).await?);
            }
            // The statements' own order: created_at, operation_id, seq,
            // all descending (uuids compare bytewise in both).
            rows.sort_by(|a, b| {
                (b.created_at, b.operation_id, b.seq).cmp(&(a.created_at, a.operation_id, a.seq))
            });
            rows.truncate(usize::try_from(limit).unwrap_or(0));
            Ok(rows)
        })
        .await
}

/// The statements of a search, each with the source it reads (None: neither
/// a name nor a content hash, a single statement). `pending`: the user's
/// operations whose names are not indexed yet (no statement for them when
/// there are none).
pub fn search_statements(
    user_id: Uuid,
    filter: &SearchFilter,
    after: Option<&SearchCursor>,
    limit: i64,
    pending: Vec<Uuid>,
) -> Vec<(Option<NameSource>, Sql)> {
    let mut sources = Vec::new();
    if !filter.uses_index() {
        sources.push(None);
    } else {
        sources.push(Some(NameSource::Indexed));
        if !pending.is_empty() {
            sources.push(Some(NameSource::Pending(pending)));
        }
    }
    sources
        .into_iter()
        .map(|source| {
            let statement = search_statement(user_id, filter, after, limit, source.as_ref());
            (source, statement)
        })
        .collect()
}

/// One statement of [`search`]: the user's records in `source` (given
/// exactly when the filter has a name or a content hash) passing every
/// filter, newest first.
fn search_statement(
    user_id: Uuid,
    filter: &SearchFilter,
    after: Option<&SearchCursor>,
    limit: i64,
    source: Option<&NameSource>,
) -> Sql {
    let mut sql = Sql::default();
    sql.push(&format!("SELECT {} FROM file_records f ", record_columns()));
    let source = source.filter(|_| filter.uses_index());
    if let Some(NameSource::Indexed) = source {
        sql.push("JOIN file_names n ON n.operation_id = f.operation_id AND n.seq = f.seq ");
    }
    sql.push("WHERE f.user_id = ");
    let p = sql.param(Bind::Uuid(user_id));
    sql.push(&p);
    // The indexed part reads names and hashes from file_names, the pending
    // part from the records themselves.
    let (names, hash) = match source {
        Some(NameSource::Indexed) => ("n.names", "n.content_hash"),
        Some(NameSource::Pending(operations)) => {
            let ops = sql.param(Bind::Uuids(operations.clone()));
            sql.push(&format!(" AND f.operation_id = ANY({ops})"));
            (
                "file_record_names(f.original_path, f.new_path)",
                "f.content_hash",
            )
        }
        None => ("", "f.content_hash"),
    };
    if let Some(text) = filter.name_contains.as_ref().filter(|_| source.is_some()) {
        let p = sql.param(Bind::Text(format!("%{}%", escape_like(text))));
        sql.push(&format!(" AND {names} LIKE lower({p})"));
    }
    if let Some(category) = &filter.category {
        let p = sql.param(Bind::Text(category.clone()));
        sql.push(&format!(" AND lower(f.category) = lower({p})"));
    }
    if let Some(hash_value) = &filter.content_hash {
        let p = sql.param(Bind::Bytes(hash_value.clone()));
        sql.push(&format!(" AND {hash} = {p}"));
    }
    if let Some(operation_id) = filter.operation_id {
        let p = sql.param(Bind::Uuid(operation_id));
        sql.push(&format!(" AND f.operation_id = {p}"));
    }
    if let Some(cursor) = after {
        let t = sql.param(Bind::Time(cursor.created_at));
        let o = sql.param(Bind::Uuid(cursor.operation_id));
        let s = sql.param(Bind::Int(cursor.seq));
        sql.push(&format!(
            " AND (f.created_at, f.operation_id, f.seq) < ({t}, {o}, {s})"
        ));
    }
    let p = sql.param(Bind::Int(limit));
    sql.push(&format!(
        " ORDER BY f.created_at DESC, f.operation_id DESC, f.seq DESC LIMIT {p}"
    ));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explained_statements_carry_their_parameters_as_quoted_literals() {
        let user = Uuid::nil();
        let filter = SearchFilter {
            name_contains: Some("o'brien".into()),
            content_hash: Some(vec![0xab, 0x01]),
            ..SearchFilter::default()
        };
        let pending = Uuid::from_u128(7);
        let statements = search_statements(user, &filter, None, 51, vec![pending]);
        let sources: Vec<_> = statements
            .iter()
            .map(|(source, _)| source.clone())
            .collect();
        assert_eq!(
            sources,
            [
                Some(NameSource::Indexed),
                Some(NameSource::Pending(vec![pending]))
            ]
        );
        for (source, statement) in &statements {
            let (sql, params) = statement.explainable();
            assert!(sql.contains("f.user_id = $1"), "{sql}");
            let (matched, hash, limit) = match source {
                Some(NameSource::Indexed) => {
                    ("n.names LIKE lower($2)", "n.content_hash = $3", "$4")
                }
                _ => (
                    "f.operation_id = ANY($2) \
                     AND file_record_names(f.original_path, f.new_path) LIKE lower($3)",
                    "f.content_hash = $4",
                    "$5",
                ),
            };
            assert!(
                sql.contains(matched)
                    && sql.contains(hash)
                    && sql.contains(&format!("LIMIT {limit}")),
                "{sql}"
            );
            let mut expected = vec![format!("'{user}'::uuid")];
            if source != &Some(NameSource::Indexed) {
                expected.push(format!("ARRAY['{pending}']::uuid[]"));
            }
            expected.extend([
                "'%o''brien%'::text".to_string(),
                "'\\xab01'::bytea".to_string(),
                "51::bigint".to_string(),
            ]);
            assert_eq!(params, expected);
        }
        // Nothing pending: no statement for it.
        assert_eq!(
            search_statements(user, &filter, None, 51, Vec::new()).len(),
            1
        );
        let by_hash = SearchFilter {
            content_hash: Some(vec![1]),
            ..SearchFilter::default()
        };
        // A content hash is in the search index too: indexed and pending
        // parts, each matching the hash where its part keeps it.
        let statements = search_statements(user, &by_hash, None, 51, vec![pending]);
        assert_eq!(statements.len(), 2);
        let (indexed, pending_part) = (
            statements[0].1.explainable().0,
            statements[1].1.explainable().0,
        );
        assert!(indexed.contains("JOIN file_names n") && indexed.contains("n.content_hash = $2"));
        assert!(
            !pending_part.contains("file_names")
                && pending_part.contains("f.operation_id = ANY($2) AND f.content_hash = $3")
                && !pending_part.contains("LIKE"),
            "{pending_part}"
        );
        // Neither: one statement on the journal alone.
        let by_category = SearchFilter {
            category: Some("Images".into()),
            ..SearchFilter::default()
        };
        let statements = search_statements(user, &by_category, None, 51, vec![pending]);
        assert_eq!(statements.len(), 1);
        assert!(!statements[0].1.explainable().0.contains("file_names"));
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("50%_off\\x"), "50\\%\\_off\\\\x");
        assert_eq!(escape_like("plain"), "plain");
    }
}
