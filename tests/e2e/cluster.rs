//! Cluster mode end to end: a real `redis-server` (Debian), three tap replicas behind a real
//! per-request round-robin balancer (Debian's nginx), in front of the real Backstage. A scanner
//! spread over the replicas is flagged once, within a second of crossing the threshold; every
//! replica shows the same burst gauge; one client session spread over them is one session with
//! its true duration; the store killed with SIGKILL fails no request and is
//! counted and audited, and the replicas agree again once it is back; no token reaches the store,
//! and every key in it expires.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

/// nginx round-robin over `backends`, one request per upstream connection: what an L7 ingress does.
async fn balancer(backends: &[std::net::SocketAddr], dir: &std::path::Path) -> Peer {
    let bin = PathBuf::from("/usr/sbin/nginx");
    assert!(bin.exists(), "nginx is missing: run scripts/test.sh, or `apt-get install nginx-light`");
    let servers: String = backends.iter().map(|b| format!("server {b}; ")).collect();
    spawn_peer("nginx (round robin)", |port| {
        let conf = dir.join(format!("nginx-{port}.conf"));
        let text = format!(
            "worker_processes 1;\ndaemon off;\nerror_log stderr;\npid {d}/nginx-{port}.pid;\nevents {{}}\nhttp {{\n  access_log off;\n  \
             client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n  \
             upstream taps {{ {servers} }}\n  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://taps; proxy_buffering off; proxy_next_upstream off; }} }}\n}}\n",
            d = dir.display()
        );
        std::fs::write(&conf, text).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("-p").arg(dir).arg("-c").arg(&conf);
        cmd
    })
    .await
}

