//! The auditor: the per-connection credential cache, and what it writes at shutdown.
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

/// In cluster mode, the failures a replica's burst silenced are written as a summary when the
/// tap stops, whoever ends the burst: every refusal the clients saw is in the audit trail.
#[tokio::test(start_paused = true)]
async fn a_clustered_replica_stopping_inside_a_burst_writes_its_last_summary() {
    let metrics = Arc::new(Metrics::new(vec![1.0]));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let path = std::env::temp_dir().join(format!("mcp-tap-last-summary-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let (sink, writer) = AuditSink::start(path.to_str().unwrap(), 1024, metrics.clone(), stop, Vec::new());
    let mut config = config("first");
    config.cluster.store_url = Some("redis://127.0.0.1:9/0".into());
    config.bursts.source.failures = 5;
    config.audit.lines_per_burst = 2;
    let auditor = Auditor::new(&config, metrics, sink, Fingerprinter::new(b"k", KeySource::Env), None, &["default"]);
    let credential = Credential::Missing;
    for _ in 0..30 {
        auditor.emit(&AuthFailure {
            route: "default",
            status: 401,
            reason: Reason::MissingCredentials,
            http_method: "POST",
            mcp_method: None,
            tool: None,
            credential: &credential,
            client: CLIENT_NONE,
            user: None,
            holder: None,
            expired_seconds: None,
            source: "192.0.2.7".parse().unwrap(),
            user_agent: None,
            request_id: None,
            jsonrpc_id: None,
            trace_id: None,
            span_id: None,
        });
    }
    auditor.drain();
    stop_tx.send(true).unwrap();
    tokio::time::resume();
    writer.await.unwrap();
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let written = lines.iter().filter(|l| l["event"] == "auth_failure").count() as u64;
    let summarised: u64 = lines
        .iter()
        .filter(|l| l["event"] == "auth_failure_summary" && l["scope"] == "source")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(written + summarised, 30, "every refusal in a line of its own or a summary: {lines:#?}");
    assert!(summarised > 0, "the burst silenced some lines");
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
