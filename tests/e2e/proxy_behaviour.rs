//! Proxy behaviour against small in-process upstreams: streaming without buffering, upstream
//! failures (502/504, a stream that dies), bytes passing unchanged, h2c, client cancellation,
//! and bounded label cardinality under random names.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, Mutex};

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"catalog.get-catalog-entity","arguments":{}}}"#;

pub(crate) type Senders = Arc<Mutex<mpsc::Receiver<mpsc::Sender<Result<Bytes, std::io::Error>>>>>;

/// An upstream whose SSE answers the test writes by hand; each request hands its sender over.
pub(crate) async fn scripted_upstream() -> (std::net::SocketAddr, Senders) {
    let (tx, rx) = mpsc::channel(4);
    let addr = upstream(move |_req| {
        let tx = tx.clone();
        async move {
            let (events, body) = channel_body();
            tx.send(events).await.unwrap();
            sse_response(body)
        }
    })
    .await;
    (addr, Arc::new(Mutex::new(rx)))
}

pub(crate) async fn next_data(body: &mut hyper::body::Incoming) -> String {
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("a frame must reach the client while the upstream waits")
        .expect("stream still open")
        .expect("frame ok");
    String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
}

pub(crate) fn call_request(url: &str) -> http::Request<http_body_util::Full<Bytes>> {
    http::Request::post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(CALL)))
        .unwrap()
}

