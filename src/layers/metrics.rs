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

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, ready},
    time::Instant,
};

use ::metrics::{counter, histogram};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prost::{Message, bytes::Buf};
use tonic::Code;
use tower::{Layer, Service};

use crate::infra::observability::{
    API_REQUEST_DURATION_SECONDS, API_REQUEST_SIZE_BYTES, API_REQUESTS_TOTAL,
    API_RESPONSE_SIZE_BYTES,
};

/// Every `/package.Service/Method` this server serves: ours, health and
/// reflection (both versions), read from their descriptor sets once.
static METHODS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    let sets = [
        crate::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = HashSet::new();
    for set in sets {
        let set = prost_types::FileDescriptorSet::decode(set).expect("embedded descriptor set");
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    // Leaked once per method for the process: a fixed set of
                    // label values that never allocate per call.
                    methods.insert(&*Box::leak(path.into_boxed_str()));
                }
            }
        }
    }
    methods
});

/// The method label of a request path.
pub fn method_label(path: &str) -> &'static str {
    METHODS.get(path).copied().unwrap_or("unknown")
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

fn grpc_status(headers: &http::HeaderMap) -> Option<&'static str> {
    headers
        .get("grpc-status")
        .map(|v| code_name(Code::from_bytes(v.as_bytes())))
}

#[derive(Clone, Copy, Default)]
pub struct MetricsLayer;

impl MetricsLayer {
    pub fn new() -> Self {
        MetricsLayer
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = RecordMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordMetrics { inner }
    }
}

#[derive(Clone)]
pub struct RecordMetrics<S> {
    inner: S,
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
        let call = Call {
            method: method_label(request.uri().path()),
            started: Instant::now(),
            received: received.clone(),
            sent: 0,
            recorded: false,
        };
        let request = request.map(|inner| CountingBody { inner, received });
        ResponseFuture {
            inner: self.inner.call(request),
            call: Some(call),
        }
    }
}

/// One call's measurements; records itself when finished or dropped.
struct Call {
    method: &'static str,
    started: Instant,
    received: Arc<AtomicU64>,
    sent: u64,
    recorded: bool,
}

impl Call {
    fn finish(mut self, code: &'static str) {
        self.record(code);
    }

    fn record(&mut self, code: &'static str) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let method = self.method;
        counter!(API_REQUESTS_TOTAL, "method" => method, "code" => code).increment(1);
        histogram!(API_REQUEST_DURATION_SECONDS, "method" => method)
            .record(self.started.elapsed().as_secs_f64());
        histogram!(API_REQUEST_SIZE_BYTES, "method" => method)
            .record(self.received.load(Ordering::Relaxed) as f64);
        histogram!(API_RESPONSE_SIZE_BYTES, "method" => method).record(self.sent as f64);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.record("CANCELLED");
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
                        call.finish("UNKNOWN");
                        None
                    }
                    (call, _) => call,
                };
                Ok(response.map(|inner| MetricsBody { inner, call }))
            }
            Err(error) => {
                if let Some(call) = call {
                    call.finish("INTERNAL");
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
                        call.sent += data.remaining() as u64;
                    }
                } else if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    call.finish(grpc_status(trailers).unwrap_or("UNKNOWN"));
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.take() {
                    call.finish("INTERNAL");
                }
            }
            None => {
                if let Some(call) = this.call.take() {
                    call.finish("UNKNOWN");
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
    /// The request body, counting the data bytes the server reads.
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        received: Arc<AtomicU64>,
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
    use std::{collections::VecDeque, convert::Infallible};

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
