//! THE catalogue of the tap's metrics: every metric's name, kind, help, labels and buckets,
//! declared once. `/metrics`, the OTLP bridge and its descriptions, the status page and
//! `docs/metrics.md` all come from here, and tests fail when any of them differs.
//! Names follow the OpenTelemetry→Prometheus rules so one dashboard reads either export.

/// What kind of instrument a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The bucket bounds of a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    None,
    /// OpenTelemetry MCP semantic-convention buckets, 10 ms to 300 s.
    Operation,
    /// `sessions.duration_buckets` from the config (past 300 s, to hours).
    Session,
    /// The tap's own overhead, 50 µs to 250 ms.
    Overhead,
    /// Response sizes, 256 B to 4 MiB.
    ResponseBytes,
    /// Rounds of a multi round-trip call, 2 to 10.
    Rounds,
    /// Polls of a task, 1 to 500.
    Polls,
}

/// One metric.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub buckets: Buckets,
}

pub const HTTP_REQUESTS: Spec = counter(
    "mcp_tap_http_requests_total",
    &["mcp_route", "http_request_method", "http_response_status_code"],
    "HTTP exchanges proxied, by route, method and status sent to the client.",
);

pub const SESSIONS_ENDED: Spec = counter(
    "mcp_tap_sessions_ended_total",
    &["mcp_route", "reason", "session_kind"],
    "MCP sessions ended, by reason and by how the tap knows the session.",
);

pub const SESSIONS_ACTIVE: Spec = gauge("mcp_tap_sessions_active", &["mcp_route"], "MCP sessions open now.");

pub const TOOLS_ADVERTISED: Spec =
    gauge("mcp_tap_tools_advertised", &["mcp_route"], "Tools in the last tools/list answer on the route.");

pub const UPSTREAM_ERRORS: Spec =
    counter("mcp_tap_upstream_errors_total", &["mcp_route", "kind"], "Failures talking to the upstream, by kind.");

pub const PROXY_OVERHEAD: Spec = histogram(
    "mcp_tap_proxy_overhead_seconds",
    Buckets::Overhead,
    &["mcp_route"],
    "Time the tap itself adds to an exchange (request and response header handling).",
);

pub const DECODE_ERRORS: Spec = counter(
    "mcp_tap_decode_errors_total",
    &["kind"],
    "Messages the tap could not decode; traffic was forwarded unchanged.",
);

pub const UNPARSED: Spec =
    counter("mcp_tap_unparsed_messages_total", &["reason"], "Messages forwarded without decoding, by reason.");

pub const LABEL_OVERFLOW: Spec =
    counter("mcp_tap_label_overflow_total", &["label"], "Label values folded into _OTHER to keep series bounded.");

pub const SERVER_MESSAGES: Spec = counter(
    "mcp_tap_server_messages_total",
    &["mcp_route", "mcp_method_name"],
    "Requests and notifications the server sent to the client on a stream.",
);

pub const TOOL_RESPONSE_BYTES: Spec = histogram(
    "mcp_tap_tool_response_bytes",
    Buckets::ResponseBytes,
    &["mcp_route", "gen_ai_tool_name"],
    "Size of tools/call response bodies, by tool: which tools flood an agent's context window. Actions API invocations count under mcp_route actions_api.",
);

pub const CREDENTIAL_SHARED: Spec = counter(
    "mcp_tap_credential_shared_total",
    &["client"],
    "Credentials presented by a second client name within audit.shared_credential_window, by client.",
);

pub const UNAPPROVED_SOURCE: Spec = counter(
    "mcp_tap_unapproved_source_total",
    &["client"],
    "Requests with a credential from outside audit.approved_networks, by client.",
);

pub const HEADER_MISMATCH: Spec = counter(
    "mcp_tap_header_mismatch_total",
    &["kind"],
    "Requests whose Mcp-Method, Mcp-Name or Mcp-Param-* header disagreed with the JSON-RPC body (kind method, name, param).",
);

pub const REQUESTS_REFUSED: Spec = counter(
    "mcp_tap_requests_refused_total",
    &["limit"],
    "Clients refused by a limit (body size or deadline, header deadline, connections).",
);

pub const CONNECTIONS_OPEN: Spec = gauge("mcp_tap_connections_open", &[], "Client connections open now.");

pub const AUTH_FAILURES: Spec = counter(
    "mcp_tap_auth_failures_total",
    &["mcp_route", "http_response_status_code", "reason", "client", "mcp_method_name"],
    "Requests Backstage refused (401/403) and delegated-access denials in tool results.",
);

pub const CLIENT_OPERATIONS: Spec = counter(
    "mcp_tap_client_operations_total",
    &["client", "surface", "mcp_method_name", "gen_ai_tool_name", "outcome"],
    "Tool use by client (Backstage static-token subject) and outcome, on MCP (surface mcp) or the actions API (surface actions_api: list is tools/list, invoke is tools/call).",
);

pub const BURST_ACTIVE: Spec = gauge(
    "mcp_tap_auth_burst_active",
    &["scope"],
    "Keys (sources, credentials, global) currently in an auth-failure burst.",
);

