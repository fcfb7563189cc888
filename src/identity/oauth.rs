//! OAuth clients by the name the user consented to, learned from the journey the tap relays: a
//! registration's `client_name`, the consent page's client, a metadata document's host. Each
//! access token the token endpoint issued is remembered with its client, keyed by the token's
//! keyed fingerprint (never the token), so the requests that carry it are named by that client.

use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::bounded::{capacity, cut, CLIENT_NAME};

use super::Fingerprint;

/// Issued tokens travel between replicas by fingerprint, in full.
impl Fingerprint {
    /// All of it in hex, for the cluster store (which must tell any two apart).
    pub(crate) fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The fingerprint `hex` wrote.
    pub(crate) fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Self(out))
    }
}

struct Inner {
    /// The name of each `client_id` (hashed), as registered or shown at consent.
    names: LruCache<u64, Arc<str>>,
    /// The client label of each issued access token.
    tokens: LruCache<Fingerprint, Arc<str>>,
    /// The `client_id` of each consent session (hashed id) the tap saw opened.
    sessions: LruCache<u64, Arc<str>>,
    /// Entries forgotten to stay within the caps since the last `take_forgotten`: clients, tokens.
    forgotten: [u64; 2],
    /// Cluster mode: tokens issued here since the last exchange, for the other replicas (bounded).
    noted: Option<Vec<(Fingerprint, Arc<str>)>>,
}

/// Issued tokens noted between two exchanges, at most.
const MAX_NOTED: usize = 1_000;

impl Inner {
    fn remember(&mut self, access: Fingerprint, client: Arc<str>) {
        if let Some((old, _)) = self.tokens.push(access, client) {
            if old != access {
                self.forgotten[1] += 1;
            }
        }
    }
}

pub(crate) struct OAuthClients(Mutex<Inner>);

fn client_key(client_id: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x0a07).hash_one(client_id)
}

impl OAuthClients {
    pub(crate) fn new(max_clients: usize, max_tokens: usize) -> Self {
        Self(Mutex::new(Inner {
            names: LruCache::new(capacity(max_clients)),
            tokens: LruCache::new(capacity(max_tokens)),
            sessions: LruCache::new(capacity(max_clients)),
            forgotten: [0; 2],
            noted: None,
        }))
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().expect("oauth clients lock")
    }

    /// A client's name (cut and cleaned by the caller), from its registration or its consent page.
    pub(crate) fn learn(&self, client_id: &str, name: &str) {
        let mut inner = self.inner();
        if let Some((old, _)) = inner.names.push(client_key(client_id), name.into()) {
            if old != client_key(client_id) {
                inner.forgotten[0] += 1;
            }
        }
    }

    /// The name a client goes by: what it registered or the consent page showed, else the host
    /// of its metadata document's URL, else nothing.
    pub(crate) fn name_of(&self, client_id: &str) -> Option<Arc<str>> {
        let known = self.inner().names.get(&client_key(client_id)).cloned();
        known.or_else(|| crate::oauth::name_from_client_id(client_id).map(|host| cut(host, CLIENT_NAME).into()))
    }

    /// A consent session (hashed id) was opened for `client_id`.
    pub(crate) fn opened(&self, session: u64, client_id: &str) {
        self.inner().sessions.put(session, client_id.into());
    }

    /// The `client_id` a consent session was opened for.
    pub(crate) fn session_client(&self, session: u64) -> Option<Arc<str>> {
        self.inner().sessions.get(&session).cloned()
    }

    /// An access token was issued to the client labelled `client`.
    pub(crate) fn issued(&self, access: Fingerprint, client: Arc<str>) {
        let mut inner = self.inner();
        if let Some(noted) = inner.noted.as_mut().filter(|n| n.len() < MAX_NOTED) {
            noted.push((access, client.clone()));
        }
        inner.remember(access, client);
    }

    /// The client an access token was issued to, if the tap saw it issued.
    pub(crate) fn client_of(&self, access: Fingerprint) -> Option<Arc<str>> {
        let mut inner = self.inner();
        if inner.tokens.is_empty() {
            return None;
        }
        inner.tokens.get(&access).cloned()
    }

    pub(crate) fn set_caps(&self, max_clients: usize, max_tokens: usize) {
        let mut inner = self.inner();
        inner.names.resize(capacity(max_clients));
        inner.sessions.resize(capacity(max_clients));
        inner.tokens.resize(capacity(max_tokens));
    }

    /// Cluster mode is on: note issued tokens for the other replicas.
    pub(crate) fn share(&self) {
        self.inner().noted.get_or_insert_with(Vec::new);
    }

    /// Tokens issued here since the last call (`put_back` when the store did not take them).
    pub(crate) fn for_cluster(&self) -> Vec<(Fingerprint, Arc<str>)> {
        self.inner().noted.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub(crate) fn put_back(&self, issued: Vec<(Fingerprint, Arc<str>)>) {
        let mut inner = self.inner();
        if let Some(noted) = inner.noted.as_mut() {
            let room = MAX_NOTED.saturating_sub(noted.len());
            noted.splice(0..0, issued.into_iter().take(room));
        }
    }

    /// A token another replica saw issued to `client` (a label already admitted there; admitted
    /// here by the caller).
    pub(crate) fn adopt(&self, access: Fingerprint, client: Arc<str>) {
        self.inner().remember(access, client);
    }

    /// Clients and tokens forgotten since the last call.
    pub(crate) fn take_forgotten(&self) -> [u64; 2] {
        std::mem::take(&mut self.inner().forgotten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Fingerprinter, KeySource};

    #[test]
    fn a_token_is_named_by_the_client_it_was_issued_to_within_the_caps() {
        let fp = Fingerprinter::new(b"k", KeySource::Env);
        let clients = OAuthClients::new(2, 2);
        clients.learn("id-1", "Acme Agent");
        assert_eq!(clients.name_of("id-1").as_deref(), Some("Acme Agent"));
        assert_eq!(clients.name_of("https://vscode.dev/oauth/client.json").as_deref(), Some("vscode.dev"));
        assert_eq!(clients.name_of("id-unknown"), None);
        clients.issued(fp.fingerprint("a1"), "Acme Agent".into());
        assert_eq!(clients.client_of(fp.fingerprint("a1")).as_deref(), Some("Acme Agent"));
        assert_eq!(clients.client_of(fp.fingerprint("a2")), None);
        for t in ["a2", "a3"] {
            clients.issued(fp.fingerprint(t), "Acme Agent".into());
        }
        assert_eq!(clients.client_of(fp.fingerprint("a1")), None, "the least recent is forgotten");
        clients.learn("id-2", "B");
        clients.learn("id-3", "C");
        assert_eq!(clients.take_forgotten(), [1, 1]);
        assert_eq!(clients.take_forgotten(), [0, 0]);
        let a1 = fp.fingerprint("a1");
        assert_eq!(Fingerprint::from_hex(&a1.hex()), Some(a1));
        assert_eq!(Fingerprint::from_hex("zz"), None);
    }
}
