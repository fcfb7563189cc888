//! Replicas of the real binary as platform teams run them: sharing a real redis-server, behind a
//! real nginx as an ingress runs it (round robin, keep-alive upstream connections, no replica
//! ever marked down), under steady traffic with and without a token. For the rolling-restart
//! and fault tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use super::*;

pub const FLEET_TOKEN: &str = "fleet-client-token-0a1b2c";
const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const TOOLS: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}\n\n";

/// A real nginx in `dir` proxying to the upstream block `taps` (its `servers`, its options) with
/// `location` directives added after `proxy_pass`.
pub async fn nginx_balancer(dir: &Path, what: &str, servers: &str, location: &str) -> Peer {
    let bin = PathBuf::from("/usr/sbin/nginx");
    assert!(bin.exists(), "nginx is missing: run scripts/test.sh, or `apt-get install nginx-light`");
    spawn_peer(what, |port| {
        let conf = dir.join(format!("nginx-{port}.conf"));
        let d = dir.display();
        let text = [
            format!("worker_processes 1;\ndaemon off;\nerror_log {d}/nginx-error.log;\npid {d}/nginx-{port}.pid;\n"),
            format!("events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n"),
            format!("  proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi;\n"),
            format!("  scgi_temp_path {d}/scgi;\n  upstream taps {{ {servers} }}\n"),
            format!(
                "  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://taps; {location} }} }}\n}}\n"
            ),
        ]
        .concat();
        std::fs::write(&conf, text).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("-p").arg(dir).arg("-c").arg(&conf);
        cmd
    })
    .await
}

/// nginx round robin over `backends` with a keep-alive pool to them, as ingress-nginx proxies.
pub async fn keepalive_balancer(backends: &[u16], dir: &Path) -> Peer {
    // No replica is ever marked down: a refused connect is retried on the next one each time.
    let servers: String = backends.iter().map(|p| format!("server 127.0.0.1:{p} max_fails=0; ")).collect();
    let location = "proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off;";
    nginx_balancer(dir, "nginx (keep-alive round robin)", &format!("{servers} keepalive 16;"), location).await
}

/// An upstream that answers `tools/list` with a token over SSE and refuses it without one, as
/// Backstage does. With `x-hold`, the answer's result comes only after a progress event and a
/// call of `release.notify_waiters()`.
pub async fn backstage_like(release: Arc<tokio::sync::Notify>) -> SocketAddr {
    upstream(move |req: http::Request<hyper::body::Incoming>| {
        let release = release.clone();
        async move {
            if !req.headers().contains_key("authorization") {
                return json_response(401, r#"{"error":{"name":"AuthenticationError","message":"Missing credentials"}}"#);
            }
            let hold = req.headers().contains_key("x-hold");
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                if hold {
                    let released = release.notified();
                    let progress = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
                    let _ = tx.send(Ok(Bytes::from(progress))).await;
                    released.await;
                }
                let _ = tx.send(Ok(Bytes::from(TOOLS))).await;
            });
            sse_response(body)
        }
    })
    .await
}

/// A replica's config: cluster mode on the store at `store_port`, a one-second drain.
pub fn replica_config(dir: &Path, n: usize, port: u16, upstream: SocketAddr, store_port: u16) -> PathBuf {
    let file = dir.join(format!("replica-{n}.yaml"));
    let (audit, state) = (dir.join(format!("audit-{n}.jsonl")), dir.join(format!("state-{n}")));
    let text = [
        format!("listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:0\nupstream: {{url: 'http://{upstream}'}}\n"),
        "shutdown_drain_delay: 1s\nshutdown_grace_period: 5s\nlog: {level: error}\n".to_string(),
        format!("audit: {{output: '{}', summary_interval: 1s}}\n", audit.display()),
        format!("checklist: {{state_dir: '{}'}}\n", state.display()),
        format!("cluster: {{store_url: 'redis://:{STORE_PASSWORD}@127.0.0.1:{store_port}/0'}}\n"),
    ]
    .concat();
    std::fs::write(&file, text).unwrap();
    file
}

pub fn replica_command(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-tap"));
    cmd.arg("--config").arg(config).env("MCP_TAP_FINGERPRINT_KEY", "fleet-fingerprint-key-0123456789");
    cmd
}

/// Three replicas on ports a restart keeps, sharing a store, behind nginx.
pub struct Fleet {
    pub dir: PathBuf,
    pub store: Peer,
    pub store_port: u16,
    pub ports: Vec<u16>,
    pub configs: Vec<PathBuf>,
    pub replicas: Vec<Peer>,
    pub balancer: Peer,
}

