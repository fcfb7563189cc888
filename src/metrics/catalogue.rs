//! The catalogue of the tap's own traffic metrics: name, help and labels of each, in one place.
//! Names follow the OpenTelemetry→Prometheus rules so one dashboard reads either export.

pub(super) struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

/// Labels of `mcp_server_operation_duration_seconds`, in the order `record_operation` fills them.
pub(super) const OPERATION_LABELS: [&str; 11] = [
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

pub(super) const OPERATION_DURATION: Spec = Spec {
    name: "mcp_server_operation_duration_seconds",
    help: "MCP request received to matching response sent to the client (202 for notifications).",
    labels: &OPERATION_LABELS,
};

pub(super) const SESSION_DURATION: Spec = Spec {
    name: "mcp_server_session_duration_seconds",
    help: "Duration of MCP sessions, by header session id or inferred for stateless upstreams.",
    labels: &["mcp_protocol_version", "network_transport", "network_protocol_name", "error_type", "mcp_route"],
};

pub(super) const HTTP_REQUESTS: Spec = Spec {
    name: "mcp_tap_http_requests_total",
    help: "HTTP exchanges proxied, by route, method and status sent to the client.",
    labels: &["mcp_route", "http_request_method", "http_response_status_code"],
};

pub(super) const SESSIONS_ENDED: Spec = Spec {
    name: "mcp_tap_sessions_ended_total",
    help: "MCP sessions ended, by reason and by how the tap knows the session.",
    labels: &["mcp_route", "reason", "session_kind"],
};

pub(super) const SESSIONS_ACTIVE: Spec =
    Spec { name: "mcp_tap_sessions_active", help: "MCP sessions open now.", labels: &["mcp_route"] };

pub(super) const TOOLS_ADVERTISED: Spec = Spec {
    name: "mcp_tap_tools_advertised",
    help: "Tools in the last tools/list answer on the route.",
    labels: &["mcp_route"],
};

pub(super) const UPSTREAM_ERRORS: Spec = Spec {
    name: "mcp_tap_upstream_errors_total",
    help: "Failures talking to the upstream, by kind.",
    labels: &["mcp_route", "kind"],
};

pub(super) const PROXY_OVERHEAD: Spec = Spec {
    name: "mcp_tap_proxy_overhead_seconds",
    help: "Time the tap itself adds to an exchange (request and response header handling).",
    labels: &["mcp_route"],
};

pub(super) const DECODE_ERRORS: Spec = Spec {
    name: "mcp_tap_decode_errors_total",
    help: "Messages the tap could not decode; traffic was forwarded unchanged.",
    labels: &["kind"],
};

pub(super) const UNPARSED: Spec = Spec {
    name: "mcp_tap_unparsed_messages_total",
    help: "Messages forwarded without decoding, by reason.",
    labels: &["reason"],
};

pub(super) const LABEL_OVERFLOW: Spec = Spec {
    name: "mcp_tap_label_overflow_total",
    help: "Label values folded into _OTHER to keep series bounded.",
    labels: &["label"],
};

pub(super) const SERVER_MESSAGES: Spec = Spec {
    name: "mcp_tap_server_messages_total",
    help: "Requests and notifications the server sent to the client on a stream.",
    labels: &["mcp_route", "mcp_method_name"],
};

pub(super) const TOOL_RESPONSE_BYTES: Spec = Spec {
    name: "mcp_tap_tool_response_bytes",
    help: "Size of tools/call response bodies, by tool: which tools flood an agent's context window.",
    labels: &["mcp_route", "gen_ai_tool_name"],
};

pub(super) const STREAM_DURATION: Spec = Spec {
    name: "mcp_tap_stream_duration_seconds",
    help: "How long long-lived MCP streams (subscriptions/listen) stayed open; not operation latency.",
    labels: &["mcp_route", "mcp_method_name", "error_type"],
};

pub(super) const INPUT_REQUIRED: Spec = Spec {
    name: "mcp_tap_input_required_total",
    help: "Results asking the client for more input before the request can complete (MCP 2026-07-28 rounds).",
    labels: &["mcp_route", "mcp_method_name", "gen_ai_tool_name"],
};

pub(super) const CREDENTIAL_SHARED: Spec = Spec {
    name: "mcp_tap_credential_shared_total",
    help: "Credentials presented by a second client name within audit.shared_credential_window, by client.",
    labels: &["client"],
};

pub(super) const UNAPPROVED_SOURCE: Spec = Spec {
    name: "mcp_tap_unapproved_source_total",
    help: "Requests with a credential from outside audit.approved_networks, by client.",
    labels: &["client"],
};

pub(super) const HEADER_MISMATCH: Spec = Spec {
    name: "mcp_tap_header_mismatch_total",
    help: "Requests whose Mcp-Method or Mcp-Name header disagreed with the JSON-RPC body.",
    labels: &["kind"],
};

pub(super) const REQUESTS_REFUSED: Spec = Spec {
    name: "mcp_tap_requests_refused_total",
    help: "Clients refused by a limit (body size or deadline, header deadline, connections).",
    labels: &["limit"],
};

pub(super) const CONNECTIONS_OPEN: Spec =
    Spec { name: "mcp_tap_connections_open", help: "Client connections open now.", labels: &[] };
