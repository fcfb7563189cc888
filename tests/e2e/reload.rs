//! Hot reload: edits in place, by atomic rename and by a Kubernetes-style symlink swap change
//! the tap's behaviour without a restart; a broken file keeps the old config and shows in the
//! metrics; a restart-only change is refused; a token rotated in Backstage's app-config is
//! audited as a fingerprint diff and its next use is `revoked_token`.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mcp_tap::{Fingerprinter, KeySource};

const KEY: &str = "reload-test-fingerprint-key-01";
const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const T1: &str = "tap-test-reload-token-one-1111";
const T2: &str = "tap-test-reload-token-two-2222";

fn fingerprint(t: &str) -> String {
    Fingerprinter::new(KEY.as_bytes(), KeySource::File).fingerprint(t).to_string()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mcp-tap-reload-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("key"), KEY).unwrap();
    d
}

/// A config whose app-config import maps `token` to `subject`.
fn write_config(dir: &Path, file: &Path, upstream: &str, token: &str, subject: &str, extra: &str) {
    let app_config = dir.join(format!("app-config-{subject}.yaml"));
    std::fs::write(
        &app_config,
        format!("backend:\n  auth:\n    externalAccess:\n      - type: static\n        options: {{token: {token}, subject: {subject}}}\n"),
    )
    .unwrap();
    std::fs::write(
        file,
        format!(
            "upstream: {{url: '{upstream}'}}\nshutdown_drain_delay: 0s\naudit: {{output: '{}', fingerprint_key_file: '{}'}}\nclients: {{backstage_app_config: ['{}']}}\n{extra}",
            dir.join("audit.jsonl").display(),
            dir.join("key").display(),
            app_config.display()
        ),
    )
    .unwrap();
}

