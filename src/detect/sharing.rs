//! One token per client class (Backstage's production checklist): a credential presented by two
//! or more different client products within a window is shared. Each pair of product names is
//! reported once; memory is bounded by LRU caches.
//!
//! A product is the name a client declares (`initialize` or `_meta` clientInfo), else the
//! User-Agent's product token. One program shows both (the Python SDK declares "mcp" and sends
//! "python-httpx2/…"), so a declared name is bound to the credential, address and User-Agent it
//! came with: that program's later requests without a name of their own carry the bound name, and
//! a User-Agent-only name seen earlier from the same place is folded into it. One process never
//! counts as two clients; two programs that declare different names still do.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

use crate::identity::Fingerprint;

/// Client names remembered per credential.
const NAMES_PER_CREDENTIAL: usize = 8;

/// Where a request came from: its address and a hash of its whole User-Agent.
pub(crate) type Origin = (IpAddr, u64);

/// One product name seen with a credential: `from_agent` is the origin of a name taken from a
/// User-Agent (to fold into a declared name from the same origin), `None` for a declared name.
struct Seen {
    name: Box<str>,
    from_agent: Option<Origin>,
    last: Instant,
}

pub(crate) struct Sharing {
    window: Duration,
    seen: LruCache<Fingerprint, Vec<Seen>>,
    /// The name each credential and origin declared last.
    bound: LruCache<(Fingerprint, Origin), std::sync::Arc<str>>,
    reported: LruCache<(Fingerprint, Box<str>, Box<str>), ()>,
}

/// What a request says about the program that sent it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Product<'a> {
    /// A name declared in this request (`initialize` or `_meta` clientInfo).
    pub declared: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub source: IpAddr,
}

fn pair(fp: Fingerprint, a: &str, b: &str) -> (Fingerprint, Box<str>, Box<str>) {
    if a < b {
        (fp, a.into(), b.into())
    } else {
        (fp, b.into(), a.into())
    }
}

impl Sharing {
    pub(crate) fn new(capacity: usize, window: Duration) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        Self { window, seen: LruCache::new(cap), bound: LruCache::new(cap), reported: LruCache::new(cap) }
    }

    /// A request with credential `fp` at `now`. Returns the names of a new pair (the other
    /// client's first), when this request makes one.
    pub(crate) fn observe(&mut self, fp: Fingerprint, product: &Product<'_>, now: Instant) -> Option<(String, String)> {
        let origin = (product.source, agent_hash(product.user_agent));
        let (name, from_agent): (Box<str>, Option<Origin>) = match product.declared.and_then(clean) {
            Some(declared) => {
                self.bound.put((fp, origin), declared.into());
                (declared.into(), None)
            }
            None => match self.bound.get(&(fp, origin)) {
                Some(bound) => ((**bound).into(), None),
                None => (agent_product(product.user_agent?)?.into(), Some(origin)),
            },
        };
        let window = self.window;
        let names = self.seen.get_or_insert_mut(fp, Vec::new);
        names.retain(|s| now.saturating_duration_since(s.last) < window);
        if from_agent.is_none() {
            // The same program seen earlier by its User-Agent alone: one client, under its
            // declared name. Pairs already reported with the folded name stay reported.
            let folded: Vec<Box<str>> = names
                .iter()
                .filter(|s| s.from_agent == Some(origin) && s.name != name)
                .map(|s| s.name.clone())
                .collect();
            names.retain(|s| s.from_agent != Some(origin) || s.name == name);
            let others: Vec<Box<str>> = names.iter().map(|s| s.name.clone()).collect();
            for old in &folded {
                for other in others.iter().filter(|o| **o != name) {
                    if self.reported.contains(&pair(fp, old, other)) {
                        self.reported.put(pair(fp, &name, other), ());
                    }
                }
            }
        }
        let names = self.seen.get_or_insert_mut(fp, Vec::new);
        let other = names.iter().find(|s| s.name != name).map(|s| s.name.clone());
        if let Some(entry) = names.iter_mut().find(|s| s.name == name && s.from_agent == from_agent) {
            entry.last = now;
        } else if names.len() < NAMES_PER_CREDENTIAL {
            names.push(Seen { name: name.clone(), from_agent, last: now });
        }
        let other = other?;
        self.reported.put(pair(fp, &other, &name), ()).is_none().then(|| (other.to_string(), name.to_string()))
    }
}

impl Sharing {
    /// The declared name of a request: its own, or the one bound to its credential, address and
    /// User-Agent (binding a new one); `None` for a program known by its User-Agent only.
    pub(crate) fn declared(&mut self, fp: Fingerprint, product: &Product<'_>) -> Option<std::sync::Arc<str>> {
        let origin = (product.source, agent_hash(product.user_agent));
        match product.declared.and_then(clean) {
            Some(name) => {
                self.bound.put((fp, origin), name.into());
                Some(name.into())
            }
            None => self.bound.get(&(fp, origin)).cloned(),
        }
    }
}

