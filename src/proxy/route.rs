//! Which paths are MCP endpoints and what `mcp_route` label they carry. Backstage paths are read as
//! its router reads them (`mcp::actions_path`). Split-server keys come from config or are learned
//! from MCP answers, capped, so random paths cannot mint label values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::borrow::Cow;

use crate::config::{is_server_key, Config};
use crate::mcp::actions_path::ACTIONS_API_ROUTE;
use crate::mcp::actions_path::{self, ActionsPath};
use crate::mcp::names::{NameSet, OTHER};
use crate::mcp::param::Mirrored;

/// Label value for traffic that is not MCP (health, OAuth discovery, the rest of Backstage).
pub(crate) const NON_MCP: &str = "_none";

/// What the tap knows about one MCP route: its label and the names its upstream advertised.
#[derive(Debug)]
pub(crate) struct RouteState {
    pub label: Box<str>,
    pub tools: Mutex<NameSet>,
    pub prompts: Mutex<NameSet>,
    /// Tools whose schema mirrors arguments into `Mcp-Param-*` headers, from `tools/list`
    /// answers (as many as the tools the route names).
    pub params: Mutex<HashMap<String, Vec<Mirrored>>>,
}

impl RouteState {
    fn new(label: &str, config: &Config) -> Arc<Self> {
        let mut tools = NameSet::new(config.labels.max_tools_per_route);
        let mut prompts = NameSet::new(config.labels.max_prompts_per_route);
        for t in &config.labels.tool_allowlist {
            tools.learn(t);
        }
        for p in &config.labels.prompt_allowlist {
            prompts.learn(p);
        }
        Arc::new(Self {
            label: label.into(),
            tools: Mutex::new(tools),
            prompts: Mutex::new(prompts),
            params: Mutex::default(),
        })
    }
}

/// The result of matching a request path.
#[derive(Debug, Clone)]
pub(crate) enum RouteMatch {
    /// A known MCP route.
    Mcp(Arc<RouteState>),
    /// `/api/mcp-actions/v1/{key}` with a key not yet known; settled once the upstream answers.
    Candidate(Box<str>),
    /// Anything else under the upstream: proxied, counted at HTTP level only.
    Plain,
}

impl RouteMatch {
    pub(crate) fn is_mcp(&self) -> bool {
        !matches!(self, RouteMatch::Plain)
    }
}

pub(crate) struct Routes {
    backstage: bool,
    default: Arc<RouteState>,
    other: Arc<RouteState>,
    extra: Vec<(String, Arc<RouteState>)>,
    keys: Mutex<HashMap<Box<str>, Arc<RouteState>>>,
    configured_keys: usize,
    /// The plugins' actions API: its tool names bounded and shared like an MCP route's.
    pub(crate) actions_api: Arc<RouteState>,
    /// Plugins named in the actions API's labels (`labels.max_plugins`).
    pub(crate) actions_plugins: Mutex<NameSet>,
}

impl Routes {
    pub(crate) fn new(config: &Config) -> Self {
        let mut keys = HashMap::new();
        for k in &config.routes.server_keys {
            keys.insert(k.as_str().into(), RouteState::new(k, config));
        }
        Self {
            backstage: config.routes.backstage_actions,
            default: RouteState::new("default", config),
            other: RouteState::new(OTHER, config),
            extra: config.routes.extra.iter().map(|r| (r.path.clone(), RouteState::new(&r.label, config))).collect(),
            configured_keys: keys.len(),
            keys: Mutex::new(keys),
            actions_api: RouteState::new(ACTIONS_API_ROUTE, config),
            actions_plugins: Mutex::new(NameSet::new(config.labels.max_plugins)),
        }
    }

    pub(crate) fn match_path(&self, path: &str) -> RouteMatch {
        if let Some((_, state)) = self.extra.iter().find(|(p, _)| p == path) {
            return RouteMatch::Mcp(state.clone());
        }
        if !self.backstage {
            return RouteMatch::Plain;
        }
        let key = match actions_path::parse(path) {
            Some(ActionsPath::Default) => return RouteMatch::Mcp(self.default.clone()),
            Some(ActionsPath::Server(key)) => key,
            None => return RouteMatch::Plain,
        };
        // Express matches keys in any case; the label is the key as configured, in lower case.
        let key: Cow<'_, str> =
            if key.bytes().any(|b| b.is_ascii_uppercase()) { key.to_ascii_lowercase().into() } else { key.into() };
        if !is_server_key(&key) {
            return RouteMatch::Plain;
        }
        match self.keys.lock().expect("routes lock").get(&*key) {
            Some(state) => RouteMatch::Mcp(state.clone()),
            None => RouteMatch::Candidate(key.into()),
        }
    }

