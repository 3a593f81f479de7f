//! Assembles the gRPC server and runs it until shutdown.
//!
//! [`run`] takes an already bound listener and a shutdown future, so tests
//! bind `127.0.0.1:0` and own both. Shutdown order: health goes NOT_SERVING,
//! long-lived streams are told to end (`AppState::begin_shutdown`), the
//! server stops accepting and drains in-flight calls; after
//! `SHUTDOWN_TIMEOUT_SECS` it stops regardless.

use std::{future::Future, time::Duration};

use http::{HeaderName, HeaderValue, Method};
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tonic::transport::{Server, server::TcpIncoming};
use tonic_web::GrpcWebLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    api,
    layers::{AuthLayer, MetricsLayer},
    pb::{
        self,
        fileorganizer::v1::{
            auth_service_server::AuthServiceServer,
            automation_service_server::AutomationServiceServer,
            file_service_server::FileServiceServer,
            operation_service_server::OperationServiceServer,
            report_service_server::ReportServiceServer, rule_service_server::RuleServiceServer,
            system_service_server::SystemServiceServer,
        },
    },
    state::AppState,
};

/// Request headers a browser may send over grpc-web.
const ALLOWED_HEADERS: &[&str] = &[
    "content-type",
    "authorization",
    "x-api-key",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-request-id",
    // W3C trace context (infra::otel).
    "traceparent",
    "tracestate",
];
/// Response headers a browser must be able to read.
const EXPOSED_HEADERS: &[&str] = &[
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    // The file name of DownloadFile and DownloadArchive.
    "content-disposition",
];

/// CORS for browsers, over grpc-web and over REST (Envoy routes preflights
/// here): only the configured origins; a request from any other origin gets
/// no `access-control-allow-origin`, so browsers refuse it. The methods are
/// those of the REST routes (PATCH and DELETE need a preflight grant).
pub fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(
            ALLOWED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect::<Vec<_>>(),
        )
        .expose_headers(
            EXPOSED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect::<Vec<_>>(),
        )
        .max_age(Duration::from_secs(86_400))
}

