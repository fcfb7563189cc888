//! Faults production brings, each against the real component, each with its numbers printed:
//! a replica SIGKILLed, the store paused (`CLIENT PAUSE`) and restarted, Backstage restarted
//! under traffic. Only what the fault itself breaks may fail. (An upstream that breaks an SSE
//! stream mid-way: `proxy_behaviour::an_upstream_that_dies_mid_stream_is_passed_on_and_counted`.)

use crate::common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_replica_fails_only_its_own_requests_and_the_burst_stays_one() {
    let mut fleet = Fleet::start("sigkill", backstage_like(Arc::default()).await).await;
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let load = tokio::spawn(traffic(fleet.url(), 2, seen.clone(), stop.clone()));
    seen.more(400).await;
    Command::new("kill").args(["-KILL", &fleet.replicas[1].child.id().to_string()]).status().unwrap();
    tokio::task::block_in_place(|| fleet.replicas[1].child.wait()).unwrap();
    seen.more(400).await;
    let failed_by_kill = seen.failed();
    fleet.restart(1).await;
    seen.more(400).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    fleet.stop_all().await;
    let starts = fleet.bursts("burst_start");
    println!(
        "SIGKILL of 1 of 3 replicas: {} answered, {failed_by_kill} failed (4 clients, so at most 4 in flight), \
         {} failed after; burst starts {starts:?}",
        seen.answers(),
        seen.failed() - failed_by_kill
    );
    assert!(failed_by_kill <= 4, "only the killed replica's requests in flight fail: {failed_by_kill}");
    assert_eq!(seen.failed(), failed_by_kill, "nothing fails after the kill");
    assert!(starts.keys().any(|(scope, _)| scope == "source"), "the refusals make a burst: {starts:?}");
    assert!(starts.values().all(|n| *n == 1), "each burst starts once in the cluster: {starts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_paused_then_restarted_under_traffic_fails_nothing() {
    let mut fleet = Fleet::start("store-faults", backstage_like(Arc::default()).await).await;
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let load = tokio::spawn(traffic(fleet.url(), 4, seen.clone(), stop.clone()));
    let start = Instant::now();
    seen.more(400).await;
    let paused = Instant::now();
    let port = fleet.store_port.to_string();
    let pause = Command::new("redis-cli")
        .args(["-p", &port, "-a", STORE_PASSWORD, "--no-auth-warning", "CLIENT", "PAUSE", "4000", "ALL"])
        .output()
        .expect("redis-cli (Debian redis-tools, with redis-server): run scripts/test.sh");
    assert_eq!(String::from_utf8_lossy(&pause.stdout).trim(), "OK");
    eventually(Duration::from_secs(10), "4 s of traffic while the store is paused", || async {
        if paused.elapsed() >= Duration::from_secs(4) {
            Ok(())
        } else {
            Err("paused".to_string())
        }
    })
    .await;
    let resumed = Instant::now();
    seen.more(200).await;
    Command::new("kill").args(["-TERM", &fleet.store.child.id().to_string()]).status().unwrap();
    tokio::task::block_in_place(|| fleet.store.child.wait()).unwrap();
    let down = Instant::now();
    seen.more(200).await;
    fleet.store = spawn_peer_on(fleet.store_port, redis_command(fleet.store_port, &fleet.dir), "redis-server again")
        .await
        .unwrap();
    let back = Instant::now();
    seen.more(400).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let end = Instant::now();
    let (before, during, without, after) =
        (seen.p99(start, paused), seen.p99(paused, resumed), seen.p99(down, back), seen.p99(back, end));
    println!(
        "store faults, p99 (exchanges): before {before:?}, paused 4 s {during:?}, down {without:?}, back {after:?}; \
         {} answered, {} failed",
        seen.answers(),
        seen.failed()
    );
    fleet.stop_all().await;
    assert_eq!(seen.failed(), 0, "no request fails while the store is paused or down");
    assert!(during.0 < Duration::from_secs(1), "requests never wait on a paused store: p99 {:?}", during.0);
    let lost_and_regained = |e: &str| fleet.audit_events().iter().filter(|v| v["event"] == e).count();
    assert!(lost_and_regained("store_lost") >= 1 && lost_and_regained("store_regained") >= 1);
}

/// An exchange's start, its end and its status (`None`: the exchange failed).
type Timed = (Instant, Instant, Option<u16>);

/// Statuses from two clients of the tap at `url` until `stop`, each with when it was sent and came.
async fn timed_statuses(url: String, stop: Arc<AtomicBool>) -> Vec<Timed> {
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (url, stop) = (url.clone(), stop.clone());
        clients.spawn(async move {
            let mut out = Vec::new();
            let auth = format!("Bearer {TOKEN_FULL}");
            // Paced like a client that calls a tool every 20 ms.
            let mut pace = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                let sent = Instant::now();
                let status = post_status(&url, &[("authorization", &auth)]).await;
                out.push((sent, Instant::now(), status));
            }
            out
        });
    }
    clients.join_all().await.concat()
}

