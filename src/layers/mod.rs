//! Tower layers wrapped around every RPC (outermost first): CORS → grpc-web
//! translation → metrics → authentication → the services.

pub mod auth;
pub mod metrics;
pub mod rate_limit;
pub mod request_context;

pub use self::metrics::MetricsLayer;
pub use auth::AuthLayer;
pub use request_context::RequestContext;
