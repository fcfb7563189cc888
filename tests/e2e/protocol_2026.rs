//! MCP 2026-07-28 clients (no handshake, no session id) through the tap, beside handshake-era
//! clients on the same route at the same time, with the official Python SDK on both sides.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::*;

const CALL: [&str; 2] = ["--call", r#"add={"a":2,"b":3}"#];

fn op(text: &str, method: &str, version: &str, extra: &[(&str, &str)]) -> f64 {
    let mut labels = vec![("mcp_route", "py"), ("mcp_method_name", method), ("mcp_protocol_version", version)];
    labels.extend_from_slice(extra);
    metric(text, "mcp_server_operation_duration_seconds_count", &labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_and_handshake_clients_at_once_are_measured_and_each_gets_a_session() {
    let server = python_server(false).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let mut config = config_for(&upstream, "py");
    config.sessions.idle_timeout = Duration::from_secs(1);
    let tap = Tap::start(config).await;
    let url = tap.url("/mcp");

    let mut current = vec!["--mode", "2026-07-28"];
    current.extend_from_slice(&CALL);
    let mut legacy = vec!["--mode", "legacy"];
    legacy.extend_from_slice(&CALL);
    let (a, b) = tokio::join!(python_client(&url, &current), python_client(&url, &legacy));
    assert_eq!(
        (a["protocol_version"].as_str(), b["protocol_version"].as_str()),
        (Some("2026-07-28"), Some("2025-11-25"))
    );
    assert_eq!(a["calls"], b["calls"], "both generations get the same answers through the tap");

    let m = metrics_when(&tap, Duration::from_secs(20), "the stateless session ended after its idle gap", |m| {
        metric(m, "mcp_tap_sessions_ended_total", &[("mcp_route", "py"), ("session_kind", "stateless")]) == 1.0
    })
    .await;
    let add = [("gen_ai_tool_name", "add"), ("error_type", "")];
    // The current client: no handshake; its version comes from `_meta` on every request.
    assert_eq!(op(&m, "tools/list", "2026-07-28", &[("error_type", "")]), 1.0);
    assert_eq!(op(&m, "tools/call", "2026-07-28", &add), 1.0);
    assert_eq!(op(&m, "initialize", "2026-07-28", &[]), 0.0);
    // The handshake-era client, on the same route at the same time.
    assert_eq!(op(&m, "initialize", "2025-11-25", &[("error_type", "")]), 1.0);
    assert_eq!(op(&m, "tools/list", "2025-11-25", &[("error_type", "")]), 1.0);
    assert_eq!(op(&m, "tools/call", "2025-11-25", &add), 1.0);
    // One session each: the server's header session (ended by the client's DELETE) and the
    // stateless client's, ended by its idle gap, measured to its last request.
    let ended = |kind: &str, reason: &str| {
        metric(&m, "mcp_tap_sessions_ended_total", &[("mcp_route", "py"), ("session_kind", kind), ("reason", reason)])
    };
    assert_eq!((ended("header", "delete"), ended("stateless", "idle")), (1.0, 1.0));
    assert_eq!(metric(&m, "mcp_tap_sessions_active", &[("mcp_route", "py")]), 0.0);
    let durations = |v: &str| {
        metric(&m, "mcp_server_session_duration_seconds_count", &[("mcp_route", "py"), ("mcp_protocol_version", v)])
    };
    assert_eq!((durations("2026-07-28"), durations("2025-11-25")), (1.0, 1.0));
    let stateless_seconds = metric(
        &m,
        "mcp_server_session_duration_seconds_sum",
        &[("mcp_route", "py"), ("mcp_protocol_version", "2026-07-28")],
    );
    assert!(stateless_seconds < 1.0, "the idle second is not session time: {stateless_seconds}");
    // Each tool answer's size is recorded under its tool.
    assert_eq!(
        metric(&m, "mcp_tap_tool_response_bytes_count", &[("mcp_route", "py"), ("gen_ai_tool_name", "add")]),
        2.0,
        "{}",
        m.lines().filter(|l| l.contains("tool_response")).collect::<Vec<_>>().join("\n")
    );
    assert!(metric(&m, "mcp_tap_tool_response_bytes_sum", &[("gen_ai_tool_name", "add")]) > 100.0);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_disagree_with_the_body_are_counted_audited_and_forwarded_unchanged() {
    let server = python_server(false).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let config = config_for(&upstream, "py");
    let tap = Tap::start(config.clone()).await;
    // Learn the tools first, so tool names are label values.
    python_client(&tap.url("/mcp"), &["--mode", "2026-07-28"]).await;

    // The header claims a harmless tool; the body calls another one.
    let body = Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"explode","arguments":{"reason":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
    );
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "add"),
    ];
    let direct = request("POST", &format!("{upstream}/mcp"), &headers, body.clone()).await;
    let tapped = request("POST", &tap.url("/mcp"), &headers, body).await;
    assert_eq!((tapped.0, &tapped.2), (direct.0, &direct.2), "the server's own answer reaches the client unchanged");
    assert!(direct.0 >= 400 || String::from_utf8_lossy(&direct.2).contains("ismatch"), "the SDK server rejects it");

    let m = metrics_when(&tap, Duration::from_secs(5), "the mismatch counted", |m| {
        metric(m, "mcp_tap_header_mismatch_total", &[("kind", "name")]) == 1.0
    })
    .await;
    assert_eq!(metric(&m, "mcp_tap_header_mismatch_total", &[("kind", "method")]), 0.0);
    // The operation is what the body asked for, never what the header claimed.
    assert_eq!(metric(&m, "mcp_server_operation_duration_seconds_count", &[("gen_ai_tool_name", "add")]), 0.0);
    assert_eq!(metric(&m, "mcp_server_operation_duration_seconds_count", &[("gen_ai_tool_name", "explode")]), 1.0);
    let lines = audit_when(&config, Duration::from_secs(5), "a header_mismatch audit line", |l| {
        l["event"] == "header_mismatch"
    })
    .await;
    let found: Vec<_> = lines.iter().filter(|l| l["event"] == "header_mismatch").collect();
    assert_eq!(found.len(), 1, "audited once: {found:?}");
    assert_eq!(
        (found[0]["kind"].as_str(), found[0]["header"].as_str(), found[0]["body"].as_str()),
        (Some("name"), Some("add"), Some("explode"))
    );
    drop(server);
}

/// A call whose tool asks the person to confirm, answered after 1.5 s, on `version`'s generation:
/// the metrics the tap recorded for `delete_entity`.
async fn confirmed_call(mode: &str) -> String {
    let server = python_server_with(&["--elicitation"]).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let tap = Tap::start(config_for(&upstream, "py")).await;
    let call = ["--call", r#"delete_entity={"name":"x"}"#];
    let args = [&["--mode", mode, "--accept-elicitation", "--think", "1.5"][..], &call].concat();
    let seen = python_client(&tap.url("/mcp"), &args).await;
    assert_eq!(seen["calls"][0]["content"][0], "deleted x", "the client got through both rounds: {seen}");
    let m = tap.metrics().await;
    drop(server);
    m
}

const DELETE: (&str, &str) = ("gen_ai_tool_name", "delete_entity");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_call_is_one_operation_that_includes_the_persons_wait() {
    // MCP 2026-07-28: the server answers input_required, the client retries under a new id.
    let m = confirmed_call("2026-07-28").await;
    let of = |name: &str| metric(&m, name, &[("mcp_method_name", "tools/call"), DELETE]);
    assert_eq!(of("mcp_server_operation_duration_seconds_count"), 1.0, "one call, one operation:\n{m}");
    let took = of("mcp_server_operation_duration_seconds_sum");
    assert!((1.4..10.0).contains(&took), "the operation lasts from the first request to the answer: {took} s");
    assert_eq!(metric(&m, "mcp_server_operation_duration_seconds_count", &[DELETE, ("error_type", "")]), 1.0);
    // The person's wait is its own histogram, and the round is counted.
    assert_eq!(of("mcp_tap_input_wait_duration_seconds_count"), 1.0);
    let waited = of("mcp_tap_input_wait_duration_seconds_sum");
    assert!((1.4..took).contains(&waited), "waited {waited} s of {took} s");
    assert_eq!(of("mcp_tap_input_required_total"), 1.0);
    assert_eq!((of("mcp_tap_operation_rounds_count"), of("mcp_tap_operation_rounds_sum")), (1.0, 2.0));
    let client_ops = metric(&m, "mcp_tap_client_operations_total", &[DELETE, ("outcome", "ok")]);
    assert_eq!(client_ops, 1.0, "the client made one call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_call_on_the_handshake_generation_is_one_operation_too() {
    // Before 2026-07-28 the server asks over the call's own stream and the client answers with a
    // POST of its own: the call is still one operation, the wait inside it.
    let m = confirmed_call("legacy").await;
    let of = |name: &str| metric(&m, name, &[("mcp_method_name", "tools/call"), DELETE]);
    assert_eq!(of("mcp_server_operation_duration_seconds_count"), 1.0, "{m}");
    let took = of("mcp_server_operation_duration_seconds_sum");
    assert!((1.4..10.0).contains(&took), "{took} s");
    let asked = metric(&m, "mcp_tap_server_messages_total", &[("mcp_method_name", "elicitation/create")]);
    assert_eq!(asked, 1.0, "the question went over the stream:\n{m}");
    // The person's wait: from the question on the stream to the client's answer (its POST).
    assert_eq!(of("mcp_tap_input_wait_duration_seconds_count"), 1.0, "{m}");
    let waited = of("mcp_tap_input_wait_duration_seconds_sum");
    assert!((1.4..took).contains(&waited), "waited {waited} s of {took} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_stream_is_a_stream_duration_not_an_operation_of_its_lifetime() {
    let server = python_server(false).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let tap = Tap::start(config_for(&upstream, "py")).await;
    let seen = python_client(&tap.url("/mcp"), &["--mode", "2026-07-28", "--no-list", "--listen", "1.5"]).await;
    assert_eq!(seen["listen_honored"], true, "the server acknowledged the subscription through the tap: {seen}");

    let listen = [("mcp_route", "py"), ("mcp_method_name", "subscriptions/listen")];
    let m = metrics_when(&tap, Duration::from_secs(10), "the closed stream recorded", |m| {
        metric(m, "mcp_tap_stream_duration_seconds_count", &listen) == 1.0
    })
    .await;
    let seconds = metric(&m, "mcp_tap_stream_duration_seconds_sum", &listen);
    assert!((1.4..30.0).contains(&seconds), "the stream was open about as long as the client listened: {seconds}");
    assert_eq!(metric(&m, "mcp_server_operation_duration_seconds_count", &listen), 0.0, "not an operation");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_says_which_generation_answered() {
    let server = python_server(false).await;
    let upstream = format!("http://127.0.0.1:{}", server.port);
    let tap = Tap::start(config_for(&upstream, "py")).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
        .args(["probe", &format!("http://{}", tap.proxy), "--mcp-path", "/mcp", "--output", "json"])
        .env("MCP_TAP_PROBE_TOKEN", "any-token-the-sdk-server-ignores")
        .output()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let greeting = v["checks"].as_array().unwrap().iter().find(|c| c["check"] == "initialize").unwrap().clone();
    assert_eq!(greeting["ok"], true, "{v}");
    assert!(greeting["detail"].as_str().unwrap().starts_with("MCP 2026-07-28"), "{greeting}");
    let m = tap.metrics().await;
    assert_eq!(
        metric(&m, "mcp_server_operation_duration_seconds_count", &[("mcp_method_name", "server/discover")]),
        1.0
    );
    drop(server);
}

/// An MCP 2026-07-28 client that calls a tool without listing tools first: the tool is labelled
/// by its name, learned from the server's result. A name the server does not have stays
/// `_OTHER` and is not learned, so random names mint no series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_is_named_even_when_no_client_listed_tools() {
    let server = python_server(false).await;
    let tap = Tap::start(config_for(&format!("http://127.0.0.1:{}", server.port), "py")).await;
    let url = tap.url("/mcp");
    let unknown = r#"no-such-tool-7f3a={}"#;
    for _ in 0..2 {
        let args = ["--mode", "2026-07-28", "--no-list", CALL[0], CALL[1], "--call", unknown];
        let out = python_client(&url, &args).await;
        assert_eq!(out["calls"][0]["is_error"], false, "{out}");
    }
    let m = tap.metrics().await;
    let v = ("mcp_protocol_version", "2026-07-28");
    assert_eq!(op(&m, "tools/call", v.1, &[("gen_ai_tool_name", "add")]), 2.0, "named from the first call");
    assert_eq!(op(&m, "tools/call", v.1, &[("gen_ai_tool_name", "_OTHER")]), 2.0, "the unknown name stays _OTHER");
    assert!(!m.contains("no-such-tool-7f3a"), "an unknown name is never a label value");
}

/// A tool whose schema mirrors its `region` argument into `Mcp-Param-Region`: the SDK client's
/// header agrees and passes; a header that disagrees with the body is counted and audited (names
/// only, never the values) and reaches the server untouched, which refuses it itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_param_header_that_disagrees_with_its_argument_is_counted_and_forwarded() {
    let server = python_server_with(&["--param-tool"]).await;
    let config = config_for(&format!("http://127.0.0.1:{}", server.port), "py");
    let tap = Tap::start(config.clone()).await;
    let call = ["--mode", "2026-07-28", "--call", r#"in_region={"region":"us-west1","query":"q"}"#];
    let seen = python_client(&tap.url("/mcp"), &call).await;
    assert_eq!(seen["calls"][0]["content"][0], "q in us-west1", "{seen}");
    let param = [("kind", "param")];
    assert_eq!(metric(&tap.metrics().await, "mcp_tap_header_mismatch_total", &param), 0.0, "the SDK's header agrees");

    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}"#;
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"in_region","arguments":{{"region":"us-west1","query":"q"}},{meta}}}}}"#
    );
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "in_region"),
        ("mcp-param-region", "eu-north1"),
    ];
    let (status, _, answer) = post_mcp(&tap.url("/mcp"), &headers, &body).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(status == 400 && answer.contains("-32020"), "the server got the header and refused it: {status} {answer}");
    assert_eq!(metric(&tap.metrics().await, "mcp_tap_header_mismatch_total", &param), 1.0);
    // The audit line is written on the writer's thread, a moment after the count.
    let mismatch = |l: &serde_json::Value| l["event"] == "header_mismatch";
    let lines = audit_when(&config, Duration::from_secs(10), "the header_mismatch line", mismatch).await;
    let lines: Vec<_> = lines.into_iter().filter(mismatch).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!((lines[0]["header"].as_str(), lines[0]["body"].as_str()), (Some("Mcp-Param-region"), Some("region")));
    let audit = std::fs::read_to_string(&config.audit.output).unwrap();
    assert!(!audit.contains("eu-north1") && !audit.contains("us-west1"), "argument values stay out of the audit");
    drop(server);
}
