//! The `client` label: who a caller is, in a bounded set of names. In order of trust:
//!
//! 1. the subject of a configured static token;
//! 2. for an OAuth access token the tap saw issued, the client the user consented to
//!    (`identity::oauth`);
//! 3. `clientInfo.name` from the caller's `initialize`;
//! 4. `params._meta["io.modelcontextprotocol/clientInfo"].name`, which MCP 2026-07-28 clients send
//!    on every request;
//! 5. the `initialize` name remembered per credential, address and User-Agent, for the later
//!    requests of a handshake-era client (which name no one);
//! 6. a small table of User-Agent patterns of well-known MCP clients.
//!
//! A name the request carries itself comes before a remembered one: two clients behind one
//! address and credential, one of each protocol generation, keep their own names.
//!
//! A name a client says about itself becomes a label value only when the upstream accepted the
//! request it came with: a caller without a working credential cannot create series. At most
//! `clients.max_names` learned names are admitted; a later one is `_OTHER`. Without any name the
//! label says what the credential was (`none`, `unknown`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::{Credential, CLIENT_NONE, CLIENT_UNKNOWN};
use crate::mcp::names::OTHER;

/// User-Agent substrings (compared ignoring ASCII case) of well-known MCP clients, and their name.
pub(crate) const KNOWN_AGENTS: &[(&str, &str)] = &[
    ("claude-code", "claude-code"),
    ("claude-user", "claude"),
    ("visual studio code", "vscode"),
    ("vscode", "vscode"),
    ("cursor", "cursor"),
    ("windsurf", "windsurf"),
    ("goose", "goose"),
    ("cline", "cline"),
    ("openai-mcp", "openai"),
    ("mcp-inspector", "mcp-inspector"),
];

/// What a request says about who sent it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Naming<'a> {
    pub credential: &'a Credential,
    pub source: IpAddr,
    /// `clientInfo.name` of an `initialize` in this request.
    pub initialize: Option<&'a str>,
    /// `clientInfo.name` from this request's `_meta`.
    pub meta: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The OAuth client the user consented to, for an access token the tap saw issued (its
    /// label, admitted under the cap when it was issued).
    pub consented: Option<&'a Arc<str>>,
    /// The upstream accepted the request (status below 400).
    pub accepted: bool,
}

/// The label a request got, and whether a name was folded into `_OTHER` by the cap.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Named {
    pub label: Arc<str>,
    pub overflow: bool,
}

struct Inner {
    admitted: HashSet<Arc<str>>,
    cap: usize,
    /// The `initialize` name of each credential (keyed hash), address and User-Agent (hash), for
    /// the later requests of that client.
    remembered: LruCache<RememberedKey, Arc<str>>,
    /// Cluster mode: remembered clients since the last exchange (bounded).
    noted: Vec<(RememberedKey, String)>,
    sharing: bool,
}

/// A client without a name of its own on a request: credential key, address, User-Agent key.
pub(crate) type RememberedKey = (u64, IpAddr, u64);

/// Remembered clients noted between two exchanges, at most.
const MAX_NOTED: usize = 1_000;

pub(crate) struct ClientNamer {
    inner: Mutex<Inner>,
    /// Label values that need no allocation per request.
    none: Arc<str>,
    unknown: Arc<str>,
    other: Arc<str>,
    agents: Vec<(&'static str, Arc<str>)>,
}

/// A self-declared name fit for a label: trimmed, no control characters, at most
/// `bounded::CLIENT_NAME` bytes.
fn clean(name: &str) -> Option<&str> {
    let name = crate::bounded::cut(name.trim(), crate::bounded::CLIENT_NAME);
    (!name.is_empty() && !name.chars().any(char::is_control)).then_some(name)
}

fn agent_key(user_agent: Option<&str>) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(user_agent)
}

