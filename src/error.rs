//! One error story for the whole service.
//!
//! - Domain and database code returns [`AppError`] (a small closed set of
//!   failure kinds, each with a stable machine-readable reason).
//! - Exactly one conversion, `impl From<AppError> for tonic::Status`, turns it
//!   into a `google.rpc.Status` with an `ErrorInfo` (reason in UPPER_SNAKE_CASE,
//!   domain `fileorganizer.v1`), a `BadRequest` for validation failures (and
//!   for DATA_LOSS, naming the failed check) and a `RetryInfo` for
//!   RESOURCE_EXHAUSTED when waiting can help. Every RESOURCE_EXHAUSTED of the
//!   service goes through it, the rate-limit refusals of the tower layers
//!   included (`infra::ratelimit::Decision::status`, which only adds its
//!   `x-ratelimit-*` / `retry-after` headers to the converted status).
//! - Internal details (SQL errors, I/O errors) are logged once, here, and never
//!   sent to the client, who gets a generic message.
//!
//! - Messages and field descriptions are cut to [`MAX_ERROR_TEXT`] bytes:
//!   they often quote the offending value, and a status travels in HTTP/2
//!   headers (`grpc-message`, `grpc-status-details-bin`), so quoting a 200 KB
//!   field would exceed the client's header-list limit and reach it as a
//!   protocol error instead of the INVALID_ARGUMENT it is.
//!
//! Mapping of infrastructure errors: diesel `NotFound` → NOT_FOUND, unique
//! violations → ALREADY_EXISTS, pool/connection failures → UNAVAILABLE.
//! Storage errors ([`StorageError`], which knows nothing of the API) become
//! API errors here, once, with the request field they are about:
//! `root.open_read(&path).map_err(|e| e.at("path"))?` (see
//! `impl From<FieldError> for AppError`).

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::pb::fileorganizer::v1::ErrorReason;
use crate::storage::{FieldError, StorageError};

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "fileorganizer.v1";

