//! `mcp-tap report privileges`: per client, the tools the upstream advertised to it and the ones
//! it never called, read from a running tap's admin endpoint (`/privileges`) or, when the tap is
//! stopped, from its state file.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;

use crate::checklist::privileges::{Privileges, Report};
use crate::checklist::store;
use crate::http_client::{self, UpstreamBody};

/// The report a running tap serves at `{admin}/privileges`.
pub async fn from_admin(admin: &str, timeout: Duration) -> anyhow::Result<Report> {
    let url = format!("{}/privileges", admin.trim_end_matches('/'));
    let upstream = crate::config::Upstream { url: admin.to_string(), ..Default::default() };
    let client = http_client::build_client(&upstream)?;
    let req = http::Request::get(&url).body(UpstreamBody::Full { data: None, trailers: None })?;
    let resp = tokio::time::timeout(timeout, client.request(req))
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {timeout:?}"))?
        .map_err(|e| anyhow::anyhow!("{url}: {e} (is the tap running, and is this its admin address?)"))?;
    let status = resp.status();
    let body = tokio::time::timeout(timeout, resp.into_body().collect())
        .await
        .map_err(|_| anyhow::anyhow!("{url}: the answer did not finish within {timeout:?}"))??
        .to_bytes();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    serde_json::from_slice(&body).map_err(|e| anyhow::anyhow!("{url}: not a privileges report: {e}"))
}

/// The report from the state file in `dir`, for calls within `window` of now.
pub fn from_state_dir(dir: &Path, window: Duration) -> anyhow::Result<Report> {
    let state = store::read(dir)
        .map_err(|e| anyhow::anyhow!(e))?
        .ok_or_else(|| anyhow::anyhow!("{}: no state file yet", store::path(dir).display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut privileges = Privileges::default();
    privileges.load(state.privileges);
    privileges.forget_before(now.saturating_sub(window.as_secs()));
    Ok(privileges.report(window.as_secs()))
}
