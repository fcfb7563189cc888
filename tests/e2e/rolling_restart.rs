//! A rolling restart as platform teams run one: three replicas of the real binary sharing a real
//! redis-server behind a real nginx (round robin, keep-alive upstream connections, no replica
//! ever marked down), with steady traffic, with and without a token. Each replica gets SIGTERM
//! while an SSE stream runs through it, and is started again, one after another: no request
//! fails, every stream completes, and every refusal the clients saw is in the audit trail, in a
//! line of its own or in a summary.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http_body_util::BodyExt;

/// An SSE exchange straight to replica `port` whose result comes only when the upstream is
/// told; resolves to the rest of the body once its first event came.
async fn held_stream(port: u16) -> tokio::task::JoinHandle<String> {
    let url = format!("http://127.0.0.1:{port}/api/mcp-actions/v1");
    let auth = format!("Bearer {FLEET_TOKEN}");
    let req = list_request(&url, &[("authorization", &auth), ("x-hold", "1")]);
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("progress"), "the stream started");
    tokio::spawn(async move {
        let rest = body.collect().await.map(http_body_util::Collected::to_bytes);
        rest.map_or_else(|e| format!("broken: {e}"), |b| String::from_utf8_lossy(&b).into_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_nginx_fails_no_request_and_loses_no_refusal() {
    let release = Arc::new(tokio::sync::Notify::new());
    let mut fleet = Fleet::start("rolling", backstage_like(release.clone()).await).await;
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let load = tokio::spawn(traffic(fleet.url(), 2, seen.clone(), stop.clone()));
    for n in 0..3 {
        seen.more(400).await;
        let stream = held_stream(fleet.ports[n]).await;
        fleet.sigterm(n);
        // The stream outlives the drain: the replica's port closes while it runs.
        let port = fleet.ports[n];
        eventually(Duration::from_secs(10), "the replica's listener closed", || async move {
            match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                Err(_) => Ok(()),
                Ok(_) => Err("still accepting".to_string()),
            }
        })
        .await;
        release.notify_waiters();
        assert_eq!(fleet.wait(n), Some(0), "replica {n} exits 0");
        let rest = stream.await.unwrap();
        assert!(rest.contains("\"tools\""), "the SSE stream in flight at SIGTERM completed: {rest}");
        fleet.restart(n).await;
    }
    seen.more(400).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    fleet.stop_all().await;
    let (ok, refused) = (seen.ok.load(Ordering::Relaxed), seen.refused.load(Ordering::Relaxed));
    let audited = fleet.audited_refusals();
    println!(
        "rolling restart of 3 replicas: {ok} × 200, {refused} × 401, {} failed; audit: {audited} refusals",
        seen.failed()
    );
    assert_eq!(seen.failed(), 0, "no request fails in a rolling restart");
    assert_eq!(audited, refused, "every refusal the clients saw is in the audit trail");
    // The refusals never paused: one burst per scope across the restarts, never ended twice.
    let (starts, ends) = (fleet.bursts("burst_start"), fleet.bursts("burst_end"));
    assert!(starts.values().all(|n| *n == 1) && !starts.is_empty(), "one burst per key: {starts:?}");
    assert!(ends.values().all(|n| *n <= 1), "a burst ends at most once: {ends:?}");
}
