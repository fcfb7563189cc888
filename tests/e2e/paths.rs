//! Path semantics equal to the upstream's: every path variant the real Backstage serves as its MCP
//! endpoint is measured and audited by the tap exactly as the canonical path is, and the paths it
//! refuses are never counted as MCP. Random split-server keys mint no route label.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::*;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

/// Path variants and the route Backstage serves them as (`None`: 404), measured against the test
/// Backstage (backend-defaults 0.18, mcp-actions 0.2.2, Express routing). The test checks each
/// row against the real backend first, so the table cannot drift from what Backstage does.
const VARIANTS: &[(&str, Option<&str>)] = &[
    ("/api/mcp-actions/v1", Some("default")),
    ("/api/mcp-actions/v1/", Some("default")),
    ("/api/mcp-actions/v1//", Some("default")),
    ("/API/MCP-ACTIONS/V1", Some("default")),
    ("/Api/Mcp-Actions/v1", Some("default")),
    ("/api/mcp-actions//v1", Some("default")),
    ("/api/mcp-actions//v1//", Some("default")),
    ("/api/mcp-actions/v1?x=1", Some("default")),
    ("/api/mcp-actions/v1/catalog", Some("catalog")),
    ("/api/mcp-actions/v1/CATALOG", Some("catalog")),
    ("/api/mcp-actions/v1/Catalog/", Some("catalog")),
    ("/api/mcp-actions/v1/catalog//", Some("catalog")),
    ("/api/mcp-actions//v1/catalog", Some("catalog")),
    ("/api/mcp-actions/V1/catalog?x", Some("catalog")),
    ("/api/mcp-actions///v1", None),
    ("/api//mcp-actions/v1", None),
    ("//api/mcp-actions/v1", None),
    ("/api/mcp-actions/v1///", None),
    ("/api/mcp-actions/v1//catalog", None),
    ("/api/mcp-actions/v1/catalog///", None),
    ("/api/mcp-actions/v1/catalog/x", None),
    ("/api/mcp-actions/v1/%63atalog", None),
    ("/api/mcp-actions/v1%2F", None),
    ("/api/mcp-actions/v1;x", None),
    ("/api/mcp-actions/./v1", None),
    ("/api/mcp-actions/x/../v1", None),
    ("/api/mcp-actions/v1.json", None),
    ("/api/mcp-actions/v1/nope", None),
];

fn ops(m: &str, route: &str) -> f64 {
    metric(m, "mcp_server_operation_duration_seconds_count", &[("mcp_route", route), ("error_type", "")])
}

fn missing(m: &str, route: &str) -> f64 {
    metric(m, "mcp_tap_auth_failures_total", &[("mcp_route", route), ("reason", "missing_credentials")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_backstage_serves_as_mcp_is_measured_and_audited_as_mcp() {
    let backstage = backstage().await;
    let direct = format!("http://127.0.0.1:{}", backstage.port);
    let tap = Tap::start(test_config(&direct)).await;
    let auth = format!("Bearer {TOKEN_FULL}");
    for (path, served) in VARIANTS {
        let want = if served.is_some() { 200 } else { 404 };
        let (status, _, _) = post_mcp(&format!("{direct}{path}"), &[("authorization", &auth)], LIST).await;
        assert_eq!(status, want, "Backstage itself answers {path} with {status}: the table is out of date");
        let (status, _, _) = post_mcp(&tap.url(path), &[("authorization", &auth)], LIST).await;
        assert_eq!(status, want, "through the tap, {path}");
        // Auth runs before routing: without a token, every variant under the plugin is refused.
        let (refused, _, _) = post_mcp(&format!("{direct}{path}"), &[], LIST).await;
        assert!(served.is_none() || refused == 401, "Backstage answers {path} without a token with {refused}");
        assert_eq!(post_mcp(&tap.url(path), &[], LIST).await.0, refused, "{path} without a token, through the tap");
    }
    let m = tap.metrics().await;
    for route in ["default", "catalog"] {
        let n = VARIANTS.iter().filter(|(_, s)| *s == Some(route)).count() as f64;
        assert_eq!(ops(&m, route), n, "tools/list operations on {route}, one per variant Backstage served");
        assert_eq!(missing(&m, route), n, "missing_credentials on {route}, one per variant");
    }
    // What Backstage refuses is never counted on a real route.
    assert_eq!(ops(&m, "_OTHER") + ops(&m, "_none"), 0.0);
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenless_requests_to_random_server_keys_mint_no_route_label() {
    let backstage = backstage().await;
    let tap = Tap::start(test_config(&format!("http://127.0.0.1:{}", backstage.port))).await;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..20 {
        let base = tap.url("/api/mcp-actions/v1/");
        workers.spawn(async move {
            for i in 0..50 {
                let key = format!("k{w}-{i}-{:x}", (w * 7919 + i * 104_729) % 65_521);
                assert_eq!(post_mcp(&format!("{base}{key}"), &[], LIST).await.0, 401);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    let m = metrics_when(&tap, Duration::from_secs(5), "1,000 refusals counted", |m| {
        metric(m, "mcp_tap_auth_failures_total", &[("reason", "missing_credentials")]) >= 1000.0
    })
    .await;
    let routes: BTreeSet<String> = series(&m, "mcp_tap_http_requests_total")
        .into_iter()
        .chain(series(&m, "mcp_tap_auth_failures_total"))
        .filter_map(|(labels, _)| labels.get("mcp_route").cloned())
        .collect();
    let allowed: BTreeSet<String> = ["default", "_OTHER", "_none"].map(String::from).into();
    assert!(routes.is_subset(&allowed), "route labels: {routes:?}");
    assert_eq!(metric(&m, "mcp_tap_auth_failures_total", &[("mcp_route", "_OTHER")]), 1000.0);
    tap.stop().await;
}