impl ClientNamer {
    pub(crate) fn new(cap: usize, remembered: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                admitted: HashSet::new(),
                noted: Vec::new(),
                sharing: false,
                cap,
                remembered: LruCache::new(crate::bounded::capacity(remembered)),
            }),
            none: CLIENT_NONE.into(),
            unknown: CLIENT_UNKNOWN.into(),
            other: OTHER.into(),
            agents: KNOWN_AGENTS.iter().map(|(pattern, name)| (*pattern, Arc::from(*name))).collect(),
        }
    }

    /// Cluster mode is on: note remembered clients for the exchange.
    pub(crate) fn share(&self) {
        self.inner.lock().expect("naming lock").sharing = true;
    }

    pub(crate) fn set_cap(&self, cap: usize) {
        self.inner.lock().expect("naming lock").cap = cap;
    }

    /// The `client` label of a request.
    pub(crate) fn name(&self, n: &Naming<'_>) -> Named {
        let label = |label: Arc<str>| Named { label, overflow: false };
        if let Credential::Token { client, .. } = n.credential {
            if **client != *CLIENT_UNKNOWN {
                return label(client.clone());
            }
        }
        if let Some(client) = n.consented {
            return label(client.clone());
        }
        let key = (n.credential.key(), n.source, agent_key(n.user_agent));
        {
            let mut inner = self.inner.lock().expect("naming lock");
            if let Some(name) = n.initialize.and_then(clean) {
                if let Some(named) = self.learn(&mut inner, name, n.accepted) {
                    if !named.overflow {
                        let known = inner.remembered.put(key, named.label.clone());
                        if inner.sharing && known.as_ref() != Some(&named.label) && inner.noted.len() < MAX_NOTED {
                            inner.noted.push((key, named.label.to_string()));
                        }
                    }
                    return named;
                }
            }
            if let Some(named) = n.meta.and_then(clean).and_then(|name| self.learn(&mut inner, name, n.accepted)) {
                return named;
            }
            if let Some(name) = inner.remembered.get(&key) {
                return label(name.clone());
            }
        }
        if let Some(agent) = n.user_agent.and_then(|ua| self.agent(ua)) {
            return label(agent);
        }
        label(match n.credential {
            Credential::Missing => self.none.clone(),
            _ => self.unknown.clone(),
        })
    }

    /// Cluster mode: the names admitted here, and the declared names of remembered clients
    /// (credential key, address, User-Agent key) noted since the last call.
    pub(crate) fn for_cluster(&self) -> (Vec<String>, Vec<(RememberedKey, String)>) {
        let mut inner = self.inner.lock().expect("naming lock");
        let admitted = inner.admitted.iter().map(ToString::to_string).collect();
        (admitted, std::mem::take(&mut inner.noted))
    }

    /// Cluster mode: names other replicas admitted (up to the cap, so every replica labels a
    /// client the same while the cluster holds no more than the cap), and the clients they
    /// remembered, so a nameless request another replica answers gets the declared name too.
    pub(crate) fn adopt_from_cluster(&self, admitted: &[String], remembered: &[(RememberedKey, String)]) {
        let mut inner = self.inner.lock().expect("naming lock");
        let mut names: Vec<&String> = admitted.iter().filter(|n| !inner.admitted.contains(n.as_str())).collect();
        names.sort_unstable();
        for name in names {
            if inner.admitted.len() >= inner.cap {
                break;
            }
            inner.admitted.insert(name.as_str().into());
        }
        for (key, name) in remembered {
            if let Some(label) = inner.admitted.get(name.as_str()).cloned() {
                inner.remembered.put(*key, label);
            }
        }
    }

    /// An OAuth client's name as a label: admitted while there is room, else `_OTHER`.
    pub(crate) fn admit(&self, name: &str) -> Named {
        let Some(name) = clean(name) else { return Named { label: self.unknown.clone(), overflow: false } };
        let mut inner = self.inner.lock().expect("naming lock");
        self.learn(&mut inner, name, true).expect("an accepted name is always named")
    }

    /// A declared name: admitted if the request was accepted and there is room, `_OTHER` if
    /// accepted without room; from a refused request only a name already admitted counts.
    fn learn(&self, inner: &mut Inner, name: &str, accepted: bool) -> Option<Named> {
        if let Some(known) = inner.admitted.get(name) {
            return Some(Named { label: known.clone(), overflow: false });
        }
        if !accepted {
            return None;
        }
        if inner.admitted.len() >= inner.cap {
            return Some(Named { label: self.other.clone(), overflow: true });
        }
        let name: Arc<str> = name.into();
        inner.admitted.insert(name.clone());
        Some(Named { label: name, overflow: false })
    }

    /// The well-known client a User-Agent names, if any.
    fn agent(&self, user_agent: &str) -> Option<Arc<str>> {
        let ua = user_agent.as_bytes();
        self.agents
            .iter()
            .find(|(pattern, _)| ua.windows(pattern.len()).any(|w| w.eq_ignore_ascii_case(pattern.as_bytes())))
            .map(|(_, name)| name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Fingerprinter, KeySource};

    fn naming<'a>(credential: &'a Credential) -> Naming<'a> {
        Naming {
            credential,
            source: "192.0.2.1".parse().unwrap(),
            initialize: None,
            meta: None,
            user_agent: None,
            consented: None,
            accepted: true,
        }
    }

    fn token(client: &str) -> Credential {
        let fingerprint = Fingerprinter::new(b"k", KeySource::Env).fingerprint(client);
        Credential::Token { fingerprint, client: client.into() }
    }

    #[test]
    fn a_static_subject_wins_and_an_initialize_name_is_remembered_for_later_requests() {
        let namer = ClientNamer::new(10, 10);
        let subject = token("vscode-team");
        let n = Naming { initialize: Some("cursor"), ..naming(&subject) };
        assert_eq!(&*namer.name(&n).label, "vscode-team");
        let oauth = token(CLIENT_UNKNOWN);
        let init = Naming { initialize: Some("  Claude Desktop "), ..naming(&oauth) };
        assert_eq!(&*namer.name(&init).label, "Claude Desktop");
        // The next request of that credential and address carries no name of its own.
        let later = naming(&oauth);
        assert_eq!(&*namer.name(&later).label, "Claude Desktop");
        let current = Naming { meta: Some("other"), ..later };
        assert_eq!(&*namer.name(&current).label, "other", "a request naming itself keeps its name");
        let elsewhere = Naming { source: "192.0.2.2".parse().unwrap(), ..later };
        assert_eq!(&*namer.name(&elsewhere).label, CLIENT_UNKNOWN, "another address");
        let another_program = Naming { user_agent: Some("curl/8"), ..later };
        assert_eq!(&*namer.name(&another_program).label, CLIENT_UNKNOWN, "another program on the same host");
    }

    #[test]
    fn user_agents_name_well_known_clients_and_nothing_else() {
        let namer = ClientNamer::new(10, 10);
        let missing = Credential::Missing;
        let ua = |ua: &'static str| namer.name(&Naming { user_agent: Some(ua), ..naming(&missing) }).label;
        assert_eq!(&*ua("Claude-Code/2.1.3 (external, cli)"), "claude-code");
        assert_eq!(&*ua("Mozilla/5.0 Visual Studio Code/1.99"), "vscode");
        assert_eq!(&*ua("python-httpx/0.28.1"), CLIENT_NONE);
        assert_eq!(&*namer.name(&naming(&Credential::Malformed)).label, CLIENT_UNKNOWN);
    }

    #[test]
    fn refused_callers_create_no_names_and_the_cap_folds_the_rest_into_other() {
        let namer = ClientNamer::new(3, 10);
        let missing = Credential::Missing;
        let refused = Naming { meta: Some("attacker-1"), accepted: false, ..naming(&missing) };
        assert_eq!(namer.name(&refused), Named { label: CLIENT_NONE.into(), overflow: false });
        let names: Vec<Named> = (0..500)
            .map(|i| format!("client-{i}"))
            .map(|name| namer.name(&Naming { meta: Some(&name), ..naming(&missing) }))
            .collect();
        let distinct: HashSet<&str> = names.iter().map(|n| &*n.label).collect();
        assert_eq!(distinct, HashSet::from(["client-0", "client-1", "client-2", OTHER]));
        assert_eq!(names.iter().filter(|n| n.overflow).count(), 497);
        // An admitted name keeps its label on a refused request too.
        let known = Naming { meta: Some("client-1"), accepted: false, ..naming(&missing) };
        assert_eq!(&*namer.name(&known).label, "client-1");
        let control = Naming { meta: Some("bad\u{7}name"), ..naming(&missing) };
        assert_eq!(&*namer.name(&control).label, CLIENT_NONE, "control characters are no name");
    }

    #[test]
    fn in_a_cluster_a_name_declared_to_one_replica_labels_the_clients_requests_on_another() {
        let (one, other) = (ClientNamer::new(10, 10), ClientNamer::new(10, 10));
        one.share();
        let oauth = token(CLIENT_UNKNOWN);
        let init = Naming { initialize: Some("claude-desktop"), ..naming(&oauth) };
        assert_eq!(&*one.name(&init).label, "claude-desktop");
        assert_eq!(&*other.name(&naming(&oauth)).label, CLIENT_UNKNOWN, "before the exchange");
        let (admitted, remembered) = one.for_cluster();
        assert_eq!(remembered.len(), 1);
        other.adopt_from_cluster(&admitted, &remembered);
        assert_eq!(&*other.name(&naming(&oauth)).label, "claude-desktop");
        assert!(one.for_cluster().1.is_empty(), "noted once");
    }

    #[test]
    fn names_from_the_cluster_respect_the_cap() {
        let namer = ClientNamer::new(1, 10);
        namer.adopt_from_cluster(&["b-client".into(), "a-client".into()], &[]);
        assert_eq!(namer.for_cluster().0, ["a-client"]);
    }
}
