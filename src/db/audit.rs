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
