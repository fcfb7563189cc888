//! Hostile clients against the limits: a body over the cap, a trickled body, a slowloris, HTTP/2
//! streams with half-sent bodies, a connection flood and a spent decode budget. Each gets its
//! documented answer, its refusal is counted, and a well-behaved client is served meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const ANSWER: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}\n\n";

/// An upstream that reads the whole body and answers `tools/list`; counts what reached it.
async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let addr = upstream(move |req: http::Request<hyper::body::Incoming>| {
        let s = s.clone();
        async move {
            let _ = req.into_body().collect().await;
            s.fetch_add(1, Ordering::SeqCst);
            sse_response(full(ANSWER))
        }
    })
    .await;
    (format!("http://{addr}"), seen)
}

fn limited(upstream: &str) -> mcp_tap::config::Config {
    let mut c = config_for(upstream, "t");
    c.limits.max_request_body_bytes = 1024;
    c.limits.decode_budget_bytes = 4096;
    c.limits.request_body_timeout = Duration::from_millis(300);
    c.limits.header_read_timeout = Duration::from_millis(300);
    c
}

fn refused(m: &str, limit: &str) -> f64 {
    metric(m, "mcp_tap_requests_refused_total", &[("limit", limit)])
}

async fn well_behaved(tap: &Tap) {
    let (status, _, body) = post_mcp(&tap.url("/mcp"), &[], LIST).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_ref(), ANSWER.as_bytes());
}

