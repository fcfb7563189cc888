//! Config of the OAuth journey of MCP clients (Backstage's auth backend): whether the tap reads
//! it, where the auth backend is mounted, the opt-in `WWW-Authenticate` header, and the bounds of
//! what it remembers.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct OAuth {
    /// Read the journey's requests and answers on the side (discovery, registration, consent,
    /// token, revocation). They are relayed unchanged either way.
    pub observe: bool,
    /// Where the upstream mounts Backstage's auth backend.
    pub auth_path: String,
    /// What to add to a 401 on an MCP route that carries no `WWW-Authenticate`.
    pub www_authenticate: WwwAuthenticate,
    /// The origin clients dial (`https://mcp.example.com`), when the tap cannot tell it from the
    /// request (`Host`, `X-Forwarded-Proto`, `X-Forwarded-Host`).
    pub public_url: Option<String>,
    /// OAuth request and answer bodies read at most; a larger one is relayed unread and counted.
    pub max_body_bytes: usize,
    /// OAuth clients (by `client_id`) remembered with their names; beyond it the least recent is
    /// forgotten.
    pub max_clients: usize,
    /// Issued tokens remembered (keyed fingerprints: the access token's client, the refresh
    /// token's family); beyond it the least recent is forgotten.
    pub max_tokens: usize,
}

impl Default for OAuth {
    fn default() -> Self {
        Self {
            observe: true,
            auth_path: "/api/auth".into(),
            www_authenticate: WwwAuthenticate::Off,
            public_url: None,
            max_body_bytes: 16 * 1024,
            max_clients: 1_000,
            max_tokens: 20_000,
        }
    }
}

/// `oauth.www_authenticate`: Backstage answers a request without a token 401 with no
/// `WWW-Authenticate`, so clients must guess where the resource metadata is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WwwAuthenticate {
    /// Headers stay exactly as the upstream sent them.
    #[default]
    Off,
    /// `Bearer resource_metadata="<public origin>/.well-known/oauth-protected-resource<route>"`.
    ResourceMetadata,
}

impl OAuth {
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if !self.auth_path.starts_with('/') || self.auth_path.ends_with('/') {
            p.push("oauth.auth_path must start with `/` and not end with one".into());
        }
        if let Some(url) = &self.public_url {
            let origin = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
            if origin.is_none_or(|rest| rest.is_empty() || rest.contains('/')) {
                p.push("oauth.public_url must be an origin such as `https://mcp.example.com` (no path)".into());
            }
        }
        if self.max_body_bytes == 0 || self.max_clients == 0 || self.max_tokens == 0 {
            p.push("oauth.max_body_bytes, oauth.max_clients and oauth.max_tokens must be greater than zero".into());
        }
    }
}
