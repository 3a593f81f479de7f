//! The authentication layer: one async tower service in front of every RPC.
//!
//! It reads `authorization: Bearer <jwt>` or `x-api-key: fo_…`, verifies it
//! (JWTs locally; API keys against the database) and puts a typed
//! [`Principal`] into the request extensions. Public RPCs (health,
//! reflection, Register, Login, RefreshToken, GetHealth) pass without
//! credentials; every other request without valid ones is answered here with
//! UNAUTHENTICATED and never reaches a handler.
//!
//! Then it authorizes the call with the one table of `auth::access`: a
//! credential without the scope the RPC needs is refused with
//! PERMISSION_DENIED (reason SCOPE_INSUFFICIENT, the scope named in the
//! ErrorInfo), and the admin RPCs also need the admin role (reason
//! PERMISSION_DENIED; the handlers check it again).
//!
//! One exception: WatchOperation called with no credential header at all
//! passes without a principal, and its handler requires a watch token in
//! the request instead (`auth::watch_tokens`). A credential that is sent is
//! always checked, and a bad one refused here, token or not.
//!
//! Guessing: every rejected credential (a bad API key or access token; not a
//! missing one, nor an access token this server signed that has merely
//! expired) counts against `RATE_LIMIT_AUTH_FAILURES_PER_IP` for the
//! client address. Once that is spent, credentialed calls from the address
//! are refused with RESOURCE_EXHAUSTED *before* the credential is checked
//! (otherwise a guesser would still learn which key is right), until the
//! window moves on; the lockout is audited once per address and window
//! (`auth.failures_exceeded`). The burst guard alone allows hundreds of
//! guesses a second.

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
    auth::{
        Credential, Principal, Scope, Scopes,
        access::{self, Access},
        api_keys, sessions,
        tokens::invalid_token,
    },
    db,
    error::{AppError, AppResult},
    pb::fileorganizer::v1::ErrorReason,
    state::AppState,
};

#[derive(Clone)]
pub struct AuthLayer {
    state: AppState,
    lockouts: Lockouts,
}

impl AuthLayer {
    pub fn new(state: AppState) -> Self {
        AuthLayer {
            state,
            lockouts: Default::default(),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            state: self.state.clone(),
            lockouts: self.lockouts.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    state: AppState,
    lockouts: Lockouts,
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
        let lockouts = self.lockouts.clone();
        Box::pin(async move {
            if request.extensions().get::<RequestContext>().is_none() {
                let context = RequestContext::from_http(&request, &state.config.trusted_proxies);
                request.extensions_mut().insert(context);
            }
            // A call without any credential to the one RPC that takes a
            // watch token instead goes on without a principal; its handler
            // requires the token (`auth::watch_tokens`).
            let by_watch_token = access::accepts_watch_token(request.uri().path())
                && !has_credentials(request.headers());
            if !access::is_public(request.uri().path()) && !by_watch_token {
                let guard = FailureGuard::of(&state, &lockouts, &request);
                if let Some(refusal) = guard.refusal().await {
                    return Ok(refusal.into_http());
                }
                match authenticate(&state, request.headers()).await {
                    Ok(principal) => {
                        crate::infra::observability::user_seen(principal.user_id);
                        tracing::Span::current()
                            .record("user_id", tracing::field::display(principal.user_id));
                        if let Err(denied) = authorize(&principal, request.uri().path()) {
                            let context = request.extensions().get::<RequestContext>().cloned();
                            let path = request.uri().path().to_string();
                            audit_denial(&state, &lockouts, context, &path, &principal, &denied)
                                .await;
                            return Ok(Status::from(denied).into_http());
                        }
                        request.extensions_mut().insert(principal);
                    }
                    Err(error) => {
                        if is_guess(&state, &error, request.headers()) {
                            guard.failed().await;
                        }
                        return Ok(Status::from(error).into_http());
                    }
                }
            }
            inner.call(request).await
        })
    }
}

/// Whether the request carries a credential header (valid or not).
fn has_credentials(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::AUTHORIZATION) || headers.contains_key("x-api-key")
}

