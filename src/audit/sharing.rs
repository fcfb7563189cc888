//! One token per client class (Backstage's production checklist): a credential presented by two
//! or more different clients (by `clientInfo.name`, else the User-Agent's product) within a window
//! is shared. Each pair of client names is reported once; memory is bounded by LRU caches.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

use super::event::AuditEvent;
use super::identity::{Credential, Fingerprint};
use super::Auditor;

/// Client names remembered per credential.
const NAMES_PER_CREDENTIAL: usize = 8;

pub struct Sharing {
    window: Duration,
    seen: LruCache<Fingerprint, Vec<(Box<str>, Instant)>>,
    reported: LruCache<(Fingerprint, Box<str>, Box<str>), ()>,
}

impl Sharing {
    pub fn new(capacity: usize, window: Duration) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        Self { window, seen: LruCache::new(cap), reported: LruCache::new(cap) }
    }

    /// `name` used `fp` at `now`. Returns the other client's name when this makes a new pair.
    pub fn observe(&mut self, fp: Fingerprint, name: &str, now: Instant) -> Option<String> {
        let window = self.window;
        let names = self.seen.get_or_insert_mut(fp, Vec::new);
        names.retain(|(_, t)| now.saturating_duration_since(*t) < window);
        let other = names.iter().find(|(n, _)| &**n != name).map(|(n, _)| n.clone());
        if let Some(entry) = names.iter_mut().find(|(n, _)| &**n == name) {
            entry.1 = now;
        } else if names.len() < NAMES_PER_CREDENTIAL {
            names.push((name.into(), now));
        }
        let other = other?;
        let pair = if *other < *name { (fp, other.clone(), name.into()) } else { (fp, name.into(), other.clone()) };
        self.reported.put(pair, ()).is_none().then(|| other.to_string())
    }
}

/// The client name a request shows: `clientInfo.name`, else the User-Agent's product token.
pub fn client_name<'a>(client_info: Option<&'a str>, user_agent: Option<&'a str>) -> Option<&'a str> {
    let name = client_info.or_else(|| user_agent.and_then(|ua| ua.split(['/', ' ']).next()))?.trim();
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    (end > 0).then(|| &name[..end])
}

impl Auditor {
    /// A credential presented by a client named `name`: a second client name within the window is
    /// a shared credential, counted and audited once per pair.
    pub fn check_sharing(
        &self,
        route: &str,
        credential: &Credential,
        client: &str,
        name: Option<&str>,
        source: IpAddr,
    ) {
        let (Some(fp), Some(name)) = (credential.fingerprint(), name) else { return };
        let other = self.sharing.lock().expect("sharing lock").observe(fp, name, Instant::now());
        let Some(other) = other else { return };
        self.metrics.record_credential_shared(client);
        tracing::warn!(route, client, credential = %fp, first = %other, second = name, "one credential used by different clients");
        self.write(AuditEvent::CredentialShared {
            route: route.to_string(),
            client: client.to_string(),
            credential: fp.to_string(),
            clients: [other, name.to_string()],
            source: source.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::identity::{Fingerprinter, KeySource};

    #[tokio::test(start_paused = true)]
    async fn a_pair_is_reported_once_and_only_within_the_window() {
        let fp = Fingerprinter::new(b"k", KeySource::Env).fingerprint("token-1");
        let mut s = Sharing::new(100, Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(s.observe(fp, "vscode", now), None);
        assert_eq!(s.observe(fp, "vscode", now), None);
        assert_eq!(s.observe(fp, "claude-code", now), Some("vscode".into()));
        assert_eq!(s.observe(fp, "vscode", now), None, "the same pair again");
        assert_eq!(s.observe(fp, "claude-code", now), None);
        // Outside the window the old name is forgotten: a lone client again.
        let later = now + Duration::from_secs(120);
        assert_eq!(s.observe(fp, "cursor", later), None);
    }

    #[test]
    fn names_come_from_client_info_then_the_user_agent_product() {
        assert_eq!(client_name(Some("vscode"), Some("curl/8")), Some("vscode"));
        assert_eq!(client_name(None, Some("claude-code/2.1 (linux)")), Some("claude-code"));
        assert_eq!(client_name(None, Some("  ")), None);
        assert_eq!(client_name(None, None), None);
    }
}
