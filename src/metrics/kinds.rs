//! The closed sets the metrics' label values come from: why an operation failed, why a session
//! ended, what went wrong upstream or in decoding, why a request was refused. Call sites pass
//! these, never strings.

use crate::labels::label_enum;

/// Why an operation failed; `None` is success. Rendered as the `error_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorType {
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
    pub(crate) fn label(&self) -> Option<String> {
        match self {
            ErrorType::None => None,
            ErrorType::JsonRpc(code) => Some(code.to_string()),
            ErrorType::Http(status) => Some(status.to_string()),
            other => other.fixed_label().map(str::to_string),
        }
    }

    /// The label of the kinds that carry no number.
    pub(super) fn fixed_label(&self) -> Option<&'static str> {
        match self {
            ErrorType::ToolError => Some("tool_error"),
            ErrorType::Timeout => Some("timeout"),
            ErrorType::UpstreamUnavailable => Some("upstream_unavailable"),
            ErrorType::StreamAborted => Some("stream_aborted"),
            ErrorType::Cancelled => Some("cancelled"),
            ErrorType::None | ErrorType::JsonRpc(_) | ErrorType::Http(_) => None,
        }
    }
}

label_enum! {
    /// Why a session ended (`mcp_tap_sessions_ended_total{reason}`).
    pub(crate) enum SessionEnd {
        Delete = "delete",
        Expired = "expired",
        Idle = "idle",
        Reinitialized = "reinitialized",
        Shutdown = "shutdown",
        Error = "error",
    }
}

label_enum! {
    /// How the tap knows a session (`mcp_tap_sessions_ended_total{session_kind}`): the server's
    /// `Mcp-Session-Id`, an `initialize` of a client of a stateless server, or the requests of an
    /// MCP 2026-07-28 client, which has no handshake at all.
    pub(crate) enum SessionKind {
        Header = "header",
        Inferred = "inferred",
        Stateless = "stateless",
    }
}

label_enum! {
    /// Which MCP 2026-07-28 request header disagreed with the body
    /// (`mcp_tap_header_mismatch_total{kind}`): `Mcp-Method` or `Mcp-Name`.
    pub(crate) enum MismatchKind {
        Method = "method",
        Name = "name",
        /// An `Mcp-Param-*` header against the argument its tool's schema mirrors.
        Param = "param",
    }
}

label_enum! {
    /// Which of the tap's listeners (`mcp_tap_tls_handshake_failures_total{listener}`,
    /// `mcp_tap_tls_certificate_reloads_total{listener}`).
    pub(crate) enum Listener {
        Mcp = "mcp",
        Admin = "admin",
    }
}

label_enum! {
    /// What the cluster was doing when its store failed (`mcp_tap_store_errors_total{operation}`).
    pub(crate) enum StoreOperation {
        Connect = "connect",
        Exchange = "exchange",
    }
}

label_enum! {
    /// Which OTLP signal an export failed for (`mcp_tap_otlp_export_failures_total{signal}`).
    pub(crate) enum OtlpSignal {
        Metrics = "metrics",
        Traces = "traces",
        Logs = "logs",
    }
}

label_enum! {
    /// What went wrong talking to the upstream (`mcp_tap_upstream_errors_total{kind}`).
    pub(crate) enum UpstreamErrorKind {
        Connect = "connect",
        Timeout = "timeout",
        Reset = "reset",
        Tls = "tls",
    }
}

label_enum! {
    /// Why some bytes could not be decoded (`mcp_tap_decode_errors_total{kind}`).
    pub(crate) enum DecodeErrorKind {
        /// A request body that is not JSON.
        RequestJson = "request_json",
        /// A response body or SSE event that is not JSON.
        ResponseJson = "response_json",
        /// JSON that is not a JSON-RPC message.
        NotJsonRpc = "not_jsonrpc",
        /// A stream that ended in the middle of an SSE event.
        SseTruncated = "sse_truncated",
    }
}

label_enum! {
    /// Why a message was passed through without being looked at (`mcp_tap_unparsed_messages_total{reason}`).
    pub(crate) enum UnparsedReason {
        RequestTooLarge = "request_too_large",
        MessageTooLarge = "message_too_large",
        BatchTooLarge = "batch_too_large",
        /// A body whose content type is neither JSON nor SSE.
        ContentType = "content_type",
        /// A response message whose id matches no request of its exchange.
        Unmatched = "unmatched",
        /// The bytes held for decoding reached `limits.decode_budget_bytes`: streamed undecoded.
        DecodeBudget = "decode_budget",
    }
}

label_enum! {
    /// Which label a value was folded into `_OTHER` for (`mcp_tap_label_overflow_total{label}`).
    pub(crate) enum OverflowLabel {
        Route = "mcp_route",
        Tool = "gen_ai_tool_name",
        Prompt = "gen_ai_prompt_name",
        RpcCode = "rpc_response_status_code",
        /// The session tracker was full.
        Session = "session",
        /// The table of multi round-trip calls waiting for input was full (`sessions.max_input_waits`).
        InputWait = "input_wait",
        /// More requests cancelled by `notifications/cancelled` at once than `sessions.max_tracked`.
        Cancellation = "cancellation",
        /// More tasks followed at once than `sessions.max_tasks`.
        Task = "task",
        /// More client names than `clients.max_names`.
        Client = "client",
        /// More plugins answering on the actions API than `labels.max_plugins`.
        Plugin = "plugin",
    }
}

