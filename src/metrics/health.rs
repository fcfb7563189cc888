//! The tap's own health: config loads and reloads, and OTLP export failures. Registered in the
//! same registry as the rest.

use prometheus::{Gauge, IntCounterVec, IntGauge, Registry};

use super::{catalogue, counter_of, float_gauge_of, int_gauge_of};

pub(super) struct HealthMetrics {
    config_reload_ok: IntGauge,
    config_reload_timestamp: Gauge,
    config_reloads: IntCounterVec,
    otlp_failures: IntCounterVec,
}

impl HealthMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            config_reload_ok: int_gauge_of(registry, &catalogue::CONFIG_RELOAD_OK),
            config_reload_timestamp: float_gauge_of(registry, &catalogue::CONFIG_RELOAD_TIMESTAMP)
                .with_label_values(&[] as &[&str]),
            config_reloads: counter_of(registry, &catalogue::CONFIG_RELOADS),
            otlp_failures: counter_of(registry, &catalogue::OTLP_FAILURES),
        }
    }

    pub(super) fn preinit(&self) {
        for result in ["success", "failure"] {
            self.config_reloads.with_label_values(&[result]);
        }
        for signal in ["metrics", "traces"] {
            self.otlp_failures.with_label_values(&[signal]);
        }
    }
}

impl super::Metrics {
    /// A config load succeeded (at start-up or on reload).
    pub(crate) fn record_config_loaded(&self, reload: bool) {
        self.health.config_reload_ok.set(1);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.health.config_reload_timestamp.set(now.as_secs_f64());
        if reload {
            self.health.config_reloads.with_label_values(&["success"]).inc();
        }
    }

    /// A reload was refused; the running config stays.
    pub(crate) fn record_config_reload_failed(&self) {
        self.health.config_reload_ok.set(0);
        self.health.config_reloads.with_label_values(&["failure"]).inc();
    }

    pub(crate) fn record_otlp_export_failure(&self, signal: &str) {
        self.health.otlp_failures.with_label_values(&[signal]).inc();
    }
}
