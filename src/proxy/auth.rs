//! The exchange's side of the auth audit: a 401/403 or a delegated-access denial becomes one
//! `AuthFailure`, carrying the attempted MCP method (decoded before forwarding).

use super::exchange::{Exchange, Pending};
use crate::audit::reason::{classify_rejection, BackstageError, Reason};
use crate::audit::AuthFailure;

impl Exchange {
    /// The upstream refused the request (401/403); `body` is its error body, if it sent one.
    pub(super) fn rejected(&self, body: &BackstageError) {
        let auditor = &self.shared.auditor;
        let was_valid = self.caller.credential.fingerprint().is_some_and(|fp| auditor.history.was_valid(fp));
        let reason = classify_rejection(self.status, &self.caller.credential, body, was_valid);
        self.emit_auth_failure(reason, self.status, self.pending.first());
    }

    /// A tool result refused because the token may not reach the plugin that owns the action.
    pub(super) fn delegation_denied(&self, p: &Pending) {
        self.emit_auth_failure(Reason::DelegationDenied, 200, Some(p));
    }

    fn emit_auth_failure(&self, reason: Reason, status: u16, p: Option<&Pending>) {
        let c = &self.caller;
        let tool = p.filter(|p| p.method == "tools/call").and_then(|p| p.target.as_deref());
        let jsonrpc_id = p.and_then(|p| p.id.as_ref()).map(|id| id.as_str().to_string());
        self.shared.auditor.emit(&AuthFailure {
            route: &self.route.label,
            status,
            reason,
            http_method: c.http_method.as_str(),
            mcp_method: p.map_or("", |p| p.method),
            tool,
            credential: &c.credential,
            source: c.source,
            user_agent: c.user_agent.as_deref(),
            request_id: c.request_id.as_deref(),
            jsonrpc_id,
            trace_id: c.trace_id.as_deref(),
        });
    }
}
