//! The one HTTP client of the tap: a pooled HTTP(S) client (rustls, system roots plus an optional
//! CA file) and the request body it sends. The proxy forwards through it; the OTLP exporter, the
//! probe and readiness checks use it too, so none of them needs the proxy.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::Upstream;

pub(crate) type UpstreamClient = Client<Connector, UpstreamBody>;
type Connector = HttpsConnector<HttpConnector>;

/// How the tap reaches its upstream: one TLS connector and the pool settings. Each proxy worker
/// thread keeps a pool of its own built from it ([`UpstreamClients::with_worker_pool`]), so an
/// exchange and its upstream connection stay on one thread; the tap's own requests (readiness,
/// JWKS) share [`UpstreamClients::shared`]. A reload that changes `upstream` builds a new one.
pub(crate) struct UpstreamClients {
    connector: Connector,
    /// The TCP half of `connector`, for the proxy's own connections to a plain-HTTP upstream.
    pub tcp: HttpConnector,
    pub url: http::Uri,
    cfg: Upstream,
    pub shared: UpstreamClient,
}

impl UpstreamClients {
    /// Fails on an unreadable CA file.
    pub(crate) fn new(cfg: &Upstream) -> anyhow::Result<Self> {
        let (connector, tcp) = build_connector(cfg)?;
        let shared = pool(cfg, connector.clone());
        let url: http::Uri = cfg.url.parse()?;
        Ok(Self { connector, tcp, url, cfg: cfg.clone(), shared })
    }

    /// The upstream is `http://` (no TLS, so HTTP/1.1 on every connection).
    pub(crate) fn plain_http(&self) -> bool {
        self.url.scheme() == Some(&http::uri::Scheme::HTTP)
    }

    /// Runs `f` with this thread's pool, built on first use and again after a reload.
    pub(crate) fn with_worker_pool<R>(self: &Arc<Self>, f: impl FnOnce(&UpstreamClient) -> R) -> R {
        thread_local! {
            static POOL: std::cell::RefCell<Option<(Arc<UpstreamClients>, UpstreamClient)>> =
                const { std::cell::RefCell::new(None) };
        }
        POOL.with_borrow_mut(|held| match held {
            Some((from, client)) if Arc::ptr_eq(from, self) => f(client),
            _ => {
                let client = pool(&self.cfg, self.connector.clone());
                let r = f(&client);
                *held = Some((self.clone(), client));
                r
            }
        })
    }
}

/// Builds a pooled client on its own (the probe and tests). Fails on an unreadable CA file.
pub(crate) fn build_client(cfg: &Upstream) -> anyhow::Result<UpstreamClient> {
    Ok(pool(cfg, build_connector(cfg)?.0))
}

/// A TLS client trusting the system's roots and, when given, the PEM certificates of `ca_file`
/// (`key` names the config key in errors).
pub(crate) fn client_tls(ca_file: Option<&std::path::Path>, key: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| anyhow::anyhow!("{key} {}: cannot read PEM certificates: {e}", path.display()))?;
        if certs.is_empty() {
            anyhow::bail!("{key} {}: holds no PEM certificate", path.display());
        }
        for cert in certs {
            roots.add(cert)?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn build_connector(cfg: &Upstream) -> anyhow::Result<(Connector, HttpConnector)> {
    let tls = client_tls(cfg.ca_file.as_deref(), "upstream.ca_file")?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http.clone());
    Ok((https, http))
}

fn pool(cfg: &Upstream, connector: Connector) -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// A request body on its way upstream.
pub(crate) enum UpstreamBody {
    /// Read whole (an MCP request under the cap) so it could be decoded first.
    Full { data: Option<Bytes>, trailers: Option<HeaderMap> },
    /// Streamed as it arrives; `sent` is told when the last frame went (or the body failed).
    Stream { body: Incoming, sent: Option<tokio::sync::oneshot::Sender<()>> },
}

impl UpstreamBody {
    /// A streamed body, and what resolves once it has been sent whole.
    pub(crate) fn stream(body: Incoming) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (UpstreamBody::Stream { body, sent: Some(tx) }, rx)
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Full { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            UpstreamBody::Stream { body, sent } => {
                let polled = Pin::new(body).poll_frame(cx);
                if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
                    if let Some(tx) = sent.take() {
                        let _ = tx.send(());
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Full { data, trailers } => data.is_none() && trailers.is_none(),
            UpstreamBody::Stream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Full { data, .. } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            UpstreamBody::Stream { body, .. } => body.size_hint(),
        }
    }
}
