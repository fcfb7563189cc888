//! The tap's own upstream connections: an HTTP/1.1 client connection's requests reuse one
//! upstream connection, each client connection has its own, and an upstream connection the
//! upstream will not keep is replaced for the next request, never turned into a failure.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use tokio::net::{TcpListener, TcpStream};

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":{}}}"#;
const ANSWER: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}"#;

/// An upstream that counts the connections it accepts; with `close`, every answer says
/// `Connection: close` and the connection ends after it.
async fn counting_upstream(close: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, accepted) = (listener.local_addr().unwrap(), Arc::new(AtomicUsize::new(0)));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let service = hyper::service::service_fn(move |_req| async move {
                let mut resp = json_response(200, ANSWER);
                if close {
                    resp.headers_mut().insert("connection", http::HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(resp)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    (addr, accepted)
}

/// One HTTP/1.1 connection to the tap, kept for every request sent on it.
async fn client_connection(tap: &Tap) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(tap.proxy).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn call(sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>, tap: &Tap) -> (u16, Bytes) {
    sender.ready().await.unwrap();
    let req = http::Request::post("/mcp")
        .header("host", tap.proxy.to_string())
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(CALL)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// A tap in front of a counting upstream, and a client connection that made five calls on it.
async fn five_calls(close: bool) -> (Tap, Arc<AtomicUsize>, hyper::client::conn::http1::SendRequest<Full<Bytes>>) {
    let (addr, accepted) = counting_upstream(close).await;
    let tap = Tap::start(config_for(&format!("http://{addr}"), "t")).await;
    let mut conn = client_connection(&tap).await;
    for _ in 0..5 {
        assert_eq!(call(&mut conn, &tap).await, (200, Bytes::from(ANSWER)));
    }
    (tap, accepted, conn)
}

#[tokio::test]
async fn a_client_connections_requests_share_one_upstream_connection() {
    let (tap, accepted, mut first) = five_calls(false).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "five requests of one client connection, one upstream connection");
    let mut second = client_connection(&tap).await;
    assert_eq!(call(&mut second, &tap).await.0, 200);
    assert_eq!(call(&mut first, &tap).await.0, 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "each client connection has its own");
}

#[tokio::test]
async fn an_upstream_connection_that_closes_after_each_answer_is_replaced() {
    let (tap, accepted, _conn) = five_calls(true).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
    let text = metrics_when(&tap, std::time::Duration::from_secs(5), "five operations", |m| {
        metric(m, "mcp_server_operation_duration_seconds_count", &[("mcp_method_name", "tools/call")]) == 5.0
    })
    .await;
    assert!(series(&text, "mcp_tap_upstream_errors_total").iter().all(|(_, v)| *v == 0.0), "no upstream error");
}
