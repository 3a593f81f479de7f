//! Queries on `categories`: the users' custom categories.
//!
//! Built-in categories live in code (`engine::categorize::BuiltIn`) and are
//! never rows here, so every query is scoped to one user. The organize engine
//! reads the same rows as the domain's rules ([`custom_rules`]) when it plans;
//! this module adds the API's view (ids, colors, icons, timestamps).
//!
//! `priority` orders custom rules for the categorizer (higher first). The API
//! promises that custom categories are tried in creation order, so each new
//! category gets one less than the lowest priority its owner has.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    domain::CustomRule,
    schema::{categories, file_records, operations},
};

/// A custom category as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = categories, check_for_backend(diesel::pg::Pg))]
pub struct CategoryRow {
    pub id: Uuid,
    pub name: String,
    pub extensions: Vec<Option<String>>,
    pub globs: Vec<Option<String>>,
    pub color: Option<String>,
    pub icon: Option<String>,
    pub priority: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CategoryRow {
    /// The rule the categorizer applies for this category.
    pub fn rule(&self) -> CustomRule {
        CustomRule {
            name: self.name.clone(),
            extensions: self.extensions.iter().flatten().cloned().collect(),
            globs: self.globs.iter().flatten().cloned().collect(),
            priority: self.priority,
        }
    }
}

/// The values of a new or changed custom category, already validated.
#[derive(Debug, Clone)]
pub struct CategoryValues {
    pub name: String,
    pub extensions: Vec<String>,
    pub globs: Vec<String>,
    pub color: Option<String>,
    pub icon: Option<String>,
}

fn nullable(values: &[String]) -> Vec<Option<String>> {
    values.iter().cloned().map(Some).collect()
}

/// The user's custom categories, by display name (case-insensitively).
pub async fn list_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<CategoryRow>> {
    categories::table
        .filter(categories::user_id.eq(user_id))
        .order((
            diesel::dsl::sql::<diesel::sql_types::Text>("lower(name)"),
            categories::id,
        ))
        .select(CategoryRow::as_select())
        .load(conn)
        .await
}

/// One of the user's custom categories; `None` for another user's or a
/// missing one (the API cannot tell them apart).
pub async fn find_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<CategoryRow>> {
    categories::table
        .filter(categories::id.eq(id))
        .filter(categories::user_id.eq(user_id))
        .select(CategoryRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// How many custom categories the user has.
pub async fn count_for_user(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    categories::table
        .filter(categories::user_id.eq(user_id))
        .count()
        .get_result(conn)
        .await
}

/// Inserts a custom category after the user's existing ones (see the module
/// docs on priority). A name taken case-insensitively is a unique violation.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    values: &CategoryValues,
) -> QueryResult<CategoryRow> {
    let lowest: Option<i32> = categories::table
        .filter(categories::user_id.eq(user_id))
        .select(diesel::dsl::min(categories::priority))
        .first(conn)
        .await?;
    let now = Utc::now();
    diesel::insert_into(categories::table)
        .values((
            categories::id.eq(Uuid::now_v7()),
            categories::user_id.eq(Some(user_id)),
            categories::name.eq(&values.name),
            categories::extensions.eq(nullable(&values.extensions)),
            categories::globs.eq(nullable(&values.globs)),
            categories::color.eq(values.color.as_deref()),
            categories::icon.eq(values.icon.as_deref()),
            categories::priority.eq(lowest.map_or(0, |p| p.saturating_sub(1))),
            categories::built_in.eq(false),
            categories::created_at.eq(now),
            categories::updated_at.eq(now),
        ))
        .returning(CategoryRow::as_returning())
        .get_result(conn)
        .await
}

/// Replaces the values of one of the user's categories; `None` if it is not
/// (or no longer) theirs.
pub async fn update(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    values: &CategoryValues,
) -> QueryResult<Option<CategoryRow>> {
    diesel::update(
        categories::table
            .filter(categories::id.eq(id))
            .filter(categories::user_id.eq(user_id)),
    )
    .set((
        categories::name.eq(&values.name),
        categories::extensions.eq(nullable(&values.extensions)),
        categories::globs.eq(nullable(&values.globs)),
        categories::color.eq(values.color.as_deref()),
        categories::icon.eq(values.icon.as_deref()),
        categories::updated_at.eq(Utc::now()),
    ))
    .returning(CategoryRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Deletes one of the user's categories; whether there was one.
pub async fn delete(conn: &mut AsyncPgConnection, user_id: Uuid, id: Uuid) -> QueryResult<bool> {
    diesel::delete(
        categories::table
            .filter(categories::id.eq(id))
            .filter(categories::user_id.eq(user_id)),
    )
    .execute(conn)
    .await
    .map(|n| n > 0)
}

/// The user's custom rules, for the categorizer (an operation's plan,
/// uploads, listings).
pub async fn custom_rules(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<CustomRule>> {
    Ok(list_for_user(conn, user_id)
        .await?
        .iter()
        .map(CategoryRow::rule)
        .collect())
}

/// Number of the user's file records per category display name (over all of
/// their operations), in one aggregate.
pub async fn file_counts(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = file_records::table
        .inner_join(operations::table)
        .filter(operations::user_id.eq(user_id))
        .group_by(file_records::category)
        .select((file_records::category, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}
