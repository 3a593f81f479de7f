//! The authentication layer: one async tower service in front of every RPC.
//!
//! It reads `authorization: Bearer <jwt>` or `x-api-key: fo_…`, verifies it
//! (JWTs locally; API keys against the database) and puts a typed
//! [`Principal`] into the request extensions. Public RPCs (health,
//! reflection, Register, Login, RefreshToken, GetHealth) pass without
//! credentials; every other request without valid ones is answered here with
//! UNAUTHENTICATED and never reaches a handler.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use chrono::Utc;
use tonic::Status;
use tower::{Layer, Service};

use super::RequestContext;
use crate::{
    auth::{Credential, Principal, Role, api_keys},
    db,
    error::{AppError, AppResult},
    pb::fileorganizer::v1::ErrorReason,
    state::AppState,
};

/// gRPC paths callable without credentials.
const PUBLIC_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];
const PUBLIC_METHODS: &[&str] = &[
    "/fileorganizer.v1.AuthService/Register",
    "/fileorganizer.v1.AuthService/Login",
    "/fileorganizer.v1.AuthService/RefreshToken",
    "/fileorganizer.v1.SystemService/GetHealth",
];

pub fn is_public(path: &str) -> bool {
    PUBLIC_METHODS.contains(&path) || PUBLIC_PREFIXES.iter().any(|p| path.starts_with(p))
}

#[derive(Clone)]
pub struct AuthLayer {
    state: AppState,
}

impl AuthLayer {
    pub fn new(state: AppState) -> Self {
        AuthLayer { state }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    state: AppState,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Authenticate<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone is not ready; keep the ready one for this call (tower's
        // usual "swap" idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let context = RequestContext::from_http(&request);
            request.extensions_mut().insert(context);
            if !is_public(request.uri().path()) {
                match authenticate(&state, request.headers()).await {
                    Ok(principal) => {
                        request.extensions_mut().insert(principal);
                    }
                    Err(error) => return Ok(Status::from(error).into_http()),
                }
            }
            inner.call(request).await
        })
    }
}

/// Resolves the credentials in `headers` to a principal.
pub async fn authenticate(state: &AppState, headers: &http::HeaderMap) -> AppResult<Principal> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                AppError::unauthenticated(
                    ErrorReason::TokenInvalid,
                    "the authorization header must be 'Bearer <access token>'",
                )
            })?;
        let verified = state.tokens.verify(token)?;
        return Ok(Principal {
            user_id: verified.user_id,
            role: verified.role,
            credential: Credential::AccessToken {
                jti: verified.jti,
                session: verified.session,
            },
        });
    }
    if let Some(value) = headers.get("x-api-key") {
        return authenticate_api_key(state, value.to_str().unwrap_or_default()).await;
    }
    Err(AppError::unauthenticated(
        ErrorReason::CredentialsMissing,
        "authentication required: send 'authorization: Bearer <access token>' or 'x-api-key: <key>'",
    ))
}

async fn authenticate_api_key(state: &AppState, key: &str) -> AppResult<Principal> {
    let invalid = || {
        AppError::unauthenticated(
            ErrorReason::ApiKeyInvalid,
            "the API key is invalid, revoked or expired",
        )
    };
    let prefix = api_keys::parse_prefix(key.trim()).ok_or_else(invalid)?;
    let mut conn = state.db.get().await?;
    let stored = db::credentials::find_api_key_by_prefix(&mut conn, prefix)
        .await?
        .ok_or_else(invalid)?;
    let now = Utc::now();
    if !api_keys::matches(key.trim(), &stored.token_hash)
        || stored.revoked_at.is_some()
        || stored.expires_at.is_some_and(|t| t <= now)
    {
        return Err(invalid());
    }
    let user = db::users::find(&mut conn, stored.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(invalid)?;
    db::credentials::touch_api_key(&mut conn, stored.id).await?;
    Ok(Principal {
        user_id: user.id,
        role: Role::parse(&user.role),
        credential: Credential::ApiKey { id: stored.id },
    })
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn only_the_listed_rpcs_are_public() {
        assert!(is_public("/fileorganizer.v1.AuthService/Login"));
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(is_public("/fileorganizer.v1.SystemService/GetHealth"));
        assert!(!is_public("/fileorganizer.v1.SystemService/GetStatus"));
        assert!(!is_public("/fileorganizer.v1.AuthService/GetCurrentUser"));
        assert!(!is_public("/fileorganizer.v1.AuthService/LoginX"));
    }
}
