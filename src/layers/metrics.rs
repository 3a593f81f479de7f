//! The RPC metrics layer: one record per call, whatever way the call ends.
//!
//! It sits inside the grpc-web translation (so browser calls look like any
//! other gRPC call) and outside authentication (so rejected calls count).
//! A call is recorded exactly once, by whichever comes first:
//! - a `grpc-status` in the response headers (a trailers-only response:
//!   auth rejections, handler errors, unknown methods);
//! - the trailers frame at the end of the response body (successful unary
//!   calls, and server streams, which are thus timed until they end);
//! - the end of the body without trailers (`UNKNOWN`), or a body error
//!   (`INTERNAL`);
//! - the call being dropped first (the client went away): `CANCELLED`.
//!
//! Sizes are the body bytes (gRPC framing included) the server read and
//! sent. The method label is the gRPC path only for the methods this server
//! implements; any other path is `unknown`, so clients cannot mint series.
//!
//! Two sets of families come from the same record:
//! - the service's own, `api_requests_total{method,code}` and its
//!   histograms (docs/observability.md);
//! - the standard gRPC server families, named and labelled as
//!   go-grpc-middleware's Prometheus provider does, so that dashboards and
//!   alerts written for any gRPC service apply: `grpc_server_started_total`
//!   at the start, `grpc_server_handled_total{…,grpc_code}` and
//!   `grpc_server_handling_seconds` at the end, and
//!   `grpc_server_msg_received_total` / `grpc_server_msg_sent_total` for
//!   each length-prefixed message as it crosses the body ([`MessageCounter`]).
//!   Their labels are `grpc_service`, `grpc_method` and `grpc_type` (`unary`,
//!   `client_stream`, `server_stream`, `bidi_stream`, from the method's
//!   streaming flags in the descriptor), and `grpc_code` in Go's spelling
//!   (`OK`, `NotFound`, `Canceled`). As in grpc-go, where an unknown method
//!   never reaches the interceptors, calls to a method this server does not
//!   serve are left out of these (they count in `api_requests_total` as
//!   `unknown`).

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, LazyLock, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, ready},
    time::Instant,
};

use ::metrics::{Label, counter, histogram};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prost::{Message, bytes::Buf};
use tonic::Code;
use tower::{Layer, Service};

use crate::infra::observability::{
    API_REQUEST_DURATION_SECONDS, API_REQUEST_SIZE_BYTES, API_REQUESTS_TOTAL,
    API_RESPONSE_SIZE_BYTES, GRPC_SERVER_HANDLED_TOTAL, GRPC_SERVER_HANDLING_SECONDS,
    GRPC_SERVER_MSG_RECEIVED_TOTAL, GRPC_SERVER_MSG_SENT_TOTAL, GRPC_SERVER_STARTED_TOTAL,
};

/// A method this server serves, with its labels.
#[derive(Debug)]
pub struct MethodInfo {
    /// Its place among [`METHODS`] (the slot of its [`Series`]).
    index: usize,
    /// `/package.Service/Method`
    pub path: &'static str,
    /// `package.Service`
    pub service: &'static str,
    pub method: &'static str,
    pub kind: RpcType,
}

/// How a method streams, as its descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcType {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

impl RpcType {
    pub fn of(client_streaming: bool, server_streaming: bool) -> RpcType {
        match (client_streaming, server_streaming) {
            (false, false) => RpcType::Unary,
            (true, false) => RpcType::ClientStream,
            (false, true) => RpcType::ServerStream,
            (true, true) => RpcType::BidiStream,
        }
    }

    /// The `grpc_type` label.
    pub fn as_str(self) -> &'static str {
        match self {
            RpcType::Unary => "unary",
            RpcType::ClientStream => "client_stream",
            RpcType::ServerStream => "server_stream",
            RpcType::BidiStream => "bidi_stream",
        }
    }
}

