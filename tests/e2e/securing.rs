//! Securing the tap: the admin port locked the way Prometheus exporters lock theirs (a web config
//! file with TLS and bcrypt basic auth) and scraped by a real Prometheus; certificates replaced
//! on disk and served without a restart; the MCP listener over TLS with the real Python SDK and
//! unbuffered SSE; no password, hash or private key in any output.

use crate::common;
use crate::proxy_behaviour::{call_request, next_data, scripted_upstream};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

use common::*;

const USER: &str = "prometheus";
const PASSWORD: &str = "scrape-s3cret-71f0";

/// A private CA that issues server certificates for `localhost` and 127.0.0.1, into `dir`.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    pub(crate) ca_file: PathBuf,
}

impl Pki {
    pub(crate) fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("mcp-tap-{name}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Its own name: OpenSSL takes a certificate whose issuer is its subject for self-signed.
        params.distinguished_name.push(rcgen::DnType::CommonName, "mcp-tap test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Pki { dir, ca, ca_file }
    }

    /// Writes a new certificate and key to `cert.pem` and `key.pem` (each by an atomic rename, as
    /// Kubernetes and cert-manager replace them); returns the certificate (DER).
    pub(crate) fn issue(&self) -> (PathBuf, PathBuf, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_file, key_file) = (self.dir.join("cert.pem"), self.dir.join("key.pem"));
        for (path, text) in [(&key_file, key.serialize_pem()), (&cert_file, cert.pem())] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        (cert_file, key_file, cert.der().to_vec())
    }

    fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&self.ca_file).unwrap();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: CertificateDer<'static> = cert.unwrap();
            roots.add(cert).unwrap();
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// The certificate a TLS listener at `addr` serves now (DER).
    async fn served(&self, addr: std::net::SocketAddr) -> Vec<u8> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.client_config()));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// An HTTPS client trusting this CA (HTTP/1.1 and HTTP/2 by ALPN).
    fn https(&self) -> Https {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.client_config())
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// A web config file with TLS from `pki` and one basic-auth user; returns its path and the hash.
fn web_config(pki: &Pki, cert: &Path, key: &Path) -> (PathBuf, String) {
    let hash = bcrypt::hash(PASSWORD, 6).unwrap();
    let file = pki.dir.join("web.yml");
    let text = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  {USER}: '{hash}'\n",
        cert.display(),
        key.display()
    );
    std::fs::write(&file, text).unwrap();
    (file, hash)
}

async fn get_status(client: &Https, url: &str, auth: Option<&str>) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::get(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = client.request(req.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status.as_u16(), parts.headers, String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).into())
}

type Https = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A config file for the tap with its admin port on `admin_port`, and where its audit goes.
fn locked_config(pki: &Pki, admin_port: u16) -> (PathBuf, PathBuf) {
    let config = pki.dir.join("mcp-tap.yaml");
    let audit = pki.dir.join("audit.jsonl");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{}\nadmin_listen: 127.0.0.1:{admin_port}\nshutdown_drain_delay: 0s\nupstream:\n  url: http://127.0.0.1:9\naudit:\n  output: {}\nchecklist:\n  state_dir: {}\n",
            free_port(),
            audit.display(),
            pki.dir.join("state").display()
        ),
    )
    .unwrap();
    (config, audit)
}

