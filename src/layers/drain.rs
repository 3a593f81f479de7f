//! Reads the rest of an HTTP/1.1 request body that was answered before it
//! was read, so that the client receives the answer.
//!
//! A call can be answered before its body has arrived: a rate-limit refusal
//! (`rate_limit::UserLimitLayer` answers without reading), an upload
//! refused midway by the byte budget or the quota, any early error. Over
//! HTTP/2 that is harmless (the stream is reset, the connection lives on).
//! Over HTTP/1.1 — grpc-web from a browser — hyper closes the connection
//! when a body it cannot drain cheaply is left unread, and a socket closed
//! with unread bytes in it is reset by the kernel: the client, still
//! sending, sees a connection reset instead of the answer, and loses its
//! status and RetryInfo (the console could not wait out a limit that
//! refused a large upload).
//!
//! So for HTTP/1.x requests the body is handed to the services wrapped in
//! a [`Returned`], which, when dropped before its end, gives the body back
//! to this layer; once the answer is ready, the rest is read and discarded
//! (at most [`DRAIN_BYTES`] and [`DRAIN_TIME`]; beyond that the connection
//! is closed as before), and only then is the answer sent. Outermost but
//! for the connection's activity count, so every early answer is covered.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body as _, Frame, SizeHint};
use prost::bytes::Bytes;
use tokio::sync::oneshot;
use tonic::body::Body;
use tower::{Layer, Service};

/// Most bytes of an unread body read to deliver an early answer.
pub const DRAIN_BYTES: u64 = 1 << 30;
/// Longest time spent reading an unread body to deliver an early answer.
pub const DRAIN_TIME: Duration = Duration::from_secs(60);

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct DrainLayer;

impl<S> Layer<S> for DrainLayer {
    type Service = DrainService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DrainService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct DrainService<S> {
    inner: S,
}

impl<S, ResBody> Service<http::Request<Body>> for DrainService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.version() >= http::Version::HTTP_2 {
            return Box::pin(self.inner.call(request));
        }
        let (back, returned) = oneshot::channel();
        let request = request.map(|body| {
            Body::new(Returned {
                body: Some(body),
                back: Some(back),
            })
        });
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            // Dropped unread by now (the answer is ready): read the rest, so
            // that the client gets to read the answer. A body still in use
            // (its call goes on) is its call's business.
            let mut returned = returned;
            if let Ok(rest) = returned.try_recv() {
                drain(rest).await;
            }
            response
        })
    }
}

/// Reads and discards what is left of `body`, within the bounds.
async fn drain(mut body: Body) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut read = 0u64;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout_at(deadline, frame).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read += data.len() as u64;
                    if read > DRAIN_BYTES {
                        return;
                    }
                }
            }
            // The end, an error, or out of time.
            _ => return,
        }
    }
}

/// A request body that, dropped before its end, is given back to
/// [`DrainService`] to be read to its end.
pub struct Returned {
    body: Option<Body>,
    back: Option<oneshot::Sender<Body>>,
}

impl http_body::Body for Returned {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        match self.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        // Dropping `back` unsent tells the layer there is nothing to read.
        if let (Some(body), Some(back)) = (self.body.take(), self.back.take())
            && !body.is_end_stream()
        {
            let _ = back.send(body);
        }
    }
}
