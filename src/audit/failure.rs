//! One refused request as the audit records it: borrowed from the exchange, or owned when its
//! explanation waits for the upstream's signing keys.

use std::net::IpAddr;
use std::sync::Arc;

use crate::detect::expiry as expiries;
use crate::identity::Credential;
use crate::mcp::method::Method;
use crate::metrics::Reason;

/// One refused request, with everything the audit may know about it (never the token).
#[derive(Debug)]
pub(crate) struct AuthFailure<'a> {
    pub route: &'a str,
    pub status: u16,
    pub reason: Reason,
    pub http_method: &'a str,
    pub mcp_method: Option<Method>,
    pub tool: Option<&'a str>,
    pub credential: &'a Credential,
    /// The `client` label (`naming`).
    pub client: &'a str,
    /// The user entity ref of a Backstage user token, when the audit may name it.
    pub user: Option<&'a str>,
    /// Who holds a user token whose signature holds (user, address, User-Agent): its refresh
    /// is a valid token of the same holder.
    pub holder: Option<expiries::Holder>,
    pub expired_seconds: Option<u64>,
    pub source: IpAddr,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub jsonrpc_id: Option<String>,
    pub trace_id: Option<&'a str>,
    pub span_id: Option<&'a str>,
}

/// An `AuthFailure` that owns what it says, for a refusal explained after the request's answer
/// (when the upstream's signing keys arrive).
#[derive(Debug)]
pub(crate) struct LateAuthFailure {
    pub route: String,
    pub status: u16,
    pub reason: Reason,
    pub http_method: String,
    pub mcp_method: Option<Method>,
    pub tool: Option<String>,
    pub credential: Credential,
    pub client: Arc<str>,
    pub user: Option<String>,
    pub holder: Option<expiries::Holder>,
    pub expired_seconds: Option<u64>,
    pub source: IpAddr,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub jsonrpc_id: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

impl AuthFailure<'_> {
    pub(crate) fn late(&self, client: Arc<str>) -> LateAuthFailure {
        LateAuthFailure {
            route: self.route.to_string(),
            status: self.status,
            reason: self.reason,
            http_method: self.http_method.to_string(),
            mcp_method: self.mcp_method,
            tool: self.tool.map(str::to_string),
            credential: self.credential.clone(),
            client,
            user: self.user.map(str::to_string),
            holder: self.holder,
            expired_seconds: self.expired_seconds,
            source: self.source,
            user_agent: self.user_agent.map(str::to_string),
            request_id: self.request_id.map(str::to_string),
            jsonrpc_id: self.jsonrpc_id.clone(),
            trace_id: self.trace_id.map(str::to_string),
            span_id: self.span_id.map(str::to_string),
        }
    }
}

impl LateAuthFailure {
    pub(crate) fn failure(&self) -> AuthFailure<'_> {
        AuthFailure {
            route: &self.route,
            status: self.status,
            reason: self.reason,
            http_method: &self.http_method,
            mcp_method: self.mcp_method,
            tool: self.tool.as_deref(),
            credential: &self.credential,
            client: &self.client,
            user: self.user.as_deref(),
            holder: self.holder,
            expired_seconds: self.expired_seconds,
            source: self.source,
            user_agent: self.user_agent.as_deref(),
            request_id: self.request_id.as_deref(),
            jsonrpc_id: self.jsonrpc_id.clone(),
            trace_id: self.trace_id.as_deref(),
            span_id: self.span_id.as_deref(),
        }
    }
}