/// Waits until the tap has answered `n` more 200s.
async fn more_oks(tap: &Tap, n: u32) {
    let ok = || async {
        metric(&tap.metrics().await, "mcp_tap_http_requests_total", &[("http_response_status_code", "200")])
    };
    let since = ok().await;
    eventually(Duration::from_secs(30), "200s through the tap", || async {
        let now = ok().await;
        if now >= since + f64::from(n) {
            Ok(())
        } else {
            Err(format!("{} more", now - since))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backstage_restarted_under_traffic_gives_502_only_while_it_is_down() {
    let port = restart_port();
    let backstage = backstage_on(port, TOKEN_FULL).await;
    let tap = Tap::start(test_config(&format!("http://127.0.0.1:{port}"))).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(timed_statuses(tap.url("/api/mcp-actions/v1"), stop.clone()));
    more_oks(&tap, 20).await;
    let killed = Instant::now();
    drop(backstage); // SIGKILL: Backstage crashes
    let backstage = backstage_on(port, TOKEN_FULL).await;
    more_oks(&tap, 20).await;
    stop.store(true, Ordering::Relaxed);
    let statuses = load.await.unwrap();
    // Back: the first 200 to an exchange sent after the kill (Backstage answers 404 while its MCP
    // plugin mounts, which can outlast its readiness check). An exchange sent before the kill may
    // still end in a 200 after it: that is not the restarted Backstage answering.
    let back = statuses.iter().filter(|(sent, _, s)| *sent > killed && *s == Some(200)).map(|(_, at, _)| *at).min();
    let back = back.expect("traffic succeeds again after the restart");
    let count = |f: &dyn Fn(&Timed) -> bool| statuses.iter().filter(|s| f(s)).count();
    let bad_gateway = count(&|(_, _, s)| *s == Some(502));
    let down = |sent: &Instant, at: &Instant| *at >= killed && *sent <= back;
    let outside = count(&|(sent, at, s)| *s != Some(200) && !down(sent, at));
    // While Backstage starts, it answers before its MCP plugin is mounted (404): its own answer.
    let starting = count(&|(sent, at, s)| matches!(s, Some(404 | 503)) && down(sent, at));
    // The exchanges in flight when Backstage died break as its streams did (one per client).
    let broken = count(&|(sent, at, s)| s.is_none() && down(sent, at));
    let other = count(&|(_, _, s)| !matches!(s, Some(200 | 502))) - starting - broken;
    let m = tap.metrics().await;
    let unavailable =
        metric(&m, "mcp_server_operation_duration_seconds_count", &[("error_type", "upstream_unavailable")]);
    println!(
        "Backstage restarted: down and back in {:?}; {} exchanges, {bad_gateway} answered 502 while it was down, \
         {broken} broken in flight at the crash, {starting} answered by Backstage while it started, \
         {outside} failed outside that, \
         upstream_unavailable {unavailable}",
        back - killed,
        statuses.len()
    );
    drop(backstage);
    assert!(broken <= 2, "only the 2 clients' exchanges in flight at the crash break: {broken}");
    assert_eq!(other, 0, "nothing but 200, and 502 or Backstage's own answers while it restarts");
    assert_eq!(outside, 0, "502 only while Backstage is down");
    assert!(bad_gateway > 0, "the restart was seen");
    assert_eq!(unavailable as usize, bad_gateway, "every 502 counted as upstream_unavailable");
}
