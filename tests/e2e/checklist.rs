//! Backstage's production checklist against a real Backstage, with its real static tokens: a
//! token's age survives a restart of the tap, a rotation is audited once, and a client that
//! could call every tool but calls two is reported with the others as never called, by the
//! `mcp-tap report privileges` command as a table and as JSON.

use crate::auth_audit::{audit_config, bearer, fingerprint, LIST};
use crate::common;

use std::time::{Duration, UNIX_EPOCH};

use common::*;

const ROTATED: &str = "tap-test-rotated-age-3e1f00d2c1";
const FIRST_SEEN: &str = "mcp_tap_credential_first_seen_timestamp_seconds";

fn sha256(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The tests' audit config, with the rotated token named `ci-agent` as well, and quick ticks.
fn config(upstream: &str) -> mcp_tap::config::Config {
    let mut c = audit_config(upstream);
    c.clients.tokens.push(mcp_tap::config::ClientToken {
        subject: "ci-agent".into(),
        token_sha256: Some(sha256(ROTATED)),
        ..Default::default()
    });
    c.checklist.write_interval = Duration::from_millis(100);
    c.checklist.rotation_grace = Duration::from_secs(1);
    c
}

async fn report(args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
        .args(["report", "privileges"])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The `ci-agent` line of a JSON report.
fn ci_agent(json: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let lines = v["clients"].as_array().unwrap();
    lines.iter().find(|l| l["client"] == "ci-agent" && l["route"] == "default").cloned().expect("a ci-agent line")
}

/// A client whose token sees every tool lists them and calls two: the entity tool and another,
/// which is returned with every tool listed.
async fn list_and_call_two(url: &str) -> (Vec<String>, String) {
    let listed = python_client(url, &["--mode", "legacy", "--token", TOKEN_FULL]).await;
    let tools: Vec<String> =
        listed["tools"].as_array().unwrap().iter().map(|t| t.to_string().replace('"', "")).collect();
    let other = tools.iter().find(|t| *t != "catalog.get-catalog-entity").unwrap().clone();
    let entity = r#"catalog.get-catalog-entity={"kind":"Component","name":"payments-api"}"#;
    let second = format!("{other}={{}}");
    let args = ["--mode", "legacy", "--token", TOKEN_FULL, "--call", entity, "--call", &second];
    python_client(url, &args).await;
    (tools, other)
}

/// A client whose token cannot reach the catalog is offered none of its tools; calling one is
/// answered "not found": a denial Backstage hides.
async fn hidden_denial_of_a_catalog_tool(url: &str) {
    let mcp_only = [("authorization", bearer(TOKEN_MCP_ONLY))];
    let mcp_only: Vec<(&str, &str)> = mcp_only.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post_mcp(url, &mcp_only, LIST).await.0, 200);
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"catalog.get-catalog-entity","arguments":{"kind":"Component","name":"payments-api"}}}"#;
    assert_eq!(post_mcp(url, &mcp_only, call).await.0, 200);
}

/// `report privileges` from the running tap at `admin`: ci-agent was offered `tools` and called
/// two (the entity tool and `other`); the rest are never called, in JSON and in the table.
async fn least_privilege_report(admin: &str, tools: &[String], other: &str) -> serde_json::Value {
    let json = ci_agent(&report(&["--admin", admin, "--output", "json"]).await);
    let mut never: Vec<String> =
        tools.iter().filter(|t| *t != other && *t != "catalog.get-catalog-entity").cloned().collect();
    never.sort();
    assert_eq!(json["never_called"], serde_json::json!(never));
    assert_eq!(json["advertised"], tools.len());
    let table = report(&["--admin", admin]).await;
    let on_default = |l: &&str| l.split_whitespace().take(3).eq(["mcp", "default", "ci-agent"]);
    let row = table.lines().find(on_default).unwrap_or_else(|| panic!("a ci-agent row on the default server: {table}"));
    assert!(row.contains(&never.join(", ")), "{table}");
    json
}