/// Every `/package.Service/Method` this server serves: ours, health and
/// reflection (both versions), read from their descriptor sets once.
static METHODS: LazyLock<HashMap<&'static str, MethodInfo>> = LazyLock::new(|| {
    let sets = [
        crate::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    // Leaked once per method for the process: a fixed set of label values
    // that never allocate per call.
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mut methods = HashMap::new();
    for set in sets {
        let set = prost_types::FileDescriptorSet::decode(set).expect("embedded descriptor set");
        for file in set.file {
            for service in &file.service {
                let service_name = leak(format!("{}.{}", file.package(), service.name()));
                for method in &service.method {
                    let path = leak(format!("/{service_name}/{}", method.name()));
                    let info = MethodInfo {
                        index: methods.len(),
                        path,
                        service: service_name,
                        method: leak(method.name().to_string()),
                        kind: RpcType::of(method.client_streaming(), method.server_streaming()),
                    };
                    if methods.contains_key(path) {
                        continue;
                    }
                    methods.insert(path, info);
                }
            }
        }
    }
    methods
});

/// The method served at a request path, if any.
pub fn method_info(path: &str) -> Option<&'static MethodInfo> {
    METHODS.get(path)
}

/// The method label of a request path (the layer looks the method up once
/// and takes [`label_of`] it).
#[cfg(test)]
pub fn method_label(path: &str) -> &'static str {
    label_of(method_info(path))
}

