//! What the request side knows when it hands over to the exchange: the pending requests (with
//! their spans), the session, the protocol version and who the caller is.

use std::net::IpAddr;

use tokio::time::Instant;

use crate::audit::identity::Credential;
use crate::mcp::jsonrpc::{Id, Message};
use crate::mcp::names::method_label;
use crate::session::ClientKey;

/// A client request waiting for its answer.
#[derive(Debug)]
pub struct Pending {
    pub id: Option<Id>,
    pub method: &'static str,
    /// The raw tool or prompt name, bounded to a label only when recorded.
    pub target: Option<String>,
    pub cursor: bool,
    /// A tool result said the token may not reach the action's plugin.
    pub denied: bool,
    /// The request's SERVER span, when tracing is on; ended when the request is recorded.
    pub span: Option<opentelemetry_sdk::trace::Span>,
}

/// What the exchange knows of its session, for protocol version and session events.
#[derive(Debug, Clone)]
pub enum SessionRef {
    Header(Box<str>),
    Inferred(ClientKey),
}

/// What the request side hands to the exchange.
pub struct RequestInfo {
    pub started: Instant,
    pub http_version: &'static str,
    pub protocol_version: &'static str,
    pub pending: Vec<Pending>,
    pub session: Option<SessionRef>,
    pub client_name: Option<String>,
    pub caller: Caller,
}

/// Who sent the request, as the audit may record it (the credential is a fingerprint).
#[derive(Debug, Clone)]
pub struct Caller {
    pub credential: Credential,
    pub source: IpAddr,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub http_method: http::Method,
}

impl RequestInfo {
    /// Builds the pending list from the decoded request messages.
    pub fn pending_from(messages: &[Message]) -> Vec<Pending> {
        messages
            .iter()
            .filter(|m| m.method.is_some())
            .map(|m| Pending {
                id: m.id.clone(),
                method: method_label(m.method.as_deref().unwrap_or_default()),
                target: m.target.clone(),
                cursor: m.has_cursor,
                denied: false,
                span: None,
            })
            .collect()
    }
}
