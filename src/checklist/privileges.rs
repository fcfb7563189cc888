//! Least privilege: per route and client, the tools the upstream advertised to that client (its
//! own last `tools/list`) and the tools it called within the window. An advertised tool never
//! called is a candidate to drop from the client's `accessRestrictions` or split-server filter.
//!
//! Bounded by the label bounds: routes are learned up to `routes.max_learned_keys`, clients are
//! `client` label values (`clients.max_subjects` + `clients.max_names` + a fixed few), and tool
//! names are those the route advertised (`labels.max_tools_per_route`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::detect::reach::Reached;
use crate::mcp::actions_path::ACTIONS_API_ROUTE;
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
    /// `mcp`, or `actions_api` (the route of the plugins' actions API).
    #[serde(default)]
    pub surface: String,
    pub client: String,
    pub advertised: usize,
    /// The tools advertised to this client on this route.
    #[serde(default)]
    pub tools: Vec<String>,
    pub called: Vec<String>,
    /// Advertised here, not called here, but called by this client on the other surface.
    #[serde(default)]
    pub called_on_other_surface: Vec<String>,
    /// Advertised to this client and not called on either surface within the window.
    pub never_called: Vec<String>,
}

/// `mcp-tap report privileges`, as the admin endpoint serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub window_seconds: u64,
    pub clients: Vec<ReportLine>,
    /// The named MCP servers (`/api/mcp-actions/v1/{key}`), configured or seen.
    #[serde(default)]
    pub named_servers: Vec<String>,
    /// What an operator should know: clients on the default server while named servers exist.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Credentials refused on MCP that a plugin's actions API answered (evidence, not findings).
    #[serde(default)]
    pub actions_api_reach: Vec<Reached>,
}

/// What the report needs besides the entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// `routes.server_keys`, and the labels of `routes.extra` (MCP servers that are not
    /// Backstage's named servers).
    pub configured_servers: Vec<String>,
    pub extra_labels: Vec<String>,
    pub reach: Vec<Reached>,
}

/// The default MCP server's route label.
const DEFAULT: &str = "default";

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

    pub(crate) fn report(&self, window_seconds: u64, cx: Context) -> Report {
        report(self.all(), window_seconds, cx)
    }

    fn all(&self) -> impl Iterator<Item = &ClientTools> + Clone {
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

fn surface(route: &str) -> &'static str {
    if route == ACTIONS_API_ROUTE {
        "actions_api"
    } else {
        "mcp"
    }
}

/// The report of `entries` (already limited to the window). A tool counts as used when the
/// client called it on either surface; the line says where.
pub(crate) fn report<'a>(
    entries: impl Iterator<Item = &'a ClientTools> + Clone,
    window_seconds: u64,
    cx: Context,
) -> Report {
    // Per client and surface, every tool it called.
    let mut calls: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for e in entries.clone() {
        calls.entry((&e.client, surface(&e.route))).or_default().extend(e.called.keys().map(String::as_str));
    }
    let elsewhere = |e: &ClientTools, tool: &str| {
        let other = if surface(&e.route) == "mcp" { "actions_api" } else { "mcp" };
        calls.get(&(e.client.as_str(), other)).is_some_and(|c| c.contains(tool))
    };
    let clients: Vec<ReportLine> = entries
        .map(|e| {
            let unused = e.advertised.iter().filter(|t| !e.called.contains_key(*t));
            let (other, never): (Vec<&String>, Vec<&String>) = unused.partition(|t| elsewhere(e, t));
            ReportLine {
                route: e.route.clone(),
                surface: surface(&e.route).to_string(),
                client: e.client.clone(),
                advertised: e.advertised.len(),
                tools: e.advertised.iter().cloned().collect(),
                called: e.called.keys().cloned().collect(),
                called_on_other_surface: other.into_iter().cloned().collect(),
                never_called: never.into_iter().cloned().collect(),
            }
        })
        .collect();
    let named = named_servers(&clients, &cx);
    let notes = default_server_notes(&clients, &named);
    Report { window_seconds, clients, named_servers: named, notes, actions_api_reach: cx.reach }
}

/// The named servers: configured, or seen (an MCP route with a server key that is not the
/// default server nor an extra route).
fn named_servers(lines: &[ReportLine], cx: &Context) -> Vec<String> {
    let seen = lines.iter().map(|l| &l.route).filter(|r| {
        surface(r) == "mcp" && *r != DEFAULT && crate::config::is_server_key(r) && !cx.extra_labels.contains(*r)
    });
    let all: BTreeSet<String> = cx.configured_servers.iter().chain(seen).cloned().collect();
    all.into_iter().collect()
}

