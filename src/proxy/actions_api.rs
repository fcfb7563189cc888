//! A plugin's actions API (`/api/{plugin}/.backstage/actions/v1/actions[/{id}/invoke]`): the
//! same tools MCP exposes, reached without MCP by the Backstage CLI and scripts. Proxied as any
//! other request and watched on the side: which client listed or invoked which action, how it
//! ended and how long it took, and every refusal with the same reasons as on MCP. Counted under
//! `surface="actions_api"` in the client usage metric, in the actions API's own histogram, and
//! in least privilege under the route `actions_api`. Labels stay bounded: a plugin is named once
//! it answered a list or an invocation, an action once a list advertised it or it answered.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::time::Instant;

use super::body::BodyWatch;
use super::request::Caller;
use super::Shared;
use crate::audit::reason::{classify_rejection, BackstageError};
use crate::audit::AuthFailure;
use crate::identity::naming::Naming;
use crate::identity::Credential;
use crate::mcp::actions_path::{actions_api, tool_name};
use crate::mcp::method::Method;
use crate::mcp::names::OTHER;
use crate::metrics::{ActionsCall, Outcome, OverflowLabel, Surface};

/// The route label of the actions API in refusals, bursts and least privilege.
pub(crate) const ROUTE: &str = crate::mcp::actions_path::ACTIONS_API_ROUTE;
/// An answer read for its list of actions or its error, at most.
const MAX_READ: usize = 1 << 20;

/// An actions API request on its way upstream.
pub(crate) struct Start {
    plugin: String,
    /// The action id of an invocation (`None`: the list).
    action: Option<String>,
    http_method: http::Method,
    started: Instant,
    credential: Credential,
    source: IpAddr,
    user_agent: Option<String>,
    request_id: Option<String>,
}

impl Start {
    /// An actions API request: `GET` of the list or `POST` of an invocation.
    pub(crate) fn new(path: &str, method: &http::Method, caller: &Caller, started: Instant) -> Option<Self> {
        let api = actions_api(path)?;
        let expected = if api.action.is_some() { http::Method::POST } else { http::Method::GET };
        (*method == expected).then(|| Start {
            plugin: api.plugin.to_ascii_lowercase(),
            action: api.action,
            http_method: method.clone(),
            started,
            credential: caller.credential.clone(),
            source: caller.source,
            user_agent: caller.user_agent.clone(),
            request_id: caller.request_id.clone(),
        })
    }

    /// The upstream answered with `status`: its body is watched to its end.
    pub(crate) fn answered(self, shared: &Arc<Shared>, status: u16) -> Box<Watch> {
        Box::new(Watch { start: self, shared: shared.clone(), status, body: BytesMut::new(), over: false, bytes: 0 })
    }

    /// The upstream never answered (the tap answered `status`, 502 or 504).
    pub(crate) fn unanswered(self, shared: &Arc<Shared>, status: u16) {
        Watch { start: self, shared: shared.clone(), status, body: BytesMut::new(), over: true, bytes: 0 }
            .record(false);
    }
}

impl Start {
    /// The `client` label of the caller; an accepted credential may name a new client.
    fn client(&self, shared: &Shared, status: u16) -> Arc<str> {
        let naming = Naming {
            credential: &self.credential,
            source: self.source,
            initialize: None,
            meta: None,
            user_agent: self.user_agent.as_deref(),
            consented: None,
            accepted: status < 400,
        };
        shared.auditor.who.names.name(&naming).label
    }
}

/// The tool names of a list answer (`{"actions":[{"id":"catalog:…"}]}`), as MCP names them.
fn listed(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<ListAnswer>(body)
        .map(|l| l.actions.into_iter().map(|a| tool_name(&a.id)).collect())
        .unwrap_or_default()
}

pub(crate) struct Watch {
    start: Start,
    shared: Arc<Shared>,
    status: u16,
    body: BytesMut,
    over: bool,
    /// Bytes of the answer that reached the client.
    bytes: u64,
}

impl BodyWatch for Watch {
    fn on_data(&mut self, data: &Bytes) {
        self.bytes += data.len() as u64;
        // A successful invocation's output is the caller's business: only lists and errors are read.
        let wanted = self.start.action.is_none() || self.status >= 400;
        if !wanted || self.body.len() + data.len() > MAX_READ {
            self.over |= wanted;
        } else {
            self.body.extend_from_slice(data);
        }
    }

