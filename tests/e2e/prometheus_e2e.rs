//! The dashboards and alerts against a real Prometheus scraping a real tap in front of a real
//! Backstage: every panel query and rule expression parses and runs, the ones that must show
//! data do, every metric and label they use exists, and the auth-burst alert fires and reaches a
//! webhook through a real Alertmanager.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

/// Panels that must show data after the scripted traffic.
const MUST_HAVE_DATA: &[&str] = &[
    "Operation rate by route",
    "Success ratio by route",
    "Operations by method",
    "Tool calls by tool",
    "Tool use by surface and route",
    "Errors by error_type",
    "HTTP exchanges by status",
    "Operation latency p50 / p95 / p99",
    "Tap overhead p99",
    "Sessions active",
    "Tools advertised",
    "Auth failures by reason",
    "Auth failures by client",
    "Auth failures by route",
    "Auth failures by MCP method",
    "Bursts active by scope",
    "Operations by client and outcome",
    "Static token age by client",
    "Least privilege: tools called / advertised",
    "Last config load successful",
    "Audit lines by event",
    "Resident memory",
    "Build",
];

async fn query(prom: u16, expr: &str) -> Value {
    let url = format!("http://127.0.0.1:{prom}/api/v1/query");
    let body = format!("query={}", urlencode(expr));
    let (status, _, bytes) =
        request("POST", &url, &[("content-type", "application/x-www-form-urlencoded")], body).await;
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, 200, "query failed: {expr}\n{v}");
    assert_eq!(v["status"], "success", "{expr}\n{v}");
    v
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Grafana's variables as a dashboard would fill them.
fn grafana(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "10m")
        .replace("$__interval", "15s")
        .replace("$job", "mcp-tap")
        .replace("$instance", ".*")
        .replace("$mcp_route", ".*")
}

/// (panel title, expression) of every dashboard query and annotation.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("dashboards")).unwrap() {
        let board: Value = serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        for p in board["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((p["title"].as_str().unwrap().to_string(), t["expr"].as_str().unwrap().to_string()));
            }
        }
        for a in board["annotations"]["list"].as_array().unwrap() {
            if let Some(expr) = a["expr"].as_str() {
                out.push((format!("annotation {}", a["name"]), expr.to_string()));
            }
        }
    }
    out
}

fn rule_expressions() -> Vec<(String, String)> {
    let doc: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join("alerts/mcp-tap.rules.yml")).unwrap()).unwrap();
    let mut out = Vec::new();
    for g in doc["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap().to_string();
            out.push((name, r["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// Metric names (not recording-rule names) and the label names an expression uses with each.
fn metrics_and_labels(expr: &str) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    // Grouping clauses name labels, not metrics: take them out before looking for metric names.
    let mut by = BTreeSet::new();
    let mut stripped = String::new();
    let mut rest = expr;
    while let Some(pos) = ["by (", "by(", "without (", "on (", "on(", "ignoring (", "ignoring("]
        .iter()
        .filter_map(|k| rest.find(k).map(|p| (p, k.len())))
        .min()
    {
        let (start, len) = pos;
        let end = rest[start..].find(')').unwrap() + start;
        for l in rest[start + len..end].split(',') {
            if rest[start..].starts_with("by") {
                by.insert(l.trim().to_string());
            }
        }
        stripped.push_str(&rest[..start]);
        rest = &rest[end + 1..];
    }
    stripped.push_str(rest);
    let expr = stripped.as_str();
    let mut metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':') {
            i += 1;
        }
        let word = &expr[start..i];
        let is_metric =
            (word.starts_with("mcp_") || word.starts_with("process_") || word == "up") && !word.contains(':');
        let is_name_start = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut selector = BTreeSet::new();
        if !word.is_empty() && bytes.get(i) == Some(&b'{') {
            // A selector: its contents are label matchers, never metric names.
            let end = expr[i..].find('}').unwrap() + i;
            for part in expr[i + 1..end].split(',') {
                if let Some(pos) = part.find(['=', '!']) {
                    selector.insert(part[..pos].trim().to_string());
                }
            }
            i = end;
        }
        if is_metric && is_name_start {
            metrics.entry(word.to_string()).or_default().extend(selector);
        }
        i += 1;
    }
    (metrics, by)
}

/// A webhook receiver for Alertmanager's notifications; the bodies it got.
async fn webhook() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let hook = {
        let received = received.clone();
        upstream(move |req: http::Request<hyper::body::Incoming>| {
            let received = received.clone();
            async move {
                use http_body_util::BodyExt;
                let body = req.into_body().collect().await.unwrap().to_bytes();
                received.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                json_response(200, "{}")
            }
        })
        .await
    };
    (hook, received)
}

