//! Queries on `users`.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::{NewUser, User};
use crate::{domain::Role, schema::users};

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn record_login(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<User> {
    diesel::update(users::table.find(id))
        .set(users::last_login_at.eq(Utc::now()))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_display_name(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    display_name: &str,
) -> QueryResult<User> {
    diesel::update(users::table.find(id))
        .set((
            users::display_name.eq(display_name),
            users::updated_at.eq(Utc::now()),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_password_hash(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    password_hash: &str,
) -> QueryResult<User> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(Utc::now()),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// Changes a user's role (the `fileorg user promote` command and tests).
pub async fn set_role(conn: &mut AsyncPgConnection, email: &str, role: Role) -> QueryResult<User> {
    diesel::update(users::table.filter(users::email.eq(email)))
        .set((users::role.eq(role), users::updated_at.eq(Utc::now())))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// Disables or enables the account with this email (`fileorg user disable`).
pub async fn set_disabled_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
    disabled: bool,
) -> QueryResult<User> {
    diesel::update(users::table.filter(users::email.eq(email)))
        .set((
            users::disabled.eq(disabled),
            users::updated_at.eq(Utc::now()),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_disabled(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    disabled: bool,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::disabled.eq(disabled),
            users::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
}

/// The sum of every user's stored bytes (the `storage_bytes_total` gauge).
pub async fn total_storage(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    #[derive(diesel::QueryableByName)]
    struct Total {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        bytes: i64,
    }
    // SUM(int8) is numeric; cast back (the total fits: it is bounded by quotas).
    let total: Total =
        diesel::sql_query("SELECT COALESCE(SUM(storage_used_bytes), 0)::int8 AS bytes FROM users")
            .get_result(conn)
            .await?;
    Ok(total.bytes)
}
