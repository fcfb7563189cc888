//! "What is happening right now", from the tap's own metrics: snapshots of the registry taken
//! every few seconds, and the view over the last minutes that the status page (`/` on the admin
//! listener) and the demo's terminal summary show. Only what `/metrics` exposes is shown.

pub(crate) mod page;
pub(crate) mod terminal;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::proto::{MetricFamily, MetricType};
use tokio::time::Instant;

use crate::metrics::catalogue as c;

/// How often the history takes a snapshot.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// How far back rates and percentiles look.
pub(crate) const WINDOW: Duration = Duration::from_secs(300);

/// One row of the operations table: a route, a method and the tool or prompt it named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpKey {
    pub route: String,
    pub method: String,
    pub target: String,
}

/// An operation histogram summed over the labels the status page does not split by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ops {
    pub count: f64,
    pub errors: f64,
    /// (upper bound in seconds, cumulative count), ascending; `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
}

/// The registry at one moment, reduced to what the status page shows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    pub operations: BTreeMap<OpKey, Ops>,
    /// Auth failures by (reason, client), over routes, statuses and methods.
    pub auth_failures: BTreeMap<(String, String), f64>,
    pub bursts_active: BTreeMap<String, f64>,
    pub bursts_started: f64,
    pub sessions_active: BTreeMap<String, f64>,
    pub tools_advertised: BTreeMap<String, f64>,
    pub connections_open: f64,
    /// `mcp_tap_config_last_reload_successful`, and reloads by result.
    pub reload_ok: Option<bool>,
    pub reloads: BTreeMap<String, f64>,
    /// Requests of the OAuth journey by (step, outcome).
    pub oauth_steps: BTreeMap<(String, String), f64>,
    /// OAuth clients' refreshes and re-authorizations, by client.
    pub oauth_refreshes: BTreeMap<String, f64>,
    pub oauth_reauthorizations: BTreeMap<String, f64>,
}

fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    m.get_label().iter().find(|l| l.name() == name).map_or("", prometheus::proto::LabelPair::value)
}

fn value(family: &MetricFamily, m: &prometheus::proto::Metric) -> f64 {
    match family.get_field_type() {
        MetricType::COUNTER => m.get_counter().get_value(),
        _ => m.get_gauge().get_value(),
    }
}

/// Sums a family's values by the given label.
fn by_label(family: &MetricFamily, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for m in family.get_metric() {
        *out.entry(label(m, name).to_string()).or_default() += value(family, m);
    }
    out
}

/// Sums a family's values by a pair of labels.
fn by_labels(family: &MetricFamily, first: &str, second: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for m in family.get_metric() {
        let key = (label(m, first).to_string(), label(m, second).to_string());
        *out.entry(key).or_default() += value(family, m);
    }
    out
}

/// Each counter of `now` with its total and its increase since `base`.
fn changes<K: Ord + Clone>(now: &BTreeMap<K, f64>, base: Option<&BTreeMap<K, f64>>) -> Vec<(K, f64, f64)> {
    now.iter()
        .map(|(k, total)| (k.clone(), *total, total - base.and_then(|b| b.get(k)).copied().unwrap_or(0.0)))
        .collect()
}

impl Snapshot {
    pub fn from_families(families: &[MetricFamily], at: Instant) -> Self {
        let mut s = Snapshot {
            at,
            operations: BTreeMap::new(),
            auth_failures: BTreeMap::new(),
            bursts_active: BTreeMap::new(),
            bursts_started: 0.0,
            sessions_active: BTreeMap::new(),
            tools_advertised: BTreeMap::new(),
            connections_open: 0.0,
            reload_ok: None,
            reloads: BTreeMap::new(),
            oauth_steps: BTreeMap::new(),
            oauth_refreshes: BTreeMap::new(),
            oauth_reauthorizations: BTreeMap::new(),
        };
        for f in families {
            let name = f.name();
            if name == c::OPERATION_DURATION.name {
                s.add_operations(f);
            } else if name == c::AUTH_FAILURES.name {
                s.auth_failures = by_labels(f, "reason", "client");
            } else if name == c::OAUTH_REQUESTS.name {
                s.oauth_steps = by_labels(f, "step", "outcome");
            } else if name == c::OAUTH_REFRESHES.name {
                s.oauth_refreshes = by_label(f, "client");
            } else if name == c::OAUTH_REAUTHORIZATIONS.name {
                s.oauth_reauthorizations = by_label(f, "client");
            } else if name == c::BURST_ACTIVE.name {
                s.bursts_active = by_label(f, "scope");
            } else if name == c::BURSTS.name {
                s.bursts_started = by_label(f, "scope").values().sum();
            } else if name == c::SESSIONS_ACTIVE.name {
                s.sessions_active = by_label(f, "mcp_route");
            } else if name == c::TOOLS_ADVERTISED.name {
                s.tools_advertised = by_label(f, "mcp_route");
            } else if name == c::CONNECTIONS_OPEN.name {
                s.connections_open = by_label(f, "").values().sum();
            } else if name == c::CONFIG_RELOAD_OK.name {
                s.reload_ok = f.get_metric().first().map(|m| value(f, m) > 0.0);
            } else if name == c::CONFIG_RELOADS.name {
                s.reloads = by_label(f, "result");
            }
        }
        s
    }

