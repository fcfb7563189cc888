//! The closed sets the metrics' label values come from: why an operation failed, why a session
//! ended, what went wrong upstream or in decoding. Call sites pass these, never strings.

/// Why an operation failed; `None` is success. Rendered as the `error_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    None,
    JsonRpc(i64),
    ToolError,
    Http(u16),
    Timeout,
    UpstreamUnavailable,
    StreamAborted,
    /// The client went away before the answer was complete.
    Cancelled,
}

impl ErrorType {
    /// The `error.type` value, without the label bounds (for spans); `None` on success.
    pub fn label(&self) -> Option<String> {
        match self {
            ErrorType::None => None,
            ErrorType::JsonRpc(code) => Some(code.to_string()),
            ErrorType::ToolError => Some("tool_error".into()),
            ErrorType::Http(status) => Some(status.to_string()),
            ErrorType::Timeout => Some("timeout".into()),
            ErrorType::UpstreamUnavailable => Some("upstream_unavailable".into()),
            ErrorType::StreamAborted => Some("stream_aborted".into()),
            ErrorType::Cancelled => Some("cancelled".into()),
        }
    }
}

/// Why a session ended (`mcp_tap_sessions_ended_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Delete,
    Expired,
    Idle,
    Reinitialized,
    Shutdown,
    Error,
}

impl SessionEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Expired => "expired",
            Self::Idle => "idle",
            Self::Reinitialized => "reinitialized",
            Self::Shutdown => "shutdown",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Reset,
    Tls,
}

impl UpstreamErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::Tls => "tls",
        }
    }
}

/// Why some bytes could not be decoded (`mcp_tap_decode_errors_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// A request body that is not JSON.
    RequestJson,
    /// A response body or SSE event that is not JSON.
    ResponseJson,
    /// JSON that is not a JSON-RPC message.
    NotJsonRpc,
    /// A stream that ended in the middle of an SSE event.
    SseTruncated,
}

/// Why a message was passed through without being looked at (`mcp_tap_unparsed_messages_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnparsedReason {
    RequestTooLarge,
    MessageTooLarge,
    BatchTooLarge,
    /// A body whose content type is neither JSON nor SSE.
    ContentType,
    /// A response message whose id matches no request of its exchange.
    Unmatched,
}
