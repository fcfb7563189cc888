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
    // Each client run sends tools/list and tools/call: 3 runs with a token, 6 requests, named by
    // the SDK's default clientInfo.
    assert_eq!(metric(&m, "mcp_tap_unapproved_source_total", &[("client", "mcp")]), 6.0);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_used_by_two_different_clients_is_reported_once() {
    let server = python_server(false).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let config = config_for(&upstream, "py");
    let tap = Tap::start(config.clone()).await;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let send = |token: &'static str, agent: &'static str| {
        let url = tap.url("/mcp");
        async move {
            let auth = format!("Bearer {token}");
            let headers = [
                ("authorization", auth.as_str()),
                ("user-agent", agent),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
            ];
            assert_eq!(request("POST", &url, &headers, list).await.0, 200);
        }
    };
    for _ in 0..2 {
        send("team-token-shared-0001", "vscode/1.99.0").await;
        send("team-token-shared-0001", "claude-code/2.1 (linux)").await;
        send("own-token-vscode-0002", "vscode/1.99.0").await;
    }
    let m = tap.metrics().await;
    // Counted under the client whose request revealed the sharing.
    assert_eq!(metric(&m, "mcp_tap_credential_shared_total", &[("client", "claude-code")]), 1.0);
    let lines =
        audit_when(&config, Duration::from_secs(5), "a credential_shared line", |l| l["event"] == "credential_shared")
            .await;
    let found: Vec<_> = lines.iter().filter(|l| l["event"] == "credential_shared").collect();
    assert_eq!(found.len(), 1, "once per pair: {found:?}");
    assert_eq!(found[0]["clients"], serde_json::json!(["vscode", "claude-code"]));
    assert!(!std::fs::read_to_string(&config.audit.output).unwrap().contains("team-token"), "never the token");
    drop(server);
}
