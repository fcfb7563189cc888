//! The proxy listener: accepts HTTP/1.1 and h2c, decodes MCP requests, forwards to the upstream,
//! and hands the response to a tapped body. The tap never fails traffic it cannot decode.

mod actions_api;
mod awaiting;
pub(crate) mod body;
mod deadline;
mod dedicated;
pub(crate) mod exchange;
pub(crate) mod forward;
mod handle;
pub(crate) mod jwks;
pub(crate) mod limits;
mod listener;
mod oauth;
mod record;
mod request;
pub(crate) mod route;
mod trace;
pub(crate) mod workers;

pub(crate) use handle::handle;

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Uri;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use self::route::Routes;
use crate::audit::Auditor;
use crate::config::{Config, Limits};
use crate::http_client::UpstreamClients;
use crate::metrics::{Limit, Metrics};
use crate::session::SessionTracker;

/// What one client connection's requests share: its address, once as a header value, and the
/// last credential it presented.
pub(crate) struct Connection {
    pub peer: std::net::SocketAddr,
    pub forwarded_for: http::HeaderValue,
    /// The client reached the tap over TLS.
    pub tls: bool,
    pub credentials: std::sync::Mutex<crate::identity::CredentialCache>,
    /// Its own upstream connection, for an HTTP/1.x client of a plain-HTTP upstream.
    upstream: dedicated::Dedicated,
    /// `upstream.response_timeout` of an HTTP/1.x client's exchanges, which come one at a time.
    response_deadline: std::sync::Mutex<deadline::LazyDeadline>,
}

impl Connection {
    pub(crate) fn new(peer: std::net::SocketAddr, tls: bool) -> Self {
        Self {
            tls,
            peer,
            forwarded_for: forward::forwarded_for(peer.ip()),
            credentials: std::sync::Mutex::default(),
            upstream: dedicated::Dedicated::default(),
            response_deadline: std::sync::Mutex::default(),
        }
    }
}

/// The parts of the tap the app builds and the request path uses.
pub(crate) struct Parts {
    pub auditor: Arc<Auditor>,
    pub checklist: Arc<crate::checklist::Checklist>,
    pub sessions: Arc<SessionTracker>,
}

/// Everything the request path shares.
pub(crate) struct Shared {
    pub config: ArcSwap<Config>,
    /// Set when the tap is draining before it stops (`shutdown_drain_delay`): `/readyz` fails
    /// and every HTTP/1 response closes its connection.
    pub draining: std::sync::atomic::AtomicBool,
    /// Turns true when the drain starts: HTTP/2 connections send their GOAWAY.
    drain_started: tokio::sync::watch::Sender<bool>,
    pub metrics: Arc<Metrics>,
    pub routes: Routes,
    pub sessions: Arc<SessionTracker>,
    /// Rebuilt when a reload changes connect or pool settings.
    pub client: ArcSwap<UpstreamClients>,
    pub upstream: Uri,
    /// The `Host` header upstream requests carry.
    pub upstream_host: Option<http::HeaderValue>,
    /// `server.address` and `server.port` of the upstream hop's metric.
    pub upstream_address: (&'static str, &'static str),
    pub auditor: Arc<Auditor>,
    /// Bytes held for reading MCP request bodies, over all requests.
    pub budget: Arc<limits::Budget>,
    /// Permits for client connections (`limits.max_connections`).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// Set when OTLP traces are on.
    pub tracer: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracer>,
    /// Token age and least privilege, kept across restarts.
    pub checklist: Arc<crate::checklist::Checklist>,
    /// TLS on the MCP listener (`tls`), HTTP/2 offered by ALPN.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Shared {
    /// The request path's view of the parts the app built (`app::run`), with what only the
    /// proxy needs: routes, the upstream clients and address, limits, the listener's TLS.
    pub(crate) fn new(config: Config, metrics: Arc<Metrics>, parts: Parts) -> anyhow::Result<Self> {
        let Parts { auditor, checklist, sessions } = parts;
        let client = UpstreamClients::new(&config.upstream)?;
        let upstream: Uri = config.upstream.url.parse()?;
        let tls = match &config.tls {
            Some(t) => {
                let tls = crate::tls::ServerTls {
                    cert_file: t.cert_file.clone(),
                    key_file: t.key_file.clone(),
                    min_version: t.min_version,
                    client_auth: crate::config::ClientAuth::NoClientCert,
                    client_ca_file: None,
                    listener: crate::metrics::Listener::Mcp,
                };
                let config =
                    tls.server_config(metrics.clone(), &crate::tls::ALPN_H2_HTTP1).map_err(anyhow::Error::msg)?;
                Some(tokio_rustls::TlsAcceptor::from(config))
            }
            None => None,
        };
        Ok(Self {
            tls,
            routes: Routes::new(&config),
            sessions,
            client: ArcSwap::from_pointee(client),
            budget: Arc::default(),
            connections: Arc::new(tokio::sync::Semaphore::new(config.limits.max_connections)),
            upstream_host: forward::upstream_host(&upstream),
            upstream_address: forward::server_address(&upstream),
            upstream,
            metrics,
            config: ArcSwap::from_pointee(config),
            auditor,
            tracer: std::sync::OnceLock::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            drain_started: tokio::sync::watch::Sender::new(false),
            checklist,
        })
    }

