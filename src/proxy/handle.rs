//! One request through the tap, in stages: match the route, read and decode an MCP request body,
//! forward it, and hand the response to a tapped body. Never fails: upstream problems become
//! 502/504 JSON-RPC errors, and anything the tap cannot decode is forwarded unchanged.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::{Body as _, Incoming};
use tokio::time::Instant;

use super::actions_api::Start as ActionsCall;
use super::body::{read_capped, ClientBody, ReadBody, Watcher};
use super::deadline;
use super::exchange::Exchange;
use super::forward::{self, ProxyError};
use super::limits;
use super::oauth::{Read, Side, Start};
use super::record::Recorder;
use super::request::{caller, request_info, RequestHeaders, RequestInfo, SessionRef};
use super::route::{RouteMatch, RouteState, NON_MCP};
use super::{Connection, Shared};
use crate::config::Config;
use crate::http_client::UpstreamBody;
use crate::mcp::jsonrpc::{self, Id, Message};
use crate::mcp::names::OTHER;
use crate::mcp::response::ResponseDecoder;
use crate::metrics::{DecodeErrorKind, Limit, SessionEnd, UnparsedReason};

fn http_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_2 => "2",
        Version::HTTP_10 => "1.0",
        _ => "1.1",
    }
}

/// A request body ready to go upstream, with what decoding it found.
struct ReadRequest {
    body: UpstreamBody,
    messages: Vec<Message>,
    batch: bool,
    /// The decode budget the held body takes, given back once it went upstream.
    reserved: Option<limits::Reserved>,
    /// For a streamed body: resolves once it has been sent whole.
    sent: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl ReadRequest {
    /// The body, when it was read whole.
    fn bytes(&self) -> Option<&[u8]> {
        match &self.body {
            UpstreamBody::Full { data: Some(bytes), .. } => Some(bytes),
            _ => None,
        }
    }
}

/// A body that streams upstream as it arrives. An empty one (a GET) is sent with the headers, so
/// its response timeout starts at once.
fn streamed(body: Incoming) -> ReadRequest {
    let (body, sent) = if body.is_end_stream() {
        (UpstreamBody::Stream { body, sent: None }, None)
    } else {
        let (body, sent) = UpstreamBody::stream(body);
        (body, Some(sent))
    };
    ReadRequest { body, messages: Vec::new(), batch: false, reserved: None, sent }
}

/// Sends the request upstream. `upstream.response_timeout` counts from when the request has been
/// sent whole: a client uploading slowly is the body deadline's business, not the upstream's.
async fn send(
    shared: &Shared,
    config: &Config,
    req: Request<UpstreamBody>,
    sequential: bool,
    body_sent: Option<tokio::sync::oneshot::Receiver<()>>,
    connection: &Connection,
) -> Result<Response<Incoming>, ProxyError> {
    let timeout = config.upstream.response_timeout;
    let clients = shared.client.load_full();
    let url = &config.upstream.url;
    let request = async {
        if sequential && clients.plain_http() {
            let sent = connection.upstream.send(&clients, req).await;
            sent.map_err(|f| ProxyError::classify_dedicated(&f, url))
        } else {
            let sent = clients.with_worker_pool(|pool| pool.request(req)).await;
            sent.map_err(|e| ProxyError::classify(&e, url))
        }
    };
    tokio::pin!(request);
    let answered = match body_sent {
        Some(sent) => tokio::select! {
            r = &mut request => Some(r),
            _ = sent => None,
        },
        None => None,
    };
    let result = match answered {
        Some(r) => Some(r),
        // An HTTP/1.x client's exchanges come one at a time: its connection's deadline will do.
        None if sequential => deadline::within(&connection.response_deadline, Instant::now() + timeout, request).await,
        None => tokio::time::timeout(timeout, request).await.ok(),
    };
    result.unwrap_or_else(|| Err(ProxyError::Timeout { upstream: url.clone(), timeout }))
}

/// Why an MCP request body was not read.
enum NotRead {
    Refused(Limit),
    ClientGone(hyper::Error),
}

/// Handles one request: never fails; upstream problems become 502/504 JSON-RPC errors.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    connection: &Connection,
) -> Response<ClientBody> {
    let peer = connection.peer;
    let started = Instant::now();
    let config = shared.config.load_full();
    let route = shared.routes.match_path(req.uri().path());
    let provisional = shared.routes.provisional(&route);
    let version = http_version(req.version());
    let (parts, body) = req.into_parts();
    // An HTTP/1.x client sends one request at a time: its own upstream connection will do.
    let sequential = parts.version <= Version::HTTP_11;

    let headers = RequestHeaders::read(&parts.headers);
    let caller = caller(&shared, &headers, &parts.method, connection, &config);
    let mut side = Side::new(&config, route.is_mcp(), &parts, &caller, peer.ip(), connection.tls);
    let actions =
        (!route.is_mcp()).then(|| ActionsCall::new(parts.uri.path(), &parts.method, &caller, started)).flatten();
    let oauth = side.start.as_mut();
    let read = read_body(&shared, &config, &route, oauth, &parts, headers.content_length, body, peer).await;
    let read = match read {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let body_read = Instant::now();
    let read_as = (&read.messages[..], read.bytes());
    let mut info = request_info(&shared, provisional.as_deref(), &headers, read_as, caller, started, version);
    let ids: Vec<Option<Id>> = info.open.pending.iter().filter(|p| p.id.is_some()).map(|p| p.id.clone()).collect();
    let method = parts.method.clone();
    let (reserved, body_sent) = (read.reserved, read.sent);
    let upstream_req = upstream_request(&shared, &config, connection, parts, read.body, &read.messages, &mut info);
    let sent = *info.call.sent.insert(Instant::now());
    let awaiting = super::awaiting::Awaiting::new(&shared, provisional.clone(), &method, info);
    let result = send(&shared, &config, upstream_req, sequential, body_sent, connection).await;
    let mut info = awaiting.answered();
    if result.as_ref().is_ok_and(|r| r.status() == StatusCode::UNAUTHORIZED) {
        info.call.keys_fetch = super::jwks::fetch_for_refusal(&shared, &config, &info.call.caller);
    }
    let headers_at = Instant::now();
    drop(reserved);
    let (mut response, label) = match result {
        Ok(resp) => {
            let watcher = side.start.take().map(Watcher::OAuth).or(actions.map(Watcher::Actions));
            respond(&shared, &config, &route, info, &method, resp, watcher)
        }
        Err(err) => {
            side.unanswered(&shared);
            if let Some(call) = actions {
                call.unanswered(&shared, err.status().as_u16());
            }
            return upstream_failure(&shared, provisional, info, &err, &method, &ids, read.batch);
        }
    };
    side.www_authenticate(&shared, &config, response.status().as_u16(), response.headers_mut(), &label);
    shared.metrics.record_overhead(&label, (sent - body_read) + headers_at.elapsed());
    response
}

/// The request as it goes upstream: the upstream's URI, the forwarding headers, trace context.
fn upstream_request(
    shared: &Shared,
    config: &Config,
    connection: &Connection,
    mut parts: http::request::Parts,
    body: UpstreamBody,
    messages: &[Message],
    info: &mut RequestInfo,
) -> Request<UpstreamBody> {
    let uri = forward::upstream_uri(&shared.upstream, &parts.uri);
    let (host, forwarded) = (shared.upstream_host.as_ref(), config.forwarded_headers.enabled);
    let proto = if connection.tls { "https" } else { "http" };
    forward::upstream_headers(&mut parts.headers, &parts.uri, host, &connection.forwarded_for, forwarded, proto);
    super::trace::start(shared, &mut parts.headers, messages, info, config.otlp.propagate_upstream);
    let mut upstream_req = Request::from_parts(parts, body);
    *upstream_req.uri_mut() = uri;
    *upstream_req.version_mut() = Version::HTTP_11;
    upstream_req
}

/// Reads the request body an MCP route or an OAuth step needs; any other streams upstream as
/// it arrives. `Err`: the answer already given (a limit refused it, or the client went away).
#[allow(clippy::too_many_arguments)]
async fn read_body(
    shared: &Shared,
    config: &Config,
    route: &RouteMatch,
    oauth: Option<&mut Start>,
    parts: &http::request::Parts,
    content_length: Option<&HeaderValue>,
    body: Incoming,
    peer: SocketAddr,
) -> Result<ReadRequest, Response<ClientBody>> {
    if route.is_mcp() && parts.method == Method::POST {
        return match read_mcp_request(shared, config, content_length, body).await {
            Ok(read) => Ok(read),
            Err(NotRead::Refused(limit)) => {
                let provisional = shared.routes.provisional(route);
                Err(refuse(shared, provisional.as_deref(), &parts.method, limit, peer))
            }
            Err(NotRead::ClientGone(e)) => Err(client_gone(&e, peer)),
        };
    }
    let Some(start) = oauth.filter(|s| s.reads_request()) else { return Ok(streamed(body)) };
    match start.read(shared, &parts.headers, body, config.limits.request_body_timeout).await {
        Read::Whole(data, trailers) => {
            let body = UpstreamBody::Full { data: Some(data), trailers };
            Ok(ReadRequest { body, messages: Vec::new(), batch: false, reserved: None, sent: None })
        }
        Read::Untouched(body) => Ok(streamed(body)),
        Read::Refused(limit) => Err(refuse(shared, None, &parts.method, limit, peer)),
        Read::ClientGone(e) => Err(client_gone(&e, peer)),
    }
}

/// The client went away while sending its body: nobody is left to answer.
fn client_gone(e: &hyper::Error, peer: SocketAddr) -> Response<ClientBody> {
    tracing::debug!(error = %e, %peer, "client aborted its request body");
    let mut resp = Response::new(ClientBody::own(Bytes::new()));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp
}

/// A limit refused the request before it went upstream: counted, and answered with its status.
fn refuse(
    shared: &Shared,
    route: Option<&RouteState>,
    method: &Method,
    limit: Limit,
    peer: SocketAddr,
) -> Response<ClientBody> {
    tracing::debug!(%peer, limit = limit.as_str(), "request refused by a limit");
    shared.metrics.record_refused(limit);
    let response = limits::refused(limit);
    let label = route.map_or(NON_MCP, |r| &*r.label);
    shared.metrics.record_http_exchange(label, method, response.status().as_u16());
    response
}

/// Reads an MCP POST body, within `limits.max_request_body_bytes` and its deadline, into memory
/// reserved from the decode budget, and decodes it when within `decode.max_request_bytes`. When the
/// budget is spent the body streams upstream undecoded instead.
async fn read_mcp_request(
    shared: &Shared,
    config: &Config,
    content_length: Option<&HeaderValue>,
    body: Incoming,
) -> Result<ReadRequest, NotRead> {
    let limits = &config.limits;
    let cap = limits.max_request_body_bytes;
    let declared = content_length.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(NotRead::Refused(Limit::RequestBodyBytes));
    }
    let want = declared.map_or(cap, |n| n as usize);
    let Some(reserved) = shared.budget.reserve(want, limits.decode_budget_bytes) else {
        shared.metrics.record_unparsed(UnparsedReason::DecodeBudget);
        return Ok(streamed(body));
    };
    let (bytes, trailers) = match tokio::time::timeout(limits.request_body_timeout, read_capped(body, cap, want)).await
    {
        Err(_) => return Err(NotRead::Refused(Limit::RequestBodyTimeout)),
        Ok(Err(e)) => return Err(NotRead::ClientGone(e)),
        Ok(Ok(ReadBody::TooLarge)) => return Err(NotRead::Refused(Limit::RequestBodyBytes)),
        Ok(Ok(ReadBody::Whole(bytes, trailers))) => (bytes, trailers),
    };
    let batch = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let messages = if bytes.len() > config.decode.max_request_bytes {
        shared.metrics.record_unparsed(UnparsedReason::RequestTooLarge);
        Vec::new()
    } else {
        match jsonrpc::decode(&bytes, config.decode.max_batch) {
            Ok(m) => m,
            Err(jsonrpc::DecodeError::Malformed) => {
                shared.metrics.record_decode_error(DecodeErrorKind::RequestJson);
                Vec::new()
            }
            Err(jsonrpc::DecodeError::BatchTooLarge) => {
                shared.metrics.record_unparsed(UnparsedReason::BatchTooLarge);
                Vec::new()
            }
        }
    };
    let body = UpstreamBody::Full { data: Some(bytes), trailers };
    Ok(ReadRequest { body, messages, batch, reserved: Some(reserved), sent: None })
}

