//! Thin tonic handlers, one module per service. Each handler parses its
//! request into domain types, calls the database or domain code and maps the
//! result back; errors go through `AppError` → `Status` (see `error.rs`).

pub mod auth;
pub mod convert;
pub mod files;
pub mod operations;
pub mod reports;
pub mod system;

/// Runs a handler body and converts its `AppError` into a `tonic::Status`.
pub(crate) fn respond<T>(
    result: crate::error::AppResult<T>,
) -> Result<tonic::Response<T>, tonic::Status> {
    result
        .map(tonic::Response::new)
        .map_err(tonic::Status::from)
}

/// Audits a request refused because a path would leave the user's storage
/// (reason PATH_ESCAPE); other errors are not audit events.
pub(crate) async fn audit_path_escape(
    state: &crate::state::AppState,
    ctx: &crate::layers::RequestContext,
    principal: &crate::auth::Principal,
    error: &crate::error::AppError,
) {
    use crate::pb::fileorganizer::v1::ErrorReason;
    let crate::error::AppError::InvalidArgument {
        field,
        reason: ErrorReason::PathEscape,
        ..
    } = error
    else {
        return;
    };
    let Ok(mut conn) = state.db.get().await else {
        return;
    };
    crate::db::audit::record_request(
        &mut conn,
        ctx,
        Some(principal.user_id),
        "path.escape_attempt",
        "denied",
        Some(field),
        serde_json::json!({ "field": field }),
    )
    .await;
}