    fn add_operations(&mut self, family: &MetricFamily) {
        for m in family.get_metric() {
            let target = match label(m, "gen_ai_tool_name") {
                "" => label(m, "gen_ai_prompt_name"),
                tool => tool,
            };
            let key = OpKey {
                route: label(m, "mcp_route").to_string(),
                method: label(m, "mcp_method_name").to_string(),
                target: target.to_string(),
            };
            let h = m.get_histogram();
            let ops = self.operations.entry(key).or_default();
            let count = h.get_sample_count() as f64;
            ops.count += count;
            if !label(m, "error_type").is_empty() {
                ops.errors += count;
            }
            if ops.buckets.is_empty() {
                ops.buckets = h.get_bucket().iter().map(|b| (b.upper_bound(), 0.0)).collect();
                ops.buckets.push((f64::INFINITY, 0.0));
            }
            for (slot, b) in ops.buckets.iter_mut().zip(h.get_bucket()) {
                slot.1 += b.cumulative_count() as f64;
            }
            if let Some(inf) = ops.buckets.last_mut() {
                inf.1 += count;
            }
        }
    }
}

/// One operations row as shown: totals now, and rates and percentiles over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct OpRow {
    pub key: OpKey,
    pub count: f64,
    pub errors: f64,
    pub per_second: f64,
    /// Errors over operations in the window; `None` when there were none.
    pub error_ratio: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// What the page and the terminal show.
#[derive(Debug, Clone)]
pub struct View {
    pub now: Snapshot,
    /// Seconds between the oldest snapshot used and now (0 before the first sample).
    pub window: f64,
    pub operations: Vec<OpRow>,
    /// Auth failures by (reason, client): total now, and in the window.
    pub auth: Vec<((String, String), f64, f64)>,
    /// OAuth journey requests by (step, outcome): total now, and in the window.
    pub oauth: Vec<((String, String), f64, f64)>,
}

/// Snapshots of the last `WINDOW`, oldest first.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Snapshot>>,
}

impl History {
    pub fn record(&self, snapshot: Snapshot) {
        let mut samples = self.samples.lock().expect("status history lock");
        let cutoff = snapshot.at.checked_sub(WINDOW);
        while samples.front().is_some_and(|s| cutoff.is_some_and(|c| s.at < c)) {
            samples.pop_front();
        }
        samples.push_back(snapshot);
    }

    /// The view of the latest snapshot against the oldest; `None` before the first.
    pub fn latest_view(&self) -> Option<View> {
        let samples = self.samples.lock().expect("status history lock");
        let (first, last) = (samples.front()?.clone(), samples.back()?.clone());
        drop(samples);
        let at = last.at;
        Some(view(last, Some(&first).filter(|f| f.at < at)))
    }

    /// The view of `now` against the oldest snapshot of the window.
    pub fn view(&self, now: Snapshot) -> View {
        let samples = self.samples.lock().expect("status history lock");
        let base = samples.front().filter(|b| b.at < now.at).cloned();
        drop(samples);
        view(now, base.as_ref())
    }
}

fn view(now: Snapshot, base: Option<&Snapshot>) -> View {
    let window = base.map_or(0.0, |b| now.at.saturating_duration_since(b.at).as_secs_f64());
    let operations = now
        .operations
        .iter()
        .map(|(key, ops)| {
            let before = base.and_then(|b| b.operations.get(key));
            let count = ops.count - before.map_or(0.0, |b| b.count);
            let errors = ops.errors - before.map_or(0.0, |b| b.errors);
            let buckets: Vec<(f64, f64)> = ops
                .buckets
                .iter()
                .enumerate()
                .map(|(i, (le, c))| (*le, c - before.and_then(|b| b.buckets.get(i)).map_or(0.0, |b| b.1)))
                .collect();
            OpRow {
                key: key.clone(),
                count: ops.count,
                errors: ops.errors,
                per_second: if window > 0.0 { count / window } else { 0.0 },
                error_ratio: (count > 0.0).then(|| errors / count),
                p50: quantile(0.5, &buckets),
                p99: quantile(0.99, &buckets),
            }
        })
        .collect();
    let auth = changes(&now.auth_failures, base.map(|b| &b.auth_failures));
    let oauth = changes(&now.oauth_steps, base.map(|b| &b.oauth_steps));
    View { now, window, operations, auth, oauth }
}

/// The q-quantile of cumulative buckets, interpolated within a bucket as Prometheus's
/// `histogram_quantile` does; `None` without observations.
pub(crate) fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, cumulative) in buckets {
        if cumulative >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = cumulative - lower.1;
            let fraction = if in_bucket > 0.0 { (rank - lower.1) / in_bucket } else { 0.0 };
            return Some(lower.0 + (le - lower.0) * fraction);
        }
        lower = (le, cumulative);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests;
