//! The one YAML config file: strict parsing (every unknown key reported), validation that returns
//! every problem at once, and the split between settings a reload may change and restart-only ones.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod audit;
pub use audit::{Alertmanager, Audit, Bursts, Canary, ClientToken, Clients, Otlp, OtlpProtocol, Stuffing, Threshold};

/// Exit code for bad usage or a bad config file (BSD `EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// Where MCP clients connect (HTTP/1.1 and h2c).
    pub listen: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: SocketAddr,
    pub upstream: Upstream,
    pub routes: Routes,
    pub forwarded_headers: ForwardedHeaders,
    pub decode: Decode,
    pub sessions: Sessions,
    pub labels: Labels,
    pub log: Log,
    /// On SIGTERM/SIGINT, in-flight exchanges get this long to finish before they are cut.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
    pub audit: Audit,
    pub clients: Clients,
    pub bursts: Bursts,
    pub alertmanager: Alertmanager,
    pub canary: Canary,
    pub otlp: Otlp,
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
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Labels {
    /// Tool names accepted as label values per route, learned from `tools/list` answers.
    pub max_tools_per_route: usize,
    pub max_prompts_per_route: usize,
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

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".parse().expect("valid default"),
            admin_listen: "127.0.0.1:9464".parse().expect("valid default"),
            upstream: Upstream::default(),
            routes: Routes::default(),
            forwarded_headers: ForwardedHeaders { enabled: true },
            decode: Decode::default(),
            sessions: Sessions::default(),
            labels: Labels::default(),
            log: Log::default(),
            shutdown_grace_period: Duration::from_secs(30),
            audit: Audit::default(),
            clients: Clients::default(),
            bursts: Bursts::default(),
            alertmanager: Alertmanager::default(),
            canary: Canary::default(),
            otlp: Otlp::default(),
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
        }
    }
}

impl Default for Labels {
    fn default() -> Self {
        Self {
            max_tools_per_route: 256,
            max_prompts_per_route: 128,
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

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one(format!("{}: cannot read the config file: {e}", path.display())))?;
        Self::parse(&text).map_err(|mut e| {
            for p in &mut e.problems {
                *p = format!("{}: {p}", path.display());
            }
            e
        })
    }

    /// Parses YAML text; unknown keys are collected (all of them) rather than stopping at the first.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let config = if text.trim().is_empty() {
            Config::default()
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            let mut unknown = Vec::new();
            let parsed: Result<Config, _> = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()));
            for key in unknown {
                problems.push(format!("unknown key `{key}`"));
            }
            match parsed {
                Ok(c) => c,
                Err(e) => {
                    problems.push(e.to_string());
                    return Err(ConfigError { problems });
                }
            }
        };
        problems.extend(config.validate());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Every semantic problem, worded as advice to the operator.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        match self.upstream.url.parse::<http::Uri>() {
            Ok(uri) => {
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    p.push(format!("upstream.url `{}` must be an absolute http:// or https:// URL", self.upstream.url));
                }
                if uri.query().is_some() {
                    p.push("upstream.url must not carry a query string".into());
                }
            }
            Err(e) => p.push(format!("upstream.url `{}` is not a URL: {e}", self.upstream.url)),
        }
        if let Some(ca) = &self.upstream.ca_file {
            if !ca.is_file() {
                p.push(format!("upstream.ca_file `{}` does not exist or is not a file", ca.display()));
            }
        }
        for (name, d) in [
            ("upstream.connect_timeout", self.upstream.connect_timeout),
            ("upstream.response_timeout", self.upstream.response_timeout),
            ("sessions.idle_timeout", self.sessions.idle_timeout),
        ] {
            if d.is_zero() {
                p.push(format!("{name} must be greater than zero"));
            }
        }
        if !self.upstream.readiness_path.starts_with('/') {
            p.push(format!("upstream.readiness_path `{}` must start with `/`", self.upstream.readiness_path));
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            p.push(format!("listen and admin_listen are both {}; give each its own port", self.listen));
        }
        for key in &self.routes.server_keys {
            if !is_server_key(key) {
                p.push(format!("routes.server_keys: `{key}` is not a Backstage server key (^[a-z0-9][a-z0-9-]*$)"));
            }
        }
        let mut labels = vec!["default".to_string()];
        labels.extend(self.routes.server_keys.iter().cloned());
        for (i, r) in self.routes.extra.iter().enumerate() {
            if !r.path.starts_with('/') {
                p.push(format!("routes.extra[{i}].path `{}` must start with `/`", r.path));
            }
            if r.label.is_empty() || r.label.len() > 64 || r.label == crate::mcp::names::OTHER {
                p.push(format!("routes.extra[{i}].label must be 1 to 64 characters and not `_OTHER`"));
            }
            if labels.contains(&r.label) {
                p.push(format!("routes.extra[{i}].label `{}` is used by another route", r.label));
            }
            labels.push(r.label.clone());
        }
        if self.decode.max_request_bytes == 0 || self.decode.max_message_bytes == 0 || self.decode.max_batch == 0 {
            p.push("decode limits must be greater than zero".into());
        }
        if self.decode.max_request_bytes > 64 << 20 || self.decode.max_message_bytes > 64 << 20 {
            p.push("decode limits above 64 MiB are refused: the tap keeps a copy of what it decodes".into());
        }
        let b = &self.sessions.duration_buckets;
        if b.is_empty() || b.windows(2).any(|w| w[0] >= w[1]) || b.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            p.push("sessions.duration_buckets must be positive and strictly increasing".into());
        }
        self.audit.validate(&mut p);
        self.clients.validate(&mut p);
        self.bursts.validate(&mut p);
        self.alertmanager.validate(&mut p);
        self.canary.validate(&mut p);
        self.otlp.validate(&mut p);
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            p.push(format!("log.level `{}` is not a valid filter such as `info` or `mcp_tap=debug`", self.log.level));
        }
        p
    }

    /// Settings a running tap cannot take without a restart that differ between `self` and `new`.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.listen != new.listen {
            changed.push("listen");
        }
        if self.admin_listen != new.admin_listen {
            changed.push("admin_listen");
        }
        if self.upstream.url != new.upstream.url {
            changed.push("upstream.url");
        }
        if self.upstream.ca_file != new.upstream.ca_file {
            changed.push("upstream.ca_file");
        }
        if self.routes != new.routes {
            changed.push("routes");
        }
        if self.sessions.duration_buckets != new.sessions.duration_buckets {
            changed.push("sessions.duration_buckets");
        }
        if self.audit.output != new.audit.output {
            changed.push("audit.output");
        }
        if self.audit.fingerprint_key_file != new.audit.fingerprint_key_file
            || self.audit.fingerprint_key_env != new.audit.fingerprint_key_env
        {
            changed.push("audit.fingerprint_key_file/env");
        }
        if self.alertmanager.url != new.alertmanager.url {
            changed.push("alertmanager.url");
        }
        if self.log.format != new.log.format {
            changed.push("log.format");
        }
        if self.otlp != new.otlp {
            changed.push("otlp");
        }
        changed
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
