//! Cluster mode end to end: a real `redis-server` (Debian), three tap replicas behind a real
//! per-request round-robin balancer (Debian's nginx), in front of the real Backstage. A scanner
//! spread over the replicas is flagged once, within a second of crossing the threshold; every
//! replica shows the same burst gauge; one client session spread over them is one session with
//! its true duration; the store killed with SIGKILL fails no request and is
//! counted and audited, and the replicas agree again once it is back; no token reaches the store,
//! and every key in it expires.

use crate::common;

use std::time::Duration;

use common::*;

use super::cluster_story as story;

pub const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

/// nginx round-robin over `backends`, one request per upstream connection: what an L7 ingress does.
pub(crate) async fn balancer(backends: &[std::net::SocketAddr], dir: &std::path::Path) -> Peer {
    let servers: String = backends.iter().map(|b| format!("server {b}; ")).collect();
    nginx_balancer(dir, "nginx (round robin)", &servers, "proxy_buffering off; proxy_next_upstream off;").await
}

pub(crate) fn cluster_config(upstream: &str, store_port: u16, name: &str) -> mcp_tap::config::Config {
    let mut c = test_config(upstream);
    c.cluster.store_url = Some(format!("redis://127.0.0.1:{store_port}/0"));
    c.cluster.password_env = Some("TEST_STORE_PASSWORD".into());
    c.cluster.name = name.into();
    // One fingerprint key for every replica, as the Kubernetes example's Secret gives them.
    c.env = mcp_tap::config::Environment::fixed([
        ("TEST_STORE_PASSWORD", STORE_PASSWORD),
        ("CI_TOKEN", TOKEN_FULL),
        ("MCP_TAP_FINGERPRINT_KEY", "cluster-e2e-fingerprint-key-0123456789"),
    ]);
    c.clients.tokens.push(mcp_tap::config::ClientToken {
        subject: "ci-agent".into(),
        token_env: Some("CI_TOKEN".into()),
        ..Default::default()
    });
    c.user_tokens.refresh_grace = Duration::from_secs(1);
    // Sessions end 5 s after the cluster last answered them (the sessions phase waits for it).
    c.sessions.idle_timeout = Duration::from_secs(5);
    c
}

pub fn lines_of(configs: &[mcp_tap::config::Config], event: &str) -> Vec<serde_json::Value> {
    configs.iter().flat_map(audit_lines).filter(|l| l["event"] == event).collect()
}

pub async fn every_replica(taps: &[Tap], what: &str, check: impl Fn(&str) -> bool) -> Vec<String> {
    eventually(Duration::from_secs(15), what, || async {
        let mut texts = Vec::new();
        for tap in taps {
            texts.push(tap.metrics().await);
        }
        if texts.iter().all(|t| check(t)) {
            Ok(texts)
        } else {
            Err(texts.iter().map(|t| series(t, "mcp_tap_store_up").len().to_string()).collect::<Vec<_>>().join(","))
        }
    })
    .await
}

/// Sessions of the default route over all replicas: how many ended, their total duration, how
/// many are open.
async fn sessions(taps: &[Tap]) -> (f64, f64, f64) {
    let (mut count, mut sum, mut open) = (0.0, 0.0, 0.0);
    for tap in taps {
        let m = tap.metrics().await;
        let d = [("mcp_route", "default")];
        count += metric(&m, "mcp_server_session_duration_seconds_count", &d);
        sum += metric(&m, "mcp_server_session_duration_seconds_sum", &d);
        open += metric(&m, "mcp_tap_sessions_active", &d);
    }
    (count, sum, open)
}

