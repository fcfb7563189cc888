//! The one place an exchange's outcomes become numbers and evidence: each finished MCP operation
//! is recorded in the metrics and ends its span; each refusal becomes one audit event; what the
//! upstream advertised is learned for the label bounds. The exchange decides, the recorder records.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::request::{CallContext, Pending};
use super::route::RouteState;
use super::Shared;
use crate::audit::event::{AuditEvent, OperationLine};

use crate::audit::Auditor;
use crate::bounded::{self, cut};
use crate::checklist::Checklist;
use crate::config::{AuditOperations, UserIdentity};
use crate::detect::expiry::{holder, Holder};
use crate::detect::sharing::Product;
use crate::identity::jwt::{self, Verdict};
use crate::identity::naming::Naming;
use crate::mcp::jsonrpc::ResultInfo;
use crate::mcp::method::Method;
use crate::mcp::names::{NameSet, OTHER};
use crate::metrics::{
    DecodeErrorKind, ErrorType, Metrics, Operation, Outcome, OverflowLabel, Surface, UnparsedReason, Upstream,
};
use crate::session::{CallLabels, InputWaits, Origin, RoundKey};

fn unix_now() -> i64 {
    i64::try_from(crate::clock::unix_secs()).unwrap_or(i64::MAX)
}

pub(crate) struct Recorder {
    metrics: Arc<Metrics>,
    auditor: Arc<Auditor>,
    checklist: Arc<Checklist>,
    route: Arc<RouteState>,
    call: CallContext,
    /// The `client` label of every series and audit line of the exchange.
    client: Arc<str>,
    /// The user entity ref of a Backstage user token the audit may name (`audit.user_identity`).
    user: Option<String>,
    /// The tap's verdict on a refused user token.
    verdict: Option<Verdict>,
    /// A refused user token signed by a key the tap is fetching: explained when the fetch ends.
    late: Option<(jwt::HeldToken, tokio::sync::watch::Receiver<u64>)>,
    /// Whether the audit may name a user token's user (`audit.user_identity`).
    name_users: bool,
    /// Who holds the user token (when its user is known): a refresh is the same holder's.
    holder: Option<Holder>,
    /// The upstream's `server.address` and `server.port`.
    upstream_address: (&'static str, &'static str),
    /// Which operations get an `operation` audit event (`audit.operations`).
    operations: AuditOperations,
    /// The upstream's HTTP status (0 when it never answered).
    status: u16,
    /// Who the call acts for, as tasks are owned (`request::principal`).
    principal: u64,
}

/// What the exchange knows when an operation is answered: the response bytes so far and the
/// header session.
pub(crate) struct Answered<'a> {
    pub bytes: u64,
    pub session: Option<&'a str>,
}

impl Recorder {
    /// The recorder of an exchange the upstream answered with `status`.
    pub(crate) fn new(shared: &Shared, route: Arc<RouteState>, mut call: CallContext, status: u16) -> Self {
        let (metrics, auditor) = (shared.metrics.clone(), shared.auditor.clone());
        let mut late = None;
        let consented = call.caller.user_token.as_ref().and_then(|_| auditor.who.consented(&call.caller.credential));
        let (verdict, user) = match call.caller.user_token.take() {
            Some(t) if status < 400 => (None, jwt::subject(t.as_str())),
            Some(t) if status == 401 => {
                let (verdict, user) = jwt::explain(t.as_str(), &auditor.who.signing_keys, unix_now());
                if let (Verdict::UnknownKey, Some(fetch)) = (verdict, call.keys_fetch.take()) {
                    late = Some((t, fetch));
                }
                (Some(verdict), user)
            }
            _ => (None, None),
        };
        let caller = &call.caller;
        let principal = super::request::principal(user.as_deref(), &caller.credential);
        let holder = user.as_deref().map(|u| holder(u, caller.source, caller.user_agent.as_deref()));
        let audit = &shared.config.load().audit;
        let name_users = audit.user_identity == UserIdentity::Ref;
        let (operations, user) = (audit.operations, user.filter(|_| name_users));
        let named = auditor.who.names.name(&Naming {
            credential: &caller.credential,
            source: caller.source,
            initialize: call.initialize_name.as_deref(),
            meta: call.meta_name.as_deref(),
            user_agent: caller.user_agent.as_deref(),
            consented: consented.as_ref(),
            accepted: status < 400,
        });
        if named.overflow {
            metrics.record_label_overflow(OverflowLabel::Client);
        }
        if let (Some(h), Some(fp), true) = (holder, caller.credential.fingerprint(), status < 400) {
            auditor.user_token_worked(h, fp, &named.label);
        }
        Self {
            metrics,
            auditor,
            checklist: shared.checklist.clone(),
            route,
            call,
            client: named.label,
            user,
            verdict,
            late,
            name_users,
            holder,
            upstream_address: shared.upstream_address,
            operations,
            status,
            principal,
        }
    }

