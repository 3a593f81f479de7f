//! Tower layers wrapped around every RPC (outermost first): CORS → grpc-web
//! translation → authentication → the services.

pub mod auth;
pub mod request_context;

pub use auth::AuthLayer;
pub use request_context::RequestContext;
