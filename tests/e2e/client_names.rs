//! The `client` label names every client, bounded: from `_meta` clientInfo (MCP 2026-07-28), from
//! the `initialize` clientInfo of a handshake-era client, or from a well-known User-Agent, with
//! the real Python SDK on both sides.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

const CALL: [&str; 2] = ["--call", r#"add={"a":2,"b":3}"#];

/// A 2026-07-28 `tools/list` as a client without an SDK would send it, naming itself `name`.
fn tools_list(name: Option<&str>) -> String {
    let info = name.map(|n| format!(r#","io.modelcontextprotocol/clientInfo":{{"name":"{n}","version":"1"}}"#));
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}{}}}}}}}"#,
        info.unwrap_or_default()
    )
}

const HEADERS: [(&str, &str); 2] = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list")];

fn client_ops(text: &str, client: &str, method: &str) -> f64 {
    metric(text, "mcp_tap_client_operations_total", &[("client", client), ("mcp_method_name", method)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_initialize_and_user_agent_each_name_their_client() {
    let server = python_server(false).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let tap = Tap::start(config_for(&upstream, "py")).await;
    let url = tap.url("/mcp");

    let mut current = vec!["--mode", "2026-07-28", "--name", "current-agent"];
    current.extend_from_slice(&CALL);
    let mut legacy = vec!["--mode", "legacy", "--name", "legacy-agent"];
    legacy.extend_from_slice(&CALL);
    tokio::join!(python_client(&url, &current), python_client(&url, &legacy));
    // A client that says nothing about itself but its User-Agent.
    let mut headers = HEADERS.to_vec();
    headers.push(("user-agent", "Claude-Code/2.1.3 (external, cli)"));
    let (status, _, body) = post_mcp(&url, &headers, &tools_list(None)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let m = metrics_when(&tap, Duration::from_secs(5), "the User-Agent client counted", |m| {
        client_ops(m, "claude-code", "tools/list") == 1.0
    })
    .await;
    // The current client names itself in `_meta` on every request.
    assert_eq!(client_ops(&m, "current-agent", "tools/list"), 1.0);
    assert_eq!(client_ops(&m, "current-agent", "tools/call"), 1.0);
    // The handshake-era client named itself once, in `initialize`: its later requests keep it.
    assert_eq!(client_ops(&m, "legacy-agent", "initialize"), 1.0);
    assert_eq!(client_ops(&m, "legacy-agent", "tools/list"), 1.0);
    assert_eq!(client_ops(&m, "legacy-agent", "tools/call"), 1.0);
    let unnamed = client_ops(&m, "none", "tools/list") + client_ops(&m, "none", "tools/call");
    assert_eq!(unnamed, 0.0, "every request was named");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_random_names_yield_at_most_the_cap() {
    let server = python_server(false).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let mut config = config_for(&upstream, "py");
    config.clients.max_names = 20;
    let tap = Tap::start(config).await;
    let url = tap.url("/mcp");

    for i in 0..500 {
        let name = format!("agent-{i:03}-{}", i * 7919 % 1000);
        let (status, _, _) = post_mcp(&url, &HEADERS, &tools_list(Some(&name))).await;
        assert_eq!(status, 200);
    }
    let m = metrics_when(&tap, Duration::from_secs(5), "500 operations counted", |m| {
        metric(m, "mcp_tap_client_operations_total", &[("mcp_method_name", "tools/list")]) == 500.0
    })
    .await;
    let clients: BTreeSet<String> = series(&m, "mcp_tap_client_operations_total")
        .into_iter()
        .filter_map(|(labels, _)| labels.get("client").cloned())
        .collect();
    assert_eq!(clients.len(), 21, "20 learned names and _OTHER: {clients:?}");
    assert!(clients.contains("_OTHER") && clients.contains("agent-000-0"));
    assert_eq!(client_ops(&m, "_OTHER", "tools/list"), 480.0);
    assert_eq!(metric(&m, "mcp_tap_label_overflow_total", &[("label", "client")]), 480.0);
    drop(server);
}
