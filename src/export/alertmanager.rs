//! Direct paging (optional): a burst start is posted to Alertmanager's v2 API at once, re-sent
//! while it lasts, and resolved (with `endsAt`) when it ends — seconds instead of a scrape cycle.
//! Alerts wait in one outbox keyed by burst, so a storm of bursts coalesces into a few posts: one
//! worker sends them in order, at most one post a second, each firing alert at most once per
//! resend interval, and reads at most 64 KiB of each answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::audit::Pages;
use crate::config::Alertmanager;
use crate::detect::burst::BurstKey;
use crate::metrics::{AuditLoss, Metrics};

pub(crate) const ALERT_NAME: &str = "MCPTapAuthFailureBurst";

/// The gap between two posts: a storm of bursts within it goes out as one post.
const POST_GAP: Duration = Duration::from_secs(1);
/// Alertmanager's answers are tiny; anything beyond this is not read.
const MAX_ANSWER: usize = 64 << 10;

pub(crate) struct Pager {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: String,
    client: Client<HttpConnector, Full<Bytes>>,
    extra: BTreeMap<String, String>,
    resend_interval: Duration,
    state: Mutex<State>,
    wake: Notify,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct State {
    /// Active bursts: start time and client.
    active: HashMap<BurstKey, (String, String)>,
    /// The latest alert of each burst not yet posted (bounded by the bursts tracked).
    outbox: BTreeMap<BurstKey, Outgoing>,
    /// When each firing alert was last posted.
    posted: HashMap<BurstKey, Instant>,
}

struct Outgoing {
    alert: serde_json::Value,
    resolved: bool,
}

fn now() -> String {
    humantime::format_rfc3339_millis(crate::clock::now()).to_string()
}

impl Pager {
    /// Starts the worker that posts the outbox; needs the Tokio runtime.
    pub(crate) fn new(cfg: &Alertmanager, metrics: Arc<Metrics>) -> Self {
        let base = cfg.url.as_deref().unwrap_or_default().trim_end_matches('/');
        let inner = Arc::new(Inner {
            endpoint: format!("{base}/api/v2/alerts"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            extra: cfg.labels.clone(),
            resend_interval: cfg.resend_interval,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            metrics,
        });
        tokio::spawn(worker(Arc::downgrade(&inner)));
        Self { inner }
    }
}

impl Pages for Pager {
    fn burst_started(&self, key: &BurstKey, client: &str) {
        let start = now();
        let alert = self.inner.alert(key, client, &start, None);
        let mut state = self.inner.state.lock().expect("pager lock");
        state.active.insert(*key, (start, client.to_string()));
        state.outbox.insert(*key, Outgoing { alert, resolved: false });
        drop(state);
        self.inner.wake.notify_one();
    }

    fn burst_ended(&self, key: &BurstKey, client: &str) {
        let mut state = self.inner.state.lock().expect("pager lock");
        let start = state.active.remove(key).map_or_else(now, |(s, _)| s);
        let alert = self.inner.alert(key, client, &start, Some(&now()));
        state.outbox.insert(*key, Outgoing { alert, resolved: true });
        drop(state);
        self.inner.wake.notify_one();
    }

    /// Queues every active burst again so Alertmanager keeps it firing.
    fn resend(&self) {
        let mut state = self.inner.state.lock().expect("pager lock");
        let again: Vec<(BurstKey, serde_json::Value)> = state
            .active
            .iter()
            .map(|(key, (start, client))| (*key, self.inner.alert(key, client, start, None)))
            .collect();
        for (key, alert) in again {
            state.outbox.entry(key).or_insert(Outgoing { alert, resolved: false });
        }
        drop(state);
        self.inner.wake.notify_one();
    }
}

/// Waits for news (or a second, for deferred alerts), posts what is due, and keeps a gap after
/// each post so a storm coalesces; ends when the pager is dropped.
async fn worker(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(pager) = inner.upgrade() else { return };
        tokio::select! {
            () = pager.wake.notified() => {}
            () = tokio::time::sleep(POST_GAP) => {}
        }
        let due = pager.take_due();
        if !due.is_empty() {
            pager.post(due).await;
            drop(pager);
            tokio::time::sleep(POST_GAP).await;
        }
    }
}

impl Inner {
    /// The alerts due now: every resolution, and firing alerts not posted within the resend
    /// interval; the rest stay in the outbox.
    fn take_due(&self) -> Vec<serde_json::Value> {
        let mut state = self.state.lock().expect("pager lock");
        let now = Instant::now();
        let keys: Vec<BurstKey> = state.outbox.keys().copied().collect();
        let mut due = Vec::new();
        for key in keys {
            let resolved = state.outbox[&key].resolved;
            let recent = state.posted.get(&key).is_some_and(|t| now.duration_since(*t) < self.resend_interval);
            if resolved || !recent {
                let out = state.outbox.remove(&key).expect("listed above");
                if resolved {
                    state.posted.remove(&key);
                } else {
                    state.posted.insert(key, now);
                }
                due.push(out.alert);
            }
        }
        due
    }

