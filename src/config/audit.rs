//! Config of the auth audit: where audit lines go, how credentials are fingerprinted, which
//! tokens name which clients, and the burst thresholds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Audit {
    /// `-` for stdout (the default, for containers), or a file that logrotate may move.
    pub output: String,
    /// Lines waiting to be written; when full, lines are dropped and counted, never waited for.
    pub queue_capacity: usize,
    /// A file whose bytes key the credential fingerprints (HMAC-SHA256).
    pub fingerprint_key_file: Option<PathBuf>,
    /// An environment variable holding the key, used when no key file is set.
    pub fingerprint_key_env: String,
    /// A credential that succeeded within this window and now fails is `revoked_token`.
    #[serde(with = "humantime_serde")]
    pub revoked_retention: Duration,
    /// Credentials remembered for that (least recently used are forgotten first).
    pub max_remembered_credentials: usize,
    /// Per-failure lines written for one burst before the rest go into summary lines.
    pub lines_per_burst: usize,
    /// How often a burst's summary line (exact counts of what was not written) is written.
    #[serde(with = "humantime_serde")]
    pub summary_interval: Duration,
    /// User agents are cut to this many bytes in audit lines.
    pub max_user_agent: usize,
    /// Take the client's address from `X-Forwarded-For` instead of the TCP peer, when the peer is
    /// one of `trusted_proxies`: the list is walked from the right, past trusted proxies, to the
    /// first address that is not one.
    pub source_from_forwarded_for: bool,
    /// The proxies (CIDRs) whose `X-Forwarded-For` is believed. Default: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The networks (CIDRs) MCP clients are expected to come from. A request with a credential
    /// from anywhere else is counted and audited, whether or not it succeeds. Default: none (off).
    pub approved_networks: Vec<ipnet::IpNet>,
    /// Two client names presenting one credential within this window make it shared.
    #[serde(with = "humantime_serde")]
    pub shared_credential_window: Duration,
    /// A credential seen from one unapproved address is audited once per this interval.
    #[serde(with = "humantime_serde")]
    pub unapproved_audit_interval: Duration,
    /// How audit lines name the caller of a Backstage user token: `ref` (its user entity ref)
    /// or `fingerprint` (only the credential fingerprint).
    pub user_identity: super::UserIdentity,
    /// An `operation` event per MCP operation, for SIEMs: `off` (the default), `tools`
    /// (each `tools/call`) or `all` (every MCP request). Never arguments or results.
    pub operations: AuditOperations,
    /// Also send every audit event to a syslog receiver, RFC 5424: `udp://host:514`,
    /// `tcp://host:601` (octet counting) or `tls://host:6514` (RFC 5425). Default: off.
    pub syslog: Option<String>,
    /// PEM certificates to trust for `tls://` besides the system's (a private CA).
    pub syslog_ca_file: Option<PathBuf>,
    /// Messages waiting for the syslog receiver; when full, events are dropped from this output
    /// and counted (`mcp_tap_audit_forward_dropped_total{output="syslog"}`).
    pub syslog_queue_size: usize,
}

/// Which MCP operations get an `operation` audit event.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditOperations {
    #[default]
    Off,
    Tools,
    All,
}

impl AuditOperations {
    pub(crate) fn includes(self, method: crate::mcp::method::Method) -> bool {
        match self {
            AuditOperations::Off => false,
            AuditOperations::Tools => method == crate::mcp::method::Method::ToolsCall,
            AuditOperations::All => true,
        }
    }
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            output: "-".into(),
            queue_capacity: 10_000,
            fingerprint_key_file: None,
            fingerprint_key_env: "MCP_TAP_FINGERPRINT_KEY".into(),
            revoked_retention: Duration::from_secs(24 * 3600),
            max_remembered_credentials: 10_000,
            lines_per_burst: 20,
            summary_interval: Duration::from_secs(10),
            max_user_agent: 128,
            source_from_forwarded_for: false,
            trusted_proxies: Vec::new(),
            approved_networks: Vec::new(),
            unapproved_audit_interval: Duration::from_secs(3600),
            shared_credential_window: Duration::from_secs(24 * 3600),
            user_identity: super::UserIdentity::Ref,
            operations: AuditOperations::Off,
            syslog: None,
            syslog_ca_file: None,
            syslog_queue_size: 10_000,
        }
    }
}