/// A POST whose body the test writes by hand (no content length: chunked, or HTTP/2 frames).
fn streamed_post(url: &str) -> (tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>, http::Request<TestBody>) {
    let (tx, body) = channel_body();
    let req = http::Request::post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    (tx, req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_is_refused_with_413_and_never_forwarded() {
    let (up, seen) = counting_upstream().await;
    let tap = Tap::start(limited(&up)).await;
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{}"}}}}"#, "x".repeat(2000));
    let (status, headers, body) = post_mcp(&tap.url("/mcp"), &[], &big).await;
    assert_eq!(status, 413);
    assert_eq!(headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("limits.max_request_body_bytes"), "{v}");
    // The same without a declared length: read up to the cap, then refused.
    let (tx, req) = streamed_post(&tap.url("/mcp"));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let pending = tokio::spawn(client.request(req));
    for _ in 0..3 {
        let _ = tx.send(Ok(Bytes::from(vec![b' '; 600]))).await;
    }
    assert_eq!(pending.await.unwrap().unwrap().status(), 413);
    well_behaved(&tap).await;
    let m = tap.metrics().await;
    assert_eq!(refused(&m, "request_body_bytes"), 2.0);
    assert_eq!(seen.load(Ordering::SeqCst), 1, "only the well-behaved request reached the upstream");
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_while_others_are_served() {
    let (up, seen) = counting_upstream().await;
    let tap = Tap::start(limited(&up)).await;
    let (tx, req) = streamed_post(&tap.url("/mcp"));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let pending = tokio::spawn(client.request(req));
    tx.send(Ok(Bytes::from_static(b"{\"jsonrpc\":"))).await.unwrap();
    well_behaved(&tap).await;
    let resp = pending.await.unwrap().unwrap();
    assert_eq!(resp.status(), 408);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("limits.request_body_timeout"));
    drop(tx);
    let m = tap.metrics().await;
    assert_eq!(refused(&m, "request_body_timeout"), 1.0);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    tap.stop().await;
}

/// Reads until the tap closes the connection; what it sent before closing.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the tap closes the connection")
        .unwrap_or_default();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_silent_connections_are_cut_at_the_header_deadline() {
    let (up, _) = counting_upstream().await;
    let tap = Tap::start(limited(&up)).await;
    let mut slow = tokio::net::TcpStream::connect(tap.proxy).await.unwrap();
    slow.write_all(b"POST /mcp HTTP/1.1\r\nhost: tap\r\ncontent-type: appl").await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(tap.proxy).await.unwrap();
    well_behaved(&tap).await;
    assert!(!read_to_close(&mut slow).await.contains("200"), "no answer for half-sent headers");
    assert_eq!(read_to_close(&mut silent).await, "");
    let m = metrics_when(&tap, Duration::from_secs(5), "two header timeouts counted", |m| {
        refused(m, "header_read_timeout") >= 2.0
    })
    .await;
    assert_eq!(refused(&m, "header_read_timeout"), 2.0);
    tap.stop().await;
}

/// The header deadline times each request head on a keep-alive connection, from the end of the
/// last answer; it never runs while a request is open, however long the upstream takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_head_has_the_deadline_and_no_answer_does() {
    let release = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    let addr = upstream(move |req: http::Request<hyper::body::Incoming>| {
        let r = r.clone();
        async move {
            let _ = req.into_body().collect().await;
            r.notified().await;
            sse_response(full(ANSWER))
        }
    })
    .await;
    let tap = Tap::start(limited(&format!("http://{addr}"))).await;
    let mut conn = tokio::net::TcpStream::connect(tap.proxy).await.unwrap();
    let head = "POST /mcp HTTP/1.1\r\nhost: tap\r\ncontent-type: application/json\r\n\
                accept: application/json, text/event-stream\r\ncontent-length: ";
    conn.write_all(format!("{head}{}\r\n\r\n{LIST}", LIST.len()).as_bytes()).await.unwrap();
    // A silent connection opened now is cut at the deadline: proof that it passed meanwhile.
    let mut silent = tokio::net::TcpStream::connect(tap.proxy).await.unwrap();
    assert_eq!(read_to_close(&mut silent).await, "");
    metrics_when(&tap, Duration::from_secs(5), "the silent connection counted", |m| {
        refused(m, "header_read_timeout") >= 1.0
    })
    .await;
    release.notify_one();
    let mut answer = Vec::new();
    while !answer.ends_with(ANSWER.as_bytes()) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "the open request was cut: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    // The next head on the same connection starts and stalls: cut at the deadline, counted.
    conn.write_all(b"POST /mcp HTTP/1.1\r\nhost: tap\r\ncontent-ty").await.unwrap();
    assert_eq!(read_to_close(&mut conn).await, "", "no answer to half a head");
    metrics_when(&tap, Duration::from_secs(5), "the stalled head counted", |m| {
        refused(m, "header_read_timeout") >= 2.0
    })
    .await;
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_streams_with_half_sent_bodies_each_get_408() {
    let (up, seen) = counting_upstream().await;
    let mut config = limited(&up);
    config.limits.max_h2_streams = 4;
    config.limits.decode_budget_bytes = 64 << 10;
    let tap = Tap::start(config).await;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<TestBody>();
    let mut senders = Vec::new();
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (tx, req) = streamed_post(&tap.url("/mcp"));
        tx.send(Ok(Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":"))).await.unwrap();
        senders.push(tx);
        streams.spawn(h2.request(req));
    }
    well_behaved(&tap).await;
    // Streams within max_h2_streams wait for their bodies until the deadline: 408. A stream the
    // client opened past the limit before it saw the server's SETTINGS is reset with
    // REFUSED_STREAM, which HTTP/2 clients retry.
    let (mut timed_out, mut refused_streams) = (0, 0);
    while let Some(done) = streams.join_next().await {
        match done.unwrap() {
            Ok(resp) => {
                assert_eq!(resp.status(), 408);
                timed_out += 1;
            }
            Err(e) => {
                assert!(format!("{e:?}").contains("REFUSED_STREAM"), "{e:?}");
                refused_streams += 1;
            }
        }
    }
    assert_eq!(timed_out + refused_streams, 8);
    assert!(timed_out >= 4, "at least max_h2_streams streams were held to their deadline");
    let m = tap.metrics().await;
    assert_eq!(refused(&m, "request_body_timeout"), f64::from(timed_out));
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    drop(senders);
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_and_the_slots_come_back() {
    let (up, _) = counting_upstream().await;
    let mut config = limited(&up);
    config.limits.max_connections = 3;
    config.limits.header_read_timeout = Duration::from_secs(2);
    let tap = Tap::start(config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(tap.proxy).await.unwrap());
    }
    let mut flood = Vec::new();
    for _ in 0..5 {
        let mut s = tokio::net::TcpStream::connect(tap.proxy).await.unwrap();
        flood.push(read_to_close(&mut s).await);
    }
    for answer in &flood {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("limits.max_connections"), "{answer}");
    }
    drop(held);
    // The held connections close; their slots serve the next client.
    eventually(Duration::from_secs(5), "a slot for a well-behaved client", || async {
        let m = tap.metrics().await;
        if metric(&m, "mcp_tap_connections_open", &[]) == 0.0 {
            Ok(())
        } else {
            Err(m)
        }
    })
    .await;
    well_behaved(&tap).await;
    assert_eq!(refused(&tap.metrics().await, "connections"), 5.0);
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_decode_budget_streams_bodies_undecoded_instead_of_holding_them() {
    let (up, seen) = counting_upstream().await;
    let mut config = limited(&up);
    config.limits.decode_budget_bytes = 2048;
    config.limits.request_body_timeout = Duration::from_secs(5);
    let tap = Tap::start(config).await;
    // Two bodies without a declared length each reserve the whole cap (1024): the budget is spent.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut held = Vec::new();
    for _ in 0..2 {
        let (tx, req) = streamed_post(&tap.url("/mcp"));
        tx.send(Ok(Bytes::from_static(b"{"))).await.unwrap();
        held.push((tx, tokio::spawn(client.request(req))));
    }
    eventually(Duration::from_secs(5), "a request streamed past the spent budget", || async {
        well_behaved(&tap).await;
        let m = tap.metrics().await;
        if metric(&m, "mcp_tap_unparsed_messages_total", &[("reason", "decode_budget")]) >= 1.0 {
            Ok(())
        } else {
            Err(m)
        }
    })
    .await;
    for (tx, pending) in held {
        tx.send(Ok(Bytes::from_static(b"}"))).await.unwrap();
        drop(tx);
        assert_eq!(pending.await.unwrap().unwrap().status(), 200);
    }
    assert!(seen.load(Ordering::SeqCst) >= 3);
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431() {
    let (up, seen) = counting_upstream().await;
    let tap = Tap::start(limited(&up)).await;
    let mut s = tokio::net::TcpStream::connect(tap.proxy).await.unwrap();
    let big = "a".repeat(70 << 10);
    let head = format!("POST /mcp HTTP/1.1\r\nhost: tap\r\nx-big: {big}\r\ncontent-length: 2\r\n\r\n{{}}");
    let _ = s.write_all(head.as_bytes()).await;
    assert!(read_to_close(&mut s).await.starts_with("HTTP/1.1 431"));
    well_behaved(&tap).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    tap.stop().await;
}