/// Checks `principal` against the access table for the RPC at `path`.
pub fn authorize(principal: &Principal, path: &str) -> AppResult<()> {
    let rpc = access::short_name(path);
    let needed = match access::of(path) {
        Some(Access::Public | Access::Authenticated) => return Ok(()),
        Some(Access::Scope(scope) | Access::ScopeOrWatchToken(scope)) => scope,
        // Not an RPC of the API (tonic answers UNIMPLEMENTED): a restricted
        // key may call nothing that the table does not grant it.
        None if principal.is_restricted() => {
            return Err(AppError::PermissionDenied {
                reason: ErrorReason::ScopeInsufficient,
                message: format!("{rpc} is not an RPC this API key's scopes grant"),
                metadata: Vec::new(),
            });
        }
        None => return Ok(()),
    };
    if needed == Scope::Admin {
        principal.require_admin()?;
    }
    if principal.scopes.contains(needed) {
        return Ok(());
    }
    Err(AppError::scope_missing(
        needed.as_str(),
        format!("{rpc} needs the scope '{needed}', which this API key does not have"),
    ))
}

/// Records a refusal of [`authorize`] (`authorization.denied`, the RPC as
/// target in the admin handlers' spelling `Service.Method`, the missing
/// scope if that was the reason), once per user, RPC and rate-limit window
/// in this process: refusals are not counted by the per-user limits, so a
/// client retrying a forbidden call must not turn each retry into a write.
async fn audit_denial(
    state: &AppState,
    audited: &Lockouts,
    context: Option<RequestContext>,
    path: &str,
    principal: &Principal,
    denied: &AppError,
) {
    let (AppError::PermissionDenied { metadata, .. }, Some(context)) = (denied, context) else {
        return;
    };
    {
        let key = format!("denied:{}:{path}", principal.user_id);
        let mut audited = audited.lock().expect("audit lock");
        let now = std::time::Instant::now();
        let window = state.config.rate_limits.window;
        if audited
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < window)
        {
            return;
        }
        audited.retain(|_, t| now.duration_since(*t) < window);
        audited.insert(key, now);
    }
    let detail: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str())))
        .collect();
    if let Ok(mut conn) = state.db.get().await {
        db::audit::record_request(
            &mut conn,
            &context,
            Some(principal.user_id),
            "authorization.denied",
            "denied",
            Some(&access::short_name(path).replace('/', ".")),
            serde_json::Value::Object(detail),
        )
        .await;
    }
}

/// Whether a rejected credential could be a guess: not a missing one, and
/// not an access token this server signed that is merely out of its time
/// window or of an ended session (whoever holds it was given it; clients
/// whose tokens expire or whose session ended must not lock out a shared
/// address).
fn is_guess(state: &AppState, error: &AppError, headers: &http::HeaderMap) -> bool {
    let AppError::Unauthenticated { reason, .. } = error else {
        return false;
    };
    if *reason == ErrorReason::CredentialsMissing {
        return false;
    }
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .map(|(_, token)| token.trim());
    !bearer.is_some_and(|token| state.tokens.is_ours(token))
}

/// Counts rejected credentials per client address (see the module doc).
struct FailureGuard<'a> {
    state: &'a AppState,
    lockouts: &'a Lockouts,
    context: RequestContext,
    key: String,
}

/// Addresses whose lockout was audited, and (user, RPC) pairs whose
/// authorization refusal was, and when (one row per window).
type Lockouts =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>;

