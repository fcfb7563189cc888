//! The metrics of the OpenTelemetry MCP semantic conventions: the server side (client to tap,
//! what clients experience) and the client side (the tap's hop to the upstream).

use super::{histogram, Buckets, Spec};

/// Labels of `mcp_server_operation_duration_seconds`, in the order `record_operation` fills them.
pub const OPERATION_LABELS: [&str; 11] = [
    "mcp_method_name",
    "gen_ai_tool_name",
    "gen_ai_prompt_name",
    "gen_ai_operation_name",
    "error_type",
    "rpc_response_status_code",
    "mcp_protocol_version",
    "network_transport",
    "network_protocol_name",
    "network_protocol_version",
    "mcp_route",
];

pub const OPERATION_DURATION: Spec = histogram(
    "mcp_server_operation_duration_seconds",
    Buckets::Operation,
    &OPERATION_LABELS,
    "MCP request received to matching response sent to the client (202 for notifications).",
);

pub const SESSION_DURATION: Spec = histogram(
    "mcp_server_session_duration_seconds",
    Buckets::Session,
    &["mcp_protocol_version", "network_transport", "network_protocol_name", "error_type", "mcp_route"],
    "Duration of MCP sessions, by header session id or inferred for stateless upstreams.",
);

/// Labels of `mcp_client_operation_duration_seconds`, in the order they are filled.
pub const CLIENT_OPERATION_LABELS: [&str; 12] = [
    "mcp_method_name",
    "gen_ai_tool_name",
    "gen_ai_prompt_name",
    "gen_ai_operation_name",
    "error_type",
    "rpc_response_status_code",
    "mcp_protocol_version",
    "network_transport",
    "network_protocol_name",
    "server_address",
    "server_port",
    "mcp_route",
];

pub const CLIENT_OPERATION_DURATION: Spec = histogram(
    "mcp_client_operation_duration_seconds",
    Buckets::Operation,
    &CLIENT_OPERATION_LABELS,
    "The tap-to-upstream hop: MCP request sent upstream to its matching response received (the upstream's own latency).",
);

pub const STREAM_DURATION: Spec = histogram(
    "mcp_tap_stream_duration_seconds",
    Buckets::Session,
    &["mcp_route", "mcp_method_name", "error_type"],
    "How long long-lived MCP streams (subscriptions/listen) stayed open; not operation latency.",
);
