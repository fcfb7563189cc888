//! The upstream side of the proxy: header rewriting per RFC 9110 §7.6.1, and the one place that
//! maps upstream failures to responses.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};

use crate::mcp::jsonrpc::Id;
use crate::metrics::{ErrorType, UpstreamErrorKind};

/// The upstream URI for a client request: the upstream's scheme and authority, its path prefix
/// (if any) joined with the request's path and query.
pub(crate) fn upstream_uri(base: &Uri, request: &Uri) -> Uri {
    let prefix = base.path().trim_end_matches('/');
    let pq = match (prefix.is_empty(), request.path_and_query()) {
        // No prefix: the request's own path and query, shared, not re-parsed.
        (true, Some(pq)) => pq.clone(),
        (_, pq) => {
            let pq = pq.map_or("/", PathAndQuery::as_str);
            format!("{prefix}{pq}").parse().unwrap_or_else(|_| PathAndQuery::from_static("/"))
        }
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts).unwrap_or_else(|_| base.clone())
}

/// The `Host` the upstream expects, computed once.
pub(crate) fn upstream_host(upstream: &Uri) -> Option<HeaderValue> {
    upstream.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

/// The upstream's `server.address` and `server.port` (the scheme's port when the URL names none).
/// Made once per process (`upstream.url` changes only with a restart), so every request's
/// recorder copies two references.
pub(crate) fn server_address(upstream: &Uri) -> (&'static str, &'static str) {
    let host = upstream.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let default = if upstream.scheme_str() == Some("https") { 443 } else { 80 };
    let port = upstream.port_u16().unwrap_or(default).to_string();
    (Box::leak(host.into()), Box::leak(port.into_boxed_str()))
}

/// A client address as an `X-Forwarded-For` entry, computed once per connection.
pub(crate) fn forwarded_for(peer: std::net::IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).expect("an address is a valid header value")
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The hop-by-hop fields (RFC 9110 §7.6.1), as the lowercase names `HeaderMap` keeps. Compared as
/// text: a length check rejects most names at once, and nothing is built or dropped per use.
const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "trailer"];

/// The same fields as names, in the same order, to remove them without parsing text again.
static HOP_BY_HOP_NAMES: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TRAILER,
];

/// Removes hop-by-hop headers, including any that `Connection` names. One pass over the names
/// finds which are present, so only those are looked up again (usually `Connection` alone).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == name.as_str()) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // Only options that name a field present here need a name of their own: the usual
        // `keep-alive`, `close` and `upgrade` cost a comparison, not an allocation.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|option| !HOP_BY_HOP.iter().any(|h| option.eq_ignore_ascii_case(h)))
            .filter(|option| headers.contains_key(*option))
            .filter_map(|option| HeaderName::from_bytes(option.as_bytes()).ok())
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP_NAMES.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Prepares client request headers for the upstream: hop-by-hop out, `Host` set to the upstream,
/// `X-Forwarded-*` added when enabled (`peer` is the client's address as a header value, `proto`
/// `http` or `https` as the client reached the tap). Everything else passes unchanged.
pub(crate) fn upstream_headers(
    headers: &mut HeaderMap,
    request_uri: &Uri,
    upstream_host: Option<&HeaderValue>,
    peer: &HeaderValue,
    forwarded: bool,
    proto: &'static str,
) {
    strip_hop_by_hop(headers);
    // One lookup each: `insert` hands back what it replaced.
    let replaced = match upstream_host {
        Some(host) => headers.insert(header::HOST, host.clone()),
        None => headers.remove(header::HOST),
    };
    let original_host =
        replaced.or_else(|| request_uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
    if forwarded {
        // Every prior line stays in the one list the upstream gets, the client's address last.
        match headers.entry(X_FORWARDED_FOR) {
            header::Entry::Occupied(mut prior) => {
                let appended = joined(prior.iter()).map_or(Some(peer.clone()), |chain| {
                    HeaderValue::from_str(&format!("{chain}, {}", peer.to_str().unwrap_or_default())).ok()
                });
                if let Some(v) = appended {
                    prior.insert(v);
                }
            }
            header::Entry::Vacant(none) => {
                none.insert(peer.clone());
            }
        }
        headers.entry(X_FORWARDED_PROTO).or_insert(HeaderValue::from_static(proto));
        if let Some(host) = original_host {
            headers.entry(X_FORWARDED_HOST).or_insert(host);
        }
    }
}

/// The `X-Forwarded-For` lines of `headers` joined into one list; `None` without one, or if a
/// line is not text.
pub(crate) fn forwarded_chain(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    joined(headers.get_all(X_FORWARDED_FOR).iter())
}

/// Header lines as one comma-separated list (RFC 9110 §5.3); `None` if there is none, or if a
/// line is not text.
fn joined<'a>(lines: impl IntoIterator<Item = &'a HeaderValue>) -> Option<Cow<'a, str>> {
    let mut lines = lines.into_iter().map(|v| v.to_str().ok());
    let mut chain = Cow::Borrowed(lines.next()??);
    for line in lines {
        let owned = chain.to_mut();
        owned.push_str(", ");
        owned.push_str(line?);
    }
    Some(chain)
}

