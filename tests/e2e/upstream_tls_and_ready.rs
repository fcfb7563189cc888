//! An HTTPS upstream signed by a private CA (trusted through `upstream.ca_file`, refused without
//! it), and `/readyz` following the upstream's readiness endpoint.

use crate::common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

/// Starts an HTTPS MCP-ish upstream with a certificate for `localhost` issued by a fresh CA;
/// returns its port and the CA's PEM file.
async fn tls_upstream() -> (u16, std::path::PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
    let dir = std::env::temp_dir().join(format!("mcp-tap-tls-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(json_response(
                        200,
                        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}"#,
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca_file)
}

#[tokio::test]
async fn an_https_upstream_with_a_private_ca_is_trusted_through_ca_file() {
    let (port, ca_file) = tls_upstream().await;
    let mut config = config_for(&format!("https://localhost:{port}"), "tls");
    config.upstream.ca_file = Some(ca_file);
    let tap = Tap::start(config).await;
    let (status, _, body) = post_mcp(&tap.url("/mcp"), &[], CALL).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_tools_advertised", &[("mcp_route", "tls")]), 2.0);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error_and_502() {
    let (port, _) = tls_upstream().await;
    let tap = Tap::start(config_for(&format!("https://localhost:{port}"), "tls")).await;
    let (status, _, body) = post_mcp(&tap.url("/mcp"), &[], CALL).await;
    assert_eq!(status, 502);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("TLS handshake with the upstream"), "{v}");
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_upstream_errors_total", &[("kind", "tls")]), 1.0);
}

#[tokio::test]
async fn readyz_follows_the_upstream_readiness_endpoint() {
    let readiness = Arc::new(AtomicU16::new(200));
    let r = readiness.clone();
    let addr = upstream(move |req: http::Request<hyper::body::Incoming>| {
        let r = r.clone();
        async move {
            assert_eq!(req.uri().path(), "/.backstage/health/v1/readiness");
            json_response(r.load(Ordering::SeqCst), r#"{"status":"ok"}"#)
        }
    })
    .await;
    let tap = Tap::start(config_for(&format!("http://{addr}"), "t")).await;
    let readyz = format!("http://{}/readyz", tap.admin);
    assert_eq!(get(&readyz).await.0, 200);
    readiness.store(503, Ordering::SeqCst);
    let (status, _, body) = get(&readyz).await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("answered 503"), "{}", String::from_utf8_lossy(&body));
    assert_eq!(get(&format!("http://{}/healthz", tap.admin)).await.0, 200);

    let down = Tap::start(config_for(&format!("http://127.0.0.1:{}", free_port()), "t")).await;
    let (status, _, body) = get(&format!("http://{}/readyz", down.admin)).await;
    assert_eq!(status, 503);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(text, "not ready: the upstream is unreachable\n");
}

#[tokio::test]
async fn a_get_to_a_silent_upstream_times_out_like_a_post() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut config = config_for(&format!("http://{addr}"), "t");
    config.upstream.response_timeout = std::time::Duration::from_millis(300);
    let tap = Tap::start(config).await;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), get(&tap.url("/api/catalog/entities"))).await;
    assert_eq!(answer.expect("an answer, not a hang").0, 504);
}
