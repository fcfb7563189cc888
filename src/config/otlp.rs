//! Config of the OpenTelemetry export: metrics, traces and audit events as logs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// OTLP push of the metrics. What is set here wins; what is left unset comes from the standard
/// `OTEL_EXPORTER_OTLP_*` / `OTEL_EXPORTER_OTLP_METRICS_*` / `OTEL_METRIC_EXPORT_*` variables.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Otlp {
    /// Collector endpoint, e.g. http://otel-collector:4317 (grpc) or http://otel-collector:4318
    /// (http/protobuf). Export is on when this or an `OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT`
    /// variable is set.
    pub endpoint: Option<String>,
    pub protocol: Option<OtlpProtocol>,
    pub headers: BTreeMap<String, String>,
    #[serde(with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Also export one SERVER span per MCP request (same endpoint and protocol).
    pub traces: bool,
    /// Share of new traces sampled; a sampled or unsampled parent is followed (parent-based).
    pub trace_sample_ratio: Option<f64>,
    /// Send the tap's span upstream as `traceparent`, so the upstream's spans join the trace.
    /// Off: the client's own `traceparent` header goes upstream unchanged.
    pub propagate_upstream: bool,
    /// Export every audit event as an OTLP log record (with an endpoint from here or
    /// `OTEL_EXPORTER_OTLP_(LOGS_)ENDPOINT`; `OTEL_LOGS_EXPORTER=none` turns it off too).
    pub logs: bool,
    /// Log records waiting for export; when full, audit events are dropped from this output and
    /// counted (`mcp_tap_audit_forward_dropped_total{output="otlp"}`).
    pub log_queue_size: usize,
}

impl Default for Otlp {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            interval: None,
            timeout: None,
            traces: false,
            trace_sample_ratio: None,
            propagate_upstream: true,
            logs: true,
            log_queue_size: 2048,
        }
    }
}

impl Otlp {
    pub fn validate(&self, p: &mut Vec<String>) {
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                p.push(format!("otlp.endpoint `{e}` must be an http:// or https:// URL"));
            }
        }
        if self.trace_sample_ratio.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            p.push("otlp.trace_sample_ratio must be between 0 and 1".into());
        }
        if self.log_queue_size == 0 {
            p.push("otlp.log_queue_size must be greater than zero".into());
        }
        if self.interval.is_some_and(|d| d.is_zero()) || self.timeout.is_some_and(|d| d.is_zero()) {
            p.push("otlp.interval and otlp.timeout must be greater than zero".into());
        }
    }
}
