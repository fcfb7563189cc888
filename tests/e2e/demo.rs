//! `mcp-tap demo`: it starts, serves /metrics with operations and auth failures (including a
//! burst) from its own traffic, and stops cleanly on SIGINT.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_operations_and_auth_failures_and_stops_on_sigint() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
        .args(["demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let metrics_url = loop {
        let line = lines.next().expect("the demo prints where /metrics is").unwrap();
        if let Some(url) = line.trim().strip_prefix("metrics") {
            break url.trim().to_string();
        }
    };
    let what = "named operations, tool errors, auth failures and a burst from the demo";
    eventually(Duration::from_secs(20), what, || async {
        let (_, _, body) = get(&metrics_url).await;
        let m = String::from_utf8_lossy(&body).into_owned();
        let ops = metric(&m, "mcp_server_operation_duration_seconds_count", &[("error_type", "")]);
        let tool_errors = metric(&m, "mcp_server_operation_duration_seconds_count", &[("error_type", "tool_error")]);
        let failures = metric(&m, "mcp_tap_auth_failures_total", &[]);
        let bursts = metric(&m, "mcp_tap_auth_bursts_total", &[]);
        // The demo's tokens are mapped to subjects (by SHA-256), so clients have names.
        let named = metric(&m, "mcp_tap_client_operations_total", &[("client", "vscode-demo"), ("outcome", "ok")]);
        if ops > 0.0 && tool_errors > 0.0 && failures > 0.0 && bursts > 0.0 && named > 0.0 {
            Ok(())
        } else {
            Err(m)
        }
    })
    .await;
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}
