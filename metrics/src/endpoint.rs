//! The HTTP endpoint Prometheus scrapes (`GET /metrics`), and any other
//! page a process serves beside it (`ferryd`'s status page), rendered on
//! each request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What renders a scrape: the whole exposition text, computed on each request.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// What renders a page that waits on something (other nodes, say): its
/// body, or why it cannot be had now (answered 503 Service Unavailable).
pub type RenderLater = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// The Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The paths an endpoint serves, each with its content type and renderer.
pub struct Routes {
    program: &'static str,
    pages: Vec<Page>,
}

struct Page {
    path: &'static str,
    content_type: &'static str,
    render: RenderLater,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").field("program", &self.program).field("paths", &self.paths()).finish()
    }
}

impl Routes {
    /// No paths yet; `program` names the server in the answer to a path it
    /// does not serve.
    pub fn new(program: &'static str) -> Self {
        Self { program, pages: Vec::new() }
    }

    /// `GET /metrics`: the Prometheus text.
    pub fn metrics(self, render: Render) -> Self {
        self.page("/metrics", PROMETHEUS_TEXT, render)
    }

    /// `GET path`, rendered at once.
    pub fn page(self, path: &'static str, content_type: &'static str, render: Render) -> Self {
        let later: RenderLater = Arc::new(move || {
            let body = render();
            Box::pin(std::future::ready(Ok(body)))
        });
        self.page_later(path, content_type, later)
    }

    /// `GET path`, rendered by a future.
    pub fn page_later(mut self, path: &'static str, content_type: &'static str, render: RenderLater) -> Self {
        self.pages.push(Page { path, content_type, render });
        self
    }

    fn paths(&self) -> Vec<&'static str> {
        self.pages.iter().map(|page| page.path).collect()
    }

    async fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let Some(page) = self.pages.iter().find(|page| page.path == request.uri().path()) else {
            let body = format!("{} serves {} only\n", self.program, self.paths().join(", "));
            return reply(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", body);
        };
        if request.method() != Method::GET {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "only GET\n".into());
        }
        match (page.render)().await {
            Ok(body) => reply(StatusCode::OK, page.content_type, body),
            Err(reason) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", format!("{reason}\n")),
        }
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}

/// Serves `GET /metrics` only; see [`serve_routes`].
pub async fn serve(addr: SocketAddr, program: &'static str, render: Render) -> std::io::Result<SocketAddr> {
    serve_routes(addr, Routes::new(program).metrics(render)).await
}

/// Binds `addr` now (so a bad address fails the start), then serves
/// `routes` in the background until the process ends. Returns the bound
/// address.
pub async fn serve_routes(addr: SocketAddr, routes: Routes) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        loop {
            let socket = match listener.accept().await {
                Ok((socket, _)) => socket,
                Err(error) => {
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    continue;
                }
            };
            let routes = Arc::clone(&routes);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let routes = Arc::clone(&routes);
                    async move { Ok::<_, Infallible>(routes.respond(&request).await) }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).expect("a request")
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let bytes = response.into_body().collect().await.expect("a body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("text")
    }

    #[tokio::test]
    async fn each_path_answers_with_its_page_and_content_type_and_others_are_not_found() {
        let later: RenderLater = Arc::new(|| Box::pin(async { Err("no leader".to_owned()) }));
        let routes = Routes::new("test")
            .metrics(Arc::new(|| "up 1\n".to_owned()))
            .page("/", "text/html; charset=utf-8", Arc::new(|| "<p>hi</p>".to_owned()))
            .page_later("/later", "application/json", later);

        let metrics = routes.respond(&get("/metrics")).await;
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(metrics.headers()[hyper::header::CONTENT_TYPE], PROMETHEUS_TEXT);
        assert_eq!(body(metrics).await, "up 1\n");
        let page = routes.respond(&get("/")).await;
        assert_eq!(page.headers()[hyper::header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(body(page).await, "<p>hi</p>");
        let later = routes.respond(&get("/later")).await;
        assert_eq!(later.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(later).await, "no leader\n");
        let missing = routes.respond(&get("/other")).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(missing).await, "test serves /metrics, /, /later only\n");
        let post = Request::builder().method(Method::POST).uri("/metrics").body(()).expect("a request");
        assert_eq!(routes.respond(&post).await.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