/// Since Backstage 1.55 (mcp-actions 0.2.2) the default server exposes every action even when
/// named servers are configured: a client on it is outside the boundary named servers draw.
fn default_server_notes(lines: &[ReportLine], named: &[String]) -> Vec<String> {
    if named.is_empty() {
        return Vec::new();
    }
    let servers = named.join(", ");
    lines
        .iter()
        .filter(|l| l.route == DEFAULT)
        .map(|l| {
            format!(
                "{} uses the default server (/api/mcp-actions/v1), which exposes every action ({} advertised to it) \
                 although named servers exist ({servers}): since Backstage 1.55 named servers are no boundary; \
                 move the client to its named server, or narrow its token's accessRestrictions",
                l.client, l.advertised
            )
        })
        .collect()
}

impl Report {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let head = ("SURFACE", "ROUTE", "CLIENT", "ADVERTISED", "CALLED", "NEVER CALLED");
        let rows: Vec<[String; 6]> = self
            .clients
            .iter()
            .map(|l| {
                let never = if l.never_called.is_empty() { "-".to_string() } else { l.never_called.join(", ") };
                let (advertised, called) = (l.advertised.to_string(), l.called.len().to_string());
                [l.surface.clone(), l.route.clone(), l.client.clone(), advertised, called, never]
            })
            .collect();
        let width = |i: usize, h: &str| rows.iter().map(|r| r[i].len()).chain([h.len()]).max().unwrap_or(0);
        let (w0, w1, w2) = (width(0, head.0), width(1, head.1), width(2, head.2));
        out.push_str(&format!(
            "{:w0$}  {:w1$}  {:w2$}  {:>10}  {:>6}  {}\n",
            head.0, head.1, head.2, head.3, head.4, head.5
        ));
        for r in &rows {
            out.push_str(&format!("{:w0$}  {:w1$}  {:w2$}  {:>10}  {:>6}  {}\n", r[0], r[1], r[2], r[3], r[4], r[5]));
        }
        let days = self.window_seconds / 86_400;
        out.push_str(&format!(
            "\nNever called: advertised to the client in its last tools/list, not called in the last {days} day(s).\n\
             Candidates to drop from its accessRestrictions (or split-server filter).\n\
             A tool the client called on the other surface (MCP or the actions API) counts as used.\n"
        ));
        for note in &self.notes {
            out.push_str(&format!("\nNote: {note}.\n"));
        }
        for r in &self.actions_api_reach {
            out.push_str(&format!(
                "\nReached another way: {} (credential {}) was refused on MCP route {} ({}), and the {} actions API \
                 answered it{}. Its restrictions allow that; MCP metrics alone do not show it.\n",
                r.client,
                r.credential,
                r.refused_route,
                r.refused_reason,
                r.plugin,
                r.tool.as_deref().map(|t| format!(" ({t})")).unwrap_or_default()
            ));
        }
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
        let r = p.report(86_400 * 30, Context::default());
        assert_eq!(r.clients.len(), 1);
        assert_eq!((r.clients[0].advertised, r.clients[0].called.clone()), (3, vec!["b".to_string()]));
        assert_eq!(r.clients[0].never_called, ["a", "c"]);
        assert!(r.table().contains("ci-agent") && r.table().contains("a, c"));
        // A new first page replaces the advertised set; old calls age out of the window.
        p.listed("default", "ci-agent", &["b"], true, 30);
        p.forget_before(25);
        assert_eq!(p.counts()[&("default".into(), "ci-agent".into())], (1, 0));
    }

    #[test]
    fn a_tool_called_on_either_surface_is_used_and_the_default_server_is_named() {
        let mut p = Privileges::default();
        p.listed("default", "ci-agent", &["a", "b", "c"], true, 10);
        p.called("default", "ci-agent", "a", 10);
        p.listed(ACTIONS_API_ROUTE, "ci-agent", &["a", "b", "c"], true, 10);
        p.called(ACTIONS_API_ROUTE, "ci-agent", "b", 10);
        p.listed("catalog", "reader", &["a"], true, 10);
        p.listed("everything", "demo", &["x"], true, 10);
        let cx = Context { extra_labels: vec!["everything".into()], ..Context::default() };
        let r = p.report(86_400, cx);
        let line = |route: &str| r.clients.iter().find(|l| l.route == route).unwrap().clone();
        let mcp = line("default");
        assert_eq!(
            (mcp.surface.as_str(), mcp.called_on_other_surface.clone(), mcp.never_called.clone()),
            ("mcp", vec!["b".to_string()], vec!["c".to_string()])
        );
        let api = line(ACTIONS_API_ROUTE);
        assert_eq!((api.surface.as_str(), api.called_on_other_surface.clone()), ("actions_api", vec!["a".to_string()]));
        assert_eq!(r.named_servers, ["catalog"], "an extra route and the actions API are not named servers");
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.notes[0].starts_with("ci-agent uses the default server") && r.table().contains("Note: ci-agent"));
        // Without named servers the default server is the only one: nothing to say.
        let mut alone = Privileges::default();
        alone.listed("default", "ci-agent", &["a"], true, 10);
        assert!(alone.report(86_400, Context::default()).notes.is_empty());
    }
}
