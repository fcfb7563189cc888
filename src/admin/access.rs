//! Who may use the admin listener, the way Prometheus exporters decide it: the exporter-toolkit
//! web configuration file (`--web.config.file`) gives TLS, basic-auth users with bcrypt hashes,
//! and response headers. The file is looked at again at most once a second, on a new
//! connection, and re-read when it changed; a file that fails to load keeps the settings in
//! force. Paths in `admin_open_paths` (the Kubernetes probes) need no credentials.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use base64::Engine;
use http::{HeaderName, HeaderValue};
use lru::LruCache;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, WebConfig};
use crate::metrics::Metrics;
use crate::tls::{ServerTls, ALPN_H2_HTTP1, ALPN_HTTP1};

const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Credentials verified lately, so a scrape every 15 s does not pay for bcrypt each time (as the
/// exporter toolkit does); keyed by a hash of user, password and the user's bcrypt hash.
const VERIFIED_CACHE: usize = 64;

/// The web config in force.
pub(crate) struct Loaded {
    users: HashMap<String, String>,
    /// Verified when the user is unknown, so unknown users and wrong passwords take as long.
    dummy: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub acceptor: Option<TlsAcceptor>,
    pub http2: bool,
}

/// Why a request was refused (the `reason` of `mcp_tap_admin_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Missing,
    WrongCredentials,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::WrongCredentials => "wrong_credentials",
        }
    }
}

pub(crate) struct Access {
    file: Option<PathBuf>,
    open_paths: Vec<String>,
    metrics: Arc<Metrics>,
    loaded: ArcSwap<Loaded>,
    checked: Mutex<(Instant, Option<(SystemTime, u64)>)>,
    verified: Mutex<LruCache<[u8; 32], ()>>,
}

fn file_stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

/// The cost of a bcrypt hash (`$2b$10$…` → 10).
fn cost(hash: &str) -> u32 {
    hash.get(4..6).and_then(|c| c.parse().ok()).unwrap_or(bcrypt::DEFAULT_COST)
}

fn load(file: Option<&PathBuf>, metrics: &Arc<Metrics>) -> Result<Loaded, String> {
    let web = match file {
        Some(path) => WebConfig::load(path).map_err(|p| p.join("; "))?,
        None => WebConfig::default(),
    };
    let acceptor = match &web.tls_server_config {
        Some(t) => {
            let tls = ServerTls {
                cert_file: t.cert_file.clone(),
                key_file: t.key_file.clone(),
                min_version: t.min_version,
                client_auth: t.client_auth_type,
                client_ca_file: t.client_ca_file.clone(),
                listener: crate::metrics::Listener::Admin,
            };
            let alpn: &[&[u8]] = if web.http_server_config.http2 { &ALPN_H2_HTTP1 } else { &ALPN_HTTP1 };
            Some(TlsAcceptor::from(tls.server_config(metrics.clone(), alpn)?))
        }
        None => None,
    };
    let max_cost = web.basic_auth_users.values().map(|h| cost(h)).max().unwrap_or(bcrypt::DEFAULT_COST);
    let dummy = if web.basic_auth_users.is_empty() {
        String::new()
    } else {
        bcrypt::hash("mcp-tap: no such user", max_cost).map_err(|e| e.to_string())?
    };
    let headers = web
        .http_server_config
        .headers
        .iter()
        .filter_map(|(k, v)| Some((HeaderName::try_from(k.as_str()).ok()?, HeaderValue::try_from(v.as_str()).ok()?)))
        .collect();
    Ok(Loaded {
        users: web.basic_auth_users.into_iter().collect(),
        dummy,
        headers,
        acceptor,
        http2: web.http_server_config.http2,
    })
}