    /// The route state for a match once the upstream answered. A candidate key is learned only
    /// from an MCP answer (`mcp_answer`: a 2xx with a JSON or SSE body), while there is room: auth
    /// runs before routing in Backstage, so a 401 or 403 says nothing about the key, and random
    /// keys must not mint labels. Anything else is `_OTHER`. A new route takes its label caps and
    /// allowlists from `config`, the live one.
    pub(crate) fn settle(
        &self,
        m: &RouteMatch,
        mcp_answer: bool,
        config: &Config,
        metrics: &crate::metrics::Metrics,
    ) -> Option<Arc<RouteState>> {
        match m {
            RouteMatch::Mcp(state) => Some(state.clone()),
            RouteMatch::Plain => None,
            RouteMatch::Candidate(key) => {
                if !mcp_answer {
                    return Some(self.other.clone());
                }
                let mut keys = self.keys.lock().expect("routes lock");
                if let Some(state) = keys.get(key) {
                    return Some(state.clone());
                }
                if keys.len() < self.configured_keys + config.routes.max_learned_keys {
                    let state = RouteState::new(key, config);
                    keys.insert(key.clone(), state.clone());
                    Some(state)
                } else {
                    drop(keys);
                    metrics.record_label_overflow(crate::metrics::OverflowLabel::Route);
                    Some(self.other.clone())
                }
            }
        }
    }

    /// Every route's advertised tool names (cluster mode shares them, so every replica labels a
    /// tool the same whichever replica saw the list).
    pub(crate) fn tool_names(&self) -> Vec<(String, Vec<String>)> {
        let keys = self.keys.lock().expect("routes lock");
        self.learning(&keys).map(|s| (s.label.to_string(), s.tools.lock().expect("route lock").names())).collect()
    }