/// One known token and the Backstage `subject` it belongs to. Exactly one source is set.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct ClientToken {
    pub subject: String,
    /// Environment variable holding the token.
    pub token_env: Option<String>,
    /// File holding the token (trailing newline ignored).
    pub token_file: Option<PathBuf>,
    /// Hex SHA-256 of the token, for configs that must not hold the token at all.
    pub token_sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Clients {
    pub tokens: Vec<ClientToken>,
    /// Backstage `app-config.yaml` files whose `backend.auth.externalAccess` static tokens are
    /// imported (with `${VAR}` substitution from the environment).
    pub backstage_app_config: Vec<PathBuf>,
    /// Distinct subjects accepted as `client` label values; more are labelled `unknown`.
    pub max_subjects: usize,
    /// Distinct client names learned from `clientInfo` (of accepted requests) that become
    /// `client` label values; more are labelled `_OTHER`.
    pub max_names: usize,
}

impl Default for Clients {
    fn default() -> Self {
        Self { tokens: Vec::new(), backstage_app_config: Vec::new(), max_subjects: 100, max_names: 50 }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(default)]
pub struct Threshold {
    /// Failures within `window` that start a burst.
    pub failures: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for Threshold {
    fn default() -> Self {
        Self { failures: 10, window: Duration::from_secs(60) }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(default)]
pub struct Stuffing {
    /// Distinct failing credentials from one source within `window` that start a burst.
    pub credentials: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for Stuffing {
    fn default() -> Self {
        Self { credentials: 5, window: Duration::from_secs(300) }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Bursts {
    /// Failures from one source address.
    pub source: Threshold,
    /// Failures with one credential.
    pub credential: Threshold,
    /// Many different credentials from one source.
    pub stuffing: Stuffing,
    /// Failures across all clients.
    pub global: Threshold,
    /// A burst ends after this long without a failure for its key.
    #[serde(with = "humantime_serde")]
    pub quiet_period: Duration,
    /// Keys tracked per scope (least recently seen forgotten first; overflow counted).
    pub max_tracked_keys: usize,
    /// IPv6 sources are grouped by this prefix for bursts: one host gets a whole /64, so an
    /// attacker rotating through it is still one source.
    pub ipv6_prefix: u8,
}

impl Default for Bursts {
    fn default() -> Self {
        Self {
            source: Threshold { failures: 20, window: Duration::from_secs(60) },
            credential: Threshold { failures: 10, window: Duration::from_secs(60) },
            stuffing: Stuffing::default(),
            global: Threshold { failures: 100, window: Duration::from_secs(60) },
            quiet_period: Duration::from_secs(120),
            max_tracked_keys: 10_000,
            ipv6_prefix: 64,
        }
    }
}

/// Optional direct paging: burst start and end posted to Alertmanager's v2 API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Alertmanager {
    /// Base URL such as `http://alertmanager:9093`; unset means off.
    pub url: Option<String>,
    /// Active bursts are re-sent this often so Alertmanager does not resolve them on its own.
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// Extra labels on every alert (e.g. `team: platform`).
    pub labels: BTreeMap<String, String>,
}

impl Default for Alertmanager {
    fn default() -> Self {
        Self { url: None, resend_interval: Duration::from_secs(60), labels: BTreeMap::new() }
    }
}

impl Audit {
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.queue_capacity == 0 || self.lines_per_burst == 0 {
            p.push("audit.queue_capacity and audit.lines_per_burst must be greater than zero".into());
        }
        if self.summary_interval.is_zero() || self.revoked_retention.is_zero() {
            p.push("audit.summary_interval and audit.revoked_retention must be greater than zero".into());
        }
        if self.source_from_forwarded_for && self.trusted_proxies.is_empty() {
            p.push(
                "audit.source_from_forwarded_for needs audit.trusted_proxies: the proxies (CIDRs) whose \
                 X-Forwarded-For is believed; otherwise any client could choose its own source address"
                    .into(),
            );
        }
        if let Some(f) = &self.fingerprint_key_file {
            if !f.is_file() {
                p.push(format!("audit.fingerprint_key_file `{}` does not exist or is not a file", f.display()));
            }
        }
        if let Some(Err(e)) = self.syslog.as_deref().map(SyslogTarget::parse) {
            p.push(e);
        }
        if self.syslog_queue_size == 0 {
            p.push("audit.syslog_queue_size must be greater than zero".into());
        }
    }
}

impl Clients {
    pub fn validate(&self, p: &mut Vec<String>) {
        for (i, t) in self.tokens.iter().enumerate() {
            let sources = [t.token_env.is_some(), t.token_file.is_some(), t.token_sha256.is_some()];
            if sources.iter().filter(|s| **s).count() != 1 {
                p.push(format!("clients.tokens[{i}] needs exactly one of token_env, token_file, token_sha256"));
            }
            if t.subject.is_empty() || t.subject.len() > 128 || t.subject == "none" || t.subject == "unknown" {
                p.push(format!("clients.tokens[{i}].subject must be 1 to 128 characters and not `none` or `unknown`"));
            }
            if let Some(h) = &t.token_sha256 {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    p.push(format!("clients.tokens[{i}].token_sha256 must be 64 hex digits"));
                }
            }
        }
        for f in &self.backstage_app_config {
            if !f.is_file() {
                p.push(format!("clients.backstage_app_config `{}` does not exist or is not a file", f.display()));
            }
        }
    }
}

impl Bursts {
    pub fn validate(&self, p: &mut Vec<String>) {
        for (name, t) in [("source", self.source), ("credential", self.credential), ("global", self.global)] {
            if t.failures == 0 || t.window.is_zero() {
                p.push(format!("bursts.{name} needs failures and window greater than zero"));
            }
        }
        if self.stuffing.credentials < 2 || self.stuffing.window.is_zero() {
            p.push("bursts.stuffing needs credentials of 2 or more and a window greater than zero".into());
        }
        if self.quiet_period.is_zero() || self.max_tracked_keys == 0 {
            p.push("bursts.quiet_period and bursts.max_tracked_keys must be greater than zero".into());
        }
        if !(16..=128).contains(&self.ipv6_prefix) {
            p.push(format!("bursts.ipv6_prefix {} must be between 16 and 128", self.ipv6_prefix));
        }
    }
}

impl Alertmanager {
    pub fn validate(&self, p: &mut Vec<String>) {
        if let Some(url) = &self.url {
            match url.parse::<http::Uri>() {
                Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
                _ => {
                    p.push(format!("alertmanager.url `{url}` must be an http:// URL such as http://alertmanager:9093"));
                }
            }
        }
        if self.resend_interval.is_zero() {
            p.push("alertmanager.resend_interval must be greater than zero".into());
        }
    }
}

/// The in-daemon canary: the `probe` checks against the upstream on an interval.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Canary {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Environment variable holding a dedicated static token for the canary.
    pub token_env: String,
    /// Tools that must be offered.
    pub expect_tools: Vec<String>,
    pub mcp_path: String,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for Canary {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: Duration::from_secs(60),
            token_env: "MCP_TAP_CANARY_TOKEN".into(),
            expect_tools: Vec::new(),
            mcp_path: "/api/mcp-actions/v1".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Canary {
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.enabled && (self.interval.is_zero() || self.timeout.is_zero()) {
            p.push("canary.interval and canary.timeout must be greater than zero".into());
        }
        if !self.mcp_path.starts_with('/') {
            p.push(format!("canary.mcp_path `{}` must start with `/`", self.mcp_path));
        }
    }
}

/// How audit events reach a syslog receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    Udp,
    /// RFC 6587 octet counting.
    Tcp,
    /// RFC 5425: octet counting over TLS.
    Tls,
}

/// `audit.syslog`, parsed: transport, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    pub transport: SyslogTransport,
    pub host: String,
    pub port: u16,
}

impl SyslogTarget {
    pub fn parse(url: &str) -> Result<Self, String> {
        let bad =
            |why: &str| format!("audit.syslog `{url}`: {why} (udp://host:514, tcp://host:601 or tls://host:6514)");
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL"))?;
        let transport = match scheme {
            "udp" => SyslogTransport::Udp,
            "tcp" => SyslogTransport::Tcp,
            "tls" => SyslogTransport::Tls,
            _ => return Err(bad("the scheme must be udp, tcp or tls")),
        };
        let authority = rest.trim_end_matches('/');
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| bad("a port is needed"))?;
        let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("the port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || authority.contains('/') {
            return Err(bad("host:port only"));
        }
        Ok(Self { transport, host: host.to_string(), port })
    }
}