/// An upstream that accepts the tokens in `valid` and refuses others as Backstage does.
async fn token_upstream(valid: Arc<Mutex<HashSet<String>>>) -> String {
    let addr = upstream(move |req: http::Request<hyper::body::Incoming>| {
        let valid = valid.clone();
        async move {
            let token = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").trim_start_matches("Bearer ").to_string();
            if valid.lock().unwrap().contains(&token) {
                json_response(200, r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#)
            } else {
                json_response(401, r#"{"error":{"name":"AuthenticationError","message":"Illegal token"},"response":{"statusCode":401}}"#)
            }
        }
    })
    .await;
    format!("http://{addr}")
}

/// Sends T1 (refused) until its failure is counted for `subject`.
async fn wait_for_client(tap: &Tap, subject: &str) {
    eventually(Duration::from_secs(10), &format!("the reload to client {subject}"), || async {
        let url = tap.url("/api/mcp-actions/v1");
        assert_eq!(post_mcp(&url, &[("authorization", &format!("Bearer {T1}"))], LIST).await.0, 401);
        let m = tap.metrics().await;
        if metric(&m, "mcp_tap_auth_failures_total", &[("client", subject), ("reason", "unknown_token")]) > 0.0 {
            Ok(())
        } else {
            Err(m)
        }
    })
    .await;
}

/// Waits until the last reload was refused (`mcp_tap_config_last_reload_successful` 0).
async fn wait_for_refusal(tap: &Tap, what: &str) {
    metrics_when(tap, Duration::from_secs(10), what, |m| {
        metric(m, "mcp_tap_config_last_reload_successful", &[]) == 0.0
    })
    .await;
}

async fn reload_metric(tap: &Tap) -> f64 {
    metric(&tap.metrics().await, "mcp_tap_config_last_reload_successful", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_in_place_and_by_atomic_rename_apply_and_broken_files_are_refused() {
    let up = token_upstream(Arc::default()).await;
    let dir = temp_dir("edits");
    let file = dir.join("config.yaml");
    write_config(&dir, &file, &up, T1, "alpha", "");
    let tap = Tap::start_watching(&file).await;
    wait_for_client(&tap, "alpha").await;

    // In place.
    write_config(&dir, &file, &up, T1, "beta", "");
    wait_for_client(&tap, "beta").await;
    // Atomic rename, as editors and config-management tools do.
    let tmp = dir.join(".config.yaml.tmp");
    write_config(&dir, &tmp, &up, T1, "gamma", "");
    std::fs::rename(&tmp, &file).unwrap();
    wait_for_client(&tap, "gamma").await;
    assert_eq!(reload_metric(&tap).await, 1.0);

    // A broken file: refused, the old config (gamma) stays, the metric says so.
    std::fs::write(&file, "upstream: [not, a, map\n").unwrap();
    wait_for_refusal(&tap, "a broken file setting the reload metric to 0").await;
    wait_for_client(&tap, "gamma").await;
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_config_reloads_total", &[("result", "failure")]), 1.0);
    // Fixed again: accepted, metric back to 1.
    write_config(&dir, &file, &up, T1, "delta", "");
    wait_for_client(&tap, "delta").await;
    assert_eq!(reload_metric(&tap).await, 1.0);

    // A restart-only setting is refused with a message that says so.
    write_config(&dir, &file, &up, T1, "delta", "listen: 127.0.0.1:1\n");
    wait_for_refusal(&tap, "a listen change refused").await;
    tap.stop().await;
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(audit.contains("listen can only change with a restart"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_configmap_symlink_swap_applies() {
    let up = token_upstream(Arc::default()).await;
    let dir = temp_dir("configmap");
    // The layout a ConfigMap volume has: config.yaml -> ..data/config.yaml, ..data -> ..v1.
    std::fs::create_dir_all(dir.join("..v1")).unwrap();
    write_config(&dir, &dir.join("..v1/config.yaml"), &up, T1, "alpha", "");
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", dir.join("config.yaml")).unwrap();
    let tap = Tap::start_watching(&dir.join("config.yaml")).await;
    wait_for_client(&tap, "alpha").await;
    // Kubernetes writes ..v2, then swaps ..data atomically.
    std::fs::create_dir_all(dir.join("..v2")).unwrap();
    write_config(&dir, &dir.join("..v2/config.yaml"), &up, T1, "beta", "");
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    wait_for_client(&tap, "beta").await;
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_in_the_backstage_app_config_is_audited_and_then_revoked() {
    let valid: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new([T1.to_string()].into()));
    let up = token_upstream(valid.clone()).await;
    let dir = temp_dir("rotation");
    let file = dir.join("config.yaml");
    write_config(&dir, &file, &up, T1, "ci-agent", "");
    let tap = Tap::start_watching(&file).await;
    let url = tap.url("/api/mcp-actions/v1");
    assert_eq!(post_mcp(&url, &[("authorization", &format!("Bearer {T1}"))], LIST).await.0, 200);

    // Backstage's app-config now holds T2 for the same subject; T1 is gone.
    *valid.lock().unwrap() = [T2.to_string()].into();
    std::fs::write(
        dir.join("app-config-ci-agent.yaml"),
        format!("backend:\n  auth:\n    externalAccess:\n      - type: static\n        options: {{token: {T2}, subject: ci-agent}}\n"),
    )
    .unwrap();
    let change = eventually(Duration::from_secs(10), "a token_set_changed audit event", || async {
        let text = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
        match text.lines().find(|l| l.contains("token_set_changed")) {
            Some(l) => Ok(serde_json::from_str::<serde_json::Value>(l).unwrap()),
            None => Err(text),
        }
    })
    .await;
    assert_eq!(change["added"], serde_json::json!([fingerprint(T2)]));
    assert_eq!(change["removed"], serde_json::json!([fingerprint(T1)]));

    // The old token's next use is a revoked token, still named by its subject.
    assert_eq!(post_mcp(&url, &[("authorization", &format!("Bearer {T1}"))], LIST).await.0, 401);
    assert_eq!(post_mcp(&url, &[("authorization", &format!("Bearer {T2}"))], LIST).await.0, 200);
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_auth_failures_total", &[("reason", "revoked_token"), ("client", "ci-agent")]), 1.0);
    assert_eq!(metric(&m, "mcp_tap_client_operations_total", &[("client", "ci-agent"), ("outcome", "ok")]), 2.0);
    tap.stop().await;
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    for token in [T1, T2] {
        assert!(!audit.contains(token), "a token leaked into the audit log");
    }
}
