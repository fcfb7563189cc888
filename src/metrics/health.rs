//! The tap's own health: config loads and reloads, and OTLP export failures. Registered in the
//! same registry as the rest.

use prometheus::{Gauge, IntCounterVec, IntGauge, Registry};

use super::{
    catalogue, counter_of, float_gauge_of, int_gauge_of, ForwardLoss, ForwardOutput, Listener, OtlpSignal,
    StoreOperation,
};

pub(super) struct HealthMetrics {
    config_reload_ok: IntGauge,
    config_reload_timestamp: Gauge,
    config_reloads: IntCounterVec,
    otlp_failures: IntCounterVec,
    admin_auth_failures: IntCounterVec,
    handshake_failures: IntCounterVec,
    certificate_reloads: IntCounterVec,
    store_up: prometheus::IntGaugeVec,
    store_errors: IntCounterVec,
    forward_drops: IntCounterVec,
}

impl HealthMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            config_reload_ok: int_gauge_of(registry, &catalogue::CONFIG_RELOAD_OK),
            config_reload_timestamp: float_gauge_of(registry, &catalogue::CONFIG_RELOAD_TIMESTAMP)
                .with_label_values(&[] as &[&str]),
            config_reloads: counter_of(registry, &catalogue::CONFIG_RELOADS),
            otlp_failures: counter_of(registry, &catalogue::OTLP_FAILURES),
            admin_auth_failures: counter_of(registry, &catalogue::ADMIN_AUTH_FAILURES),
            handshake_failures: counter_of(registry, &catalogue::TLS_HANDSHAKE_FAILURES),
            certificate_reloads: counter_of(registry, &catalogue::CERTIFICATE_RELOADS),
            store_up: super::gauge_of(registry, &catalogue::STORE_UP),
            store_errors: counter_of(registry, &catalogue::STORE_ERRORS),
            forward_drops: counter_of(registry, &catalogue::AUDIT_FORWARD_DROPS),
        }
    }

    pub(super) fn preinit(&self) {
        for result in ["success", "failure"] {
            self.config_reloads.with_label_values(&[result]);
        }
        for signal in OtlpSignal::ALL {
            self.otlp_failures.with_label_values(&[signal.as_str()]);
        }
        for output in ForwardOutput::ALL {
            for cause in ForwardLoss::ALL {
                self.forward_drops.with_label_values(&[output.as_str(), cause.as_str()]);
            }
        }
        for reason in ["missing", "wrong_credentials"] {
            self.admin_auth_failures.with_label_values(&[reason]);
        }
        for listener in Listener::ALL {
            self.handshake_failures.with_label_values(&[listener.as_str()]);
            for result in ["success", "failure"] {
                self.certificate_reloads.with_label_values(&[listener.as_str(), result]);
            }
        }
    }
}

impl super::Metrics {
    /// `n` audit events an output (OTLP logs, syslog) did not deliver.
    pub(crate) fn record_forward_dropped(&self, output: ForwardOutput, cause: ForwardLoss, n: u64) {
        self.health.forward_drops.with_label_values(&[output.as_str(), cause.as_str()]).inc_by(n);
    }

    /// An admin request refused by basic auth: `missing` or `wrong_credentials`.
    pub(crate) fn record_admin_auth_failure(&self, reason: &str) {
        self.health.admin_auth_failures.with_label_values(&[reason]).inc();
    }

    /// A TLS handshake on `listener` failed.
    pub(crate) fn record_handshake_failure(&self, listener: Listener) {
        self.health.handshake_failures.with_label_values(&[listener.as_str()]).inc();
    }

    /// Cluster mode: whether the store of cluster `name` answered the last exchange.
    pub(crate) fn set_store_up(&self, name: &str, up: bool) {
        self.health.store_up.with_label_values(&[name]).set(i64::from(up));
        for operation in StoreOperation::ALL {
            self.health.store_errors.with_label_values(&[operation.as_str()]);
        }
    }

    /// Cluster mode: a connect to or an exchange with the store failed.
    pub(crate) fn record_store_error(&self, operation: StoreOperation) {
        self.health.store_errors.with_label_values(&[operation.as_str()]).inc();
    }

    /// A changed certificate was re-read on `listener`, successfully or not.
    pub(crate) fn record_certificate_reload(&self, listener: Listener, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.health.certificate_reloads.with_label_values(&[listener.as_str(), result]).inc();
    }

    /// A config load succeeded (at start-up or on reload).
    pub(crate) fn record_config_loaded(&self, reload: bool) {
        self.health.config_reload_ok.set(1);
        let now = crate::clock::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
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

    pub(crate) fn record_otlp_export_failure(&self, signal: OtlpSignal) {
        self.health.otlp_failures.with_label_values(&[signal.as_str()]).inc();
    }
}
