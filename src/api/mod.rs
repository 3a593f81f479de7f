//! Thin tonic handlers, one module per service. Each handler parses its
//! request into domain types, calls the database or domain code and maps the
//! result back; errors go through `AppError` → `Status` (see `error.rs`).

pub(crate) mod auth;
pub(crate) mod automations;
pub mod convert;
pub(crate) mod files;
pub(crate) mod operations;
pub(crate) mod reports;
pub(crate) mod rules;
pub(crate) mod system;

/// Runs a handler body and converts its `AppError` into a `tonic::Status`.
pub(crate) fn respond<T>(
    result: crate::error::AppResult<T>,
) -> Result<tonic::Response<T>, tonic::Status> {
    result
        .map(tonic::Response::new)
        .map_err(tonic::Status::from)
}

/// The caller and the message of an authenticated request: the auth layer
/// put a principal in its extensions (UNAUTHENTICATED without one). Take
/// the `RequestContext` first when the handler needs it too.
pub(crate) fn parts<T>(
    request: tonic::Request<T>,
) -> Result<(crate::auth::Principal, T), tonic::Status> {
    let principal = crate::auth::Principal::from_request(&request)?;
    Ok((principal, request.into_inner()))
}

/// Why a streaming RPC ended before its answer was complete. UploadFile
/// reads a client stream and ExportReport writes one; both stop on the same
/// three kinds of event.
pub(crate) enum StreamEnd {
    /// An error of the request or of ours, answered with its status.
    Failed(crate::error::AppError),
    /// The client's side failed (tonic's status for it) or stayed silent
    /// too long (DEADLINE_EXCEEDED): this status is the answer, for a client
    /// that may no longer listen.
    Client(tonic::Status),
    /// A send to the client failed: it went away, nothing more to say.
    ClientGone,
}

/// Anything that converts into an [`AppError`](crate::error::AppError)
/// (the error itself, database and pool errors, storage errors at a field)
/// ends a stream as a failure, so `?` works in streaming code as elsewhere.
impl<E: Into<crate::error::AppError>> From<E> for StreamEnd {
    fn from(error: E) -> StreamEnd {
        StreamEnd::Failed(error.into())
    }
}

impl From<StreamEnd> for tonic::Status {
    fn from(end: StreamEnd) -> tonic::Status {
        match end {
            StreamEnd::Failed(error) => error.into(),
            StreamEnd::Client(status) => status,
            StreamEnd::ClientGone => tonic::Status::cancelled("the client went away"),
        }
    }
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

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::StreamEnd;

    #[test]
    fn a_stream_ends_with_the_status_of_its_cause() {
        let failed: StreamEnd = diesel::result::Error::NotFound.into();
        assert_eq!(Status::from(failed).code(), Code::NotFound);
        let silent = StreamEnd::Client(Status::deadline_exceeded("sent nothing"));
        let status = Status::from(silent);
        assert_eq!(
            (status.code(), status.message()),
            (Code::DeadlineExceeded, "sent nothing")
        );
        assert_eq!(Status::from(StreamEnd::ClientGone).code(), Code::Cancelled);
    }
}
