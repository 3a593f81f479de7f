//! Requests tonic cannot read, answered as the client's fault.
//!
//! tonic decodes a request message before any handler sees it and, left
//! alone, reports
//! - bytes prost cannot decode (malformed protobuf, a wrong wire type, a
//!   string field that is not UTF-8) as INTERNAL "failed to decode Protobuf
//!   message: …", which reads as a server bug, and
//! - a message longer than `MAX_MESSAGE_BYTES` as OUT_OF_RANGE.
//!
//! This layer, the innermost, rewrites the trailers-only answer tonic gives
//! in both cases (a handler never produces either: its INTERNAL message is
//! always the generic one of `error.rs`, and no handler answers
//! OUT_OF_RANGE):
//! - a decode failure becomes INVALID_ARGUMENT with ErrorInfo
//!   `INVALID_ARGUMENT` and a BadRequest naming the field, built from prost's
//!   location stack (`UploadFileMetadata.path: UploadFileRequest.data: …`
//!   read outside-in, a oneof resolved to its member through the descriptor:
//!   `metadata.path`); `request` when prost names no field;
//! - an oversized message becomes RESOURCE_EXHAUSTED with ErrorInfo
//!   `QUOTA_EXCEEDED` (the gRPC status-code guide's choice for "request
//!   message larger than the server's limit"; the same code and reason as an
//!   UploadSmallFile over `MAX_UPLOAD_BYTES`). There is no RetryInfo: the
//!   same message will never fit.
//!
//! The match is on tonic's own messages; `tests/api/hostile.rs` sends both
//! kinds of request to every RPC, so a tonic upgrade that changes them fails
//! a test rather than silently bringing INTERNAL back.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::LazyLock,
    task::{Context, Poll},
};

use prost::Message;
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::{error::AppError, pb::fileorganizer::v1::ErrorReason};

const DECODE_FAILURE: &str = "failed to decode Protobuf message: ";
const TOO_LARGE: &str = "decoded message length too large";
/// The field named when prost's error names none.
pub const WHOLE_REQUEST: &str = "request";

#[derive(Clone, Copy, Debug, Default)]
pub struct ProtocolErrorsLayer;

impl<S> Layer<S> for ProtocolErrorsLayer {
    type Service = ProtocolErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProtocolErrors { inner }
    }
}

#[derive(Clone)]
pub struct ProtocolErrors<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ProtocolErrors<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(
                match Status::from_header_map(response.headers()).and_then(rewrite) {
                    Some(status) => status.into_http(),
                    None => response,
                },
            )
        })
    }
}

/// The status to answer instead of tonic's, if `status` is one of its
/// request-reading errors.
pub fn rewrite(status: Status) -> Option<Status> {
    let error = match status.code() {
        Code::Internal => {
            let detail = status.message().strip_prefix(DECODE_FAILURE)?;
            AppError::invalid(
                field_path(detail),
                format!("is not a valid protobuf encoding ({detail})"),
            )
        }
        Code::OutOfRange if status.message().contains(TOO_LARGE) => {
            AppError::ResourceExhausted {
                reason: ErrorReason::QuotaExceeded,
                message: format!(
                    "the request message is too large ({}); stream large files with UploadFile",
                    status.message().trim_start_matches("Error, ")
                ),
                // The same message will always be too large.
                retry_after: None,
                metadata: Vec::new(),
            }
        }
        _ => return None,
    };
    Some(error.into())
}

/// The request field path in prost's location stack (`Inner.field: Outer.field:
/// description`, innermost first), outside-in and with oneofs resolved to
/// the member that holds the inner message.
fn field_path(detail: &str) -> String {
    let is_ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut stack: Vec<(&str, &str)> = Vec::new();
    for part in detail.split(": ") {
        // prost names a field that is a Rust keyword as Rust spells it
        // (`Rule.r#match`); the request's field is `match`.
        match part.split_once('.') {
            Some((message, field))
                if is_ident(message) && is_ident(field.strip_prefix("r#").unwrap_or(field)) =>
            {
                stack.push((message, field.strip_prefix("r#").unwrap_or(field)));
            }
            _ => break,
        }
    }
    stack.reverse();
    let mut fields = Vec::with_capacity(stack.len());
    for (i, (message, field)) in stack.iter().enumerate() {
        let inner = stack.get(i + 1).map(|(m, _)| *m);
        let member = inner.and_then(|inner| {
            ONEOFS.get(&(message.to_string(), field.to_string(), inner.to_string()))
        });
        fields.push(member.map_or(*field, String::as_str));
    }
    if fields.is_empty() {
        WHOLE_REQUEST.to_string()
    } else {
        fields.join(".")
    }
}

/// (message, oneof, member message type) → member field name, for every
/// oneof of the API whose members are messages. Names are short (prost's
/// error stack has no package).
static ONEOFS: LazyLock<HashMap<(String, String, String), String>> = LazyLock::new(|| {
    let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET)
        .expect("the embedded descriptor set decodes");
    let mut map = HashMap::new();
    for file in set.file {
        for message in file.message_type {
            for field in &message.field {
                let (Some(index), Some(type_name)) = (field.oneof_index, &field.type_name) else {
                    continue;
                };
                let Some(oneof) = message.oneof_decl.get(index as usize) else {
                    continue;
                };
                let short = type_name.rsplit('.').next().unwrap_or(type_name);
                map.insert(
                    (
                        message.name().to_owned(),
                        oneof.name().to_owned(),
                        short.to_owned(),
                    ),
                    field.name().to_owned(),
                );
            }
        }
    }
    map
});

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    #[test]
    fn decode_failures_name_the_field() {
        assert_eq!(
            field_path(
                "UploadFileMetadata.path: UploadFileRequest.data: invalid string value: data is not UTF-8 encoded"
            ),
            "metadata.path"
        );
        assert_eq!(
            field_path("LoginRequest.email: invalid string value: data is not UTF-8 encoded"),
            "email"
        );
        assert_eq!(
            field_path("Rule.r#match: CreateRuleRequest.rule: invalid wire type"),
            "rule.match"
        );
        assert_eq!(field_path("invalid varint"), WHOLE_REQUEST);
        assert_eq!(field_path("unexpected type URL.type_url: x"), WHOLE_REQUEST);
    }

    #[test]
    fn only_tonics_reading_errors_are_rewritten() {
        let decode = rewrite(Status::internal(
            "failed to decode Protobuf message: LoginRequest.email: invalid string value: data is not UTF-8 encoded",
        ))
        .unwrap();
        assert_eq!(decode.code(), Code::InvalidArgument);
        let details = decode.get_error_details();
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            "email"
        );
        assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
        assert!(
            decode
                .message()
                .starts_with("invalid email: is not a valid protobuf")
        );
        let large = rewrite(Status::out_of_range(
            "Error, decoded message length too large: found 30 bytes, the limit is: 20 bytes",
        ))
        .unwrap();
        assert_eq!(large.code(), Code::ResourceExhausted);
        let details = large.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "QUOTA_EXCEEDED");
        // Waiting would not make the same message fit.
        assert!(details.retry_info().is_none());
        assert!(rewrite(Status::internal("internal error; see the server log")).is_none());
        assert!(rewrite(Status::invalid_argument("x")).is_none());
    }
}
