//! The auditor's per-connection credential cache.
use super::*;
use crate::config::Environment;
use crate::identity::{Credential, KeySource, CLIENT_NONE};

fn config(subject: &str) -> Config {
    let mut config =
        Config::parse(&format!("clients:\n  tokens:\n    - subject: {subject}\n      token_env: AGENT_TOKEN\n"))
            .unwrap();
    config.env = Environment::fixed([("AGENT_TOKEN", "agent-token-12345678")]);
    config
}

#[tokio::test]
async fn a_connection_repeating_its_token_keeps_its_identity_until_the_directory_changes() {
    let metrics = Arc::new(Metrics::new(vec![1.0]));
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let path = std::env::temp_dir().join(format!("mcp-tap-credential-cache-{}.jsonl", std::process::id()));
    let (sink, _writer) = AuditSink::start(path.to_str().unwrap(), 16, metrics.clone(), stop, Vec::new());
    let fingerprinter = Fingerprinter::new(b"test-key", KeySource::Env);
    let auditor = Auditor::new(&config("first"), metrics, sink, fingerprinter, None, &["default"]);
    let cache = Mutex::default();
    let known = http::HeaderValue::from_static("Bearer agent-token-12345678");
    let other = http::HeaderValue::from_static("Bearer someone-elses-token");

    let first = auditor.who.credential_cached(Some(&known), &cache);
    assert_eq!(first.client(), "first");
    assert_eq!(auditor.who.credential_cached(Some(&known), &cache), first);
    // Another token on the same connection is resolved on its own, never served from the cache.
    let stranger = auditor.who.credential_cached(Some(&other), &cache);
    assert_eq!(stranger.client(), CLIENT_UNKNOWN);
    assert_ne!(stranger.fingerprint(), first.fingerprint());
    assert_eq!(auditor.who.credential_cached(None, &cache), Credential::Missing);
    // A reload that renames the subject is seen by the next request of a connection already open.
    assert_eq!(auditor.who.credential_cached(Some(&known), &cache), first);
    auditor.reload(&config("renamed"));
    assert_eq!(auditor.who.credential_cached(Some(&known), &cache).client(), "renamed");
}

impl Credential {
    /// The subject the credential resolved to (`none`, `unknown`, or a configured subject).
    pub(crate) fn client(&self) -> &str {
        match self {
            Credential::Missing => CLIENT_NONE,
            Credential::Malformed => CLIENT_UNKNOWN,
            Credential::Token { client, .. } => client,
        }
    }
}