/// HTTP/2 PING every 30 s; a peer that has not answered within 20 s is gone
/// and its connection (with any stream on it) is closed.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Streams a peer may reset before the server accepted them, per connection, before the
/// server ends the connection (GOAWAY ENHANCE_YOUR_CALM, h2's rapid-reset guard; its default
/// is 20). Envoy's transcoder opens the upstream stream on a REST request's headers and resets
/// it when the JSON body does not parse, so a burst of malformed REST requests from one client
/// (the fuzz of tests/rest/fuzz_api.py found it) reached 20 on the one connection all REST
/// users share, and every other call in flight on it failed with 503. Still bounded, so a
/// direct gRPC client cannot pile up reset streams without limit.
const HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 1024;
/// TCP keepalive for what HTTP/2 pings cannot reach (HTTP/1.1 grpc-web, a
/// connection that never finished its preface): probes after 60 s of
/// silence, every 15 s, 4 unanswered ones drop it (about 2 minutes).
const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 4;

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    state: AppState,
) -> anyhow::Result<()> {
    let config = state.config.clone();
    let max = config.max_message_bytes;
    // First, so a taken METRICS_ADDR fails start-up before anything runs.
    let mut metrics = crate::infra::observability::start(
        config.metrics_addr,
        state.shutting_down.clone(),
        crate::infra::health::sampler(state.clone()),
    )
    .await?;
    if let Some(exporter) = &mut metrics {
        let db = state.db.clone();
        exporter.spawn(crate::infra::observability::refresh_gauges(
            state.shutting_down.clone(),
            move || {
                let db = db.clone();
                async move {
                    let mut conn = db.get().await?;
                    Ok(crate::db::users::total_storage(&mut conn).await?)
                }
            },
        ));
    }
    let console = crate::infra::console::start(&state, listener.local_addr()?).await?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // tonic-health starts "" as SERVING; nothing is until the first check passes.
    crate::infra::health::set_all(&health_reporter, tonic_health::ServingStatus::NotServing).await;
    let health_task = tokio::spawn(crate::infra::health::run_health_loop(
        state.clone(),
        health_reporter,
        config.health_check_interval,
    ));

    // Expired resumable upload sessions: their rows, bytes and reservations.
    let upload_sweeper = tokio::spawn(api::files::run_upload_sweeper(
        state.clone(),
        (config.upload_session_ttl / 2).clamp(Duration::from_millis(200), Duration::from_secs(60)),
    ));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let router = Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .http2_max_pending_accept_reset_streams(Some(HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS))
        // Overload protection: bounded handlers, bounded concurrency, and
        // shedding (UNAVAILABLE at once) rather than unbounded queues.
        .timeout(config.request_timeout)
        .concurrency_limit_per_connection(config.max_concurrent_per_connection)
        .load_shed(true)
        .max_concurrent_streams(config.max_concurrent_streams)
        // Outermost: counts every call of a connection, so one without any for
        // IDLE_CONNECTION_TIMEOUT_SECS can be closed (see `incoming` below).
        .layer(crate::layers::idle::ActivityLayer)
        // An HTTP/1.1 (grpc-web) body answered before it was read is read to
        // its end first, so the client gets the answer (and its RetryInfo).
        .layer(crate::layers::drain::DrainLayer)
        .layer(cors(&config.cors_origins))
        .layer(GrpcWebLayer::new())
        .layer(crate::layers::request_context::RequestContextLayer::new(
            config.trusted_proxies.clone(),
        ))
        // Inside grpc-web (browser calls look like gRPC), outside everything
        // that can reject a call (so rejections are counted).
        .layer(MetricsLayer::new())
        .layer(crate::layers::rate_limit::burst_guard(&config.rate_limits))
        .layer(AuthLayer::new(state.clone()))
        .layer(crate::layers::rate_limit::UserLimitLayer::new(
            state.clone(),
        ))
        // Innermost: sees tonic's own answers to requests it cannot decode.
        .layer(crate::layers::protocol_errors::ProtocolErrorsLayer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AuthServiceServer::new(api::auth::Auth::new(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            SystemServiceServer::new(api::system::System::new(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            OperationServiceServer::new(api::operations::Operations::new(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            AutomationServiceServer::new(api::automations::Automations::new(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            FileServiceServer::new(api::files::Files::new(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            ReportServiceServer::new(api::reports::Reports::new(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            RuleServiceServer::new(api::rules::Rules::new(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );

    let workers = crate::jobs::spawn_workers(&state, config.workers);

    let local = listener.local_addr()?;
    // tonic ignores the builder's TCP settings with an incoming stream: set here.
    let idle_timeout = config.idle_connection_timeout;
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE_IDLE))
        .with_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL))
        .with_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES))
        .map(move |accepted| {
            accepted.map(|tcp| crate::layers::idle::IdleClosing::new(tcp, idle_timeout))
        });
    let signal_state = state.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
        signal_state.begin_shutdown();
    };
    tracing::info!(addr = %local, "serving gRPC, grpc-web, health and reflection");

    let mut shutting_down = state.shutting_down.clone();
    let shutdown_timeout = config.shutdown_timeout;
    let deadline = async move {
        let _ = shutting_down.wait_for(|s| *s).await;
        tokio::time::sleep(shutdown_timeout).await;
    };
    let served = router.serve_with_incoming_shutdown(incoming, signal);
    tokio::select! {
        result = served => result?,
        () = deadline => tracing::warn!("shutdown timeout reached; stopping with calls still in flight"),
    }
    state.begin_shutdown();
    let _ = health_task.await;
    upload_sweeper.abort();
    for worker in workers {
        // A worker mid-job stops at its next file (the job is left to be
        // reclaimed); bound the wait like the rest of the shutdown.
        let _ = tokio::time::timeout(config.shutdown_timeout, worker).await;
    }
    if let Some(console) = console {
        let _ = tokio::time::timeout(config.shutdown_timeout, console).await;
    }
    if let Some(metrics) = metrics {
        metrics.join(config.shutdown_timeout).await;
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
