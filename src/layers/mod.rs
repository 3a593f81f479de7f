//! Tower layers wrapped around every RPC (outermost first): connection
//! activity (idle connections are closed, see [`idle`]) → the drain of
//! HTTP/1.1 bodies answered early ([`drain`]) → CORS → grpc-web
//! translation → request context → metrics → burst guard → authentication →
//! per-user limits → protocol errors (tonic's request-reading failures made
//! INVALID_ARGUMENT / RESOURCE_EXHAUSTED) → the services.

pub(crate) mod auth;
pub(crate) mod drain;
pub(crate) mod idle;
pub(crate) mod metrics;
pub mod protocol_errors;
pub(crate) mod rate_limit;
pub(crate) mod request_context;

pub use self::metrics::MetricsLayer;
pub use auth::AuthLayer;
pub use request_context::{RequestContext, TrustedProxies};
