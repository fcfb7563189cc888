//! THE metrics of the tap: one struct that owns its own registry (no global state) and offers
//! typed `record_*` methods; call sites pass enums and bounded names, never free label strings.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{Encoder, HistogramVec, IntCounterVec, IntGaugeVec, Registry, TextEncoder};

use crate::mcp::method::Method;
use crate::mcp::names::OTHER;

mod auth;
pub(crate) mod catalogue;
mod register;
pub(crate) use register::bounds;
#[cfg(test)]
use register::REGISTERED;
use register::{counter_of, float_gauge_of, gauge_of, histogram, int_gauge_of};
mod actions;
mod calls;
pub(crate) use actions::ActionsCall;
mod checklist;
mod health;
mod kinds;
mod oauth;
mod operation;
mod tasks;
pub(crate) use operation::{Operation, Upstream};
pub(crate) use tasks::TaskEnd;
pub(crate) mod otel;
mod user_tokens;
pub(crate) use auth::AuthMetrics;
pub(crate) use checklist::{ChecklistMetrics, ToolCounts};
use health::HealthMetrics;
pub(crate) use kinds::{
    AuditLoss, DecodeErrorKind, ErrorType, ForwardLoss, ForwardOutput, Limit, Listener, MismatchKind, OtlpSignal,
    Outcome, OverflowLabel, Reason, Scope, SessionEnd, SessionKind, StatusLabel, StoreOperation, Surface,
    UnparsedReason, UpstreamErrorKind,
};