fn cluster_config(upstream: &str, store_port: u16, name: &str) -> mcp_tap::config::Config {
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

fn lines_of(configs: &[mcp_tap::config::Config], event: &str) -> Vec<serde_json::Value> {
    configs.iter().flat_map(audit_lines).filter(|l| l["event"] == event).collect()
}

async fn every_replica(taps: &[Tap], what: &str, check: impl Fn(&str) -> bool) -> Vec<String> {
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

    // A scanner: 36 tokenless requests, 12 per replica; the source threshold is 20 per minute.
    let mut crossed = None;
    for i in 1..=36 {
        assert_eq!(post_mcp(&url, &[], LIST).await.0, 401);
        if i == 20 {
            crossed = Some(wall_clock());
        }
    }
    let per_replica: Vec<f64> = {
        let mut v = Vec::new();
        for t in &taps {
            v.push(metric(&t.metrics().await, "mcp_tap_auth_failures_total", &[("reason", "missing_credentials")]));
        }
        v
    };
    assert_eq!(per_replica, vec![12.0, 12.0, 12.0], "the balancer spread the scanner evenly");
    eventually(Duration::from_secs(5), "a burst_start in the cluster", || async {
        let starts = lines_of(&configs, "burst_start");
        if starts.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    let texts = every_replica(&taps, "every replica shows the burst", |m| {
        metric(m, "mcp_tap_auth_burst_active", &[("scope", "source")]) == 1.0
    })
    .await;
    let starts = lines_of(&configs, "burst_start");
    assert_eq!(starts.len(), 1, "flagged exactly once across the replicas: {starts:#?}");
    assert_eq!((starts[0]["scope"].as_str(), starts[0]["key"].as_str()), (Some("source"), Some("127.0.0.1")));
    let at = humantime::parse_rfc3339(starts[0]["ts"].as_str().unwrap()).unwrap();
    let late = at.duration_since(crossed.unwrap()).unwrap_or_default();
    assert!(late <= Duration::from_secs(1), "flagged {late:?} after the threshold was crossed");
    let paged: f64 = texts.iter().map(|m| metric(m, "mcp_tap_auth_bursts_total", &[("scope", "source")])).sum();
    assert_eq!(paged, 1.0, "one replica started it");

    // A client whose requests the balancer spreads over the replicas calls two tools: every
    // replica's least-privilege report is the same, the union of what each saw.
    let listed = python_client(&url, &["--mode", "legacy", "--token", TOKEN_FULL]).await;
    let tools: Vec<String> =
        listed["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let other = tools.iter().find(|t| *t != "catalog.get-catalog-entity").unwrap().clone();
    let entity = r#"catalog.get-catalog-entity={"kind":"Component","name":"payments-api"}"#;
    let second = format!("{other}={{}}");
    let privileges = || async {
        let mut reports = Vec::new();
        for tap in &taps {
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
    python_client(&url, &["--mode", "legacy", "--token", TOKEN_FULL, "--no-list", "--call", entity, "--call", &second])
        .await;
    let reports = eventually(Duration::from_secs(10), "the same privileges report from every replica", || async {
        let mut reports = Vec::new();
        for tap in &taps {
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

    // The same credential, now also used by a second client product: reported once in the
    // cluster, naming both, though each replica saw only some requests of each. The Python SDK's
    // requests spread over the replicas were one client, not a pair with its own User-Agent.
    inspector_cli(&url, TOKEN_FULL, &["--method", "tools/list"]).await;
    let shared = eventually(Duration::from_secs(5), "the shared credential reported", || async {
        let shared = lines_of(&configs, "credential_shared");
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

    // An OAuth client that stopped refreshing, its expired token spread over the replicas: each
    // replica passes its grace, the cluster writes the finding once.
    let now = unix_now();
    let claims = serde_json::json!({"iss": "http://127.0.0.1/api/auth", "sub": "user:default/bob", "aud": "backstage", "iat": now - 7200, "exp": now - 3600});
    let stale = format!("Bearer {}", sign("backstage", BACKSTAGE_KID, "vnd.backstage.user", &claims));
    let started = tokio::time::Instant::now();
    loop {
        assert_eq!(post_mcp(&url, &[("authorization", &stale)], LIST).await.0, 401);
        let mut opened = 0.0;
        for tap in &taps {
            opened += metric(&tap.metrics().await, "mcp_tap_audit_events_total", &[("event", "stopped_refreshing")]);
        }
        // Every replica past its grace with the token still coming: each raised it.
        if started.elapsed() > Duration::from_secs(2) && opened >= 1.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no stopped_refreshing finding");
    }
    let stale_lines = lines_of(&configs, "stopped_refreshing");
    assert_eq!(stale_lines.len(), 1, "once in the cluster: {stale_lines:#?}");
    assert_eq!(stale_lines[0]["user"], "user:default/bob");

    one_session_across_the_replicas(&taps, &url, backstage.port).await;

    // A credential in use reaches the store only as a keyed fingerprint.
    for token in [TOKEN_FULL, "tap-test-not-a-token-0a1b2c3d"] {
        for _ in 0..3 {
            post_mcp(&url, &[("authorization", &format!("Bearer {token}"))], LIST).await;
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

    // The store dies during traffic: no request fails, each replica counts it and decides alone.
    let pid = store.child.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    for _ in 0..30 {
        assert_eq!(post_mcp(&url, &[], LIST).await.0, 401, "traffic goes on without the store");
    }
    every_replica(&taps, "every replica knows its store is gone", |m| {
        metric(m, "mcp_tap_store_up", &[("cluster", "e2e")]) == 0.0
            && metric(m, "mcp_tap_store_errors_total", &[]) > 0.0
    })
    .await;
    assert_eq!(lines_of(&configs, "store_lost").len(), 3, "one store_lost line per replica");
    drop(store);
    let _store = spawn_peer_on(store_port, redis_command(store_port, &dir), "redis-server again").await.unwrap();
    every_replica(&taps, "every replica is back on the store", |m| {
        metric(m, "mcp_tap_store_up", &[("cluster", "e2e")]) == 1.0
    })
    .await;
    assert_eq!(lines_of(&configs, "store_regained").len(), 3);
    // What each counted while away is sent; the replicas then show the same bursts again.
    eventually(Duration::from_secs(5), "the replicas agree again", || async {
        let mut gauges = Vec::new();
        for tap in &taps {
            gauges.push(metric(&tap.metrics().await, "mcp_tap_auth_burst_active", &[("scope", "source")]));
        }
        if gauges.windows(2).all(|w| w[0] == w[1]) {
            Ok(())
        } else {
            Err(format!("{gauges:?}"))
        }
    })
    .await;
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
