//! The OpenTelemetry side of the metrics: names, units and dotted attribute keys translated from
//! the Prometheus ones (the inverse of the OpenTelemetry→Prometheus rules), and the SDK histograms
//! recorded alongside the registry's when OTLP export is on. The exporter hands in a `Meter`.

use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::KeyValue;

/// The OpenTelemetry name and unit of a Prometheus metric name (the inverse of the
/// OpenTelemetry→Prometheus rules: dots to underscores, a unit suffix, `_total` on counters).
pub(crate) fn otel_name(prometheus: &str) -> (String, &'static str) {
    match prometheus {
        "mcp_server_operation_duration_seconds" => return ("mcp.server.operation.duration".into(), "s"),
        "mcp_server_session_duration_seconds" => return ("mcp.server.session.duration".into(), "s"),
        "mcp_client_operation_duration_seconds" => return ("mcp.client.operation.duration".into(), "s"),
        _ => {}
    }
    let base = prometheus.strip_suffix("_total").unwrap_or(prometheus);
    let (base, unit) = if let Some(b) = base.strip_suffix("_seconds") {
        (b, "s")
    } else if let Some(b) = base.strip_suffix("_bytes") {
        (b, "By")
    } else {
        (base, "")
    };
    let name = if let Some(rest) = base.strip_prefix("mcp_tap_") {
        format!("mcp_tap.{rest}")
    } else if let Some(rest) = base.strip_prefix("process_") {
        format!("process.{rest}")
    } else {
        base.to_string()
    };
    (name, unit)
}

/// The dotted OpenTelemetry attribute key of a Prometheus label.
pub(crate) fn otel_key(label: &str) -> &str {
    match label {
        "mcp_method_name" => "mcp.method.name",
        "gen_ai_tool_name" => "gen_ai.tool.name",
        "gen_ai_prompt_name" => "gen_ai.prompt.name",
        "gen_ai_operation_name" => "gen_ai.operation.name",
        "error_type" => "error.type",
        "rpc_response_status_code" => "rpc.response.status_code",
        "mcp_protocol_version" => "mcp.protocol.version",
        "network_transport" => "network.transport",
        "network_protocol_name" => "network.protocol.name",
        "network_protocol_version" => "network.protocol.version",
        "mcp_route" => "mcp.route",
        "server_address" => "server.address",
        "server_port" => "server.port",
        "http_request_method" => "http.request.method",
        "http_response_status_code" => "http.response.status_code",
        other => other,
    }
}

/// Attributes from label pairs; empty values are left out, as Prometheus treats them as absent.
pub(crate) fn attributes(labels: &[(&str, &str)]) -> Vec<KeyValue> {
    labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| KeyValue::new(otel_key(k).to_string(), v.to_string()))
        .collect()
}

/// The SDK histograms that mirror the registry's.
pub(crate) struct Histograms {
    pub operation: Histogram<f64>,
    pub client_operation: Histogram<f64>,
    pub session: Histogram<f64>,
    pub overhead: Histogram<f64>,
    pub tool_response_bytes: Histogram<f64>,
    pub stream: Histogram<f64>,
    pub input_wait: Histogram<f64>,
    pub rounds: Histogram<f64>,
    pub task_duration: Histogram<f64>,
    pub task_input_wait: Histogram<f64>,
    pub task_polls: Histogram<f64>,
    pub actions_api: Histogram<f64>,
}

pub(super) fn histograms(meter: &Meter, session_buckets: &[f64]) -> Histograms {
    use super::catalogue::{self, Spec};
    let h = |spec: &Spec| {
        let (name, unit) = otel_name(spec.name);
        let bounds = super::bounds(spec, session_buckets);
        meter.f64_histogram(name).with_unit(unit).with_description(spec.help).with_boundaries(bounds).build()
    };
    Histograms {
        operation: h(&catalogue::OPERATION_DURATION),
        client_operation: h(&catalogue::CLIENT_OPERATION_DURATION),
        session: h(&catalogue::SESSION_DURATION),
        overhead: h(&catalogue::PROXY_OVERHEAD),
        stream: h(&catalogue::STREAM_DURATION),
        tool_response_bytes: h(&catalogue::TOOL_RESPONSE_BYTES),
        input_wait: h(&catalogue::INPUT_WAIT),
        rounds: h(&catalogue::OPERATION_ROUNDS),
        task_duration: h(&catalogue::TASK_DURATION),
        task_input_wait: h(&catalogue::TASK_INPUT_WAIT),
        task_polls: h(&catalogue::TASK_POLLS),
        actions_api: h(&catalogue::ACTIONS_API_DURATION),
    }
}
