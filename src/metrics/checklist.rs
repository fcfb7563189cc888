//! The production-checklist gauges whose label sets follow the state: credential age per client,
//! tools advertised and called per client. Each export replaces the whole set, removing series of
//! clients that are gone, so a forgotten client does not keep an alert firing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{catalogue, counter_of, gauge_of, int_gauge_of};

pub(crate) struct ChecklistMetrics {
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
pub(crate) type ToolCounts = BTreeMap<(String, String), (usize, usize)>;

impl ChecklistMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        Self {
            first_seen: gauge_of(r, &catalogue::CREDENTIAL_FIRST_SEEN),
            rotation_period: int_gauge_of(r, &catalogue::CREDENTIAL_ROTATION_PERIOD),
            tools_advertised: gauge_of(r, &catalogue::CLIENT_TOOLS_ADVERTISED),
            tools_called: gauge_of(r, &catalogue::CLIENT_TOOLS_CALLED),
            evictions: counter_of(r, &catalogue::CHECKLIST_EVICTIONS),
            state_errors: counter_of(r, &catalogue::CHECKLIST_STATE_ERRORS),
            exported: Mutex::default(),
        }
    }

    pub(crate) fn preinit(&self) {
        self.evictions.with_label_values(&["credential"]);
        for op in ["read", "write"] {
            self.state_errors.with_label_values(&[op]);
        }
    }

    pub(crate) fn set_rotation_period(&self, seconds: u64) {
        self.rotation_period.set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    pub(crate) fn record_eviction(&self) {
        self.evictions.with_label_values(&["credential"]).inc();
    }

    pub(crate) fn record_state_error(&self, operation: &'static str) {
        self.state_errors.with_label_values(&[operation]).inc();
    }

    /// Replaces the first-seen gauges with `clients` (client → Unix seconds).
    pub(crate) fn export_first_seen(&self, clients: &BTreeMap<String, u64>) {
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
    pub(crate) fn export_tools(&self, counts: &ToolCounts) {
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
