//! Thin tonic handlers, one module per service. Each handler parses its
//! request into domain types, calls the database or domain code and maps the
//! result back; errors go through `AppError` → `Status` (see `error.rs`).

pub mod auth;
pub mod convert;
pub mod not_implemented;
pub mod operations;
pub mod system;

/// Runs a handler body and converts its `AppError` into a `tonic::Status`.
pub(crate) fn respond<T>(
    result: crate::error::AppResult<T>,
) -> Result<tonic::Response<T>, tonic::Status> {
    result
        .map(tonic::Response::new)
        .map_err(tonic::Status::from)
}