/// A failure the API reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A request field is invalid; `field` is its path in the request.
    #[error("invalid {field}: {description}")]
    InvalidArgument {
        field: String,
        description: String,
        reason: ErrorReason,
    },
    #[error("{message}")]
    Unauthenticated {
        reason: ErrorReason,
        message: &'static str,
    },
    /// The caller lacks a role (reason PERMISSION_DENIED) or a scope
    /// (SCOPE_INSUFFICIENT, with `metadata` naming it in the ErrorInfo).
    #[error("{message}")]
    PermissionDenied {
        reason: ErrorReason,
        message: String,
        metadata: Vec<(&'static str, String)>,
    },
    /// The resource does not exist or is not the caller's; both look the same.
    #[error("{resource} not found")]
    NotFound { resource: String },
    #[error("{message}")]
    AlreadyExists {
        reason: ErrorReason,
        message: String,
    },
    #[error("{message}")]
    FailedPrecondition { message: String },
    /// FAILED_PRECONDITION whose ErrorInfo carries `metadata` for a client
    /// to act on (an upload append at the wrong offset names the committed
    /// offset, `committed_offset`).
    #[error("{message}")]
    FailedPreconditionWith {
        message: String,
        metadata: Vec<(&'static str, String)>,
    },
    /// A write's etag is stale: the resource changed since it was read
    /// (ABORTED, reason ETAG_MISMATCH, AIP-154). Nothing was written.
    #[error("{message}")]
    Aborted { message: String },
    /// Another request holds the resource (ABORTED, reason RESOURCE_BUSY,
    /// with `retry_after` as RetryInfo). Nothing was done.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after: Duration,
    },
    /// A limit was hit: a rate limit (RATE_LIMITED), a quota or the disk
    /// (QUOTA_EXCEEDED). `retry_after` becomes the RetryInfo; `None` when
    /// waiting cannot help (a request message too large). `metadata` goes
    /// into the ErrorInfo (a rate limit names itself there).
    #[error("{message}")]
    ResourceExhausted {
        reason: ErrorReason,
        message: String,
        retry_after: Option<Duration>,
        metadata: Vec<(&'static str, String)>,
    },
    /// Received content failed an integrity check the caller asked for
    /// (the request field `field`); nothing was stored. The ErrorInfo reason
    /// is INVALID_ARGUMENT, and a BadRequest names the field.
    #[error("{message}")]
    DataLoss {
        field: String,
        description: String,
        message: String,
    },
    /// A dependency is unreachable; the caller may retry.
    #[error("{what} is unavailable")]
    Unavailable { what: &'static str, detail: String },
    /// Anything unexpected. The detail is logged, never returned.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        AppError::InvalidArgument {
            field: field.into(),
            description: description.into(),
            reason: ErrorReason::InvalidArgument,
        }
    }

    /// INVALID_ARGUMENT with reason PATH_ESCAPE: the path in `field` could
    /// lead outside the user's storage (a symbolic link on its way, …).
    pub fn path_escape(field: impl Into<String>, description: impl Into<String>) -> Self {
        AppError::InvalidArgument {
            field: field.into(),
            description: description.into(),
            reason: ErrorReason::PathEscape,
        }
    }

    pub fn not_found(resource: impl Into<String>) -> Self {
        AppError::NotFound {
            resource: resource.into(),
        }
    }

    /// PERMISSION_DENIED for a credential without `scope`: the ErrorInfo's
    /// reason is SCOPE_INSUFFICIENT and its metadata `scope` names it.
    pub fn scope_missing(scope: &str, message: impl Into<String>) -> Self {
        AppError::PermissionDenied {
            reason: ErrorReason::ScopeInsufficient,
            message: message.into(),
            metadata: vec![("scope", scope.to_string())],
        }
    }

    /// RESOURCE_EXHAUSTED with a RetryInfo of `retry_after` and no metadata.
    pub fn exhausted(
        reason: ErrorReason,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Self {
        AppError::ResourceExhausted {
            reason,
            message: message.into(),
            retry_after: Some(retry_after),
            metadata: Vec::new(),
        }
    }

    pub fn unauthenticated(reason: ErrorReason, message: &'static str) -> Self {
        AppError::Unauthenticated { reason, message }
    }

    pub fn internal(context: impl std::fmt::Display) -> Self {
        AppError::Internal(anyhow::anyhow!("{context}"))
    }
}

/// `ERROR_REASON_EMAIL_TAKEN` → `EMAIL_TAKEN`.
pub fn reason_name(reason: ErrorReason) -> &'static str {
    reason
        .as_str_name()
        .strip_prefix("ERROR_REASON_")
        .unwrap_or("UNSPECIFIED")
}

/// The longest message or field description sent to a client, in bytes.
pub const MAX_ERROR_TEXT: usize = 1024;

/// `text` cut to [`MAX_ERROR_TEXT`] bytes at a character boundary, marked
/// with `…` when cut.
pub fn bounded(text: String) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text;
    }
    let mut end = MAX_ERROR_TEXT - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn status(code: Code, message: String, reason: ErrorReason, details: ErrorDetails) -> Status {
    status_with(code, message, reason, details, Vec::new())
}

