//! Direct paging (optional): a burst start is posted to Alertmanager's v2 API at once, re-sent
//! while it lasts, and resolved (with `endsAt`) when it ends — seconds instead of a scrape cycle.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::burst::BurstKey;
use crate::config::Alertmanager;
use crate::metrics::Metrics;

pub const ALERT_NAME: &str = "MCPTapAuthFailureBurst";

pub struct Pager {
    endpoint: String,
    client: Client<HttpConnector, Full<Bytes>>,
    extra: BTreeMap<String, String>,
    active: Mutex<HashMap<BurstKey, (String, String)>>,
    metrics: Arc<Metrics>,
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Pager {
    pub fn new(cfg: &Alertmanager, metrics: Arc<Metrics>) -> Self {
        let base = cfg.url.as_deref().unwrap_or_default().trim_end_matches('/');
        Self {
            endpoint: format!("{base}/api/v2/alerts"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            extra: cfg.labels.clone(),
            active: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn alert(&self, key: &BurstKey, client: &str, starts_at: &str, ends_at: Option<&str>) -> serde_json::Value {
        let mut labels: BTreeMap<String, String> = self.extra.clone();
        labels.insert("alertname".into(), ALERT_NAME.into());
        labels.insert("scope".into(), key.scope.as_str().into());
        labels.insert("burst_key".into(), key.key.clone());
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

    fn post(&self, alerts: Vec<serde_json::Value>) {
        if alerts.is_empty() {
            return;
        }
        let body = serde_json::to_vec(&alerts).expect("alerts serialize");
        let req = http::Request::post(&self.endpoint)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("valid request");
        let client = self.client.clone();
        let metrics = self.metrics.clone();
        let endpoint = self.endpoint.clone();
        tokio::spawn(async move {
            let result = tokio::time::timeout(std::time::Duration::from_secs(5), client.request(req)).await;
            let failure = match result {
                Ok(Ok(resp)) if resp.status().is_success() => None,
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    let body =
                        resp.into_body().collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
                    Some(format!("answered {status}: {}", String::from_utf8_lossy(&body)))
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("no answer within 5s".into()),
            };
            if let Some(why) = failure {
                tracing::warn!(endpoint, "posting a burst alert to Alertmanager failed: {why}");
                metrics.record_audit_write_error(crate::metrics::AuditLoss::Alertmanager);
            }
        });
    }

    pub fn burst_started(&self, key: &BurstKey, client: &str) {
        let start = now();
        self.active.lock().expect("pager lock").insert(key.clone(), (start.clone(), client.to_string()));
        self.post(vec![self.alert(key, client, &start, None)]);
    }

    pub fn burst_ended(&self, key: &BurstKey, client: &str) {
        let start = self.active.lock().expect("pager lock").remove(key).map_or_else(now, |(s, _)| s);
        self.post(vec![self.alert(key, client, &start, Some(&now()))]);
    }

    pub fn resend(&self) {
        let alerts: Vec<_> = self
            .active
            .lock()
            .expect("pager lock")
            .iter()
            .map(|(key, (start, client))| self.alert(key, client, start, None))
            .collect();
        self.post(alerts);
    }
}
