//! What the audit trail records: one JSON line per event (schema `mcp-tap.audit.v1`), each kind
//! of event with its own fields. Credentials appear only as keyed fingerprints, never as tokens.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::mcp::method::Method;
use crate::metrics::{MismatchKind, Reason, Scope};

pub(crate) mod oauth;
pub(crate) mod task;

pub(crate) const SCHEMA: &str = "mcp-tap.audit.v1";

/// One audit line: when, the schema, and the event (whose `event` field names its kind).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditLine {
    pub ts: String,
    pub schema: &'static str,
    /// Set on the events that are findings (something a person should look at), with the kind
    /// of finding; each incident raises one. The rest are evidence and lifecycle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<&'static str>,
    #[serde(flatten)]
    pub event: AuditEvent,
}

impl AuditLine {
    pub(crate) fn new(event: AuditEvent) -> Self {
        Self {
            ts: humantime::format_rfc3339_millis(crate::clock::now()).to_string(),
            schema: SCHEMA,
            finding: event.finding(),
            event,
        }
    }
}

/// The kinds of finding, as `finding` in audit lines and `kind` in `mcp_tap_findings_total`.
pub const FINDINGS: [&str; 10] = [
    "burst",
    "credential_shared",
    "stopped_refreshing",
    "unapproved_source",
    "header_mismatch",
    "revoked_token",
    "hidden_denial",
    "refresh_token_replay",
    "resource_mismatch",
    "task_foreign_access",
];

/// How loud an audit event is, for the outputs that grade them (OTLP logs, syslog): a finding
/// warns (a person should look), the tap's own failures are errors, the rest is information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    /// The severity of an event named `event`, a finding or not.
    pub(crate) fn of(event: &str, finding: bool) -> Self {
        match event {
            _ if finding => Severity::Warning,
            "store_lost" | "config_reload_refused" => Severity::Error,
            _ => Severity::Info,
        }
    }
}

/// The kinds of audit event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum AuditEvent {
    /// A request the upstream refused, or a delegated-access denial in a tool result.
    AuthFailure(AuthFailureLine),
    /// The exact counts of a burst's failures that got no line of their own.
    AuthFailureSummary {
        scope: Scope,
        key: String,
        count: u64,
        by_reason: BTreeMap<Reason, u64>,
    },
    BurstStart {
        scope: Scope,
        key: String,
        client: String,
        count: u64,
    },
    BurstEnd {
        scope: Scope,
        key: String,
        client: String,
        count: u64,
        duration_seconds: f64,
    },
    /// Fingerprints of client tokens added to or removed from the known set by a reload.
    TokenSetChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    ConfigReloaded,
    ConfigReloadRefused {
        problems: Vec<String>,
    },
    /// One credential presented by two different client names within the window (once per pair).
    CredentialShared {
        route: String,
        client: String,
        credential: String,
        clients: [String; 2],
        source: String,
    },
    /// A request with a credential from outside `audit.approved_networks` (once per credential
    /// and address per `audit.unapproved_audit_interval`).
    UnapprovedSource {
        route: String,
        client: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        credential: Option<String>,
        source: String,
        status: u16,
    },
    /// An MCP 2026-07-28 request whose `Mcp-Method` or `Mcp-Name` header said something else
    /// than its body (both values bounded). The body is what the server executes.
    HeaderMismatch {
        route: String,
        kind: MismatchKind,
        header: String,
        body: String,
        client: String,
        credential: Option<String>,
        source: String,
    },
    /// A credential came back with an expired Backstage user token: the client stopped
    /// refreshing. One line per finding; its end says how long and how often.
    StoppedRefreshing {
        route: String,
        client: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        credential: String,
        source: String,
        /// Seconds past the token's `exp`.
        expired_seconds: u64,
    },
    /// A "stopped refreshing" finding ended: no expired request for the quiet period (or the tap
    /// stopped). `count` is every expired request of the finding.
    StoppedRefreshingEnd {
        route: String,
        client: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        credential: String,
        source: String,
        first: String,
        latest: String,
        count: u64,
        expired_seconds: u64,
    },
    /// A client's static token was replaced: its new token appeared, the old one fell silent.
    CredentialRotated {
        client: String,
        /// Fingerprints, as other lines show them.
        old_credential: String,
        new_credential: String,
        /// RFC 3339 times the old token was first and last seen working, and the new one first.
        old_first_seen: String,
        old_last_seen: String,
        new_first_seen: String,
    },
    /// Cluster mode: this replica lost its store and decides bursts alone until it is back.
    StoreLost {
        cluster: String,
        /// The store's address, without user or password.
        store: String,
        error: String,
    },
    /// Cluster mode: the store is back; what was counted meanwhile is sent.
    StoreRegained {
        cluster: String,
        store: String,
        down_seconds: f64,
    },
    /// One MCP operation and its outcome (`audit.operations`): who called which tool on which
    /// MCP server, how it ended, how long it took. Never its arguments or results.
    Operation(OperationLine),
    /// OAuth (`audit::oauth`): a registration, a consent decision, a refused token request, a
    /// revocation, and the two findings.
    OauthRegistration(oauth::Registration),
    OauthConsent(oauth::Consent),
    OauthTokenError(oauth::TokenError),
    OauthRevocation(oauth::Revocation),
    RefreshTokenReplay(oauth::Replay),
    ResourceMismatch(oauth::Mismatch),
    /// A `tasks/*` request about a task another principal created (once per task).
    TaskForeignAccess(task::ForeignAccess),
    /// A credential refused on MCP answered by a plugin's actions API (once per credential):
    /// evidence of what its restrictions allow, not a finding.
    ActionsApiReach(crate::detect::reach::Reached),
}

