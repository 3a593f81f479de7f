//! Closes connections to the gRPC port that have had no call in flight for
//! `IDLE_CONNECTION_TIMEOUT_SECS`.
//!
//! tonic 0.14 (and hyper under it) has no idle timeout: HTTP/2 keepalive pings
//! only notice a peer that stopped answering, and `max_connection_age` would
//! also cut healthy long-lived streams. An idle connection is one that costs
//! a socket, buffers and a task while serving nothing: a client that connected
//! and went quiet, or one that never said a word (the probe of issue 18 held
//! hundreds). "Idle" is counted in calls, not bytes, because HTTP/2 keepalive
//! pings are bytes too, and a WatchOperation stream may stay quiet for a long
//! time while it is very much in use.
//!
//! Two halves share one [`Activity`] per connection:
//! - [`IdleClosing`] wraps the accepted `TcpStream`. On every read it also
//!   polls a timer; when the timer fires while no call is in flight and none
//!   has been for the timeout, the read reports end of stream, so hyper ends
//!   the connection as if the client had closed it (no call is cut: there is
//!   none) and the socket is closed. It hands tonic an [`IdleConnectInfo`]
//!   that carries the `Activity` along with the usual `TcpConnectInfo`.
//! - [`ActivityLayer`], the outermost layer, counts each call from its
//!   request until its response body is dropped (a stream's end, or its
//!   reset), and puts the plain `TcpConnectInfo` back into the request's
//!   extensions for the layers that read the client address.
//!
//! hyper keeps a read pending on a connection that waits for requests (HTTP/1
//! keep-alive, HTTP/2 always), so the timer is polled whenever it matters.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tower::{Layer, Service};

/// The calls in flight on one connection, and since when there has been none.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<ActivityState>,
}

#[derive(Debug)]
struct ActivityState {
    in_flight: usize,
    idle_since: Instant,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
            }),
        })
    }

    /// Counts a call until the returned guard is dropped.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.state.lock().expect("activity lock").in_flight += 1;
        InFlight(self.clone())
    }

    /// When the connection may be closed if nothing happens until then, or
    /// None while a call is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        let state = self.state.lock().expect("activity lock");
        (state.in_flight == 0).then(|| state.idle_since + timeout)
    }
}

/// One call in flight; dropping it ends the call's share of the activity.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().expect("activity lock");
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// What tonic puts into each request's extensions for an [`IdleClosing`]
/// connection; [`ActivityLayer`] takes the activity and restores `tcp`.
#[derive(Clone, Debug)]
pub struct IdleConnectInfo {
    pub tcp: TcpConnectInfo,
    activity: Arc<Activity>,
}

/// An accepted connection that reads as closed once idle for `timeout`.
pub struct IdleClosing {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// None: never closed for idleness.
    timeout: Option<Duration>,
    timer: Pin<Box<Sleep>>,
    closed: bool,
}

impl IdleClosing {
    pub fn new(inner: TcpStream, timeout: Option<Duration>) -> Self {
        let first = Instant::now() + timeout.unwrap_or(Duration::from_secs(86_400));
        IdleClosing {
            inner,
            activity: Activity::new(),
            timeout,
            timer: Box::pin(tokio::time::sleep_until(first)),
            closed: false,
        }
    }

    /// True once the connection has been idle for the timeout. Otherwise
    /// re-arms the timer for the earliest moment that could become true
    /// (while calls are in flight, one timeout from now: checking again then
    /// costs one wake-up per timeout per busy connection).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match self.activity.idle_deadline(timeout) {
                Some(deadline) if deadline <= now => return true,
                Some(deadline) => self.timer.as_mut().reset(deadline),
                None => self.timer.as_mut().reset(now + timeout),
            }
        }
        false
    }
}

impl AsyncRead for IdleClosing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.closed || self.idle_expired(cx) {
            if !self.closed {
                tracing::debug!(peer = ?self.inner.peer_addr().ok(), "closing an idle connection");
            }
            self.closed = true;
            // End of stream: hyper ends the connection and drops the socket.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for IdleClosing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for IdleClosing {
    type ConnectInfo = IdleConnectInfo;

    fn connect_info(&self) -> IdleConnectInfo {
        IdleConnectInfo {
            tcp: self.inner.connect_info(),
            activity: self.activity.clone(),
        }
    }
}

/// Counts every call of a connection (see the module doc). Outermost.
#[derive(Clone, Copy, Debug, Default)]
pub struct ActivityLayer;

impl<S> Layer<S> for ActivityLayer {
    type Service = ActivityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ActivityService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct ActivityService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ActivityService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Counted<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let in_flight = match request.extensions_mut().remove::<IdleConnectInfo>() {
            Some(info) => {
                request.extensions_mut().insert(info.tcp);
                Some(info.activity.begin())
            }
            None => None,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Counted {
                inner: body,
                _in_flight: in_flight,
            }))
        })
    }
}

pin_project! {
    /// A response body that counts as a call in flight until it is dropped.
    pub struct Counted<B> {
        #[pin]
        inner: B,
        _in_flight: Option<InFlight>,
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