label_enum! {
    /// How a client reached a tool: MCP, or a plugin's actions API.
    pub(crate) enum Surface {
        Mcp = "mcp",
        ActionsApi = "actions_api",
    }
}

label_enum! {
    /// `outcome` of `mcp_tap_client_operations_total`.
    pub(crate) enum Outcome {
        Ok = "ok",
        Error = "error",
        ToolError = "tool_error",
        Denied = "denied",
        /// A `server/discover` the server refused (it predates MCP 2026-07-28; the client falls
        /// back to `initialize`): negotiation, not an error.
        VersionRefused = "version_refused",
    }
}

impl Outcome {
    /// The outcome of an operation of `method` that ended with `error`; `denied`: a tool result
    /// that says the caller may not use it.
    pub(crate) fn of(method: crate::mcp::method::Method, error: ErrorType, denied: bool) -> Self {
        match error {
            ErrorType::JsonRpc(_) | ErrorType::Http(400 | 404 | 405)
                if method == crate::mcp::method::Method::ServerDiscover =>
            {
                Outcome::VersionRefused
            }
            ErrorType::None => Outcome::Ok,
            ErrorType::ToolError if denied => Outcome::Denied,
            ErrorType::ToolError => Outcome::ToolError,
            ErrorType::Http(401 | 403) => Outcome::Denied,
            _ => Outcome::Error,
        }
    }
}

label_enum! {
    /// Why a request was refused (`mcp_tap_auth_failures_total{reason}`).
    pub(crate) enum Reason {
        MissingCredentials = "missing_credentials",
        MalformedAuthorization = "malformed_authorization",
        UnknownToken = "unknown_token",
        RevokedToken = "revoked_token",
        PluginNotAllowed = "plugin_not_allowed",
        DelegationDenied = "delegation_denied",
        /// Backstage user tokens (JWTs), checked by the tap against the upstream's JWKS.
        TokenExpired = "token_expired",
        TokenNotYetValid = "token_not_yet_valid",
        UnknownSigningKey = "unknown_signing_key",
        BadSignature = "bad_signature",
        WrongAudience = "wrong_audience",
        WrongTokenType = "wrong_token_type",
        MalformedJwt = "malformed_jwt",
        /// Backstage's rate limiter answered 429.
        RateLimited = "rate_limited",
        /// A tool advertised on the route to others, missing from this caller's own list.
        HiddenDenial = "hidden_denial",
        Other = "other",
    }
}

impl Reason {
    /// The HTTP status this reason arrives with from Backstage.
    pub(crate) fn status(self) -> u16 {
        match self {
            Reason::PluginNotAllowed => 403,
            Reason::DelegationDenied | Reason::HiddenDenial => 200,
            Reason::RateLimited => 429,
            _ => 401,
        }
    }
}

label_enum! {
    /// What an auth-failure burst is keyed by (`scope` of the burst metrics).
    pub(crate) enum Scope {
        Source = "source",
        Credential = "credential",
        Stuffing = "stuffing",
        Global = "global",
    }
}

label_enum! {
    /// Why an audit line or page was lost (`mcp_tap_audit_write_errors_total{cause}`).
    pub(crate) enum AuditLoss {
        QueueFull = "queue_full",
        Io = "io",
        Alertmanager = "alertmanager",
    }
}

label_enum! {
    /// Where audit events go besides the JSON lines (`mcp_tap_audit_forward_dropped_total{output}`).
    pub(crate) enum ForwardOutput {
        Otlp = "otlp",
        Syslog = "syslog",
    }
}

label_enum! {
    /// Why an output lost audit events (`mcp_tap_audit_forward_dropped_total{cause}`).
    pub(crate) enum ForwardLoss {
        /// Its bounded queue was full (the receiver slow or down): dropped, never waited for.
        QueueFull = "queue_full",
        /// Sent, and the receiver failed or refused them.
        ExportFailed = "export_failed",
    }
}

label_enum! {
    /// Which limit refused a client (`mcp_tap_requests_refused_total{limit}`).
    pub(crate) enum Limit {
        /// An MCP request body over `limits.max_request_body_bytes` (413).
        RequestBodyBytes = "request_body_bytes",
        /// An MCP request body not complete within `limits.request_body_timeout` (408).
        RequestBodyTimeout = "request_body_timeout",
        /// Request headers not complete within `limits.header_read_timeout` (connection closed).
        HeaderReadTimeout = "header_read_timeout",
        /// A connection over `limits.max_connections` (503, closed).
        Connections = "connections",
    }
}

/// A status code as a label value; the codes HTTP can carry need no allocation.
pub(crate) struct StatusLabel(Result<http::StatusCode, String>);

impl StatusLabel {
    pub(crate) fn new(status: u16) -> Self {
        Self(http::StatusCode::from_u16(status).map_err(|_| status.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            Ok(code) => code.as_str(),
            Err(other) => other,
        }
    }
}
