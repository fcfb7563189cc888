//! The OAuth kind of the test Backstage (tests/backstage/app-config.oauth.yaml: dynamic client
//! registration, client ID metadata documents from a local HTTPS server with a test CA, rotating
//! refresh tokens), the Python SDK's OAuth client, and a hand-scripted client for the failure
//! paths. Every secret a client handles is collected so tests can search the tap's outputs.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use bytes::Bytes;
use sha2::Digest as _;

use super::{peers::spawn_peer, python, repo, request, Peer, TOKEN_CATALOG_ONLY, TOKEN_FULL, TOKEN_INSPECTOR};

/// A client ID metadata document served over HTTPS (tests/peers/cimd_document.py) with `cert`;
/// returns it and the document's URL (its client_id).
pub async fn cimd_server(cert: &Path, key: &Path, name: &str) -> (Peer, String) {
    let peer = spawn_peer("the client ID metadata document server", |port| {
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/peers/cimd_document.py")).arg("--port").arg(port.to_string());
        cmd.arg("--cert").arg(cert).arg("--key").arg(key).args(["--name", name]);
        cmd
    })
    .await;
    let url = format!("https://localhost:{}/oauth/client.json", peer.port);
    (peer, url)
}

/// The OAuth Backstage on `port`, whose `backend.baseUrl` is `public` (the origin clients dial),
/// trusting `ca` for client ID metadata documents and allowing the one at `cimd_url`.
pub async fn oauth_backstage(port: u16, public: &str, ca: &Path, cimd_url: &str) -> Peer {
    let dir = repo().join("tests/backstage");
    let overrides = std::env::temp_dir().join(format!("mcp-tap-backstage-oauth-{port}.yaml"));
    let listen = format!("backend:\n  baseUrl: {public}\n  listen:\n    host: 127.0.0.1\n    port: {port}\n");
    let cimd = format!("auth:\n  clientIdMetadataDocuments:\n    allowedClientIdPatterns: ['{cimd_url}']\n");
    std::fs::write(&overrides, format!("{listen}{cimd}")).unwrap();
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg("index.js")
        .args(["--config", "app-config.yaml", "--config", "app-config.oauth.yaml", "--config"])
        .arg(&overrides)
        .env("MCP_TAP_TEST_TOKEN", TOKEN_FULL)
        .env("MCP_TAP_TEST_CATALOG_TOKEN", TOKEN_CATALOG_ONLY)
        .env("MCP_TAP_TEST_MCP_ONLY_TOKEN", super::TOKEN_MCP_ONLY)
        .env("MCP_TAP_TEST_INSPECTOR_TOKEN", TOKEN_INSPECTOR)
        .env("NODE_EXTRA_CA_CERTS", ca)
        .env("NODE_ENV", "development");
    let peer = super::spawn_peer_on(port, cmd, "the OAuth test Backstage").await.unwrap_or_else(|e| panic!("{e}"));
    super::peers::backstage_ready(peer, TOKEN_FULL).await
}

