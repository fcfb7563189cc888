//! The auth-audit part of the metrics: failures by reason and client, who called what, bursts,
//! and the audit trail's own health. Registered in the same registry as the rest.

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::{counter, gauge, AuditLoss, Outcome, Reason, Scope};
use crate::mcp::method::Method;

pub struct AuthMetrics {
    failures: IntCounterVec,
    client_operations: IntCounterVec,
    burst_active: IntGaugeVec,
    bursts: IntCounterVec,
    findings: IntCounterVec,
    burst_evictions: IntCounterVec,
    audit_events: IntCounterVec,
    audit_write_errors: IntCounterVec,
    probe_success: IntGaugeVec,
    probe_duration: prometheus::GaugeVec,
}

impl AuthMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            failures: counter(
                registry,
                "mcp_tap_auth_failures_total",
                "Requests Backstage refused (401/403) and delegated-access denials in tool results.",
                &["mcp_route", "http_response_status_code", "reason", "client", "mcp_method_name"],
            ),
            client_operations: counter(
                registry,
                "mcp_tap_client_operations_total",
                "MCP operations by client (Backstage static-token subject) and outcome.",
                &["client", "mcp_method_name", "gen_ai_tool_name", "outcome"],
            ),
            burst_active: gauge(
                registry,
                "mcp_tap_auth_burst_active",
                "Keys (sources, credentials, global) currently in an auth-failure burst.",
                &["scope"],
            ),
            bursts: counter(registry, "mcp_tap_auth_bursts_total", "Auth-failure bursts started.", &["scope"]),
            findings: counter(
                registry,
                "mcp_tap_findings_total",
                "Findings raised (something a person should look at), by kind: one per incident.",
                &["kind"],
            ),
            burst_evictions: counter(
                registry,
                "mcp_tap_auth_burst_keys_evicted_total",
                "Burst-tracking keys forgotten because the per-scope cap was reached.",
                &["scope"],
            ),
            audit_events: counter(registry, "mcp_tap_audit_events_total", "Audit lines queued, by event.", &["event"]),
            audit_write_errors: counter(
                registry,
                "mcp_tap_audit_write_errors_total",
                "Audit lines lost: the queue was full, or the file could not be written.",
                &["cause"],
            ),
            probe_success: gauge(
                registry,
                "mcp_tap_probe_success",
                "1 if the canary's last run of this check passed.",
                &["check"],
            ),
            probe_duration: {
                let g = prometheus::GaugeVec::new(
                    prometheus::Opts::new(
                        "mcp_tap_probe_duration_seconds",
                        "Duration of the canary's last run of this check.",
                    ),
                    &["check"],
                )
                .expect("valid metric");
                registry.register(Box::new(g.clone())).expect("unique metric");
                g
            },
        }
    }
}

impl super::Metrics {
    /// A finding raised (`kind` one of the audit's finding kinds).
    pub fn record_finding(&self, kind: &str) {
        self.auth.findings.with_label_values(&[kind]).inc();
    }

    pub fn preinit_findings(&self, kinds: &[&str]) {
        for kind in kinds {
            self.auth.findings.with_label_values(&[kind]);
        }
    }

    /// `method` is `None` when the refused request carried no decodable MCP call.
    pub fn record_auth_failure(&self, route: &str, status: u16, reason: Reason, client: &str, method: Option<Method>) {
        let method = method.map_or("", Method::as_str);
        let status = super::StatusLabel::new(status);
        self.auth.failures.with_label_values(&[route, status.as_str(), reason.as_str(), client, method]).inc();
    }

    /// Creates the series a route and client may produce, at 0, so `rate()` and alerts work from
    /// the first failure on.
    pub fn preinit_auth_failures(&self, route: &str, reasons: &[Reason], clients: &[&str], methods: &[Method]) {
        for reason in reasons {
            let status = reason.status().to_string();
            for client in clients {
                for method in methods {
                    self.auth.failures.with_label_values(&[route, &status, reason.as_str(), client, method.as_str()]);
                }
            }
        }
    }

    pub fn record_client_operation(&self, client: &str, method: Method, tool: &str, outcome: Outcome) {
        self.auth.client_operations.with_label_values(&[client, method.as_str(), tool, outcome.as_str()]).inc();
    }

    pub fn record_burst_started(&self, scope: Scope) {
        self.auth.bursts.with_label_values(&[scope.as_str()]).inc();
        self.auth.burst_active.with_label_values(&[scope.as_str()]).inc();
    }

    pub fn record_burst_ended(&self, scope: Scope) {
        self.auth.burst_active.with_label_values(&[scope.as_str()]).dec();
    }

    /// Zero series for the audit trail's own health; `events` are the audit event names.
    pub fn preinit_audit(&self, events: &[&str]) {
        for event in events {
            self.auth.audit_events.with_label_values(&[event]);
        }
        for cause in AuditLoss::ALL {
            self.auth.audit_write_errors.with_label_values(&[cause.as_str()]);
        }
    }

    pub fn preinit_bursts(&self) {
        for s in Scope::ALL.iter().map(|s| s.as_str()) {
            self.auth.bursts.with_label_values(&[s]);
            self.auth.burst_active.with_label_values(&[s]);
            self.auth.burst_evictions.with_label_values(&[s]);
        }
    }

    pub fn record_burst_eviction(&self, scope: Scope) {
        self.auth.burst_evictions.with_label_values(&[scope.as_str()]).inc();
    }

    pub fn record_probe(&self, check: &str, ok: bool, seconds: f64) {
        self.auth.probe_success.with_label_values(&[check]).set(i64::from(ok));
        self.auth.probe_duration.with_label_values(&[check]).set(seconds);
    }

    pub fn record_audit_event(&self, event: &str) {
        self.auth.audit_events.with_label_values(&[event]).inc();
    }

    pub fn record_audit_write_error(&self, cause: AuditLoss) {
        self.auth.audit_write_errors.with_label_values(&[cause.as_str()]).inc();
    }
}
