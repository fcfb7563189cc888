//! End to end with real MCP peers: the official Python SDK client through the tap against the
//! Python SDK server (stateful SSE, stateless JSON) and server-everything, compared with a direct
//! run, with exact assertions on the scraped metrics.

use crate::common;

use std::time::Duration;

use tokio::time::Instant;

use common::*;
use http_body_util::BodyExt;

const CALLS: [&str; 4] = ["--call", r#"add={"a":2,"b":3}"#, "--call", r#"explode={"reason":"boom"}"#];

fn op(text: &str, route: &str, method: &str, extra: &[(&str, &str)]) -> f64 {
    let mut labels = vec![("mcp_route", route), ("mcp_method_name", method)];
    labels.extend_from_slice(extra);
    metric(text, "mcp_server_operation_duration_seconds_count", &labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stateful_sse_server_through_the_tap() {
    let server = python_server(false).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let tap = Tap::start(config_for(&upstream, "py")).await;

    let mut args = vec!["--mode", "legacy"];
    args.extend_from_slice(&CALLS);
    let direct = python_client(&format!("{upstream}/mcp"), &args).await;
    let tapped = python_client(&tap.url("/mcp"), &args).await;
    assert_eq!(direct, tapped, "the client must see the same results through the tap");
    assert_eq!(tapped["calls"][1]["is_error"], true);

    let m = tap.metrics().await;
    let v = ("mcp_protocol_version", "2025-11-25");
    assert_eq!(op(&m, "py", "initialize", &[v, ("error_type", "")]), 1.0);
    assert_eq!(op(&m, "py", "notifications/initialized", &[v]), 1.0);
    assert_eq!(op(&m, "py", "tools/list", &[v, ("error_type", "")]), 1.0);
    assert_eq!(
        op(
            &m,
            "py",
            "tools/call",
            &[v, ("gen_ai_tool_name", "add"), ("error_type", ""), ("gen_ai_operation_name", "execute_tool")]
        ),
        1.0
    );
    assert_eq!(op(&m, "py", "tools/call", &[v, ("gen_ai_tool_name", "explode"), ("error_type", "tool_error")]), 1.0);
    assert_eq!(metric(&m, "mcp_tap_tools_advertised", &[("mcp_route", "py")]), 3.0);
    // The client ended its session with DELETE.
    assert_eq!(metric(&m, "mcp_tap_sessions_ended_total", &[("mcp_route", "py"), ("reason", "delete")]), 1.0);
    assert_eq!(metric(&m, "mcp_tap_sessions_active", &[("mcp_route", "py")]), 0.0);
    assert_eq!(metric(&m, "mcp_server_session_duration_seconds_count", &[("mcp_route", "py"), v]), 1.0);
    assert_eq!(
        metric(
            &m,
            "mcp_tap_http_requests_total",
            &[("mcp_route", "py"), ("http_request_method", "DELETE"), ("http_response_status_code", "200")]
        ),
        1.0
    );
    assert_eq!(metric(&m, "mcp_tap_decode_errors_total", &[]), 0.0);
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stateless_json_server_through_the_tap() {
    let server = python_server(true).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let tap = Tap::start(config_for(&upstream, "pyjson")).await;

    for mode in ["legacy", "auto"] {
        let mut args = vec!["--mode", mode];
        args.extend_from_slice(&CALLS);
        let direct = python_client(&format!("{upstream}/mcp"), &args).await;
        let tapped = python_client(&tap.url("/mcp"), &args).await;
        assert_eq!(direct, tapped, "mode {mode}: same results through the tap");
    }
    // An unknown method is answered with a JSON-RPC error, labelled by its code.
    let (status, _, body) = post_mcp(
        &tap.url("/mcp"),
        &[("mcp-protocol-version", "2025-06-18")],
        r#"{"jsonrpc":"2.0","id":9,"method":"frobnicate/now","params":{}}"#,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("-32601"));

    let m = tap.metrics().await;
    assert_eq!(
        op(
            &m,
            "pyjson",
            "_OTHER",
            &[("error_type", "-32601"), ("rpc_response_status_code", "-32601"), ("mcp_protocol_version", "2025-06-18")]
        ),
        1.0
    );
    // Legacy mode used initialize (an inferred session for a stateless server); auto mode spoke
    // 2026-07-28, which has no initialize.
    assert_eq!(op(&m, "pyjson", "initialize", &[("mcp_protocol_version", "2025-11-25")]), 1.0);
    assert_eq!(op(&m, "pyjson", "server/discover", &[("mcp_protocol_version", "2026-07-28")]), 1.0);
    assert_eq!(op(&m, "pyjson", "tools/call", &[("gen_ai_tool_name", "explode"), ("error_type", "tool_error")]), 2.0);
    assert_eq!(
        op(&m, "pyjson", "tools/call", &[("gen_ai_tool_name", "add"), ("mcp_protocol_version", "2026-07-28")]),
        1.0
    );
    // Two sessions open: the legacy client's (inferred from its initialize) and the auto-mode
    // client's (a 2026-07-28 client: known from its requests).
    let open =
        |kind: &str| metric(&m, "mcp_tap_sessions_ended_total", &[("mcp_route", "pyjson"), ("session_kind", kind)]);
    assert_eq!(metric(&m, "mcp_tap_sessions_active", &[("mcp_route", "pyjson")]), 2.0);
    assert_eq!((open("inferred"), open("stateless")), (0.0, 0.0));

    let admin = tap.admin;
    tap.stop().await;
    assert!(tokio::net::TcpStream::connect(admin).await.is_err(), "admin listener closed after stop");
}

/// Initializes a session by hand on `url`; returns its `Mcp-Session-Id`.
async fn raw_session(url: &str) -> String {
    let (status, headers, _) = post_mcp(
        url,
        &[],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw-test","version":"1"}}}"#,
    )
    .await;
    assert_eq!(status, 200);
    let sid = headers["mcp-session-id"].to_str().unwrap().to_string();
    let session = [("mcp-session-id", sid.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let (status, _, _) = post_mcp(url, &session, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!(status, 202);
    sid
}

/// Calls server-everything's long-running tool (2 s, 4 steps) in session `sid`; returns the
/// stream's text and when each of its events arrived.
async fn long_running_operation(url: &str, sid: &str) -> (String, Vec<Duration>) {
    let req = http::Request::post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-06-18")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":2,"steps":4},"_meta":{"progressToken":"p1"}}}"#,
        )))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let start = Instant::now();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            let chunk = String::from_utf8_lossy(data).to_string();
            for _ in 0..chunk.matches("data: ").count() {
                arrivals.push(start.elapsed());
            }
            text.push_str(&chunk);
        }
    }
    (text, arrivals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_sessions_progress_and_delete() {
    let server = everything_server().await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let tap = Tap::start(config_for(&upstream, "everything")).await;

    let args = ["--mode", "legacy", "--call", r#"echo={"message":"hi"}"#, "--call", r#"get-sum={"a":1,"b":2}"#];
    let direct = python_client(&format!("{upstream}/mcp"), &args).await;
    let tapped = python_client(&tap.url("/mcp"), &args).await;
    assert_eq!(direct, tapped);

    // A raw session: initialize, then a long-running tool that streams progress before its result.
    let url = tap.url("/mcp");
    let sid = raw_session(&url).await;
    let session = [("mcp-session-id", sid.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let (text, arrivals) = long_running_operation(&url, &sid).await;
    assert!(text.contains("notifications/progress") && text.contains("Long running operation completed"), "{text}");
    assert!(arrivals.len() >= 5, "4 progress events and the result: {arrivals:?}");
    // Nothing is held back: the first progress event arrives long before the result.
    assert!(arrivals[arrivals.len() - 1] - arrivals[0] >= Duration::from_millis(1000), "{arrivals:?}");

    let (status, _, _) = request("DELETE", &url, &session, bytes::Bytes::new()).await;
    assert_eq!(status, 200);

    let m = tap.metrics().await;
    assert_eq!(
        metric(
            &m,
            "mcp_tap_server_messages_total",
            &[("mcp_route", "everything"), ("mcp_method_name", "notifications/progress")]
        ),
        4.0
    );
    assert_eq!(
        op(
            &m,
            "everything",
            "tools/call",
            &[("gen_ai_tool_name", "trigger-long-running-operation"), ("error_type", "")]
        ),
        1.0
    );
    let slow = series(&m, "mcp_server_operation_duration_seconds_sum")
        .into_iter()
        .find(|(l, _)| l.get("gen_ai_tool_name").map(String::as_str) == Some("trigger-long-running-operation"))
        .unwrap()
        .1;
    assert!(slow >= 2.0, "the operation lasts until its result, not its headers: {slow}");
    assert_eq!(metric(&m, "mcp_tap_sessions_ended_total", &[("mcp_route", "everything"), ("reason", "delete")]), 2.0);
    assert_eq!(metric(&m, "mcp_tap_sessions_active", &[("mcp_route", "everything")]), 0.0);
    assert_eq!(metric(&m, "mcp_server_session_duration_seconds_count", &[("mcp_route", "everything")]), 2.0);
    assert_eq!(metric(&m, "mcp_tap_tools_advertised", &[("mcp_route", "everything")]), 13.0);
    // A request on the deleted session is refused by the server (400 here; the spec says 404).
    let (status, _, _) = post_mcp(&url, &session, r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).await;
    assert!(status == 400 || status == 404, "{status}");
    tap.stop().await;
}