/// Waits until the admin port at `admin` answers `/healthz` over TLS.
async fn answers_over_tls(https: &Https, admin: &str) {
    eventually(Duration::from_secs(20), "the admin port answers over TLS", || async {
        let req = http::Request::get(format!("{admin}/healthz")).body(Full::new(Bytes::new())).unwrap();
        match https.request(req).await {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Kubernetes probes need no credentials; everything else does, and the headers come along;
/// plain HTTP on the TLS port gets nowhere.
async fn the_admin_port_is_locked(https: &Https, admin: &str, admin_port: u16) {
    let metrics_url = format!("{admin}/metrics");
    assert_eq!(get_status(https, &format!("{admin}/readyz"), None).await.0, 503, "open, and the upstream is down");
    let (status, headers, _) = get_status(https, &metrics_url, None).await;
    assert_eq!((status, headers["www-authenticate"].to_str().unwrap()), (401, "Basic realm=\"mcp-tap\""));
    assert_eq!(headers["x-frame-options"], "deny");
    assert_eq!(get_status(https, &metrics_url, Some(&basic(USER, PASSWORD))).await.0, 200);
    assert_eq!(get_status(https, &format!("{admin}/privileges"), Some(&basic(USER, "nope"))).await.0, 401);
    // Plain HTTP on the TLS port gets nowhere.
    let plain =
        http::Request::get(format!("http://127.0.0.1:{admin_port}/healthz")).body(Full::new(Bytes::new())).unwrap();
    assert!(client().request(plain).await.is_err(), "plain HTTP on the TLS port");
}

/// A real Prometheus: one job with the password (up), one without the right one (down, 401).
/// Returns it, to keep it running.
async fn prometheus_scrapes_with_the_password(pki: &Pki, admin_port: u16) -> Peer {
    let scrape = |job: &str, password: &str| {
        format!(
            "  - job_name: {job}\n    scheme: https\n    tls_config:\n      ca_file: {}\n      server_name: localhost\n    basic_auth:\n      username: {USER}\n      password: {password}\n    static_configs:\n      - targets: ['127.0.0.1:{admin_port}']\n",
            pki.ca_file.display()
        )
    };
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}",
        scrape("tap", PASSWORD),
        scrape("tap-wrong-password", "guess-1234")
    );
    let prom = prometheus(&prom_config).await;
    let targets_url = format!("http://127.0.0.1:{}/api/v1/targets", prom.port);
    let health = eventually(Duration::from_secs(30), "both targets scraped", || async {
        let (_, _, body) = get(&targets_url).await;
        // A Prometheus still starting answers 503 with text.
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| String::from_utf8_lossy(&body).to_string())?;
        let of = |job: &str| {
            v["data"]["activeTargets"].as_array().into_iter().flatten().find(|t| t["labels"]["job"] == job).map(|t| {
                (
                    t["health"].as_str().unwrap_or_default().to_string(),
                    t["lastError"].as_str().unwrap_or_default().to_string(),
                )
            })
        };
        match (of("tap"), of("tap-wrong-password")) {
            (Some(good), Some(bad)) if good.0 == "up" && bad.0 == "down" => Ok((good, bad)),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(health.1 .1.contains("401"), "the wrong password is refused with 401: {:?}", health.1);
    prom
}

/// `report privileges` reaches the locked port with the password, and says what it wants
/// without it.
async fn the_report_reaches_the_locked_port(pki: &Pki, admin: &str) {
    let password_file = pki.dir.join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let report = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
        .args(["report", "privileges", "--admin", admin, "--output", "json", "--admin-user", USER])
        .arg("--ca-file")
        .arg(&pki.ca_file)
        .arg("--admin-password-file")
        .arg(&password_file)
        .output()
        .await
        .unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
        .args(["report", "privileges", "--admin", admin])
        .arg("--ca-file")
        .arg(&pki.ca_file)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("wants basic auth"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_locked_admin_port_and_nothing_secret_leaks() {
    let pki = Pki::new("admin-tls");
    let (cert, key, _) = pki.issue();
    let (web, hash) = web_config(&pki, &cert, &key);
    let admin_port = free_port();
    let (config, audit) = locked_config(&pki, admin_port);
    let check = Command::new(env!("CARGO_BIN_EXE_mcp-tap")).args(["check-config"]).arg(&config).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
        .arg("--config")
        .arg(&config)
        .arg("--web.config.file")
        .arg(&web)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut { stderr }, &mut text).unwrap();
        text
    });
    let admin = format!("https://127.0.0.1:{admin_port}");
    let https = pki.https();
    let metrics_url = format!("{admin}/metrics");
    answers_over_tls(&https, &admin).await;
    the_admin_port_is_locked(&https, &admin, admin_port).await;

    let prom = prometheus_scrapes_with_the_password(&pki, admin_port).await;
    let (_, _, text) = get_status(&https, &metrics_url, Some(&basic(USER, PASSWORD))).await;
    assert!(metric(&text, "mcp_tap_admin_auth_failures_total", &[("reason", "wrong_credentials")]) >= 2.0, "{text}");
    assert!(metric(&text, "mcp_tap_admin_auth_failures_total", &[("reason", "missing")]) >= 1.0);

    the_report_reaches_the_locked_port(&pki, &admin).await;

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
    drop(prom);
    let logs = logs.join().unwrap();
    let audit = std::fs::read_to_string(&audit).unwrap_or_default();
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_body: String = key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    for (what, output) in [("logs", &logs), ("metrics", &text), ("audit", &audit)] {
        assert!(!output.contains(PASSWORD), "the password in the {what}");
        assert!(!output.contains(&hash), "the bcrypt hash in the {what}");
        assert!(!output.contains(&key_body[..40]), "the private key in the {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_certificates_are_served_without_a_restart() {
    let pki = Pki::new("rotation");
    let (cert, key, first) = pki.issue();
    let (web, _) = web_config(&pki, &cert, &key);
    let mut config = test_config("http://127.0.0.1:9");
    config.web_config_file = Some(web);
    config.tls =
        Some(mcp_tap::config::ListenerTls { cert_file: cert.clone(), key_file: key.clone(), min_version: None });
    let tap = Tap::start(config).await;
    assert_eq!(pki.served(tap.admin).await, first);
    assert_eq!(pki.served(tap.proxy).await, first);

    let (_, _, second) = pki.issue();
    assert_ne!(first, second);
    for (listener, addr) in [("admin", tap.admin), ("mcp", tap.proxy)] {
        eventually(Duration::from_secs(10), &format!("the {listener} listener serves the new certificate"), || async {
            let served = pki.served(addr).await;
            if served == second {
                Ok(())
            } else {
                Err("the old one".to_string())
            }
        })
        .await;
    }
    // A broken file keeps what is served.
    std::fs::write(&cert, "not a certificate").unwrap();
    let m = metrics_when_tls(&pki, &tap).await;
    assert_eq!(pki.served(tap.proxy).await, second, "a broken file keeps the certificate served");
    assert!(metric(&m, "mcp_tap_tls_certificate_reloads_total", &[("result", "success")]) >= 2.0, "{m}");
    tap.stop().await;
}

/// Scrapes a TLS admin port (no users configured) until a failed certificate reload shows.
async fn metrics_when_tls(pki: &Pki, tap: &Tap) -> String {
    let url = format!("https://127.0.0.1:{}/metrics", tap.admin.port());
    eventually(Duration::from_secs(10), "the failed reload counted", || async {
        // A new client each time: a new handshake, which is when the files are looked at.
        let (status, _, text) = get_status(&pki.https(), &url, Some(&basic(USER, PASSWORD))).await;
        let failed = metric(&text, "mcp_tap_tls_certificate_reloads_total", &[("result", "failure")]);
        if status == 200 && failed >= 1.0 {
            Ok(text)
        } else {
            Err(format!("{status}: {failed}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_listener_over_tls_serves_the_python_sdk_and_streams_unbuffered() {
    let pki = Pki::new("mcp-tls");
    let (cert, key, _) = pki.issue();
    let server = python_server(false).await;
    let mut config = config_for(&format!("http://127.0.0.1:{}", server.port), "py");
    config.tls = Some(mcp_tap::config::ListenerTls { cert_file: cert, key_file: key, min_version: None });
    let tap = Tap::start(config).await;
    let tls_url = format!("https://127.0.0.1:{}/mcp", tap.proxy.port());
    let ca = pki.ca_file.to_str().unwrap().to_string();
    let args = ["--mode", "legacy", "--call", r#"add={"a":2,"b":3}"#, "--ca-file", &ca];
    let through_tls = python_client(&tls_url, &args).await;
    let direct = python_client(&format!("http://127.0.0.1:{}/mcp", server.port), &args[..4]).await;
    assert_eq!(through_tls, direct, "the same results through the TLS listener as directly");
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_server_operation_duration_seconds_count", &[("mcp_method_name", "tools/call")]), 1.0);
    tap.stop().await;

    // SSE over TLS (HTTP/2 by ALPN): an event reaches the client before the next one exists.
    let (addr, senders) = scripted_upstream().await;
    let mut config = config_for(&format!("http://{addr}"), "t");
    let (cert, key, _) = pki.issue();
    config.tls = Some(mcp_tap::config::ListenerTls { cert_file: cert, key_file: key, min_version: None });
    let tap = Tap::start(config).await;
    let req = call_request(&format!("https://127.0.0.1:{}/mcp", tap.proxy.port()));
    let resp = pki.https().request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2, "HTTP/2 negotiated by ALPN");
    let events = senders.lock().await.recv().await.unwrap();
    let mut body = resp.into_body();
    let progress = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
    events.send(Ok(Bytes::from(progress))).await.unwrap();
    assert_eq!(next_data(&mut body).await, progress, "the first event arrives while the upstream waits");
    drop(events);
    tap.stop().await;
}