/// The fields of an `operation` line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OperationLine {
    pub route: String,
    pub mcp_method: Method,
    /// The tool called (`tools/call`), as the client named it (cut to `bounded::TOOL_NAME` bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    pub source: String,
    /// The HTTP status the upstream answered with.
    pub status: u16,
    /// `ok`, or the error: `tool_error`, a JSON-RPC code, an HTTP status, `stream_aborted`, …
    /// (the `error_type` label of the operation metrics).
    pub outcome: String,
    pub duration_seconds: f64,
    /// Bytes of the response body up to this operation's answer.
    pub response_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_id: Option<String>,
    /// The `Mcp-Session-Id` of a header session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

impl AuditEvent {
    /// Every event name (the `event` label of `mcp_tap_audit_events_total`).
    pub(crate) const NAMES: [&'static str; 24] = [
        "auth_failure",
        "auth_failure_summary",
        "burst_start",
        "burst_end",
        "token_set_changed",
        "config_reloaded",
        "config_reload_refused",
        "header_mismatch",
        "unapproved_source",
        "credential_shared",
        "credential_rotated",
        "stopped_refreshing",
        "stopped_refreshing_end",
        "store_lost",
        "store_regained",
        "operation",
        "oauth_registration",
        "oauth_consent",
        "oauth_token_error",
        "oauth_revocation",
        "refresh_token_replay",
        "resource_mismatch",
        "task_foreign_access",
        "actions_api_reach",
    ];

    /// The OpenTelemetry event names (`event.name` of OTLP log records), in the order of `NAMES`.
    pub(crate) const OTEL_NAMES: [&'static str; 24] = [
        "mcp_tap.auth_failure",
        "mcp_tap.auth_failure_summary",
        "mcp_tap.burst_start",
        "mcp_tap.burst_end",
        "mcp_tap.token_set_changed",
        "mcp_tap.config_reloaded",
        "mcp_tap.config_reload_refused",
        "mcp_tap.header_mismatch",
        "mcp_tap.unapproved_source",
        "mcp_tap.credential_shared",
        "mcp_tap.credential_rotated",
        "mcp_tap.stopped_refreshing",
        "mcp_tap.stopped_refreshing_end",
        "mcp_tap.store_lost",
        "mcp_tap.store_regained",
        "mcp_tap.operation",
        "mcp_tap.oauth_registration",
        "mcp_tap.oauth_consent",
        "mcp_tap.oauth_token_error",
        "mcp_tap.oauth_revocation",
        "mcp_tap.refresh_token_replay",
        "mcp_tap.resource_mismatch",
        "mcp_tap.task_foreign_access",
        "mcp_tap.actions_api_reach",
    ];

