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

/// The demo under an 80x24 pseudo-terminal, as a new user runs it: after several refreshes the
/// banner is still on screen, the live summary sits under it, and no log line scrolls either away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_summary_stays_under_its_banner_in_an_80_column_terminal() {
    let script = repo().join("tests/peers/demo_terminal.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python()).arg(script).args([env!("CARGO_BIN_EXE_mcp-tap"), "12"]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let screen: Vec<&str> = run["display"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let text = screen.join("\n");
    assert!(screen[0].starts_with("mcp-tap demo:"), "the banner's first line is still the top line:\n{text}");
    for wanted in ["status page  http://", "operation (last 5 min)", "catalog.get-catalog-entity", "auth failures:"] {
        assert!(text.contains(wanted), "{wanted:?} is on the screen:\n{text}");
    }
    assert!(!text.contains("WARN") && !text.contains("INFO"), "no log line on the screen:\n{text}");
    // It redrew in place: several summaries were written, one is on screen.
    let raw = run["raw"].as_str().unwrap();
    assert!(raw.matches("operation (last 5 min)").count() >= 2, "the summary refreshed");
    assert_eq!(text.matches("operation (last 5 min)").count(), 1, "one summary on screen:\n{text}");
    assert_eq!(run["exit"], 0, "Ctrl-C stops the demo cleanly");
    let shots = repo().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("demo-terminal.txt"), format!("{text}\n")).unwrap();
    let mut browser = Browser::start();
    browser.terminal_screenshot(&shots.join("demo-terminal.txt"), &shots.join("demo-terminal.png"));
}
