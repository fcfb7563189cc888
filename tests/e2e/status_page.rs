//! The status page on the admin port, in a real headless Chromium, while the demo's traffic runs:
//! its numbers are the registry's at that moment, a burst appears and goes, and the page asks
//! for nothing outside the admin port. Writes the screenshot of docs/operations.md to target/screenshots/.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;

/// `mcp-tap demo` on free ports, with the URLs its banner prints.
struct Demo {
    child: Child,
    urls: BTreeMap<String, String>,
}

impl Demo {
    fn start(config: &str) -> Self {
        let path = std::env::temp_dir().join(format!("mcp-tap-status-page-{}.yaml", std::process::id()));
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
            .args(["demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut urls = BTreeMap::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            for name in ["status page", "tap", "metrics"] {
                if let Some(url) = line.trim().strip_prefix(name).filter(|u| u.starts_with(' ')) {
                    urls.insert(name.to_string(), url.trim().to_string());
                }
            }
            if urls.len() == 3 {
                break;
            }
        }
        assert_eq!(urls.len(), 3, "the demo's banner names the status page, the tap and /metrics: {urls:?}");
        Self { child, urls }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value `/metrics` has for one `data-key` of the page.
fn registry_value(metrics: &str, key: &str) -> f64 {
    let parts: Vec<&str> = key.split('|').collect();
    let sum_where = |name: &str, keep: &dyn Fn(&BTreeMap<String, String>) -> bool| -> f64 {
        series(metrics, name).iter().filter(|(l, _)| keep(l)).map(|(_, v)| v).sum()
    };
    let is = |l: &BTreeMap<String, String>, k: &str, v: &str| l.get(k).map_or("", String::as_str) == v;
    match parts.as_slice() {
        ["op", route, method, target, what] => sum_where("mcp_server_operation_duration_seconds_count", &|l| {
            let named = is(l, "gen_ai_tool_name", target) || is(l, "gen_ai_prompt_name", target);
            is(l, "mcp_route", route)
                && is(l, "mcp_method_name", method)
                && named
                && (*what == "count" || !is(l, "error_type", ""))
        }),
        ["auth", reason, client] => {
            sum_where("mcp_tap_auth_failures_total", &|l| is(l, "reason", reason) && is(l, "client", client))
        }
        ["bursts", "active"] => sum_where("mcp_tap_auth_burst_active", &|_| true),
        ["burst", scope] => sum_where("mcp_tap_auth_burst_active", &|l| is(l, "scope", scope)),
        ["sessions", route] => sum_where("mcp_tap_sessions_active", &|l| is(l, "mcp_route", route)),
        ["tools", route] => sum_where("mcp_tap_tools_advertised", &|l| is(l, "mcp_route", route)),
        _ => panic!("a data-key this test does not know: {key}"),
    }
}

async fn scrape(url: &str) -> String {
    String::from_utf8_lossy(&get(url).await.2).into_owned()
}

/// One visit of the status page: every cell lies between /metrics just before and just after the
/// page was built, and the page asks for nothing outside the admin port.
async fn visit_matches_metrics(browser: &mut Browser, page: &str, metrics: &str) -> Result<(), String> {
    let origin = page.trim_end_matches('/').to_string();
    let before = scrape(metrics).await;
    let visit = browser.load(page, None);
    let after = scrape(metrics).await;
    for url in &visit.requests {
        assert!(url.starts_with(&origin), "the page asked for {url}, outside the admin port");
    }
    let calls = visit.values.keys().filter(|k| k.starts_with("op|default|tools/call|")).count();
    if calls < 3 || !visit.values.contains_key("auth|missing_credentials|none") {
        return Err(format!("not all of the demo's traffic shows yet: {:?}", visit.values));
    }
    for (key, shown) in &visit.values {
        let shown: f64 = shown.parse().unwrap_or_else(|_| panic!("{key} shows {shown:?}"));
        let (a, b) = (registry_value(&before, key), registry_value(&after, key));
        // Counters only grow, so the page's value lies between the two scrapes. Sessions
        // and tools are compared when they held still. Bursts (a 1 s quiet period here)
        // can start and end between two scrapes; the second half of the test follows one.
        let gauge = !key.starts_with("op|") && !key.starts_with("auth|");
        if key.starts_with("burst") || (gauge && a != b) {
            continue;
        }
        assert!(
            a.min(b) <= shown && shown <= a.max(b),
            "{key}: the page shows {shown}, /metrics had {a} before and {b} after"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_registry_follows_a_burst_and_stays_on_its_port() {
    // Fast buckets and a short quiet period, so a burst ends within the test although the demo's
    // own 401s and 403s keep coming from the same address.
    let demo = Demo::start(
        "bursts:\n  source: {failures: 20, window: 2s}\n  credential: {failures: 20, window: 2s}\n  quiet_period: 1s\n",
    );
    let (page, tap, metrics) = (&demo.urls["status page"], &demo.urls["tap"], &demo.urls["metrics"]);
    let mut browser = Browser::start();

    // The numbers: every cell lies between /metrics just before and just after the page was built.
    eventually(Duration::from_secs(30), "the status page showing the demo's traffic as /metrics does", || {
        // `eventually` wants a future per try; the browser is borrowed for this one.
        let visit = visit_matches_metrics(&mut browser, page, metrics);
        std::future::ready(tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(visit)))
    })
    .await;

    // A burst of our own once the demo's first one is over: it shows, then goes.
    let active = |browser: &mut Browser, screenshot: Option<&std::path::Path>| -> f64 {
        let v = browser.load(page, screenshot);
        v.values["bursts|active"].parse().unwrap()
    };
    eventually(Duration::from_secs(30), "no active burst (the demo's own has ended)", || {
        std::future::ready(if active(&mut browser, None) == 0.0 { Ok(()) } else { Err("bursts active".to_string()) })
    })
    .await;
    for _ in 0..30 {
        let headers =
            [("authorization", "Bearer stolen-token-from-a-paste-site"), ("content-type", "application/json")];
        let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        request("POST", tap, &headers, body).await;
    }
    let shots = repo().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("status-page.png");
    eventually(Duration::from_secs(10), "the burst on the status page", || {
        std::future::ready(if active(&mut browser, Some(&shot)) > 0.0 { Ok(()) } else { Err("no burst".to_string()) })
    })
    .await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a real screenshot of the page was written");
    eventually(Duration::from_secs(30), "the burst gone from the status page after the quiet period", || {
        std::future::ready(if active(&mut browser, None) == 0.0 { Ok(()) } else { Err("still active".to_string()) })
    })
    .await;
}
