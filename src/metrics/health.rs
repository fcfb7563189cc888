//! The tap's own health: config loads and reloads, and OTLP export failures. Registered in the
//! same registry as the rest.

use prometheus::{Gauge, IntCounterVec, IntGauge, Registry};

use super::counter;

pub struct HealthMetrics {
    config_reload_ok: IntGauge,
    config_reload_timestamp: Gauge,
    config_reloads: IntCounterVec,
    otlp_failures: IntCounterVec,
}

impl HealthMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let config_reload_ok = IntGauge::new(
            "mcp_tap_config_last_reload_successful",
            "1 if the last load of the config file succeeded (the start-up load counts).",
        )
        .expect("valid metric");
        registry.register(Box::new(config_reload_ok.clone())).expect("unique metric");
        let config_reload_timestamp = Gauge::new(
            "mcp_tap_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of the config file.",
        )
        .expect("valid metric");
        registry.register(Box::new(config_reload_timestamp.clone())).expect("unique metric");
        Self {
            config_reload_ok,
            config_reload_timestamp,
            config_reloads: counter(
                registry,
                "mcp_tap_config_reloads_total",
                "Reloads of the config file after start-up, by result.",
                &["result"],
            ),
            otlp_failures: counter(
                registry,
                "mcp_tap_otlp_export_failures_total",
                "OTLP exports that failed (collector down, slow or refusing), by signal.",
                &["signal"],
            ),
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
    pub fn record_config_loaded(&self, reload: bool) {
        self.health.config_reload_ok.set(1);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.health.config_reload_timestamp.set(now.as_secs_f64());
        if reload {
            self.health.config_reloads.with_label_values(&["success"]).inc();
        }
    }

    /// A reload was refused; the running config stays.
    pub fn record_config_reload_failed(&self) {
        self.health.config_reload_ok.set(0);
        self.health.config_reloads.with_label_values(&["failure"]).inc();
    }

    pub fn record_otlp_export_failure(&self, signal: &str) {
        self.health.otlp_failures.with_label_values(&[signal]).inc();
    }
}