pub const BURSTS: Spec = counter("mcp_tap_auth_bursts_total", &["scope"], "Auth-failure bursts started.");

pub const FINDINGS: Spec = counter(
    "mcp_tap_findings_total",
    &["kind"],
    "Findings raised (something a person should look at), by kind: one per incident.",
);

pub const BURST_EVICTIONS: Spec = counter(
    "mcp_tap_auth_burst_keys_evicted_total",
    &["scope"],
    "Burst-tracking keys forgotten because the per-scope cap was reached.",
);

pub const AUDIT_EVENTS: Spec = counter("mcp_tap_audit_events_total", &["event"], "Audit lines queued, by event.");

pub const AUDIT_WRITE_ERRORS: Spec = counter(
    "mcp_tap_audit_write_errors_total",
    &["cause"],
    "Audit lines lost: the queue was full, or the file could not be written.",
);

pub const AUDIT_FORWARD_DROPS: Spec = counter(
    "mcp_tap_audit_forward_dropped_total",
    &["output", "cause"],
    "Audit events an OTLP-logs or syslog output did not deliver: its queue was full, or the receiver failed.",
);

pub const PROBE_SUCCESS: Spec =
    gauge("mcp_tap_probe_success", &["check"], "1 if the canary's last run of this check passed.");

pub const PROBE_DURATION: Spec =
    gauge("mcp_tap_probe_duration_seconds", &["check"], "Duration of the canary's last run of this check.");

pub const CREDENTIAL_ROTATION_PERIOD: Spec = gauge(
    "mcp_tap_credential_rotation_period_seconds",
    &[],
    "checklist.rotation_period: how old a static token may get before it should be rotated.",
);

pub const CREDENTIAL_FIRST_SEEN: Spec = gauge(
    "mcp_tap_credential_first_seen_timestamp_seconds",
    &["client"],
    "When the tap first saw the static token each client uses now (Unix time; min across replicas).",
);

pub const CLIENT_TOOLS_ADVERTISED: Spec = gauge(
    "mcp_tap_client_tools_advertised",
    &["mcp_route", "client"],
    "Tools the upstream advertised to this client in its own last tools/list.",
);

pub const CLIENT_TOOLS_CALLED: Spec = gauge(
    "mcp_tap_client_tools_called",
    &["mcp_route", "client"],
    "Distinct tools this client called within checklist.window.",
);

pub const CHECKLIST_EVICTIONS: Spec = counter(
    "mcp_tap_checklist_evictions_total",
    &["kind"],
    "Credentials forgotten before checklist.window because checklist.max_credentials was reached.",
);

pub const CHECKLIST_STATE_ERRORS: Spec = counter(
    "mcp_tap_checklist_state_errors_total",
    &["operation"],
    "Failures to read or replace the checklist state file.",
);

pub const EXPIRED_TOKENS: Spec = counter("mcp_tap_expired_token_requests_total", &["client"], "Requests refused for an expired Backstage user token, by client (a refresh after a 401 included: see mcp_tap_user_token_refreshes_total).");

pub const USER_TOKEN_REFRESHES: Spec = counter("mcp_tap_user_token_refreshes_total", &["client"], "Clients that came back with a valid user token within user_tokens.refresh_grace of an expired one (a healthy refresh after a 401, no finding), by client.");

pub const JWKS_FETCHES: Spec = counter(
    "mcp_tap_jwks_fetches_total",
    &["outcome"],
    "Fetches of the upstream's JWKS (user-token signing keys), by outcome.",
);

pub const JWKS_KEYS: Spec =
    gauge("mcp_tap_jwks_keys", &[], "Signing keys of Backstage user tokens held from the upstream's JWKS.");

pub const CONFIG_RELOAD_OK: Spec = gauge(
    "mcp_tap_config_last_reload_successful",
    &[],
    "1 if the last load of the config file succeeded (the start-up load counts).",
);

pub const CONFIG_RELOAD_TIMESTAMP: Spec = gauge(
    "mcp_tap_config_last_reload_success_timestamp_seconds",
    &[],
    "Unix time of the last successful load of the config file.",
);

pub const CONFIG_RELOADS: Spec =
    counter("mcp_tap_config_reloads_total", &["result"], "Reloads of the config file after start-up, by result.");

pub const OTLP_FAILURES: Spec = counter(
    "mcp_tap_otlp_export_failures_total",
    &["signal"],
    "OTLP exports that failed (collector down, slow or refusing), by signal.",
);

pub const BUILD_INFO: Spec =
    gauge("mcp_tap_build_info", &["version", "revision"], "Build of the running tap; value 1.");

pub(super) const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Spec {
    Spec { name, kind: Kind::Counter, help, labels, buckets: Buckets::None }
}

const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Spec {
    Spec { name, kind: Kind::Gauge, help, labels, buckets: Buckets::None }
}