/// The Python SDK's OAuth client (tests/peers/oauth_client.py) through `origin`: signs in (DCR,
/// or the metadata document at `cimd`), lists tools, and with a second session refreshes. Returns
/// what it printed; its secrets are appended to `secrets`.
pub async fn sdk_oauth_client(
    origin: &str,
    name: &str,
    cimd: Option<&str>,
    secrets: &mut Vec<String>,
) -> serde_json::Value {
    let file =
        std::env::temp_dir().join(format!("mcp-tap-oauth-secrets-{}-{}", std::process::id(), super::free_port()));
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(repo().join("tests/peers/oauth_client.py")).arg(format!("{origin}/api/mcp-actions/v1"));
    cmd.args(["--origin", origin, "--name", name, "--refresh", "--secrets"]).arg(&file);
    if let Some(url) = cimd {
        cmd.args(["--cimd", url]);
    }
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "the SDK's OAuth client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    secrets.extend(std::fs::read_to_string(&file).unwrap().lines().filter(|l| !l.is_empty()).map(str::to_string));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce(seed: &str) -> (String, String) {
    let verifier = format!("verifier-{seed}-0123456789abcdefghijklmnopqrstuvwxyz");
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn query_param(url: &str, key: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

const REDIRECT: &str = "http://127.0.0.1:33418/callback";

/// A client scripted by hand through `origin`, keeping every secret it handles in `secrets`.
pub struct Scripted {
    pub origin: String,
    pub secrets: Vec<String>,
}

impl Scripted {
    async fn post(&self, path: &str, headers: &[(&str, &str)], body: String) -> (u16, serde_json::Value) {
        let (status, _, body) = request("POST", &format!("{}{path}", self.origin), headers, body).await;
        (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    /// Dynamic client registration; the `client_id` and `client_secret`.
    pub async fn register(&mut self, name: &str) -> (String, String) {
        let body = serde_json::json!({"client_name": name, "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]});
        let (status, answer) =
            self.post("/api/auth/v1/register", &[("content-type", "application/json")], body.to_string()).await;
        assert_eq!(status, 201, "{answer}");
        let secret = answer["client_secret"].as_str().unwrap().to_string();
        self.secrets.push(secret.clone());
        (answer["client_id"].as_str().unwrap().to_string(), secret)
    }

    /// Authorize and the person's decision (`approve` or not) as `user`; the code on approval.
    pub async fn consent(&mut self, client_id: &str, challenge: &str, user: &str, approve: bool) -> Option<String> {
        let state = format!("state-{client_id}-{}", self.secrets.len());
        self.secrets.push(state.clone());
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("response_type", "code"), ("client_id", client_id), ("redirect_uri", REDIRECT)])
            .extend_pairs([("state", state.as_str()), ("code_challenge", challenge), ("code_challenge_method", "S256")])
            .extend_pairs([("scope", "openid offline_access")])
            .finish();
        let (status, headers, _) =
            request("GET", &format!("{}/api/auth/v1/authorize?{query}", self.origin), &[], Bytes::new()).await;
        assert_eq!(status, 302);
        let location = headers["location"].to_str().unwrap();
        let session = location.trim_end_matches('/').rsplit('/').next().unwrap().to_string();
        let auth = format!("Bearer {user}");
        let decision = if approve { "approve" } else { "reject" };
        let path = format!("/api/auth/v1/sessions/{session}/{decision}");
        let (status, answer) = self.post(&path, &[("authorization", &auth)], String::new()).await;
        assert_eq!(status, 200, "{answer}");
        let code = query_param(answer["redirectUrl"].as_str().unwrap(), "code");
        self.secrets.extend(code.clone());
        code
    }

    /// A token request (form fields); its status and answer, its tokens kept as secrets.
    pub async fn token(&mut self, fields: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let (status, answer) = self.post("/api/auth/v1/token", &headers, body).await;
        for key in ["access_token", "refresh_token", "id_token"] {
            self.secrets.extend(answer[key].as_str().map(str::to_string));
        }
        (status, answer)
    }

    /// Exchanges a code with its verifier; the answer.
    pub async fn exchange(&mut self, client_id: &str, code: &str, verifier: &str) -> (u16, serde_json::Value) {
        self.secrets.push(verifier.to_string());
        let fields = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)];
        self.token(&[fields.as_slice(), &[("client_id", client_id), ("code_verifier", verifier)]].concat()).await
    }

    pub async fn refresh(&mut self, client_id: &str, refresh_token: &str) -> (u16, serde_json::Value) {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", client_id)]).await
    }

    pub async fn revoke(&mut self, (client_id, secret): (&str, &str), token: &str) -> u16 {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("token", token), ("client_id", client_id), ("client_secret", secret)])
            .finish();
        self.post("/api/auth/v1/revoke", &[("content-type", "application/x-www-form-urlencoded")], body).await.0
    }
}
