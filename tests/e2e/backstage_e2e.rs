//! End to end in front of a real Backstage backend (catalog + MCP Actions, static tokens): the
//! Python SDK client sees the same answers through the tap, and the metrics describe what
//! Backstage really did (routes, tools, tool errors, 401/403, 404 on an unknown server key, 405).

use crate::common;

use common::*;

fn op(m: &str, labels: &[(&str, &str)]) -> f64 {
    metric(m, "mcp_server_operation_duration_seconds_count", labels)
}

/// Rejections: no token (401), a token restricted to the catalog plugin (403), an unknown server
/// key (404), GET (405, not part of Backstage's stateless transport); a batch is accepted.
async fn rejections(tap: &Tap, path: &str) {
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert_eq!(post_mcp(&tap.url(path), &[], list).await.0, 401);
    let restricted = format!("Bearer {TOKEN_CATALOG_ONLY}");
    assert_eq!(post_mcp(&tap.url(path), &[("authorization", &restricted)], list).await.0, 403);
    let full = format!("Bearer {TOKEN_FULL}");
    assert_eq!(post_mcp(&tap.url(&format!("{path}/no-such-server")), &[("authorization", &full)], list).await.0, 404);
    // GET is not part of Backstage's stateless transport.
    let (status, _, _) =
        request("GET", &tap.url(path), &[("authorization", &full), MCP_ACCEPT], bytes::Bytes::new()).await;
    assert_eq!(status, 405);
    // A batch is still accepted: one SSE event per answer.
    let batch = r#"[{"jsonrpc":"2.0","id":"a","method":"tools/list"},{"jsonrpc":"2.0","id":"b","method":"ping"}]"#;
    let (status, _, body) = post_mcp(&tap.url(path), &[("authorization", &full)], batch).await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body).matches("event: message").count(), 2);
}

/// What Backstage did, as the metrics describe it: operations by route, tool and error, the
/// upstream hop, advertised tools, inferred sessions, and no token anywhere.
fn metrics_say_what_backstage_did(m: &str, backstage_port: u16) {
    let ok = ("error_type", "");
    let d = ("mcp_route", "default");
    assert_eq!(
        op(m, &[d, ("mcp_method_name", "tools/call"), ("gen_ai_tool_name", "catalog.get-catalog-entity"), ok]),
        1.0
    );
    // The unknown action was never advertised, so its name folds into _OTHER.
    assert_eq!(
        op(m, &[d, ("mcp_method_name", "tools/call"), ("gen_ai_tool_name", "_OTHER"), ("error_type", "tool_error")]),
        1.0
    );
    assert_eq!(op(m, &[d, ("mcp_method_name", "tools/list"), ("error_type", "401")]), 1.0);
    assert_eq!(op(m, &[d, ("mcp_method_name", "tools/list"), ("error_type", "403")]), 1.0);
    assert_eq!(op(m, &[("mcp_route", "_OTHER"), ("mcp_method_name", "tools/list"), ("error_type", "404")]), 1.0);
    assert_eq!(op(m, &[d, ("mcp_method_name", "ping"), ok]), 1.0);
    // The upstream hop (mcp.client.operation.duration) names Backstage's address and port, and
    // takes no longer than what the client waited.
    let port = backstage_port.to_string();
    let hop = [d, ("mcp_method_name", "tools/call"), ("server_address", "127.0.0.1"), ("server_port", &port)];
    let tool = ("gen_ai_tool_name", "catalog.get-catalog-entity");
    let client_side = |suffix: &str| {
        metric(
            m,
            &format!("mcp_client_operation_duration_seconds_{suffix}"),
            &[hop[0], hop[1], hop[2], hop[3], tool, ok],
        )
    };
    assert_eq!(client_side("count"), 1.0, "one upstream hop for the call");
    let server_side =
        metric(m, "mcp_server_operation_duration_seconds_sum", &[d, ("mcp_method_name", "tools/call"), tool, ok]);
    assert!(client_side("sum") > 0.0 && client_side("sum") <= server_side, "{} vs {server_side}", client_side("sum"));
    assert_eq!(op(m, &[("mcp_route", "catalog"), ("mcp_method_name", "initialize"), ok]), 1.0);
    assert_eq!(metric(m, "mcp_tap_tools_advertised", &[d]), 7.0);
    assert_eq!(metric(m, "mcp_tap_tools_advertised", &[("mcp_route", "catalog")]), 7.0);
    // Backstage is stateless: sessions are inferred, one per client identity and route.
    assert_eq!(metric(m, "mcp_tap_sessions_active", &[d]), 1.0);
    assert_eq!(metric(m, "mcp_tap_sessions_active", &[("mcp_route", "catalog")]), 1.0);
    assert_eq!(metric(m, "mcp_tap_sessions_active", &[("mcp_route", "_OTHER")]), 0.0);
    assert_eq!(
        metric(
            m,
            "mcp_tap_http_requests_total",
            &[d, ("http_request_method", "GET"), ("http_response_status_code", "405")]
        ),
        1.0
    );
    assert_eq!(metric(m, "mcp_tap_decode_errors_total", &[]), 0.0);
    for token in [TOKEN_FULL, TOKEN_CATALOG_ONLY] {
        assert!(!m.contains(token), "a token leaked into /metrics");
    }
}