/// One client session whose requests the balancer spreads over the replicas is one session, with
/// its true duration: the replica that saw its `initialize` holds it, the others' answers keep it
/// alive through the store, and it ends once when the cluster has been quiet.
async fn one_session_across_the_replicas(taps: &[Tap], url: &str, backstage_port: u16) {
    eventually(Duration::from_secs(20), "earlier clients' sessions ended", || async {
        let (_, _, open) = sessions(taps).await;
        if open == 0.0 {
            Ok(())
        } else {
            Err(format!("{open} open"))
        }
    })
    .await;
    let (count, sum, _) = sessions(taps).await;
    let user = format!("Bearer {}", guest_token(backstage_port).await);
    let auth = [("authorization", user.as_str())];
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"spread-session","version":"1"}}}"#;
    let started = tokio::time::Instant::now();
    assert_eq!(post_mcp(url, &auth, init).await.0, 200);
    assert_eq!(post_mcp(url, &auth, LIST).await.0, 200);
    // The user reads for 2 s; the next request reaches the third replica.
    eventually(Duration::from_secs(5), "the client's pause", || async {
        if started.elapsed() >= Duration::from_secs(2) {
            Ok(())
        } else {
            Err("reading".to_string())
        }
    })
    .await;
    assert_eq!(post_mcp(url, &auth, LIST).await.0, 200);
    let lasted = started.elapsed().as_secs_f64();
    let (ended, total, _) = eventually(Duration::from_secs(20), "the session ended", || async {
        let now = sessions(taps).await;
        if now.0 > count {
            Ok(now)
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    assert_eq!(ended - count, 1.0, "one session in the cluster");
    // The name it declared in `initialize` (to the first replica) labels its later request on
    // the third as well.
    let mut named = 0.0;
    for tap in taps {
        named += metric(&tap.metrics().await, "mcp_tap_client_operations_total", &[("client", "spread-session")]);
    }
    assert!(named >= 2.0, "the declared name on more than the replica that saw it: {named}");
    let duration = total - sum;
    assert!((duration - lasted).abs() < 0.5, "the session lasted {duration:.2} s; the client was active {lasted:.2} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_a_balancer_flag_a_spread_scanner_once_and_survive_their_store() {
    let dir = std::env::temp_dir().join(format!("mcp-tap-cluster-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let store_port = free_port();
    let store = spawn_peer_on(store_port, redis_command(store_port, &dir), "redis-server").await.unwrap();
    let backstage = backstage().await;
    let upstream = format!("http://127.0.0.1:{}", backstage.port);
    let configs: Vec<_> = (0..3).map(|_| cluster_config(&upstream, store_port, "e2e")).collect();
    let mut taps = Vec::new();
    for c in &configs {
        taps.push(Tap::start(c.clone()).await);
    }
    every_replica(&taps, "every replica reaches the store", |m| {
        metric(m, "mcp_tap_store_up", &[("cluster", "e2e")]) == 1.0
    })
    .await;
    let lb = balancer(&taps.iter().map(|t| t.proxy).collect::<Vec<_>>(), &dir).await;
    let url = format!("http://127.0.0.1:{}/api/mcp-actions/v1", lb.port);

    story::a_spread_scanner_is_flagged_once(&taps, &configs, &url).await;
    story::least_privilege_is_the_clusters(&taps, &url).await;
    story::a_shared_credential_is_reported_once(&configs, &url).await;
    story::a_client_that_stopped_refreshing_is_found_once(&taps, &configs, &url).await;
    one_session_across_the_replicas(&taps, &url, backstage.port).await;
    story::the_store_holds_no_token(&url, store_port).await;
    let _store = story::the_store_dies_and_comes_back(&taps, &configs, &url, store, &dir).await;
    for tap in taps {
        tap.stop().await;
    }
    let all: String = configs.iter().map(|c| std::fs::read_to_string(&c.audit.output).unwrap_or_default()).collect();
    assert!(!all.contains(STORE_PASSWORD) && !all.contains(TOKEN_FULL), "no secret in the audit");
    let shared = lines_of(&configs, "credential_shared");
    assert_eq!(shared.len(), 1, "once in the cluster: {shared:#?}");
    assert_eq!(lines_of(&configs, "stopped_refreshing").len(), 1, "still once");

    drop(lb);
    drop(backstage);
}
