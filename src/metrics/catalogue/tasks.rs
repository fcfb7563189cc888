//! Tasks (the `io.modelcontextprotocol/tasks` extension of MCP 2026-07-28): a `tools/call` the
//! server answers with a task handle, followed by the client's polls to its end.

use super::{counter, histogram, Buckets, Spec};

const LABELS: &[&str] = &["mcp_route", "gen_ai_tool_name"];

pub const TASKS_CREATED: Spec = counter(
    "mcp_tap_tasks_created_total",
    LABELS,
    "Tool calls the server answered with a task handle (resultType task).",
);

pub const TASK_DURATION: Spec = histogram(
    "mcp_tap_task_duration_seconds",
    Buckets::Session,
    &["mcp_route", "gen_ai_tool_name", "task_status"],
    "Lifetime of a task from its creation to the terminal status (completed, failed, cancelled) a tasks/get answer or notifications/tasks showed.",
);

pub const TASK_INPUT_WAIT: Spec = histogram(
    "mcp_tap_task_input_wait_seconds",
    Buckets::Session,
    LABELS,
    "Time a task spent in input_required (waiting for the client's tasks/update), observed when it ends.",
);

pub const TASK_POLLS: Spec =
    histogram("mcp_tap_task_polls", Buckets::Polls, LABELS, "tasks/get requests a task took to its end.");

pub const TASK_FAST_POLLS: Spec = counter(
    "mcp_tap_task_fast_polls_total",
    LABELS,
    "tasks/get requests sent sooner after the previous one than the pollIntervalMs the server asked for.",
);

pub const TASK_CANCELS: Spec = counter("mcp_tap_task_cancels_total", LABELS, "tasks/cancel requests for a known task.");

pub const TASKS_ORPHANED: Spec = counter(
    "mcp_tap_tasks_orphaned_total",
    LABELS,
    "Tasks no client followed to a terminal status before their ttlMs (or sessions.task_max_age) ran out.",
);