impl<'a> FailureGuard<'a> {
    fn of<B>(state: &'a AppState, lockouts: &'a Lockouts, request: &http::Request<B>) -> Self {
        let context = request
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext::from_http(request, &state.config.trusted_proxies));
        let ip = context
            .client_ip_string()
            .unwrap_or_else(|| "unknown".into());
        FailureGuard {
            state,
            lockouts,
            context,
            key: format!("auth_failures:ip:{ip}"),
        }
    }

    fn limit(&self) -> u32 {
        self.state.config.rate_limits.auth_failures_per_ip
    }

    /// RESOURCE_EXHAUSTED when the address has no failures left.
    async fn refusal(&self) -> Option<Status> {
        let decision = self.state.limiter.peek(&self.key, self.limit()).await;
        if decision.allowed {
            return None;
        }
        self.audit_lockout(decision.limit).await;
        Some(decision.status("failed authentication attempts from your address"))
    }

    /// Counts one rejected credential.
    async fn failed(&self) {
        self.state.limiter.hit(&self.key, self.limit()).await;
    }

    async fn audit_lockout(&self, limit: u32) {
        {
            let mut audited = self.lockouts.lock().expect("lockout lock");
            let now = std::time::Instant::now();
            let window = self.state.config.rate_limits.window;
            if audited
                .get(&self.key)
                .is_some_and(|t| now.duration_since(*t) < window)
            {
                return;
            }
            audited.retain(|_, t| now.duration_since(*t) < window);
            audited.insert(self.key.clone(), now);
        }
        if let Ok(mut conn) = self.state.db.get().await {
            db::audit::record_request(
                &mut conn,
                &self.context,
                None,
                "auth.failures_exceeded",
                "denied",
                Some("credentials"),
                serde_json::json!({ "limit": limit }),
            )
            .await;
        }
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
        // The token is genuine; is what it stands for still true? Its
        // session must be alive and its user enabled, and the role is the
        // user's current one, not the one signed into the token
        // (`auth::sessions`). Every server-issued token names its session.
        let session = verified.session.ok_or_else(invalid_token)?;
        let user = sessions::active_user(state, verified.user_id, invalid_token).await?;
        if !sessions::session_alive(state, verified.user_id, session).await? {
            return Err(invalid_token());
        }
        return Ok(Principal {
            user_id: verified.user_id,
            role: user.role,
            credential: Credential::AccessToken {
                jti: verified.jti,
                session: Some(session),
            },
            scopes: Scopes::of_role(user.role),
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

/// The cache of [`CachedKey`]s. Its name changes whenever their meaning
/// does (`api_key` entries had no scopes, which would read as full access),
/// so entries written by an older process are never read.
pub const KEY_CACHE: &str = "api_key_v3";

/// What the cache keeps about an API key (by prefix): enough to verify a
/// presented key without a database round trip. A revocation drops the
/// entry; the owner's role and status are looked up per call like an access
/// token's (`auth::sessions`), so a disabled owner or a role change takes
/// effect within the same bound.
#[derive(Clone, PartialEq, prost::Message)]
struct CachedKey {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    user_id: String,
    // Tag 3 held the owner's role, now looked up per call.
    #[prost(bytes = "vec", tag = "4")]
    token_hash: Vec<u8>,
    /// Unix seconds; 0 = never.
    #[prost(int64, tag = "5")]
    expires_at: i64,
    /// The scope names stored on the key (empty: the role's full access).
    #[prost(string, repeated, tag = "6")]
    scopes: Vec<String>,
}

/// Keys whose last use was recorded recently (in this process).
static TOUCHED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<uuid::Uuid, std::time::Instant>>,
> = std::sync::LazyLock::new(Default::default);

/// Records a key's use, at most once a minute per process.
async fn touch(state: &AppState, id: uuid::Uuid) {
    {
        let mut touched = TOUCHED.lock().expect("touch lock");
        let now = std::time::Instant::now();
        if touched
            .get(&id)
            .is_some_and(|t| now.duration_since(*t) < std::time::Duration::from_secs(60))
        {
            return;
        }
        touched.insert(id, now);
    }
    if let Ok(mut conn) = state.db.get().await {
        let _ = db::credentials::touch_api_key(&mut conn, id).await;
    }
}

async fn authenticate_api_key(state: &AppState, key: &str) -> AppResult<Principal> {
    let invalid = || {
        AppError::unauthenticated(
            ErrorReason::ApiKeyInvalid,
            "the API key is invalid, revoked or expired",
        )
    };
    let key = key.trim();
    let prefix = api_keys::parse_prefix(key).ok_or_else(invalid)?;
    let cached = match state.cache.get::<CachedKey>(KEY_CACHE, prefix).await {
        Some(hit) => hit,
        None => {
            let mut conn = state.db.get().await?;
            let stored = db::credentials::find_api_key_by_prefix(&mut conn, prefix)
                .await?
                .ok_or_else(invalid)?;
            if stored.revoked_at.is_some() {
                return Err(invalid());
            }
            let entry = CachedKey {
                id: stored.id.to_string(),
                user_id: stored.user_id.to_string(),
                token_hash: stored.token_hash.clone(),
                expires_at: stored.expires_at.map(|t| t.timestamp()).unwrap_or(0),
                scopes: stored.scopes.iter().flatten().cloned().collect(),
            };
            state
                .cache
                .put(KEY_CACHE, prefix, &entry, state.cache.ttls.principal)
                .await;
            entry
        }
    };
    let expired = cached.expires_at != 0 && cached.expires_at <= Utc::now().timestamp();
    if !api_keys::matches(key, &cached.token_hash) || expired {
        return Err(invalid());
    }
    let (Ok(id), Ok(user_id)) = (
        uuid::Uuid::parse_str(&cached.id),
        uuid::Uuid::parse_str(&cached.user_id),
    ) else {
        return Err(invalid());
    };
    let role = sessions::active_user(state, user_id, invalid).await?.role;
    touch(state, id).await;
    Ok(Principal {
        user_id,
        role,
        credential: Credential::ApiKey { id },
        scopes: Scopes::of_key(&cached.scopes, role),
    })
}
