//! The actions API beside MCP, through the tap in front of the real Backstage: every plugin
//! serves its actions at `/api/{plugin}/.backstage/actions/v1/actions[/{id}/invoke]`, the same
//! tools MCP exposes. A list and invocations with two static tokens and a user token are counted
//! per client and tool under `surface="actions_api"`, in the actions API's own histogram and in
//! least privilege; a bad token is a refusal with its reason; a token refused on MCP that the
//! actions API answers is evidence once; random plugin and action paths mint no label values.
//! And which MCP server each client reaches: Python SDK clients on the default server and on the
//! named `catalog` server show their routes in the report and on the status page.

use crate::auth_audit::{audit_config, LIST};
use crate::common;

use std::time::Duration;

use common::*;

const ACTIONS: &str = "/api/catalog/.backstage/actions/v1/actions";
const ENTITY: &str = r#"{"kind":"component","namespace":"default","name":"payments-api"}"#;
const TOOL: (&str, &str) = ("gen_ai_tool_name", "catalog.get-catalog-entity");

async fn invoke(base: &str, token: &str, action: &str, body: &str) -> u16 {
    let auth = format!("Bearer {token}");
    let url = format!("{base}{ACTIONS}/{action}/invoke");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    request("POST", &url, &headers, body.to_string()).await.0
}

async fn list(base: &str, plugin: &str, token: &str) -> u16 {
    let url = format!("{base}/api/{plugin}/.backstage/actions/v1/actions");
    request("GET", &url, &[("authorization", &format!("Bearer {token}"))], "").await.0
}

/// What a CLI and scripts send: lists and invocations with two static tokens and a user token,
/// a bad token, and random plugins and actions.
async fn traffic(base: &str, user: &str) {
    assert_eq!(list(base, "catalog", TOKEN_FULL).await, 200);
    // The CLI encodes the colon; a script may not. Both are the same tool.
    assert_eq!(invoke(base, TOKEN_FULL, "catalog:get-catalog-entity", ENTITY).await, 200);
    assert_eq!(invoke(base, TOKEN_FULL, "catalog%3Aget-catalog-entity", ENTITY).await, 200);
    // Refused with 403 on MCP (its restrictions leave out mcp-actions), answered here.
    assert_eq!(invoke(base, TOKEN_CATALOG_ONLY, "catalog:get-catalog-entity", ENTITY).await, 200);
    assert_eq!(invoke(base, user, "catalog:get-catalog-entity", ENTITY).await, 200, "a user token");
    assert_eq!(invoke(base, "not-a-backstage-token", "catalog:get-catalog-entity", ENTITY).await, 401);
    // Random plugins and actions: Backstage answers 404, no label is minted.
    for n in 0..20 {
        assert_eq!(invoke(base, TOKEN_FULL, &format!("catalog:random-{n}"), "{}").await, 404);
        assert_eq!(list(base, &format!("plugin-{n}"), TOKEN_FULL).await, 404);
    }
}

/// Per client and tool, with outcome and surface; in the actions API's histogram, not MCP's.
fn usage_is_counted(m: &str) {
    let uses = |client: &str| {
        let labels = [("client", client), ("surface", "actions_api"), TOOL, ("outcome", "ok")];
        metric(m, "mcp_tap_client_operations_total", &labels)
    };
    assert_eq!((uses("ci-agent"), uses("catalog-reader")), (2.0, 1.0), "{m}");
    let users: f64 = ["ci-agent", "catalog-reader"].iter().map(|c| uses(c)).sum();
    let all = metric(m, "mcp_tap_client_operations_total", &[("surface", "actions_api"), TOOL, ("outcome", "ok")]);
    assert_eq!(all - users, 1.0, "the user token's invocation, under its own client");
    let listed = |outcome| {
        let labels = [("client", "ci-agent"), ("surface", "actions_api"), ("mcp_method_name", "tools/list")];
        metric(m, "mcp_tap_client_operations_total", &[labels[0], labels[1], labels[2], ("outcome", outcome)])
    };
    assert_eq!((listed("ok"), listed("error")), (1.0, 20.0), "the list, and twenty of plugins that do not exist");
    let calls = metric(
        m,
        "mcp_tap_actions_api_duration_seconds_count",
        &[("plugin", "catalog"), ("operation", "invoke"), TOOL],
    );
    assert_eq!(calls, 5.0, "four answered and one refused");
    let sizes = metric(m, "mcp_tap_tool_response_bytes_count", &[("mcp_route", "actions_api"), TOOL]);
    let bytes = metric(m, "mcp_tap_tool_response_bytes_sum", &[("mcp_route", "actions_api"), TOOL]);
    assert!(sizes == 4.0 && bytes > 4.0 * 100.0, "the answers' sizes: {sizes} answers, {bytes} bytes");
    let mcp_calls = metric(m, "mcp_server_operation_duration_seconds_count", &[("mcp_method_name", "tools/call")]);
    assert_eq!(mcp_calls, 0.0, "the MCP histogram stays MCP's");
    let tools: std::collections::BTreeSet<&str> = m
        .lines()
        .filter(|l| l.starts_with("mcp_tap_actions_api_duration_seconds_count"))
        .filter_map(|l| l.split("gen_ai_tool_name=\"").nth(1)?.split('"').next())
        .collect();
    assert!(!tools.iter().any(|t| t.contains("random")), "random actions mint no label: {tools:?}");
    assert_eq!(m.lines().filter(|l| l.contains("plugin=\"plugin-")).count(), 0, "random plugins mint no label");
}

