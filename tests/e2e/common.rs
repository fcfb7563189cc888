//! Shared test harness: the tap started in-process on port 0, a small HTTP client, real peer
//! processes (Python SDK, server-everything) that are killed when dropped, and metric helpers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with the official `mcp` SDK, installed by `scripts/test.sh`.
pub fn python() -> PathBuf {
    let p = std::env::var_os("MCP_TAP_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/peers-venv/bin/python"));
    assert!(
        p.exists(),
        "the Python MCP SDK is not installed at {}: run scripts/test.sh, or \
         `python3 -m venv target/peers-venv && target/peers-venv/bin/pip install -r tests/peers/requirements.txt`",
        p.display()
    );
    p
}

/// `@modelcontextprotocol/server-everything`, installed by `scripts/test.sh`.
pub fn server_everything() -> PathBuf {
    let p = repo().join("tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        p.exists(),
        "server-everything is not installed at {}: run scripts/test.sh, or `npm ci --prefix tests/peers`",
        p.display()
    );
    p
}

/// A child process killed on drop.
pub struct Peer {
    pub child: Child,
    pub port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a peer process and waits until its port accepts connections.
pub async fn spawn_peer(mut cmd: Command, port: u16, what: &str) -> Peer {
    let child =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut peer = Peer { child, port };
    // Generous: on a loaded 2-core machine a Node backend can take a while to start.
    for _ in 0..1200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return peer;
        }
        if let Ok(Some(status)) = peer.child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            let _ = peer.child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("{what} exited with {status} before listening:\n{err}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not listen on port {port} within 60 s");
}

pub async fn python_server(stateless_json: bool) -> Peer {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/peers/py_server.py")).arg("--port").arg(port.to_string());
    if stateless_json {
        cmd.args(["--stateless", "--json"]);
    }
    spawn_peer(cmd, port, "the Python MCP server").await
}

pub async fn everything_server() -> Peer {
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.arg(server_everything()).arg("streamableHttp").env("PORT", port.to_string());
    spawn_peer(cmd, port, "server-everything").await
}

/// Runs the Python SDK client; returns what it printed (one JSON object).
pub async fn python_client(url: &str, args: &[&str]) -> serde_json::Value {
    let out = tokio::process::Command::new(python())
        .arg(repo().join("tests/peers/py_client.py"))
        .arg(url)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad client output {e}: {}", String::from_utf8_lossy(&out.stdout)))
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

/// Static tokens the test Backstage accepts (see tests/backstage/app-config.yaml). They are test
/// secrets: the leak tests search every output of the tap for them.
pub const TOKEN_FULL: &str = "tap-test-full-7c1e9a52d4";
pub const TOKEN_CATALOG_ONLY: &str = "tap-test-catalog-3f8b61e0aa";
pub const TOKEN_MCP_ONLY: &str = "tap-test-mcponly-95d2c7b14e";

/// A real Backstage backend (catalog + MCP Actions), installed by `scripts/test.sh` into
/// tests/backstage/node_modules. Ready when its readiness endpoint answers 200.
pub async fn backstage() -> Peer {
    backstage_on(free_port(), TOKEN_FULL).await
}

/// A test Backstage on `port` whose full-access token is `full_token` (a rotation restarts it
/// on the same port with another token).
pub async fn backstage_on(port: u16, full_token: &str) -> Peer {
    let dir = repo().join("tests/backstage");
    assert!(
        dir.join("node_modules/@backstage/plugin-mcp-actions-backend").exists(),
        "the test Backstage is not installed: run scripts/test.sh, or `npm ci --prefix tests/backstage`"
    );
    let overrides = std::env::temp_dir().join(format!("mcp-tap-backstage-{port}.yaml"));
    std::fs::write(
        &overrides,
        format!("backend:\n  baseUrl: http://127.0.0.1:{port}\n  listen:\n    host: 127.0.0.1\n    port: {port}\n"),
    )
    .unwrap();
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg("index.js")
        .args(["--config", "app-config.yaml", "--config"])
        .arg(&overrides)
        .env("MCP_TAP_TEST_TOKEN", full_token)
        .env("MCP_TAP_TEST_CATALOG_TOKEN", TOKEN_CATALOG_ONLY)
        .env("MCP_TAP_TEST_MCP_ONLY_TOKEN", TOKEN_MCP_ONLY)
        .env("NODE_ENV", "development");
    let peer = spawn_peer(cmd, port, "the test Backstage").await;
    let ready = format!("http://127.0.0.1:{port}/.backstage/health/v1/readiness");
    // Ready, and the catalog has ingested tests/backstage/entities.yaml.
    let entity = format!("http://127.0.0.1:{port}/api/catalog/entities/by-name/component/default/payments-api");
    let auth = format!("Bearer {full_token}");
    for _ in 0..900 {
        if get(&ready).await.0 == 200
            && request("GET", &entity, &[("authorization", &auth)], Bytes::new()).await.0 == 200
        {
            return peer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the test Backstage was not ready with its catalog within 90 s");
}

/// A real Alertmanager (Debian `prometheus-alertmanager`, installed by `scripts/test.sh`) with a
/// receiver that drops notifications; tests read its v2 API.
pub async fn alertmanager() -> Peer {
    alertmanager_with("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n").await
}

/// A real Alertmanager with the given config file text.
pub async fn alertmanager_with(config: &str) -> Peer {
    let bin = PathBuf::from("/usr/bin/prometheus-alertmanager");
    assert!(
        bin.exists(),
        "Alertmanager is not installed: run scripts/test.sh, or `apt-get install prometheus-alertmanager`"
    );
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("mcp-tap-am-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("am.yml"), config).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", dir.join("am.yml").display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=");
    spawn_peer(cmd, port, "Alertmanager").await
}

/// A real Prometheus (Debian `prometheus`) with the given config, in a fresh data directory.
pub async fn prometheus(config: &str) -> Peer {
    let bin = PathBuf::from("/usr/bin/prometheus");
    assert!(bin.exists(), "Prometheus is not installed: run scripts/test.sh, or `apt-get install prometheus`");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("mcp-tap-prom-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", file.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    spawn_peer(cmd, port, "Prometheus").await
}
