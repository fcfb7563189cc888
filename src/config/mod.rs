//! The one YAML config file: strict parsing (every unknown key reported), validation that returns
//! every problem at once, and the split between settings a reload may change and restart-only ones.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

mod audit;
mod checklist;
mod cluster;
mod environment;
mod limits;
mod load;
mod oauth;
mod otlp;
pub(crate) mod tls_files;
mod user_tokens;
mod web;
pub use audit::{
    Alertmanager, Audit, AuditOperations, Bursts, Canary, ClientToken, Clients, Stuffing, SyslogTarget,
    SyslogTransport, Threshold,
};
pub use checklist::Checklist;
pub use cluster::{Cluster, STORE_URL_ENV};
pub use environment::Environment;
pub use limits::Limits;
pub use oauth::{OAuth, WwwAuthenticate};
pub use otlp::{Otlp, OtlpProtocol};
pub use user_tokens::{UserIdentity, UserTokens};
pub use web::{ClientAuth, HttpServerConfig, ListenerTls, TlsServerConfig, TlsVersion, WebConfig, ALLOWED_HEADERS};

/// Exit code for bad usage or a bad config file (BSD `EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// Where MCP clients connect (HTTP/1.1 and h2c).
    pub listen: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: SocketAddr,
    /// Threads that serve client connections, each with its own event loop and upstream pool;
    /// 0 means one per CPU the tap may use.
    pub workers: usize,
    pub upstream: Upstream,
    pub routes: Routes,
    pub forwarded_headers: ForwardedHeaders,
    pub decode: Decode,
    pub limits: Limits,
    pub sessions: Sessions,
    pub labels: Labels,
    pub log: Log,
    /// On SIGTERM/SIGINT the tap first drains this long: it keeps serving, `/readyz` fails (so
    /// Kubernetes takes it out of its endpoints and load balancers stop sending), and every
    /// HTTP/1 response closes its connection. Then it stops accepting.
    #[serde(with = "humantime_serde")]
    pub shutdown_drain_delay: Duration,
    /// After the drain, in-flight exchanges get this long to finish before they are cut.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
    pub audit: Audit,
    pub clients: Clients,
    pub bursts: Bursts,
    pub alertmanager: Alertmanager,
    pub canary: Canary,
    pub otlp: Otlp,
    pub checklist: Checklist,
    pub user_tokens: UserTokens,
    /// The OAuth journey of MCP clients through the tap.
    pub oauth: OAuth,
    /// Cluster mode: the shared Redis/Valkey store of several replicas.
    pub cluster: Cluster,
    /// The admin listener's TLS and basic auth, in the Prometheus exporter toolkit's web
    /// configuration format (`--web.config.file`). Its contents are re-read when it changes.
    pub web_config_file: Option<PathBuf>,
    /// Admin paths reachable without basic auth (Kubernetes probes cannot send credentials).
    pub admin_open_paths: Vec<String>,
    /// TLS on the MCP listener (HTTP/2 by ALPN); the files are re-read when they change.
    pub tls: Option<ListenerTls>,
    /// Where `${VAR}`, `*_env` settings and `OTEL_*` are read; not part of the file.
    #[serde(skip)]
    pub env: Environment,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Upstream {
    /// Base URL of the Backstage backend (or any MCP server); `http` or `https`.
    pub url: String,
    /// Extra PEM CA bundle trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for the upstream to send response headers. Streams may last longer.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    /// Path on the upstream that `/readyz` asks.
    pub readiness_path: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Routes {
    /// Measure `/api/mcp-actions/v1` (label `default`) and `/api/mcp-actions/v1/{key}` (label = key).
    pub backstage_actions: bool,
    /// Split-server keys expected under `/api/mcp-actions/v1/`. Keys not listed here are learned
    /// from traffic up to `max_learned_keys`, the rest are labelled `_OTHER`.
    pub server_keys: Vec<String>,
    pub max_learned_keys: usize,
    /// Other MCP endpoints behind the same upstream, matched by exact path.
    pub extra: Vec<ExtraRoute>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ExtraRoute {
    pub path: String,
    pub label: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct ForwardedHeaders {
    /// Add `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` to upstream requests.
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Decode {
    /// MCP request bodies up to this size are decoded; larger ones are forwarded untouched.
    pub max_request_bytes: usize,
    /// One response message (JSON body or SSE event) up to this size is decoded.
    pub max_message_bytes: usize,
    /// JSON-RPC requests of one batch that are tracked; the rest are counted as unparsed.
    pub max_batch: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Sessions {
    /// A session with no traffic for this long ends with reason `idle`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Sessions tracked at once; beyond it new sessions are not tracked (counted as overflow).
    pub max_tracked: usize,
    /// Bucket bounds of `mcp_server_session_duration_seconds`, in seconds.
    pub duration_buckets: Vec<f64>,
    /// A multi round-trip call (MCP 2026-07-28 `input_required`) whose client has not come back
    /// with the input after this long is recorded as `cancelled`.
    #[serde(with = "humantime_serde")]
    pub input_wait_timeout: Duration,
    /// Multi round-trip calls waiting for input tracked at once; beyond it a call's rounds are
    /// recorded as separate operations (counted as `mcp_tap_label_overflow_total{label="input_wait"}`).
    pub max_input_waits: usize,
    /// Tasks (the `io.modelcontextprotocol/tasks` extension) followed at once; beyond it new
    /// tasks are not followed (counted as `mcp_tap_label_overflow_total{label="task"}`).
    pub max_tasks: usize,
    /// A task is followed at most this long (less when its `ttlMs` says so); not seen to an end
    /// by then, it is counted as orphaned.
    #[serde(with = "humantime_serde")]
    pub task_max_age: Duration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Labels {
    /// Tool names accepted as label values per route, learned from `tools/list` answers.
    pub max_tools_per_route: usize,
    pub max_prompts_per_route: usize,
    /// Plugins named in the actions API's metrics (`plugin`), learned when one answers.
    pub max_plugins: usize,
    /// Tool and prompt names always accepted, advertised or not.
    pub tool_allowlist: Vec<String>,
    pub prompt_allowlist: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Log {
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `mcp_tap=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Config {
    /// `workers`, with 0 resolved to the CPUs this process may use (cgroup quota included).
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".parse().expect("valid default"),
            admin_listen: "127.0.0.1:9464".parse().expect("valid default"),
            workers: 0,
            upstream: Upstream::default(),
            routes: Routes::default(),
            forwarded_headers: ForwardedHeaders { enabled: true },
            decode: Decode::default(),
            limits: Limits::default(),
            sessions: Sessions::default(),
            labels: Labels::default(),
            log: Log::default(),
            shutdown_drain_delay: Duration::from_secs(5),
            shutdown_grace_period: Duration::from_secs(30),
            audit: Audit::default(),
            clients: Clients::default(),
            bursts: Bursts::default(),
            alertmanager: Alertmanager::default(),
            canary: Canary::default(),
            otlp: Otlp::default(),
            checklist: Checklist::default(),
            user_tokens: UserTokens::default(),
            oauth: OAuth::default(),
            cluster: Cluster::default(),
            web_config_file: None,
            admin_open_paths: vec!["/healthz".into(), "/readyz".into()],
            tls: None,
            env: Environment::default(),
        }
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:7007".into(),
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 64,
            readiness_path: "/.backstage/health/v1/readiness".into(),
        }
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self { backstage_actions: true, server_keys: Vec::new(), max_learned_keys: 32, extra: Vec::new() }
    }
}

impl Default for ForwardedHeaders {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl Default for Decode {
    fn default() -> Self {
        Self { max_request_bytes: 1 << 20, max_message_bytes: 1 << 20, max_batch: 64 }
    }
}

/// OpenTelemetry's duration buckets stop at 300 s; sessions last much longer.
pub const DEFAULT_SESSION_BUCKETS: [f64; 16] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 64800.0,
    86400.0,
];

impl Default for Sessions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            max_tracked: 10_000,
            duration_buckets: DEFAULT_SESSION_BUCKETS.to_vec(),
            input_wait_timeout: Duration::from_secs(10 * 60),
            max_input_waits: 10_000,
            max_tasks: 10_000,
            task_max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for Labels {
    fn default() -> Self {
        Self {
            max_tools_per_route: 256,
            max_prompts_per_route: 128,
            max_plugins: 64,
            tool_allowlist: Vec::new(),
            prompt_allowlist: Vec::new(),
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self { format: LogFormat::Pretty, level: "info".into() }
    }
}

/// Everything wrong with a config file, one problem a line.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: String) -> Self {
        Self { problems: vec![problem] }
    }
}

/// Backstage's rule for `mcpActions.servers` keys.
pub fn is_server_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests;
