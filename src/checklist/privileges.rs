//! Least privilege: per route and client, the tools the upstream advertised to that client (its
//! own last `tools/list`) and the tools it called within the window. An advertised tool never
//! called is a candidate to drop from the client's `accessRestrictions` or split-server filter.
//!
//! Bounded by the label bounds: routes are learned up to `routes.max_learned_keys`, clients are
//! `client` label values (`clients.max_subjects` + `clients.max_names` + a fixed few), and tool
//! names are those the route advertised (`labels.max_tools_per_route`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::metrics::ToolCounts;

/// What one client of one route was offered and used (as written to the state file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClientTools {
    pub route: String,
    pub client: String,
    /// Names from the client's own last `tools/list` (all its pages).
    pub advertised: BTreeSet<String>,
    /// A `tools/list` of the client was seen (an empty `advertised` is then a real answer).
    #[serde(default)]
    pub listed: bool,
    /// Tool name → Unix seconds of the last call.
    pub called: BTreeMap<String, u64>,
    /// Unix seconds of the client's last `tools/list` or call.
    pub last_seen: u64,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportLine {
    pub route: String,
    pub client: String,
    pub advertised: usize,
    pub called: Vec<String>,
    /// Advertised to this client and not called within the window.
    pub never_called: Vec<String>,
}

/// `mcp-tap report privileges`, as the admin endpoint serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub window_seconds: u64,
    pub clients: Vec<ReportLine>,
}

#[derive(Default)]
pub(crate) struct Privileges {
    /// Route → client → what it was offered and used; looked up by `&str` without allocating.
    clients: BTreeMap<String, BTreeMap<String, ClientTools>>,
}

impl Privileges {
    fn entry(&mut self, route: &str, client: &str) -> &mut ClientTools {
        if !self.clients.contains_key(route) {
            self.clients.insert(route.to_string(), BTreeMap::new());
        }
        let clients = self.clients.get_mut(route).expect("inserted");
        if !clients.contains_key(client) {
            let e = ClientTools { route: route.to_string(), client: client.to_string(), ..ClientTools::default() };
            clients.insert(client.to_string(), e);
        }
        clients.get_mut(client).expect("inserted")
    }

    fn get(&self, route: &str, client: &str) -> Option<&ClientTools> {
        self.clients.get(route)?.get(client)
    }

    /// A page of the client's `tools/list` answer; the first page replaces what it had. A
    /// client lists the same tools again and again, so names already held are kept rather than
    /// freed and allocated anew on every answer.
    pub(crate) fn listed(&mut self, route: &str, client: &str, tools: &[&str], first_page: bool, now: u64) {
        let e = self.entry(route, client);
        if first_page {
            let mut page = tools.to_vec();
            page.sort_unstable();
            e.advertised.retain(|name| page.binary_search(&name.as_str()).is_ok());
        }
        for tool in tools {
            if !e.advertised.contains(*tool) {
                e.advertised.insert((*tool).to_string());
            }
        }
        e.listed = true;
        e.last_seen = now;
    }

    /// The client called `tool` (a name the route advertised).
    pub(crate) fn called(&mut self, route: &str, client: &str, tool: &str, now: u64) {
        let e = self.entry(route, client);
        if let Some(at) = e.called.get_mut(tool) {
            *at = now;
        } else {
            e.called.insert(tool.to_string(), now);
        }
        e.last_seen = now;
    }

    /// Whether the client's call of `tool` at `now` is already on record (a repeat in the second).
    pub(crate) fn fresh(&self, route: &str, client: &str, tool: &str, now: u64) -> bool {
        self.get(route, client).and_then(|e| e.called.get(tool)).is_some_and(|at| *at >= now)
    }

    /// Whether `tool` is in the client's last `tools/list` (`None`: no list seen).
    pub(crate) fn listed_to(&self, route: &str, client: &str, tool: &str) -> Option<bool> {
        self.get(route, client).filter(|e| e.listed).map(|e| e.advertised.contains(tool))
    }

    /// Forgets calls and clients older than `before`.
    pub(crate) fn forget_before(&mut self, before: u64) {
        for clients in self.clients.values_mut() {
            clients.retain(|_, e| {
                e.called.retain(|_, at| *at >= before);
                e.last_seen >= before
            });
        }
        self.clients.retain(|_, clients| !clients.is_empty());
    }

