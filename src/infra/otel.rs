//! OpenTelemetry traces over OTLP/gRPC, off unless `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set (docs/observability.md).
//!
//! ## How a trace is made
//!
//! The spans are `tracing` spans; [`layer`] turns them into OpenTelemetry
//! spans (`tracing-opentelemetry`) that a batch processor sends to the
//! collector. So `RUST_LOG` decides which spans exist: the default (`info`)
//! keeps the `rpc` span of every call and the `job` and `phase` spans of
//! every job.
//!
//! - **Every RPC** is a server span (`layers::request_context`) whose parent
//!   is the W3C `traceparent` the caller sent ([`extract`]): a client's own,
//!   or Envoy's, which forwards the header of a REST call unchanged (and
//!   starts no trace of its own: it has no collector to report to). A
//!   malformed header is ignored (the call starts a new trace); a well-formed
//!   one is believed whoever sent it, since a trace id grants nothing: it only
//!   decides where the spans are filed.
//! - **A job** runs later, in a worker that may be another process. The
//!   `traceparent` of the span that created the operation is stored with it
//!   (`operations.trace_parent`, [`TraceParent::current`]), and the worker
//!   makes its `job` span a child of it ([`JobTrace`]), with one `phase`
//!   span per phase (scan, categorize, hash, plan, journal, apply, cleanup,
//!   report). One trace so shows CreateOperation and the job's phases, even
//!   when the job resumes after a restart (each run adds its own `job` span).
//!   Operations created while tracing was off, or by the automations'
//!   scheduler (no request), store nothing and their jobs start new traces.
//!
//! Sampling follows the parent (`parentbased_always_on`, or whatever
//! `OTEL_TRACES_SAMPLER` says); `OTEL_SERVICE_NAME` defaults to
//! `fileorganizer`; the exporter reads the other standard `OTEL_EXPORTER_OTLP_*`
//! and `OTEL_BSP_*` variables itself.

use std::sync::OnceLock;

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::domain::Phase;

/// The variable that turns tracing on.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const SERVICE_NAME: &str = "fileorganizer";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Starts the exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (must run
/// inside the tokio runtime: the tonic client needs it). Returns whether
/// tracing is on. Called once, by `telemetry::init`.
pub(crate) fn start() -> anyhow::Result<bool> {
    let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_default();
    if endpoint.trim().is_empty() {
        return Ok(false);
    }
    if PROVIDER.get().is_some() {
        return Ok(true);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| anyhow::anyhow!("{ENDPOINT_VAR}={endpoint}: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let _ = PROVIDER.set(provider);
    Ok(true)
}

/// The layer that exports spans, when [`start`] turned tracing on.
pub(crate) fn layer<S>() -> Option<impl tracing_subscriber::Layer<S>>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let tracer = PROVIDER.get()?.tracer(SERVICE_NAME);
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_threads(false),
    )
}

/// Sends the spans still buffered and stops the exporter (at the end of
/// `serve` and `worker`); a no-op when tracing is off. The wait is a
/// blocking one (the batch processor's thread), kept off the runtime's
/// workers, which drive the exporter's connection meanwhile.
pub async fn shutdown() {
    let Some(provider) = PROVIDER.get() else {
        return;
    };
    match tokio::task::spawn_blocking(|| provider.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "flushing the last traces failed"),
        Err(error) => tracing::warn!(%error, "flushing the last traces failed"),
    }
}

/// Whether a server span that answered `code` is an error (OpenTelemetry's
/// gRPC conventions: only the codes that mean the server failed).
pub fn is_server_error(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss
    )
}

/// A W3C `traceparent` value (`00-<trace id>-<span id>-<flags>`), checked:
/// only one that names a valid span context is ever made or stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    /// The value, if it is a well-formed `traceparent` with non-zero ids.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let context = context_of(Some(value));
        let span = context.span();
        let span_context = span.span_context();
        span_context
            .is_valid()
            .then(|| TraceParent(value.to_string()))
    }

    /// The current span's context (a server span's, inside a handler), when
    /// tracing is on and the span is recorded.
    pub fn current() -> Option<TraceParent> {
        let context = tracing::Span::current().context();
        if !context.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = Carrier::default();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        carrier.traceparent.map(TraceParent)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Makes `span` a child of the `traceparent` in `headers`, if there is a
/// well-formed one (`tracestate` is carried along). Nothing happens when
/// tracing is off.
pub fn extract(span: &tracing::Span, headers: &http::HeaderMap) {
    let Some(value) = headers.get("traceparent").and_then(|v| v.to_str().ok()) else {
        return;
    };
    let tracestate = headers.get("tracestate").and_then(|v| v.to_str().ok());
    set_parent(span, value, tracestate);
}

fn set_parent(span: &tracing::Span, traceparent: &str, tracestate: Option<&str>) {
    if PROVIDER.get().is_none() {
        return;
    }
    let context = TraceContextPropagator::new().extract(&HeaderPair {
        traceparent: Some(traceparent),
        tracestate,
    });
    if context.span().span_context().is_valid() {
        // Fails only without the layer (tracing off): nothing to link then.
        let _ = span.set_parent(context);
    }
}

fn context_of(traceparent: Option<&str>) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderPair {
        traceparent,
        tracestate: None,
    })
}

struct HeaderPair<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for HeaderPair<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

#[derive(Default)]
struct Carrier {
    traceparent: Option<String>,
}

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.traceparent = Some(value);
        }
    }
}

/// The spans of one run of a job: `job`, a child of the stored
/// `traceparent` of the request that created the operation, and the span of
/// the phase running now, a child of `job`. A phase span ends when the next
/// phase starts or the job stops ([`JobTrace::enter`]); `job` ends when the
/// run does (when this is dropped).
#[derive(Debug)]
pub struct JobTrace {
    job: tracing::Span,
    phase: std::sync::Mutex<Option<(Phase, tracing::Span)>>,
}

impl JobTrace {
    pub fn start(operation: uuid::Uuid, kind: &str, parent: Option<&str>) -> JobTrace {
        let job = tracing::info_span!(
            parent: None,
            "job",
            otel.name = format!("job {kind}"),
            operation = %operation,
            kind = %kind,
        );
        if let Some(parent) = parent {
            set_parent(&job, parent, None);
        }
        JobTrace {
            job,
            phase: std::sync::Mutex::new(None),
        }
    }

    /// Ends the running phase's span and starts `phase`'s (None: the job
    /// stops). Re-entering the running phase keeps its span.
    pub fn enter(&self, phase: Option<Phase>) {
        let mut running = self.phase.lock().expect("phase span lock");
        if let (Some((current, _)), Some(next)) = (running.as_ref(), phase)
            && *current == next
        {
            return;
        }
        // The running phase ends before the next one starts.
        drop(running.take());
        *running = phase.map(|phase| {
            let span = tracing::info_span!(
                parent: &self.job,
                "phase",
                otel.name = phase.as_str(),
                phase = phase.as_str(),
            );
            (phase, span)
        });
    }

    /// The `job` span, for instrumenting the run.
    pub fn span(&self) -> &tracing::Span {
        &self.job
    }
}

impl Drop for JobTrace {
    /// The running phase ends before its job.
    fn drop(&mut self) {
        if let Ok(mut phase) = self.phase.lock() {
            phase.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_checked() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(good).unwrap().as_str(), good);
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn nothing_is_current_while_tracing_is_off() {
        let span = tracing::info_span!("rpc");
        let _entered = span.enter();
        assert!(TraceParent::current().is_none());
    }
}