/// The tap as production runs it, in front of the Backstage on `backstage_port`: in cluster
/// mode (the store panels and rule have data), with a known static token (its age is measured).
fn production_config(backstage_port: u16, store: &Peer) -> mcp_tap::config::Config {
    let mut config = test_config(&format!("http://127.0.0.1:{backstage_port}"));
    config.bursts.credential.failures = 5;
    // The full token is a known static token: its age is measured.
    config.clients.tokens.push(mcp_tap::config::ClientToken {
        subject: "ci-agent".into(),
        token_env: Some("MCP_TAP_E2E_FULL".into()),
        ..Default::default()
    });
    config.cluster.store_url = Some(format!("redis://127.0.0.1:{}/0", store.port));
    config.cluster.password_env = Some("MCP_TAP_E2E_STORE".into());
    config.env =
        mcp_tap::config::Environment::fixed([("MCP_TAP_E2E_FULL", TOKEN_FULL), ("MCP_TAP_E2E_STORE", STORE_PASSWORD)]);
    config.checklist.write_interval = Duration::from_millis(500);
    config.bursts.quiet_period = Duration::from_secs(600);
    config
}

/// A real Prometheus scraping `admin` every second, with the real rules (evaluated every 2 s
/// instead of 30 s so the test is quick), sending alerts to the Alertmanager on `am_port`.
async fn prometheus_with_the_rules(am_port: u16, admin: std::net::SocketAddr) -> Peer {
    let dir = std::env::temp_dir().join(format!("mcp-tap-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = std::fs::read_to_string(repo().join("alerts/mcp-tap.rules.yml"))
        .unwrap()
        .replace("interval: 30s", "interval: 2s");
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
    let prom = prometheus(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{}']\nscrape_configs:\n  - job_name: mcp-tap\n    static_configs:\n      - targets: ['{}']\n",
        dir.join("rules.yml").display(),
        am_port,
        admin
    ))
    .await;
    prom
}

/// Scripted traffic: successes, a tool error, two sessions of one client, then an auth burst;
/// returns once Prometheus has scraped its result.
async fn scripted_traffic(url: &str, prom_port: u16) {
    for _ in 0..2 {
        python_client(
            url,
            &[
                "--mode",
                "legacy",
                "--token",
                TOKEN_FULL,
                "--call",
                r#"catalog.get-catalog-entity={"kind":"Component","name":"payments-api"}"#,
                "--call",
                r#"catalog.get-catalog-entity={"kind":"Component","name":"nope"}"#,
            ],
        )
        .await;
    }
    // The same tool through the catalog's actions API (the Backstage CLI's way).
    let invoke = url
        .replace("/api/mcp-actions/v1", "/api/catalog/.backstage/actions/v1/actions/catalog:get-catalog-entity/invoke");
    let headers = [("authorization", format!("Bearer {TOKEN_FULL}")), ("content-type", "application/json".into())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let entity = r#"{"kind":"component","namespace":"default","name":"payments-api"}"#;
    assert_eq!(request("POST", &invoke, &headers, entity.to_string()).await.0, 200);
    let bad = "Bearer tap-test-burst-token-0000";
    for _ in 0..10 {
        assert_eq!(post_mcp(url, &[("authorization", bad)], LIST).await.0, 401);
    }
    // Wait until Prometheus has scraped the result of that traffic.
    eventually(Duration::from_secs(30), "Prometheus scraping the tap's auth failures", || async {
        let v = query(prom_port, "sum(mcp_tap_auth_failures_total) >= 10").await;
        if v["data"]["result"].as_array().unwrap().is_empty() {
            Err(v.to_string())
        } else {
            Ok(())
        }
    })
    .await;
}

/// Every dashboard query parses and runs; the named panels show data once rates have two
/// samples; every metric and label the dashboards and rules use exists in what was scraped.
async fn the_dashboards_and_rules_have_their_data(prom_port: u16) {
    eventually(Duration::from_secs(30), "data in every named panel", || async {
        let mut with_data = BTreeSet::new();
        for (title, expr) in dashboard_queries() {
            let v = query(prom_port, &grafana(&expr)).await;
            if !v["data"]["result"].as_array().is_none_or(Vec::is_empty) {
                with_data.insert(title);
            }
        }
        let missing: Vec<&&str> = MUST_HAVE_DATA.iter().filter(|t| !with_data.contains(**t)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("panels without data: {missing:?}"))
        }
    })
    .await;

    // Every metric and label the dashboards and rules use exists in what Prometheus scraped.
    let series = query(prom_port, r#"{job="mcp-tap"}"#).await;
    let mut known: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in series["data"]["result"].as_array().unwrap() {
        let labels = s["metric"].as_object().unwrap();
        let name = labels["__name__"].as_str().unwrap().to_string();
        known.entry(name).or_default().extend(labels.keys().filter(|k| *k != "__name__").cloned());
    }
    let all: Vec<(String, String)> = dashboard_queries().into_iter().chain(rule_expressions()).collect();
    for (what, expr) in &all {
        let (metrics, by) = metrics_and_labels(expr);
        let mut in_expr = BTreeSet::new();
        for (metric, labels) in &metrics {
            let have = known.get(metric).unwrap_or_else(|| panic!("{what}: metric {metric} is not in /metrics"));
            for l in labels {
                assert!(have.contains(l) || l == "__name__", "{what}: {metric} has no label {l}");
            }
            in_expr.extend(have.iter().cloned());
        }
        for l in by {
            assert!(in_expr.contains(&l) || metrics.is_empty(), "{what}: no metric of the expression has label {l}");
        }
    }

    for (name, expr) in rule_expressions() {
        query(prom_port, &expr).await;
        let _ = name;
    }
}

/// The burst alert fires in Prometheus and reaches the webhook through Alertmanager, as a page
/// with its runbook.
async fn the_burst_pages(prom_port: u16, received: &Mutex<Vec<String>>) {
    eventually(Duration::from_secs(120), "MCPTapAuthFailureBurst firing", || async {
        let (_, _, body) = get(&format!("http://127.0.0.1:{prom_port}/api/v1/alerts")).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        let firing = v["data"]["alerts"].as_array().unwrap().iter().any(|a| {
            a["labels"]["alertname"] == "MCPTapAuthFailureBurst"
                && a["labels"]["scope"] == "credential"
                && a["state"] == "firing"
        });
        if firing {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
    let notification = eventually(Duration::from_secs(30), "the burst alert at the webhook", || async {
        let got = received.lock().unwrap().clone();
        got.iter().find(|n| n.contains("MCPTapAuthFailureBurst")).cloned().ok_or(format!("{got:?}"))
    })
    .await;
    let v: Value = serde_json::from_str(&notification).unwrap();
    assert_eq!(v["status"], "firing");
    assert_eq!(v["alerts"][0]["labels"]["severity"], "page");
    assert!(v["alerts"][0]["annotations"]["runbook_url"].as_str().unwrap().contains("runbooks.md#"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alerts_against_a_real_prometheus() {
    let (hook, received) = webhook().await;
    let am = alertmanager_with(&format!(
        "route:\n  receiver: hook\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{hook}/hook\n"
    ))
    .await;
    let backstage = backstage().await;
    let store_dir = std::env::temp_dir().join(format!("mcp-tap-prom-store-{}", std::process::id()));
    std::fs::create_dir_all(&store_dir).unwrap();
    let store = redis_server(&store_dir).await;
    let tap = Tap::start(production_config(backstage.port, &store)).await;
    let prom = prometheus_with_the_rules(am.port, tap.admin).await;
    scripted_traffic(&tap.url("/api/mcp-actions/v1"), prom.port).await;
    the_dashboards_and_rules_have_their_data(prom.port).await;
    the_burst_pages(prom.port, &received).await;
    tap.stop().await;
}