/// The upstream answered: settle the route, end header sessions the answer ends, and return the
/// response with a body that taps every frame on its way to the client, and the route's label.
fn respond(
    shared: &Arc<Shared>,
    config: &Config,
    route: &RouteMatch,
    info: RequestInfo,
    method: &Method,
    resp: Response<Incoming>,
    watcher: Option<Watcher>,
) -> (Response<ClientBody>, Box<str>) {
    let status = resp.status().as_u16();
    let (mut parts, body) = resp.into_parts();
    let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut decoder =
        ResponseDecoder::for_content_type(content_type, config.decode.max_message_bytes, config.decode.max_batch);
    if info.open.pending.iter().any(|p| p.method.lists_offerings()) {
        decoder = decoder.answering_lists();
    }
    let mcp_answer = (200..300).contains(&status) && !decoder.reads_nothing();
    let route_state = shared.routes.settle(route, mcp_answer, config, &shared.metrics);
    if let (RouteMatch::Candidate(_), Some(state)) = (route, &route_state) {
        // A newly learned key gets the few zero series its dashboards and alerts need, not the
        // audit's (`_OTHER` has all of them from start-up).
        if &*state.label != OTHER {
            shared.metrics.preinit_route(&state.label);
        }
    }
    let label: Box<str> = route_state.as_ref().map_or(NON_MCP.into(), |r| r.label.clone());
    forward::strip_hop_by_hop(&mut parts.headers);
    if let (Some(SessionRef::Header(id)), Some(_)) = (&info.open.session, &route_state) {
        if status == 404 {
            shared.sessions.end_header(&label, id, SessionEnd::Expired);
        } else if method == Method::DELETE && (200..300).contains(&status) {
            shared.sessions.end_header(&label, id, SessionEnd::Delete);
        }
    }
    let exchange = route_state.map(|state| {
        let recorder = Recorder::new(shared, state, info.call, status);
        recorder.request_checks(status);
        Box::new(Exchange::new(recorder, shared.sessions.clone(), info.open, status, &parts.headers, decoder))
    });
    shared.metrics.record_http_exchange(&label, method, status);
    let body = match watcher {
        Some(watcher) if exchange.is_none() => {
            ClientBody::Watched { watch: Some(watcher.answered(shared, parts.status, &parts.headers)), inner: body }
        }
        _ => ClientBody::Tapped { inner: body, exchange },
    };
    (Response::from_parts(parts, body), label)
}

/// The upstream could not be reached or did not answer in time: a JSON-RPC error the client can
/// read, recorded against every request of the exchange.
fn upstream_failure(
    shared: &Arc<Shared>,
    route: Option<Arc<RouteState>>,
    info: RequestInfo,
    err: &ProxyError,
    method: &Method,
    ids: &[Option<Id>],
    batch: bool,
) -> Response<ClientBody> {
    let label = route.as_ref().map_or(NON_MCP, |r| &*r.label).to_string();
    tracing::warn!(route = %label, kind = ?err.kind(), "{err}");
    shared.metrics.record_upstream_error(&label, err.kind());
    let status = err.status();
    let mut response = Response::new(ClientBody::own(err.body(ids, batch)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    shared.metrics.record_http_exchange(&label, method, status.as_u16());
    if let Some(state) = route {
        let status = status.as_u16();
        let recorder = Recorder::new(shared, state, info.call, status);
        recorder.request_checks(status);
        let (sessions, headers) = (shared.sessions.clone(), http::HeaderMap::new());
        let ex = Exchange::new(recorder, sessions, info.open, status, &headers, ResponseDecoder::None);
        ex.fail(err.error_type());
    }
    response
}
