//! What the audit trail records: one JSON line per event (schema `mcp-tap.audit.v1`), each kind
//! of event with its own fields. Credentials appear only as keyed fingerprints, never as tokens.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::mcp::method::Method;
use crate::metrics::{MismatchKind, Reason, Scope};

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
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            schema: SCHEMA,
            finding: event.finding(),
            event,
        }
    }
}

/// The kinds of finding, as `finding` in audit lines and `kind` in `mcp_tap_findings_total`.
pub const FINDINGS: [&str; 7] = [
    "burst",
    "credential_shared",
    "stopped_refreshing",
    "unapproved_source",
    "header_mismatch",
    "revoked_token",
    "hidden_denial",
];

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
}

impl AuditEvent {
    /// Every event name (the `event` label of `mcp_tap_audit_events_total`).
    pub(crate) const NAMES: [&'static str; 15] = [
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
mod tests {
    use super::*;

    #[test]
    fn every_event_serializes_with_its_name() {
        let events = [
            AuditEvent::AuthFailureSummary {
                scope: Scope::Source,
                key: "10.0.0.1".into(),
                count: 3,
                by_reason: BTreeMap::from([(Reason::UnknownToken, 3)]),
            },
            AuditEvent::BurstStart { scope: Scope::Global, key: "all".into(), client: "unknown".into(), count: 100 },
            AuditEvent::BurstEnd {
                scope: Scope::Global,
                key: "all".into(),
                client: "unknown".into(),
                count: 100,
                duration_seconds: 2.5,
            },
            AuditEvent::AuthFailure(AuthFailureLine {
                status: 401,
                reason: Reason::MissingCredentials,
                route: "default".into(),
                http_method: "POST".into(),
                mcp_method: None,
                tool: None,
                client: "none".into(),
                user: None,
                expired_seconds: None,
                credential: None,
                source: "127.0.0.1".into(),
                user_agent: None,
                request_id: None,
                jsonrpc_id: None,
                trace_id: None,
                span_id: None,
                finding: None,
            }),
            AuditEvent::TokenSetChanged { added: vec!["ab".into()], removed: vec![] },
            AuditEvent::ConfigReloaded,
            AuditEvent::ConfigReloadRefused { problems: vec!["listen can only change with a restart".into()] },
            AuditEvent::CredentialShared {
                route: "default".into(),
                client: "unknown".into(),
                credential: "0123456789abcdef".into(),
                clients: ["vscode".into(), "claude-code".into()],
                source: "127.0.0.1".into(),
            },
            AuditEvent::UnapprovedSource {
                route: "default".into(),
                client: "ci-agent".into(),
                user: None,
                credential: Some("0123456789abcdef".into()),
                source: "203.0.113.9".into(),
                status: 200,
            },
            AuditEvent::HeaderMismatch {
                route: "default".into(),
                kind: MismatchKind::Name,
                header: "add".into(),
                body: "explode".into(),
                client: "unknown".into(),
                credential: None,
                source: "127.0.0.1".into(),
            },
            AuditEvent::CredentialRotated {
                client: "ci-agent".into(),
                old_credential: "0123456789abcdef".into(),
                new_credential: "fedcba9876543210".into(),
                old_first_seen: "2026-09-01T10:00:00Z".into(),
                old_last_seen: "2026-12-01T09:00:00Z".into(),
                new_first_seen: "2026-12-01T08:55:00Z".into(),
            },
            AuditEvent::StoppedRefreshing {
                route: "default".into(),
                client: "vscode".into(),
                user: Some("user:default/alice".into()),
                credential: "0123456789abcdef".into(),
                source: "127.0.0.1".into(),
                expired_seconds: 3600,
            },
            AuditEvent::StoppedRefreshingEnd {
                route: "default".into(),
                client: "vscode".into(),
                user: None,
                credential: "0123456789abcdef".into(),
                source: "127.0.0.1".into(),
                first: "2026-12-01T08:00:00Z".into(),
                latest: "2026-12-01T09:00:00Z".into(),
                count: 200,
                expired_seconds: 7200,
            },
            AuditEvent::StoreLost {
                cluster: "default".into(),
                store: "redis://valkey:6379".into(),
                error: "refused".into(),
            },
            AuditEvent::StoreRegained {
                cluster: "default".into(),
                store: "redis://valkey:6379".into(),
                down_seconds: 4.5,
            },
        ];
        assert_eq!(events.len(), AuditEvent::NAMES.len(), "every kind of event is checked");
        for e in events {
            let name = e.name();
            let v: serde_json::Value = serde_json::to_value(AuditLine::new(e)).unwrap();
            assert_eq!(v["event"], name);
            assert_eq!(v["schema"], SCHEMA);
        }
        let v = serde_json::to_value(AuditLine::new(AuditEvent::AuthFailureSummary {
            scope: Scope::Credential,
            key: "k".into(),
            count: 2,
            by_reason: BTreeMap::from([(Reason::RevokedToken, 2)]),
        }))
        .unwrap();
        assert_eq!(v["by_reason"]["revoked_token"], 2);
        assert_eq!(v["scope"], "credential");
    }
}
