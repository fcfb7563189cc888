//! The auth audit end to end in front of a real Backstage: every reason explained with the
//! client's Backstage subject (never the token), audit lines with the documented schema, bursts
//! and credential stuffing detected, a rotated token still in use called `revoked_token`, and
//! no token anywhere in the tap's output.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use common::*;
use mcp_tap::{Fingerprinter, KeySource};

const FINGERPRINT_KEY: &str = "mcp-tap-test-fingerprint-key-0001";
const BOGUS_TOKEN: &str = "tap-test-never-issued-5a5a5a5a";
pub(crate) const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"audit-test","version":"1"}}}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"catalog.get-catalog-entity","arguments":{"kind":"Component","name":"payments-api"}}}"#;

pub(crate) fn fingerprint(token: &str) -> String {
    Fingerprinter::new(FINGERPRINT_KEY.as_bytes(), KeySource::File).fingerprint(token).to_string()
}

fn auth(m: &str, labels: &[(&str, &str)]) -> f64 {
    metric(m, "mcp_tap_auth_failures_total", labels)
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The tap's own config for these tests: tokens imported from the test Backstage's app-config,
/// a fixed fingerprint key from a file.
pub(crate) fn audit_config(upstream: &str) -> mcp_tap::config::Config {
    let mut c = test_config(upstream);
    // Backstage's `${VAR}` substitution reads these; the tap imports the same file.
    c.env = mcp_tap::config::Environment::fixed([
        ("MCP_TAP_TEST_TOKEN", TOKEN_FULL),
        ("MCP_TAP_TEST_CATALOG_TOKEN", TOKEN_CATALOG_ONLY),
        ("MCP_TAP_TEST_MCP_ONLY_TOKEN", TOKEN_MCP_ONLY),
        ("MCP_TAP_TEST_INSPECTOR_TOKEN", TOKEN_INSPECTOR),
    ]);
    let key = std::path::Path::new(&c.audit.output).with_extension("key");
    std::fs::write(&key, FINGERPRINT_KEY).unwrap();
    c.audit.fingerprint_key_file = Some(key);
    c.clients.backstage_app_config = vec![repo().join("tests/backstage/app-config.yaml")];
    c
}

/// A user token with one signature character changed.
pub(crate) fn flipped(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len() - 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// Sends one request of every kind the audit must explain; `guest` is a real user token.
async fn drive_every_reason(base: &str, guest: &str) {
    let url = format!("{base}/api/mcp-actions/v1");
    // A full token lists the tools (the tap learns them) and calls one.
    assert_eq!(post_mcp(&url, &[("authorization", &bearer(TOKEN_FULL))], LIST).await.0, 200);
    assert_eq!(post_mcp(&url, &[("authorization", &bearer(TOKEN_FULL))], CALL).await.0, 200);
    // No credentials, with a trace and a request id the audit line carries.
    let traced = [
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("x-request-id", "req-missing-1"),
        ("user-agent", "audit-test/1.0"),
    ];
    assert_eq!(post_mcp(&url, &traced, INIT).await.0, 401);
    assert_eq!(post_mcp(&url, &[("authorization", "Basic Zm9vOmJhcg==")], LIST).await.0, 401);
    assert_eq!(post_mcp(&url, &[("authorization", &bearer(BOGUS_TOKEN))], CALL).await.0, 401);
    assert_eq!(post_mcp(&url, &[("authorization", &bearer(TOKEN_CATALOG_ONLY))], LIST).await.0, 403);
    // May call MCP but not the catalog: the tool call fails inside a 200.
    let (status, _, body) = post_mcp(&url, &[("authorization", &bearer(TOKEN_MCP_ONLY))], CALL).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"isError\":true"));
    // A Backstage user token works; the same with a forged signature is refused.
    assert_eq!(post_mcp(&url, &[("authorization", &bearer(guest))], LIST).await.0, 200);
    assert_eq!(post_mcp(&url, &[("authorization", &bearer(&flipped(guest)))], LIST).await.0, 401);
}

fn find<'a>(lines: &'a [serde_json::Value], reason: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["event"] == "auth_failure" && l["reason"] == reason)
        .unwrap_or_else(|| panic!("no audit line for {reason}: {lines:#?}"))
}

/// The real binary with debug logs, started with `config` (its tokens imported from the test
/// Backstage's app-config; its audit also to `audit.syslog` when set), and the lines it logged
/// up to its start.
pub(crate) struct Binary {
    child: std::process::Child,
    logs: Vec<String>,
    log_rx: std::sync::mpsc::Receiver<String>,
    pub(crate) proxy: String,
    pub(crate) admin: String,
}

