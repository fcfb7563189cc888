//! What MCP 2026-07-28 requests carry across requests: a multi round-trip retry's echoed state,
//! and tasks (the `io.modelcontextprotocol/tasks` extension) as messages name them: a
//! `tools/call` answered with a task handle, `tasks/get` answers, `notifications/tasks`.

/// A task's status (the Tasks extension, `io.modelcontextprotocol/tasks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskStatus {
    Working,
    InputRequired,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "working" => Self::Working,
            "input_required" => Self::InputRequired,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::InputRequired => "input_required",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// A task as a message names it: the hash of its id (ids are never kept), and what an answer or a
/// `notifications/tasks` says of it.
#[derive(Debug, Default, PartialEq, Clone, Copy)]
pub(crate) struct TaskSeen {
    pub id: u64,
    pub status: Option<TaskStatus>,
    /// `resultType: "task"`: the answer to a `tools/call` made a task.
    pub created: bool,
    pub ttl_ms: Option<u64>,
    pub poll_ms: Option<u64>,
}

/// What a retried request echoes (`params.requestState`, kept only as a hash) and answers
/// (`params.inputResponses`, its key set as one hash).
#[derive(Debug, Default, PartialEq, Clone, Copy)]
pub(crate) struct RetryOf {
    pub request_state: Option<u64>,
    pub input_keys: u64,
}
