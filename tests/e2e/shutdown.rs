//! Graceful shutdown of the real binary: on SIGTERM the tap drains first (`/readyz` fails, it
//! still serves, and every HTTP/1 answer closes its connection), an SSE exchange in flight still
//! completes, the tap logs its stop, and the process exits 0.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;

/// An upstream that answers a POST with a progress event at once and the result only when
/// `release` is notified, and anything else with a small JSON document.
async fn held_sse_upstream(release: std::sync::Arc<tokio::sync::Notify>) -> std::net::SocketAddr {
    upstream(move |req: http::Request<hyper::body::Incoming>| {
        let released = release.clone();
        async move {
            if req.method() != http::Method::POST {
                return json_response(200, r#"{"items":[]}"#);
            }
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let progress = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
                tx.send(Ok(Bytes::from(progress))).await.unwrap();
                released.notified().await;
                let result = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n";
                let _ = tx.send(Ok(Bytes::from(result))).await;
            });
            sse_response(body)
        }
    })
    .await
}

type Logs = std::io::Lines<BufReader<std::process::ChildStderr>>;

/// The binary started in front of `addr` with the default drain, with its stderr lines and the
/// addresses it listens on (proxy, admin).
fn start_binary(addr: std::net::SocketAddr) -> (std::process::Child, Logs, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--upstream", &format!("http://{addr}")])
        .arg("--state-dir")
        .arg(std::env::temp_dir().join(format!("mcp-tap-shutdown-state-{}", std::process::id())))
        .env("MCP_TAP_FINGERPRINT_KEY", "shutdown-test-key-0123456789")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (proxy, admin) = loop {
        let v: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        if v["message"].as_str().is_some_and(|m| m.starts_with("mcp-tap is proxying")) {
            break (v["listen"].as_str().unwrap().to_string(), v["admin"].as_str().unwrap().to_string());
        }
    };
    (child, lines, proxy, admin)
}

/// Reads log lines until one contains `what`; returns the lines and those read.
async fn logs_until(mut lines: Logs, what: &'static str) -> (Logs, Vec<String>) {
    tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in lines.by_ref().map_while(Result::ok) {
            let done = line.contains(what);
            seen.push(line);
            if done {
                break;
            }
        }
        (lines, seen)
    })
    .await
    .unwrap()
}

/// While the tap drains: `/readyz` fails, a new request is still served, and its answer closes
/// its connection.
async fn draining(proxy: &str, admin: &str) {
    let (status, _, body) = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let (status, headers, _) = request("GET", &format!("http://{proxy}/api/catalog/entities"), &[], Bytes::new()).await;
    assert_eq!(status, 200, "still served while draining");
    assert_eq!(headers["connection"], "close", "the answer closes its connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_exchange_in_flight_at_sigterm_completes_and_the_tap_exits_zero() {
    // The result comes only when the test releases it, after the tap has begun shutting down.
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let addr = held_sse_upstream(release.clone()).await;
    let (mut child, lines, proxy, admin) = start_binary(addr);
    // Before the stop, answers keep their connections.
    let (_, headers, _) = request("GET", &format!("http://{proxy}/api/catalog/entities"), &[], Bytes::new()).await;
    assert!(headers.get("connection").is_none_or(|c| c != "close"), "{headers:?}");
    let req = http::Request::post(format!("http://{proxy}/api/mcp-actions/v1"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow"}}"#,
        )))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("notifications/progress"));

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let (lines, mut logs) = logs_until(lines, "draining").await;
    draining(&proxy, &admin).await;
    let (mut lines, more) = logs_until(lines, "shutting down").await;
    logs.extend(more);
    assert!(logs.iter().any(|l| l.contains("shutting down")), "{logs:?}");
    release.notify_one();
    // The rest of the stream still arrives.
    let rest = body.collect().await.expect("the stream completes after SIGTERM").to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("\"result\""), "{}", String::from_utf8_lossy(&rest));
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
    logs.extend(lines.by_ref().map_while(Result::ok));
    assert!(logs.iter().any(|l| l.contains("\"stopped\"")), "{logs:?}");
    assert!(tokio::net::TcpStream::connect(&proxy).await.is_err(), "the proxy port is closed after exit");
}

/// An HTTP/2 client on one connection: a request before the stop is served; when the drain
/// starts the tap sends GOAWAY, so the connection ends at once (well before the drain's 5 s),
/// and the client would open its next streams elsewhere. HTTP/1 is still served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_is_told_goaway_when_the_drain_starts() {
    let addr = held_sse_upstream(std::sync::Arc::new(tokio::sync::Notify::new())).await;
    let (mut child, lines, proxy, admin) = start_binary(addr);
    let stream = tokio::net::TcpStream::connect(&proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = conn.await;
        let _ = ended_tx.send((tokio::time::Instant::now(), result.is_ok()));
    });
    let get = || {
        http::Request::get(format!("http://{proxy}/api/catalog/entities"))
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap()
    };
    let resp = sender.send_request(get()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("connection").is_none(), "HTTP/2 carries no Connection header");

    let sigterm = tokio::time::Instant::now();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let (ended_at, clean) = tokio::time::timeout(std::time::Duration::from_secs(3), ended)
        .await
        .expect("the HTTP/2 connection ends within 3 s of SIGTERM (GOAWAY at the drain's start)")
        .unwrap();
    assert!(clean, "the connection ended with GOAWAY and a clean close, not a reset");
    println!("HTTP/2 connection closed {:?} after SIGTERM (drain: 5 s)", ended_at - sigterm);
    assert!(sender.send_request(get()).await.is_err(), "no new stream on a connection told GOAWAY");
    let (lines, _) = logs_until(lines, "draining").await;
    draining(&proxy, &admin).await;
    let (_, logs) = logs_until(lines, "shutting down").await;
    assert!(logs.iter().any(|l| l.contains("shutting down")), "{logs:?}");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}