/// Why the tap could not get an answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("cannot connect to the upstream {upstream}: {detail}")]
    Connect { upstream: String, detail: String },
    #[error("TLS handshake with the upstream {upstream} failed: {detail}")]
    Tls { upstream: String, detail: String },
    #[error("the upstream {upstream} sent no response headers within {timeout:?}")]
    Timeout { upstream: String, timeout: std::time::Duration },
    /// The connection to the upstream timed out at the socket (the operating system said so)
    /// before an answer: not `upstream.response_timeout`, which is `Timeout`.
    #[error("the connection to the upstream {upstream} timed out before an answer: {detail}")]
    SocketTimeout { upstream: String, detail: String },
    #[error("the upstream {upstream} closed the connection before answering: {detail}")]
    Reset { upstream: String, detail: String },
}

impl ProxyError {
    /// Classifies a client error from the upstream request.
    pub(crate) fn classify(err: &hyper_util::client::legacy::Error, upstream: &str) -> Self {
        Self::from_chain(err.to_string(), std::error::Error::source(err), err.is_connect(), upstream)
    }

    /// Classifies a failure on a client connection's own upstream connection.
    pub(crate) fn classify_dedicated(failure: &super::dedicated::Failure, upstream: &str) -> Self {
        match failure {
            super::dedicated::Failure::Connect(e) => Self::from_chain(e.to_string(), Some(&**e), true, upstream),
            super::dedicated::Failure::Exchange(e) => Self::from_chain(e.to_string(), Some(e), false, upstream),
        }
    }

