//! Cancellation by disconnect, as MCP clients cancel: a client that closes its connection before
//! the answer (a slow tool it gave up on) or in the middle of an SSE answer. Within a second the
//! operation is `cancelled` (never a server error) and the upstream sees its request closed.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow-report","arguments":{}}}"#;

/// Notifies when dropped: the upstream's handler was dropped because its connection closed.
struct Closed(Arc<Notify>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// An upstream whose tool never finishes: with `early`, it sends its SSE headers and a progress
/// event first; without, nothing at all. `closed` is notified when the tap closes the request.
async fn never_finishing(early: bool, closed: Arc<Notify>) -> std::net::SocketAddr {
    upstream(move |_req: http::Request<hyper::body::Incoming>| {
        let guard = Closed(closed.clone());
        async move {
            if !early {
                // Holds the guard until the tap's request is dropped with this future.
                let _held = &guard;
                std::future::pending::<()>().await;
            }
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let progress = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
                let _ = tx.send(Ok(Bytes::from(progress))).await;
                // Held until the tap drops the stream: then the send fails and the guard drops.
                tx.closed().await;
                drop(guard);
            });
            sse_response(body)
        }
    })
    .await
}

/// A client that sends a tools/call, reads for `patience` (the answer's head, if any), and
/// closes its connection; returns when it closed and what it had read.
async fn impatient_client(proxy: std::net::SocketAddr, patience: Duration) -> (Instant, String) {
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: tap\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n{CALL}",
        CALL.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + patience;
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(until, stream.read(&mut buf)).await {
        got.extend_from_slice(&buf[..n]);
    }
    drop(stream);
    (Instant::now(), String::from_utf8_lossy(&got).into_owned())
}

async fn cancelled_within_a_second(early: bool) {
    let closed = Arc::new(Notify::new());
    let addr = never_finishing(early, closed.clone()).await;
    let tap = Tap::start(config_for(&format!("http://{addr}"), "slow")).await;
    let (left, read) = impatient_client(tap.proxy, Duration::from_millis(500)).await;
    assert_eq!(read.contains("progress"), early, "{read}");
    let cancelled = |m: &str| {
        metric(
            m,
            "mcp_server_operation_duration_seconds_count",
            &[("mcp_method_name", "tools/call"), ("error_type", "cancelled")],
        )
    };
    let m = metrics_when(&tap, Duration::from_secs(1), "the call recorded as cancelled", |m| cancelled(m) == 1.0).await;
    let recorded = left.elapsed();
    tokio::time::timeout(Duration::from_secs(1), closed.notified())
        .await
        .expect("the upstream sees its request closed within a second");
    let stage = if early { "mid-SSE" } else { "before the answer's head" };
    println!(
        "client left {stage}: cancelled recorded within {recorded:?}, upstream closed within {:?}",
        left.elapsed()
    );
    let faults = metric(&m, "mcp_server_operation_duration_seconds_count", &[("error_type", "502")])
        + metric(&m, "mcp_server_operation_duration_seconds_count", &[("error_type", "stream_aborted")]);
    assert_eq!(faults, 0.0, "a cancelled call is never a server error");
    let status = if early { "200" } else { "499" };
    assert_eq!(metric(&m, "mcp_tap_http_requests_total", &[("http_response_status_code", status)]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_abandoned_before_its_answer_is_cancelled_and_closed_upstream() {
    cancelled_within_a_second(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_abandoned_mid_stream_is_cancelled_and_closed_upstream() {
    cancelled_within_a_second(true).await;
}

/// The official Python SDK on both sides: a client that gives up on a 5 s tool after 0.5 s. On
/// MCP 2026-07-28 it cancels by closing its stream; on the handshake generation it also sends
/// `notifications/cancelled`, and the server may end the stream before the client leaves. Either
/// way the call is `cancelled` within a second of the client giving up (never `stream_aborted`),
/// and the server's tool was cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_client_that_gives_up_cancels_through_the_tap() {
    let events = std::env::temp_dir().join(format!("mcp-tap-cancel-events-{}", std::process::id()));
    let _ = std::fs::remove_file(&events);
    let server = python_server_with(&["--events", events.to_str().unwrap()]).await;
    let tap = Tap::start(config_for(&format!("http://127.0.0.1:{}", server.port), "py")).await;
    for (n, mode) in ["2026-07-28", "legacy", "legacy"].into_iter().enumerate() {
        let args = ["--mode", mode, "--no-list", "--call", r#"slow={"seconds":5}"#, "--abandon-after", "0.5"];
        let out = python_client(&tap.url("/mcp"), &args).await;
        let gave_up = Instant::now();
        assert_eq!(out["calls"][0]["abandoned"], true, "{out}");
        let want = (n + 1) as f64;
        let cancelled = |m: &str| {
            let labels = [("mcp_method_name", "tools/call"), ("error_type", "cancelled")];
            metric(m, "mcp_server_operation_duration_seconds_count", &labels)
        };
        metrics_when(&tap, Duration::from_secs(1), "the abandoned call recorded as cancelled", |m| {
            cancelled(m) == want
        })
        .await;
        println!("{mode}: the client gave up after 0.5 s; cancelled recorded within {:?}", gave_up.elapsed());
        let seen = || std::fs::read_to_string(&events).unwrap_or_default().lines().count();
        eventually(Duration::from_secs(5), "the server's tool cancelled", || async {
            if seen() > n {
                Ok(())
            } else {
                Err(format!("{} cancellations", seen()))
            }
        })
        .await;
    }
    let m = tap.metrics().await;
    let ok_calls = metric(
        &m,
        "mcp_server_operation_duration_seconds_count",
        &[("mcp_method_name", "tools/call"), ("error_type", "")],
    );
    assert_eq!(ok_calls, 0.0, "no abandoned call is counted as answered");
    let aborted = metric(&m, "mcp_server_operation_duration_seconds_count", &[("error_type", "stream_aborted")]);
    assert_eq!(aborted, 0.0, "a call its client cancelled is never a stream the server broke");
}