impl Binary {
    pub(crate) fn start(config: &mcp_tap::config::Config, upstream: &str) -> Self {
        let config_file = std::path::Path::new(&config.audit.output).with_extension("yaml");
        let syslog = config.audit.syslog.as_ref().map(|url| format!("  syslog: {url}\n")).unwrap_or_default();
        std::fs::write(
            &config_file,
            format!(
                "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nshutdown_drain_delay: 0s\nupstream:\n  url: {upstream}\naudit:\n  output: {}\n  fingerprint_key_file: {}\n{syslog}clients:\n  backstage_app_config: [{}]\nlog:\n  format: json\n  level: debug\nchecklist:\n  state_dir: {}\n",
                config.audit.output,
                config.audit.fingerprint_key_file.as_ref().unwrap().display(),
                repo().join("tests/backstage/app-config.yaml").display(),
                config.checklist.state_dir.as_ref().unwrap().display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
            .arg("--config")
            .arg(&config_file)
            .env_remove("RUST_LOG")
            .env("MCP_TAP_TEST_TOKEN", TOKEN_FULL)
            .env("MCP_TAP_TEST_CATALOG_TOKEN", TOKEN_CATALOG_ONLY)
            .env("MCP_TAP_TEST_MCP_ONLY_TOKEN", TOKEN_MCP_ONLY)
            .env("MCP_TAP_TEST_INSPECTOR_TOKEN", TOKEN_INSPECTOR)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (log_tx, log_rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = log_tx.send(line);
            }
        });
        let mut logs = Vec::new();
        let (proxy, admin) = loop {
            let line = log_rx.recv_timeout(Duration::from_secs(20)).expect("the tap logs its start");
            logs.push(line.clone());
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON logs");
            if v["message"].as_str().is_some_and(|m| m.starts_with("mcp-tap is proxying")) {
                break (v["listen"].as_str().unwrap().to_string(), v["admin"].as_str().unwrap().to_string());
            }
        };
        Self { child, logs, log_rx, proxy, admin }
    }

    /// Stops it with SIGTERM (every log and audit line flushed); returns its logs and stdout.
    pub(crate) fn stop(mut self) -> (String, String) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert_eq!(self.child.wait().unwrap().code(), Some(0));
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut stdout).unwrap();
        while let Ok(line) = self.log_rx.recv_timeout(Duration::from_millis(500)) {
            self.logs.push(line);
        }
        (self.logs.join("\n"), stdout)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each refusal `drive_every_reason` causes, by status, reason, client and method, once.