    fn from_chain(
        mut detail: String,
        first: Option<&(dyn std::error::Error + 'static)>,
        connect: bool,
        upstream: &str,
    ) -> Self {
        let (mut tls, mut timed_out) = (false, false);
        // Walk the whole chain; io::Error hides what it wraps from `source()`, so look inside it too.
        let mut stack: Vec<&(dyn std::error::Error + 'static)> = first.into_iter().collect();
        while let Some(e) = stack.pop() {
            detail = e.to_string();
            tls |= e.downcast_ref::<rustls::Error>().is_some();
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
                if let Some(inner) = io.get_ref() {
                    stack.push(inner);
                }
            }
            if let Some(next) = e.source() {
                stack.push(next);
            }
        }
        let upstream = upstream.to_string();
        // A connect that timed out is an unreachable upstream (a black hole), not a slow answer.
        if tls {
            ProxyError::Tls { upstream, detail }
        } else if connect {
            ProxyError::Connect { upstream, detail }
        } else if timed_out {
            ProxyError::SocketTimeout { upstream, detail }
        } else {
            ProxyError::Reset { upstream, detail }
        }
    }

    pub(crate) fn kind(&self) -> UpstreamErrorKind {
        match self {
            ProxyError::Connect { .. } => UpstreamErrorKind::Connect,
            ProxyError::Tls { .. } => UpstreamErrorKind::Tls,
            ProxyError::Timeout { .. } | ProxyError::SocketTimeout { .. } => UpstreamErrorKind::Timeout,
            ProxyError::Reset { .. } => UpstreamErrorKind::Reset,
        }
    }

    /// The one status map: a timeout is 504, every other upstream failure 502.
    pub(crate) fn status(&self) -> http::StatusCode {
        match self {
            ProxyError::Timeout { .. } | ProxyError::SocketTimeout { .. } => http::StatusCode::GATEWAY_TIMEOUT,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }

    pub(crate) fn error_type(&self) -> ErrorType {
        match self {
            ProxyError::Timeout { .. } | ProxyError::SocketTimeout { .. } => ErrorType::Timeout,
            _ => ErrorType::UpstreamUnavailable,
        }
    }

    /// What the client is told: the kind of failure, never the upstream's address or the OS error
    /// (those go to the tap's own log).
    pub(crate) fn client_message(&self) -> String {
        match self {
            ProxyError::Connect { .. } => "mcp-tap: the upstream is unreachable".into(),
            ProxyError::Tls { .. } => "mcp-tap: the TLS handshake with the upstream failed".into(),
            ProxyError::Timeout { timeout, .. } => {
                format!("mcp-tap: the upstream sent no response headers within upstream.response_timeout ({timeout:?})")
            }
            ProxyError::SocketTimeout { .. } => "mcp-tap: the connection to the upstream timed out".into(),
            ProxyError::Reset { .. } => "mcp-tap: the upstream closed the connection before answering".into(),
        }
    }

    /// A JSON-RPC error body answering each request id (an array for a batch).
    pub(crate) fn body(&self, ids: &[Option<Id>], batch: bool) -> Bytes {
        let code = match self {
            ProxyError::Timeout { .. } | ProxyError::SocketTimeout { .. } => -32001,
            _ => -32000,
        };
        let kind = match self.kind() {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Tls => "tls",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Reset => "reset",
        };
        let one = |id: &Option<Id>| {
            let id = match id {
                Some(Id::Num(n)) => serde_json::from_str(n).unwrap_or(serde_json::Value::Null),
                Some(Id::Str(s)) => serde_json::Value::String(s.to_string()),
                None => serde_json::Value::Null,
            };
            serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": code, "message": self.client_message(), "data": {"upstream_error": kind}},
            })
        };
        let value = if batch && !ids.is_empty() {
            serde_json::Value::Array(ids.iter().map(one).collect())
        } else {
            one(ids.first().unwrap_or(&None))
        };
        Bytes::from(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_keeps_the_upstream_prefix() {
        let base: Uri = "https://backstage.example.com/base/".parse().unwrap();
        let req: Uri = "/api/mcp-actions/v1?x=1".parse().unwrap();
        assert_eq!(upstream_uri(&base, &req).to_string(), "https://backstage.example.com/base/api/mcp-actions/v1?x=1");
        let bare: Uri = "http://up:7007".parse().unwrap();
        assert_eq!(upstream_uri(&bare, &req).to_string(), "http://up:7007/api/mcp-actions/v1?x=1");
    }

    #[test]
    fn hop_by_hop_names_and_text_agree() {
        let names: Vec<&str> = HOP_BY_HOP_NAMES.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, HOP_BY_HOP);
    }

    #[test]
    fn hop_by_hop_headers_go_and_the_rest_stays() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive, X-Private, close"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TRAILER, HeaderValue::from_static("x-checksum"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert("mcp-session-id", HeaderValue::from_static("s"));
        h.insert(header::HOST, HeaderValue::from_static("tap:7070"));
        let peer = forwarded_for("10.1.2.3".parse().unwrap());
        let host = upstream_host(&"http://up:7007".parse().unwrap());
        upstream_headers(&mut h, &"/".parse().unwrap(), host.as_ref(), &peer, true, "http");
        assert!(h.get("x-private").is_none() && h.get(header::CONNECTION).is_none());
        assert!(h.get(header::TRANSFER_ENCODING).is_none() && h.get("keep-alive").is_none());
        assert!(h.get(header::TRAILER).is_none());
        assert_eq!(h["authorization"], "Bearer t");
        assert_eq!(h["mcp-session-id"], "s");
        assert_eq!(h["host"], "up:7007");
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-host"], "tap:7070");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn a_forwarded_for_chain_gets_the_peer_appended_and_the_host_is_kept() {
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.7"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        h.insert(header::HOST, HeaderValue::from_static("tap:7070"));
        let peer = forwarded_for("10.1.2.3".parse().unwrap());
        upstream_headers(&mut h, &"/".parse().unwrap(), None, &peer, true, "http");
        let lines: Vec<_> = h.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(lines, ["198.51.100.7, 10.0.0.2, 10.1.2.3"], "one list, every line kept");
        assert_eq!((h.get(header::HOST), &h["x-forwarded-host"]), (None, &HeaderValue::from_static("tap:7070")));
    }

    #[test]
    fn error_body_answers_every_id_of_a_batch() {
        let e = ProxyError::Connect { upstream: "http://x".into(), detail: "refused".into() };
        let body = e.body(&[Some(Id::Num("1".into())), Some(Id::Str("a".into()))], true);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v[0]["id"], 1);
        assert_eq!(v[1]["id"], "a");
        assert_eq!(v[0]["error"]["code"], -32000);
        let message = v[0]["error"]["message"].as_str().unwrap();
        assert_eq!(message, "mcp-tap: the upstream is unreachable");
        assert!(!body.windows(8).any(|w| w == b"http://x") && !message.contains("refused"), "no internal detail");
    }

    #[test]
    fn a_socket_timeout_is_a_timeout_without_a_made_up_duration() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out");
        let e = ProxyError::from_chain("request failed".into(), Some(&io), false, "http://backstage:7007");
        assert!(matches!(e, ProxyError::SocketTimeout { .. }), "{e:?}");
        assert_eq!((e.status(), e.kind()), (http::StatusCode::GATEWAY_TIMEOUT, UpstreamErrorKind::Timeout));
        assert_eq!(e.client_message(), "mcp-tap: the connection to the upstream timed out");
        assert!(!e.to_string().contains("0ns"), "{e}");
    }
}
