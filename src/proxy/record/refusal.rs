//! What the recorder makes of a refusal: the reason (the tap's verdict on a user token, or the
//! upstream's answer), one audit event each, explained late when the signing key is being fetched.

use super::super::request::Pending;
use super::{unix_now, Recorder};
use crate::audit::reason::{classify_rejection, user_token_reason, BackstageError, Reason};
use crate::audit::AuthFailure;
use crate::detect::expiry::holder;
use crate::identity::jwt::{self, Verdict};
use crate::mcp::method::Method;

impl Recorder {
    /// The upstream refused the request (401/403); `body` is its error body, if it sent one.
    pub(crate) fn refused(&self, status: u16, body: &BackstageError, first: Option<&Pending>) {
        let was_valid = self.call.caller.credential.fingerprint().is_some_and(|fp| self.auditor.history.was_valid(fp));
        let reason = match self.verdict {
            Some(v) => user_token_reason(v),
            None => classify_rejection(status, &self.call.caller.credential, body, was_valid),
        };
        if let Some((token, fetch)) = &self.late {
            self.explain_late(token.clone(), fetch.clone(), reason, status, first);
            return;
        }
        self.auth_failure(reason, status, first);
    }

    /// A refused user token whose signing key is being fetched: the refusal was answered, and
    /// its audit waits (off the request path) for the fetch to end, then explains it with the
    /// keys held, as it would have been had they been there.
    fn explain_late(
        &self,
        token: jwt::HeldToken,
        mut fetch: tokio::sync::watch::Receiver<u64>,
        reason: Reason,
        status: u16,
        first: Option<&Pending>,
    ) {
        let mut late = self.failure(reason, status, first).late(self.client.clone());
        let (auditor, name_users) = (self.auditor.clone(), self.name_users);
        self.auditor.clone().later(async move {
            let _ = tokio::time::timeout(super::super::jwks::EXPLAIN_WAIT, fetch.changed()).await;
            let (verdict, user) = jwt::explain(token.as_str(), &auditor.who.signing_keys, unix_now());
            late.reason = user_token_reason(verdict);
            late.expired_seconds = match verdict {
                Verdict::Expired { seconds } => Some(seconds),
                _ => None,
            };
            late.holder = user.as_deref().map(|u| holder(u, late.source, late.user_agent.as_deref()));
            late.user = user.filter(|_| name_users);
            auditor.emit(&late.failure());
        });
    }

    /// A tool result Backstage refused as a permission matter (`is_delegation_denied`): an
    /// explicit delegation refusal, or a not-found for a tool the route advertised. A not-found
    /// for a tool missing from this caller's own last `tools/list` is a denial Backstage hides
    /// (`hidden_denial`); without such a list it stays `delegation_denied`.
    pub(crate) fn permission_denied(&self, p: &Pending, error_text: &str) {
        let explicit = error_text.starts_with("NotAllowedError");
        let tool = p.target.as_deref().unwrap_or("");
        let listed = self.checklist.listed_to(&self.route.label, &self.client, tool);
        let reason = if !explicit && listed == Some(false) { Reason::HiddenDenial } else { Reason::DelegationDenied };
        self.auth_failure(reason, 200, Some(p));
    }

    fn auth_failure(&self, reason: Reason, status: u16, p: Option<&Pending>) {
        self.auditor.emit(&self.failure(reason, status, p));
    }

    fn failure<'a>(&'a self, reason: Reason, status: u16, p: Option<&'a Pending>) -> AuthFailure<'a> {
        let c = &self.call.caller;
        AuthFailure {
            route: &self.route.label,
            status,
            reason,
            http_method: c.http_method.as_str(),
            mcp_method: p.map(|p| p.method),
            tool: p.filter(|p| p.method == Method::ToolsCall).and_then(|p| p.target.as_deref()),
            credential: &c.credential,
            client: &self.client,
            user: self.user.as_deref(),
            holder: self.holder,
            expired_seconds: match self.verdict {
                Some(Verdict::Expired { seconds }) => Some(seconds),
                _ => None,
            },
            source: c.source,
            user_agent: c.user_agent.as_deref(),
            request_id: c.request_id.as_deref(),
            jsonrpc_id: p.and_then(|p| p.id.as_ref()).map(|id| id.as_str().to_string()),
            trace_id: c.trace_id.as_deref(),
            span_id: c.span_id.as_deref(),
        }
    }
}
