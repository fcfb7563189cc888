//! Cluster mode: several replicas share what Prometheus cannot merge (burst buckets, once-only
//! findings) through one Redis or Valkey store. Without a store URL, a replica decides alone.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Environment;

/// The environment variable that names the store when `cluster.store_url` is not set.
pub const STORE_URL_ENV: &str = "MCP_TAP_STORE_URL";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Cluster {
    /// `redis://host:6379/0` or `rediss://` (TLS); user and password may be in the URL, but
    /// prefer `password_file` or `password_env`.
    pub store_url: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// PEM certificates that sign the store's TLS certificate (`rediss://`), when the system's
    /// roots do not (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Keys are `mcp-tap:<name>:…`, so several tap clusters can share one store.
    pub name: String,
    /// How often a replica exchanges what it counted with the store (in the background).
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// Time allowed for one exchange; a slower store counts as down.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Burst keys a replica holds for the next exchange; beyond it a failure counts locally only.
    pub max_pending_keys: usize,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            store_url: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            name: "default".into(),
            sync_interval: Duration::from_millis(250),
            timeout: Duration::from_secs(1),
            max_pending_keys: 10_000,
        }
    }
}

impl Cluster {
    /// The store URL: the config key, else `MCP_TAP_STORE_URL`.
    pub fn url(&self, env: &Environment) -> Option<String> {
        self.store_url.clone().or_else(|| env.var(STORE_URL_ENV)).filter(|u| !u.is_empty())
    }

    pub(crate) fn validate(&self, env: &Environment, p: &mut Vec<String>) {
        if let Some(url) = self.url(env) {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                p.push("cluster.store_url must start with redis:// or rediss://".into());
            }
        }
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            p.push("cluster.name must be letters, digits, `-` or `_`".into());
        }
        if self.sync_interval.is_zero() || self.sync_interval > Duration::from_secs(1) {
            p.push(
                "cluster.sync_interval must be between 1ms and 1s (a cluster-wide burst is flagged within it)".into(),
            );
        }
        if self.timeout.is_zero() || self.max_pending_keys == 0 {
            p.push("cluster.timeout and cluster.max_pending_keys must be greater than zero".into());
        }
        for (key, file) in [("password_file", &self.password_file), ("ca_file", &self.ca_file)] {
            if file.as_ref().is_some_and(|f| std::fs::metadata(f).is_err()) {
                p.push(format!("cluster.{key} {}: cannot be read", file.as_ref().expect("some").display()));
            }
        }
        if self.ca_file.is_some() && !self.url(env).is_some_and(|u| u.starts_with("rediss://")) {
            p.push("cluster.ca_file needs a rediss:// store_url (TLS)".into());
        }
    }

    /// The password from `password_file` or `password_env`, if any.
    pub(crate) fn password(&self, env: &Environment) -> Option<String> {
        if let Some(file) = &self.password_file {
            return std::fs::read_to_string(file).ok().map(|p| p.trim_end_matches(['\r', '\n']).to_string());
        }
        self.password_env.as_deref().and_then(|name| env.var(name)).filter(|p| !p.is_empty())
    }
}