    pub(crate) fn counts(&self) -> ToolCounts {
        self.all().map(|e| ((e.route.clone(), e.client.clone()), (e.advertised.len(), e.called.len()))).collect()
    }

    pub(crate) fn entries(&self) -> Vec<ClientTools> {
        self.all().cloned().collect()
    }

    pub(crate) fn load(&mut self, entries: Vec<ClientTools>) {
        for e in entries {
            let (route, client) = (e.route.clone(), e.client.clone());
            self.clients.entry(route).or_default().insert(client, e);
        }
    }

    pub(crate) fn report(&self, window_seconds: u64) -> Report {
        report(self.all(), window_seconds)
    }

    fn all(&self) -> impl Iterator<Item = &ClientTools> {
        self.clients.values().flat_map(BTreeMap::values)
    }
}

/// What several replicas saw, as one: per route and client, the tools advertised to any of them,
/// each call at its latest time.
pub(crate) fn union(a: Vec<ClientTools>, b: Vec<ClientTools>) -> Vec<ClientTools> {
    let mut merged: BTreeMap<(String, String), ClientTools> = BTreeMap::new();
    for e in a.into_iter().chain(b) {
        match merged.get_mut(&(e.route.clone(), e.client.clone())) {
            Some(m) => {
                m.advertised.extend(e.advertised);
                m.listed |= e.listed;
                for (tool, at) in e.called {
                    let t = m.called.entry(tool).or_insert(at);
                    *t = (*t).max(at);
                }
                m.last_seen = m.last_seen.max(e.last_seen);
            }
            None => {
                merged.insert((e.route.clone(), e.client.clone()), e);
            }
        }
    }
    merged.into_values().collect()
}

/// The report of `entries` (already limited to the window).
pub(crate) fn report<'a>(entries: impl Iterator<Item = &'a ClientTools>, window_seconds: u64) -> Report {
    let clients = entries
        .map(|e| ReportLine {
            route: e.route.clone(),
            client: e.client.clone(),
            advertised: e.advertised.len(),
            called: e.called.keys().cloned().collect(),
            never_called: e.advertised.iter().filter(|t| !e.called.contains_key(*t)).cloned().collect(),
        })
        .collect();
    Report { window_seconds, clients }
}

impl Report {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let head = ("ROUTE", "CLIENT", "ADVERTISED", "CALLED", "NEVER CALLED");
        let rows: Vec<(String, String, String, String, String)> = self
            .clients
            .iter()
            .map(|l| {
                let never = if l.never_called.is_empty() { "-".to_string() } else { l.never_called.join(", ") };
                (l.route.clone(), l.client.clone(), l.advertised.to_string(), l.called.len().to_string(), never)
            })
            .collect();
        let w0 = rows.iter().map(|r| r.0.len()).chain([head.0.len()]).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r.1.len()).chain([head.1.len()]).max().unwrap_or(0);
        out.push_str(&format!("{:w0$}  {:w1$}  {:>10}  {:>6}  {}\n", head.0, head.1, head.2, head.3, head.4));
        for r in &rows {
            out.push_str(&format!("{:w0$}  {:w1$}  {:>10}  {:>6}  {}\n", r.0, r.1, r.2, r.3, r.4));
        }
        let days = self.window_seconds / 86_400;
        out.push_str(&format!(
            "\nNever called: advertised to the client in its last tools/list, not called in the last {days} day(s).\n\
             Candidates to drop from its accessRestrictions (or split-server filter).\n"
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_tools_never_called_are_reported() {
        let mut p = Privileges::default();
        p.listed("default", "ci-agent", &["a", "b"], true, 10);
        p.listed("default", "ci-agent", &["c"], false, 10);
        p.called("default", "ci-agent", "b", 20);
        let r = p.report(86_400 * 30);
        assert_eq!(r.clients.len(), 1);
        assert_eq!((r.clients[0].advertised, r.clients[0].called.clone()), (3, vec!["b".to_string()]));
        assert_eq!(r.clients[0].never_called, ["a", "c"]);
        assert!(r.table().contains("ci-agent") && r.table().contains("a, c"));
        // A new first page replaces the advertised set; old calls age out of the window.
        p.listed("default", "ci-agent", &["b"], true, 30);
        p.forget_before(25);
        assert_eq!(p.counts()[&("default".into(), "ci-agent".into())], (1, 0));
    }
}
