//! Backstage's production checklist, measured: credentials used from outside the approved
//! client networks (`audit.approved_networks`).

use crate::common;

use std::time::Duration;

use common::*;

async fn requests_with_tokens(url: &str, tokens: &[&str]) {
    for token in tokens {
        python_client(url, &["--mode", "2026-07-28", "--token", token, "--call", r#"add={"a":1,"b":2}"#]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_outside_the_approved_networks_are_counted_and_audited_once_each() {
    let server = python_server(false).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);

    // The tests' clients come from 127.0.0.1: outside 10.0.0.0/8.
    let mut config = config_for(&upstream, "py");
    config.audit.approved_networks = vec!["10.0.0.0/8".parse().unwrap()];
    let tap = Tap::start(config.clone()).await;
    let url = tap.url("/mcp");
    requests_with_tokens(&url, &["laptop-token-aaaaaaaa", "laptop-token-aaaaaaaa", "other-token-bbbbbbbb"]).await;
    // Without a credential there is nothing to attribute: not counted.
    python_client(&url, &["--mode", "2026-07-28", "--no-list"]).await;

    let m = tap.metrics().await;
    // Each client run sends tools/list and tools/call: 3 runs with a token, 6 requests.
    assert_eq!(metric(&m, "mcp_tap_unapproved_source_total", &[("client", "unknown")]), 6.0);
    let lines = audit_when(&config, Duration::from_secs(5), "two unapproved_source lines", |l| {
        l["event"] == "unapproved_source"
    })
    .await;
    let found: Vec<_> = lines.iter().filter(|l| l["event"] == "unapproved_source").collect();
    assert_eq!(found.len(), 2, "once per credential and address: {found:?}");
    assert!(found.iter().all(|l| l["source"] == "127.0.0.1" && l["route"] == "py" && l["status"] == 200));
    assert_ne!(found[0]["credential"], found[1]["credential"]);
    let all = std::fs::read_to_string(&config.audit.output).unwrap();
    assert!(!all.contains("laptop-token") && !all.contains("other-token"), "never the token itself");
    tap.stop().await;

    // The same traffic from inside the approved networks: nothing.
    let mut config = config_for(&upstream, "py");
    config.audit.approved_networks = vec!["127.0.0.0/8".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
    let tap = Tap::start(config.clone()).await;
    requests_with_tokens(&tap.url("/mcp"), &["laptop-token-aaaaaaaa"]).await;
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_unapproved_source_total", &[]), 0.0);
    assert!(audit_lines(&config).iter().all(|l| l["event"] != "unapproved_source"));
    drop(server);
}
