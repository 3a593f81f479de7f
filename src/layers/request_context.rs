//! Per-request facts that are not credentials: the request id and the
//! client's address, used by audit records, logs and every per-address limit
//! (the burst guard, Login/Register attempts, failed credentials).
//!
//! ## Whose word is taken for the client's address
//!
//! The gRPC port is public: browsers (grpc-web), native clients and the
//! Envoy sidecar all connect to it, often from the same host. So the address
//! is the TCP peer's, and a forwarded-address header is believed only when
//! that peer is a configured proxy (`TRUSTED_PROXIES`, a list of addresses
//! or CIDR ranges, empty by default: then no header is ever believed).
//! From a trusted proxy the address is `x-envoy-external-address`, which
//! Envoy (`use_remote_address: true`) sets itself to the address it
//! accepted the connection from, removing any value a client sent; from
//! anyone else every such header (`x-envoy-external-address`,
//! `x-forwarded-for`, …) is ignored.
//!
//! A proxy and a direct client on the same host are told apart by the
//! address the proxy connects *from*: the sidecar Envoy binds its upstream
//! connections to 127.0.0.2 (`upstream_bind_config` in envoy/envoy.yaml),
//! and `TRUSTED_PROXIES=127.0.0.2` trusts exactly that, while a direct client
//! on loopback connects from 127.0.0.1. Remote hosts cannot send from a
//! loopback address (the kernel drops such packets), so only a process on
//! the server's own host (or pod) could pose as the proxy. Under
//! docker-compose Envoy has a fixed address on a network it shares only
//! with the server, and only that address is trusted (docs/security.md).

use std::{net::IpAddr, sync::Arc};

use tonic::transport::server::TcpConnectInfo;

pub use crate::config::TrustedProxies;

/// Put into the extensions of every request by [`RequestContextLayer`].
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `x-request-id` as sent by Envoy or the client (if sane), else a new UUID.
    pub request_id: String,
    /// The client address (see the module doc): the TCP peer, or, when the
    /// peer is a trusted proxy, the address that proxy reported.
    pub client_ip: Option<IpAddr>,
}

impl RequestContext {
    pub fn from_http<B>(request: &http::Request<B>, trusted: &TrustedProxies) -> RequestContext {
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
            .unwrap_or_else(new_request_id);
        let peer = peer_ip(request);
        let client_ip = match peer {
            Some(ip) if trusted.contains(ip) => headers
                .get("x-envoy-external-address")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
                .map(|ip| ip.to_canonical())
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
                request_id: new_request_id(),
                client_ip: None,
            })
    }

    pub fn client_ip_string(&self) -> Option<String> {
        self.client_ip.map(|ip| ip.to_string())
    }
}

/// A new request id: a random (version 4) UUID from the thread's CSPRNG
/// (`rand`), not `Uuid::new_v4`, which asks the kernel (a `getrandom` system
/// call) for every request.
fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// The TCP peer's address (IPv4-mapped IPv6 addresses as IPv4).
pub fn peer_ip<B>(request: &http::Request<B>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(|info| info.remote_addr())
        .map(|addr| addr.ip().to_canonical())
}

impl<'a> From<&'a RequestContext> for crate::db::audit::Origin<'a> {
    fn from(ctx: &'a RequestContext) -> Self {
        crate::db::audit::Origin {
            request_id: &ctx.request_id,
            client_ip: ctx.client_ip,
        }
    }
}

/// Gives every request its [`RequestContext`], a tracing span (method,
/// request id, user id once authenticated, code, duration) and one log line
/// when it is answered; echoes `x-request-id` in the response; and replaces
/// the message of an INTERNAL error with one that names the request id, so
/// a user can quote it while the details stay in the log.
#[derive(Clone, Default)]
pub struct RequestContextLayer {
    trusted: Arc<TrustedProxies>,
}

