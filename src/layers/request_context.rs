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