/// OpenTelemetry MCP semantic-convention buckets for `mcp.server.operation.duration`.
pub const OPERATION_BUCKETS: [f64; 14] =
    [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Response sizes from a short answer to a context-window flood (256 B to 4 MiB).
pub(crate) const RESPONSE_BYTES_BUCKETS: [f64; 9] =
    [256.0, 1024.0, 4096.0, 16_384.0, 65_536.0, 262_144.0, 1_048_576.0, 2_097_152.0, 4_194_304.0];

pub(crate) const OVERHEAD_BUCKETS: [f64; 12] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/// Distinct JSON-RPC error codes kept as label values; more fold into `_OTHER`.
const MAX_RPC_CODES: usize = 64;

pub(crate) struct Metrics {
    registry: Registry,
    operation_duration: HistogramVec,
    client_operation_duration: HistogramVec,
    session_duration: HistogramVec,
    http_requests: IntCounterVec,
    sessions_active: IntGaugeVec,
    sessions_ended: IntCounterVec,
    tools_advertised: IntGaugeVec,
    upstream_errors: IntCounterVec,
    proxy_overhead: HistogramVec,
    tool_response_bytes: HistogramVec,
    decode_errors: IntCounterVec,
    unparsed: IntCounterVec,
    label_overflow: IntCounterVec,
    server_messages: IntCounterVec,
    requests_refused: IntCounterVec,
    header_mismatch: IntCounterVec,
    unapproved_source: IntCounterVec,
    credential_shared: IntCounterVec,
    input_required: IntCounterVec,
    input_wait: HistogramVec,
    operation_rounds: HistogramVec,
    actions_api: HistogramVec,
    stream_duration: HistogramVec,
    connections_open: prometheus::IntGauge,
    rpc_codes: Mutex<HashSet<i64>>,
    auth: AuthMetrics,
    pub checklist: ChecklistMetrics,
    user_tokens: user_tokens::UserTokenMetrics,
    oauth: oauth::OAuthMetrics,
    tasks: tasks::TaskMetrics,
    health: HealthMetrics,
    session_buckets: Vec<f64>,
    /// Set when OTLP export is on: histograms are recorded there too.
    otel: std::sync::OnceLock<otel::Histograms>,
}

impl Metrics {
    pub(crate) fn new(session_buckets: Vec<f64>) -> Self {
        let registry = Registry::new();
        let r = &registry;
        let m = Self {
            operation_duration: histogram(r, &catalogue::OPERATION_DURATION, &session_buckets),
            client_operation_duration: histogram(r, &catalogue::CLIENT_OPERATION_DURATION, &session_buckets),
            session_duration: histogram(r, &catalogue::SESSION_DURATION, &session_buckets),
            stream_duration: histogram(r, &catalogue::STREAM_DURATION, &session_buckets),
            http_requests: counter_of(r, &catalogue::HTTP_REQUESTS),
            sessions_ended: counter_of(r, &catalogue::SESSIONS_ENDED),
            sessions_active: gauge_of(r, &catalogue::SESSIONS_ACTIVE),
            tools_advertised: gauge_of(r, &catalogue::TOOLS_ADVERTISED),
            upstream_errors: counter_of(r, &catalogue::UPSTREAM_ERRORS),
            proxy_overhead: histogram(r, &catalogue::PROXY_OVERHEAD, &session_buckets),
            tool_response_bytes: histogram(r, &catalogue::TOOL_RESPONSE_BYTES, &session_buckets),
            decode_errors: counter_of(r, &catalogue::DECODE_ERRORS),
            unparsed: counter_of(r, &catalogue::UNPARSED),
            label_overflow: counter_of(r, &catalogue::LABEL_OVERFLOW),
            server_messages: counter_of(r, &catalogue::SERVER_MESSAGES),
            requests_refused: counter_of(r, &catalogue::REQUESTS_REFUSED),
            header_mismatch: counter_of(r, &catalogue::HEADER_MISMATCH),
            unapproved_source: counter_of(r, &catalogue::UNAPPROVED_SOURCE),
            credential_shared: counter_of(r, &catalogue::CREDENTIAL_SHARED),
            input_required: counter_of(r, &catalogue::INPUT_REQUIRED),
            input_wait: histogram(r, &catalogue::INPUT_WAIT, &session_buckets),
            operation_rounds: histogram(r, &catalogue::OPERATION_ROUNDS, &session_buckets),
            actions_api: histogram(r, &catalogue::ACTIONS_API_DURATION, &session_buckets),
            connections_open: gauge_of(r, &catalogue::CONNECTIONS_OPEN).with_label_values(&[] as &[&str]),
            rpc_codes: Mutex::new(HashSet::new()),
            auth: AuthMetrics::new(r),
            checklist: ChecklistMetrics::new(r),
            user_tokens: user_tokens::UserTokenMetrics::new(r),
            oauth: oauth::OAuthMetrics::new(r),
            tasks: tasks::TaskMetrics::new(r, &session_buckets),
            health: HealthMetrics::new(r),
            session_buckets,
            otel: std::sync::OnceLock::new(),
            registry,
        };
        m.register_process();
        m.preinit_global();
        m
    }

    /// Build info and, on Linux, the standard `process_*` metrics.
    fn register_process(&self) {
        let build = gauge_of(&self.registry, &catalogue::BUILD_INFO);
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), option_env!("MCP_TAP_REVISION").unwrap_or("unknown")])
            .set(1);
        #[cfg(target_os = "linux")]
        self.registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process collector registers once");
    }

    /// Zero series for a route's counters, so `rate()` and alerts see the first increment.
    pub(crate) fn preinit_route(&self, route: &str) {
        for kind in UpstreamErrorKind::ALL {
            self.upstream_errors.with_label_values(&[route, kind.as_str()]);
        }
        for reason in SessionEnd::ALL {
            for kind in SessionKind::ALL {
                self.sessions_ended.with_label_values(&[route, reason.as_str(), kind.as_str()]);
            }
        }
        self.sessions_active.with_label_values(&[route]);
        // Rounds of requests that name no tool exist from the start; tools get theirs when used.
        for method in [Method::PromptsGet, Method::ResourcesRead] {
            self.input_required.with_label_values(&[route, method.as_str(), ""]);
        }
    }

    fn preinit_global(&self) {
        for kind in DecodeErrorKind::ALL {
            self.decode_errors.with_label_values(&[kind.as_str()]);
        }
        for reason in UnparsedReason::ALL {
            self.unparsed.with_label_values(&[reason.as_str()]);
        }
        for limit in Limit::ALL {
            self.requests_refused.with_label_values(&[limit.as_str()]);
        }
        for kind in MismatchKind::ALL {
            self.header_mismatch.with_label_values(&[kind.as_str()]);
        }
        for label in OverflowLabel::ALL {
            self.label_overflow.with_label_values(&[label.as_str()]);
        }
        self.health.preinit();
    }

    /// Records the histograms into `meter` as well, from now on (OTLP export is on).
    pub(crate) fn mirror_histograms(&self, meter: &opentelemetry::metrics::Meter) {
        let _ = self.otel.set(otel::histograms(meter, &self.session_buckets));
    }

    /// The Prometheus text exposition of every series.
    pub(crate) fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    fn rpc_code_label(&self, code: i64) -> String {
        let mut codes = self.rpc_codes.lock().expect("metrics lock");
        if codes.contains(&code) || codes.len() < MAX_RPC_CODES {
            codes.insert(code);
            code.to_string()
        } else {
            drop(codes);
            self.record_label_overflow(OverflowLabel::RpcCode);
            OTHER.to_string()
        }
    }

    pub(crate) fn record_http_exchange(&self, route: &str, method: &http::Method, status: u16) {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::DELETE => "DELETE",
            http::Method::PUT => "PUT",
            http::Method::PATCH => "PATCH",
            http::Method::HEAD => "HEAD",
            http::Method::OPTIONS => "OPTIONS",
            _ => OTHER,
        };
        self.http_requests.with_label_values(&[route, method, StatusLabel::new(status).as_str()]).inc();
    }

    pub(crate) fn record_session_start(&self, route: &str) {
        self.sessions_active.with_label_values(&[route]).inc();
    }

    pub(crate) fn record_session_end(
        &self,
        route: &str,
        protocol_version: &'static str,
        (kind, reason): (SessionKind, SessionEnd),
        duration: Duration,
    ) {
        self.sessions_active.with_label_values(&[route]).dec();
        self.sessions_ended.with_label_values(&[route, reason.as_str(), kind.as_str()]).inc();
        let error_type = if reason == SessionEnd::Error { "error" } else { "" };
        self.session_duration
            .with_label_values(&[protocol_version, "tcp", "http", error_type, route])
            .observe(duration.as_secs_f64());
        if let Some(otel) = self.otel.get() {
            let labels = [
                ("mcp_protocol_version", protocol_version),
                ("network_transport", "tcp"),
                ("network_protocol_name", "http"),
                ("error_type", error_type),
                ("mcp_route", route),
            ];
            otel.session.record(duration.as_secs_f64(), &otel::attributes(&labels));
        }
    }

    pub(crate) fn set_tools_advertised(&self, route: &str, count: usize) {
        self.tools_advertised.with_label_values(&[route]).set(count as i64);
    }

    pub(crate) fn add_tools_advertised(&self, route: &str, count: usize) {
        self.tools_advertised.with_label_values(&[route]).add(count as i64);
    }

    pub(crate) fn record_upstream_error(&self, route: &str, kind: UpstreamErrorKind) {
        self.upstream_errors.with_label_values(&[route, kind.as_str()]).inc();
    }

    pub(crate) fn record_overhead(&self, route: &str, overhead: Duration) {
        self.proxy_overhead.with_label_values(&[route]).observe(overhead.as_secs_f64());
        if let Some(otel) = self.otel.get() {
            otel.overhead.record(overhead.as_secs_f64(), &otel::attributes(&[("mcp_route", route)]));
        }
    }

    pub(crate) fn record_decode_error(&self, kind: DecodeErrorKind) {
        self.decode_errors.with_label_values(&[kind.as_str()]).inc();
    }

    pub(crate) fn record_unparsed(&self, reason: UnparsedReason) {
        self.unparsed.with_label_values(&[reason.as_str()]).inc();
    }

    pub(crate) fn record_label_overflow(&self, label: OverflowLabel) {
        self.label_overflow.with_label_values(&[label.as_str()]).inc();
    }

    /// A `tools/call` exchange's response body, in bytes, under the tool's bounded label.
    pub(crate) fn record_tool_response_bytes(&self, route: &str, tool: &str, bytes: u64) {
        self.tool_response_bytes.with_label_values(&[route, tool]).observe(bytes as f64);
        if let Some(otel) = self.otel.get() {
            let labels = [("mcp_route", route), ("gen_ai_tool_name", tool)];
            otel.tool_response_bytes.record(bytes as f64, &otel::attributes(&labels));
        }
    }

    /// A long-lived stream (`subscriptions/listen`) closed after `duration`; `error_type` says how.
    pub(crate) fn record_stream(&self, route: &str, method: Method, error_type: &str, duration: Duration) {
        let labels = [route, method.as_str(), error_type];
        self.stream_duration.with_label_values(&labels).observe(duration.as_secs_f64());
        if let Some(otel) = self.otel.get() {
            let labels = [("mcp_route", route), ("mcp_method_name", method.as_str()), ("error_type", error_type)];
            otel.stream.record(duration.as_secs_f64(), &otel::attributes(&labels));
        }
    }

    /// A request with a credential from outside the approved networks (`client` bounded).
    pub(crate) fn record_unapproved_source(&self, client: &str) {
        self.unapproved_source.with_label_values(&[client]).inc();
    }

    /// The zero series of a client's checklist counters, so `increase()` sees the first one.
    pub(crate) fn preinit_checklist(&self, client: &str) {
        self.unapproved_source.with_label_values(&[client]);
        self.credential_shared.with_label_values(&[client]);
    }

    /// A new pair of client names for one credential (`client` bounded).
    pub(crate) fn record_credential_shared(&self, client: &str) {
        self.credential_shared.with_label_values(&[client]).inc();
    }

    pub(crate) fn record_header_mismatch(&self, kind: MismatchKind) {
        self.header_mismatch.with_label_values(&[kind.as_str()]).inc();
    }

    pub(crate) fn record_refused(&self, limit: Limit) {
        self.requests_refused.with_label_values(&[limit.as_str()]).inc();
    }

    /// A client connection opened (`+1`) or closed (`-1`).
    pub(crate) fn add_connections(&self, delta: i64) {
        self.connections_open.add(delta);
    }

    pub(crate) fn record_server_message(&self, route: &str, method: Method) {
        self.server_messages.with_label_values(&[route, method.as_str()]).inc();
    }
}
