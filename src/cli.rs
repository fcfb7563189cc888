//! Command line: run the tap (default) or check a config file. Flags and `MCP_TAP_*` environment
//! variables override the config file, which overrides the built-in defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat};
pub use crate::report::AdminAccess;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "mcp-tap",
    version,
    about = "Transparent MCP reverse proxy that measures every operation, session and auth failure"
)]
pub struct Cli {
    /// YAML config file (see config/mcp-tap.example.yaml).
    #[arg(long, short, env = "MCP_TAP_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address MCP clients connect to [default: 127.0.0.1:7070].
    #[arg(long, env = "MCP_TAP_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Address of /metrics, /healthz and /readyz [default: 127.0.0.1:9464].
    #[arg(long, env = "MCP_TAP_ADMIN_LISTEN", global = true)]
    pub admin_listen: Option<SocketAddr>,
    /// Upstream base URL, e.g. https://backstage.example.com [default: http://127.0.0.1:7007].
    #[arg(long, env = "MCP_TAP_UPSTREAM", global = true)]
    pub upstream: Option<String>,
    /// The admin listener's TLS and basic auth, in the Prometheus exporter toolkit's web
    /// configuration format.
    #[arg(long = "web.config.file", env = "MCP_TAP_WEB_CONFIG_FILE", global = true)]
    pub web_config_file: Option<PathBuf>,
    /// Directory of the checklist state (token ages, least privilege) [default: /var/lib/mcp-tap].
    #[arg(long, env = "MCP_TAP_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// Log format [default: pretty].
    #[arg(long, env = "MCP_TAP_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the proxy (the default).
    Run,
    /// Check a config file: prints every problem and exits 64, or prints `ok` and exits 0.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// See it work with no Backstage at hand: the tap in front of an embedded Backstage-like MCP
    /// server, with generated traffic (tool calls, auth failures, a burst). Ctrl-C stops it.
    Demo {
        /// Log lines on stderr instead of a live summary (they go to a file otherwise).
        #[arg(long, short)]
        verbose: bool,
    },
    /// Smoke-check a Backstage MCP endpoint (or a tap in front of one): readiness, unauthenticated
    /// and invalid tokens refused, initialize and tools/list succeed. Exits 1 if any check fails.
    Probe {
        /// Base URL, e.g. https://backstage.example.com or http://mcp-tap:7070.
        url: String,
        /// A valid static token. Prefer the environment variable: arguments show in `ps`.
        #[arg(long, env = "MCP_TAP_PROBE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A tool that must be offered (repeatable), e.g. catalog.get-catalog-entity.
        #[arg(long = "expect-tool")]
        expect_tools: Vec<String>,
        #[arg(long, value_enum, default_value = "human")]
        output: ProbeOutput,
        #[arg(long, default_value = "/api/mcp-actions/v1")]
        mcp_path: String,
        #[arg(long, default_value = "/.backstage/health/v1/readiness")]
        readiness_path: String,
        /// Time allowed per check.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// A PEM CA bundle to trust besides the system roots (a tap serving TLS with a private CA).
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Reports from a running tap (or its state file).
    #[command(subcommand)]
    Report(Report),
}

#[derive(Debug, Clone, Subcommand)]
pub enum Report {
    /// Per client, the tools the upstream advertised to it and the ones it never called within
    /// `checklist.window`: candidates to drop from its `accessRestrictions`.
    Privileges {
        /// The running tap's admin address. With `--state-dir`, the state file there is read
        /// instead (a stopped tap's).
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        admin: String,
        #[arg(long, value_enum, default_value = "table")]
        output: ReportOutput,
        #[command(flatten)]
        access: AdminAccess,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportOutput {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProbeOutput {
    Human,
    Json,
}

impl Cli {
    /// The config file (or defaults) with flags and environment applied, validated.
    pub fn effective_config(&self) -> Result<Config, ConfigError> {
        let config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        self.apply_overrides(config)
    }

    /// Flags and `MCP_TAP_*` variables over a loaded config (also on every reload).
    pub fn apply_overrides(&self, mut config: Config) -> Result<Config, ConfigError> {
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if let Some(a) = self.admin_listen {
            config.admin_listen = a;
        }
        if let Some(u) = &self.upstream {
            config.upstream.url = u.clone();
        }
        if let Some(w) = &self.web_config_file {
            config.web_config_file = Some(w.clone());
        }
        if let Some(f) = self.log_format {
            config.log.format = f;
        }
        if let Some(d) = &self.state_dir {
            config.checklist.state_dir = Some(d.clone());
        }
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }
}