/// The method label of a method this server serves, or of any other path.
fn label_of(info: Option<&'static MethodInfo>) -> &'static str {
    info.map_or("unknown", |info| info.path)
}

/// The name of a gRPC code as grpc-go spells it (`codes.Code.String()`),
/// the `grpc_code` label of the standard families.
pub fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The canonical name of a gRPC code, as in the gRPC spec (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// Codes there are (`tonic::Code` 0..=16).
const CODES: usize = 17;

/// The handles of one method label's series, taken from the recorder at
/// the label's first call and kept by the layer, instead of being looked up
/// by name and labels (about a dozen lookups, each with its label vector)
/// on every call. They belong to the recorder in force at that first call:
/// the process's one, which `observability::start` installs before the
/// server builds its layers, or a test's local one.
struct Series {
    /// The standard families; None for the `unknown` label.
    standard: Option<StandardSeries>,
    /// `api_requests_total{method, code}`, by code.
    requests: [OnceLock<::metrics::Counter>; CODES],
    duration: ::metrics::Histogram,
    request_size: ::metrics::Histogram,
    response_size: ::metrics::Histogram,
}

struct StandardSeries {
    info: &'static MethodInfo,
    started: ::metrics::Counter,
    msg_sent: ::metrics::Counter,
    msg_received: ::metrics::Counter,
    handling: ::metrics::Histogram,
    /// `grpc_server_handled_total{…, grpc_code}`, by code.
    handled: [OnceLock<::metrics::Counter>; CODES],
}

impl Series {
    fn of(method: &'static str, info: Option<&'static MethodInfo>) -> Series {
        Series {
            standard: info.map(|info| StandardSeries {
                info,
                started: counter!(GRPC_SERVER_STARTED_TOTAL, info.labels()),
                msg_sent: counter!(GRPC_SERVER_MSG_SENT_TOTAL, info.labels()),
                msg_received: counter!(GRPC_SERVER_MSG_RECEIVED_TOTAL, info.labels()),
                handling: histogram!(GRPC_SERVER_HANDLING_SECONDS, info.labels()),
                handled: Default::default(),
            }),
            requests: Default::default(),
            duration: histogram!(API_REQUEST_DURATION_SECONDS, "method" => method),
            request_size: histogram!(API_REQUEST_SIZE_BYTES, "method" => method),
            response_size: histogram!(API_RESPONSE_SIZE_BYTES, "method" => method),
        }
    }

    fn record(&self, method: &'static str, code: Code, elapsed: f64, received: u64, sent: u64) {
        let slot = (code as usize).min(CODES - 1);
        if let Some(standard) = &self.standard {
            standard.handling.record(elapsed);
            standard.handled[slot]
                .get_or_init(|| {
                    let mut labels = standard.info.labels();
                    labels.push(Label::from_static_parts("grpc_code", go_code_name(code)));
                    counter!(GRPC_SERVER_HANDLED_TOTAL, labels)
                })
                .increment(1);
        }
        self.requests[slot]
            .get_or_init(
                || counter!(API_REQUESTS_TOTAL, "method" => method, "code" => code_name(code)),
            )
            .increment(1);
        self.duration.record(elapsed);
        self.request_size.record(received as f64);
        self.response_size.record(sent as f64);
    }
}

/// One slot per method of [`METHODS`] and a last one for `unknown`.
type SeriesSlots = Arc<[OnceLock<Arc<Series>>]>;

#[derive(Clone)]
pub struct MetricsLayer {
    series: SeriesSlots,
}

impl Default for MetricsLayer {
    fn default() -> Self {
        MetricsLayer::new()
    }
}

impl MetricsLayer {
    pub fn new() -> Self {
        MetricsLayer {
            series: (0..=METHODS.len()).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = RecordMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordMetrics {
            inner,
            series: self.series.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RecordMetrics<S> {
    inner: S,
    series: SeriesSlots,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RecordMetrics<S>
where
    S: Service<http::Request<CountingBody<ReqBody>>, Response = http::Response<ResBody>>,
    ResBody: Body,
{
    type Response = http::Response<MetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let received = Arc::new(AtomicU64::new(0));
        let info = method_info(request.uri().path());
        let method = label_of(info);
        let slot = info.map_or(self.series.len() - 1, |info| info.index);
        let series = self.series[slot]
            .get_or_init(|| Arc::new(Series::of(method, info)))
            .clone();
        let standard = series.standard.as_ref();
        if let Some(standard) = standard {
            standard.started.increment(1);
        }
        let messages_sent = standard.map(|s| MessageCounter::new(s.msg_sent.clone()));
        let messages = standard.map(|s| MessageCounter::new(s.msg_received.clone()));
        let call = Call {
            method,
            series,
            started: Instant::now(),
            received: received.clone(),
            sent: 0,
            messages_sent,
            recorded: false,
        };
        let request = request.map(|inner| CountingBody {
            inner,
            received,
            messages,
        });
        ResponseFuture {
            inner: self.inner.call(request),
            call: Some(call),
        }
    }
}

impl MethodInfo {
    /// The labels of the standard families but `grpc_code`.
    fn labels(&self) -> Vec<Label> {
        vec![
            Label::from_static_parts("grpc_type", self.kind.as_str()),
            Label::from_static_parts("grpc_service", self.service),
            Label::from_static_parts("grpc_method", self.method),
        ]
    }
}

/// Counts the length-prefixed gRPC messages (a flag byte, a 4-byte
/// big-endian length, the message) in a body's data as it goes by, however
/// the frames split them; each complete message adds one to its counter.
pub struct MessageCounter {
    counter: ::metrics::Counter,
    /// Bytes of the current prefix seen so far (0..5), and the prefix.
    prefix: [u8; 5],
    have: usize,
    /// Bytes of the current message still to come (after its prefix).
    remaining: u64,
    in_message: bool,
    /// Set when data could not be read (a non-contiguous buffer): the
    /// framing is lost and nothing more is counted.
    lost: bool,
}

impl MessageCounter {
    pub fn new(counter: ::metrics::Counter) -> MessageCounter {
        MessageCounter {
            counter,
            prefix: [0; 5],
            have: 0,
            remaining: 0,
            in_message: false,
            lost: false,
        }
    }

    /// Feeds one data frame.
    fn feed(&mut self, data: &impl Buf) {
        if self.lost {
            return;
        }
        let mut slices = [std::io::IoSlice::new(&[]); 32];
        let filled = data.chunks_vectored(&mut slices);
        let mut seen = 0;
        for slice in &slices[..filled] {
            seen += slice.len();
            self.feed_slice(slice);
        }
        if seen < data.remaining() {
            self.lost = true;
        }
    }

    fn feed_slice(&mut self, mut bytes: &[u8]) {
        let mut complete = 0;
        while !bytes.is_empty() {
            if self.in_message {
                let n = bytes
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                bytes = &bytes[n..];
                self.remaining -= n as u64;
            } else {
                let n = bytes.len().min(5 - self.have);
                self.prefix[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have < 5 {
                    break;
                }
                self.have = 0;
                self.in_message = true;
                self.remaining = u64::from(u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]));
            }
            if self.in_message && self.remaining == 0 {
                self.in_message = false;
                complete += 1;
            }
        }
        if complete > 0 {
            self.counter.increment(complete);
        }
    }
}

/// One call's measurements; records itself when finished or dropped.
struct Call {
    method: &'static str,
    /// Its method's series (the standard families only when this server
    /// serves the method).
    series: Arc<Series>,
    started: Instant,
    received: Arc<AtomicU64>,
    sent: u64,
    messages_sent: Option<MessageCounter>,
    recorded: bool,
}

impl Call {
    fn finish(mut self, code: Code) {
        self.record(code);
    }

    fn sent(&mut self, data: &impl Buf) {
        self.sent += data.remaining() as u64;
        if let Some(messages) = &mut self.messages_sent {
            messages.feed(data);
        }
    }

    fn record(&mut self, code: Code) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        self.series.record(
            self.method,
            code,
            elapsed,
            self.received.load(Ordering::Relaxed),
            self.sent,
        );
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

pin_project! {
    /// Resolves to the response; records trailers-only responses at once.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: Body,
{
    type Output = Result<http::Response<MetricsBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                let call = match (call, grpc_status(response.headers())) {
                    (Some(call), Some(code)) => {
                        call.finish(code);
                        None
                    }
                    // An empty body is never polled, so its trailers would
                    // never be seen.
                    (Some(call), None) if response.body().is_end_stream() => {
                        call.finish(Code::Unknown);
                        None
                    }
                    (call, _) => call,
                };
                Ok(response.map(|inner| MetricsBody { inner, call }))
            }
            Err(error) => {
                if let Some(call) = call {
                    call.finish(Code::Internal);
                }
                Err(error)
            }
        })
    }
}

pin_project! {
    /// The response body: counts data bytes and finishes the call at its
    /// trailers (or end, or error); dropping it unfinished means CANCELLED.
    pub struct MetricsBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: Body> Body for MetricsBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let result = ready!(this.inner.poll_frame(cx));
        match &result {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(call) = this.call.as_mut() {
                        call.sent(data);
                    }
                } else if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    call.finish(grpc_status(trailers).unwrap_or(Code::Unknown));
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Internal);
                }
            }
            None => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown);
                }
            }
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The request body, counting the data bytes and messages the server
    /// reads.
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        received: Arc<AtomicU64>,
        messages: Option<MessageCounter>,
    }
}

