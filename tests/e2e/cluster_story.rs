//! The chapters of the three-replica story in `cluster.rs`, each what one part of cluster mode
//! must do with real replicas behind a real balancer.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::*;

use super::cluster::{every_replica, lines_of, LIST};
use mcp_tap::config::Config;

/// A scanner: 36 tokenless requests, 12 per replica; the source threshold is 20 per minute. It
/// is flagged once, within a second of crossing it, and every replica shows the burst.
pub async fn a_spread_scanner_is_flagged_once(taps: &[Tap], configs: &[Config], url: &str) {
    let mut crossed = None;
    for i in 1..=36 {
        assert_eq!(post_mcp(url, &[], LIST).await.0, 401);
        if i == 20 {
            crossed = Some(wall_clock());
        }
    }
    let per_replica: Vec<f64> = {
        let mut v = Vec::new();
        for t in taps {
            v.push(metric(&t.metrics().await, "mcp_tap_auth_failures_total", &[("reason", "missing_credentials")]));
        }
        v
    };
    assert_eq!(per_replica, vec![12.0, 12.0, 12.0], "the balancer spread the scanner evenly");
    eventually(Duration::from_secs(5), "a burst_start in the cluster", || async {
        let starts = lines_of(configs, "burst_start");
        if starts.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    let texts = every_replica(taps, "every replica shows the burst", |m| {
        metric(m, "mcp_tap_auth_burst_active", &[("scope", "source")]) == 1.0
    })
    .await;
    let starts = lines_of(configs, "burst_start");
    assert_eq!(starts.len(), 1, "flagged exactly once across the replicas: {starts:#?}");
    assert_eq!((starts[0]["scope"].as_str(), starts[0]["key"].as_str()), (Some("source"), Some("127.0.0.1")));
    let at = humantime::parse_rfc3339(starts[0]["ts"].as_str().unwrap()).unwrap();
    let late = at.duration_since(crossed.unwrap()).unwrap_or_default();
    assert!(late <= Duration::from_secs(1), "flagged {late:?} after the threshold was crossed");
    let paged: f64 = texts.iter().map(|m| metric(m, "mcp_tap_auth_bursts_total", &[("scope", "source")])).sum();
    assert_eq!(paged, 1.0, "one replica started it");
}

/// A client whose requests the balancer spreads over the replicas calls two tools: every
/// replica's least-privilege report is the same, the union of what each saw.
pub async fn least_privilege_is_the_clusters(taps: &[Tap], url: &str) {
    let listed = python_client(url, &["--mode", "legacy", "--token", TOKEN_FULL]).await;
    let tools: Vec<String> =
        listed["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let other = tools.iter().find(|t| *t != "catalog.get-catalog-entity").unwrap().clone();
    let entity = r#"catalog.get-catalog-entity={"kind":"Component","name":"payments-api"}"#;
    let second = format!("{other}={{}}");
    let privileges = || async {
        let mut reports = Vec::new();
        for tap in taps {
            let (_, _, body) = get(&format!("http://{}/privileges", tap.admin)).await;
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            reports.push(v["clients"].as_array().unwrap().iter().find(|l| l["client"] == "ci-agent").cloned());
        }
        reports
    };
    // The list one replica saw reaches the others (its tool names too, so they label the calls).
    eventually(Duration::from_secs(10), "the list in every replica's report", || async {
        let reports = privileges().await;
        if reports.iter().all(|r| r.as_ref().is_some_and(|r| r["advertised"] == tools.len())) {
            Ok(())
        } else {
            Err(format!("{reports:#?}"))
        }
    })
    .await;
    python_client(url, &["--mode", "legacy", "--token", TOKEN_FULL, "--no-list", "--call", entity, "--call", &second])
        .await;
    let reports = eventually(Duration::from_secs(10), "the same privileges report from every replica", || async {
        let mut reports = Vec::new();
        for tap in taps {
            let (_, _, body) = get(&format!("http://{}/privileges", tap.admin)).await;
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let line = v["clients"].as_array().unwrap().iter().find(|l| l["client"] == "ci-agent").cloned();
            reports.push(line.unwrap_or_default());
        }
        let same = reports.windows(2).all(|w| w[0] == w[1]);
        if same && reports[0]["called"].as_array().is_some_and(|c| c.len() == 2) {
            Ok(reports)
        } else {
            Err(format!("{reports:#?}"))
        }
    })
    .await;
    let mut called: Vec<&str> = reports[0]["called"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    called.sort_unstable();
    let mut expected = vec!["catalog.get-catalog-entity", other.as_str()];
    expected.sort_unstable();
    assert_eq!(called, expected, "both tools, whichever replica served each call");
    assert_eq!(reports[0]["advertised"], tools.len(), "{reports:#?}");
}

/// The same credential, now also used by a second client product: reported once in the cluster,
/// naming both, though each replica saw only some requests of each. The Python SDK's requests
/// spread over the replicas were one client, not a pair with its own User-Agent.
pub async fn a_shared_credential_is_reported_once(configs: &[Config], url: &str) {
    inspector_cli(url, TOKEN_FULL, &["--method", "tools/list"]).await;
    let shared = eventually(Duration::from_secs(5), "the shared credential reported", || async {
        let shared = lines_of(configs, "credential_shared");
        if shared.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(shared)
        }
    })
    .await;
    let mut names: Vec<&str> = shared[0]["clients"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["inspector-cli", "mcp"], "{shared:#?}");
}

/// An OAuth client that stopped refreshing, its expired token spread over the replicas: each
/// replica passes its grace, the cluster writes the finding once.
pub async fn a_client_that_stopped_refreshing_is_found_once(taps: &[Tap], configs: &[Config], url: &str) {
    let now = unix_now();
    let claims = serde_json::json!({"iss": "http://127.0.0.1/api/auth", "sub": "user:default/bob", "aud": "backstage", "iat": now - 7200, "exp": now - 3600});
    let stale = format!("Bearer {}", sign("backstage", BACKSTAGE_KID, "vnd.backstage.user", &claims));
    let started = tokio::time::Instant::now();
    loop {
        assert_eq!(post_mcp(url, &[("authorization", &stale)], LIST).await.0, 401);
        let mut opened = 0.0;
        for tap in taps {
            opened += metric(&tap.metrics().await, "mcp_tap_audit_events_total", &[("event", "stopped_refreshing")]);
        }
        // Every replica past its grace with the token still coming: each raised it.
        if started.elapsed() > Duration::from_secs(2) && opened >= 1.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no stopped_refreshing finding");
    }
    let stale_lines = lines_of(configs, "stopped_refreshing");
    assert_eq!(stale_lines.len(), 1, "once in the cluster: {stale_lines:#?}");
    assert_eq!(stale_lines[0]["user"], "user:default/bob");
}

/// A credential in use reaches the store only as a keyed fingerprint, and every key expires.
pub async fn the_store_holds_no_token(url: &str, store_port: u16) {
    for token in [TOKEN_FULL, "tap-test-not-a-token-0a1b2c3d"] {
        for _ in 0..3 {
            post_mcp(url, &[("authorization", &format!("Bearer {token}"))], LIST).await;
        }
    }
    let client = redis::Client::open(format!("redis://:{STORE_PASSWORD}@127.0.0.1:{store_port}/0")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    eventually(Duration::from_secs(5), "the credential keys in the store", || {
        let mut conn = conn.clone();
        async move {
            let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
            if keys.iter().any(|k| k.contains(":credential:")) {
                Ok(())
            } else {
                Err(format!("{keys:?}"))
            }
        }
    })
    .await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    for key in &keys {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(key).query_async(&mut conn).await.unwrap();
        let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "{key} never expires");
        for token in [TOKEN_FULL, "tap-test-not-a-token-0a1b2c3d"] {
            assert!(!key.contains(token), "a token in a key: {key}");
            assert!(!dump.windows(token.len()).any(|w| w == token.as_bytes()), "a token in {key}");
        }
    }
    assert!(keys.iter().all(|k| k.starts_with("mcp-tap:e2e:")), "{keys:?}");
}

/// The store dies during traffic: no request fails, each replica counts it and decides alone;
/// once it is back, the replicas agree again. Returns the store started again.
pub async fn the_store_dies_and_comes_back(
    taps: &[Tap],
    configs: &[Config],
    url: &str,
    store: Peer,
    dir: &std::path::Path,
) -> Peer {
    let store_port = store.port;
    let pid = store.child.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    for _ in 0..30 {
        assert_eq!(post_mcp(url, &[], LIST).await.0, 401, "traffic goes on without the store");
    }
    every_replica(taps, "every replica knows its store is gone", |m| {
        metric(m, "mcp_tap_store_up", &[("cluster", "e2e")]) == 0.0
            && metric(m, "mcp_tap_store_errors_total", &[]) > 0.0
    })
    .await;
    assert_eq!(lines_of(configs, "store_lost").len(), 3, "one store_lost line per replica");
    drop(store);
    let store = spawn_peer_on(store_port, redis_command(store_port, dir), "redis-server again").await.unwrap();
    every_replica(taps, "every replica is back on the store", |m| {
        metric(m, "mcp_tap_store_up", &[("cluster", "e2e")]) == 1.0
    })
    .await;
    assert_eq!(lines_of(configs, "store_regained").len(), 3);
    // What each counted while away is sent; the replicas then show the same bursts again.
    eventually(Duration::from_secs(5), "the replicas agree again", || async {
        let mut gauges = Vec::new();
        for tap in taps {
            gauges.push(metric(&tap.metrics().await, "mcp_tap_auth_burst_active", &[("scope", "source")]));
        }
        if gauges.windows(2).all(|w| w[0] == w[1]) {
            Ok(())
        } else {
            Err(format!("{gauges:?}"))
        }
    })
    .await;
    store
}
