//! Real peers as child processes killed when dropped: the Python MCP SDK, server-everything, a
//! Backstage backend, Prometheus and Alertmanager. Each is installed by `scripts/test.sh`; a
//! missing one fails its test with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;

use super::{eventually, get, request};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with the official `mcp` SDK, installed by `scripts/test.sh`.
pub fn python() -> PathBuf {
    let p = std::env::var_os("MCP_TAP_TEST_PYTHON")
        .map_or_else(|| repo().join("target/peers-venv/bin/python"), PathBuf::from);
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
    /// Kills the peer's whole process group: nginx's workers and the processes a peer started
    /// would otherwise outlive it (orphaned nginx workers piled up over a run).
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A free port outside the kernel's ephemeral range (32768–60999 on Linux), for a peer that is
/// stopped and started again on the same port: `free_port` (port 0) never hands it to another
/// test while it is down. Each call of a run takes another port.
pub fn restart_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 400) as u16 * 25;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (base - 20_000 + n) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts a peer on a free port and waits until it accepts connections. A peer that exits before
/// listening (another process took the port between the pick and the bind) is started again on
/// another port, up to three times.
pub async fn spawn_peer(what: &str, make: impl Fn(u16) -> Command) -> Peer {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        match spawn_peer_on(port, make(port), what).await {
            Ok(peer) => return peer,
            Err(e) => last = e,
        }
    }
    panic!("{last}");
}

/// Starts a peer that listens on `port`; `Err` with its stderr when it exits before listening.
pub async fn spawn_peer_on(port: u16, mut cmd: Command, what: &str) -> Result<Peer, String> {
    // A process group of its own, so that dropping the peer ends everything it started.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let peer = std::sync::Mutex::new(Some(Peer { child, port }));
    // Generous: on a loaded 2-core machine a Node backend can take a while to start.
    let started = eventually(Duration::from_secs(60), &format!("{what} listening on port {port}"), || async {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(Ok(()));
        }
        let mut guard = peer.lock().unwrap();
        let p = guard.as_mut().unwrap();
        match p.child.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                use std::io::Read;
                let _ = p.child.stderr.take().unwrap().read_to_string(&mut err);
                Ok(Err(format!("{what} exited with {status} before listening:\n{err}")))
            }
            _ => Err("not listening yet".to_string()),
        }
    })
    .await;
    let peer = peer.into_inner().unwrap().unwrap();
    started.map(|()| peer)
}

pub async fn python_server(stateless_json: bool) -> Peer {
    python_server_with(if stateless_json { &["--stateless", "--json"] } else { &[] }).await
}

/// The Python MCP server with more of `py_server.py`'s options (`--elicitation`: a tool that
/// asks the client for input before it runs).
pub async fn python_server_with(args: &[&str]) -> Peer {
    spawn_peer("the Python MCP server", |port| {
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/peers/py_server.py")).arg("--port").arg(port.to_string()).args(args);
        cmd
    })
    .await
}

