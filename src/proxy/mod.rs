//! The proxy listener: accepts HTTP/1.1 and h2c, decodes MCP requests, forwards to the upstream,
//! and hands the response to a tapped body. The tap never fails traffic it cannot decode.

mod auth;
pub mod body;
pub mod exchange;
pub mod forward;
mod request;
pub mod route;
mod trace;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::time::Instant;

use self::body::{read_capped, ClientBody, ReadBody, UpstreamBody};
use self::exchange::{Caller, Exchange, Pending, RequestInfo, SessionRef};
use self::forward::ProxyError;
use self::route::{RouteMatch, Routes, NON_MCP};
use crate::audit::identity::Credential;
use crate::audit::Auditor;
use crate::config::Config;
use crate::http_client::{self, UpstreamClient};
use crate::mcp::jsonrpc::{self, Message};
use crate::mcp::names::{protocol_version_label, DEFAULT_PROTOCOL_VERSION};
use crate::metrics::{DecodeErrorKind, Metrics, SessionEnd, UnparsedReason};
use crate::session::{ClientKey, SessionTracker};

/// Everything the request path shares.
pub struct Shared {
    pub config: ArcSwap<Config>,
    pub metrics: Arc<Metrics>,
    pub routes: Routes,
    pub sessions: SessionTracker,
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
            sessions: SessionTracker::new(metrics.clone(), config.sessions.idle_timeout, config.sessions.max_tracked),
            client: ArcSwap::from_pointee(client),
            upstream,
            metrics,
            config: ArcSwap::from_pointee(config),
            auditor,
            tracer: std::sync::OnceLock::new(),
        })
    }
}

/// Who sent a request, as the audit may record it. Read before the forwarding headers change.
fn caller(shared: &Shared, parts: &http::request::Parts, peer: SocketAddr, config: &Config) -> Caller {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let mut source = peer.ip();
    if config.audit.source_from_forwarded_for {
        // The rightmost address is the one the trusted proxy in front of the tap saw.
        if let Some(ip) =
            header("x-forwarded-for").and_then(|v| v.rsplit(',').next()).and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            source = ip;
        }
    }
    Caller {
        credential: shared.auditor.credential(parts.headers.get(http::header::AUTHORIZATION)),
        source,
        user_agent: header("user-agent").map(|s| s.chars().take(config.audit.max_user_agent).collect()),
        request_id: header("x-request-id").map(|s| s.chars().take(128).collect()),
        trace_id: header("traceparent").and_then(|t| t.split('-').nth(1)).filter(|t| t.len() == 32).map(str::to_string),
        http_method: parts.method.clone(),
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

fn http_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_2 => "2",
        Version::HTTP_10 => "1.0",
        _ => "1.1",
    }
}

