//! Shared test harness: the tap started in-process on port 0, a small HTTP client, metric
//! helpers, `eventually` (the one way tests wait), and real peers (in `peers`).

mod browser;
mod fleet;
mod oauth;
mod peers;
mod tokens;
pub use browser::*;
pub use fleet::*;
pub use oauth::*;
pub use peers::*;
pub use tokens::*;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use mcp_tap::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct Tap {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Tap {
    pub async fn start(config: Config) -> Tap {
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (proxy_addr, admin_addr) = (proxy.local_addr().unwrap(), admin.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(mcp_tap::app::run(config, proxy, admin, async move {
            let _ = rx.await;
        }));
        Tap { proxy: proxy_addr, admin: admin_addr, stop: Some(tx), task: Some(task) }
    }

    /// Starts the tap with hot reload of `path` (loaded as the binary loads it, without flags).
    pub async fn start_watching(path: &std::path::Path) -> Tap {
        let config = Config::load(path).expect("the initial config is valid");
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (proxy_addr, admin_addr) = (proxy.local_addr().unwrap(), admin.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let file = path.to_path_buf();
        let load: mcp_tap::reload::Loader = std::sync::Arc::new(move || Config::load(&file));
        let options = mcp_tap::app::Options { reload: Some((path.to_path_buf(), load)), ..Default::default() };
        let task = tokio::spawn(mcp_tap::app::run_with(
            config,
            proxy,
            admin,
            async move {
                let _ = rx.await;
            },
            options,
        ));
        Tap { proxy: proxy_addr, admin: admin_addr, stop: Some(tx), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub async fn metrics(&self) -> String {
        let (status, _, body) = get(&format!("http://{}/metrics", self.admin)).await;
        assert_eq!(status, 200);
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// Ends the tap at once, as a crash or SIGKILL would: nothing is flushed or ended.
    pub fn crash(mut self) {
        // The shutdown signal never comes (a dropped sender would start a graceful stop).
        std::mem::forget(self.stop.take());
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Stops the tap and waits for it, as SIGTERM would.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await.expect("tap stops").unwrap().unwrap();
        }
    }
}

/// Defaults for tests: the audit trail goes to a fresh file (see `audit_lines`), not stdout.
pub fn test_config(upstream: &str) -> Config {
    let mut c = Config::default();
    c.upstream.url = upstream.to_string();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("mcp-tap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    c.audit.output = dir.join(format!("audit-{n}.jsonl")).to_string_lossy().into_owned();
    c.checklist.state_dir = Some(dir.join(format!("state-{n}")));
    // Tests stop their taps at once; the drain is tested on its own (`shutdown.rs`).
    c.shutdown_drain_delay = Duration::ZERO;
    c
}

/// The audit lines written so far.
pub fn audit_lines(config: &Config) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&config.audit.output)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect()
}

/// A config pointing at `upstream` with `/mcp` as an extra MCP route labelled `label`.
pub fn config_for(upstream: &str, label: &str) -> Config {
    let mut c = test_config(upstream);
    c.routes.extra = vec![mcp_tap::config::ExtraRoute { path: "/mcp".into(), label: label.into() }];
    c
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> (u16, http::HeaderMap, Bytes) {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client().request(req.body(Full::new(body.into())).unwrap()).await.expect("request is answered");
    let (parts, body) = resp.into_parts();
    (parts.status.as_u16(), parts.headers, body.collect().await.unwrap().to_bytes())
}

pub async fn get(url: &str) -> (u16, http::HeaderMap, Bytes) {
    request("GET", url, &[], Bytes::new()).await
}

pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, Bytes) {
    let (status, _, body) = request("GET", url, headers, Bytes::new()).await;
    (status, body)
}

pub const MCP_ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");
pub const JSON: (&str, &str) = ("content-type", "application/json");

/// POSTs one JSON-RPC body the way MCP clients do.
pub async fn post_mcp(url: &str, extra: &[(&str, &str)], body: &str) -> (u16, http::HeaderMap, Bytes) {
    let mut headers = vec![MCP_ACCEPT, JSON];
    headers.extend_from_slice(extra);
    request("POST", url, &headers, body.to_string()).await
}

/// Sum of the values of every series named `name` whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    series(text, name)
        .iter()
        .filter(|(l, _)| labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .sum()
}

/// Every series of one metric name, labels parsed.
pub fn series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
            let end = rest.rfind('}').unwrap();
            (parse_labels(&rest[..end]), rest[end + 1..].trim())
        } else if rest.starts_with(' ') {
            (BTreeMap::new(), rest.trim())
        } else {
            continue;
        };
        out.push((labels, value.parse().unwrap()));
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').to_string();
        let after = &rest[eq + 2..];
        let mut end = 0;
        let bytes = after.as_bytes();
        while end < bytes.len() && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\')) {
            end += 1;
        }
        map.insert(key, after[..end].to_string());
        rest = &after[(end + 1).min(after.len())..];
    }
    map
}

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A response body the test writes frame by frame; an `Err` item breaks the stream.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(http_body::Frame::data)))
    }
}

pub fn channel_body() -> (tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>, TestBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    (tx, ChannelBody(rx).boxed())
}

/// An in-process upstream (HTTP/1.1) answering with `handler`; for unit-level proxy behaviour.
pub async fn upstream<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = http::Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An OTLP/HTTP receiver: every export's path and body go to `keep`, each answered 200 with an
/// empty protobuf (an export response with nothing rejected). Its endpoint URL.
pub async fn otlp_http_receiver(keep: impl Fn(&str, Bytes) + Clone + Send + Sync + 'static) -> String {
    let addr = upstream(move |req: http::Request<hyper::body::Incoming>| {
        let keep = keep.clone();
        async move {
            let path = req.uri().path().to_string();
            keep(&path, req.into_body().collect().await.unwrap().to_bytes());
            http::Response::builder()
                .status(200)
                .header("content-type", "application/x-protobuf")
                .body(full(Vec::<u8>::new()))
                .unwrap()
        }
    })
    .await;
    format!("http://{addr}")
}

pub fn sse_response(body: TestBody) -> http::Response<TestBody> {
    http::Response::builder().status(200).header("content-type", "text/event-stream").body(body).unwrap()
}

pub fn json_response(status: u16, body: &str) -> http::Response<TestBody> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

/// How often `eventually` looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Waits until `check` succeeds, looking again every `POLL_INTERVAL`; after `within` it panics with
/// `what` and the last state `check` described. Tests wait on conditions, never for a fixed time.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not seen within {within:?}; last seen:\n{last}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Scrapes `/metrics` until `check` holds for the text; returns that text.
pub async fn metrics_when(tap: &Tap, within: Duration, what: &str, check: impl Fn(&str) -> bool) -> String {
    eventually(within, what, || async {
        let m = tap.metrics().await;
        if check(&m) {
            Ok(m)
        } else {
            Err(m)
        }
    })
    .await
}

/// The audit lines once one of them satisfies `check`.
pub async fn audit_when(
    config: &Config,
    within: Duration,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    eventually(within, what, || async {
        let lines = audit_lines(config);
        if lines.iter().any(&check) {
            Ok(lines)
        } else {
            Err(format!("{lines:#?}"))
        }
    })
    .await
}
