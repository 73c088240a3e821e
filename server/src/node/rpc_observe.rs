//! `ObserveLayer`: the tower layer around the node's gRPC server that gives
//! every call a tracing span and records it in [`RpcMetrics`].
//!
//! The span, `rpc{method=/ferry.v1.Publisher/Publish peer=IP:PORT}`, is
//! entered while the handler runs and while the response body is polled
//! (a stream's messages), so handler logs, and the spans handlers open
//! (`#[instrument]`), sit inside it.
//!
//! The status code of a call is where gRPC puts it: in the response
//! headers when the call fails before any message (a "trailers-only"
//! response: INVALID_ARGUMENT from a handler, UNIMPLEMENTED for an unknown
//! path), otherwise in the trailers after the last message. A call whose
//! response is dropped before either (the client reset the stream or the
//! connection ended) is CANCELLED.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, Request, Response};
use tonic::codegen::Service;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Code;
use tower_layer::Layer;
use tracing::Instrument;

use super::rpc_metrics::{code_name, MethodId, RpcMetrics};

/// Wraps a gRPC server's routes; see the module docs.
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    metrics: Arc<RpcMetrics>,
}

impl ObserveLayer {
    pub fn new(metrics: Arc<RpcMetrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed { inner, metrics: Arc::clone(&self.metrics) }
    }
}

#[derive(Debug, Clone)]
pub struct Observed<S> {
    inner: S,
    metrics: Arc<RpcMetrics>,
}

impl<S> Service<Request<Body>> for Observed<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let span = tracing::info_span!("rpc", method = path, peer = tracing::field::Empty);
        // Behind TLS the connection's info is wrapped once more.
        let peer = request.extensions().get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr).or_else(|| {
            let tls = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?;
            tls.get_ref().remote_addr()
        });
        if let Some(peer) = peer {
            span.record("peer", tracing::field::display(peer));
        }
        let call = Call::start(Arc::clone(&self.metrics), self.metrics.method(path), span.clone());
        let response = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            let mut call = call;
            match response.instrument(span.clone()).await {
                Ok(response) => {
                    call.code = grpc_status(response.headers());
                    Ok(response.map(|body| Body::new(ObservedBody { inner: body, call: Some(call), span })))
                }
                Err(error) => {
                    call.code = Some(Code::Unknown);
                    Err(error)
                }
            }
        })
    }
}

/// A call in flight: recorded once, when it ends or is dropped.
struct Call {
    metrics: Arc<RpcMetrics>,
    method: MethodId,
    started: Instant,
    /// The status, once the response carried it.
    code: Option<Code>,
    span: tracing::Span,
}

impl Call {
    fn start(metrics: Arc<RpcMetrics>, method: MethodId, span: tracing::Span) -> Self {
        metrics.stream_started(method);
        Self { metrics, method, started: Instant::now(), code: None, span }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(Code::Cancelled);
        let elapsed = self.started.elapsed();
        self.metrics.finished(self.method, code, elapsed);
        // An access log, for `FERRY_LOG=debug`.
        tracing::debug!(parent: &self.span, code = code_name(code), seconds = elapsed.as_secs_f64(), "rpc ended");
    }
}

/// A response body that ends its call when its trailers pass (or it is
/// dropped), polled inside the call's span.
struct ObservedBody {
    inner: Body,
    /// Taken when the call is recorded.
    call: Option<Call>,
    span: tracing::Span,
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let polled = {
            let _entered = this.span.enter();
            Pin::new(&mut this.inner).poll_frame(cx)
        };
        // `Some(code)` once the call is over, the code `None` when the
        // response does not say.
        let ended = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(grpc_status),
            // The stream is reset, which a client reads as INTERNAL.
            Poll::Ready(Some(Err(_))) => Some(Some(Code::Internal)),
            Poll::Ready(None) => Some(None),
            Poll::Pending => None,
        };
        if let Some(code) = ended {
            if let Some(mut call) = this.call.take() {
                call.code = code.or(call.code).or(Some(Code::Unknown));
                drop(call);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `grpc-status` in `headers`, if any.
fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(Code::from_i32(value))
}
