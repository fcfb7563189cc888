//! The actions API beside MCP, through the tap in front of the real Backstage: every plugin
//! serves its actions at `/api/{plugin}/.backstage/actions/v1/actions[/{id}/invoke]`, the same
//! tools MCP exposes. A list and invocations with two static tokens (one of them refused on MCP)
//! are counted per client and tool under `surface="actions_api"`, in the actions API's own
//! histogram and in least privilege; a bad token is a refusal with its reason; random plugin and
//! action paths mint no label values.

use crate::auth_audit::audit_config;
use crate::common;

use std::time::Duration;

use common::*;

const ACTIONS: &str = "/api/catalog/.backstage/actions/v1/actions";
const ENTITY: &str = r#"{"kind":"component","namespace":"default","name":"payments-api"}"#;

async fn invoke(base: &str, token: &str, action: &str, body: &str) -> u16 {
    let auth = format!("Bearer {token}");
    let url = format!("{base}{ACTIONS}/{action}/invoke");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    request("POST", &url, &headers, body.to_string()).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_api_is_a_second_surface_per_client_and_tool() {
    let backstage = backstage().await;
    let config = audit_config(&format!("http://127.0.0.1:{}", backstage.port));
    let tap = Tap::start(config.clone()).await;
    let base = format!("http://{}", tap.proxy);
    let auth = format!("Bearer {TOKEN_FULL}");
    let (status, _, list) = request("GET", &format!("{base}{ACTIONS}"), &[("authorization", &auth)], "").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&list));
    // The CLI encodes the colon; a script may not. Both are the same tool.
    assert_eq!(invoke(&base, TOKEN_FULL, "catalog:get-catalog-entity", ENTITY).await, 200);
    assert_eq!(invoke(&base, TOKEN_FULL, "catalog%3Aget-catalog-entity", ENTITY).await, 200);
    // Refused with 403 on MCP (its restrictions leave out mcp-actions), answered here.
    assert_eq!(invoke(&base, TOKEN_CATALOG_ONLY, "catalog:get-catalog-entity", ENTITY).await, 200);
    assert_eq!(invoke(&base, "not-a-backstage-token", "catalog:get-catalog-entity", ENTITY).await, 401);
    // Random plugins and actions: Backstage answers 404, no label is minted.
    for n in 0..20 {
        assert_eq!(invoke(&base, TOKEN_FULL, &format!("catalog:random-{n}"), "{}").await, 404);
        let (status, _, _) = request(
            "GET",
            &format!("{base}/api/plugin-{n}/.backstage/actions/v1/actions"),
            &[("authorization", &auth)],
            "",
        )
        .await;
        assert_eq!(status, 404);
    }

    let m = metrics_when(&tap, Duration::from_secs(5), "the refusal counted", |m| {
        metric(m, "mcp_tap_auth_failures_total", &[("mcp_route", "actions_api")]) == 1.0
    })
    .await;
    let tool = ("gen_ai_tool_name", "catalog.get-catalog-entity");
    let uses = |client: &str| {
        metric(
            &m,
            "mcp_tap_client_operations_total",
            &[("client", client), ("surface", "actions_api"), tool, ("outcome", "ok")],
        )
    };
    assert_eq!((uses("ci-agent"), uses("catalog-reader")), (2.0, 1.0));
    let listed = |outcome| {
        let labels = [
            ("client", "ci-agent"),
            ("surface", "actions_api"),
            ("mcp_method_name", "tools/list"),
            ("outcome", outcome),
        ];
        metric(&m, "mcp_tap_client_operations_total", &labels)
    };
    assert_eq!((listed("ok"), listed("error")), (1.0, 20.0), "the list, and twenty of plugins that do not exist");
    let calls = metric(
        &m,
        "mcp_tap_actions_api_duration_seconds_count",
        &[("plugin", "catalog"), ("operation", "invoke"), tool],
    );
    assert_eq!(calls, 4.0, "three answered and one refused");
    assert_eq!(metric(&m, "mcp_server_operation_duration_seconds_count", &[]), 0.0, "the MCP histogram stays MCP's");
    let tools: std::collections::BTreeSet<&str> = m
        .lines()
        .filter(|l| l.starts_with("mcp_tap_actions_api_duration_seconds_count"))
        .filter_map(|l| l.split("gen_ai_tool_name=\"").nth(1)?.split('"').next())
        .collect();
    assert!(!tools.iter().any(|t| t.contains("random")), "random actions mint no label: {tools:?}");
    let plugins = m.lines().filter(|l| l.contains("plugin=\"plugin-")).count();
    assert_eq!(plugins, 0, "random plugins mint no label");

    let refusals: Vec<_> = audit_lines(&config).into_iter().filter(|l| l["event"] == "auth_failure").collect();
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    assert_eq!(
        (refusals[0]["route"].as_str(), refusals[0]["reason"].as_str()),
        (Some("actions_api"), Some("unknown_token"))
    );
    assert_eq!(refusals[0]["tool"], "catalog.get-catalog-entity");

    let (_, _, body) = get(&format!("http://{}/privileges", tap.admin)).await;
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reader = report["clients"].as_array().unwrap().iter().find(|l| l["client"] == "catalog-reader").cloned();
    let called = reader.as_ref().map(|r| r["called"].to_string()).unwrap_or_default();
    assert!(called.contains("catalog.get-catalog-entity"), "least privilege counts the actions API: {report:#}");
    let audit = std::fs::read_to_string(&config.audit.output).unwrap();
    for secret in [TOKEN_FULL, TOKEN_CATALOG_ONLY, "not-a-backstage-token"] {
        assert!(!audit.contains(secret) && !m.contains(secret), "a token leaked");
    }
    drop(backstage);
}
