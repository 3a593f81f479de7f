//! Infrastructure every layer may use, none of it domain logic: caches,
//! rate limits, metrics, health checks, logging, the console's file server,
//! and the small concurrency helpers they need.
//!
//! - [`redis`]: the shared Redis pool type;
//! - [`cache`]: Redis cache-aside with an in-process tier;
//! - [`ratelimit`]: sliding-window limits per user and globally;
//! - [`observability`]: Prometheus metrics and the /metrics listener;
//! - [`health`]: dependency checks and grpc.health.v1;
//! - [`telemetry`]: logging set-up;
//! - [`otel`]: OpenTelemetry traces over OTLP and W3C `traceparent`;
//! - [`console`]: serves the browser console's built files;
//! - [`security_headers`]: the HTTP security headers shared with Envoy;
//! - [`streams`]: the per-user cap on open server streams;
//! - [`keyed_lock`]: one computation at a time per key;
//! - [`memo`]: values computed from an operation's whole journal, stored
//!   per version of the operation (`db::memos`);
//! - [`open_files`]: the process's limit on open files, raised at start-up.

pub(crate) mod cache;
pub(crate) mod console;
pub(crate) mod health;
pub(crate) mod keyed_lock;
pub(crate) mod memo;
pub mod observability;
pub mod open_files;
pub mod otel;
pub(crate) mod ratelimit;
pub(crate) mod redis;
pub mod security_headers;
pub(crate) mod streams;
pub mod telemetry;

/// What `fileorg worker` (a binary outside the library) passes to
/// [`observability::start`].
pub use health::sampler as metrics_sampler;