impl RequestContextLayer {
    pub fn new(trusted: TrustedProxies) -> Self {
        RequestContextLayer {
            trusted: Arc::new(trusted),
        }
    }
}

impl<S> tower::Layer<S> for RequestContextLayer {
    type Service = WithRequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithRequestContext {
            inner,
            trusted: self.trusted.clone(),
        }
    }
}

#[derive(Clone)]
pub struct WithRequestContext<S> {
    inner: S,
    trusted: Arc<TrustedProxies>,
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
        let context = RequestContext::from_http(&request, &self.trusted);
        let method = request.uri().path().to_string();
        // A server span (OpenTelemetry's name and kind), the child of the
        // caller's `traceparent` if it sent one (infra::otel).
        let span = tracing::info_span!(
            "rpc",
            otel.name = %method.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.grpc.status_code = tracing::field::Empty,
            method = %method,
            request_id = %context.request_id,
            user_id = tracing::field::Empty,
        );
        crate::infra::otel::extract(&span, request.headers());
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
                let span = tracing::Span::current();
                span.record("rpc.grpc.status_code", code as i32);
                if crate::infra::otel::is_server_error(code) {
                    span.record("otel.status_code", "ERROR");
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn request(peer: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut request = http::Request::new(());
        for (name, value) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(peer.parse::<SocketAddr>().unwrap()),
        });
        request
    }

    fn client(peer: &str, headers: &[(&str, &str)], trusted: &str) -> Option<IpAddr> {
        let trusted: TrustedProxies = trusted.parse().unwrap();
        RequestContext::from_http(&request(peer, headers), &trusted).client_ip
    }

    const FORGED: &[(&str, &str)] = &[
        ("x-envoy-external-address", "6.6.6.6"),
        ("x-forwarded-for", "7.7.7.7"),
    ];

    #[test]
    fn headers_are_believed_only_from_a_trusted_proxy() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Nobody trusted (the default): the peer, whatever it says.
        assert_eq!(client("127.0.0.1:5000", FORGED, ""), ip("127.0.0.1"));
        // A loopback client that is not the proxy's address.
        assert_eq!(
            client("127.0.0.1:5000", FORGED, "127.0.0.2"),
            ip("127.0.0.1")
        );
        assert_eq!(
            client("10.0.0.9:5000", FORGED, "10.0.0.0/30"),
            ip("10.0.0.9")
        );
        // The proxy: the address it reports (never X-Forwarded-For).
        assert_eq!(client("127.0.0.2:5000", FORGED, "127.0.0.2"), ip("6.6.6.6"));
        assert_eq!(
            client("10.0.0.2:5000", FORGED, "10.0.0.0/30"),
            ip("6.6.6.6")
        );
        assert_eq!(
            client("[::ffff:127.0.0.2]:5000", FORGED, "127.0.0.2"),
            ip("6.6.6.6")
        );
        // The proxy without (or with a broken) header: the proxy itself.
        assert_eq!(client("127.0.0.2:5000", &[], "127.0.0.2"), ip("127.0.0.2"));
        let broken = [("x-envoy-external-address", "not an address")];
        assert_eq!(
            client("127.0.0.2:5000", &broken, "127.0.0.2"),
            ip("127.0.0.2")
        );
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_ranges() {
        let parsed: TrustedProxies = " 127.0.0.2, 10.1.2.3/29 ,::1".parse().unwrap();
        assert!(parsed.contains("127.0.0.2".parse().unwrap()));
        assert!(parsed.contains("10.1.2.0".parse().unwrap()));
        assert!(parsed.contains("10.1.2.7".parse().unwrap()));
        assert!(!parsed.contains("10.1.2.8".parse().unwrap()));
        assert!(!parsed.contains("127.0.0.1".parse().unwrap()));
        assert!(parsed.contains("::1".parse().unwrap()));
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        for bad in ["localhost", "10.0.0.0/33", "0.0.0.0/0", "::/0", "1.2.3"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad} was accepted");
        }
    }
}
