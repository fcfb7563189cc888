//! Multi round-trip calls: each `input_required` round, the time the call waited for the
//! client's input, and how many requests the operation took.

use std::time::Duration;

use super::{otel, Metrics};
use crate::mcp::method::Method;

impl Metrics {
    /// One `input_required` round of a request (`tool` is empty but for `tools/call`).
    pub(crate) fn record_input_required(&self, route: &str, method: Method, tool: &str) {
        self.input_required.with_label_values(&[route, method.as_str(), tool]).inc();
    }

    /// A multi round-trip call waited `wait` for the client to come back with its input.
    pub(crate) fn record_input_wait(&self, route: &str, method: Method, tool: &str, wait: Duration) {
        self.input_wait.with_label_values(&[route, method.as_str(), tool]).observe(wait.as_secs_f64());
        if let Some(otel) = self.otel.get() {
            let labels = [("mcp_route", route), ("mcp_method_name", method.as_str()), ("gen_ai_tool_name", tool)];
            otel.input_wait.record(wait.as_secs_f64(), &otel::attributes(&labels));
        }
    }

    /// A multi round-trip operation ended after `rounds` requests.
    pub(crate) fn record_rounds(&self, route: &str, method: Method, tool: &str, rounds: u32) {
        self.operation_rounds.with_label_values(&[route, method.as_str(), tool]).observe(f64::from(rounds));
        if let Some(otel) = self.otel.get() {
            let labels = [("mcp_route", route), ("mcp_method_name", method.as_str()), ("gen_ai_tool_name", tool)];
            otel.rounds.record(f64::from(rounds), &otel::attributes(&labels));
        }
    }
}
