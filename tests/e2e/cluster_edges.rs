//! Cluster mode at its edges. Over TLS as an ACL user: a real `redis-server` that speaks only TLS (a private CA)
//! and lets its user `tap` touch only `mcp-tap:*` keys, with the default user off. A replica
//! reaches it with `rediss://`, `cluster.ca_file` and a password from the environment, decides a
//! burst through it, and never touches a key outside its namespace (the ACL would refuse it). And
//! a burst whose replica crashed is ended once by another replica. And a stateless (MCP
//! 2026-07-28) client whose requests reach two replicas is one session, and its call whose
//! retry with the person's input reaches the other replica is one operation.

use crate::auth_audit::LIST;
use crate::common;
use crate::securing::Pki;

use std::process::Command;
use std::time::Duration;

use common::*;

const ACL_PASSWORD: &str = "acl-pw-3c1f9e";

async fn until_store_up(tap: &Tap, cluster: &str) {
    eventually(Duration::from_secs(10), "the replica reaches its store", || async {
        let m = tap.metrics().await;
        if metric(&m, "mcp_tap_store_up", &[("cluster", cluster)]) == 1.0 {
            Ok(())
        } else {
            Err(m.lines().filter(|l| l.starts_with("mcp_tap_store")).collect::<Vec<_>>().join("\n"))
        }
    })
    .await;
}