/// The bad token is a refusal with its reason; catalog-reader, refused on MCP, is evidence once.
fn audited(config: &mcp_tap::config::Config) {
    let lines = audit_lines(config);
    let refusals: Vec<_> =
        lines.iter().filter(|l| l["event"] == "auth_failure" && l["route"] == "actions_api").collect();
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    assert_eq!(refusals[0]["reason"], "unknown_token");
    assert_eq!(refusals[0]["tool"], "catalog.get-catalog-entity");
    let reach: Vec<_> = lines.iter().filter(|l| l["event"] == "actions_api_reach").collect();
    assert_eq!(reach.len(), 1, "once, though it was answered twice: {reach:#?}");
    assert_eq!(
        (reach[0]["client"].as_str(), reach[0]["refused_reason"].as_str(), reach[0]["plugin"].as_str()),
        (Some("catalog-reader"), Some("plugin_not_allowed"), Some("catalog"))
    );
    assert!(reach[0].get("finding").is_none(), "evidence, not a finding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_api_is_a_second_surface_per_client_and_tool() {
    let backstage = backstage().await;
    let config = audit_config(&format!("http://127.0.0.1:{}", backstage.port));
    let tap = Tap::start(config.clone()).await;
    let base = format!("http://{}", tap.proxy);
    let user = guest_token(backstage.port).await;
    let mcp = tap.url("/api/mcp-actions/v1");
    assert_eq!(post_mcp(&mcp, &[("authorization", &format!("Bearer {TOKEN_CATALOG_ONLY}"))], LIST).await.0, 403);
    traffic(&base, &user).await;
    assert_eq!(list(&base, "catalog", TOKEN_CATALOG_ONLY).await, 200);

    let m = metrics_when(&tap, Duration::from_secs(5), "the refusal counted", |m| {
        metric(m, "mcp_tap_auth_failures_total", &[("mcp_route", "actions_api")]) == 1.0
    })
    .await;
    usage_is_counted(&m);
    let (_, _, body) = get(&format!("http://{}/privileges", tap.admin)).await;
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reader = report["clients"].as_array().unwrap().iter().find(|l| l["client"] == "catalog-reader").cloned();
    let reader = reader.unwrap_or_else(|| panic!("catalog-reader in the report: {report:#}"));
    assert_eq!((reader["route"].as_str(), reader["surface"].as_str()), (Some("actions_api"), Some("actions_api")));
    assert!(reader["called"].to_string().contains("catalog.get-catalog-entity"), "{report:#}");
    assert_eq!(report["actions_api_reach"][0]["client"], "catalog-reader", "{report:#}");
    let callers =
        report["clients"].as_array().unwrap().iter().filter(|l| {
            l["surface"] == "actions_api" && l["called"].to_string().contains("catalog.get-catalog-entity")
        });
    let callers: Vec<&str> = callers.map(|l| l["client"].as_str().unwrap()).collect();
    assert_eq!(callers.len(), 3, "two static tokens and a user token: {callers:?}");
    tap.stop().await;
    audited(&config);
    let audit = std::fs::read_to_string(&config.audit.output).unwrap();
    let payload = user.split('.').nth(1).unwrap();
    for secret in [TOKEN_FULL, TOKEN_CATALOG_ONLY, "not-a-backstage-token", payload] {
        assert!(!audit.contains(secret) && !m.contains(secret), "a token leaked");
    }
    drop(backstage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_shows_the_mcp_server_it_reaches() {
    let backstage = backstage().await;
    let tap = Tap::start(test_config(&format!("http://127.0.0.1:{}", backstage.port))).await;
    let entity = format!("catalog.get-catalog-entity={ENTITY}");
    let (default, catalog) = (tap.url("/api/mcp-actions/v1"), tap.url("/api/mcp-actions/v1/catalog"));
    // Named by the clientInfo name each declares.
    let args = ["--token", TOKEN_FULL, "--name", "ci-agent", "--call", &entity];
    let on_default = python_client(&default, &args);
    let on_catalog = python_client(&catalog, &["--token", TOKEN_INSPECTOR, "--name", "inspector-agent"]);
    tokio::join!(on_default, on_catalog);

    let (_, _, body) = get(&format!("http://{}/privileges", tap.admin)).await;
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let lines = report["clients"].as_array().unwrap();
    let route_of = |client: &str| lines.iter().find(|l| l["client"] == client).map(|l| l["route"].clone());
    assert_eq!(route_of("ci-agent"), Some("default".into()), "{report:#}");
    assert_eq!(route_of("inspector-agent"), Some("catalog".into()), "{report:#}");
    let catalog = lines.iter().find(|l| l["client"] == "inspector-agent").unwrap();
    assert!(catalog["tools"].to_string().contains("catalog.get-catalog-entity"), "the tools advertised to it");
    assert_eq!(report["named_servers"], serde_json::json!(["catalog"]));
    let notes = report["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].as_str().unwrap().starts_with("ci-agent uses the default server"), "{notes:?}");

    let (status, _, page) = get(&format!("http://{}/", tap.admin)).await;
    let page = String::from_utf8_lossy(&page);
    assert_eq!(status, 200);
    assert!(
        page.contains("data-route=\"ci-agent|default\"") && page.contains("data-route=\"inspector-agent|catalog\"")
    );
    assert!(page.contains("ci-agent uses the default server"), "{page}");
    drop(backstage);
}

/// In cluster mode the refusal and the answer may reach different replicas: the evidence is
/// found through the store and written once in the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_on_one_replica_and_answered_on_another_is_evidence_once() {
    let backstage = backstage().await;
    let dir = std::env::temp_dir().join(format!("mcp-tap-reach-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = redis_server(&dir).await;
    let replica = || {
        let mut c = audit_config(&format!("http://127.0.0.1:{}", backstage.port));
        c.cluster.store_url = Some(format!("redis://127.0.0.1:{}/0", store.port));
        c.cluster.password_env = Some("STORE_PASSWORD".into());
        c.cluster.name = "reach".into();
        c.env = mcp_tap::config::Environment::fixed([
            ("MCP_TAP_TEST_TOKEN", TOKEN_FULL),
            ("MCP_TAP_TEST_CATALOG_TOKEN", TOKEN_CATALOG_ONLY),
            ("MCP_TAP_TEST_MCP_ONLY_TOKEN", TOKEN_MCP_ONLY),
            ("MCP_TAP_TEST_INSPECTOR_TOKEN", TOKEN_INSPECTOR),
            ("STORE_PASSWORD", STORE_PASSWORD),
        ]);
        c
    };
    let configs = [replica(), replica()];
    let taps = [Tap::start(configs[0].clone()).await, Tap::start(configs[1].clone()).await];
    let auth = [("authorization", format!("Bearer {TOKEN_CATALOG_ONLY}"))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post_mcp(&taps[0].url("/api/mcp-actions/v1"), &auth, LIST).await.0, 403, "refused on MCP by one");
    let other = format!("http://{}", taps[1].proxy);
    let evidence = || configs.iter().flat_map(audit_lines).filter(|l| l["event"] == "actions_api_reach").count();
    eventually(Duration::from_secs(15), "the other replica finds the refusal in the store", || async {
        assert_eq!(invoke(&other, TOKEN_CATALOG_ONLY, "catalog:get-catalog-entity", ENTITY).await, 200);
        match evidence() {
            0 => Err("no actions_api_reach yet".to_string()),
            n => Ok(n),
        }
    })
    .await;
    // More answers on both replicas: still one line in the cluster.
    for tap in &taps {
        let base = format!("http://{}", tap.proxy);
        assert_eq!(invoke(&base, TOKEN_CATALOG_ONLY, "catalog:get-catalog-entity", ENTITY).await, 200);
    }
    for tap in taps {
        tap.stop().await;
    }
    let lines: Vec<_> = configs.iter().flat_map(audit_lines).filter(|l| l["event"] == "actions_api_reach").collect();
    assert_eq!(lines.len(), 1, "once in the cluster: {lines:#?}");
    assert_eq!(
        (lines[0]["refused_route"].as_str(), lines[0]["refused_reason"].as_str()),
        (Some("default"), Some("plugin_not_allowed"))
    );
    drop(backstage);
}
