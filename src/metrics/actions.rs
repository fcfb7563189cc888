//! The actions API's own duration histogram (`mcp.server.operation.duration` stays MCP's).

use std::time::Duration;

use super::{otel, Metrics, Outcome};

/// One actions API request, as its histogram records it.
pub(crate) struct ActionsCall<'a> {
    /// The bounded plugin label.
    pub plugin: &'a str,
    /// `list` or `invoke`.
    pub operation: &'static str,
    /// The bounded tool label (empty for a list).
    pub tool: &'a str,
    pub outcome: Outcome,
    pub duration: Duration,
}

impl Metrics {
    pub(crate) fn record_actions_call(&self, c: &ActionsCall<'_>) {
        let labels = [
            ("plugin", c.plugin),
            ("operation", c.operation),
            ("gen_ai_tool_name", c.tool),
            ("outcome", c.outcome.as_str()),
        ];
        self.actions_api.with_label_values(&labels.map(|(_, v)| v)).observe(c.duration.as_secs_f64());
        if let Some(h) = self.otel.get() {
            h.actions_api.record(c.duration.as_secs_f64(), &otel::attributes(&labels));
        }
    }
}