/// The post-deployment probe, against Backstage directly and through the tap, given the base URL
/// or the endpoint URL a user pastes from an MCP client's config; a wrong token and a missing
/// tool fail exactly the checks they should.
async fn the_probe_checks_a_deployment(upstream: &str, tap: &Tap) {
    let endpoint = format!("http://{}/api/mcp-actions/v1/catalog", tap.proxy);
    for base in [upstream.to_string(), format!("http://{}", tap.proxy), endpoint] {
        let (code, out) = probe(&base, TOKEN_FULL, &["--expect-tool", "catalog.get-catalog-entity"]).await;
        assert_eq!(code, 0, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ok"], true);
        let checks: Vec<&str> = v["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
        assert_eq!(checks, mcp_tap::probe::CHECKS);
        let greeting = v["checks"].as_array().unwrap().iter().find(|c| c["check"] == "initialize").unwrap();
        assert!(greeting["detail"].as_str().unwrap().starts_with("handshake era"), "Backstage today: {greeting}");
    }
    // A wrong token: exactly the authenticated checks fail, with advice, and the exit code says so.
    let (code, out) = probe(upstream, "tap-test-wrong-token-000000", &[]).await;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["initialize", "tools_list"]);
    assert!(v["checks"][2]["detail"].as_str().unwrap().contains("got 401: the token is unknown to Backstage"));
    // A tool that is not offered fails tools_list.
    let (code, out) = probe(upstream, TOKEN_FULL, &["--expect-tool", "scaffolder.create"]).await;
    assert_eq!(code, 1);
    assert!(out.contains("missing [\\\"scaffolder.create\\\"]"), "{out}");
    assert!(!out.contains(TOKEN_FULL));
}

/// The same checks as an in-daemon canary, exported as metrics.
async fn the_canary_exports_the_probe(upstream: &str) {
    let mut config = test_config(upstream);
    config.env = mcp_tap::config::Environment::fixed([("MCP_TAP_E2E_CANARY_TOKEN", TOKEN_FULL)]);
    config.canary.enabled = true;
    config.canary.token_env = "MCP_TAP_E2E_CANARY_TOKEN".into();
    config.canary.interval = std::time::Duration::from_secs(1);
    let canary_tap = Tap::start(config).await;
    let passing = |m: &str| {
        mcp_tap::probe::CHECKS.iter().map(|c| metric(m, "mcp_tap_probe_success", &[("check", c)])).sum::<f64>()
    };
    let m =
        metrics_when(&canary_tap, std::time::Duration::from_secs(15), "5 passing canary checks", |m| passing(m) == 5.0)
            .await;
    assert!(metric(&m, "mcp_tap_probe_duration_seconds", &[("check", "tools_list")]) > 0.0);
    canary_tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_front_of_a_real_backstage() {
    let backstage = backstage().await;
    let upstream = format!("http://127.0.0.1:{}", backstage.port);
    let config = test_config(&upstream);
    let tap = Tap::start(config.clone()).await;
    let path = "/api/mcp-actions/v1";

    let args = [
        "--mode",
        "legacy",
        "--token",
        TOKEN_FULL,
        "--call",
        r#"catalog.get-catalog-entity={"kind":"Component","name":"payments-api"}"#,
        "--call",
        r#"catalog.no-such-action={}"#,
    ];
    let direct = python_client(&format!("{upstream}{path}"), &args).await;
    let tapped = python_client(&tap.url(path), &args).await;
    // Entity uids and etags are stable within one Backstage run, so whole answers compare equal.
    assert_eq!(direct, tapped);
    assert!(tapped["calls"][0]["content"][0].as_str().unwrap().contains("payments-api"));
    assert_eq!(tapped["calls"][1]["is_error"], true);

    // A split server learned from traffic, with its own inferred session.
    let split = python_client(&tap.url(&format!("{path}/catalog")), &["--mode", "legacy", "--token", TOKEN_FULL]).await;
    assert_eq!(split["tools"].as_array().unwrap().len(), 7);
    rejections(&tap, path).await;
    metrics_say_what_backstage_did(&tap.metrics().await, backstage.port);
    auto_mode_clients_negotiate(&tap, &config, path).await;
    the_probe_checks_a_deployment(&upstream, &tap).await;
    tap.stop().await;
    the_canary_exports_the_probe(&upstream).await;
}

/// 25 sessions of the Python SDK client in auto mode (MCP 2026-07-28 first), five at a time, on
/// one product's token: each probes `server/discover`,
/// Backstage refuses it, the client falls back to the handshake and lists tools. The refusals
/// are version negotiation: counted as `version_refused`, no finding, no burst.
async fn auto_mode_clients_negotiate(tap: &Tap, config: &mcp_tap::config::Config, path: &str) {
    let url = tap.url(path);
    for _wave in 0..5 {
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..5 {
            let url = url.clone();
            clients.spawn(async move { python_client(&url, &["--mode", "auto", "--token", TOKEN_FULL]).await });
        }
        for out in clients.join_all().await {
            assert!(!out["tools"].as_array().unwrap().is_empty(), "{out}");
        }
    }
    let m = tap.metrics().await;
    let discover = |labels: &[(&str, &str)]| {
        let mut l = vec![("mcp_method_name", "server/discover")];
        l.extend_from_slice(labels);
        metric(&m, "mcp_server_operation_duration_seconds_count", &l)
    };
    assert_eq!(discover(&[]), 25.0, "one probe per client");
    assert_eq!(discover(&[("error_type", "-32000")]), 25.0, "Backstage refuses the 2026-07-28 version");
    let refused = [("mcp_method_name", "server/discover"), ("outcome", "version_refused")];
    assert_eq!(metric(&m, "mcp_tap_client_operations_total", &refused), 25.0);
    assert_eq!(
        metric(&m, "mcp_tap_client_operations_total", &[("mcp_method_name", "server/discover"), ("outcome", "error")]),
        0.0
    );
    assert_eq!(metric(&m, "mcp_tap_auth_bursts_total", &[]), 0.0, "no burst");
    let findings: Vec<_> = audit_lines(config).into_iter().filter(|l| l.get("finding").is_some()).collect();
    assert!(findings.is_empty(), "no finding from version negotiation: {findings:?}");
}

/// Runs `mcp-tap probe BASE --output json` with the token in the environment.
async fn probe(base: &str, token: &str, extra: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
        .args(["probe", base, "--output", "json"])
        .args(extra)
        .env("MCP_TAP_PROBE_TOKEN", token)
        .output()
        .await
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}