impl Fleet {
    pub async fn start(name: &str, upstream: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("mcp-tap-{name}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let store_port = restart_port();
        let store = spawn_peer_on(store_port, redis_command(store_port, &dir), "redis-server").await.unwrap();
        let ports: Vec<u16> = (0..3).map(|_| restart_port()).collect();
        let configs: Vec<PathBuf> =
            ports.iter().enumerate().map(|(n, p)| replica_config(&dir, n, *p, upstream, store_port)).collect();
        let mut replicas = Vec::new();
        for (port, config) in ports.iter().zip(&configs) {
            replicas.push(spawn_peer_on(*port, replica_command(config), "a replica").await.unwrap());
        }
        let balancer = keepalive_balancer(&ports, &dir).await;
        Self { dir, store, store_port, ports, configs, replicas, balancer }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/mcp-actions/v1", self.balancer.port)
    }

    /// Replica `n` started again on its port.
    pub async fn restart(&mut self, n: usize) {
        self.replicas[n] =
            spawn_peer_on(self.ports[n], replica_command(&self.configs[n]), "a replica again").await.unwrap();
    }

    /// SIGTERM to replica `n`; its exit status.
    pub async fn stop(&mut self, n: usize) -> Option<i32> {
        self.sigterm(n);
        self.wait(n)
    }

    pub fn sigterm(&self, n: usize) {
        Command::new("kill").args(["-TERM", &self.replicas[n].child.id().to_string()]).status().unwrap();
    }

    /// Replica `n`'s exit status, once it exits.
    pub fn wait(&mut self, n: usize) -> Option<i32> {
        tokio::task::block_in_place(|| self.replicas[n].child.wait()).unwrap().code()
    }

    /// Stops every replica (their audit trails end whole).
    pub async fn stop_all(&mut self) {
        for n in 0..self.replicas.len() {
            self.stop(n).await;
        }
    }

    /// The refusals the audit trails account for: a line each, or a summary's count.
    pub fn audited_refusals(&self) -> u64 {
        self.audit_events()
            .iter()
            .map(|v| match v["event"].as_str() {
                Some("auth_failure") => 1,
                Some("auth_failure_summary") if v["scope"] == "source" => v["count"].as_u64().unwrap(),
                _ => 0,
            })
            .sum()
    }

    /// How many `event` lines (`burst_start`, `burst_end`) each burst has, by (scope, key),
    /// across the replicas.
    pub fn bursts(&self, event: &str) -> BTreeMap<(String, String), u32> {
        let mut out = BTreeMap::new();
        for v in self.audit_events().iter().filter(|v| v["event"] == event) {
            let key = (v["scope"].as_str().unwrap_or("").to_string(), v["key"].to_string());
            *out.entry(key).or_insert(0) += 1;
        }
        out
    }

    /// Every audit event every replica wrote.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for n in 0..self.replicas.len() {
            let text = std::fs::read_to_string(self.dir.join(format!("audit-{n}.jsonl"))).unwrap_or_default();
            out.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()));
        }
        out
    }
}

/// What the clients saw.
#[derive(Default)]
pub struct Seen {
    pub ok: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    /// When each exchange ended, and how long it took.
    pub latencies: std::sync::Mutex<Vec<(tokio::time::Instant, Duration)>>,
}

impl Seen {
    /// The 99th percentile latency of the exchanges that ended between `from` and `to`, and
    /// how many there were.
    pub fn p99(&self, from: tokio::time::Instant, to: tokio::time::Instant) -> (Duration, usize) {
        let mut window: Vec<Duration> =
            self.latencies.lock().unwrap().iter().filter(|(at, _)| *at >= from && *at < to).map(|(_, d)| *d).collect();
        window.sort();
        let n = window.len();
        (window.get((n * 99 / 100).min(n.saturating_sub(1))).copied().unwrap_or_default(), n)
    }

    pub fn answers(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.refused.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until the clients have seen `n` more answers.
    pub async fn more(&self, n: u64) {
        let since = self.answers();
        eventually(Duration::from_secs(60), "steady traffic", || async {
            let now = self.answers();
            if now >= since + n {
                Ok(())
            } else {
                Err(format!("{} answers", now - since))
            }
        })
        .await;
    }
}

/// Steady traffic through `url` from four clients until `stop`; every `every`th request has no
/// token (401), the others have one (200). Anything else is a failure.
pub async fn traffic(url: String, every: u64, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..4 {
        let (url, seen, stop) = (url.clone(), seen.clone(), stop.clone());
        clients.spawn(async move {
            let auth = format!("Bearer {FLEET_TOKEN}");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let headers: &[(&str, &str)] =
                    if (n + c).is_multiple_of(every) { &[] } else { &[("authorization", &auth)] };
                let began = tokio::time::Instant::now();
                let status = post_status(&url, headers).await;
                let ended = tokio::time::Instant::now();
                seen.latencies.lock().unwrap().push((ended, ended - began));
                let counter = match status {
                    Some(200) => &seen.ok,
                    Some(401) => &seen.refused,
                    _ => &seen.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    clients.join_all().await;
}

/// The status of a `tools/list` POST read to its end, or `None` when the exchange failed.
pub async fn post_status(url: &str, headers: &[(&str, &str)]) -> Option<u16> {
    let resp = client().request(list_request(url, headers)).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

pub fn list_request(url: &str, headers: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::from(LIST))).unwrap()
}