fn every_refusal_counted_once(m: &str) {
    let refusals = [
        ("401", "missing_credentials", "none", "initialize"),
        ("401", "malformed_authorization", "unknown", "tools/list"),
        ("401", "unknown_token", "unknown", "tools/call"),
        ("403", "plugin_not_allowed", "catalog-reader", "tools/list"),
        ("200", "delegation_denied", "mcp-only", "tools/call"),
    ];
    for (status, reason, client, method) in refusals {
        let labels = [
            ("mcp_route", "default"),
            ("http_response_status_code", status),
            ("reason", reason),
            ("client", client),
            ("mcp_method_name", method),
        ];
        assert_eq!(auth(m, &labels), 1.0, "{labels:?}");
    }
    assert_eq!(auth(m, &[("reason", "bad_signature"), ("client", "unknown")]), 1.0);
    assert_eq!(auth(m, &[]), 6.0, "exactly the six refusals");
    // Series for what has not happened yet exist at zero, so rate() and alerts work at once.
    assert!(m.contains(r#"mcp_tap_auth_failures_total{client="ci-agent",http_response_status_code="401",mcp_method_name="tools/call",mcp_route="default",reason="revoked_token"} 0"#));
    let ops = |labels: &[(&str, &str)]| metric(m, "mcp_tap_client_operations_total", labels);
    let entity = ("gen_ai_tool_name", "catalog.get-catalog-entity");
    let call = ("mcp_method_name", "tools/call");
    assert_eq!(ops(&[("client", "ci-agent"), call, entity, ("outcome", "ok")]), 1.0);
    assert_eq!(ops(&[("client", "mcp-only"), entity, ("outcome", "denied")]), 1.0);
    assert_eq!(ops(&[("client", "catalog-reader"), ("mcp_method_name", "tools/list"), ("outcome", "denied")]), 1.0);
}

/// The audit lines say who was refused, what they attempted and from where, never the token.
fn audit_lines_name_the_refused(audit: &[serde_json::Value]) {
    assert_eq!(audit.iter().filter(|l| l["event"] == "auth_failure").count(), 6, "{audit:#?}");
    let missing = find(audit, "missing_credentials");
    let expected = [
        ("schema", serde_json::json!("mcp-tap.audit.v1")),
        ("status", serde_json::json!(401)),
        ("route", serde_json::json!("default")),
        ("http_method", serde_json::json!("POST")),
        ("mcp_method", serde_json::json!("initialize")),
        ("client", serde_json::json!("none")),
        ("source", serde_json::json!("127.0.0.1")),
        ("user_agent", serde_json::json!("audit-test/1.0")),
        ("request_id", serde_json::json!("req-missing-1")),
        ("jsonrpc_id", serde_json::json!("0")),
        ("trace_id", serde_json::json!("4bf92f3577b34da6a3ce929d0e0e4736")),
    ];
    for (field, value) in expected {
        assert_eq!(missing[field], value, "{field}");
    }
    assert!(missing.get("credential").is_none());
    assert!(missing["ts"].as_str().unwrap().ends_with('Z'));
    let unknown = find(audit, "unknown_token");
    assert_eq!(unknown["credential"], fingerprint(BOGUS_TOKEN));
    assert_eq!(unknown["tool"], "catalog.get-catalog-entity");
    assert_eq!(find(audit, "plugin_not_allowed")["credential"], fingerprint(TOKEN_CATALOG_ONLY));
    assert_eq!(find(audit, "plugin_not_allowed")["client"], "catalog-reader");
    assert_eq!(find(audit, "delegation_denied")["client"], "mcp-only");
    assert_eq!(find(audit, "delegation_denied")["status"], 200);
}

/// The real binary, with debug logs, in front of a real Backstage: every reason is in the
/// metrics and the audit trail, and no token appears in logs, audit lines or /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_is_explained_and_no_token_leaks() {
    let backstage = backstage().await;
    let upstream = format!("http://127.0.0.1:{}", backstage.port);
    let config = audit_config(&upstream);
    let binary = Binary::start(&config, &upstream);
    let guest = guest_token(backstage.port).await;
    drive_every_reason(&format!("http://{}", binary.proxy), &guest).await;
    // The forged user token's refusal is explained once the signing keys are fetched.
    let metrics_url = format!("http://{}/metrics", binary.admin);
    let m = eventually(Duration::from_secs(10), "the user token's refusal explained", || async {
        let m = String::from_utf8(get(&metrics_url).await.2.to_vec()).unwrap();
        if auth(&m, &[]) == 6.0 {
            Ok(m)
        } else {
            Err(m)
        }
    })
    .await;
    every_refusal_counted_once(&m);
    let (all_logs, stdout) = binary.stop();
    audit_lines_name_the_refused(&audit_lines(&config));

    // The leak test: no token in any output of the run.
    let audit_text = std::fs::read_to_string(&config.audit.output).unwrap();
    assert!(all_logs.contains("request refused by the upstream"), "the debug logs were captured");
    // A user token, its forged twin, and the token's payload (the claims) appear nowhere either.
    let (forged, payload) = (flipped(&guest), guest.split('.').nth(1).unwrap().to_string());
    for token in
        [TOKEN_FULL, TOKEN_CATALOG_ONLY, TOKEN_MCP_ONLY, BOGUS_TOKEN, "Zm9vOmJhcg==", &guest, &forged, &payload]
    {
        for (what, text) in [("logs", &all_logs), ("stdout", &stdout), ("audit log", &audit_text), ("/metrics", &m)] {
            assert!(!text.contains(token), "a token leaked into the {what}");
        }
    }

    // The same Backstage serves the burst and stuffing scenarios, each with its own tap.
    bursts_are_detected_and_summaries_count_every_failure(&upstream).await;
    credential_stuffing_is_its_own_scope(&upstream).await;
}

async fn bursts_are_detected_and_summaries_count_every_failure(upstream: &str) {
    let mut config = audit_config(upstream);
    config.bursts.source.failures = 10;
    config.bursts.source.window = Duration::from_secs(10);
    config.bursts.global.failures = 100_000;
    config.bursts.stuffing.credentials = 1000;
    config.bursts.quiet_period = Duration::from_secs(2);
    config.audit.lines_per_burst = 3;
    config.audit.summary_interval = Duration::from_secs(1);
    let tap = Tap::start(config.clone()).await;
    let url = tap.url("/api/mcp-actions/v1");
    let mut crossed_at = None;
    for i in 0..40 {
        assert_eq!(post_mcp(&url, &[], LIST).await.0, 401);
        if i == 9 {
            crossed_at = Some(Instant::now());
        }
    }
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_auth_burst_active", &[("scope", "source")]), 1.0);
    assert_eq!(metric(&m, "mcp_tap_auth_bursts_total", &[("scope", "source")]), 1.0);
    // The burst started with the failure that crossed the threshold: its line is already written.
    let lines = audit_when(&config, Duration::from_secs(1), "burst_start", |l| l["event"] == "burst_start").await;
    assert!(crossed_at.unwrap().elapsed() < Duration::from_secs(2), "burst_start within a second of the crossing");
    let started = lines.into_iter().find(|l| l["event"] == "burst_start").unwrap();
    assert_eq!(started["scope"], "source");
    assert_eq!(started["key"], "127.0.0.1");
    // After the quiet period the burst ends; every failure is a line or counted in a summary.
    let lines = audit_when(&config, Duration::from_secs(15), "the burst ending", |l| l["event"] == "burst_end").await;
    let single = lines.iter().filter(|l| l["event"] == "auth_failure").count() as u64;
    let summarised: u64 =
        lines.iter().filter(|l| l["event"] == "auth_failure_summary").map(|l| l["count"].as_u64().unwrap()).sum();
    assert!(single < 40, "a flood must not write a line per failure");
    assert_eq!(single + summarised, 40, "summaries carry the exact count");
    let end = lines.iter().find(|l| l["event"] == "burst_end").unwrap();
    assert!(end["count"].as_u64().unwrap() >= 30, "{end}");
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_auth_burst_active", &[("scope", "source")]), 0.0);
    assert_eq!(metric(&m, "mcp_tap_auth_failures_total", &[("reason", "missing_credentials")]), 40.0);
    tap.stop().await;
}

async fn credential_stuffing_is_its_own_scope(upstream: &str) {
    let mut config = audit_config(upstream);
    config.bursts.source.failures = 1000;
    config.bursts.credential.failures = 1000;
    config.bursts.stuffing.credentials = 5;
    let tap = Tap::start(config.clone()).await;
    let url = tap.url("/api/mcp-actions/v1");
    for i in 0..8 {
        let token = format!("tap-test-stuffing-guess-{i:04}");
        assert_eq!(post_mcp(&url, &[("authorization", &bearer(&token))], LIST).await.0, 401);
    }
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_auth_bursts_total", &[("scope", "stuffing")]), 1.0);
    assert_eq!(metric(&m, "mcp_tap_auth_bursts_total", &[("scope", "source")]), 0.0);
    assert_eq!(metric(&m, "mcp_tap_auth_bursts_total", &[("scope", "credential")]), 0.0);
    tap.stop().await;
    let lines = audit_lines(&config);
    let start = lines.iter().find(|l| l["event"] == "burst_start").expect("burst_start line");
    assert_eq!(start["scope"], "stuffing");
    assert_eq!(start["key"], "127.0.0.1");
    assert!(lines.iter().any(|l| l["event"] == "burst_end"), "shutdown ends open bursts");
}

/// A token that worked and is then rotated out of Backstage is `revoked_token`, named by the
/// subject it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_still_in_use_is_revoked_token() {
    let port = free_port();
    let upstream = format!("http://127.0.0.1:{port}");
    let config = audit_config(&upstream);
    let tap = Tap::start(config.clone()).await;
    let url = tap.url("/api/mcp-actions/v1");
    {
        let _before = backstage_on(port, TOKEN_FULL).await;
        assert_eq!(post_mcp(&url, &[("authorization", &bearer(TOKEN_FULL))], LIST).await.0, 200);
    }
    let rotated = "tap-test-rotated-full-77d1c0ffee";
    let _after = backstage_on(port, rotated).await;
    assert_eq!(post_mcp(&url, &[("authorization", &bearer(TOKEN_FULL))], LIST).await.0, 401);
    assert_eq!(post_mcp(&url, &[("authorization", &bearer(rotated))], LIST).await.0, 200);
    assert_eq!(post_mcp(&url, &[("authorization", &bearer(BOGUS_TOKEN))], LIST).await.0, 401);
    let m = tap.metrics().await;
    assert_eq!(
        auth(&m, &[("reason", "revoked_token"), ("client", "ci-agent"), ("mcp_method_name", "tools/list")]),
        1.0
    );
    assert_eq!(auth(&m, &[("reason", "unknown_token")]), 1.0, "a token never seen working is only unknown");
    tap.stop().await;
    let lines = audit_lines(&config);
    let revoked = find(&lines, "revoked_token");
    assert_eq!(revoked["credential"], fingerprint(TOKEN_FULL));
    assert_eq!(revoked["client"], "ci-agent");
}