    pub(crate) fn route(&self) -> &Arc<RouteState> {
        &self.route
    }

    pub(crate) fn protocol_version(&self) -> &'static str {
        self.call.protocol_version
    }

    /// `initialize` answered with the version the session speaks.
    pub(crate) fn set_protocol_version(&mut self, version: &'static str) {
        self.call.protocol_version = version;
    }

    /// What a request shows before its outcome: a credential from outside the approved networks,
    /// and MCP 2026-07-28 headers that disagree with the body.
    pub(crate) fn request_checks(&self, status: u16) {
        let caller = &self.call.caller;
        let who = (&*self.client, self.user.as_deref());
        self.auditor.check_source(&self.route.label, &caller.credential, who, caller.source, status);
        let product = Product {
            declared: self.call.initialize_name.as_deref().or(self.call.meta_name.as_deref()),
            user_agent: caller.user_agent.as_deref(),
            source: caller.source,
        };
        self.auditor.check_sharing(&self.route.label, &caller.credential, &self.client, &product);
        self.header_mismatches();
    }

    /// MCP 2026-07-28 headers that disagreed with the body: counted, and one audit line each.
    fn header_mismatches(&self) {
        let caller = &self.call.caller;
        for m in &self.call.mismatches {
            self.metrics.record_header_mismatch(m.kind);
            tracing::info!(route = %self.route.label, kind = m.kind.as_str(), header = %m.header, body = %m.body,
                "an MCP request header disagrees with its body");
            self.auditor.write(AuditEvent::HeaderMismatch {
                route: self.route.label.to_string(),
                kind: m.kind,
                header: m.header.clone(),
                body: m.body.clone(),
                client: self.client.to_string(),
                credential: caller.credential.fingerprint().map(|f| f.to_string()),
                source: caller.source.to_string(),
            });
        }
    }

    /// The upstream accepted the credential: a later refusal of it means it was revoked.
    pub(crate) fn credential_worked(&self) {
        if let Some(fp) = self.call.caller.credential.fingerprint() {
            self.auditor.history.succeeded(fp);
        }
        self.checklist.credential_worked(&self.call.caller.credential);
    }

    /// One MCP request reached its end with `error` (`ErrorType::None` on success).
    pub(crate) fn operation(&self, p: &mut Pending, error: ErrorType, now: Instant, answered: Answered<'_>) {
        if self.operations.includes(p.method) {
            self.audit_operation(p, error, now, &answered);
        }
        super::trace::end(p.span.take(), error);
        if p.method == Method::SubscriptionsListen {
            // A subscription stream stays open as long as the client listens: its life is a
            // stream duration, not an operation latency of hours.
            let error_type = match error {
                ErrorType::JsonRpc(_) => "jsonrpc_error".to_string(),
                other => other.label().unwrap_or_default(),
            };
            self.metrics.record_stream(&self.route.label, p.method, &error_type, now - self.call.started);
            return;
        }
        let tool = self.bounded_target(p, Method::ToolsCall, &self.route.tools, OverflowLabel::Tool);
        let prompt = self.bounded_target(p, Method::PromptsGet, &self.route.prompts, OverflowLabel::Prompt);
        // A multi round-trip call lasts from its first request, its client's waits included.
        let started = p.origin.map_or(self.call.started, |o| o.started);
        if let Some(origin) = p.origin {
            self.metrics.record_rounds(
                &self.route.label,
                p.method,
                if tool.is_empty() { &prompt } else { &tool },
                origin.rounds,
            );
        }
        self.metrics.record_operation(&Operation {
            route: &self.route.label,
            method: p.method,
            tool: &tool,
            prompt: &prompt,
            error,
            protocol_version: self.call.protocol_version,
            http_version: self.call.http_version,
            duration: now - started,
            upstream: self.call.sent.map(|sent| Upstream {
                address: self.upstream_address.0,
                port: self.upstream_address.1,
                duration: now.saturating_duration_since(sent),
            }),
        });
        let outcome = Outcome::of(p.method, error, p.denied);
        self.metrics.record_client_operation(&self.client, Surface::Mcp, p.method, &tool, outcome);
        if p.method == Method::ToolsCall && !tool.is_empty() && tool != OTHER && outcome != Outcome::Denied {
            self.checklist.tool_called(&self.route.label, &self.client, &tool);
        }
    }

    /// The `operation` audit event of `p` (before its span ends: the event carries its ids).
    fn audit_operation(&self, p: &Pending, error: ErrorType, now: Instant, answered: &Answered<'_>) {
        use opentelemetry::trace::Span as _;
        let c = &self.call.caller;
        let span =
            p.span.as_ref().map(|s| s.span_context().clone()).filter(opentelemetry::trace::SpanContext::is_valid);
        self.auditor.write(AuditEvent::Operation(OperationLine {
            route: self.route.label.to_string(),
            mcp_method: p.method,
            tool: p
                .target
                .as_deref()
                .filter(|_| p.method == Method::ToolsCall)
                .map(|t| cut(t, bounded::TOOL_NAME).to_string()),
            client: self.client.to_string(),
            user: self.user.clone(),
            credential: c.credential.fingerprint().map(|f| f.to_string()),
            source: c.source.to_string(),
            status: self.status,
            outcome: error.label().unwrap_or_else(|| "ok".to_string()),
            duration_seconds: (now - p.origin.map_or(self.call.started, |o| o.started)).as_secs_f64(),
            response_bytes: answered.bytes,
            jsonrpc_id: p.id.as_ref().map(|id| id.as_str().to_string()),
            session_id: answered.session.map(str::to_string),
            trace_id: span.as_ref().map(|s| s.trace_id().to_string()).or_else(|| c.trace_id.clone()),
            span_id: span.as_ref().map(|s| s.span_id().to_string()).or_else(|| c.span_id.clone()),
        }));
    }

    /// The tool or prompt label of `p`: its name if the upstream advertised it, else `_OTHER`.
    fn bounded_target(&self, p: &Pending, method: Method, set: &Mutex<NameSet>, label: OverflowLabel) -> String {
        match &p.target {
            _ if p.method != method => String::new(),
            Some(name) if set.lock().expect("route lock").contains(name) => name.clone(),
            Some(_) => {
                self.metrics.record_label_overflow(label);
                OTHER.to_string()
            }
            None => String::new(),
        }
    }

    /// The server answered `p` with `input_required` at `now`: the call waits for its client to
    /// come back with the input, and `true` says its operation goes on (its span ends here).
    pub(crate) fn input_required(&self, p: &mut Pending, r: &ResultInfo, now: Instant, waits: &InputWaits) -> bool {
        let labels = self.call_labels(p);
        self.metrics.record_input_required(&self.route.label, p.method, &labels.tool);
        let target = (p.method, p.target.as_deref());
        let credential = self.call.caller.credential.key();
        let key = RoundKey::new(&self.route.label, credential, target, r.request_state, r.input_keys);
        let origin = p.origin.unwrap_or(Origin { started: self.call.started, rounds: 1 });
        if !waits.asked(key, origin, now, labels) {
            return false;
        }
        super::trace::end(p.span.take(), ErrorType::None);
        true
    }

    /// The server asked the client something (`key`) on the stream of `call`, the request that
    /// needs it (the handshake generation): the person's wait starts.
    pub(crate) fn question_asked(&self, call: &Pending, key: u64, now: Instant, waits: &InputWaits) {
        waits.question_asked(key, now, self.call_labels(call));
    }

    /// What a call is recorded under when it is not answered here and now.
    fn call_labels(&self, p: &Pending) -> CallLabels {
        CallLabels {
            route: self.route.label.clone(),
            method: p.method,
            tool: self.bounded_target(p, Method::ToolsCall, &self.route.tools, OverflowLabel::Tool),
            prompt: self.bounded_target(p, Method::PromptsGet, &self.route.prompts, OverflowLabel::Prompt),
            client: self.client.clone(),
            protocol_version: self.call.protocol_version,
            http_version: self.call.http_version,
        }
    }

    /// The size of a single `tools/call` exchange's answer.
    pub(crate) fn tool_response_bytes(&self, p: &Pending, bytes: u64) {
        let tool = self.bounded_target(p, Method::ToolsCall, &self.route.tools, OverflowLabel::Tool);
        self.metrics.record_tool_response_bytes(&self.route.label, &tool, bytes);
    }

    /// Whether a tool failure names a tool this route advertised (to this caller or another).
    pub(crate) fn advertised(&self, tool: Option<&str>) -> bool {
        tool.is_some_and(|t| self.route.tools.lock().expect("route lock").contains(t))
    }

    /// A `tools/list` answer: learn the names for the label bounds, and count what was advertised
    /// (`next_page` adds a later page of a paginated list to the first).
    pub(crate) fn tools_listed(&self, tools: &[String], next_page: bool) {
        let mut set = self.route.tools.lock().expect("route lock");
        let learned: Vec<&str> = tools.iter().filter(|t| set.learn(t)).map(String::as_str).collect();
        drop(set);
        let overflow = tools.len() - learned.len();
        self.checklist.tools_listed(&self.route.label, &self.client, &learned, !next_page);
        if overflow > 0 {
            self.metrics.record_label_overflow(OverflowLabel::Tool);
        }
        if next_page {
            self.metrics.add_tools_advertised(&self.route.label, tools.len());
        } else {
            self.metrics.set_tools_advertised(&self.route.label, tools.len());
        }
    }

    /// A `tools/list` answer's tools, and the arguments their schemas mirror into headers.
    pub(crate) fn params_listed(&self, tools: &[String], mirrored: &[(String, Vec<crate::mcp::param::Mirrored>)]) {
        let known = self.route.tools.lock().expect("route lock");
        let mut params = self.route.params.lock().expect("route lock");
        for name in tools {
            params.remove(name);
        }
        for (name, marked) in mirrored {
            if known.contains(name) {
                params.insert(name.clone(), marked.clone());
            }
        }
    }

    /// A `tools/call` of `name` got a result (an MCP 2026-07-28 client may call without listing).
    pub(crate) fn tool_answered(&self, name: &str) {
        self.route.tools.lock().expect("route lock").learn(name);
    }

    pub(crate) fn prompts_listed(&self, prompts: &[String]) {
        let mut set = self.route.prompts.lock().expect("route lock");
        for name in prompts {
            set.learn(name);
        }
    }

    /// The server asked or told the client something on the stream.
    pub(crate) fn server_message(&self, method: Method) {
        self.metrics.record_server_message(&self.route.label, method);
    }

    pub(crate) fn unparsed(&self, reason: UnparsedReason) {
        self.metrics.record_unparsed(reason);
    }

    pub(crate) fn decode_error(&self, kind: DecodeErrorKind) {
        self.metrics.record_decode_error(kind);
    }
}

mod refusal;
mod tasks;