    /// The drain before a stop starts: `/readyz` fails, every HTTP/1 answer closes its
    /// connection, and every HTTP/2 connection gets a GOAWAY (its client opens its next streams
    /// elsewhere; the streams in flight finish).
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::Release);
        self.drain_started.send_replace(true);
    }
}

/// The HTTP/1.1 and HTTP/2 settings every client connection gets from `limits`.
fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // `HeaderDeadline` times request heads: hyper's own timer cost a timer per request.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_h2_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// Answers a connection over `limits.max_connections` with 503 and closes it.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let answer = limits::connection_refused_bytes();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
}

/// Accepts connections until `stop` turns true and hands each to a proxy worker
/// ([`workers`]); then in-flight exchanges may finish within `shutdown_grace_period`.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let workers = workers::Workers::start(&shared, shared.config.load().worker_threads());
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
            () = stopped(&mut stop) => break,
        };
        dispatch(&shared, &workers, stream, peer);
    }
    // No new handshake; those under way complete and, with every connection the kernel already
    // completed, are served: closing the listener under them would reset requests their clients
    // already sent ([`listener`]).
    listener::refuse_new_handshakes(&listener);
    let until = tokio::time::Instant::now() + listener::HANDSHAKES_UNDER_WAY;
    while let Ok(Ok((stream, peer))) = tokio::time::timeout_at(until, listener.accept()).await {
        dispatch(&shared, &workers, stream, peer);
    }
    let taken = |cx: &mut std::task::Context<'_>| std::task::Poll::Ready(listener.poll_accept(cx));
    while let std::task::Poll::Ready(Ok((stream, peer))) = std::future::poll_fn(taken).await {
        dispatch(&shared, &workers, stream, peer);
    }
    drop(listener);
    workers.finish().await;
}

/// How long a stopping tap that drained keeps idle keep-alive connections open at most, for
/// their clients to use them once more: closing one under a request its client just sent would
/// fail that request, and a client (a proxy) that still routes here uses its idle connections
/// within moments, each answer closing its connection.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// After a drain, waits until this worker's connections have all closed on their own, or
/// `LINGER` (at most the drain) has passed.
async fn linger(shared: &Shared, load: &std::sync::atomic::AtomicUsize) {
    if !shared.draining.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let until = tokio::time::Instant::now() + LINGER.min(shared.config.load().shutdown_drain_delay);
    while load.load(std::sync::atomic::Ordering::Relaxed) > 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Hands an accepted connection to a worker, or refuses it over `limits.max_connections`.
fn dispatch(shared: &Shared, workers: &workers::Workers, stream: tokio::net::TcpStream, peer: std::net::SocketAddr) {
    let _ = stream.set_nodelay(true);
    let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
        shared.metrics.record_refused(Limit::Connections);
        tokio::spawn(refuse_connection(stream));
        return;
    };
    match stream.into_std() {
        Ok(stream) => workers.dispatch(workers::Accepted { stream, peer, permit }),
        Err(e) => tracing::warn!(error = %e, %peer, "cannot hand a connection to a worker; closed"),
    }
}

