//! OpenTelemetry traces (src/infra/otel.rs): a server started with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` sends its spans to a small OTLP receiver
//! (the collector's TraceService behind a tonic server, here), and the spans
//! are checked by their ids: a caller's `traceparent` is the parent of the
//! server span, over native gRPC and through Envoy's REST transcoding, and a
//! job's spans (`job`, then one per phase), made by a `fileorg worker`
//! process, belong to the trace of the CreateOperation that queued it.

use std::{
    collections::HashMap,
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use fileorganizer::{
    domain::Phase,
    pb::fileorganizer::v1::{
        self as pb, OperationState, operation_service_client::OperationServiceClient,
    },
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::{Span, span::SpanKind},
};
use tonic::{Request, Response, Status};

use crate::common::{Options, TestApp, bearer, envoy::Envoy, tree};

/// Every span exported to it, with its service name.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    async fn start(self) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(self))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        port
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            other => format!("{other:?}"),
        })
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const REST_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const REST_SPAN: &str = "b7ad6b7169203331";

/// A `fileorg serve` with tracing on, its stderr kept for failure messages.
struct Traced {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Traced {
    /// `fileorg serve` (no workers) or `fileorg worker`.
    fn start(app: &TestApp, otlp_port: u16, args: &[&str]) -> Traced {
        let port = crate::common::free_port();
        let log = app
            .storage
            .path()
            .join(format!("traced-{}.log", uuid::Uuid::new_v4().simple()));
        let child = app
            .fileorg_command(args)
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{otlp_port}"),
            )
            .env("RUST_LOG", "info")
            .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("WORKERS", "0")
            .env("TRUSTED_PROXIES", "127.0.0.2")
            .env("SHUTDOWN_TIMEOUT_SECS", "10")
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        Traced { child, port, log }
    }

