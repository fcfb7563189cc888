//! `mcp-tap report privileges`: per client, the tools the upstream advertised to it and the ones
//! it never called, read from a running tap's admin endpoint (`/privileges`) or, when the tap is
//! stopped, from its state file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;

use crate::checklist::privileges::{Privileges, Report};
use crate::checklist::store;
use crate::http_client::{self, UpstreamBody};

/// How to reach an admin listener locked by a web config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminAccess {
    /// A PEM CA bundle to trust besides the system roots, for an admin listener serving TLS.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// The basic-auth user of the admin listener.
    #[arg(long)]
    pub admin_user: Option<String>,
    /// A file holding the user's password (or MCP_TAP_ADMIN_PASSWORD; never an argument, which
    /// shows in `ps`).
    #[arg(long)]
    pub admin_password_file: Option<PathBuf>,
    #[arg(long, env = "MCP_TAP_ADMIN_PASSWORD", hide_env_values = true, hide = true)]
    pub admin_password: Option<String>,
}

/// The report a running tap serves at `{admin}/privileges`, over TLS and with basic auth when
/// `access` says so.
pub async fn from_admin(admin: &str, access: &AdminAccess, timeout: Duration) -> anyhow::Result<Report> {
    let url = format!("{}/privileges", admin.trim_end_matches('/'));
    let upstream =
        crate::config::Upstream { url: admin.to_string(), ca_file: access.ca_file.clone(), ..Default::default() };
    let client = http_client::build_client(&upstream)?;
    let mut req = http::Request::get(&url);
    if let Some(user) = &access.admin_user {
        let password = match (&access.admin_password_file, &access.admin_password) {
            (Some(file), _) => std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("--admin-password-file {}: {e}", file.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            (None, Some(p)) => p.clone(),
            (None, None) => anyhow::bail!("--admin-user needs --admin-password-file or MCP_TAP_ADMIN_PASSWORD"),
        };
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req = req.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
    }
    let req = req.body(UpstreamBody::Full { data: None, trailers: None })?;
    let resp = tokio::time::timeout(timeout, client.request(req))
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {timeout:?}"))?
        .map_err(|e| anyhow::anyhow!("{url}: {e} (is the tap running, and is this its admin address?)"))?;
    let status = resp.status();
    let body = tokio::time::timeout(timeout, resp.into_body().collect())
        .await
        .map_err(|_| anyhow::anyhow!("{url}: the answer did not finish within {timeout:?}"))??
        .to_bytes();
    anyhow::ensure!(
        status != http::StatusCode::UNAUTHORIZED,
        "{url} answered 401: the admin listener wants basic auth (--admin-user, --admin-password-file)"
    );
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    serde_json::from_slice(&body).map_err(|e| anyhow::anyhow!("{url}: not a privileges report: {e}"))
}

/// The report from the state file in `dir`, for calls within `window` of now.
pub fn from_state_dir(dir: &Path, window: Duration) -> anyhow::Result<Report> {
    let state = store::read(dir)
        .map_err(|e| anyhow::anyhow!(e))?
        .ok_or_else(|| anyhow::anyhow!("{}: no state file yet", store::path(dir).display()))?;
    let now = crate::clock::unix_secs();
    let mut privileges = Privileges::default();
    privileges.load(state.privileges);
    let since = now.saturating_sub(window.as_secs());
    privileges.forget_before(since);
    let cx =
        crate::checklist::privileges::Context { reach: store::reach_since(state.reach, since), ..Default::default() };
    Ok(privileges.report(window.as_secs(), cx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::reach::Reached;

    #[test]
    fn a_stopped_tap_reports_the_actions_api_reach_of_its_window() {
        let dir = std::env::temp_dir().join(format!("mcp-tap-report-reach-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let now = crate::clock::unix_secs();
        let reached = |client: &str, at: u64| Reached {
            client: client.into(),
            credential: "00112233aabbccdd".into(),
            refused_route: "default".into(),
            refused_reason: "plugin_not_allowed".into(),
            plugin: "catalog".into(),
            tool: None,
            at,
        };
        let reach = vec![reached("last-month", now - 30 * 86_400), reached("yesterday", now - 86_400)];
        store::write(&dir, &store::State::new(now, Vec::new(), Vec::new(), reach)).unwrap();
        let report = from_state_dir(&dir, Duration::from_secs(7 * 86_400)).unwrap();
        let clients: Vec<&str> = report.actions_api_reach.iter().map(|r| r.client.as_str()).collect();
        assert_eq!(clients, ["yesterday"], "the evidence within the window, and only it");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