impl Access {
    pub(crate) fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let file = config.web_config_file.clone();
        let loaded = load(file.as_ref(), &metrics).map_err(|e| anyhow::anyhow!("web_config_file: {e}"))?;
        let stamp = file.as_ref().and_then(file_stamp);
        Ok(Self {
            file,
            open_paths: config.admin_open_paths.clone(),
            metrics,
            loaded: ArcSwap::from_pointee(loaded),
            checked: Mutex::new((Instant::now(), stamp)),
            verified: Mutex::new(LruCache::new(NonZeroUsize::new(VERIFIED_CACHE).expect("non-zero"))),
        })
    }

    /// The settings in force, after looking at the file again if a second has passed.
    pub(crate) fn current(&self) -> Arc<Loaded> {
        if let Some(file) = &self.file {
            let mut checked = self.checked.lock().expect("web config lock");
            if checked.0.elapsed() >= CHECK_INTERVAL {
                checked.0 = Instant::now();
                let stamp = file_stamp(file);
                if stamp != checked.1 {
                    checked.1 = stamp;
                    match load(Some(file), &self.metrics) {
                        Ok(loaded) => {
                            self.loaded.store(Arc::new(loaded));
                            self.verified.lock().expect("verified lock").clear();
                            tracing::info!(file = %file.display(), "web config reloaded");
                        }
                        Err(e) => tracing::warn!("web config not reloaded, the settings in force stay: {e}"),
                    }
                }
            }
        }
        self.loaded.load_full()
    }

    /// Whether a request for `path` with `authorization` may be answered: counted and logged
    /// when not. bcrypt runs off the async threads.
    pub(crate) async fn check(
        &self,
        loaded: &Arc<Loaded>,
        path: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<(), Refusal> {
        if loaded.users.is_empty() || self.open_paths.iter().any(|p| p == path) {
            return Ok(());
        }
        let result = self.verify(loaded, authorization).await;
        if let Err(refusal) = result {
            self.metrics.record_admin_auth_failure(refusal.as_str());
            tracing::debug!(path, reason = refusal.as_str(), "admin request refused: basic auth");
        }
        result
    }

    async fn verify(&self, loaded: &Arc<Loaded>, authorization: Option<&HeaderValue>) -> Result<(), Refusal> {
        let (user, password) = basic_credentials(authorization).ok_or(Refusal::Missing)?;
        let hash = loaded.users.get(&user);
        let key: [u8; 32] = {
            let mut h = Sha256::new();
            for part in [user.as_bytes(), password.as_bytes(), hash.map_or(&b""[..], |h| h.as_bytes())] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
            h.finalize().into()
        };
        if hash.is_some() && self.verified.lock().expect("verified lock").get(&key).is_some() {
            return Ok(());
        }
        let known = hash.is_some();
        let hash = hash.unwrap_or(&loaded.dummy).clone();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok && known {
            self.verified.lock().expect("verified lock").put(key, ());
            Ok(())
        } else {
            Err(Refusal::WrongCredentials)
        }
    }
}

/// User and password of a `Basic` authorization header.
fn basic_credentials(authorization: Option<&HeaderValue>) -> Option<(String, String)> {
    let value = authorization?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    fn access(users: &[(&str, &str)]) -> (Access, Arc<Loaded>) {
        let dir = std::env::temp_dir().join(format!("mcp-tap-access-{}-{}", std::process::id(), users.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("web.yml");
        let mut text = String::from("basic_auth_users:\n");
        for (user, password) in users {
            text.push_str(&format!("  {user}: '{}'\n", bcrypt::hash(password, 4).unwrap()));
        }
        std::fs::write(&file, text).unwrap();
        let config = Config { web_config_file: Some(file), ..Config::default() };
        let access = Access::new(&config, Arc::new(Metrics::new(vec![1.0]))).unwrap();
        let loaded = access.current();
        (access, loaded)
    }

    #[tokio::test]
    async fn users_need_their_password_and_probes_need_none() {
        let (access, loaded) = access(&[("prometheus", "s3cret-scrape")]);
        let ok = header("prometheus", "s3cret-scrape");
        assert_eq!(access.check(&loaded, "/metrics", Some(&ok)).await, Ok(()));
        assert_eq!(access.check(&loaded, "/metrics", Some(&ok)).await, Ok(()), "again, from the cache");
        let wrong = header("prometheus", "guess");
        assert_eq!(access.check(&loaded, "/metrics", Some(&wrong)).await, Err(Refusal::WrongCredentials));
        let stranger = header("nobody", "s3cret-scrape");
        assert_eq!(access.check(&loaded, "/privileges", Some(&stranger)).await, Err(Refusal::WrongCredentials));
        assert_eq!(access.check(&loaded, "/", None).await, Err(Refusal::Missing));
        let bearer = HeaderValue::from_static("Bearer abc");
        assert_eq!(access.check(&loaded, "/", Some(&bearer)).await, Err(Refusal::Missing));
        assert_eq!(access.check(&loaded, "/healthz", None).await, Ok(()), "Kubernetes probes");
        assert_eq!(access.check(&loaded, "/readyz", None).await, Ok(()));
        let text = access.metrics.render();
        assert!(text.contains("mcp_tap_admin_auth_failures_total{reason=\"wrong_credentials\"} 2"), "{text}");
        assert!(text.contains("mcp_tap_admin_auth_failures_total{reason=\"missing\"} 2"), "{text}");
    }

    #[test]
    fn the_cost_of_a_hash_is_read_from_it() {
        assert_eq!(cost("$2y$12$abcdefghijklmnopqrstuv"), 12);
        assert_eq!(cost("garbage"), bcrypt::DEFAULT_COST);
    }
}
