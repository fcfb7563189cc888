//! Direct paging: an auth-failure burst becomes an alert in a real Alertmanager while it lasts,
//! and is resolved when it ends.

use std::time::Duration;

use crate::auth_audit::{audit_config, bearer, fingerprint, LIST};
use crate::common::*;

/// A burst is posted to a real Alertmanager at once and resolved when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_pages_alertmanager_directly_and_resolves() {
    let am = alertmanager().await;
    let alerts_url = format!("http://127.0.0.1:{}/api/v2/alerts", am.port);
    // Backstage's 401 shape, from a small upstream so the burst is quick.
    let addr = upstream(|_| async {
        json_response(
            401,
            r#"{"error":{"name":"AuthenticationError","message":"Illegal token"},"request":{"method":"POST","url":"/v1"},"response":{"statusCode":401}}"#,
        )
    })
    .await;
    let mut config = audit_config(&format!("http://{addr}"));
    config.bursts.credential.failures = 5;
    config.bursts.quiet_period = Duration::from_secs(2);
    config.alertmanager.url = Some(format!("http://127.0.0.1:{}", am.port));
    config.alertmanager.labels.insert("team".into(), "platform".into());
    let tap = Tap::start(config).await;
    let url = tap.url("/api/mcp-actions/v1");
    for _ in 0..8 {
        assert_eq!(post_mcp(&url, &[("authorization", &bearer(TOKEN_MCP_ONLY))], LIST).await.0, 401);
    }
    let ours = |alerts: &serde_json::Value| -> Vec<serde_json::Value> {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == "MCPTapAuthFailureBurst")
            .cloned()
            .collect()
    };
    let firing = eventually(Duration::from_secs(5), "the alert in Alertmanager", || async {
        let (_, _, body) = get(&alerts_url).await;
        let found = ours(&serde_json::from_slice(&body).unwrap());
        if found.is_empty() {
            Err(String::from_utf8_lossy(&body).into_owned())
        } else {
            Ok(found)
        }
    })
    .await;
    let credential = firing.iter().find(|a| a["labels"]["scope"] == "credential").expect("a credential-scope alert");
    assert_eq!(credential["status"]["state"], "active");
    assert_eq!(credential["labels"]["client"], "mcp-only");
    assert_eq!(credential["labels"]["burst_key"], fingerprint(TOKEN_MCP_ONLY));
    assert_eq!(credential["labels"]["team"], "platform");
    assert_eq!(credential["labels"]["severity"], "page");
    // Quiet for 2 s: the burst ends and the alert is resolved.
    eventually(Duration::from_secs(10), "the alert resolved after the burst ended", || async {
        let (_, _, body) = get(&alerts_url).await;
        if ours(&serde_json::from_slice(&body).unwrap()).is_empty() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&body).into_owned())
        }
    })
    .await;
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_audit_write_errors_total", &[("cause", "alertmanager")]), 0.0);
    tap.stop().await;
}
