//! Logging setup: JSON or human-readable lines, filtered by `RUST_LOG`
//! (default `info`). Never logs secrets: handlers log ids, not payloads.
//! The same spans become OpenTelemetry traces when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set ([`super::otel`]).

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Must run inside the tokio runtime (the OTLP exporter's client needs it).
pub fn init(format: LogFormat) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn,tower=warn"));
    let otel = super::otel::start();
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .finish()
            .with(super::otel::layer())
            .try_init(),
        LogFormat::Pretty => builder.finish().with(super::otel::layer()).try_init(),
    };
    match otel {
        Ok(true) => tracing::info!(
            endpoint = %std::env::var(super::otel::ENDPOINT_VAR).unwrap_or_default(),
            "exporting traces over OTLP"
        ),
        Ok(false) => {}
        Err(error) => tracing::warn!(error = format!("{error:#}"), "traces are off"),
    }
}