impl<B: Body> Body for CountingBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let result = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &result
            && let Some(data) = frame.data_ref()
        {
            this.received
                .fetch_add(data.remaining() as u64, Ordering::Relaxed);
            if let Some(messages) = this.messages.as_mut() {
                messages.feed(data);
            }
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::{HashSet, VecDeque},
        convert::Infallible,
    };

    use metrics_exporter_prometheus::PrometheusBuilder;
    use prost::bytes::Bytes;
    use tower::{ServiceExt, util::BoxCloneService};

    use super::*;

    type Inner =
        BoxCloneService<http::Request<CountingBody<Frames>>, http::Response<Frames>, Infallible>;

    /// A body of fixed frames.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn trailers(code: i32) -> Frame<Bytes> {
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", code.to_string().parse().unwrap());
        Frame::trailers(map)
    }

    /// Runs `drive` against a service answering with `response()` under a
    /// local recorder and returns the rendered metrics.
    fn render<R>(
        path: &str,
        response: impl Fn() -> http::Response<Frames> + Clone + Send + 'static,
        drive: impl FnOnce(RecordMetrics<Inner>, http::Request<Frames>) -> R,
    ) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            let inner = BoxCloneService::new(tower::service_fn(
                move |request: http::Request<CountingBody<Frames>>| {
                    let response = response.clone();
                    async move {
                        // Read the request like tonic does.
                        let mut body = std::pin::pin!(request.into_body());
                        while std::future::poll_fn(|cx| body.as_mut().poll_frame(cx))
                            .await
                            .is_some()
                        {}
                        Ok::<_, Infallible>(response())
                    }
                },
            ));
            let request = http::Request::builder()
                .uri(path)
                .body(Frames(VecDeque::from([Frame::data(Bytes::from_static(
                    b"\0\0\0\0\x03abc",
                ))])))
                .unwrap();
            drive(MetricsLayer::new().layer(inner), request);
        });
        handle.render()
    }

    fn drain(body: &mut MetricsBody<Frames>) {
        let mut body = Pin::new(body);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        while let Poll::Ready(Some(_)) = body.as_mut().poll_frame(&mut cx) {}
    }

    fn call(
        service: RecordMetrics<Inner>,
        request: http::Request<Frames>,
    ) -> http::Response<MetricsBody<Frames>> {
        futures::executor::block_on(service.oneshot(request)).unwrap()
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    const LOGIN: &str = "/fileorganizer.v1.AuthService/Login";

    #[test]
    fn a_status_in_trailers_is_recorded_once_with_sizes() {
        let text = render(
            LOGIN,
            || {
                http::Response::new(Frames(VecDeque::from([
                    Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")),
                    trailers(3),
                ])))
            },
            |service, request| {
                let mut response = call(service, request);
                drain(response.body_mut());
                drain(response.body_mut());
                drop(response);
            },
        );
        assert_eq!(
            line(&text, "api_requests_total"),
            [format!(
                r#"api_requests_total{{method="{LOGIN}",code="INVALID_ARGUMENT"}} 1"#
            )]
        );
        assert!(text.contains(&format!(
            "api_request_size_bytes_sum{{method=\"{LOGIN}\"}} 8"
        )));
        assert!(text.contains(&format!(
            "api_response_size_bytes_sum{{method=\"{LOGIN}\"}} 7"
        )));
        assert!(text.contains(&format!(
            "api_request_duration_seconds_count{{method=\"{LOGIN}\"}} 1"
        )));
    }

    #[test]
    fn the_standard_families_count_start_code_and_each_message_across_frames() {
        let text = render(
            LOGIN,
            || {
                // Three messages ("hi", an empty one, "x"), cut anywhere.
                http::Response::new(Frames(VecDeque::from([
                    Frame::data(Bytes::from_static(b"\0\0\0\0\x02h")),
                    Frame::data(Bytes::from_static(b"i\0\0\0\0\0\0\0")),
                    Frame::data(Bytes::from_static(b"\0\0\x01")),
                    Frame::data(Bytes::from_static(b"x")),
                    trailers(5),
                ])))
            },
            |service, request| {
                let mut response = call(service, request);
                drain(response.body_mut());
            },
        );
        let labels =
            r#"grpc_type="unary",grpc_service="fileorganizer.v1.AuthService",grpc_method="Login""#;
        for expected in [
            format!("grpc_server_started_total{{{labels}}} 1"),
            format!("grpc_server_handled_total{{{labels},grpc_code=\"NotFound\"}} 1"),
            format!("grpc_server_msg_received_total{{{labels}}} 1"),
            format!("grpc_server_msg_sent_total{{{labels}}} 3"),
            format!("grpc_server_handling_seconds_count{{{labels}}} 1"),
        ] {
            assert!(text.lines().any(|l| l == expected), "{expected} in\n{text}");
        }
    }

    #[test]
    fn a_method_that_is_not_served_has_no_standard_series() {
        let text = render(
            "/not.a.Service/AtAll",
            || {
                let mut response = http::Response::new(Frames(VecDeque::new()));
                response
                    .headers_mut()
                    .insert("grpc-status", "12".parse().unwrap());
                response
            },
            |service, request| drop(call(service, request)),
        );
        assert!(!text.contains("grpc_server_"), "{text}");
        assert_eq!(
            line(&text, "api_requests_total"),
            [r#"api_requests_total{method="unknown",code="UNIMPLEMENTED"} 1"#]
        );
    }

    #[test]
    fn the_rpc_type_comes_from_the_descriptor() {
        let kind = |path| method_info(path).unwrap().kind;
        assert_eq!(kind(LOGIN), RpcType::Unary);
        assert_eq!(
            kind("/fileorganizer.v1.FileService/UploadFile"),
            RpcType::ClientStream
        );
        assert_eq!(
            kind("/fileorganizer.v1.OperationService/WatchOperation"),
            RpcType::ServerStream
        );
        assert_eq!(
            kind("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            RpcType::BidiStream
        );
        let info = method_info("/grpc.health.v1.Health/Watch").unwrap();
        assert_eq!(
            (info.service, info.method),
            ("grpc.health.v1.Health", "Watch")
        );
        // Every code has Go's name, distinct from the others.
        let codes: HashSet<&str> = (0..17).map(|c| go_code_name(Code::from_i32(c))).collect();
        assert_eq!(codes.len(), 17);
        assert_eq!(go_code_name(Code::Cancelled), "Canceled");
    }

    #[test]
    fn a_trailers_only_response_is_recorded_from_its_headers() {
        let text = render(
            "/fileorganizer.v1.AuthService/GetCurrentUser",
            || {
                let mut response = http::Response::new(Frames(VecDeque::new()));
                response
                    .headers_mut()
                    .insert("grpc-status", "16".parse().unwrap());
                response
            },
            |service, request| drop(call(service, request)),
        );
        assert_eq!(
            line(&text, "api_requests_total"),
            [
                r#"api_requests_total{method="/fileorganizer.v1.AuthService/GetCurrentUser",code="UNAUTHENTICATED"} 1"#
            ]
        );
    }

    #[test]
    fn a_body_dropped_before_its_end_is_cancelled() {
        let text = render(
            "/grpc.health.v1.Health/Watch",
            || {
                http::Response::new(Frames(VecDeque::from([
                    Frame::data(Bytes::from_static(b"\0\0\0\0\x02\x08\x01")),
                    trailers(0),
                ])))
            },
            |service, request| {
                let mut response = call(service, request);
                let waker = std::task::Waker::noop();
                let mut cx = Context::from_waker(waker);
                let _ = Pin::new(response.body_mut()).poll_frame(&mut cx);
                drop(response);
            },
        );
        assert_eq!(
            line(&text, "api_requests_total"),
            [r#"api_requests_total{method="/grpc.health.v1.Health/Watch",code="CANCELLED"} 1"#]
        );
    }

    #[test]
    fn a_future_dropped_before_the_response_is_cancelled() {
        let text = render(
            "/not.a.Service/AtAll",
            || http::Response::new(Frames(VecDeque::new())),
            |mut service, request| {
                let future = service.call(request);
                drop(future);
            },
        );
        assert_eq!(
            line(&text, "api_requests_total"),
            [r#"api_requests_total{method="unknown",code="CANCELLED"} 1"#]
        );
    }

    #[test]
    fn only_served_methods_get_their_own_label() {
        assert_eq!(method_label(LOGIN), LOGIN);
        assert_eq!(
            method_label("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        );
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check"),
            "/grpc.health.v1.Health/Check"
        );
        assert_eq!(
            method_label("/fileorganizer.v1.AuthService/Nope"),
            "unknown"
        );
        assert_eq!(method_label("/metrics"), "unknown");
    }
}
