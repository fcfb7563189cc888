//! Config of the production-checklist measurements that need memory across restarts: token age
//! and rotation, and least privilege (tools advertised against tools called).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Checklist {
    /// Directory of the state file (`checklist.json`), so token ages survive restarts. When it
    /// cannot be created or written, the tap warns and keeps the state in memory only.
    pub state_dir: Option<PathBuf>,
    /// How often the rotation check and the gauges run, and the state file is replaced when
    /// something changed.
    #[serde(with = "humantime_serde")]
    pub write_interval: Duration,
    /// Credentials remembered at once; the least recently used is forgotten first (counted).
    pub max_credentials: usize,
    /// What the checklist looks back on: a credential not used, a tool not called, or a client
    /// not seen for this long is forgotten.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// A static token older than this should be rotated; exported as
    /// `mcp_tap_credential_rotation_period_seconds` for the alert rule.
    #[serde(with = "humantime_serde")]
    pub rotation_period: Duration,
    /// A client's previous token unused for this long after its new one appeared is rotated.
    #[serde(with = "humantime_serde")]
    pub rotation_grace: Duration,
}

impl Default for Checklist {
    fn default() -> Self {
        Self {
            state_dir: Some(PathBuf::from("/var/lib/mcp-tap")),
            write_interval: Duration::from_secs(30),
            max_credentials: 10_000,
            window: Duration::from_secs(30 * 24 * 3600),
            rotation_period: Duration::from_secs(90 * 24 * 3600),
            rotation_grace: Duration::from_secs(3600),
        }
    }
}

impl Checklist {
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if self.max_credentials == 0 || self.max_credentials > 1_000_000 {
            p.push("checklist.max_credentials must be between 1 and 1000000".into());
        }
        let zero = Duration::ZERO;
        if [self.write_interval, self.window, self.rotation_period].contains(&zero) {
            p.push("checklist.write_interval, window and rotation_period must be greater than zero".into());
        }
        if self.state_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            p.push("checklist.state_dir is empty: leave it out to keep the state in memory".into());
        }
    }
}
