//! Audit events as OTLP log records, for SIEMs fed by an OpenTelemetry Collector. Each record is
//! made from the JSON line itself, so it carries the same fields with the same redaction: the
//! body is the line, the attributes are its fields under OpenTelemetry names where one exists,
//! `event.name` is `mcp_tap.<event>`, and the trace context is the request's span.
//!
//! The SDK's batch processor drops silently when its queue is full; a gate in front of it counts
//! the records queued and not yet handed to the exporter, so a record is either queued or
//! counted as dropped, never lost unseen.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{InstrumentationScope, Key};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, SdkLogger};
use serde_json::{Map, Value};

use crate::audit::event::{self, AuditEvent};
use crate::audit::sink::Forward;
use crate::config::{Otlp, OtlpProtocol};
use crate::metrics::{ForwardLoss, ForwardOutput, Metrics};

/// The OTLP-logs output of the audit trail.
pub(crate) struct AuditLogs {
    logger: SdkLogger,
    /// Records emitted and not yet taken by the exporter.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Forward for AuditLogs {
    fn forward(&mut self, line: &str, fields: &Map<String, Value>) {
        if self.queued.load(Ordering::Acquire) >= self.capacity {
            self.metrics.record_forward_dropped(ForwardOutput::Otlp, ForwardLoss::QueueFull, 1);
            return;
        }
        let mut record = self.logger.create_log_record();
        fill(&mut record, fields, line);
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.logger.emit(record);
    }
}

/// The JSON fields that are the record's own parts, not attributes.
const RECORD_FIELDS: [&str; 4] = ["ts", "event", "trace_id", "span_id"];

fn fill(record: &mut impl LogRecord, fields: &Map<String, Value>, line: &str) {
    let event = fields.get("event").and_then(Value::as_str).unwrap_or("");
    let name =
        AuditEvent::NAMES.iter().position(|n| *n == event).map_or("mcp_tap.audit", |i| AuditEvent::OTEL_NAMES[i]);
    record.set_event_name(name);
    let (number, text) = severity(event, fields.contains_key("finding"));
    record.set_severity_number(number);
    record.set_severity_text(text);
    let now = crate::clock::now();
    let ts = fields.get("ts").and_then(Value::as_str).and_then(|t| humantime::parse_rfc3339(t).ok());
    record.set_timestamp(ts.unwrap_or(now));
    record.set_observed_timestamp(now);
    record.set_body(AnyValue::String(line.to_string().into()));
    let hex = |k: &str| fields.get(k).and_then(Value::as_str);
    if let (Some(t), Some(s)) = (hex("trace_id"), hex("span_id")) {
        if let (Ok(t), Ok(s)) = (TraceId::from_hex(t), SpanId::from_hex(s)) {
            record.set_trace_context(t, s, None);
        }
    }
    for (k, v) in fields {
        if event == "operation" && k == "outcome" && v.as_str() != Some("ok") {
            record.add_attribute(Key::from_static_str("error.type"), any(v.clone()));
        }
        if !RECORD_FIELDS.contains(&k.as_str()) {
            record.add_attribute(attribute_key(event, k.clone()), any(v.clone()));
        }
    }
}

/// The OpenTelemetry severity of an event (`event::Severity`).
fn severity(event: &str, finding: bool) -> (Severity, &'static str) {
    match event::Severity::of(event, finding) {
        event::Severity::Warning => (Severity::Warn, "WARN"),
        event::Severity::Error => (Severity::Error, "ERROR"),
        event::Severity::Info => (Severity::Info, "INFO"),
    }
}

/// The OpenTelemetry name of a JSON field, where the conventions have one; `mcp_tap.<field>`
/// otherwise. `reason` of a refusal is its `error.type` (a failed operation's `outcome` is
/// `error.type` as well, beside `mcp_tap.outcome`).
pub(crate) fn attribute_key(event: &str, field: String) -> Key {
    let known = match field.as_str() {
        "source" => "client.address",
        "user" => "user.id",
        "mcp_method" => "mcp.method.name",
        "tool" => "gen_ai.tool.name",
        "http_method" => "http.request.method",
        "status" => "http.response.status_code",
        "user_agent" => "user_agent.original",
        "jsonrpc_id" => "jsonrpc.request.id",
        "session_id" => "mcp.session.id",
        "route" => "mcp.route",
        "reason" if event == "auth_failure" => "error.type",
        _ => return Key::from(format!("mcp_tap.{field}")),
    };
    Key::from_static_str(known)
}

