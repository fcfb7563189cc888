//! The post-deployment smoke check every Backstage MCP operator runs by hand, as one command (and
//! as an in-daemon canary): readiness answers, an unauthenticated request is refused, an
//! authenticated `initialize` and `tools/list` succeed (with the expected tools), and an invalid
//! token is refused.

use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Serialize;

use crate::http_client::UpstreamBody;
use crate::http_client::{self, UpstreamClient};
use crate::mcp::jsonrpc::{self, Kind, Message};
use crate::mcp::sse::{SseDecoder, SseItem};
use crate::proxy::forward;

/// What to check, against which Backstage (or tap) base URL.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub base_url: String,
    pub mcp_path: String,
    pub readiness_path: String,
    /// A valid static token; without one the authenticated checks fail.
    pub token: Option<String>,
    /// Tools that must be in the `tools/list` answer.
    pub expect_tools: Vec<String>,
    pub timeout: Duration,
    /// A PEM CA bundle trusted besides the system roots (a tap or Backstage with a private CA).
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckResult {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
    pub duration_seconds: f64,
}

pub const CHECKS: [&str; 5] =
    ["readiness", "unauthenticated_rejected", "initialize", "tools_list", "invalid_token_rejected"];

/// The 2026-07-28 way to meet a server: no handshake, a `server/discover` with the version in
/// the headers and in `_meta`.
const DISCOVER: &str = r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"mcp-tap-probe","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
const DISCOVER_HEADERS: [(&str, &str); 2] = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "server/discover")];

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcp-tap-probe","version":"1"}}}"#;
const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
/// Never a valid token: Backstage needs 8+ characters, this one is random per run.
fn invalid_token() -> String {
    let mut b = [0u8; 12];
    let _ = getrandom::fill(&mut b);
    format!("mcp-tap-probe-invalid-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

struct Answer {
    status: u16,
    messages: Vec<Message>,
}

async fn post(
    client: &UpstreamClient,
    url: &str,
    token: Option<&str>,
    body: &'static str,
    timeout: Duration,
) -> Result<Answer, String> {
    post_with(client, url, token, (body, &[]), timeout).await
}

async fn post_with(
    client: &UpstreamClient,
    url: &str,
    token: Option<&str>,
    (body, headers): (&'static str, &[(&str, &str)]),
    timeout: Duration,
) -> Result<Answer, String> {
    let mut req = http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(UpstreamBody::Full { data: Some(Bytes::from_static(body.as_bytes())), trailers: None })
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(timeout, client.request(req))
        .await
        .map_err(|_| format!("no answer from {url} within {timeout:?}"))?
        .map_err(|e| forward::ProxyError::classify(&e, url).to_string())?;
    let status = resp.status().as_u16();
    let sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let bytes = tokio::time::timeout(timeout, resp.into_body().collect())
        .await
        .map_err(|_| format!("{url}: the answer did not complete within {timeout:?}"))?
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    let mut messages = Vec::new();
    if sse {
        let mut d = SseDecoder::new(1 << 20);
        d.feed(&bytes, &mut |item| {
            if let SseItem::Message(m) = item {
                messages.extend(jsonrpc::decode(m, 64).unwrap_or_default());
            }
        });
    } else {
        messages = jsonrpc::decode(&bytes, 64).unwrap_or_default();
    }
    Ok(Answer { status, messages })
}

/// Runs every check and returns their results in order.
pub async fn run(spec: &ProbeSpec) -> Vec<CheckResult> {
    let (base_url, mcp_path) = split_endpoint(&spec.base_url, &spec.mcp_path);
    let spec = &ProbeSpec { base_url, mcp_path, ..spec.clone() };
    let upstream =
        crate::config::Upstream { url: spec.base_url.clone(), ca_file: spec.ca_file.clone(), ..Default::default() };
    let client = match http_client::build_client(&upstream) {
        Ok(c) => c,
        Err(e) => {
            return CHECKS
                .iter()
                .map(|c| CheckResult { check: c, ok: false, detail: e.to_string(), duration_seconds: 0.0 })
                .collect()
        }
    };
    let mut results = Vec::new();
    let started = Instant::now();
    results.push(result("readiness", readiness(&client, spec).await, started));
    let started = Instant::now();
    results.push(result("unauthenticated_rejected", rejected(&client, spec, None).await, started));
    let started = Instant::now();
    results.push(result("initialize", initialize(&client, spec).await, started));
    let started = Instant::now();
    results.push(result("tools_list", tools_list(&client, spec).await, started));
    let started = Instant::now();
    let bogus = invalid_token();
    results.push(result("invalid_token_rejected", rejected(&client, spec, Some(&bogus)).await, started));
    results
}

/// The base URL and MCP path of what the user gave: a base URL, or the full endpoint URL pasted
/// from an MCP client's config (`https://backstage.example.com/api/mcp-actions/v1/catalog`).
pub fn split_endpoint(url: &str, mcp_path: &str) -> (String, String) {
    let Ok(uri) = url.parse::<http::Uri>() else { return (url.to_string(), mcp_path.to_string()) };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return (url.to_string(), mcp_path.to_string());
    };
    let path = uri.path();
    // Backstage matches its routes case-insensitively, so the pasted URL may be in any case.
    match path.to_ascii_lowercase().find("/api/mcp-actions/") {
        Some(i) => (format!("{scheme}://{authority}{}", &path[..i]), path[i..].trim_end_matches('/').to_string()),
        None => (url.to_string(), mcp_path.to_string()),
    }
}

fn mcp_url(spec: &ProbeSpec) -> String {
    format!("{}{}", spec.base_url.trim_end_matches('/'), spec.mcp_path)
}

async fn readiness(client: &UpstreamClient, spec: &ProbeSpec) -> Result<String, String> {
    let base = spec.base_url.trim_end_matches('/');
    let req = http::Request::get(format!("{base}{}", spec.readiness_path))
        .body(UpstreamBody::Full { data: None, trailers: None })
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(spec.timeout, client.request(req))
        .await
        .map_err(|_| format!("readiness did not answer within {:?}", spec.timeout))?
        .map_err(|e| forward::ProxyError::classify(&e, base).to_string())?;
    match resp.status().as_u16() {
        200..=299 => Ok(format!("{} answered {}", spec.readiness_path, resp.status())),
        s => Err(format!("{} answered {s}: the backend is not ready", spec.readiness_path)),
    }
}

/// An initialize without a token, or with a made-up one, must be refused with 401.
async fn rejected(client: &UpstreamClient, spec: &ProbeSpec, bogus: Option<&str>) -> Result<String, String> {
    let a = post(client, &mcp_url(spec), bogus, INITIALIZE, spec.timeout).await?;
    match (a.status, bogus) {
        (401, _) => Ok("refused with 401 as it should be".to_string()),
        (s, None) => Err(format!("an initialize without a token got {s}: the endpoint is not protected")),
        (s, Some(_)) => Err(format!("an invalid token got {s}: Backstage accepts unknown tokens")),
    }
}

const NO_TOKEN: &str = "no token given (--token or MCP_TAP_PROBE_TOKEN)";

/// The server greets a client: a 2026-07-28 server answers `server/discover`; a handshake-era
/// one (Backstage today) rejects it, and `initialize` is tried. The detail says which answered.
async fn initialize(client: &UpstreamClient, spec: &ProbeSpec) -> Result<String, String> {
    let token = spec.token.as_deref().ok_or(NO_TOKEN)?;
    let d = post_with(client, &mcp_url(spec), Some(token), (DISCOVER, &DISCOVER_HEADERS), spec.timeout).await?;
    if d.status == 200 && d.messages.iter().any(|m| matches!(m.kind, Kind::Result(_))) {
        return Ok("MCP 2026-07-28: server/discover answered (no handshake)".into());
    }
    let a = post(client, &mcp_url(spec), Some(token), INITIALIZE, spec.timeout).await?;
    match a.status {
        200 => match a.messages.iter().find(|m| m.is_response()) {
            Some(Message { kind: Kind::Result(r), .. }) => {
                let version = r.protocol_version.as_deref().unwrap_or("unknown");
                Ok(format!("handshake era: initialize answered, protocol {version}"))
            }
            Some(Message { kind: Kind::Error { code }, .. }) => Err(format!("initialize answered JSON-RPC error {code}")),
            _ => Err("initialize answered 200 without a JSON-RPC result".into()),
        },
        401 | 403 => Err(format!(
            "initialize with the token got {}: the token is unknown to Backstage or its accessRestrictions leave out mcp-actions",
            a.status
        )),
        404 => Err(format!("{} answered 404: is the mcp-actions plugin installed?", spec.mcp_path)),
        s => Err(format!("initialize got HTTP {s}")),
    }
}

async fn tools_list(client: &UpstreamClient, spec: &ProbeSpec) -> Result<String, String> {
    let token = spec.token.as_deref().ok_or(NO_TOKEN)?;
    let a = post(client, &mcp_url(spec), Some(token), TOOLS_LIST, spec.timeout).await?;
    if a.status != 200 {
        return Err(format!("tools/list got HTTP {}", a.status));
    }
    let Some(Message { kind: Kind::Result(r), .. }) = a.messages.iter().find(|m| m.is_response()) else {
        return Err("tools/list answered without a result".into());
    };
    let tools = r.tools.clone().unwrap_or_default();
    let missing: Vec<&String> = spec.expect_tools.iter().filter(|t| !tools.contains(t)).collect();
    if missing.is_empty() {
        Ok(format!("{} tools", tools.len()))
    } else {
        Err(format!(
            "{} tools, missing {missing:?}: check backend.actions.pluginSources and the token's plugin access",
            tools.len()
        ))
    }
}

fn result(check: &'static str, outcome: Result<String, String>, started: Instant) -> CheckResult {
    let duration_seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(detail) => CheckResult { check, ok: true, detail, duration_seconds },
        Err(detail) => CheckResult { check, ok: false, detail, duration_seconds },
    }
}

/// Human output: one line per check.
pub fn render_human(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for r in results {
        let mark = if r.ok { "ok  " } else { "FAIL" };
        out.push_str(&format!("{mark} {:<26} {:>6.0} ms  {}\n", r.check, r.duration_seconds * 1000.0, r.detail));
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    out.push_str(&if failed == 0 { "all checks passed\n".to_string() } else { format!("{failed} check(s) failed\n") });
    out
}

pub fn render_json(results: &[CheckResult]) -> String {
    serde_json::json!({"ok": results.iter().all(|r| r.ok), "checks": results}).to_string()
}

#[cfg(test)]
mod tests {
    use super::split_endpoint;

    #[test]
    fn the_endpoint_url_from_a_client_config_is_as_good_as_the_base_url() {
        let default = "/api/mcp-actions/v1";
        let split = |u: &str| split_endpoint(u, default);
        let base = ("https://backstage.example.com".to_string(), default.to_string());
        assert_eq!(split("https://backstage.example.com"), base);
        assert_eq!(split("https://backstage.example.com/api/mcp-actions/v1"), base);
        assert_eq!(split("https://backstage.example.com/api/mcp-actions/v1/"), base);
        assert_eq!(
            split("http://10.0.0.5:7007/backstage/API/MCP-ACTIONS/v1/catalog"),
            ("http://10.0.0.5:7007/backstage".to_string(), "/API/MCP-ACTIONS/v1/catalog".to_string())
        );
        // Not an MCP Actions URL: used as given.
        assert_eq!(split("http://tap:7070/"), ("http://tap:7070/".to_string(), default.to_string()));
    }
}
