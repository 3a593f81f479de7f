//! Writes to `audit_log`. Auditing never fails the request that triggered
//! it: a failed insert is logged and dropped.

use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::NewAuditEvent;
use crate::schema::audit_log;

pub async fn record(conn: &mut AsyncPgConnection, event: &NewAuditEvent<'_>) {
    tracing::info!(
        audit.action = event.action,
        audit.outcome = event.outcome,
        user_id = ?event.user_id,
        request_id = event.request_id,
        "audit"
    );
    if let Err(error) = diesel::insert_into(audit_log::table)
        .values(event)
        .execute(conn)
        .await
    {
        tracing::error!(%error, action = event.action, "could not write audit event");
    }
}

/// Where an audited request came from (the request context's facts; `db`
/// does not know the layers that gather them).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The request id, as logged.
    pub request_id: &'a str,
    /// The client's address, if known.
    pub client_ip: Option<std::net::IpAddr>,
}

/// Records an event of a request: who (`user_id`), from where and under
/// which request id (`origin`, e.g. a `&RequestContext`). Never fails the
/// request.
pub async fn record_request<'a>(
    conn: &mut AsyncPgConnection,
    origin: impl Into<Origin<'a>>,
    user_id: Option<uuid::Uuid>,
    action: &str,
    outcome: &str,
    target: Option<&str>,
    detail: serde_json::Value,
) {
    let origin = origin.into();
    let ip = origin.client_ip.map(|ip| ip.to_string());
    record(
        conn,
        &NewAuditEvent {
            user_id,
            action,
            target,
            outcome,
            client_ip: ip.as_deref(),
            request_id: Some(origin.request_id),
            detail,
        },
    )
    .await;
}

/// One page of audit events, newest first, after the keyset cursor `before_id`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    user_id: Option<uuid::Uuid>,
    action_prefix: Option<&str>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    before_id: Option<i64>,
    limit: i64,
) -> diesel::QueryResult<Vec<AuditEvent>> {
    use diesel::{ExpressionMethods, QueryDsl, SelectableHelper, TextExpressionMethods};
    let mut query = audit_log::table
        .select(AuditEvent::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(audit_log::user_id.eq(user_id));
    }
    if let Some(prefix) = action_prefix {
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        query = query.filter(audit_log::action.like(format!("{escaped}%")));
    }
    if let Some(since) = since {
        query = query.filter(audit_log::created_at.ge(since));
    }
    if let Some(before) = before_id {
        query = query.filter(audit_log::id.lt(before));
    }
    query.load(conn).await
}

/// An audit row as stored.
#[derive(Debug, Clone, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
pub struct AuditEvent {
    pub id: i64,
    pub user_id: Option<uuid::Uuid>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}