fn status_with(
    code: Code,
    message: String,
    reason: ErrorReason,
    details: ErrorDetails,
    metadata: Vec<(&'static str, String)>,
) -> Status {
    let message = bounded(message);
    let mut details = details;
    details.set_error_info(
        reason_name(reason),
        ERROR_DOMAIN,
        metadata
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<std::collections::HashMap<String, String>>(),
    );
    Status::with_error_details(code, message, details)
}

impl From<AppError> for Status {
    fn from(error: AppError) -> Status {
        let none = ErrorDetails::new;
        match error {
            AppError::InvalidArgument {
                field,
                description,
                reason,
            } => {
                let (field, description) = (bounded(field), bounded(description));
                let message = format!("invalid {field}: {description}");
                status(
                    Code::InvalidArgument,
                    message,
                    reason,
                    ErrorDetails::with_bad_request_violation(field, description),
                )
            }
            AppError::Unauthenticated { reason, message } => {
                status(Code::Unauthenticated, message.into(), reason, none())
            }
            AppError::PermissionDenied {
                reason,
                message,
                metadata,
            } => status_with(Code::PermissionDenied, message, reason, none(), metadata),
            AppError::NotFound { resource } => status(
                Code::NotFound,
                format!("{resource} not found"),
                ErrorReason::NotFound,
                none(),
            ),
            AppError::AlreadyExists { reason, message } => {
                status(Code::AlreadyExists, message, reason, none())
            }
            AppError::FailedPrecondition { message } => status(
                Code::FailedPrecondition,
                message,
                ErrorReason::FailedPrecondition,
                none(),
            ),
            AppError::FailedPreconditionWith { message, metadata } => status_with(
                Code::FailedPrecondition,
                message,
                ErrorReason::FailedPrecondition,
                none(),
                metadata,
            ),
            AppError::Aborted { message } => {
                status(Code::Aborted, message, ErrorReason::EtagMismatch, none())
            }
            AppError::Busy {
                message,
                retry_after,
            } => status(
                Code::Aborted,
                message,
                ErrorReason::ResourceBusy,
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            AppError::ResourceExhausted {
                reason,
                message,
                retry_after,
                metadata,
            } => status_with(
                Code::ResourceExhausted,
                message,
                reason,
                match retry_after {
                    Some(delay) => ErrorDetails::with_retry_info(Some(delay)),
                    None => none(),
                },
                metadata,
            ),
            AppError::DataLoss {
                field,
                description,
                message,
            } => status(
                Code::DataLoss,
                message,
                ErrorReason::InvalidArgument,
                ErrorDetails::with_bad_request_violation(bounded(field), bounded(description)),
            ),
            AppError::Unavailable { what, detail } => {
                tracing::warn!(dependency = what, error = %detail, "dependency unavailable");
                status(
                    Code::Unavailable,
                    format!("{what} is unavailable; retry later"),
                    ErrorReason::ServiceUnavailable,
                    none(),
                )
            }
            AppError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                status(
                    Code::Internal,
                    "internal error; see the server log".into(),
                    ErrorReason::Internal,
                    none(),
                )
            }
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        if is_connection_failure(&error) {
            return AppError::Unavailable {
                what: "database",
                detail: match &error {
                    Error::DatabaseError(_, info) => info.message().to_string(),
                    _ => "broken transaction manager (connection lost)".into(),
                },
            };
        }
        match error {
            Error::NotFound => AppError::not_found("resource"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                AppError::AlreadyExists {
                    reason: ErrorReason::AlreadyExists,
                    message: format!(
                        "already exists ({})",
                        info.constraint_name().unwrap_or("unique constraint")
                    ),
                }
            }
            other => AppError::Internal(anyhow::Error::new(other).context("database query")),
        }
    }
}

/// How long a client is told to wait after the disk was found full: space
/// has to be freed first, so retrying at once is pointless.
const DISK_FULL_RETRY: Duration = Duration::from_secs(60);

impl From<FieldError<'_>> for AppError {
    /// A storage failure about the path in request field `field`, as the
    /// client sees it:
    ///
    /// - an escape or a refused symlink: INVALID_ARGUMENT, reason
    ///   `PATH_ESCAPE`; a path that cannot be parsed likewise (`PATH_ESCAPE`
    ///   for `..` and absolute paths); the wrong kind of entry or an
    ///   impossible request: INVALID_ARGUMENT;
    /// - missing: NOT_FOUND; taken: ALREADY_EXISTS;
    /// - changed since the scan, changed under a walk, nested too deep to
    ///   walk, or not accessible to the service: FAILED_PRECONDITION (the
    ///   request was fine, the tree is not usable as it is);
    /// - a full disk (`ENOSPC`, or a filesystem quota: `EDQUOT`):
    ///   RESOURCE_EXHAUSTED with reason `QUOTA_EXCEEDED`, a RetryInfo and a
    ///   message saying that the *disk* is full, not the caller's quota: the
    ///   caller can do nothing but retry later, and it is not a server bug,
    ///   so not INTERNAL. No new ErrorReason was added for it: the reason
    ///   already means "a storage limit was hit" and a new enum value would
    ///   change the contract and every generated artifact for no client
    ///   benefit;
    /// - anything else: INTERNAL (logged, not sent).
    fn from(error: FieldError<'_>) -> AppError {
        let FieldError { error, field } = error;
        let invalid = |description: String, reason| AppError::InvalidArgument {
            field: field.to_owned(),
            description,
            reason,
        };
        match error {
            StorageError::Path(e) => {
                let reason = if e.is_escape() {
                    ErrorReason::PathEscape
                } else {
                    ErrorReason::InvalidArgument
                };
                invalid(e.to_string(), reason)
            }
            StorageError::Escape => invalid(
                "leads outside your storage root".into(),
                ErrorReason::PathEscape,
            ),
            StorageError::SymlinkRefused(_) => invalid(
                "is a symbolic link; symbolic links are not followed".into(),
                ErrorReason::PathEscape,
            ),
            StorageError::NotADirectory(_) => {
                invalid("is not a directory".into(), ErrorReason::InvalidArgument)
            }
            StorageError::IsADirectory(_) => {
                invalid("is a directory".into(), ErrorReason::InvalidArgument)
            }
            StorageError::NotARegularFile => {
                invalid("is not a regular file".into(), ErrorReason::InvalidArgument)
            }
            StorageError::Invalid(description) => {
                invalid(description, ErrorReason::InvalidArgument)
            }
            StorageError::NotFound(_) | StorageError::SourceMissing => AppError::not_found(field),
            StorageError::AlreadyExists(_) => AppError::AlreadyExists {
                reason: ErrorReason::AlreadyExists,
                message: format!("{field} already exists"),
            },
            StorageError::DestinationExists => AppError::AlreadyExists {
                reason: ErrorReason::AlreadyExists,
                message: "the destination already exists".into(),
            },
            StorageError::SourceChanged | StorageError::Replaced => AppError::FailedPrecondition {
                message: "the file changed since it was scanned".into(),
            },
            StorageError::TooDeep { limit, folder } => AppError::FailedPrecondition {
                message: format!(
                    "{field}: holds folders nested more than {limit} levels deep, which the \
                     service does not walk ({folder})"
                ),
            },
            StorageError::FolderChanged { folder } => AppError::FailedPrecondition {
                message: format!(
                    "{field}: a folder was moved or replaced while it was being read; try \
                     again ({folder})"
                ),
            },
            StorageError::TrashNotAFolder => AppError::FailedPrecondition {
                message: ".trash in your storage is not a folder; move it away to use the trash"
                    .into(),
            },
            StorageError::PermissionDenied(_) => AppError::FailedPrecondition {
                message: format!("{field}: the service may not access this path on disk"),
            },
            StorageError::DiskFull(_) => AppError::exhausted(
                ErrorReason::QuotaExceeded,
                format!(
                    "{field}: the server's storage is full (no space left on the disk); \
                     retry after space is freed"
                ),
                DISK_FULL_RETRY,
            ),
            StorageError::Io(e) => AppError::internal(format!("storage error on {field}: {e}")),
        }
    }
}

/// Whether a query failed because the connection did (closed, cut, server
/// restarting), not because of the query itself.
pub fn is_connection_failure(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        // A connection that died under the query (server restart, network
        // cut) surfaces as an unknown error about the connection.
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            is_connection_message(info.message())
        }
        Error::BrokenTransactionManager => true,
        _ => false,
    }
}