/// A declared name fit for the audit: trimmed, at most `bounded::CLIENT_NAME` bytes.
fn clean(name: &str) -> Option<&str> {
    let name = crate::bounded::cut(name.trim(), crate::bounded::CLIENT_NAME);
    (!name.is_empty()).then_some(name)
}

/// The product token of a User-Agent (`python-httpx2/2.16` → `python-httpx2`).
fn agent_product(user_agent: &str) -> Option<&str> {
    clean(user_agent.trim().split(['/', ' ']).next()?)
}

fn agent_hash(user_agent: Option<&str>) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6d63_702d_7461_7021).hash_one(user_agent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Fingerprinter, KeySource};

    const HOST: &str = "192.0.2.1";

    fn product<'a>(declared: Option<&'a str>, user_agent: Option<&'a str>) -> Product<'a> {
        Product { declared, user_agent, source: HOST.parse().unwrap() }
    }

    fn fp() -> Fingerprint {
        Fingerprinter::new(b"k", KeySource::Env).fingerprint("token-1")
    }

    #[tokio::test(start_paused = true)]
    async fn a_pair_is_reported_once_and_only_within_the_window() {
        let mut s = Sharing::new(100, Duration::from_secs(60));
        let now = Instant::now();
        let vscode = product(Some("vscode"), Some("node"));
        let claude = product(Some("claude-code"), Some("claude-code/2.1"));
        assert_eq!(s.observe(fp(), &vscode, now), None);
        assert_eq!(s.observe(fp(), &vscode, now), None);
        assert_eq!(s.observe(fp(), &claude, now), Some(("vscode".into(), "claude-code".into())));
        assert_eq!(s.observe(fp(), &vscode, now), None, "the same pair again");
        assert_eq!(s.observe(fp(), &claude, now), None);
        // Outside the window the old name is forgotten: a lone client again.
        let later = now + Duration::from_secs(120);
        assert_eq!(s.observe(fp(), &product(Some("cursor"), None), later), None);
    }

    #[tokio::test(start_paused = true)]
    async fn one_program_is_one_client_whatever_its_requests_carry() {
        let mut s = Sharing::new(100, Duration::from_secs(60));
        let now = Instant::now();
        // The Python SDK: `initialize` declares "mcp", every request says python-httpx2.
        let ua = Some("python-httpx2/2.16.2");
        assert_eq!(s.observe(fp(), &product(Some("mcp"), ua), now), None);
        assert_eq!(s.observe(fp(), &product(None, ua), now), None, "later requests carry the bound name");
        // The MCP Inspector the other way round: a nameless request first, then its name.
        let mut s = Sharing::new(100, Duration::from_secs(60));
        assert_eq!(s.observe(fp(), &product(None, Some("node")), now), None);
        assert_eq!(s.observe(fp(), &product(Some("inspector-cli"), Some("node")), now), None, "folded into its name");
        assert_eq!(s.observe(fp(), &product(None, Some("node")), now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn two_products_on_one_credential_are_still_one_finding_naming_both() {
        let mut s = Sharing::new(100, Duration::from_secs(60));
        let now = Instant::now();
        let ua = Some("python-httpx2/2.16.2");
        assert_eq!(s.observe(fp(), &product(Some("mcp"), ua), now), None);
        // A second program on the same host, known first by its User-Agent, then by its name.
        let pair = s.observe(fp(), &product(None, Some("node")), now);
        assert_eq!(pair, Some(("mcp".into(), "node".into())));
        assert_eq!(s.observe(fp(), &product(Some("inspector-cli"), Some("node")), now), None, "the same incident");
        // Another program declaring another name is another pair.
        let third = product(Some("claude-code"), Some("claude-code/2.1"));
        assert!(s.observe(fp(), &third, now).is_some());
        // A plain HTTP tool from elsewhere with that credential is a product of its own.
        let curl = Product { declared: None, user_agent: Some("curl/8.5"), source: "198.51.100.9".parse().unwrap() };
        assert!(s.observe(fp(), &curl, now).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_binding_is_per_credential_address_and_user_agent() {
        let mut s = Sharing::new(100, Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(s.observe(fp(), &product(Some("mcp"), Some("python-httpx2/2")), now), None);
        // Another program on the same host with another User-Agent is not covered by the binding.
        assert_eq!(s.observe(fp(), &product(None, Some("curl/8")), now), Some(("mcp".into(), "curl".into())));
        assert_eq!(s.observe(fp(), &product(None, None), now), None, "nothing to name");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(agent_product("claude-code/2.1 (linux)"), Some("claude-code"));
        assert_eq!(agent_product("  "), None);
        assert_eq!(clean(&"é".repeat(40)).map(str::len), Some(64));
    }
}
