//! TLS for the tap's own listeners: a rustls server configuration whose certificate and key are
//! re-read from their files when they change (a cert-manager renewal, a rotated Kubernetes
//! Secret), checked at most once a second on a new handshake. A file that fails to load keeps
//! the certificate served so far; both outcomes are counted and logged.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::time::Instant;

use crate::config::tls_files;
use crate::config::{ClientAuth, TlsVersion};
use crate::metrics::{Listener, Metrics};

/// How often, at most, the files are looked at again.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What a listener serves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub min_version: Option<TlsVersion>,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    /// `admin` or `mcp`, for the metrics and logs.
    pub listener: Listener,
}

/// Modification times and sizes of the two files: a change in either is a new certificate.
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(files: &[&PathBuf; 2]) -> Stamp {
    files.map(|f| std::fs::metadata(f).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())))
}

struct Current {
    checked: Instant,
    stamp: Stamp,
    key: Arc<CertifiedKey>,
}

struct Reloading {
    tls: ServerTls,
    metrics: Arc<Metrics>,
    current: Mutex<Current>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading").field("cert_file", &self.tls.cert_file).finish_non_exhaustive()
    }
}

impl Reloading {
    fn key(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().expect("tls lock");
        if current.checked.elapsed() < CHECK_INTERVAL {
            return current.key.clone();
        }
        current.checked = Instant::now();
        let files = [&self.tls.cert_file, &self.tls.key_file];
        let now = stamp(&files);
        if now != current.stamp {
            current.stamp = now;
            match tls_files::certified_key(&self.tls.cert_file, &self.tls.key_file) {
                Ok(key) => {
                    current.key = key;
                    self.metrics.record_certificate_reload(self.tls.listener, true);
                    tracing::info!(listener = self.tls.listener.as_str(), cert = %self.tls.cert_file.display(), "TLS certificate reloaded");
                }
                Err(e) => {
                    self.metrics.record_certificate_reload(self.tls.listener, false);
                    tracing::warn!(
                        listener = self.tls.listener.as_str(),
                        "TLS certificate not reloaded, the one served so far stays: {e}"
                    );
                }
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

impl ServerTls {
    /// The rustls configuration, offering `alpn` (for example h2 then http/1.1).
    pub(crate) fn server_config(&self, metrics: Arc<Metrics>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, String> {
        let key = tls_files::certified_key(&self.cert_file, &self.key_file)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match self.min_version {
            Some(TlsVersion::TLS13) => &[&rustls::version::TLS13],
            _ => rustls::DEFAULT_VERSIONS,
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS versions: {e}"))?;
        let builder = match (self.client_auth, &self.client_ca_file) {
            (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, Some(ca)) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in tls_files::certificates(ca)? {
                    roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.client_auth == ClientAuth::VerifyClientCertIfGiven {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("client CA: {e}"))?)
            }
            _ => builder.with_no_client_auth(),
        };
        let files = [&self.cert_file, &self.key_file];
        let current = Mutex::new(Current { checked: Instant::now(), stamp: stamp(&files), key });
        let mut config = builder.with_cert_resolver(Arc::new(Reloading { tls: self.clone(), metrics, current }));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// ALPN for a listener serving HTTP/2 and HTTP/1.1.
pub(crate) const ALPN_H2_HTTP1: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// ALPN for a listener serving HTTP/1.1 only.
pub(crate) const ALPN_HTTP1: [&[u8]; 1] = [b"http/1.1"];

/// Completes a TLS handshake on `listener` within `deadline`; a failed or late one is counted
/// (`mcp_tap_tls_handshake_failures_total`), logged at debug, and `None`.
pub(crate) async fn accept(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    deadline: Duration,
    listener: Listener,
    peer: std::net::SocketAddr,
    metrics: &Metrics,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            metrics.record_handshake_failure(listener);
            tracing::debug!(error = %e, %peer, listener = listener.as_str(), "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.record_handshake_failure(listener);
            tracing::debug!(%peer, listener = listener.as_str(), ?deadline, "TLS handshake not finished in time");
            None
        }
    }
}