#[tokio::test]
async fn an_sse_event_reaches_the_client_before_the_upstream_produces_the_next() {
    let (addr, senders) = scripted_upstream().await;
    let mut config = config_for(&format!("http://{addr}"), "t");
    config.labels.tool_allowlist = vec!["catalog.get-catalog-entity".into()];
    let tap = Tap::start(config).await;
    let resp = client().request(call_request(&tap.url("/mcp"))).await.unwrap();
    let events = senders.lock().await.recv().await.unwrap();
    let mut body = resp.into_body();

    let progress = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
    events.send(Ok(Bytes::from(progress))).await.unwrap();
    // The upstream produces nothing more until the client has seen the first event.
    assert_eq!(next_data(&mut body).await, progress);
    let result = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[]}}\n\n";
    events.send(Ok(Bytes::from(result))).await.unwrap();
    assert_eq!(next_data(&mut body).await, result);
    drop(events);
    assert!(body.frame().await.is_none());

    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_server_messages_total", &[("mcp_method_name", "notifications/progress")]), 1.0);
    assert_eq!(
        metric(
            &m,
            "mcp_server_operation_duration_seconds_count",
            &[
                ("mcp_method_name", "tools/call"),
                ("gen_ai_tool_name", "catalog.get-catalog-entity"),
                ("error_type", "")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn upstream_down_answers_502_with_the_request_id() {
    let port = free_port(); // nothing listens here
    let tap = Tap::start(config_for(&format!("http://127.0.0.1:{port}"), "t")).await;
    let (status, headers, body) = post_mcp(&tap.url("/mcp"), &[], CALL).await;
    assert_eq!(status, 502);
    assert_eq!(headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["jsonrpc"], "2.0");
    let msg = v["error"]["message"].as_str().unwrap();
    assert_eq!(msg, "mcp-tap: the upstream is unreachable");
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains(&port.to_string()) && !text.contains("refused"), "no upstream address or OS error: {text}");

    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_upstream_errors_total", &[("mcp_route", "t"), ("kind", "connect")]), 1.0);
    assert_eq!(
        metric(&m, "mcp_tap_http_requests_total", &[("mcp_route", "t"), ("http_response_status_code", "502")]),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "mcp_server_operation_duration_seconds_count",
            &[("mcp_method_name", "tools/call"), ("error_type", "upstream_unavailable")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_silent_upstream_answers_504_after_the_response_timeout() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut config = config_for(&format!("http://{addr}"), "t");
    config.upstream.response_timeout = Duration::from_millis(300);
    let tap = Tap::start(config).await;
    let (status, _, body) = post_mcp(&tap.url("/mcp"), &[], CALL).await;
    assert_eq!(status, 504);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], 7);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sent no response headers within upstream.response_timeout (300ms)"));
    assert!(!String::from_utf8_lossy(&body).contains(&addr.to_string()), "no upstream address");
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_upstream_errors_total", &[("kind", "timeout")]), 1.0);
    assert_eq!(metric(&m, "mcp_server_operation_duration_seconds_count", &[("error_type", "timeout")]), 1.0);
}

#[tokio::test]
async fn an_upstream_that_dies_mid_stream_is_passed_on_and_counted() {
    let (addr, senders) = scripted_upstream().await;
    let tap = Tap::start(config_for(&format!("http://{addr}"), "t")).await;
    let resp = client().request(call_request(&tap.url("/mcp"))).await.unwrap();
    let events = senders.lock().await.recv().await.unwrap();
    events.send(Ok(Bytes::from_static(b": keepalive\n\n"))).await.unwrap();
    events.send(Err(std::io::Error::other("backend crashed"))).await.unwrap();
    let collected = resp.into_body().collect().await;
    assert!(collected.is_err(), "the client must see the stream break, not a clean end");
    let aborted =
        |m: &str| metric(m, "mcp_server_operation_duration_seconds_count", &[("error_type", "stream_aborted")]);
    let m = metrics_when(&tap, Duration::from_secs(5), "the aborted operation recorded", |m| aborted(m) > 0.0).await;
    println!(
        "upstream reset mid-SSE: the client saw the stream break ({}); stream_aborted operations {}",
        collected.err().map(|e| e.to_string()).unwrap_or_default(),
        aborted(&m)
    );
    assert_eq!(aborted(&m), 1.0);
}

#[tokio::test]
async fn bodies_and_end_to_end_headers_pass_unchanged() {
    // The upstream echoes the body it received and reports the headers it saw.
    let addr = upstream(|req: http::Request<hyper::body::Incoming>| async move {
        let seen: Vec<String> =
            ["authorization", "mcp-session-id", "last-event-id", "x-forwarded-for", "connection", "x-hop"]
                .iter()
                .map(|h| format!("{h}={}", req.headers().get(*h).map_or("-", |v| v.to_str().unwrap())))
                .collect();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        http::Response::builder().status(200).header("x-seen", seen.join(";")).body(full(body)).unwrap()
    })
    .await;
    let mut config = config_for(&format!("http://{addr}"), "t");
    config.decode.max_request_bytes = 1024;
    let tap = Tap::start(config).await;
    let headers = [
        ("authorization", "Bearer tap-test-token"),
        ("mcp-session-id", "s-1"),
        ("last-event-id", "42"),
        ("connection", "x-hop"),
        ("x-hop", "1"),
    ];
    let garbage = b"{not json\x00\xff".to_vec();
    let big: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for body in [garbage, big] {
        let (status, h, echoed) = request("POST", &tap.url("/mcp"), &headers, body.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(echoed.as_ref(), body.as_slice(), "the upstream must receive the exact bytes");
        assert_eq!(
            h["x-seen"],
            "authorization=Bearer tap-test-token;mcp-session-id=s-1;last-event-id=42;x-forwarded-for=127.0.0.1;connection=-;x-hop=-"
        );
    }
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_decode_errors_total", &[("kind", "request_json")]), 1.0);
    assert_eq!(metric(&m, "mcp_tap_unparsed_messages_total", &[("reason", "request_too_large")]), 1.0);
    assert!(!m.contains("tap-test-token"), "a token must never reach /metrics");
}

#[tokio::test]
async fn garbage_sse_from_the_upstream_is_forwarded_and_counted() {
    let garbage = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"resu\n\ndata: \u{1F600}\x01\n\n: x\r\rdata";
    let addr = upstream(move |_| async move { sse_response(full(garbage)) }).await;
    let tap = Tap::start(config_for(&format!("http://{addr}"), "t")).await;
    let (status, _, body) = post_mcp(&tap.url("/mcp"), &[], CALL).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_ref(), garbage.as_bytes());
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_decode_errors_total", &[("kind", "response_json")]), 2.0);
    assert_eq!(metric(&m, "mcp_tap_decode_errors_total", &[("kind", "sse_truncated")]), 1.0);
}

#[tokio::test]
async fn h2c_clients_are_served_and_labelled() {
    let addr = upstream(|_| async { json_response(200, r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#) }).await;
    let tap = Tap::start(config_for(&format!("http://{addr}"), "t")).await;
    let h2: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).http2_only(true).build_http();
    let resp = h2.request(call_request(&tap.url("/mcp"))).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_server_operation_duration_seconds_count", &[("network_protocol_version", "2")]), 1.0);
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_request() {
    let (addr, senders) = scripted_upstream().await;
    let tap = Tap::start(config_for(&format!("http://{addr}"), "t")).await;
    let resp = client().request(call_request(&tap.url("/mcp"))).await.unwrap();
    let events = senders.lock().await.recv().await.unwrap();
    drop(resp);
    tokio::time::timeout(Duration::from_secs(5), events.closed()).await.expect("the upstream stream is closed");
    let cancelled = |m: &str| metric(m, "mcp_server_operation_duration_seconds_count", &[("error_type", "cancelled")]);
    let m =
        metrics_when(&tap, Duration::from_secs(5), "the cancelled operation recorded", |m| cancelled(m) > 0.0).await;
    assert_eq!(cancelled(&m), 1.0);
}

#[tokio::test]
async fn notifications_are_timed_to_their_202_and_rejections_keep_the_method() {
    let addr = upstream(|req: http::Request<hyper::body::Incoming>| async move {
        if req.headers().contains_key("authorization") {
            http::Response::builder().status(202).body(full(Bytes::new())).unwrap()
        } else {
            json_response(
                401,
                r#"{"error":{"name":"AuthenticationError","message":"Missing credentials"},"request":{"method":"POST","url":"/v1"},"response":{"statusCode":401}}"#,
            )
        }
    })
    .await;
    let config = test_config(&format!("http://{addr}"));
    let tap = Tap::start(config).await;
    let url = tap.url("/api/mcp-actions/v1");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(post_mcp(&url, &[("authorization", "Bearer x")], note).await.0, 202);
    assert_eq!(post_mcp(&url, &[], CALL).await.0, 401);
    let m = tap.metrics().await;
    let count = |labels: &[(&str, &str)]| metric(&m, "mcp_server_operation_duration_seconds_count", labels);
    assert_eq!(
        count(&[("mcp_route", "default"), ("mcp_method_name", "notifications/initialized"), ("error_type", "")]),
        1.0
    );
    assert_eq!(count(&[("mcp_route", "default"), ("mcp_method_name", "tools/call"), ("error_type", "401")]), 1.0);
}

/// An upstream that advertises random tools, answers with random error codes, and serves any
/// route key.
async fn random_names_upstream() -> std::net::SocketAddr {
    upstream(|req: http::Request<hyper::body::Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let batch: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        let answers: Vec<serde_json::Value> = batch
            .iter()
            .map(|m| {
                let id = m["id"].clone();
                let n = id.as_u64().unwrap();
                if m["method"] == "tools/list" {
                    let tools: Vec<_> = (0..20).map(|i| serde_json::json!({"name": format!("tool-{n}-{i}")})).collect();
                    serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"tools":tools}})
                } else {
                    serde_json::json!({"jsonrpc":"2.0","id":id,"error":{"code": -(n as i64) - 40000,"message":"x"}})
                }
            })
            .collect();
        json_response(200, &serde_json::to_string(&answers).unwrap())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_names_leave_the_series_bounded() {
    let addr = random_names_upstream().await;
    let mut config = test_config(&format!("http://{addr}"));
    config.labels.max_tools_per_route = 50;
    config.routes.max_learned_keys = 4;
    let tap = Tap::start(config).await;
    let mut id = 0u64;
    for round in 0..200 {
        let path = format!("/api/mcp-actions/v1/k{round}");
        let batch: Vec<serde_json::Value> = (0..50)
            .map(|i| {
                id += 1;
                let method = match i {
                    0 => "tools/list".to_string(),
                    i if i % 2 == 1 => "tools/call".to_string(),
                    _ => format!("m{id}/{}", id * 7919 % 1000),
                };
                serde_json::json!({"jsonrpc":"2.0","id":id,"method":method,"params":{"name":format!("t{id}")}})
            })
            .collect();
        let (status, _, _) = post_mcp(&tap.url(&path), &[], &serde_json::to_string(&batch).unwrap()).await;
        assert_eq!(status, 200);
    }
    let m = tap.metrics().await;
    let ops = series(&m, "mcp_server_operation_duration_seconds_count");
    let routes: std::collections::BTreeSet<_> = ops.iter().map(|(l, _)| l["mcp_route"].clone()).collect();
    assert_eq!(routes.len(), 5, "4 learned keys and _OTHER: {routes:?}");
    assert!(ops.iter().all(|(l, _)| ["tools/list", "tools/call", "_OTHER"].contains(&l["mcp_method_name"].as_str())));
    assert!(ops.iter().all(|(l, _)| ["", "_OTHER"].contains(&l["gen_ai_tool_name"].as_str())));
    let codes: std::collections::BTreeSet<_> = ops.iter().map(|(l, _)| l["rpc_response_status_code"].clone()).collect();
    assert!(codes.len() <= 66, "rpc codes are capped: {}", codes.len());
    assert_eq!(ops.iter().map(|(_, v)| v).sum::<f64>(), 10_000.0, "every operation is still counted");
    // The same capped label sets on both operation histograms (what the client waited, and the
    // upstream hop): about 1,500 lines each, whatever the 10,000 names were.
    let hops = series(&m, "mcp_client_operation_duration_seconds_count");
    assert_eq!(hops.len(), ops.len(), "the upstream hop has the operations' bounded label sets");
    let total_series = m.lines().filter(|l| !l.starts_with('#')).count();
    assert!(total_series < 4000, "series must stay bounded, got {total_series}");
    assert!(metric(&m, "mcp_tap_label_overflow_total", &[("label", "rpc_response_status_code")]) > 0.0);
    assert!(metric(&m, "mcp_tap_label_overflow_total", &[("label", "mcp_route")]) > 0.0);
    assert!(metric(&m, "mcp_tap_label_overflow_total", &[("label", "gen_ai_tool_name")]) > 0.0);
}

#[tokio::test]
async fn a_black_holed_upstream_is_unreachable_not_slow() {
    // A listener that never accepts, its accept queue full: further SYNs are dropped, so a
    // connect hangs until the tap's connect timeout, like an upstream behind a dropping firewall.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let _listener = socket.listen(1).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let mut config = config_for(&format!("http://{addr}"), "t");
    config.upstream.connect_timeout = Duration::from_millis(200);
    let tap = Tap::start(config).await;
    let (status, _, body) = post_mcp(&tap.url("/mcp"), &[], CALL).await;
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_upstream_errors_total", &[("kind", "connect")]), 1.0);
    assert_eq!(metric(&m, "mcp_tap_upstream_errors_total", &[("kind", "timeout")]), 0.0);
    assert_eq!(
        metric(&m, "mcp_server_operation_duration_seconds_count", &[("error_type", "upstream_unavailable")]),
        1.0
    );
}

#[tokio::test]
async fn the_response_timeout_starts_once_the_request_has_been_sent() {
    // Reads the whole body, then answers at once.
    let addr = upstream(|req: http::Request<hyper::body::Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        json_response(200, &format!(r#"{{"received":{}}}"#, body.len()))
    })
    .await;
    let mut config = config_for(&format!("http://{addr}"), "t");
    config.upstream.response_timeout = Duration::from_millis(300);
    let tap = Tap::start(config).await;
    // A path the tap does not read: the body streams upstream as the client sends it.
    let (tx, body) = channel_body();
    let req = http::Request::post(tap.url("/api/catalog/refresh")).body(body).unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut pending = tokio::spawn(client.request(req));
    tx.send(Ok(Bytes::from_static(b"first half, "))).await.unwrap();
    // Twice the response timeout while the client is still uploading: no 504.
    if let Ok(answer) = tokio::time::timeout(Duration::from_millis(600), &mut pending).await {
        panic!("answered before the body was sent: {:?}", answer.unwrap().map(|r| r.status()));
    }
    tx.send(Ok(Bytes::from_static(b"second half"))).await.unwrap();
    drop(tx);
    let resp = pending.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes().as_ref(), br#"{"received":23}"#);
}