/// A database that accepted the connection but did not complete the
/// handshake in time (a hung server or network): the database is
/// unreachable ([`is_database_unreachable`]), so a job is handed back rather
/// than failed. Made by `db`; defined here so that the error story needs
/// nothing from the layers below it.
#[derive(Debug, thiserror::Error)]
#[error("timed out connecting to the database")]
pub struct ConnectTimedOut;

/// Whether an error anywhere in `error`'s chain means the database could not
/// be reached: no pooled connection in time, a connection that died, or a
/// direct (journal) connection that failed. Such an error says nothing about
/// the work itself, which can be retried once the database answers.
pub fn is_database_unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<ConnectTimedOut>()
            || cause
                .downcast_ref::<bb8::RunError<diesel_async::pooled_connection::PoolError>>()
                .is_some()
            || cause
                .downcast_ref::<diesel::result::Error>()
                .is_some_and(is_connection_failure)
            || cause
                .downcast_ref::<tokio_postgres::Error>()
                .is_some_and(|e| {
                    // Not an answer from the server, or a connection-class
                    // one (08: connection exception, 57P: shutting down).
                    e.as_db_error().is_none_or(|db| {
                        let code = db.code().code();
                        code.starts_with("08") || code.starts_with("57P")
                    })
                })
    })
}