pub async fn everything_server() -> Peer {
    spawn_peer("server-everything", |port| {
        let mut cmd = Command::new("node");
        cmd.arg(server_everything()).arg("streamableHttp").env("PORT", port.to_string());
        cmd
    })
    .await
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

/// The MCP Inspector's CLI (`@modelcontextprotocol/inspector-cli`), installed by `scripts/test.sh`.
pub fn inspector_cli_path() -> PathBuf {
    let p = repo().join("tests/peers/node_modules/@modelcontextprotocol/inspector-cli/build/index.js");
    assert!(
        p.exists(),
        "the MCP Inspector CLI is not installed at {}: run scripts/test.sh, or `npm ci --prefix tests/peers`",
        p.display()
    );
    p
}

/// Runs the MCP Inspector's CLI against `url` over streamable HTTP with `args` (`--method …`);
/// returns the JSON it printed.
pub async fn inspector_cli(url: &str, token: &str, args: &[&str]) -> serde_json::Value {
    let cli = inspector_cli_path();
    // It looks for its own package.json relative to the working directory.
    let out = tokio::process::Command::new("node")
        .current_dir(cli.parent().unwrap())
        .arg(&cli)
        .arg(url)
        .args(["--transport", "http", "--header", &format!("Authorization: Bearer {token}")])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "the Inspector CLI failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad Inspector output {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Static tokens the test Backstage accepts (see tests/backstage/app-config.yaml). They are test
/// secrets: the leak tests search every output of the tap for them.
pub const TOKEN_FULL: &str = "tap-test-full-7c1e9a52d4";
pub const TOKEN_CATALOG_ONLY: &str = "tap-test-catalog-3f8b61e0aa";
pub const TOKEN_MCP_ONLY: &str = "tap-test-mcponly-95d2c7b14e";
/// A second full-access token, for a second client product (one token per client class).
pub const TOKEN_INSPECTOR: &str = "tap-test-inspector-6b0c3d9e71";

/// A real Backstage backend (catalog + MCP Actions), installed by `scripts/test.sh` into
/// tests/backstage/node_modules. Ready when its readiness endpoint answers 200.
pub async fn backstage() -> Peer {
    let peer = spawn_peer("the test Backstage", |port| backstage_command(port, TOKEN_FULL)).await;
    backstage_ready(peer, TOKEN_FULL).await
}

/// A test Backstage on `port` whose full-access token is `full_token` (a rotation restarts it
/// on the same port with another token).
pub async fn backstage_on(port: u16, full_token: &str) -> Peer {
    let peer = spawn_peer_on(port, backstage_command(port, full_token), "the test Backstage").await;
    backstage_ready(peer.unwrap_or_else(|e| panic!("{e}")), full_token).await
}

fn backstage_command(port: u16, full_token: &str) -> Command {
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
        .env("MCP_TAP_TEST_INSPECTOR_TOKEN", TOKEN_INSPECTOR)
        .env("NODE_ENV", "development");
    cmd
}

/// Waits until Backstage is ready and its catalog has ingested tests/backstage/entities.yaml.
pub async fn backstage_ready(peer: Peer, full_token: &str) -> Peer {
    let port = peer.port;
    let ready = format!("http://127.0.0.1:{port}/.backstage/health/v1/readiness");
    let entity = format!("http://127.0.0.1:{port}/api/catalog/entities/by-name/component/default/payments-api");
    let auth = format!("Bearer {full_token}");
    eventually(Duration::from_secs(90), "the test Backstage ready with its catalog", || async {
        let ready = get(&ready).await.0;
        let entity = request("GET", &entity, &[("authorization", &auth)], Bytes::new()).await.0;
        if ready == 200 && entity == 200 {
            Ok(())
        } else {
            Err(format!("readiness {ready}, catalog entity {entity}"))
        }
    })
    .await;
    peer
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
    spawn_peer("Alertmanager", |port| {
        let dir = std::env::temp_dir().join(format!("mcp-tap-am-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("am.yml"), config).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        cmd
    })
    .await
}

/// A real Prometheus (Debian `prometheus`) with the given config, in a fresh data directory.
pub async fn prometheus(config: &str) -> Peer {
    let bin = PathBuf::from("/usr/bin/prometheus");
    assert!(bin.exists(), "Prometheus is not installed: run scripts/test.sh, or `apt-get install prometheus`");
    let peer = spawn_peer("Prometheus", |port| {
        let dir = std::env::temp_dir().join(format!("mcp-tap-prom-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        cmd
    })
    .await;
    // Listening is not ready: until then its API answers 503 with text.
    let ready = format!("http://127.0.0.1:{}/-/ready", peer.port);
    eventually(Duration::from_secs(60), "Prometheus ready", || async {
        match get(&ready).await.0 {
            200 => Ok(()),
            status => Err(status.to_string()),
        }
    })
    .await;
    peer
}

/// The password of the tests' Redis stores (`redis_server`).
pub const STORE_PASSWORD: &str = "store-pw-5e1d9c";

/// A real `redis-server` (Debian) on `port`, with a password, no persistence.
pub fn redis_command(port: u16, dir: &Path) -> Command {
    let bin = PathBuf::from("/usr/bin/redis-server");
    assert!(bin.exists(), "redis-server is missing: run scripts/test.sh, or `apt-get install redis-server`");
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--requirepass", STORE_PASSWORD, "--dir"])
        .arg(dir);
    cmd
}

/// A real `redis-server` on a free port (see `redis_command`).
pub async fn redis_server(dir: &Path) -> Peer {
    spawn_peer("redis-server", |port| redis_command(port, dir)).await
}

/// A real `rsyslogd` (Debian) in the foreground, receiving RFC 5424 over UDP (`udp`), TCP with
/// octet counting (`port`, the one it is ready on) and TLS (`tls`, GnuTLS with `cert`/`key`), and
/// writing each message to `dir/received.log` as `input|pri|msgid|structured-data|msg`.
pub fn rsyslog_command(port: u16, udp: u16, tls: u16, dir: &Path, cert: &Path, key: &Path) -> Command {
    let bin = PathBuf::from("/usr/sbin/rsyslogd");
    assert!(bin.exists(), "rsyslogd is missing: run scripts/test.sh, or `apt-get install rsyslog rsyslog-gnutls`");
    let conf = dir.join(format!("rsyslog-{port}.conf"));
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{d}" DefaultNetstreamDriverCertFile="{}" DefaultNetstreamDriverKeyFile="{}" DefaultNetstreamDriverCAFile="{}")
module(load="imudp")
module(load="imptcp")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imptcp" address="127.0.0.1" port="{port}")
input(type="imtcp" address="127.0.0.1" port="{tls}")
template(name="siem" type="string" string="%inputname%|%pri%|%msgid%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{d}/received.log" template="siem")
"#,
            cert.display(),
            key.display(),
            cert.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-n").arg("-f").arg(&conf).arg("-i").arg(dir.join(format!("rsyslog-{port}.pid")));
    cmd
}
