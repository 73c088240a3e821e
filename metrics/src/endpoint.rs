//! `GET /metrics` over HTTP for Prometheus to scrape.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What renders a scrape: the whole exposition text, computed on each request.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Binds `addr` now (so a bad address fails the start), then serves in the
/// background until the process ends. `program` names the server in the
/// answer to any other path. Returns the bound address.
pub async fn serve(addr: SocketAddr, program: &'static str, render: Render) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let socket = match listener.accept().await {
                Ok((socket, _)) => socket,
                Err(error) => {
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    continue;
                }
            };
            let render = Arc::clone(&render);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    std::future::ready(Ok::<_, Infallible>(respond(&request, program, &render)))
                });
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service);
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "metrics endpoint: connection ended");
                }
            });
        }
    });
    Ok(bound)
}

fn respond<B>(request: &Request<B>, program: &str, render: &Render) -> Response<Full<Bytes>> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, render()),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, format!("{program} serves /metrics only\n")),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