/// Handles one request: never fails; upstream problems become 502/504 JSON-RPC errors.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>, peer: SocketAddr) -> Response<ClientBody> {
    let started = Instant::now();
    let config = shared.config.load_full();
    let route = shared.routes.match_path(req.uri().path());
    let version = http_version(req.version());
    let (mut parts, body) = req.into_parts();

    let mut messages: Vec<Message> = Vec::new();
    let mut batch = false;
    let upstream_body = if route.is_mcp() && parts.method == Method::POST {
        let declared =
            parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > config.decode.max_request_bytes as u64) {
            shared.metrics.record_unparsed(UnparsedReason::RequestTooLarge);
            UpstreamBody::Stream(body)
        } else {
            match read_capped(body, config.decode.max_request_bytes).await {
                Ok(ReadBody::Whole(bytes, trailers)) => {
                    batch = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
                    match jsonrpc::decode(&bytes, config.decode.max_batch) {
                        Ok(m) => messages = m,
                        Err(jsonrpc::DecodeError::Malformed) => {
                            shared.metrics.record_decode_error(DecodeErrorKind::RequestJson)
                        }
                        Err(jsonrpc::DecodeError::BatchTooLarge) => {
                            shared.metrics.record_unparsed(UnparsedReason::BatchTooLarge)
                        }
                    }
                    UpstreamBody::Full { data: Some(bytes), trailers }
                }
                Ok(ReadBody::TooLarge(prefix, rest)) => {
                    shared.metrics.record_unparsed(UnparsedReason::RequestTooLarge);
                    UpstreamBody::Prefixed { prefix: Some(prefix), rest }
                }
                Err(e) => {
                    // The client went away while sending; nobody is left to answer.
                    tracing::debug!(error = %e, %peer, "client aborted its request body");
                    let mut resp = Response::new(ClientBody::own(Bytes::new()));
                    *resp.status_mut() = StatusCode::BAD_REQUEST;
                    return resp;
                }
            }
        }
    } else {
        UpstreamBody::Stream(body)
    };
    let body_read = Instant::now();

    let caller = caller(&shared, &parts, peer, &config);
    let mut request_info = route_request_info(&shared, &route, &parts, &messages, caller, started, version);
    let ids: Vec<_> = request_info.pending.iter().filter(|p| p.id.is_some()).map(|p| p.id.clone()).collect();

    let uri = forward::upstream_uri(&shared.upstream, &parts.uri);
    forward::upstream_headers(&mut parts.headers, &parts.uri, &shared.upstream, peer, config.forwarded_headers.enabled);
    trace::start(&shared, &mut parts.headers, &messages, &mut request_info);
    let method = parts.method.clone();
    let session_id = request_info.session.clone();
    let mut upstream_req = Request::from_parts(parts, upstream_body);
    *upstream_req.uri_mut() = uri;
    *upstream_req.version_mut() = Version::HTTP_11;

    let sent = Instant::now();
    let timeout = config.upstream.response_timeout;
    let result = match tokio::time::timeout(timeout, shared.client.load().request(upstream_req)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => Err(ProxyError::classify(&e, &config.upstream.url)),
        Err(_) => Err(ProxyError::Timeout { upstream: config.upstream.url.clone(), timeout }),
    };
    let headers_at = Instant::now();

    let resp = match result {
        Ok(resp) => resp,
        Err(err) => return upstream_failure(&shared, &route, request_info, err, &method, &ids, batch),
    };
    let status = resp.status().as_u16();
    let route_state = shared.routes.settle(&route, status, &shared.metrics);
    if let (RouteMatch::Candidate(_), Some(state)) = (&route, &route_state) {
        shared.auditor.preinit_route(&state.label);
    }
    let label = route_state.as_ref().map_or(NON_MCP, |r| &*r.label).to_string();
    let (mut resp_parts, resp_body) = resp.into_parts();
    forward::strip_hop_by_hop(&mut resp_parts.headers);

    if let (Some(SessionRef::Header(id)), Some(_)) = (&session_id, &route_state) {
        if status == 404 {
            shared.sessions.end_header(&label, id, SessionEnd::Expired);
        } else if method == Method::DELETE && (200..300).contains(&status) {
            shared.sessions.end_header(&label, id, SessionEnd::Delete);
        }
    }
    let exchange =
        route_state.map(|r| Box::new(Exchange::new(shared.clone(), r, request_info, status, &resp_parts.headers)));
    shared.metrics.record_http_exchange(&label, &method, status);
    let body = ClientBody::Tapped { inner: resp_body, exchange };
    let response = Response::from_parts(resp_parts, body);
    shared.metrics.record_overhead(&label, (sent - body_read) + headers_at.elapsed());
    response
}

/// What the request side knows: pending operations, session and protocol version.
fn route_request_info(
    shared: &Shared,
    route: &RouteMatch,
    parts: &http::request::Parts,
    messages: &[Message],
    caller: Caller,
    started: Instant,
    http_version: &'static str,
) -> RequestInfo {
    let pending: Vec<Pending> = RequestInfo::pending_from(messages);
    let client_name =
        messages.iter().find(|m| m.method.as_deref() == Some("initialize")).and_then(|m| m.client_name.clone());
    let header_version =
        parts.headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok()).map(protocol_version_label);
    let mut session = None;
    let mut protocol_version = header_version;
    if let Some(state) = shared.routes.provisional(route).filter(|_| route.is_mcp()) {
        let session_header = parts.headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
        if let Some(id) = session_header.filter(|s| s.len() <= 256) {
            if let Some(v) = shared.sessions.touch_header(&state.label, id) {
                protocol_version = Some(v);
            }
            session = Some(SessionRef::Header(id.into()));
        } else {
            let credential = match &caller.credential {
                Credential::Token { fingerprint, .. } => fingerprint.short(),
                Credential::Malformed => 1,
                Credential::Missing => 0,
            };
            let key = ClientKey { route: state.label.clone(), credential, source: caller.source };
            if let Some(v) = shared.sessions.touch_inferred(&key) {
                protocol_version = protocol_version.or(Some(v));
            }
            session = Some(SessionRef::Inferred(key));
        }
    }
    RequestInfo {
        started,
        http_version,
        protocol_version: protocol_version.unwrap_or(DEFAULT_PROTOCOL_VERSION),
        pending,
        session,
        client_name,
        caller,
    }
}

/// The upstream could not be reached or did not answer in time: a JSON-RPC error the client can
/// read, recorded against every request of the exchange.
fn upstream_failure(
    shared: &Arc<Shared>,
    route: &RouteMatch,
    info: RequestInfo,
    err: ProxyError,
    method: &Method,
    ids: &[Option<jsonrpc::Id>],
    batch: bool,
) -> Response<ClientBody> {
    let state = shared.routes.provisional(route);
    let label = state.as_ref().map_or(NON_MCP, |r| &*r.label).to_string();
    tracing::warn!(route = %label, kind = ?err.kind(), "{err}");
    shared.metrics.record_upstream_error(&label, err.kind());
    let status = err.status();
    let mut response = Response::new(ClientBody::own(err.body(ids, batch)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    shared.metrics.record_http_exchange(&label, method, status.as_u16());
    if let Some(state) = state {
        let ex = Exchange::new(shared.clone(), state, info, status.as_u16(), &http::HeaderMap::new());
        ex.fail(err.error_type());
    }
    response
}
