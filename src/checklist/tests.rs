//! The checklist with its real state file in a temporary directory.
use super::*;
use crate::audit::sink::AuditSink;
use crate::identity::{Fingerprinter, KeySource};

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-tap-checklist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &std::path::Path, max_credentials: usize) -> (Checklist, Arc<Metrics>) {
    let mut config = Config::default();
    config.checklist.state_dir = Some(dir.to_path_buf());
    config.checklist.max_credentials = max_credentials;
    let metrics = Arc::new(Metrics::new(vec![1.0]));
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (sink, _writer) =
        AuditSink::start(dir.join("audit.jsonl").to_str().unwrap(), 16, metrics.clone(), stop, Vec::new());
    let fingerprinter = Fingerprinter::new(b"test-key", KeySource::Env);
    let auditor = Arc::new(Auditor::new(&config, metrics.clone(), sink, fingerprinter, None, &[]));
    (Checklist::open(&config, metrics.clone(), auditor), metrics)
}

fn token(fp: &Fingerprinter, token: &str, subject: &str) -> Credential {
    Credential::Token { fingerprint: fp.fingerprint(token), client: subject.into() }
}

#[tokio::test]
async fn a_hundred_thousand_distinct_credentials_keep_the_state_file_bounded() {
    let dir = dir("bounded");
    let (checklist, metrics) = open(&dir, 1_000);
    let fp = Fingerprinter::new(b"test-key", KeySource::Env);
    for i in 0..100_000 {
        checklist.credential_worked(&token(&fp, &format!("token-{i}"), &format!("subject-{}", i % 50)));
    }
    let state = checklist.tick().expect("changed");
    checklist.write(&state);
    let written = store::read(&dir).unwrap().unwrap();
    assert_eq!(written.credentials.len(), 1_000);
    let bytes = std::fs::metadata(store::path(&dir)).unwrap().len();
    assert!(bytes < 200_000, "the state file stays small: {bytes} bytes");
    assert!(metrics.render().contains("mcp_tap_checklist_evictions_total{kind=\"credential\"} 99000"));
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(files.iter().all(|f| !f.to_string_lossy().contains("tmp")), "no leftovers: {files:?}");
}

#[tokio::test]
async fn first_seen_survives_a_restart_and_unknown_tokens_are_not_aged() {
    let dir = dir("restart");
    let fp = Fingerprinter::new(b"test-key", KeySource::Env);
    let known = token(&fp, "static-token-1", "ci-agent");
    let (checklist, _) = open(&dir, 100);
    checklist.credential_worked(&known);
    checklist.credential_worked(&token(&fp, "user-jwt", CLIENT_UNKNOWN));
    checklist.credential_worked(&Credential::Missing);
    let state = checklist.tick().unwrap();
    assert_eq!(state.credentials.len(), 1, "only the static token named by a subject");
    checklist.write(&state);
    let first = state.credentials[0].first_seen;

    let (restarted, metrics) = open(&dir, 100);
    restarted.credential_worked(&known);
    restarted.tick();
    let text = metrics.render();
    let line = format!("mcp_tap_credential_first_seen_timestamp_seconds{{client=\"ci-agent\"}} {first}");
    assert!(text.contains(&line), "{line} in:\n{text}");
}

#[tokio::test]
async fn an_unreadable_state_file_is_set_aside_and_counted() {
    let dir = dir("unreadable");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(store::path(&dir), "{ not json").unwrap();
    let (_checklist, metrics) = open(&dir, 100);
    assert!(dir.join("checklist.json.unreadable").exists());
    assert!(metrics.render().contains("mcp_tap_checklist_state_errors_total{operation=\"read\"} 1"));
}

#[tokio::test]
async fn actions_api_reach_survives_a_restart_and_stays_once_per_credential() {
    let dir = dir("reach");
    let fp = Fingerprinter::new(b"test-key", KeySource::Env).fingerprint("restricted-token");
    let reached = crate::detect::reach::Reached {
        client: "catalog-reader".into(),
        credential: fp.to_string(),
        refused_route: "default".into(),
        refused_reason: "plugin_not_allowed".into(),
        plugin: "catalog".into(),
        tool: Some("catalog.get-catalog-entity".into()),
        at: unix_now() - 1_000,
    };
    let (checklist, _) = open(&dir, 100);
    assert!(checklist.tick().is_none(), "nothing to write yet");
    checklist.auditor.actions_api_reached(fp, reached.clone());
    let state = checklist.tick().expect("new evidence is written");
    checklist.write(&state);
    assert!(checklist.tick().is_none(), "and written once");

    let (restarted, _) = open(&dir, 100);
    assert_eq!(restarted.report().actions_api_reach, vec![reached.clone()]);
    restarted.auditor.actions_api_reached(fp, crate::detect::reach::Reached { at: unix_now(), ..reached.clone() });
    assert_eq!(restarted.report().actions_api_reach, vec![reached.clone()], "still once per credential");
    assert_eq!(store::read(&dir).unwrap().unwrap().reach, vec![reached], "in the state file");
}