    fn alert(&self, key: &BurstKey, client: &str, starts_at: &str, ends_at: Option<&str>) -> serde_json::Value {
        let mut labels: BTreeMap<String, String> = self.extra.clone();
        labels.insert("alertname".into(), ALERT_NAME.into());
        labels.insert("scope".into(), key.scope.as_str().into());
        labels.insert("burst_key".into(), key.key.to_string());
        labels.insert("client".into(), client.into());
        labels.entry("severity".into()).or_insert_with(|| "page".into());
        let mut alert = serde_json::json!({
            "labels": labels,
            "annotations": {
                "summary": format!("Auth-failure burst ({}) at the MCP endpoint", key.scope.as_str()),
                "description": format!(
                    "mcp-tap sees a burst of 401/403 for {} {} (client {client}). See the audit log for reasons.",
                    key.scope.as_str(), key.key
                ),
            },
            "startsAt": starts_at,
        });
        if let Some(end) = ends_at {
            alert["endsAt"] = end.into();
        }
        alert
    }

    async fn post(&self, alerts: Vec<serde_json::Value>) {
        let body = serde_json::to_vec(&alerts).expect("alerts serialize");
        let req = http::Request::post(&self.endpoint)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("valid request");
        let result = tokio::time::timeout(Duration::from_secs(5), self.client.request(req)).await;
        let failure = match result {
            Ok(Ok(resp)) if resp.status().is_success() => {
                let _ = Limited::new(resp.into_body(), MAX_ANSWER).collect().await;
                None
            }
            Ok(Ok(resp)) => {
                let status = resp.status();
                let body =
                    Limited::new(resp.into_body(), MAX_ANSWER).collect().await.map(http_body_util::Collected::to_bytes);
                Some(format!("answered {status}: {}", String::from_utf8_lossy(&body.unwrap_or_default())))
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("no answer within 5s".into()),
        };
        if let Some(why) = failure {
            tracing::warn!(
                endpoint = self.endpoint,
                alerts = alerts.len(),
                "posting burst alerts to Alertmanager failed: {why}"
            );
            self.metrics.record_audit_write_error(AuditLoss::Alertmanager);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::detect::burst::Subject;
    use crate::metrics::Scope;

    /// An Alertmanager stand-in counting posts and the alerts in them; `posted` fires on each.
    async fn fake_alertmanager() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<Notify>) {
        let (posts, alerts, posted) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (p, a, n) = (posts.clone(), alerts.clone(), posted.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (p, a, n) = (p.clone(), a.clone(), n.clone());
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (p, a, n) = (p.clone(), a.clone(), n.clone());
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let v: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                        p.fetch_add(1, Ordering::SeqCst);
                        a.fetch_add(v.len(), Ordering::SeqCst);
                        n.notify_one();
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        (url, posts, alerts, posted)
    }

    /// Waits, post by post, until `want` alerts arrived.
    async fn alerts_reach(alerts: &AtomicUsize, posted: &Notify, want: usize) {
        while alerts.load(Ordering::SeqCst) < want {
            tokio::time::timeout(Duration::from_secs(10), posted.notified()).await.expect("another post");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_storm_of_bursts_coalesces_into_few_posts() {
        let (url, posts, alerts, posted) = fake_alertmanager().await;
        let cfg = Alertmanager { url: Some(url), ..Alertmanager::default() };
        let pager = Pager::new(&cfg, Arc::new(Metrics::new(vec![1.0])));
        let keys: Vec<BurstKey> = (0..200u32)
            .map(|i| BurstKey { scope: Scope::Source, key: Subject::Address(std::net::Ipv4Addr::from(i).into()) })
            .collect();
        for key in &keys {
            pager.burst_started(key, "unknown");
        }
        alerts_reach(&alerts, &posted, 200).await;
        assert!(posts.load(Ordering::SeqCst) <= 2, "200 bursts in {} posts", posts.load(Ordering::SeqCst));
        // Re-sends within the resend interval (60 s) are not posted again: no post in two gaps.
        for _ in 0..5 {
            pager.resend();
        }
        assert!(tokio::time::timeout(POST_GAP * 2, posted.notified()).await.is_err(), "nothing re-posted");
        for key in &keys {
            pager.burst_ended(key, "unknown");
        }
        alerts_reach(&alerts, &posted, 400).await;
        assert!(posts.load(Ordering::SeqCst) <= 4, "{} posts", posts.load(Ordering::SeqCst));
    }
}
