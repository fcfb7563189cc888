//! Multi round-trip calls (MCP 2026-07-28): a request the server answers with `input_required`
//! is retried by the client with the input, and the rounds are one operation.

use super::{counter, histogram, Buckets, Spec};

pub const INPUT_REQUIRED: Spec = counter(
    "mcp_tap_input_required_total",
    &["mcp_route", "mcp_method_name", "gen_ai_tool_name"],
    "Results asking the client for more input before the request can complete (MCP 2026-07-28 rounds).",
);

pub const INPUT_WAIT: Spec = histogram(
    "mcp_tap_input_wait_duration_seconds",
    Buckets::Operation,
    &["mcp_route", "mcp_method_name", "gen_ai_tool_name"],
    "Time a call waited for the client's input (the person answering an elicitation or approving a sample): from the input_required answer to the retry, or on the handshake generation from the server's question on the call's stream to the client's answer; part of the operation's duration.",
);

pub const OPERATION_ROUNDS: Spec = histogram(
    "mcp_tap_operation_rounds",
    Buckets::Rounds,
    &["mcp_route", "mcp_method_name", "gen_ai_tool_name"],
    "Requests one multi round-trip operation took (the first and each retry with input), observed when it ends.",
);
