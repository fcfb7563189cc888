//! One finished MCP operation as the two semantic-convention histograms see it: the server side
//! (`mcp.server.operation.duration`, what the client waited) and the client side
//! (`mcp.client.operation.duration`, the tap's hop to the upstream, with its address and port).

use std::time::Duration;

use super::{otel, ErrorType, Metrics, StatusLabel};
use crate::mcp::method::Method;

/// One finished MCP operation, labels already bounded.
#[derive(Debug, Clone)]
pub(crate) struct Operation<'a> {
    pub route: &'a str,
    pub method: Method,
    pub tool: &'a str,
    pub prompt: &'a str,
    pub error: ErrorType,
    pub protocol_version: &'static str,
    pub http_version: &'static str,
    pub duration: Duration,
    /// The upstream hop, when the request was sent upstream.
    pub upstream: Option<Upstream<'a>>,
}

/// The tap-to-upstream hop of an operation: where it went and how long the upstream took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upstream<'a> {
    pub address: &'a str,
    pub port: &'a str,
    pub duration: Duration,
}

impl Metrics {
    pub(crate) fn record_operation(&self, op: &Operation<'_>) {
        let (code_label, status_label);
        let (error_type, rpc_code): (&str, &str) = match op.error {
            ErrorType::None => ("", ""),
            ErrorType::JsonRpc(code) => {
                code_label = self.rpc_code_label(code);
                (&code_label, &code_label)
            }
            ErrorType::Http(status) => {
                status_label = StatusLabel::new(status);
                (status_label.as_str(), "")
            }
            other => (other.fixed_label().unwrap_or_default(), ""),
        };
        let operation_name = if op.method == Method::ToolsCall { "execute_tool" } else { "" };
        let labels = [
            ("mcp_method_name", op.method.as_str()),
            ("gen_ai_tool_name", op.tool),
            ("gen_ai_prompt_name", op.prompt),
            ("gen_ai_operation_name", operation_name),
            ("error_type", error_type),
            ("rpc_response_status_code", rpc_code),
            ("mcp_protocol_version", op.protocol_version),
            ("network_transport", "tcp"),
            ("network_protocol_name", "http"),
            ("network_protocol_version", op.http_version),
            ("mcp_route", op.route),
        ];
        let values = labels.map(|(_, v)| v);
        self.operation_duration.with_label_values(&values).observe(op.duration.as_secs_f64());
        if let Some(otel) = self.otel.get() {
            otel.operation.record(op.duration.as_secs_f64(), &otel::attributes(&labels));
        }
        if let Some(up) = op.upstream {
            let [m, t, p, o, e, r, v, nt, np, _, route] = labels;
            let client = [m, t, p, o, e, r, v, nt, np, ("server_address", up.address), ("server_port", up.port), route];
            self.client_operation_duration
                .with_label_values(&client.map(|(_, v)| v))
                .observe(up.duration.as_secs_f64());
            if let Some(otel) = self.otel.get() {
                otel.client_operation.record(up.duration.as_secs_f64(), &otel::attributes(&client));
            }
        }
    }
}
