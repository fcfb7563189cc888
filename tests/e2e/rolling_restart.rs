//! A rolling restart as platform teams run one: three replicas of the real binary sharing a real
//! redis-server, behind a real nginx as an ingress runs it (round robin, keep-alive upstream
//! connections, no replica ever marked down), and steady traffic, with and without a token.
//! Each replica gets SIGTERM and is started again, one after another: no request fails, and every
//! refusal the clients saw is in the audit trail, in a line of its own or in a summary.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const TOKEN: &str = "rolling-restart-token-0a1b2c";

/// nginx round robin over `backends` with a keep-alive pool to them, as ingress-nginx proxies.
async fn keepalive_balancer(backends: &[u16], dir: &Path) -> Peer {
    let bin = PathBuf::from("/usr/sbin/nginx");
    assert!(bin.exists(), "nginx is missing: run scripts/test.sh, or `apt-get install nginx-light`");
    // No replica is ever marked down: a refused connect is retried on the next one each time.
    let servers: String = backends.iter().map(|p| format!("server 127.0.0.1:{p} max_fails=0; ")).collect();
    spawn_peer("nginx (keep-alive round robin)", |port| {
        let conf = dir.join(format!("nginx-{port}.conf"));
        let d = dir.display();
        let text = [
            format!("worker_processes 1;\ndaemon off;\nerror_log {d}/nginx-error.log;\npid {d}/nginx-{port}.pid;\n"),
            format!("events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n"),
            format!("  proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi;\n"),
            format!("  scgi_temp_path {d}/scgi;\n  upstream taps {{ {servers} keepalive 16; }}\n"),
            format!("  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://taps;"),
            " proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; } }\n}\n".to_string(),
        ]
        .concat();
        std::fs::write(&conf, text).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("-p").arg(dir).arg("-c").arg(&conf);
        cmd
    })
    .await
}

/// An upstream that answers `tools/list` with a token and refuses it without one, as
/// Backstage does.
async fn backstage_like() -> std::net::SocketAddr {
    upstream(|req: http::Request<hyper::body::Incoming>| async move {
        if req.headers().contains_key("authorization") {
            json_response(200, r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#)
        } else {
            json_response(401, r#"{"error":{"name":"AuthenticationError","message":"Missing credentials"}}"#)
        }
    })
    .await
}

/// A replica's config: cluster mode on the store at `store_port`, a one-second drain.
fn replica_config(dir: &Path, n: usize, port: u16, upstream: std::net::SocketAddr, store_port: u16) -> PathBuf {
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

fn replica_command(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-tap"));
    cmd.arg("--config").arg(config).env("MCP_TAP_FINGERPRINT_KEY", "rolling-restart-key-0123456789");
    cmd
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// Steady traffic through `url` from four clients until `stop`: half with a token (200), half
/// without (401). Anything else is a failure.
async fn traffic(url: String, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..4 {
        let (url, seen, stop) = (url.clone(), seen.clone(), stop.clone());
        clients.spawn(async move {
            let auth = format!("Bearer {TOKEN}");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let headers: &[(&str, &str)] =
                    if (n + c).is_multiple_of(2) { &[("authorization", &auth)] } else { &[] };
                let status = post_mcp_status(&url, headers, LIST).await;
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

/// Waits until the clients have seen `n` more answers than `since`.
async fn more_traffic(seen: &Seen, n: u64) {
    let total = || seen.ok.load(Ordering::Relaxed) + seen.refused.load(Ordering::Relaxed);
    let since = total();
    eventually(Duration::from_secs(30), "steady traffic", || async {
        if total() >= since + n {
            Ok(())
        } else {
            Err(format!("{} answers", total() - since))
        }
    })
    .await;
}

/// The status of a POST, or `None` when the exchange failed.
async fn post_mcp_status(url: &str, headers: &[(&str, &str)], body: &str) -> Option<u16> {
    let mut req = http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(http_body_util::Full::new(bytes::Bytes::from(body.to_string()))).unwrap();
    use http_body_util::BodyExt;
    let resp = client().request(req).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

/// The refusals the audit trails of `dir` account for: a line each, or a summary's count.
fn audited_refusals(dir: &Path, replicas: usize) -> u64 {
    let mut total = 0;
    for n in 0..replicas {
        let text = std::fs::read_to_string(dir.join(format!("audit-{n}.jsonl"))).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["event"] == "auth_failure" {
                total += 1;
            } else if v["event"] == "auth_failure_summary" && v["scope"] == "source" {
                total += v["count"].as_u64().unwrap();
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_nginx_fails_no_request_and_loses_no_refusal() {
    let dir = std::env::temp_dir().join(format!("mcp-tap-rolling-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let store_port = free_port();
    let _store = spawn_peer_on(store_port, redis_command(store_port, &dir), "redis-server").await.unwrap();
    let upstream = backstage_like().await;
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let configs: Vec<PathBuf> =
        ports.iter().enumerate().map(|(n, p)| replica_config(&dir, n, *p, upstream, store_port)).collect();
    let mut replicas = Vec::new();
    for (port, config) in ports.iter().zip(&configs) {
        replicas.push(spawn_peer_on(*port, replica_command(config), "a replica").await.unwrap());
    }
    let lb = keepalive_balancer(&ports, &dir).await;
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let load =
        tokio::spawn(traffic(format!("http://127.0.0.1:{}/api/mcp-actions/v1", lb.port), seen.clone(), stop.clone()));

    for (n, replica) in replicas.iter_mut().enumerate() {
        more_traffic(&seen, 500).await;
        Command::new("kill").args(["-TERM", &replica.child.id().to_string()]).status().unwrap();
        let status = tokio::task::block_in_place(|| replica.child.wait()).unwrap();
        assert_eq!(status.code(), Some(0), "replica {n} exits 0");
        *replica = spawn_peer_on(ports[n], replica_command(&configs[n]), "a replica again").await.unwrap();
    }
    more_traffic(&seen, 500).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    for replica in &mut replicas {
        Command::new("kill").args(["-TERM", &replica.child.id().to_string()]).status().unwrap();
        tokio::task::block_in_place(|| replica.child.wait()).unwrap();
    }
    let (ok, refused, failed) =
        (seen.ok.load(Ordering::Relaxed), seen.refused.load(Ordering::Relaxed), seen.failed.load(Ordering::Relaxed));
    println!("rolling restart of 3 replicas: {ok} answered, {refused} refused, {failed} failed");
    let nginx_errors = std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default();
    assert_eq!(failed, 0, "no request fails in a rolling restart; nginx logged:\n{nginx_errors}");
    assert!(ok > 100 && refused > 100, "steady traffic throughout: {ok} answered, {refused} refused");
    assert_eq!(audited_refusals(&dir, 3), refused, "every refusal the clients saw is in the audit trail");
    drop(lb);
}
