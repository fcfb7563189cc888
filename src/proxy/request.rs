//! What the request side knows when it hands over to the exchange, computed once per request: the
//! pending requests (with their spans), the session, the protocol version and who the caller is.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::forward::forwarded_chain;
use super::route::RouteState;
use super::{Connection, Shared};
use crate::config::Config;
use crate::identity::Credential;
use crate::mcp::jsonrpc::{Id, Message};
use crate::mcp::method::Method;
use crate::mcp::names::{protocol_version_label, DEFAULT_PROTOCOL_VERSION};
use crate::session::{ClientKey, Origin};

/// The session header, as a value: the answer's is looked up by name.
pub(super) const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// The request headers the tap reads, found in one pass over the names rather than one hashed
/// lookup each (ten lookups were about 1.2k instructions per request). The first value of each
/// counts, as `HeaderMap::get` gives it.
pub(super) struct RequestHeaders<'a> {
    all: &'a HeaderMap,
    pub content_length: Option<&'a HeaderValue>,
    authorization: Option<&'a HeaderValue>,
    user_agent: Option<&'a HeaderValue>,
    request_id: Option<&'a HeaderValue>,
    traceparent: Option<&'a HeaderValue>,
    protocol_version: Option<&'a HeaderValue>,
    session_id: Option<&'a HeaderValue>,
    mcp_method: Option<&'a HeaderValue>,
    mcp_name: Option<&'a HeaderValue>,
}

