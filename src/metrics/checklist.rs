//! The production-checklist gauges whose label sets follow the state: credential age per client,
//! tools advertised and called per client. Each export replaces the whole set, removing series of
//! clients that are gone, so a forgotten client does not keep an alert firing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter, gauge};

pub struct ChecklistMetrics {
    first_seen: IntGaugeVec,
    rotation_period: IntGauge,
    tools_advertised: IntGaugeVec,
    tools_called: IntGaugeVec,
    evictions: IntCounterVec,
    state_errors: IntCounterVec,
    /// Label sets exported last time, per gauge.
    exported: Mutex<Exported>,
}

#[derive(Default)]
struct Exported {
    clients: BTreeSet<String>,
    tools: BTreeSet<(String, String)>,
}

/// Per route and client: tools advertised to it, distinct tools it called.
pub type ToolCounts = BTreeMap<(String, String), (usize, usize)>;

impl ChecklistMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        let rotation_period = IntGauge::new(
            "mcp_tap_credential_rotation_period_seconds",
            "checklist.rotation_period: how old a static token may get before it should be rotated.",
        )
        .expect("valid metric");
        r.register(Box::new(rotation_period.clone())).expect("unique metric");
        Self {
            first_seen: gauge(
                r,
                "mcp_tap_credential_first_seen_timestamp_seconds",
                "When the tap first saw the static token each client uses now (Unix time; min across replicas).",
                &["client"],
            ),
            rotation_period,
            tools_advertised: gauge(
                r,
                "mcp_tap_client_tools_advertised",
                "Tools the upstream advertised to this client in its own last tools/list.",
                &["mcp_route", "client"],
            ),
            tools_called: gauge(
                r,
                "mcp_tap_client_tools_called",
                "Distinct tools this client called within checklist.window.",
                &["mcp_route", "client"],
            ),
            evictions: counter(
                r,
                "mcp_tap_checklist_evictions_total",
                "Credentials forgotten before checklist.window because checklist.max_credentials was reached.",
                &["kind"],
            ),
            state_errors: counter(
                r,
                "mcp_tap_checklist_state_errors_total",
                "Failures to read or replace the checklist state file.",
                &["operation"],
            ),
            exported: Mutex::default(),
        }
    }

    pub fn preinit(&self) {
        self.evictions.with_label_values(&["credential"]);
        for op in ["read", "write"] {
            self.state_errors.with_label_values(&[op]);
        }
    }

    pub fn set_rotation_period(&self, seconds: u64) {
        self.rotation_period.set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    pub fn record_eviction(&self) {
        self.evictions.with_label_values(&["credential"]).inc();
    }

    pub fn record_state_error(&self, operation: &'static str) {
        self.state_errors.with_label_values(&[operation]).inc();
    }

    /// Replaces the first-seen gauges with `clients` (client → Unix seconds).
    pub fn export_first_seen(&self, clients: &BTreeMap<String, u64>) {
        let mut exported = self.exported.lock().expect("checklist metrics lock");
        for gone in exported.clients.iter().filter(|c| !clients.contains_key(*c)) {
            let _ = self.first_seen.remove_label_values(&[gone]);
        }
        for (client, first_seen) in clients {
            self.first_seen.with_label_values(&[client]).set(i64::try_from(*first_seen).unwrap_or(i64::MAX));
        }
        exported.clients = clients.keys().cloned().collect();
    }

    /// Replaces the tools gauges with `counts`.
    pub fn export_tools(&self, counts: &ToolCounts) {
        let mut exported = self.exported.lock().expect("checklist metrics lock");
        for gone in exported.tools.iter().filter(|k| !counts.contains_key(*k)) {
            let _ = self.tools_advertised.remove_label_values(&[&gone.0, &gone.1]);
            let _ = self.tools_called.remove_label_values(&[&gone.0, &gone.1]);
        }
        for ((route, client), (advertised, called)) in counts {
            let count = |n: &usize| i64::try_from(*n).unwrap_or(i64::MAX);
            self.tools_advertised.with_label_values(&[route, client]).set(count(advertised));
            self.tools_called.with_label_values(&[route, client]).set(count(called));
        }
        exported.tools = counts.keys().cloned().collect();
    }
}
