//! Who is calling, as the one structure the audit owns: the token directory (swapped by a
//! reload), the fingerprint key, the client names, the upstream's keys for user tokens, and the
//! tokens a reload retired.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use lru::LruCache;

use super::{jwt, naming, ClientDirectory, Credential, Fingerprint, Fingerprinter, CLIENT_UNKNOWN};
use crate::config::Config;

/// A token that entered or left the directory, with its subject.
pub(crate) type Known = (Fingerprint, Arc<str>);

pub(crate) struct Identities {
    pub fingerprinter: Fingerprinter,
    pub directory: ArcSwap<ClientDirectory>,
    pub names: naming::ClientNamer,
    /// OAuth clients by the name the user consented to, and the client of each issued token.
    pub oauth: super::oauth::OAuthClients,
    /// The upstream's keys for Backstage user tokens (fetched by the proxy).
    pub signing_keys: jwt::SigningKeys,
    /// Tokens removed from the directory by a reload, with the subject they had: their next use
    /// is `revoked_token`, still named by that subject.
    retired: Mutex<LruCache<Fingerprint, Arc<str>>>,
}

/// The last token credential one client connection presented, with the token directory it was
/// resolved against. Lives as long as the connection; a reload of the directory invalidates it.
#[derive(Default)]
pub(crate) struct CredentialCache(Option<(http::HeaderValue, Arc<ClientDirectory>, Credential)>);

fn load(config: &Config, fingerprinter: &Fingerprinter) -> ClientDirectory {
    let (directory, warnings) = ClientDirectory::load(&config.clients, &config.env, fingerprinter);
    for w in warnings {
        tracing::warn!("client token left out: {w}");
    }
    directory
}

impl Identities {
    pub(crate) fn new(config: &Config, fingerprinter: Fingerprinter) -> Self {
        let directory = load(config, &fingerprinter);
        tracing::info!(subjects = directory.subjects().len(), "client tokens loaded");
        let remembered = config.audit.max_remembered_credentials;
        Self {
            names: naming::ClientNamer::new(config.clients.max_names, remembered),
            oauth: super::oauth::OAuthClients::new(config.oauth.max_clients, config.oauth.max_tokens),
            signing_keys: jwt::SigningKeys::default(),
            retired: Mutex::new(LruCache::new(crate::bounded::capacity(remembered))),
            directory: ArcSwap::from_pointee(directory),
            fingerprinter,
        }
    }

    /// The credential of a request on a connection whose last one may have sent the same
    /// `Authorization` header: then it is not fingerprinted again. The header is compared in
    /// constant time (a connection from a shared ingress may carry many clients' requests).
    pub(crate) fn credential_cached(
        &self,
        header: Option<&http::HeaderValue>,
        cache: &Mutex<CredentialCache>,
    ) -> Credential {
        use subtle::ConstantTimeEq;
        let Some(value) = header else { return Credential::Missing };
        let directory = self.directory.load();
        let mut cache = cache.lock().expect("credential cache lock");
        if let Some((last, dir, credential)) = &cache.0 {
            if Arc::ptr_eq(dir, &directory) && bool::from(last.as_bytes().ct_eq(value.as_bytes())) {
                return credential.clone();
            }
        }
        let credential = self.credential(header);
        cache.0 = matches!(credential, Credential::Token { .. })
            .then(|| (value.clone(), arc_swap::Guard::into_inner(directory), credential.clone()));
        credential
    }

    /// The OAuth client a user token's credential was issued to, if the tap saw it issued.
    pub(crate) fn consented(&self, credential: &Credential) -> Option<Arc<str>> {
        self.oauth.client_of(credential.fingerprint()?)
    }

    pub(crate) fn credential(&self, header: Option<&http::HeaderValue>) -> Credential {
        match self.directory.load().credential(header, &self.fingerprinter) {
            Credential::Token { fingerprint, client } if &*client == CLIENT_UNKNOWN => {
                let retired = self.retired.lock().expect("retired lock").get(&fingerprint).cloned();
                Credential::Token { fingerprint, client: retired.unwrap_or(client) }
            }
            other => other,
        }
    }

    /// Swaps in the token directory of a reloaded `config` and its name cap. Returns the tokens
    /// added and removed; a removed one is retired (still named, its next use revoked).
    pub(crate) fn reload(&self, config: &Config) -> (Vec<Known>, Vec<Known>) {
        let directory = load(config, &self.fingerprinter);
        let old: Vec<Known> = self.directory.load().fingerprints();
        let new: Vec<Known> = directory.fingerprints();
        let added: Vec<Known> = new.iter().filter(|(f, _)| !old.iter().any(|(o, _)| o == f)).cloned().collect();
        let removed: Vec<Known> = old.into_iter().filter(|(f, _)| !new.iter().any(|(n, _)| n == f)).collect();
        let mut retired = self.retired.lock().expect("retired lock");
        for (fp, subject) in &removed {
            retired.put(*fp, subject.clone());
        }
        drop(retired);
        self.directory.store(Arc::new(directory));
        self.names.set_cap(config.clients.max_names);
        self.oauth.set_caps(config.oauth.max_clients, config.oauth.max_tokens);
        (added, removed)
    }
}