impl<'a> RequestHeaders<'a> {
    pub(super) fn read(headers: &'a HeaderMap) -> Self {
        let mut seen = Self {
            all: headers,
            content_length: None,
            authorization: None,
            user_agent: None,
            request_id: None,
            traceparent: None,
            protocol_version: None,
            session_id: None,
            mcp_method: None,
            mcp_name: None,
        };
        for (name, value) in headers {
            let slot = match name.as_str() {
                "content-length" => &mut seen.content_length,
                "authorization" => &mut seen.authorization,
                "user-agent" => &mut seen.user_agent,
                "x-request-id" => &mut seen.request_id,
                "traceparent" => &mut seen.traceparent,
                "mcp-protocol-version" => &mut seen.protocol_version,
                "mcp-session-id" => &mut seen.session_id,
                "mcp-method" => &mut seen.mcp_method,
                "mcp-name" => &mut seen.mcp_name,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        seen
    }

    /// Every `X-Forwarded-For` line as one list: several lines are one comma-separated list
    /// (RFC 9110 §5.3), and the proxy nearest the tap may have added its own line. `None` if a
    /// line is not text.
    pub(super) fn forwarded_for(&self) -> Option<Cow<'a, str>> {
        forwarded_chain(self.all)
    }
}

fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// A client request waiting for its answer.
#[derive(Debug)]
pub(crate) struct Pending {
    pub id: Option<Id>,
    pub method: Method,
    /// The raw tool or prompt name, bounded to a label only when recorded.
    pub target: Option<String>,
    pub cursor: bool,
    /// A tool result said the token may not reach the action's plugin.
    pub denied: bool,
    /// The request's SERVER span, when tracing is on; ended when the request is recorded.
    pub span: Option<opentelemetry_sdk::trace::Span>,
    /// A retry with input of a multi round-trip call: where the operation began.
    pub origin: Option<Origin>,
    /// The task a `tasks/*` request names (the hash of its id).
    pub task: Option<u64>,
}

impl Pending {
    /// A copy of a request's method and target only, for what is recorded of its answer's bytes.
    pub(crate) fn answered_in_bytes(method: Method, target: Option<String>) -> Self {
        Self { id: None, method, target, cursor: false, denied: false, span: None, origin: None, task: None }
    }
}

/// What the exchange knows of its session, for protocol version and session events.
#[derive(Debug, Clone)]
pub(crate) enum SessionRef {
    Header(Box<str>),
    Inferred(ClientKey),
}

/// What the request side hands over: the call (to the recorder) and its open requests (to the
/// exchange), so each part moves to its owner without a copy.
pub(super) struct RequestInfo {
    pub call: CallContext,
    pub open: OpenRequests,
}

/// Who made the call, when, and over what: what the recorder labels and audits outcomes with.
pub(crate) struct CallContext {
    pub caller: Caller,
    /// MCP 2026-07-28 headers that disagreed with the body.
    pub mismatches: Vec<HeaderMismatch>,
    /// `clientInfo.name` of the request's `initialize`, if it sent one.
    pub initialize_name: Option<String>,
    /// `clientInfo.name` from the request's `_meta` (MCP 2026-07-28), if it sent one.
    pub meta_name: Option<String>,
    pub started: Instant,
    /// When the request went upstream (the start of the upstream hop); `None` before.
    pub sent: Option<Instant>,
    pub http_version: &'static str,
    pub protocol_version: &'static str,
    /// A fetch of the upstream's signing keys under way, which a refusal of the request's user
    /// token is explained after (`jwks::fetch_for_refusal`).
    pub keys_fetch: Option<tokio::sync::watch::Receiver<u64>>,
}

/// The requests of the exchange waiting for answers, and what ties them to a session.
pub(crate) struct OpenRequests {
    pub pending: Vec<Pending>,
    pub session: Option<SessionRef>,
    /// `clientInfo.name` of an `initialize` in the request.
    pub client_name: Option<String>,
}

/// Who sent the request, as the audit may record it (the credential is a fingerprint).
#[derive(Debug)]
pub(crate) struct Caller {
    pub credential: Credential,
    pub source: IpAddr,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The trace and span the request's audit events belong to (32 and 16 hex digits): the
    /// tap's span, else the client's context.
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub http_method: http::Method,
    /// A Backstage user token (JWT), held until the answer says whether to explain a refusal.
    pub user_token: Option<crate::identity::jwt::HeldToken>,
}

/// The pending list from the decoded request messages (requests and notifications, not answers).
fn pending_from(messages: &[Message]) -> Vec<Pending> {
    messages
        .iter()
        .filter_map(|m| Some((m, m.method?)))
        .map(|(m, method)| Pending {
            id: m.id.clone(),
            method,
            target: m.target.clone(),
            cursor: m.has_cursor,
            denied: false,
            span: None,
            origin: None,
            task: m.task.filter(|_| method.names_a_task()).map(|t| t.id),
        })
        .collect()
}

/// Who sent a request, as the audit may record it. Read before the forwarding headers change.
pub(super) fn caller(
    shared: &Shared,
    headers: &RequestHeaders<'_>,
    method: &http::Method,
    connection: &Connection,
    config: &Config,
) -> Caller {
    let peer = connection.peer;
    let source = if config.audit.source_from_forwarded_for {
        forwarded_source(peer.ip(), headers.forwarded_for().as_deref(), &config.audit.trusted_proxies)
    } else {
        peer.ip()
    };
    Caller {
        credential: shared.auditor.who.credential_cached(headers.authorization, &connection.credentials),
        source,
        user_agent: text(headers.user_agent).map(|s| crate::bounded::cut(s, config.audit.max_user_agent).to_string()),
        request_id: text(headers.request_id).map(|s| crate::bounded::cut(s, crate::bounded::REQUEST_ID).to_string()),
        trace_id: traceparent_part(headers.traceparent, 1, 32),
        span_id: traceparent_part(headers.traceparent, 2, 16),
        http_method: method.clone(),
        user_token: crate::identity::jwt::HeldToken::from_header(headers.authorization)
            .inspect(|_| shared.auditor.who.signing_keys.token_seen()),
    }
}

/// A field of a W3C `traceparent` header (`00-{trace id}-{span id}-{flags}`) of `len` hex digits.
fn traceparent_part(header: Option<&HeaderValue>, index: usize, len: usize) -> Option<String> {
    let part = text(header)?.split('-').nth(index)?;
    (part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit())).then(|| part.to_ascii_lowercase())
}

/// The client's address behind trusted proxies: believed only when the peer is a trusted proxy,
/// then `X-Forwarded-For` walked from the right past trusted proxies to the first address that is
/// not one (a client can prepend anything, but not what the proxies append).
pub(super) fn forwarded_source(peer: IpAddr, xff: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut source = peer;
    for entry in xff.unwrap_or("").rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else { break };
        source = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    source
}

