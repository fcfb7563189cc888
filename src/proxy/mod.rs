//! The proxy listener: accepts HTTP/1.1 and h2c, decodes MCP requests, forwards to the upstream,
//! and hands the response to a tapped body. The tap never fails traffic it cannot decode.

pub mod body;
pub mod exchange;
pub mod forward;
mod handle;
mod record;
mod request;
pub mod route;
mod trace;

pub use handle::handle;

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Uri;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use self::route::Routes;
use crate::audit::Auditor;
use crate::config::Config;
use crate::http_client::{self, UpstreamClient};
use crate::metrics::Metrics;
use crate::session::SessionTracker;

/// Everything the request path shares.
pub struct Shared {
    pub config: ArcSwap<Config>,
    pub metrics: Arc<Metrics>,
    pub routes: Routes,
    pub sessions: Arc<SessionTracker>,
    /// Rebuilt when a reload changes connect or pool settings.
    pub client: ArcSwap<UpstreamClient>,
    pub upstream: Uri,
    pub auditor: Arc<Auditor>,
    /// Set when OTLP traces are on.
    pub tracer: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracer>,
}

impl Shared {
    pub fn new(config: Config, metrics: Arc<Metrics>, auditor: Arc<Auditor>) -> anyhow::Result<Self> {
        let client = http_client::build_client(&config.upstream)?;
        let upstream: Uri = config.upstream.url.parse()?;
        Ok(Self {
            routes: Routes::new(&config),
            sessions: Arc::new(SessionTracker::new(
                metrics.clone(),
                config.sessions.idle_timeout,
                config.sessions.max_tracked,
            )),
            client: ArcSwap::from_pointee(client),
            upstream,
            metrics,
            config: ArcSwap::from_pointee(config),
            auditor,
            tracer: std::sync::OnceLock::new(),
        })
    }
}

/// Accepts connections until `shutdown` resolves; in-flight connections are told to finish.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: impl std::future::Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; continuing");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(shared, req, peer).await) }
        });
        let builder = auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "client connection ended with an error");
            }
        });
    }
    // In-flight exchanges (SSE streams included) may finish within the grace period.
    let grace = shared.config.load().shutdown_grace_period;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?grace, "exchanges still open after the shutdown grace period were cut");
    }
}