/// Serves one client connection, plain or TLS, until it closes or the shutdown grace ends.
async fn serve_connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    shared: &Arc<Shared>,
    limits: &Limits,
    close: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = deadline::HeaderDeadline::new(stream, limits.header_read_timeout);
    let (activity, expired) = (io.activity.clone(), io.expired.clone());
    let service_shared = shared.clone();
    let connection = Arc::new(Connection::new(peer, shared.tls.is_some()));
    let http2 = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let service_http2 = http2.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let open = activity.begin(req.version());
        let (shared, connection) = (service_shared.clone(), connection.clone());
        let version = req.version();
        if version == http::Version::HTTP_2 {
            service_http2.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        async move {
            let drain = shared.clone();
            let mut resp = handle(shared, req, &connection).await;
            // Draining: the client learns with this answer that the connection ends after it,
            // so it never sends another request on a connection the tap is about to close.
            if drain.draining.load(std::sync::atomic::Ordering::Acquire) && version < http::Version::HTTP_2 {
                resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp.map(|body| deadline::OpenBody { body, _open: open }))
        }
    });
    let conn = connection_builder(limits).serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
    let result = until_closed(conn, shared.drain_started.subscribe(), close, &http2).await;
    // The header deadline is the tap's own (`HeaderDeadline`); hyper times nothing here.
    if expired.load(std::sync::atomic::Ordering::Acquire) {
        shared.metrics.record_refused(Limit::HeaderReadTimeout);
    } else if let Err(e) = result {
        tracing::debug!(error = %e, %peer, "client connection ended with an error");
    }
}

/// Serves a connection to its end. When the drain starts, an HTTP/2 connection is told GOAWAY
/// at once; an HTTP/1 one is left to the `Connection: close` of its next answer (closing it idle
/// could reset a request its client is sending). When its worker closes, after the drain, the
/// connection shuts down gracefully: idle, it closes; busy, it finishes first.
async fn until_closed<C: hyper_util::server::graceful::GracefulConnection>(
    conn: C,
    mut drain: tokio::sync::watch::Receiver<bool>,
    mut close: tokio::sync::watch::Receiver<bool>,
    http2: &std::sync::atomic::AtomicBool,
) -> Result<(), C::Error> {
    let mut conn = std::pin::pin!(conn);
    let (mut told_goaway, mut closing) = (false, false);
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            Ok(()) = async { drain.wait_for(|d| *d).await.map(drop) }, if !told_goaway => {
                told_goaway = true;
                if http2.load(std::sync::atomic::Ordering::Relaxed) {
                    conn.as_mut().graceful_shutdown();
                }
            }
            Ok(()) = async { close.wait_for(|c| *c).await.map(drop) }, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One worker's event loop: serves the connections it is handed until the accept loop stops,
/// then lets in-flight exchanges (SSE streams included) finish within the grace period.
async fn serve_connections(
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<workers::Accepted>,
    shared: Arc<Shared>,
    load: Arc<std::sync::atomic::AtomicUsize>,
) {
    let close = tokio::sync::watch::Sender::new(false);
    while let Some(workers::Accepted { stream, peer, permit }) = inbox.recv().await {
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                load.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, %peer, "a worker cannot watch a connection; closed");
                continue;
            }
        };
        let (shared, load, closing) = (shared.clone(), load.clone(), close.subscribe());
        tokio::spawn(async move {
            shared.metrics.add_connections(1);
            let limits = shared.config.load().limits.clone();
            match shared.tls.clone() {
                None => serve_connection(stream, peer, &shared, &limits, closing).await,
                Some(acceptor) => {
                    // The handshake is part of the request head: it gets the same deadline.
                    let deadline = limits.header_read_timeout;
                    if let Some(tls) = crate::tls::accept(
                        &acceptor,
                        stream,
                        deadline,
                        crate::metrics::Listener::Mcp,
                        peer,
                        &shared.metrics,
                    )
                    .await
                    {
                        serve_connection(tls, peer, &shared, &limits, closing).await;
                    }
                }
            }
            shared.metrics.add_connections(-1);
            load.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            drop(permit);
        });
    }
    linger(&shared, &load).await;
    close.send_replace(true);
    let grace = shared.config.load().shutdown_grace_period;
    let until = tokio::time::Instant::now() + grace;
    while load.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        if tokio::time::Instant::now() >= until {
            tracing::warn!(grace = ?grace, "exchanges still open after the shutdown grace period were cut");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