    /// SIGTERM, then waits for the exit: a graceful stop flushes the spans.
    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the server failed: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_trace_continues_through_the_server_and_the_job() {
    let receiver = Receiver::default();
    let otlp_port = receiver.clone().start().await;
    // The TestApp only provides the database and storage: its own workers
    // are off, so the traced `fileorg worker` runs the job.
    let app = TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await;
    // The job runs in another process, as with `fileorg worker` in production.
    let mut server = Traced::start(&app, otlp_port, &["serve"]);
    let mut worker = Traced::start(&app, otlp_port, &["worker", "--count", "1"]);
    let channel = crate::common::connect_when_up(server.port).await;
    let envoy = Envoy::start(server.port).await;

    let session = app.register(&TestApp::email("traced")).await;
    let token = session.access_token;
    let user_id = session.user.unwrap().id;
    let root = app.state.config.storage_root.join(&user_id);
    tree::write(&root, "inbox/a.txt", b"alpha");
    tree::write(&root, "inbox/b.jpg", b"\xff\xd8\xff\xe0 not quite a photo");

    // Native gRPC, with the client's traceparent.
    let mut operations = OperationServiceClient::new(channel);
    let mut create = bearer(
        pb::CreateOperationRequest {
            operation: Some(pb::Operation {
                source_path: "inbox".into(),
                remove_empty_dirs: true,
                ..Default::default()
            }),
            request_id: String::new(),
        },
        &token,
    );
    create.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CLIENT_SPAN}-01").parse().unwrap(),
    );
    let name = operations
        .create_operation(create)
        .await
        .unwrap()
        .into_inner()
        .name;
    let mut op = pb::Operation::default();
    for _ in 0..2400 {
        op = operations
            .get_operation(bearer(
                pb::GetOperationRequest { name: name.clone() },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        if op.state == OperationState::Succeeded as i32 || op.state == OperationState::Failed as i32
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        op.state,
        OperationState::Succeeded as i32,
        "{op:?}\n{}",
        worker.log()
    );

    // REST through Envoy, with another traceparent; a malformed one after it.
    let http = reqwest::Client::new();
    let listed = http
        .get(envoy.url("/api/v1/operations"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{REST_TRACE_ID}-{REST_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let forged = http
        .get(envoy.url("/api/v1/operations"))
        .bearer_auth(&token)
        .header(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 200);

    server.stop();
    worker.stop();
    let spans = receiver.spans();
    let dump = || {
        spans
            .iter()
            .map(|(_, s)| {
                format!(
                    "{} trace={} span={} parent={}",
                    s.name,
                    hex_of(&s.trace_id),
                    hex_of(&s.span_id),
                    hex_of(&s.parent_span_id)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        spans
            .iter()
            .all(|(service, _)| service.contains("fileorganizer")),
        "service names: {:?}",
        spans.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    let by_id: HashMap<String, &Span> =
        spans.iter().map(|(_, s)| (hex_of(&s.span_id), s)).collect();

    // The server span of CreateOperation: the client's span is its parent.
    let created = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "fileorganizer.v1.OperationService/CreateOperation")
        .unwrap_or_else(|| panic!("no CreateOperation span:\n{}", dump()));
    assert_eq!(created.kind, SpanKind::Server as i32);
    assert_eq!(hex_of(&created.trace_id), TRACE_ID, "{}", dump());
    assert_eq!(hex_of(&created.parent_span_id), CLIENT_SPAN, "{}", dump());

    // The job: a child of CreateOperation's span, in the same trace.
    let job = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "job organize")
        .unwrap_or_else(|| panic!("no job span:\n{}", dump()));
    assert_eq!(hex_of(&job.trace_id), TRACE_ID, "{}", dump());
    assert_eq!(job.parent_span_id, created.span_id, "{}", dump());
    // What the worker read: the traceparent the server wrote for its own
    // span, never the client's header as sent.
    assert_eq!(
        stored_trace_parent(&app, &name).await,
        Some(format!("00-{TRACE_ID}-{}-01", hex_of(&created.span_id)))
    );
    assert_eq!(
        attribute(job, "operation").as_deref(),
        Some(name.trim_start_matches("operations/")),
        "{}",
        dump()
    );

    // Its phases: children of the job, in pipeline order, each within it.
    let mut phases: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.parent_span_id == job.span_id)
        .collect();
    phases.sort_by_key(|s| s.start_time_unix_nano);
    let names: Vec<&str> = phases.iter().map(|s| s.name.as_str()).collect();
    // Every phase of the pipeline, scan to report.
    let expected: Vec<&str> = Phase::PIPELINE.iter().map(|p| p.as_str()).collect();
    assert_eq!(names, expected, "{}", dump());
    for phase in &phases {
        assert_eq!(phase.trace_id, job.trace_id);
        assert!(phase.start_time_unix_nano >= job.start_time_unix_nano);
        assert!(
            phase.end_time_unix_nano <= job.end_time_unix_nano,
            "{}",
            dump()
        );
    }
    for pair in phases.windows(2) {
        assert!(pair[0].end_time_unix_nano <= pair[1].start_time_unix_nano);
    }

    // Through Envoy: the REST call's traceparent is the parent of ListOperations.
    let listed: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == "fileorganizer.v1.OperationService/ListOperations")
        .collect();
    assert_eq!(listed.len(), 2, "{}", dump());
    let via_envoy = listed
        .iter()
        .find(|s| hex_of(&s.trace_id) == REST_TRACE_ID)
        .unwrap_or_else(|| panic!("the REST trace is missing:\n{}", dump()));
    assert_eq!(hex_of(&via_envoy.parent_span_id), REST_SPAN);
    // The malformed traceparent was ignored: a new trace, with no parent.
    let fresh = listed
        .iter()
        .find(|s| hex_of(&s.trace_id) != REST_TRACE_ID)
        .unwrap();
    assert!(fresh.parent_span_id.is_empty(), "{}", dump());
    assert_ne!(hex_of(&fresh.trace_id), TRACE_ID);
    assert!(
        !by_id.contains_key(CLIENT_SPAN),
        "the client's span is not ours to export"
    );
}

/// With tracing off (no endpoint, as in every other test), a client's
/// traceparent is still accepted and nothing is stored with the operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_stored_while_tracing_is_off() {
    let app = TestApp::spawn_with(Options {
        env: vec![("WORKERS", "0".into())],
        ..Default::default()
    })
    .await;
    let session = app.register(&TestApp::email("untraced")).await;
    let root = app.state.config.storage_root.join(session.user.unwrap().id);
    tree::write(&root, "inbox/a.txt", b"alpha");
    let mut create = bearer(
        pb::CreateOperationRequest {
            operation: Some(pb::Operation {
                source_path: "inbox".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        },
        &session.access_token,
    );
    create.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CLIENT_SPAN}-01").parse().unwrap(),
    );
    let name = app
        .operations()
        .create_operation(create)
        .await
        .unwrap()
        .into_inner()
        .name;
    assert_eq!(stored_trace_parent(&app, &name).await, None);
}

/// `operations.trace_parent` of the operation `name`.
async fn stored_trace_parent(app: &TestApp, name: &str) -> Option<String> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use fileorganizer::schema::operations;
    let id = uuid::Uuid::parse_str(name.trim_start_matches("operations/")).unwrap();
    operations::table
        .find(id)
        .select(operations::trace_parent)
        .get_result(&mut app.db().await)
        .await
        .unwrap()
}