/// The audit trail has exactly one rotation: ci-agent's, from the full token to the rotated one.
fn one_rotation_of_ci_agent(lines: &[serde_json::Value]) {
    let rotated: Vec<_> = lines.iter().filter(|l| l["event"] == "credential_rotated").collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(rotated[0]["client"], "ci-agent");
    assert_eq!(rotated[0]["old_credential"], fingerprint(TOKEN_FULL));
    assert_eq!(rotated[0]["new_credential"], fingerprint(ROTATED));
}

/// Waits until the wall clock is a second past `unix_seconds`.
async fn a_second_after(unix_seconds: f64) {
    eventually(Duration::from_secs(3), "a later second", || async {
        let now = wall_clock().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        if now >= unix_seconds + 1.0 {
            Ok(())
        } else {
            Err(format!("{now}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_age_rotation_and_least_privilege_against_a_real_backstage() {
    let port = free_port();
    let config = config(&format!("http://127.0.0.1:{port}"));
    let path = "/api/mcp-actions/v1";
    let before = backstage_on(port, TOKEN_FULL).await;
    let tap = Tap::start(config.clone()).await;
    let (tools, other) = list_and_call_two(&tap.url(path)).await;
    let gauges = |m: &str, name: &str| metric(m, name, &[("mcp_route", "default"), ("client", "ci-agent")]);
    let m = metrics_when(&tap, Duration::from_secs(5), "the least-privilege gauges", |m| {
        gauges(m, "mcp_tap_client_tools_called") == 2.0 && metric(m, FIRST_SEEN, &[("client", "ci-agent")]) > 0.0
    })
    .await;
    assert_eq!(gauges(&m, "mcp_tap_client_tools_advertised"), tools.len() as f64);
    let first_seen = metric(&m, FIRST_SEEN, &[("client", "ci-agent")]);

    hidden_denial_of_a_catalog_tool(&tap.url(path)).await;
    let m = tap.metrics().await;
    let hidden = [("reason", "hidden_denial"), ("client", "mcp-only")];
    assert_eq!(metric(&m, "mcp_tap_auth_failures_total", &hidden), 1.0);

    let json = least_privilege_report(&format!("http://{}", tap.admin), &tools, &other).await;
    tap.stop().await;
    // A stopped tap's state file gives the same report.
    let state_dir = config.checklist.state_dir.clone().unwrap();
    let offline = ci_agent(&report(&["--state-dir", state_dir.to_str().unwrap(), "--output", "json"]).await);
    assert_eq!(offline["never_called"], json["never_called"]);

    // Restarted a second later, the tap still knows when it first saw the token.
    a_second_after(first_seen).await;
    let tap = Tap::start(config.clone()).await;
    assert_eq!(post_mcp(&tap.url(path), &[("authorization", &bearer(TOKEN_FULL))], LIST).await.0, 200);
    let m = metrics_when(&tap, Duration::from_secs(5), "the first-seen gauge", |m| {
        metric(m, FIRST_SEEN, &[("client", "ci-agent")]) > 0.0
    })
    .await;
    assert_eq!(metric(&m, FIRST_SEEN, &[("client", "ci-agent")]), first_seen, "the same first-seen time");

    // Backstage rotates ci-agent's token; the client moves to the new one.
    drop(before);
    let _after = backstage_on(port, ROTATED).await;
    assert_eq!(post_mcp(&tap.url(path), &[("authorization", &bearer(ROTATED))], LIST).await.0, 200);
    audit_when(&config, Duration::from_secs(10), "a credential_rotated line", |l| l["event"] == "credential_rotated")
        .await;
    let m = tap.metrics().await;
    assert!(metric(&m, FIRST_SEEN, &[("client", "ci-agent")]) > first_seen, "the new token's age");
    tap.stop().await;
    one_rotation_of_ci_agent(&audit_lines(&config));
    let state = std::fs::read_to_string(state_dir.join("checklist.json")).unwrap();
    for token in [TOKEN_FULL, ROTATED] {
        assert!(!state.contains(token), "a token in the state file");
    }
}