fn any(v: Value) -> AnyValue {
    match v {
        Value::String(s) => AnyValue::String(s.into()),
        Value::Bool(b) => AnyValue::Boolean(b),
        Value::Number(n) => n.as_i64().map_or_else(|| AnyValue::Double(n.as_f64().unwrap_or(0.0)), AnyValue::Int),
        Value::Array(items) => AnyValue::ListAny(Box::new(items.into_iter().map(any).collect())),
        Value::Object(map) => AnyValue::Map(Box::new(map.into_iter().map(|(k, v)| (Key::from(k), any(v))).collect())),
        Value::Null => AnyValue::String("".into()),
    }
}

/// Hands batches to the exporter: opens the gate by what it takes, counts what fails.
struct CountingLogs<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl<E: std::fmt::Debug> std::fmt::Debug for CountingLogs<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingLogs").field("inner", &self.inner).finish()
    }
}

impl<E: LogExporter> LogExporter for CountingLogs<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count();
        self.queued.fetch_sub(n, Ordering::AcqRel);
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, records = n, "OTLP log export failed; those audit events are dropped");
            self.metrics.record_otlp_export_failure(crate::metrics::OtlpSignal::Logs);
            self.metrics.record_forward_dropped(ForwardOutput::Otlp, ForwardLoss::ExportFailed, n as u64);
        }
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The logs pipeline: OTLP exporter, batch processor behind the gate, provider.
pub(super) fn start(
    config: &Otlp,
    protocol: OtlpProtocol,
    resource: opentelemetry_sdk::Resource,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(SdkLoggerProvider, AuditLogs)> {
    let exporter = match protocol {
        OtlpProtocol::Grpc => {
            super::tonic_options(opentelemetry_otlp::LogExporter::builder().with_tonic(), config)?.build()?
        }
        OtlpProtocol::HttpProtobuf => {
            super::http_options(opentelemetry_otlp::LogExporter::builder().with_http(), config, "/v1/logs")?.build()?
        }
    };
    let capacity = config.log_queue_size.max(1);
    let queued = Arc::new(AtomicUsize::new(0));
    let counting = CountingLogs { inner: exporter, queued: queued.clone(), metrics: metrics.clone() };
    let delay = config.interval.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(capacity)
        .with_max_export_batch_size(512.min(capacity))
        .with_scheduled_delay(delay)
        .build();
    let processor = BatchLogProcessor::builder(counting).with_batch_config(batch).build();
    let provider = SdkLoggerProvider::builder().with_log_processor(processor).with_resource(resource).build();
    let scope = InstrumentationScope::builder("mcp-tap").with_version(env!("CARGO_PKG_VERSION")).build();
    let logger = provider.logger_with_scope(scope);
    Ok((provider, AuditLogs { logger, queued, capacity, metrics }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_take_opentelemetry_names_where_the_conventions_have_one() {
        let key = |event: &str, field: &str| attribute_key(event, field.to_string()).as_str().to_string();
        assert_eq!(key("auth_failure", "source"), "client.address");
        assert_eq!(key("auth_failure", "reason"), "error.type");
        assert_eq!(key("operation", "outcome"), "mcp_tap.outcome");
        assert_eq!(key("burst_start", "scope"), "mcp_tap.scope");
        assert_eq!(key("operation", "tool"), "gen_ai.tool.name");
    }

    #[test]
    fn findings_warn_and_the_taps_own_failures_are_errors() {
        assert_eq!(severity("burst_start", true).1, "WARN");
        assert_eq!(severity("store_lost", false).1, "ERROR");
        assert_eq!(severity("auth_failure", false).1, "INFO");
    }
}
