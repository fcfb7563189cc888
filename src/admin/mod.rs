//! The admin listener: `/` (the status page), `/metrics` (Prometheus text), `/healthz` (the tap
//! runs) and `/readyz` (the upstream's readiness endpoint answers 2xx).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use tokio::time::Instant;

mod access;
mod servers;
pub(crate) use access::Access;
use access::Loaded;

use crate::http_client::UpstreamBody;
use crate::proxy::Shared;
use crate::status::page::{self, Upstream};
use crate::status::{History, Snapshot};

const READINESS_TIMEOUT: Duration = Duration::from_secs(2);
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    history: Arc<History>,
    access: Arc<Access>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed; continuing");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let (shared, history, access) = (shared.clone(), history.clone(), access.clone());
        tokio::spawn(async move {
            let loaded = access.current();
            let Some(acceptor) = loaded.acceptor.clone() else {
                return serve_connection(TokioIo::new(stream), shared, history, access, loaded).await;
            };
            let metrics = &shared.metrics;
            if let Some(tls) =
                crate::tls::accept(&acceptor, stream, HANDSHAKE_TIMEOUT, crate::metrics::Listener::Admin, peer, metrics)
                    .await
            {
                serve_connection(TokioIo::new(tls), shared, history, access, loaded).await;
            }
        });
    }
}

/// Serves one admin connection (plain or TLS): basic auth first, then the route, then the web
/// config's response headers.
async fn serve_connection<I>(
    io: I,
    shared: Arc<Shared>,
    history: Arc<History>,
    access: Arc<Access>,
    loaded: Arc<Loaded>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http2 = loaded.http2;
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (shared, history, access, loaded) = (shared.clone(), history.clone(), access.clone(), loaded.clone());
        async move {
            let authorization = req.headers().get(header::AUTHORIZATION);
            let mut resp = match access.check(&loaded, req.uri().path(), authorization).await {
                Ok(()) => route(&shared, &history, req).await,
                Err(_) => {
                    let mut r = text(StatusCode::UNAUTHORIZED, "text/plain", "Unauthorized\n");
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"mcp-tap\""));
                    r
                }
            };
            for (name, value) in &loaded.headers {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if !http2 {
        builder = builder.http1_only();
    }
    let _ = builder.serve_connection(io, service).await;
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r
}

async fn route(shared: &Shared, history: &History, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n");
    }
    match req.uri().path() {
        "/" => status_page(shared, history).await,
        "/metrics" => text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", shared.metrics.render()),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n"),
        "/privileges" => {
            let report = serde_json::to_vec_pretty(&shared.checklist.report()).unwrap_or_default();
            text(StatusCode::OK, "application/json", report)
        }
        "/readyz" if shared.draining.load(std::sync::atomic::Ordering::Acquire) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready: draining before a stop\n")
        }
        "/readyz" => match upstream_ready(shared).await {
            Ok(()) => text(StatusCode::OK, "text/plain", "ready\n"),
            Err(NotReady { client, detail }) => {
                // The address and OS error go to the log; the probe gets the kind of failure.
                tracing::warn!(detail, "readiness check failed: {client}");
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("not ready: {client}\n"))
            }
        },
        _ => {
            text(StatusCode::NOT_FOUND, "text/plain", "not found: try /, /metrics, /privileges, /healthz or /readyz\n")
        }
    }
}

/// The status page, built from the registry now and the snapshots of the last minutes.
async fn status_page(shared: &Shared, history: &History) -> Response<Full<Bytes>> {
    let ready = upstream_ready(shared).await;
    let view = history.view(Snapshot::from_families(&shared.metrics.registry().gather(), Instant::now()));
    let config = shared.config.load();
    let upstream = Upstream { url: &config.upstream.url, not_ready: ready.as_ref().err().map(|e| e.client.as_str()) };
    let report = shared.checklist.report();
    let page = page::render(&view, &upstream, &servers::render(&report), env!("CARGO_PKG_VERSION"));
    let mut r = text(StatusCode::OK, "text/html; charset=utf-8", page);
    // Nothing but this origin, and nothing at all from scripts: the page has none.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"),
    );
    r
}

/// Why the upstream is not ready: what a probe is told, and the detail for the log.
struct NotReady {
    client: String,
    detail: String,
}

/// Asks the upstream's readiness path; any 2xx within the timeout is ready.
async fn upstream_ready(shared: &Shared) -> Result<(), NotReady> {
    let config = shared.config.load();
    let path: http::Uri = config.upstream.readiness_path.parse().map_err(|e| NotReady {
        client: "the readiness path is not a valid path".into(),
        detail: format!("upstream.readiness_path: {e}"),
    })?;
    let uri = crate::proxy::forward::upstream_uri(&shared.upstream, &path);
    let req = Request::get(uri.clone())
        .body(UpstreamBody::Full { data: None, trailers: None })
        .map_err(|e| NotReady { client: "the readiness request cannot be built".into(), detail: e.to_string() })?;
    match tokio::time::timeout(READINESS_TIMEOUT, shared.client.load().shared.request(req)).await {
        Err(_) => Err(NotReady {
            client: format!("the upstream did not answer within {READINESS_TIMEOUT:?}"),
            detail: uri.to_string(),
        }),
        Ok(Err(e)) => {
            let err = crate::proxy::forward::ProxyError::classify(&e, &config.upstream.url);
            Err(NotReady { client: err.client_message().replace("mcp-tap: ", ""), detail: format!("{uri}: {err}") })
        }
        Ok(Ok(resp)) => {
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(NotReady {
                    client: format!("the upstream's readiness endpoint answered {status}"),
                    detail: uri.to_string(),
                })
            }
        }
    }
}