fn is_connection_message(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "connection",
        "broken pipe",
        "reset by peer",
        "terminating",
        "timed out",
        "closed",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

impl From<bb8::RunError<diesel_async::pooled_connection::PoolError>> for AppError {
    fn from(error: bb8::RunError<diesel_async::pooled_connection::PoolError>) -> Self {
        AppError::Unavailable {
            what: "database",
            detail: error.to_string(),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(error: tokio::task::JoinError) -> Self {
        AppError::Internal(anyhow::Error::new(error).context("blocking task"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_count_as_an_unreachable_database() {
        type PoolRun = bb8::RunError<diesel_async::pooled_connection::PoolError>;
        let timed_out = anyhow::Error::new(PoolRun::TimedOut).context("recording a batch");
        assert!(is_database_unreachable(&timed_out));
        let cut = anyhow::Error::new(diesel::result::Error::BrokenTransactionManager);
        assert!(is_database_unreachable(&cut));
        for query_error in [
            diesel::result::Error::NotFound,
            diesel::result::Error::RollbackTransaction,
        ] {
            assert!(!is_database_unreachable(&anyhow::Error::new(query_error)));
        }
        assert!(!is_database_unreachable(&anyhow::anyhow!(
            "source: not a folder"
        )));
    }

    #[test]
    fn validation_errors_carry_the_field_and_reason() {
        let status = Status::from(AppError::invalid("email", "is not an email address"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "email");
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "INVALID_ARGUMENT");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn exhausted_carries_retry_info() {
        let status = Status::from(AppError::exhausted(
            ErrorReason::RateLimited,
            "slow down",
            Duration::from_secs(7),
        ));
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        assert_eq!(
            details.retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(7))
        );
        assert_eq!(details.error_info().unwrap().reason, "RATE_LIMITED");
    }

    #[test]
    fn data_loss_names_the_failed_check() {
        let status = Status::from(AppError::DataLoss {
            field: "content_hash".into(),
            description: "does not match the content received".into(),
            message: "nothing was stored".into(),
        });
        assert_eq!(status.code(), Code::DataLoss);
        assert_eq!(status.message(), "nothing was stored");
        let details = status.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(violation.field, "content_hash");
        assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
    }

    #[test]
    fn exhausted_without_a_useful_wait_has_no_retry_info() {
        let status = Status::from(AppError::ResourceExhausted {
            reason: ErrorReason::QuotaExceeded,
            message: "too large".into(),
            retry_after: None,
            metadata: vec![("limit", "x".into())],
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        assert!(details.retry_info().is_none());
        assert_eq!(details.error_info().unwrap().metadata["limit"], "x");
    }

    #[test]
    fn internal_details_are_not_sent() {
        let status = Status::from(AppError::internal("password=hunter2 leaked in SQL"));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }

    #[test]
    fn quoted_values_are_bounded() {
        let huge = "é".repeat(100_000);
        let status = Status::from(AppError::invalid("path", format!("{huge:?} is bad")));
        assert!(status.message().len() <= MAX_ERROR_TEXT && status.message().ends_with('…'));
        let details = status.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert!(violation.description.len() <= MAX_ERROR_TEXT);
        let status = Status::from(AppError::not_found(huge));
        assert!(status.message().len() <= MAX_ERROR_TEXT);
        assert_eq!(bounded("short".into()), "short");
    }

    #[test]
    fn a_missing_scope_is_named_in_the_error_info() {
        let status = Status::from(AppError::scope_missing("files.write", "needs files.write"));
        assert_eq!(status.code(), Code::PermissionDenied);
        let info = status.get_error_details().error_info().unwrap().clone();
        assert_eq!(info.reason, "SCOPE_INSUFFICIENT");
        assert_eq!(info.metadata["scope"], "files.write");
    }

    /// Every storage error, as the client sees it: code, ErrorInfo reason,
    /// the BadRequest field (validation errors only) and a telling message.
    #[test]
    fn every_storage_error_maps_to_its_status() {
        use std::io;

        use crate::storage::{PathError, UserPath};

        let os = io::Error::from_raw_os_error;
        let folder = UserPath::parse("deep/tree").unwrap();
        let cases: Vec<(StorageError, Code, &str, bool, &str)> = vec![
            (
                PathError::ParentComponent.into(),
                Code::InvalidArgument,
                "PATH_ESCAPE",
                true,
                "'..'",
            ),
            (
                PathError::Absolute.into(),
                Code::InvalidArgument,
                "PATH_ESCAPE",
                true,
                "relative",
            ),
            (
                PathError::Nul.into(),
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
                true,
                "NUL",
            ),
            (
                StorageError::Escape,
                Code::InvalidArgument,
                "PATH_ESCAPE",
                true,
                "outside your storage root",
            ),
            (
                StorageError::SymlinkRefused(os(libc::ELOOP)),
                Code::InvalidArgument,
                "PATH_ESCAPE",
                true,
                "symbolic link",
            ),
            (
                StorageError::NotADirectory(os(libc::ENOTDIR)),
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
                true,
                "is not a directory",
            ),
            (
                StorageError::IsADirectory(os(libc::EISDIR)),
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
                true,
                "is a directory",
            ),
            (
                StorageError::NotARegularFile,
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
                true,
                "is not a regular file",
            ),
            (
                StorageError::Invalid("cannot move from the storage root itself".into()),
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
                true,
                "storage root itself",
            ),
            (
                StorageError::NotFound(os(libc::ENOENT)),
                Code::NotFound,
                "NOT_FOUND",
                false,
                "the_field not found",
            ),
            (
                StorageError::SourceMissing,
                Code::NotFound,
                "NOT_FOUND",
                false,
                "the_field not found",
            ),
            (
                StorageError::AlreadyExists(os(libc::EEXIST)),
                Code::AlreadyExists,
                "ALREADY_EXISTS",
                false,
                "the_field already exists",
            ),
            (
                StorageError::DestinationExists,
                Code::AlreadyExists,
                "ALREADY_EXISTS",
                false,
                "the destination already exists",
            ),
            (
                StorageError::SourceChanged,
                Code::FailedPrecondition,
                "FAILED_PRECONDITION",
                false,
                "changed since it was scanned",
            ),
            (
                StorageError::Replaced,
                Code::FailedPrecondition,
                "FAILED_PRECONDITION",
                false,
                "changed since it was scanned",
            ),
            (
                StorageError::FolderChanged {
                    folder: folder.clone(),
                },
                Code::FailedPrecondition,
                "FAILED_PRECONDITION",
                false,
                "the_field: a folder was moved or replaced while it was being read; try again \
                 (deep/tree)",
            ),
            (
                StorageError::TooDeep {
                    limit: 4096,
                    folder,
                },
                Code::FailedPrecondition,
                "FAILED_PRECONDITION",
                false,
                "the_field: holds folders nested more than 4096 levels deep, which the service \
                 does not walk (deep/tree)",
            ),
            (
                StorageError::TrashNotAFolder,
                Code::FailedPrecondition,
                "FAILED_PRECONDITION",
                false,
                ".trash in your storage is not a folder; move it away to use the trash",
            ),
            (
                StorageError::PermissionDenied(os(libc::EACCES)),
                Code::FailedPrecondition,
                "FAILED_PRECONDITION",
                false,
                "the_field: the service may not access this path on disk",
            ),
            (
                StorageError::DiskFull(os(libc::ENOSPC)),
                Code::ResourceExhausted,
                "QUOTA_EXCEEDED",
                false,
                "the_field: the server's storage is full",
            ),
            (
                StorageError::DiskFull(os(libc::EDQUOT)),
                Code::ResourceExhausted,
                "QUOTA_EXCEEDED",
                false,
                "the_field: the server's storage is full",
            ),
            (
                StorageError::Io(os(libc::EIO)),
                Code::Internal,
                "INTERNAL",
                false,
                "internal error; see the server log",
            ),
        ];
        for (error, code, reason, names_field, message) in cases {
            let shown = format!("{error:?}");
            let status = Status::from(AppError::from(error.at("the_field")));
            assert_eq!(status.code(), code, "{shown}");
            assert!(status.message().contains(message), "{shown}: {status:?}");
            let details = status.get_error_details();
            assert_eq!(details.error_info().unwrap().reason, reason, "{shown}");
            let field = details
                .bad_request()
                .map(|b| b.field_violations[0].field.clone());
            assert_eq!(
                field.as_deref(),
                names_field.then_some("the_field"),
                "{shown}"
            );
            // Only a full disk is worth retrying, later.
            assert_eq!(
                details.retry_info().and_then(|r| r.retry_delay),
                (code == Code::ResourceExhausted).then_some(DISK_FULL_RETRY),
                "{shown}"
            );
            // The system's own words stay in the server log.
            assert!(!status.message().contains("os error"), "{shown}");
        }
    }

    /// Errors of a real root, classified by storage and converted here: a
    /// symlink leading outside and a final symlink are PATH_ESCAPE on the
    /// field the request named.
    #[test]
    fn real_storage_refusals_are_path_escapes_on_the_field() {
        use crate::storage::{UserPath, UserRoot};

        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
        let root = UserRoot::open(&tmp.path().join("storage"), uuid::Uuid::new_v4()).unwrap();
        std::os::unix::fs::symlink(&outside, root.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.path().join("link")).unwrap();
        let p = |s: &str| UserPath::parse(s).unwrap();
        for (error, field) in [
            (
                root.open_read(&p("out/secret.txt")).unwrap_err(),
                "source_path",
            ),
            (root.open_read(&p("link")).unwrap_err(), "path"),
            (
                root.rename_noreplace(&p("link"), &p("out/x")).unwrap_err(),
                "destination",
            ),
        ] {
            let AppError::InvalidArgument {
                field: named,
                reason,
                ..
            } = AppError::from(error.at(field))
            else {
                panic!("{field}: expected INVALID_ARGUMENT");
            };
            assert_eq!((named.as_str(), reason), (field, ErrorReason::PathEscape));
        }
    }

    #[test]
    fn diesel_errors_map_to_codes() {
        let status = Status::from(AppError::from(diesel::result::Error::NotFound));
        assert_eq!(status.code(), Code::NotFound);
    }
}
