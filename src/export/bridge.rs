//! The bridge from the one Prometheus registry to the OpenTelemetry SDK: name and attribute
//! translation (the inverse of the OpenTelemetry→Prometheus rules), observable instruments that
//! read the registry at each collection, and the SDK histograms recorded alongside Prometheus.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::KeyValue;
use prometheus::proto::{MetricFamily, MetricType};

use crate::metrics::catalogue::{self, Kind, Spec};
use crate::metrics::otel::{attributes, otel_name};
use crate::metrics::Metrics;

/// The counters and gauges bridged from the registry: every one in the catalogue. Histograms are
/// recorded directly (see `Histograms`).
fn bridged() -> impl Iterator<Item = &'static Spec> {
    catalogue::ALL.iter().copied().chain(catalogue::PROCESS).filter(|s| s.kind != Kind::Histogram)
}

/// One registry read per collection, shared by every bridged instrument's callback.
struct Snapshot {
    metrics: Arc<Metrics>,
    cached: Mutex<(std::time::Instant, Arc<Vec<MetricFamily>>)>,
}

impl Snapshot {
    // The SDK collects on its own thread, outside the Tokio runtime: the std clock is the one here.
    #[allow(clippy::disallowed_methods)]
    fn families(&self) -> Arc<Vec<MetricFamily>> {
        let mut c = self.cached.lock().expect("snapshot lock");
        if c.0.elapsed() > Duration::from_millis(500) {
            *c = (std::time::Instant::now(), Arc::new(self.metrics.registry().gather()));
        }
        c.1.clone()
    }
}

fn series(snapshot: &Snapshot, name: &str) -> Vec<(f64, Vec<KeyValue>)> {
    let families = snapshot.families();
    let Some(f) = families.iter().find(|f| f.name() == name) else { return Vec::new() };
    f.get_metric()
        .iter()
        .map(|m| {
            let labels: Vec<(&str, &str)> = m.get_label().iter().map(|l| (l.name(), l.value())).collect();
            let value = match f.get_field_type() {
                MetricType::COUNTER => m.get_counter().get_value(),
                _ => m.get_gauge().get_value(),
            };
            (value, attributes(&labels))
        })
        .collect()
}

/// The callback of a bridged instrument: the registry's current series of `name`.
fn observe(s: Arc<Snapshot>, name: &'static str) -> impl Fn(&dyn AsyncInstrument<f64>) + Send + Sync + 'static {
    move |obs| {
        for (v, attrs) in series(&s, name) {
            obs.observe(v, &attrs);
        }
    }
}

#[allow(clippy::disallowed_methods)] // see `Snapshot::families`
pub(super) fn bridge(meter: &Meter, metrics: Arc<Metrics>) {
    let snapshot = Arc::new(Snapshot {
        cached: Mutex::new((std::time::Instant::now() - Duration::from_secs(1), Arc::new(Vec::new()))),
        metrics,
    });
    for spec in bridged() {
        let (otel, unit) = otel_name(spec.name);
        let callback = observe(snapshot.clone(), spec.name);
        if spec.kind == Kind::Counter {
            meter
                .f64_observable_counter(otel)
                .with_unit(unit)
                .with_description(spec.help)
                .with_callback(callback)
                .build();
        } else {
            meter
                .f64_observable_gauge(otel)
                .with_unit(unit)
                .with_description(spec.help)
                .with_callback(callback)
                .build();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::otel::otel_key;

    use super::*;

    #[test]
    fn names_translate_back_to_the_prometheus_names() {
        assert_eq!(otel_name("mcp_server_operation_duration_seconds"), ("mcp.server.operation.duration".into(), "s"));
        assert_eq!(otel_name("mcp_tap_http_requests_total"), ("mcp_tap.http_requests".into(), ""));
        assert_eq!(otel_name("process_resident_memory_bytes"), ("process.resident_memory".into(), "By"));
        assert_eq!(otel_name("mcp_tap_config_last_reload_success_timestamp_seconds").1, "s");
        assert_eq!(otel_key("gen_ai_tool_name"), "gen_ai.tool.name");
        assert_eq!(attributes(&[("error_type", ""), ("mcp_route", "default")]).len(), 1);
    }
}
