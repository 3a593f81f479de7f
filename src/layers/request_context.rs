//! Per-request facts that are not credentials: the request id and the
//! client's address, used by audit records and logs.

use std::net::IpAddr;

use tonic::transport::server::TcpConnectInfo;

/// Put into the extensions of every request by the auth layer.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `x-request-id` as sent by Envoy or the client (if sane), else a new UUID.
    pub request_id: String,
    /// The client address: the TCP peer, or, when the peer is a loopback
    /// proxy (the Envoy sidecar), the address Envoy itself observed
    /// (`x-envoy-external-address`, which Envoy overwrites, so clients cannot
    /// forge it through Envoy).
    pub client_ip: Option<IpAddr>,
}

impl RequestContext {
    pub fn from_http<B>(request: &http::Request<B>) -> RequestContext {
        let headers = request.headers();
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 128
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            })
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(|info| info.remote_addr())
            .map(|addr| addr.ip());
        let client_ip = match peer {
            Some(ip) if ip.is_loopback() => headers
                .get("x-envoy-external-address")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .or(Some(ip)),
            other => other,
        };
        RequestContext {
            request_id,
            client_ip,
        }
    }

    /// The context of a tonic request (present on every request that went
    /// through the layers; a default one otherwise).
    pub fn of<T>(request: &tonic::Request<T>) -> RequestContext {
        request
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext {
                request_id: uuid::Uuid::new_v4().to_string(),
                client_ip: None,
            })
    }

    pub fn client_ip_string(&self) -> Option<String> {
        self.client_ip.map(|ip| ip.to_string())
    }
}

/// Gives every request its [`RequestContext`], a tracing span (method,
/// request id, user id once authenticated, code, duration) and one log line
/// when it is answered; echoes `x-request-id` in the response; and replaces
/// the message of an INTERNAL error with one that names the request id, so
/// a user can quote it while the details stay in the log.
#[derive(Clone, Copy, Default)]
pub struct RequestContextLayer;

impl<S> tower::Layer<S> for RequestContextLayer {
    type Service = WithRequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithRequestContext { inner }
    }
}

#[derive(Clone)]
pub struct WithRequestContext<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for WithRequestContext<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        use tracing::Instrument;
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let context = RequestContext::from_http(&request);
        let method = request.uri().path().to_string();
        let span = tracing::info_span!(
            "rpc",
            method = %method,
            request_id = %context.request_id,
            user_id = tracing::field::Empty,
        );
        let request_id = context.request_id.clone();
        request.extensions_mut().insert(context);
        let started = std::time::Instant::now();
        Box::pin(
            async move {
                let mut response = inner.call(request).await?;
                let headers = response.headers_mut();
                if let Ok(value) = http::HeaderValue::from_str(&request_id) {
                    headers.insert("x-request-id", value);
                }
                // Trailers-only answers carry their status here; a streamed
                // or unary success carries it in the trailers (reported OK).
                let code = headers
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map(tonic::Code::from_i32)
                    .unwrap_or(tonic::Code::Ok);
                if code == tonic::Code::Internal
                    && let Ok(message) = http::HeaderValue::from_str(&format!(
                        "internal error (request id {request_id})"
                    ))
                {
                    headers.insert("grpc-message", message);
                }
                tracing::info!(
                    code = ?code,
                    duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "rpc answered"
                );
                Ok(response)
            }
            .instrument(span),
        )
    }
}
