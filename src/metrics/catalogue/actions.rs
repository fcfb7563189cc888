//! The actions API: every Backstage plugin serves its actions at
//! `/api/{plugin}/.backstage/actions/v1/actions[/{id}/invoke]`, the same tools as MCP reached
//! without it. `mcp.server.operation.duration` stays MCP's; these are the actions API's own.

use super::{histogram, Buckets, Spec};

pub const ACTIONS_API_DURATION: Spec = histogram(
    "mcp_tap_actions_api_duration_seconds",
    Buckets::Operation,
    &["plugin", "operation", "gen_ai_tool_name", "outcome"],
    "Actions API requests (operation list or invoke) from the request to the end of the answer, by plugin, tool (the MCP name of the action) and outcome.",
);