fn tls_store(port: u16, pki: &Pki, cert: &std::path::Path, key: &std::path::Path) -> Command {
    let bin = "/usr/bin/redis-server";
    assert!(std::path::Path::new(bin).exists(), "redis-server is missing: `apt-get install redis-server`");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .arg("--tls-cert-file")
    .arg(cert)
    .arg("--tls-key-file")
    .arg(key)
    .arg("--tls-ca-cert-file")
    .arg(&pki.ca_file)
    .args(["--tls-auth-clients", "no", "--user", "default", "off"])
    .args(["--user", "tap", "on", &format!(">{ACL_PASSWORD}"), "~mcp-tap:*", "+@all", "-@dangerous", "--dir"])
    .arg(&pki.dir);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reaches_a_tls_store_as_an_acl_user_held_to_its_own_keys() {
    let pki = Pki::new("store-tls");
    let (cert, key, _) = pki.issue();
    let store = spawn_peer("redis-server over TLS", |port| tls_store(port, &pki, &cert, &key)).await;
    let up = upstream(|_req| async { json_response(401, r#"{"error":{"name":"AuthenticationError"}}"#) }).await;
    let mut config = test_config(&format!("http://{up}"));
    config.cluster.store_url = Some(format!("rediss://tap@localhost:{}/0", store.port));
    config.cluster.password_env = Some("STORE_PASSWORD".into());
    config.cluster.ca_file = Some(pki.ca_file.clone());
    config.cluster.name = "tls".into();
    config.env = mcp_tap::config::Environment::fixed([("STORE_PASSWORD", ACL_PASSWORD)]);
    config.bursts.source.failures = 5;
    let tap = Tap::start(config.clone()).await;
    until_store_up(&tap, "tls").await;
    for _ in 0..8 {
        assert_eq!(post_mcp(&tap.url("/api/mcp-actions/v1"), &[], LIST).await.0, 401);
    }
    audit_when(&config, Duration::from_secs(5), "a source burst", |l| l["event"] == "burst_start").await;

    // What the replica wrote, read over TLS as the same user: all in its namespace, no refusal.
    let url = format!("rediss://tap:{ACL_PASSWORD}@localhost:{}/0", store.port);
    let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(std::fs::read(&pki.ca_file).unwrap()) };
    let client = redis::Client::build_with_tls(url.as_str(), certs).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = eventually(Duration::from_secs(5), "the burst's keys in the store", || async {
        let (_, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(0).arg("COUNT").arg(10_000).query_async(&mut conn.clone()).await.unwrap();
        if keys.is_empty() {
            Err("no keys yet".to_string())
        } else {
            Ok(keys)
        }
    })
    .await;
    assert!(keys.iter().all(|k| k.starts_with("mcp-tap:tls:")), "{keys:?}");
    let m = tap.metrics().await;
    assert_eq!(metric(&m, "mcp_tap_store_errors_total", &[]), 0.0, "the ACL refused nothing");
    tap.stop().await;
}

/// A replica that claimed a burst crashes (its task aborted: nothing flushed, nothing ended). The
/// other replica sees the burst leave the cluster's index unended and writes its `burst_end`,
/// once, with the count and client the claim left in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_whose_replica_crashed_is_ended_once_by_another() {
    let dir = std::env::temp_dir().join(format!("mcp-tap-orphans-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let _store = redis_server(&dir).await;
    let store_port = _store.port;
    let up = upstream(|_req| async { json_response(401, r#"{"error":{"name":"AuthenticationError"}}"#) }).await;
    let replica = || {
        let mut c = test_config(&format!("http://{up}"));
        c.cluster.store_url = Some(format!("redis://127.0.0.1:{store_port}/0"));
        c.cluster.password_env = Some("STORE_PASSWORD".into());
        c.cluster.name = "orphans".into();
        c.env = mcp_tap::config::Environment::fixed([("STORE_PASSWORD", STORE_PASSWORD)]);
        c.bursts.source.failures = 5;
        c.bursts.quiet_period = Duration::from_secs(2);
        c
    };
    let (config_a, config_b) = (replica(), replica());
    let (a, b) = (Tap::start(config_a.clone()).await, Tap::start(config_b.clone()).await);
    for tap in [&a, &b] {
        until_store_up(tap, "orphans").await;
    }
    for _ in 0..8 {
        assert_eq!(post_mcp(&a.url("/api/mcp-actions/v1"), &[], LIST).await.0, 401);
    }
    audit_when(&config_a, Duration::from_secs(5), "replica A claims the burst", |l| l["event"] == "burst_start").await;
    eventually(Duration::from_secs(5), "replica B sees the burst", || async {
        let m = b.metrics().await;
        if metric(&m, "mcp_tap_auth_burst_active", &[("scope", "source")]) == 1.0 {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;
    a.crash();
    let lines =
        audit_when(&config_b, Duration::from_secs(15), "replica B ends the orphan", |l| l["event"] == "burst_end")
            .await;
    let ends: Vec<_> = lines.iter().filter(|l| l["event"] == "burst_end").collect();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    assert_eq!((ends[0]["scope"].as_str(), ends[0]["key"].as_str()), (Some("source"), Some("127.0.0.1")));
    assert!(ends[0]["count"].as_u64().unwrap() >= 5, "{:?}", ends[0]);
    assert_eq!(ends[0]["client"], "none");
    assert!(audit_lines(&config_a).iter().all(|l| l["event"] != "burst_end"), "the crashed replica wrote none");
    b.stop().await;
}

/// An MCP 2026-07-28 client has no handshake: each replica it reaches would start a session of
/// its own. The one that claims it in the store counts it; the client is one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_on_two_replicas_is_one_session() {
    let dir = std::env::temp_dir().join(format!("mcp-tap-stateless-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = redis_server(&dir).await;
    let server = python_server(true).await;
    let replica = || {
        let mut c = config_for(&format!("http://127.0.0.1:{}", server.port), "py");
        c.cluster.store_url = Some(format!("redis://127.0.0.1:{}/0", store.port));
        c.cluster.password_env = Some("STORE_PASSWORD".into());
        c.cluster.name = "stateless".into();
        c.env = mcp_tap::config::Environment::fixed([("STORE_PASSWORD", STORE_PASSWORD)]);
        c.sessions.idle_timeout = Duration::from_secs(3);
        c
    };
    let taps = [Tap::start(replica()).await, Tap::start(replica()).await];
    for tap in &taps {
        until_store_up(tap, "stateless").await;
    }
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"agent-2026","version":"1"}}}}"#;
    for round in 0..6 {
        let (status, _, body) = post_mcp(&taps[round % 2].url("/mcp"), &[], list).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let ended = eventually(Duration::from_secs(20), "the session ended", || async {
        let mut ended = 0.0;
        let mut open = 0.0;
        for tap in &taps {
            let m = tap.metrics().await;
            ended += metric(&m, "mcp_tap_sessions_ended_total", &[("session_kind", "stateless")]);
            open += metric(&m, "mcp_tap_sessions_active", &[("mcp_route", "py")]);
        }
        if ended > 0.0 && open == 0.0 {
            Ok(ended)
        } else {
            Err(format!("{ended} ended, {open} open"))
        }
    })
    .await;
    assert_eq!(ended, 1.0, "one session in the cluster, not one per replica");
    for tap in taps {
        tap.stop().await;
    }
}

/// An MCP 2026-07-28 call that waits for the person: the balancer sends its retry to the other
/// replica, which links it through the store. One operation in the cluster, the wait included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_call_whose_retry_reaches_another_replica_is_one_operation() {
    let dir = std::env::temp_dir().join(format!("mcp-tap-rounds-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = redis_server(&dir).await;
    let server = python_server_with(&["--elicitation"]).await;
    let replica = || {
        let mut c = config_for(&format!("http://127.0.0.1:{}", server.port), "py");
        c.cluster.store_url = Some(format!("redis://127.0.0.1:{}/0", store.port));
        c.cluster.password_env = Some("STORE_PASSWORD".into());
        c.cluster.name = "rounds".into();
        c.env = mcp_tap::config::Environment::fixed([("STORE_PASSWORD", STORE_PASSWORD)]);
        c
    };
    let taps = [Tap::start(replica()).await, Tap::start(replica()).await];
    for tap in &taps {
        until_store_up(tap, "rounds").await;
    }
    let lb = crate::cluster::balancer(&[taps[0].proxy, taps[1].proxy], &dir).await;
    let call = ["--call", r#"delete_entity={"name":"x"}"#];
    let args = [&["--mode", "2026-07-28", "--no-list", "--accept-elicitation", "--think", "1.5"][..], &call].concat();
    let seen = python_client(&format!("http://127.0.0.1:{}/mcp", lb.port), &args).await;
    assert_eq!(seen["calls"][0]["content"][0], "deleted x", "{seen}");
    let tool = ("gen_ai_tool_name", "delete_entity");
    let mut per_replica = Vec::new();
    for tap in &taps {
        let m = tap.metrics().await;
        let of = |name: &str| metric(&m, name, &[("mcp_method_name", "tools/call"), tool]);
        per_replica.push((
            of("mcp_tap_input_required_total"),
            of("mcp_server_operation_duration_seconds_count"),
            of("mcp_server_operation_duration_seconds_sum"),
            of("mcp_tap_input_wait_duration_seconds_count"),
        ));
    }
    println!("per replica (asked, operations, seconds, waits): {per_replica:?}");
    let asked_on = per_replica.iter().position(|r| r.0 == 1.0).expect("one replica saw the question");
    let ended_on = per_replica.iter().position(|r| r.1 == 1.0).expect("one replica saw the answer");
    assert_ne!(asked_on, ended_on, "the balancer sent the retry to the other replica: {per_replica:?}");
    let total: f64 = per_replica.iter().map(|r| r.1).sum();
    assert_eq!(total, 1.0, "one operation in the cluster: {per_replica:?}");
    assert!(per_replica[ended_on].2 >= 1.4, "it includes the person's 1.5 s: {per_replica:?}");
    assert_eq!(per_replica[ended_on].3, 1.0, "the wait is recorded where the retry landed");
    drop(lb);
    for tap in taps {
        tap.stop().await;
    }
}