    pub(crate) fn name(&self) -> &'static str {
        let i = match self {
            AuditEvent::AuthFailure(_) => 0,
            AuditEvent::AuthFailureSummary { .. } => 1,
            AuditEvent::BurstStart { .. } => 2,
            AuditEvent::BurstEnd { .. } => 3,
            AuditEvent::TokenSetChanged { .. } => 4,
            AuditEvent::ConfigReloaded => 5,
            AuditEvent::ConfigReloadRefused { .. } => 6,
            AuditEvent::HeaderMismatch { .. } => 7,
            AuditEvent::UnapprovedSource { .. } => 8,
            AuditEvent::CredentialShared { .. } => 9,
            AuditEvent::CredentialRotated { .. } => 10,
            AuditEvent::StoppedRefreshing { .. } => 11,
            AuditEvent::StoppedRefreshingEnd { .. } => 12,
            AuditEvent::StoreLost { .. } => 13,
            AuditEvent::StoreRegained { .. } => 14,
            AuditEvent::Operation(_) => 15,
            AuditEvent::OauthRegistration(_) => 16,
            AuditEvent::OauthConsent(_) => 17,
            AuditEvent::OauthTokenError(_) => 18,
            AuditEvent::OauthRevocation(_) => 19,
            AuditEvent::RefreshTokenReplay(_) => 20,
            AuditEvent::ResourceMismatch(_) => 21,
            AuditEvent::TaskForeignAccess(_) => 22,
            AuditEvent::ActionsApiReach(_) => 23,
        };
        Self::NAMES[i]
    }

    /// The kind of finding this event is (one of `FINDINGS`), if it is one.
    pub(crate) fn finding(&self) -> Option<&'static str> {
        match self {
            AuditEvent::BurstStart { .. } => Some("burst"),
            AuditEvent::CredentialShared { .. } => Some("credential_shared"),
            AuditEvent::StoppedRefreshing { .. } => Some("stopped_refreshing"),
            AuditEvent::UnapprovedSource { .. } => Some("unapproved_source"),
            AuditEvent::HeaderMismatch { .. } => Some("header_mismatch"),
            AuditEvent::AuthFailure(line) => line.finding,
            AuditEvent::RefreshTokenReplay(_) => Some("refresh_token_replay"),
            AuditEvent::ResourceMismatch(_) => Some("resource_mismatch"),
            AuditEvent::TaskForeignAccess(_) => Some("task_foreign_access"),
            _ => None,
        }
    }
}

/// The fields of an `auth_failure` line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuthFailureLine {
    pub status: u16,
    pub reason: Reason,
    pub route: String,
    pub http_method: String,
    /// The MCP method the refused request attempted, when its body could be decoded.
    #[serde(serialize_with = "method_or_empty")]
    pub mcp_method: Option<Method>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    pub client: String,
    /// The user entity ref of a Backstage user token whose signature holds (`audit.user_identity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Seconds past `exp`, for `token_expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_seconds: Option<u64>,
    /// Keyed HMAC-SHA256 fingerprint of the bearer token, 16 hex digits. Never the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The `X-Request-Id` header, if the client or a gateway set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The span the refusal belongs to: the tap's span of the request, else the client's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The first refusal of its kind for this credential (and tool) that is a finding: a revoked
    /// token used again, a hidden denial. Later ones are evidence only.
    #[serde(skip)]
    pub finding: Option<&'static str>,
}

fn method_or_empty<S: serde::Serializer>(m: &Option<Method>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.map_or("", Method::as_str))
}

#[cfg(test)]
mod tests;