    /// Every route whose names are learned: the default, the extra ones, the actions API and the
    /// keys in `keys` (not `_OTHER`).
    fn learning<'a>(
        &'a self,
        keys: &'a HashMap<Box<str>, Arc<RouteState>>,
    ) -> impl Iterator<Item = &'a Arc<RouteState>> + 'a {
        let fixed = [&self.default, &self.actions_api].into_iter();
        fixed.chain(self.extra.iter().map(|(_, s)| s)).chain(keys.values())
    }

    /// Split-server keys learned from traffic (not the configured ones).
    pub(crate) fn learned_keys(&self) -> Vec<String> {
        let keys = self.keys.lock().expect("routes lock");
        keys.keys().map(ToString::to_string).collect()
    }

    /// Keys another replica learned, while there is room under `routes.max_learned_keys`, in
    /// name order: every replica labels a server key the same while the cluster holds no more
    /// than the cap.
    pub(crate) fn learn_keys(&self, learned: &[String], config: &Config) {
        let mut keys = self.keys.lock().expect("routes lock");
        let mut new: Vec<&String> =
            learned.iter().filter(|k| is_server_key(k) && !keys.contains_key(k.as_str())).collect();
        new.sort_unstable();
        for key in new {
            if keys.len() >= self.configured_keys + config.routes.max_learned_keys {
                break;
            }
            keys.insert(key.as_str().into(), RouteState::new(key, config));
        }
    }

    /// Tool names another replica learned for the route labelled `label` (up to the cap).
    pub(crate) fn learn_tools(&self, label: &str, names: &[String]) {
        let keys = self.keys.lock().expect("routes lock");
        for state in self.learning(&keys).filter(|s| &*s.label == label) {
            let mut tools = state.tools.lock().expect("route lock");
            for name in names {
                tools.learn(name);
            }
        }
    }

    /// Applies reloaded label caps and allowlists to every route.
    pub(crate) fn apply_labels(&self, config: &Config) {
        self.actions_plugins.lock().expect("routes lock").set_cap(config.labels.max_plugins);
        let keys = self.keys.lock().expect("routes lock");
        for state in std::iter::once(&self.other).chain(self.learning(&keys)) {
            let mut tools = state.tools.lock().expect("route lock");
            tools.set_cap(config.labels.max_tools_per_route);
            for t in &config.labels.tool_allowlist {
                tools.learn(t);
            }
            drop(tools);
            let mut prompts = state.prompts.lock().expect("route lock");
            prompts.set_cap(config.labels.max_prompts_per_route);
            for p in &config.labels.prompt_allowlist {
                prompts.learn(p);
            }
        }
    }

    /// The label to use before the upstream answered (for failures that never reach it).
    pub(crate) fn provisional(&self, m: &RouteMatch) -> Option<Arc<RouteState>> {
        match m {
            RouteMatch::Mcp(state) => Some(state.clone()),
            RouteMatch::Candidate(_) => Some(self.other.clone()),
            RouteMatch::Plain => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExtraRoute;
    use crate::metrics::Metrics;

    fn config() -> Config {
        let mut c = Config::default();
        c.routes.server_keys = vec!["catalog".into()];
        c.routes.max_learned_keys = 1;
        c.routes.extra = vec![ExtraRoute { path: "/mcp".into(), label: "everything".into() }];
        c
    }

    fn routes() -> Routes {
        Routes::new(&config())
    }

    /// The label after an answer with `status` (an MCP body when 2xx).
    fn label(r: &Routes, path: &str, status: u16) -> String {
        let m = Metrics::new(vec![1.0]);
        let mcp = (200..300).contains(&status);
        r.settle(&r.match_path(path), mcp, &config(), &m).map(|s| s.label.to_string()).unwrap_or_default()
    }

    #[test]
    fn paths_map_to_labels() {
        let r = routes();
        assert_eq!(label(&r, "/api/mcp-actions/v1", 200), "default");
        assert_eq!(label(&r, "/api/mcp-actions/v1/catalog", 200), "catalog");
        assert_eq!(label(&r, "/mcp", 200), "everything");
        assert_eq!(label(&r, "/api/catalog/entities", 200), "");
        assert_eq!(label(&r, "/api/mcp-actions/v1/Bad_Key", 200), "");
        assert_eq!(label(&r, "/API/mcp-actions//V1/", 200), "default");
        assert_eq!(label(&r, "/api/mcp-actions/v1/CATALOG//", 200), "catalog");
    }

    #[test]
    fn learned_keys_are_capped_and_only_mcp_answers_teach_them() {
        let r = routes();
        assert_eq!(label(&r, "/api/mcp-actions/v1/nope", 404), OTHER);
        assert_eq!(label(&r, "/api/mcp-actions/v1/random-1", 401), OTHER);
        assert_eq!(label(&r, "/api/mcp-actions/v1/random-2", 403), OTHER);
        assert_eq!(label(&r, "/api/mcp-actions/v1/random-3", 502), OTHER);
        assert_eq!(label(&r, "/api/mcp-actions/v1/scaffolder", 200), "scaffolder");
        assert_eq!(label(&r, "/api/mcp-actions/v1/scaffolder", 404), "scaffolder");
        assert_eq!(label(&r, "/api/mcp-actions/v1/third", 200), OTHER);
    }

    #[test]
    fn keys_another_replica_learned_are_adopted_up_to_the_cap_in_name_order() {
        let r = routes();
        r.learn_keys(&["zeta".into(), "Bad Key".into(), "scaffolder".into(), "catalog".into()], &config());
        let mut keys = r.learned_keys();
        keys.sort_unstable();
        assert_eq!(keys, ["catalog", "scaffolder"], "one learned key at most, the first by name");
        assert_eq!(label(&r, "/api/mcp-actions/v1/scaffolder", 403), "scaffolder", "labelled before any answer here");
        assert_eq!(label(&r, "/api/mcp-actions/v1/zeta", 200), OTHER);
    }

    #[test]
    fn a_key_learned_after_a_reload_gets_the_reloaded_label_settings() {
        let r = routes();
        let mut reloaded = config();
        reloaded.labels.tool_allowlist = vec!["scaffolder.run".into()];
        reloaded.labels.max_tools_per_route = 1;
        r.apply_labels(&reloaded);
        let m = Metrics::new(vec![1.0]);
        let state = r.settle(&r.match_path("/api/mcp-actions/v1/scaffolder"), true, &reloaded, &m).unwrap();
        let mut tools = state.tools.lock().unwrap();
        assert!(tools.contains("scaffolder.run"), "the reloaded allowlist applies to the new route");
        assert!(!tools.learn("another"), "the reloaded cap applies to the new route");
    }

    #[test]
    fn the_actions_api_names_follow_the_allowlist_the_cap_and_the_cluster() {
        let mut c = config();
        c.labels.tool_allowlist = vec!["catalog.get-catalog-entity".into()];
        c.labels.max_tools_per_route = 2;
        let r = Routes::new(&c);
        r.learn_tools(ACTIONS_API_ROUTE, &["scaffolder.run".into(), "third".into()]);
        let names = r.tool_names().into_iter().find(|(l, _)| l == ACTIONS_API_ROUTE).map(|(_, n)| n);
        let mut names = names.expect("the actions API's names are shared with the cluster");
        names.sort_unstable();
        assert_eq!(names, ["catalog.get-catalog-entity", "scaffolder.run"], "allowlisted, then learned up to the cap");
        let default = r.tool_names().into_iter().find(|(l, _)| l == "default").map(|(_, n)| n).unwrap();
        assert_eq!(default, ["catalog.get-catalog-entity"], "another surface's names stay its own");
    }
}
