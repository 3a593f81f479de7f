//! Request rate limits, in two layers.
//!
//! - [`burst_guard`]: tower_governor, in process, per client address, before
//!   authentication — it blunts floods and credential guessing cheaply. The
//!   key is the address [`RequestContext`](super::RequestContext) resolved:
//!   the TCP peer, or, from a trusted proxy (`TRUSTED_PROXIES`: the Envoy
//!   sidecar), the address that proxy observed (`x-envoy-external-address`,
//!   which Envoy overwrites); never a header from anyone else.
//! - [`UserLimitLayer`]: after authentication, per user and global sliding
//!   windows in Redis (see `crate::infra::ratelimit`), by bucket: uploads, exports,
//!   everything else. Every answer carries `x-ratelimit-limit`,
//!   `x-ratelimit-remaining` and `x-ratelimit-reset`; a refusal is
//!   RESOURCE_EXHAUSTED with RetryInfo and `retry-after` (HTTP 429 through
//!   Envoy). Refusals are audited, once per user and window.

use std::{
    collections::HashMap,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http::HeaderValue;
use tower::{Layer, Service};
use tower_governor::{GovernorError, governor::GovernorConfigBuilder, key_extractor::KeyExtractor};

use super::RequestContext;
use crate::{
    auth::Principal,
    config::RateLimits,
    db,
    infra::{
        observability::{self, RefusedBy},
        ratelimit::{Bucket, Decision},
    },
    state::AppState,
};

/// Keys the burst guard on the client address of [`RequestContext`] (put
/// there by the request-context layer, which runs first; without it, the TCP
/// peer, never a header).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress;

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;

    fn extract<T>(&self, request: &http::Request<T>) -> Result<IpAddr, GovernorError> {
        request
            .extensions()
            .get::<RequestContext>()
            .map(|context| context.client_ip)
            .unwrap_or_else(|| super::request_context::peer_ip(request))
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// The per-address burst guard (public RPCs included). A refusal has the
/// same shape as every other rate-limit refusal (RetryInfo, `retry-after`).
pub fn burst_guard(
    limits: &RateLimits,
) -> tower_governor::GovernorLayer<
    ClientAddress,
    governor::middleware::NoOpMiddleware,
    tonic::body::Body,
> {
    let period = Duration::from_nanos(1_000_000_000 / u64::from(limits.burst_per_second.max(1)));
    let burst = limits.burst.max(1);
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientAddress)
        .period(period)
        .burst_size(burst)
        .finish()
        .expect("burst and period are positive");
    tower_governor::GovernorLayer::new(Arc::new(config)).error_handler(move |error| match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            observability::rate_limit_refused(RefusedBy::Address, "any");
            Decision {
                allowed: false,
                limit: burst,
                remaining: 0,
                reset_after: Duration::from_secs(wait_time.max(1)),
            }
            .status("requests from your address")
            .into_http()
        }
        GovernorError::UnableToExtractKey => {
            tonic::Status::internal("cannot determine the client address").into_http()
        }
        GovernorError::Other { code, msg, .. } => {
            tracing::warn!(?code, ?msg, "burst guard error");
            tonic::Status::unavailable("try again").into_http()
        }
    })
}

#[derive(Clone)]
pub struct UserLimitLayer {
    state: AppState,
    audited: Arc<Mutex<HashMap<uuid::Uuid, Instant>>>,
}

impl UserLimitLayer {
    pub fn new(state: AppState) -> Self {
        UserLimitLayer {
            state,
            audited: Default::default(),
        }
    }
}

impl<S> Layer<S> for UserLimitLayer {
    type Service = UserLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UserLimit {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct UserLimit<S> {
    inner: S,
    layer: UserLimitLayer,
}

/// The per-user and global limits of a bucket.
pub fn limits_of(limits: &RateLimits, bucket: Bucket) -> (u32, u32) {
    match bucket {
        Bucket::Api => (limits.api, limits.global_api),
        Bucket::Upload => (limits.upload, limits.global_transfer),
        Bucket::Export => (limits.export, limits.global_transfer),
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for UserLimit<S>
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

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            // Public RPCs (no principal) are limited by the burst guard and,
            // for Login/Register, in their handlers.
            let Some(principal) = request.extensions().get::<Principal>().cloned() else {
                return inner.call(request).await;
            };
            let state = &layer.state;
            let bucket = Bucket::of_path(request.uri().path());
            let (per_user, global) = limits_of(&state.config.rate_limits, bucket);
            // Both windows in one round trip; the global one counts the
            // request only if the user's admitted it.
            let (user, all) = state
                .limiter
                .hit_both(
                    (&bucket.user_key(principal.user_id), per_user),
                    (&bucket.global_key(), global),
                )
                .await;
            let decision = match all {
                Some(all) if user.allowed => user.tighter(all),
                _ => user,
            };
            if !decision.allowed {
                let by = if user.allowed {
                    RefusedBy::AllUsers
                } else {
                    RefusedBy::User
                };
                observability::rate_limit_refused(by, bucket.name());
                layer.audit_refusal(&request, &principal, bucket, &decision);
                let what = if user.allowed {
                    format!("{} (all users)", bucket.name())
                } else {
                    bucket.name().to_string()
                };
                return Ok(decision.status(&what).into_http());
            }
            let mut response = inner.call(request).await?;
            for (name, value) in decision.headers() {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
            Ok(response)
        })
    }
}

impl UserLimitLayer {
    /// Writes one audit row per user and window for refusals.
    fn audit_refusal<B>(
        &self,
        request: &http::Request<B>,
        principal: &Principal,
        bucket: Bucket,
        decision: &Decision,
    ) {
        let window = self.state.config.rate_limits.window;
        {
            let mut audited = self.audited.lock().expect("audit lock");
            let now = Instant::now();
            if audited
                .get(&principal.user_id)
                .is_some_and(|t| now.duration_since(*t) < window)
            {
                return;
            }
            audited.insert(principal.user_id, now);
        }
        let context = request
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| {
                RequestContext::from_http(request, &self.state.config.trusted_proxies)
            });
        let state = self.state.clone();
        let user_id = principal.user_id;
        let method = request.uri().path().to_string();
        let limit = decision.limit;
        tokio::spawn(async move {
            let Ok(mut conn) = state.db.get().await else {
                return;
            };
            db::audit::record_request(
                &mut conn,
                &context,
                Some(user_id),
                "rate_limit.exceeded",
                "denied",
                Some(&method),
                serde_json::json!({ "bucket": bucket.name(), "limit": limit }),
            )
            .await;
        });
    }
}