    fn finish(self: Box<Self>, complete: bool) {
        self.record(complete);
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListAnswer {
    actions: Vec<ListedAction>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListedAction {
    id: String,
}

impl Watch {
    fn record(self, complete: bool) {
        let Watch { start, shared, status, body, over, bytes } = self;
        let readable = complete && !over;
        let ok = (200..300).contains(&status) && complete;
        let routes = &shared.routes;
        let client = start.client(&shared, status);
        // A plugin or an action is named once the upstream answered for it.
        let plugin = routes.actions_plugin(&start.plugin, ok, &shared.metrics);
        let listed = if start.action.is_none() && ok && readable { listed(&body) } else { Vec::new() };
        let tool = start.action.as_deref().map(tool_name);
        let tool_label = match &tool {
            Some(t) => routes.actions_tool(t, ok, &shared.metrics),
            None => String::new(),
        };
        let outcome = match status {
            200..=299 if complete => Outcome::Ok,
            401 | 403 => Outcome::Denied,
            400 => Outcome::ToolError,
            _ => Outcome::Error,
        };
        let (operation, method) =
            if start.action.is_some() { ("invoke", Method::ToolsCall) } else { ("list", Method::ToolsList) };
        let m = &shared.metrics;
        let duration = start.started.elapsed();
        m.record_actions_call(&ActionsCall { plugin: &plugin, operation, tool: &tool_label, outcome, duration });
        m.record_client_operation(&client, Surface::ActionsApi, method, &tool_label, outcome);
        if start.action.is_some() && ok {
            m.record_tool_response_bytes(ROUTE, &tool_label, bytes);
        }
        let checklist = &shared.checklist;
        if ok {
            shared.auditor.actions_api_answered(&start.credential, &client, &plugin, tool.as_deref());
        }
        if status < 400 {
            checklist.credential_worked(&start.credential);
            if let Some(fp) = start.credential.fingerprint() {
                shared.auditor.history.succeeded(fp);
            }
        }
        if !listed.is_empty() {
            let learned = routes.actions_listed(&listed);
            let learned: Vec<&str> = learned.iter().map(String::as_str).collect();
            checklist.tools_listed(ROUTE, &client, &learned, true);
        }
        if outcome == Outcome::Ok && !tool_label.is_empty() && tool_label != OTHER {
            checklist.tool_called(ROUTE, &client, &tool_label);
        }
        if matches!(status, 401 | 403) {
            let body = if readable { BackstageError::parse(&body) } else { BackstageError::default() };
            refused(&shared, &start, status, &body, (&client, tool.as_deref(), method));
        }
    }
}

/// A refusal on the actions API: audited as on MCP, under the route `actions_api`.
fn refused(
    shared: &Shared,
    start: &Start,
    status: u16,
    body: &BackstageError,
    (client, tool, method): (&str, Option<&str>, Method),
) {
    let a = &shared.auditor;
    let was_valid = start.credential.fingerprint().is_some_and(|fp| a.history.was_valid(fp));
    let reason = classify_rejection(status, &start.credential, body, was_valid);
    a.emit(&AuthFailure {
        route: ROUTE,
        status,
        reason,
        http_method: start.http_method.as_str(),
        mcp_method: Some(method),
        tool,
        credential: &start.credential,
        client,
        user: None,
        holder: None,
        expired_seconds: None,
        source: start.source,
        user_agent: start.user_agent.as_deref(),
        request_id: start.request_id.as_deref(),
        jsonrpc_id: None,
        trace_id: None,
        span_id: None,
    });
}

impl super::route::Routes {
    /// The label of `plugin`: learned once it answered, while there is room (`labels.max_plugins`;
    /// an answering plugin past the cap is counted as an overflow).
    fn actions_plugin(&self, plugin: &str, answered: bool, metrics: &crate::metrics::Metrics) -> String {
        let mut plugins = self.actions_plugins.lock().expect("routes lock");
        if plugins.contains(plugin) || (answered && plugins.learn(plugin)) {
            return plugin.to_string();
        }
        if answered {
            metrics.record_label_overflow(OverflowLabel::Plugin);
        }
        OTHER.to_string()
    }

    /// The label of `tool`: advertised by a list, or answered now.
    fn actions_tool(&self, tool: &str, answered: bool, metrics: &crate::metrics::Metrics) -> String {
        let mut tools = self.actions_api.tools.lock().expect("route lock");
        if tools.contains(tool) || (answered && tools.learn(tool)) {
            tool.to_string()
        } else {
            metrics.record_label_overflow(OverflowLabel::Tool);
            OTHER.to_string()
        }
    }

    /// A list answer's tools learned; the ones the labels name.
    fn actions_listed(&self, listed: &[String]) -> Vec<String> {
        let mut tools = self.actions_api.tools.lock().expect("route lock");
        listed.iter().filter(|t| tools.learn(t)).cloned().collect()
    }
}
