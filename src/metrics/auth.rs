//! The auth-audit part of the metrics: failures by reason and client, who called what, bursts,
//! and the audit trail's own health. Registered in the same registry as the rest.

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::{catalogue, counter_of, float_gauge_of, gauge_of, AuditLoss, Outcome, Reason, Scope, Surface};
use crate::mcp::method::Method;

pub(crate) struct AuthMetrics {
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
            failures: counter_of(registry, &catalogue::AUTH_FAILURES),
            client_operations: counter_of(registry, &catalogue::CLIENT_OPERATIONS),
            burst_active: gauge_of(registry, &catalogue::BURST_ACTIVE),
            bursts: counter_of(registry, &catalogue::BURSTS),
            findings: counter_of(registry, &catalogue::FINDINGS),
            burst_evictions: counter_of(registry, &catalogue::BURST_EVICTIONS),
            audit_events: counter_of(registry, &catalogue::AUDIT_EVENTS),
            audit_write_errors: counter_of(registry, &catalogue::AUDIT_WRITE_ERRORS),
            probe_success: gauge_of(registry, &catalogue::PROBE_SUCCESS),
            probe_duration: float_gauge_of(registry, &catalogue::PROBE_DURATION),
        }
    }
}

impl super::Metrics {
    /// A finding raised (`kind` one of the audit's finding kinds).
    pub(crate) fn record_finding(&self, kind: &str) {
        self.auth.findings.with_label_values(&[kind]).inc();
    }

    pub(crate) fn preinit_findings(&self, kinds: &[&str]) {
        for kind in kinds {
            self.auth.findings.with_label_values(&[kind]);
        }
    }

    /// `method` is `None` when the refused request carried no decodable MCP call.
    pub(crate) fn record_auth_failure(
        &self,
        route: &str,
        status: u16,
        reason: Reason,
        client: &str,
        method: Option<Method>,
    ) {
        let method = method.map_or("", Method::as_str);
        let status = super::StatusLabel::new(status);
        self.auth.failures.with_label_values(&[route, status.as_str(), reason.as_str(), client, method]).inc();
    }

    /// Creates the series a route and client may produce, at 0, so `rate()` and alerts work from
    /// the first failure on.
    pub(crate) fn preinit_auth_failures(&self, route: &str, reasons: &[Reason], clients: &[&str], methods: &[Method]) {
        for reason in reasons {
            let status = reason.status().to_string();
            for client in clients {
                for method in methods {
                    self.auth.failures.with_label_values(&[route, &status, reason.as_str(), client, method.as_str()]);
                }
            }
        }
    }

    /// A client's use of a tool (or another method) on MCP (`surface` `mcp`) or the actions API.
    pub(crate) fn record_client_operation(
        &self,
        client: &str,
        surface: Surface,
        method: Method,
        tool: &str,
        outcome: Outcome,
    ) {
        let labels = [client, surface.as_str(), method.as_str(), tool, outcome.as_str()];
        self.auth.client_operations.with_label_values(&labels).inc();
    }

    pub(crate) fn record_burst_started(&self, scope: Scope) {
        self.auth.bursts.with_label_values(&[scope.as_str()]).inc();
        self.auth.burst_active.with_label_values(&[scope.as_str()]).inc();
    }

    pub(crate) fn record_burst_ended(&self, scope: Scope) {
        self.auth.burst_active.with_label_values(&[scope.as_str()]).dec();
    }

    /// The bursts active in `scope`, as the cluster store or the local detector counts them.
    pub(crate) fn set_burst_active(&self, scope: Scope, active: usize) {
        self.auth.burst_active.with_label_values(&[scope.as_str()]).set(i64::try_from(active).unwrap_or(i64::MAX));
    }

    /// Zero series for the audit trail's own health; `events` are the audit event names.
    pub(crate) fn preinit_audit(&self, events: &[&str]) {
        for event in events {
            self.auth.audit_events.with_label_values(&[event]);
        }
        for cause in AuditLoss::ALL {
            self.auth.audit_write_errors.with_label_values(&[cause.as_str()]);
        }
    }

    pub(crate) fn preinit_bursts(&self) {
        for s in Scope::ALL.iter().map(|s| s.as_str()) {
            self.auth.bursts.with_label_values(&[s]);
            self.auth.burst_active.with_label_values(&[s]);
            self.auth.burst_evictions.with_label_values(&[s]);
        }
    }

    pub(crate) fn record_burst_eviction(&self, scope: Scope) {
        self.auth.burst_evictions.with_label_values(&[scope.as_str()]).inc();
    }

    pub(crate) fn record_probe(&self, check: &str, ok: bool, seconds: f64) {
        self.auth.probe_success.with_label_values(&[check]).set(i64::from(ok));
        self.auth.probe_duration.with_label_values(&[check]).set(seconds);
    }

    pub(crate) fn record_audit_event(&self, event: &str) {
        self.auth.audit_events.with_label_values(&[event]).inc();
    }

    pub(crate) fn record_audit_write_error(&self, cause: AuditLoss) {
        self.auth.audit_write_errors.with_label_values(&[cause.as_str()]).inc();
    }
}
