//! TLS and access control of the tap's listeners. The admin listener reads the web configuration
//! file of the Prometheus exporter toolkit (`--web.config.file`: `tls_server_config`,
//! `http_server_config`, `basic_auth_users`), so operators reuse what they know from
//! node_exporter and Prometheus itself; the MCP listener takes a certificate and key (`tls`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The exporter-toolkit web configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    pub tls_server_config: Option<TlsServerConfig>,
    pub http_server_config: HttpServerConfig,
    /// User name to bcrypt hash.
    pub basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_auth_type: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

/// The exporter toolkit's client-auth types that rustls can honour.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    /// A client certificate is checked against `client_ca_file` when one is sent.
    VerifyClientCertIfGiven,
    /// A client certificate signed by `client_ca_file` is required.
    RequireAndVerifyClientCert,
    /// Asked for but never checked: refused by validation (rustls verifies what it accepts).
    RequestClientCert,
    RequireAnyClientCert,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    pub http2: bool,
    /// Response headers, from the exporter toolkit's list.
    pub headers: BTreeMap<String, String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self { http2: true, headers: BTreeMap::new() }
    }
}

/// The response headers a web config may set (the exporter toolkit's list).
pub const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

/// TLS on the MCP listener, from files re-read when they change.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub min_version: Option<TlsVersion>,
}

impl WebConfig {
    /// Reads, parses and checks a web config file: every problem, each prefixed with the path.
    pub fn load(path: &Path) -> Result<Self, Vec<String>> {
        let at = |p: String| format!("{}: {p}", path.display());
        let text =
            std::fs::read_to_string(path).map_err(|e| vec![at(format!("cannot read the web config file: {e}"))])?;
        let config: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| vec![at(e.to_string())])?
        };
        let problems: Vec<String> = config.problems().into_iter().map(at).collect();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(tls) = &self.tls_server_config {
            check_versions(tls.min_version, "tls_server_config.min_version", &mut p);
            check_versions(tls.max_version, "tls_server_config.max_version", &mut p);
            if let (Some(min), Some(max)) = (tls.min_version, tls.max_version) {
                if min > max {
                    p.push("tls_server_config.min_version is above max_version".into());
                }
            }
            match tls.client_auth_type {
                ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => p.push(format!(
                    "tls_server_config.client_auth_type {:?} accepts certificates nobody checked; use \
                     VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file",
                    tls.client_auth_type
                )),
                ClientAuth::NoClientCert => {}
                _ if tls.client_ca_file.is_none() => {
                    p.push("tls_server_config.client_ca_file is needed to verify client certificates".into());
                }
                _ => {}
            }
            if let Err(e) = crate::config::tls_files::certified_key(&tls.cert_file, &tls.key_file) {
                p.push(format!("tls_server_config: {e}"));
            }
            if let Some(ca) = &tls.client_ca_file {
                if let Err(e) = crate::config::tls_files::certificates(ca) {
                    p.push(format!("tls_server_config.client_ca_file: {e}"));
                }
            }
        }
        for (name, value) in &self.http_server_config.headers {
            if !ALLOWED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                p.push(format!("http_server_config.headers: `{name}` is not one of {ALLOWED_HEADERS:?}"));
            } else if http::HeaderValue::from_str(value).is_err() {
                p.push(format!("http_server_config.headers.{name}: not a valid header value"));
            }
        }
        for (user, hash) in &self.basic_auth_users {
            if user.contains(':') || user.is_empty() {
                p.push(format!("basic_auth_users: `{user}` is not a valid user name (empty, or with `:`)"));
            }
            // A hash bcrypt cannot read would lock its user out: say so now. (The user's name is
            // in the message; the hash never is.)
            if bcrypt::verify("", hash).is_err() {
                p.push(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
                ));
            }
        }
        p
    }
}

fn check_versions(v: Option<TlsVersion>, key: &str, p: &mut Vec<String>) {
    if matches!(v, Some(TlsVersion::TLS10 | TlsVersion::TLS11)) {
        p.push(format!("{key}: TLS 1.0 and 1.1 are not offered (TLS12 or TLS13)"));
    }
}

impl ListenerTls {
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_versions(self.min_version, "tls.min_version", &mut p);
        if let Err(e) = crate::config::tls_files::certified_key(&self.cert_file, &self.key_file) {
            p.push(format!("tls: {e}"));
        }
        p
    }
}
