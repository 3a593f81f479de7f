//! Queries on `rules` and `rule_sets`: users' organizing rules.
//!
//! Every query is scoped to one user: another user's rule is simply not
//! found. Each write bumps the user's rule set version in the same
//! transaction (`rule_sets`, created on the first write), so a plan that
//! reads the rules and the version in one snapshot ([`rule_set`]) can say
//! exactly which set it used. A rule's own `version` is its etag: an update
//! or delete given an expected version changes nothing when it differs
//! ([`Write::Stale`]).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    domain::{Rule, RuleDefinition, RuleSet},
    schema::{rule_sets, rules},
};

/// A rule as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rules, check_for_backend(diesel::pg::Pg))]
pub struct RuleRow {
    pub id: Uuid,
    pub display_name: String,
    pub position: i32,
    pub definition: RuleDefinition,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RuleRow {
    pub fn rule(&self) -> Rule {
        Rule {
            id: self.id,
            version: self.version,
            display_name: self.display_name.clone(),
            position: self.position,
            definition: self.definition.clone(),
        }
    }
}

/// The writable values of a rule, already checked.
#[derive(Debug, Clone)]
pub struct RuleValues {
    pub display_name: String,
    pub position: i32,
    pub definition: RuleDefinition,
}

pub use super::Write;

/// The order rules are tried in.
type Order = (rules::position, rules::created_at, rules::id);
const ORDER: Order = (rules::position, rules::created_at, rules::id);

/// The user's rules in the order they are tried, from `after` (the sort key
/// of the last rule of the previous page), at most `limit`.
pub async fn list_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    after: Option<(i32, DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<RuleRow>> {
    let mut query = rules::table
        .filter(rules::user_id.eq(user_id))
        .select(RuleRow::as_select())
        .order(ORDER)
        .limit(limit)
        .into_boxed();
    if let Some((position, created, id)) = after {
        query = query.filter(
            rules::position
                .gt(position)
                .or(rules::position.eq(position).and(
                    rules::created_at
                        .gt(created)
                        .or(rules::created_at.eq(created).and(rules::id.gt(id))),
                )),
        );
    }
    query.load(conn).await
}

pub async fn find_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<RuleRow>> {
    rules::table
        .filter(rules::id.eq(id))
        .filter(rules::user_id.eq(user_id))
        .select(RuleRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn count_for_user(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    rules::table
        .filter(rules::user_id.eq(user_id))
        .count()
        .get_result(conn)
        .await
}

/// One more to the user's rule set version.
async fn bump(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    diesel::insert_into(rule_sets::table)
        .values((rule_sets::user_id.eq(user_id), rule_sets::version.eq(1i64)))
        .on_conflict(rule_sets::user_id)
        .do_update()
        .set(rule_sets::version.eq(rule_sets::version + 1))
        .returning(rule_sets::version)
        .get_result(conn)
        .await
}

/// Inserts a rule unless the user already has `max` (None then).
pub async fn insert(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    values: &RuleValues,
    max: i64,
) -> QueryResult<Option<RuleRow>> {
    let values = values.clone();
    conn.transaction(async move |conn| {
        // Serializes this user's rule writes, so the count holds.
        bump(conn, user_id).await?;
        if count_for_user(conn, user_id).await? >= max {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        let now = Utc::now();
        diesel::insert_into(rules::table)
            .values((
                rules::id.eq(Uuid::now_v7()),
                rules::user_id.eq(user_id),
                rules::display_name.eq(&values.display_name),
                rules::position.eq(values.position),
                rules::definition.eq(&values.definition),
                rules::version.eq(1i64),
                rules::created_at.eq(now),
                rules::updated_at.eq(now),
            ))
            .returning(RuleRow::as_returning())
            .get_result(conn)
            .await
    })
    .await
    .map(Some)
    .or_else(|e| match e {
        diesel::result::Error::RollbackTransaction => Ok(None),
        other => Err(other),
    })
}

/// Replaces a rule's values when its version is `expected` (or always, for
/// None), and makes it one version newer.
pub async fn update(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    expected: Option<i64>,
    values: &RuleValues,
) -> QueryResult<Write<RuleRow>> {
    let values = values.clone();
    conn.transaction(async move |conn| {
        let current = match claim(conn, user_id, id, expected).await? {
            Ok(current) => current,
            Err(refused) => return Ok(refused),
        };
        diesel::update(rules::table.filter(rules::id.eq(id)))
            .set((
                rules::display_name.eq(&values.display_name),
                rules::position.eq(values.position),
                rules::definition.eq(&values.definition),
                rules::version.eq(current + 1),
                rules::updated_at.eq(Utc::now()),
            ))
            .returning(RuleRow::as_returning())
            .get_result(conn)
            .await
            .map(Write::Done)
    })
    .await
}

/// Deletes a rule when its version is `expected` (or always, for None).
pub async fn delete(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    expected: Option<i64>,
) -> QueryResult<Write<()>> {
    conn.transaction(async move |conn| {
        if let Err(refused) = claim(conn, user_id, id, expected).await? {
            return Ok(refused);
        }
        diesel::delete(rules::table.filter(rules::id.eq(id)))
            .execute(conn)
            .await?;
        Ok(Write::Done(()))
    })
    .await
}

/// Locks one of the user's rules for a write that expects version
/// `expected` (None: any): its current version, and the rule set one
/// version newer; or why the write is refused (nothing changed then).
async fn claim<T>(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    expected: Option<i64>,
) -> QueryResult<Result<i64, Write<T>>> {
    let current: Option<i64> = rules::table
        .filter(rules::id.eq(id))
        .filter(rules::user_id.eq(user_id))
        .select(rules::version)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    Ok(match current {
        None => Err(Write::Missing),
        Some(current) if expected.is_some_and(|v| v != current) => Err(Write::Stale { current }),
        Some(current) => {
            bump(conn, user_id).await?;
            Ok(current)
        }
    })
}

/// All of the user's rules in order, with their set's version, read in one
/// snapshot (REPEATABLE READ): what a plan applies.
pub async fn rule_set(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<RuleSet> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async move |conn| {
            let version: Option<i64> = rule_sets::table
                .filter(rule_sets::user_id.eq(user_id))
                .select(rule_sets::version)
                .first(conn)
                .await
                .optional()?;
            let rows: Vec<RuleRow> = rules::table
                .filter(rules::user_id.eq(user_id))
                .select(RuleRow::as_select())
                .order(ORDER)
                .load(conn)
                .await?;
            Ok(RuleSet {
                version: version.unwrap_or(0),
                rules: rows.iter().map(RuleRow::rule).collect(),
            })
        })
        .await
}