const fn histogram(name: &'static str, buckets: Buckets, labels: &'static [&'static str], help: &'static str) -> Spec {
    Spec { name, kind: Kind::Histogram, help, labels, buckets }
}

pub const ADMIN_AUTH_FAILURES: Spec = counter(
    "mcp_tap_admin_auth_failures_total",
    &["reason"],
    "Admin requests refused with 401 by basic auth (web config file), by reason: missing or wrong credentials.",
);

pub const TLS_HANDSHAKE_FAILURES: Spec = counter(
    "mcp_tap_tls_handshake_failures_total",
    &["listener"],
    "TLS handshakes that failed on the tap's listeners (admin, mcp).",
);

pub const CERTIFICATE_RELOADS: Spec = counter(
    "mcp_tap_tls_certificate_reloads_total",
    &["listener", "result"],
    "Changed certificate files re-read by a listener, by result (failure keeps the certificate served).",
);

pub const STORE_UP: Spec = gauge(
    "mcp_tap_store_up",
    &["cluster"],
    "Cluster mode: 1 if the last exchange with the shared Redis/Valkey store succeeded, 0 while this replica decides alone.",
);

pub const STORE_ERRORS: Spec = counter(
    "mcp_tap_store_errors_total",
    &["operation"],
    "Cluster mode: failed connects to and exchanges with the shared store.",
);

/// Every metric of the tap's own, in the order `docs/metrics.md` lists them.
pub const ALL: &[&Spec] = &[
    &OPERATION_DURATION,
    &CLIENT_OPERATION_DURATION,
    &SESSION_DURATION,
    &HTTP_REQUESTS,
    &CLIENT_OPERATIONS,
    &AUTH_FAILURES,
    &FINDINGS,
    &BURST_ACTIVE,
    &BURSTS,
    &BURST_EVICTIONS,
    &CREDENTIAL_SHARED,
    &UNAPPROVED_SOURCE,
    &HEADER_MISMATCH,
    &EXPIRED_TOKENS,
    &USER_TOKEN_REFRESHES,
    &JWKS_FETCHES,
    &JWKS_KEYS,
    &OAUTH_REQUESTS,
    &OAUTH_REFRESHES,
    &OAUTH_REAUTHORIZATIONS,
    &OAUTH_WWW_AUTHENTICATE,
    &OAUTH_UNREAD,
    &OAUTH_FORGOTTEN,
    &SESSIONS_ACTIVE,
    &SESSIONS_ENDED,
    &STREAM_DURATION,
    &INPUT_REQUIRED,
    &INPUT_WAIT,
    &OPERATION_ROUNDS,
    &ACTIONS_API_DURATION,
    &TASKS_CREATED,
    &TASK_DURATION,
    &TASK_INPUT_WAIT,
    &TASK_POLLS,
    &TASK_FAST_POLLS,
    &TASK_CANCELS,
    &TASKS_ORPHANED,
    &TOOLS_ADVERTISED,
    &TOOL_RESPONSE_BYTES,
    &SERVER_MESSAGES,
    &UPSTREAM_ERRORS,
    &PROXY_OVERHEAD,
    &CONNECTIONS_OPEN,
    &REQUESTS_REFUSED,
    &DECODE_ERRORS,
    &UNPARSED,
    &LABEL_OVERFLOW,
    &CREDENTIAL_FIRST_SEEN,
    &CREDENTIAL_ROTATION_PERIOD,
    &CLIENT_TOOLS_ADVERTISED,
    &CLIENT_TOOLS_CALLED,
    &CHECKLIST_EVICTIONS,
    &CHECKLIST_STATE_ERRORS,
    &AUDIT_EVENTS,
    &AUDIT_WRITE_ERRORS,
    &AUDIT_FORWARD_DROPS,
    &PROBE_SUCCESS,
    &PROBE_DURATION,
    &CONFIG_RELOAD_OK,
    &CONFIG_RELOAD_TIMESTAMP,
    &CONFIG_RELOADS,
    &ADMIN_AUTH_FAILURES,
    &TLS_HANDSHAKE_FAILURES,
    &CERTIFICATE_RELOADS,
    &STORE_UP,
    &STORE_ERRORS,
    &OTLP_FAILURES,
    &BUILD_INFO,
];

/// The standard `process_*` metrics (Linux), registered by the prometheus crate's process
/// collector with these names and helps; bridged to OTLP like the rest.
pub const PROCESS: &[Spec] = &[
    process(Kind::Counter, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
    process(Kind::Gauge, "process_open_fds", "Number of open file descriptors."),
    process(Kind::Gauge, "process_max_fds", "Maximum number of open file descriptors."),
    process(Kind::Gauge, "process_virtual_memory_bytes", "Virtual memory size in bytes."),
    process(Kind::Gauge, "process_resident_memory_bytes", "Resident memory size in bytes."),
    process(Kind::Gauge, "process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
    process(Kind::Gauge, "process_threads", "Number of OS threads in the process."),
];

const fn process(kind: Kind, name: &'static str, help: &'static str) -> Spec {
    Spec { kind, buckets: Buckets::None, name, help, labels: &[] }
}

mod actions;
mod calls;
mod mcp;
mod oauth;
mod tasks;
pub use actions::*;
pub use calls::*;
pub use mcp::*;
pub use oauth::*;
pub use tasks::*;

#[cfg(test)]
mod tests;