/// What the request side knows: pending operations, session and protocol version. `route` is the
/// MCP route as known before the upstream answered (`None` for plain traffic).
pub(super) fn request_info(
    shared: &Shared,
    route: Option<&RouteState>,
    headers: &RequestHeaders<'_>,
    (messages, body): (&[Message], Option<&[u8]>),
    caller: Caller,
    started: Instant,
    http_version: &'static str,
) -> RequestInfo {
    let initialize = messages.iter().find(|m| m.method == Some(Method::Initialize));
    let client_name = initialize.and_then(|m| m.client_name.clone());
    // MCP 2026-07-28 carries the protocol version in every request's `_meta`: the body wins over
    // the header, as the server executes the body.
    let meta_version = messages.iter().find_map(|m| m.protocol_version.as_deref()).map(protocol_version_label);
    let mut protocol_version = meta_version.or_else(|| text(headers.protocol_version).map(protocol_version_label));
    let mut session = None;
    let mut pending = pending_from(messages);
    if let Some(state) = route {
        let session_header = text(headers.session_id);
        if let Some(id) = session_header.filter(|s| s.len() <= 256) {
            if let Some(v) = shared.sessions.touch_header(&state.label, id) {
                protocol_version = Some(v);
            }
            session = Some(SessionRef::Header(id.into()));
        } else {
            let key =
                ClientKey { route: state.label.clone(), credential: caller.credential.key(), source: caller.source };
            if let (Some(version), None) = (meta_version, initialize) {
                let name = messages.iter().find_map(|m| m.client_name.as_deref()).unwrap_or("");
                shared.sessions.stateless_request(&key, name, version);
            } else if initialize.is_none() {
                // An `initialize` starts a new session; it is no activity of the old one.
                if let Some(v) = shared.sessions.touch_inferred(&key) {
                    protocol_version = protocol_version.or(Some(v));
                }
            }
            session = Some(SessionRef::Inferred(key));
        }
        earlier::requests(shared, (&*state.label, session.as_ref(), &caller), messages, &mut pending, started);
    }
    RequestInfo {
        call: CallContext {
            mismatches: header_mismatches(headers, messages, route.zip(body)),
            initialize_name: client_name.clone(),
            meta_name: messages
                .iter()
                .filter(|m| m.method != Some(Method::Initialize))
                .find_map(|m| m.client_name.clone()),
            caller,
            started,
            sent: None,
            http_version,
            protocol_version: protocol_version.unwrap_or(DEFAULT_PROTOCOL_VERSION),
            keys_fetch: None,
        },
        open: OpenRequests { pending, session, client_name },
    }
}

mod earlier;
mod mismatch;
pub(crate) use earlier::{principal, request_key};
use mismatch::header_mismatches;
pub(crate) use mismatch::HeaderMismatch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies_and_walked_from_the_right() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer chooses nothing.
        assert_eq!(forwarded_source(ip("203.0.113.9"), Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
        // Behind two trusted proxies: the first untrusted address from the right.
        let xff = "6.6.6.6, 198.51.100.7, 10.1.1.1";
        assert_eq!(forwarded_source(ip("10.2.2.2"), Some(xff), &trusted), ip("198.51.100.7"));
        // A spoofed leftmost entry is never reached; garbage stops the walk at the last good hop.
        assert_eq!(forwarded_source(ip("10.2.2.2"), Some("evil, 10.1.1.1"), &trusted), ip("10.1.1.1"));
        assert_eq!(forwarded_source(ip("fd00::1"), None, &trusted), ip("fd00::1"));
    }

    #[test]
    fn a_forged_first_forwarded_for_line_is_not_the_source() {
        // The client sends a line of its own; the trusted proxy adds the address it saw.
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        let chain = RequestHeaders::read(&h).forwarded_for();
        assert_eq!(chain.as_deref(), Some("6.6.6.6, 198.51.100.7"));
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let source = forwarded_source("10.2.2.2".parse().unwrap(), chain.as_deref(), &trusted);
        assert_eq!(source, "198.51.100.7".parse::<IpAddr>().unwrap());
        h.append("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(RequestHeaders::read(&h).forwarded_for(), None, "a line that is not text spoils the list");
    }
}
