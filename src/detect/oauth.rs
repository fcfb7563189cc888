//! What only a proxy sees of the OAuth journey. Refresh tokens form families: an
//! authorization-code grant starts one, each refresh rotates it. A rotated token presented again
//! is a replay (Backstage refuses it but keeps the family alive: the classic sign of a stolen
//! token, raised once per family). A new grant for a user and client whose last family never
//! refreshed is a re-authorization (the person signed in again). Protected-resource metadata
//! naming another URL than the one clients dial is raised once per pair of URLs. Tokens are
//! keyed fingerprints; every table is bounded, least recent forgotten first.

use std::sync::Arc;

use lru::LruCache;

use crate::bounded::capacity;

use crate::identity::Fingerprint;

/// Who a refresh token family belongs to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Family {
    pub id: u64,
    pub client: Arc<str>,
    pub user: Option<Arc<str>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Current,
    Rotated,
    Revoked,
}

#[derive(Debug, Clone)]
struct Member {
    family: Family,
    state: State,
    /// The family has refreshed at least once.
    refreshed: bool,
}

/// What the tap knows of a refresh token presented at the token endpoint.
#[derive(Debug, PartialEq)]
pub(crate) enum Presented {
    /// Issued before the tap watched, or forgotten.
    Unknown,
    /// The family's current token: a refresh (rotated now if the refresh succeeded).
    Current(Family),
    /// A token already rotated: a replay. `first` is set once per family.
    Replayed { family: Family, first: bool },
    /// A token revoked earlier.
    Revoked(Family),
}

pub(crate) struct Journey {
    tokens: LruCache<Fingerprint, Member>,
    /// The current refresh token of each user and client (hashed), for re-authorizations.
    latest: LruCache<u64, Fingerprint>,
    /// Families whose replay was raised.
    replayed: LruCache<u64, ()>,
    /// Resource metadata mismatches raised (hash of both URLs).
    mismatches: LruCache<u64, ()>,
    next_family: u64,
    forgotten: u64,
}

fn hash<T: std::hash::Hash>(value: T) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x0a17).hash_one(value)
}

/// Mismatches remembered as raised; more distinct pairs than this means a misconfiguration the
/// first ones already reported.
const MAX_MISMATCHES: usize = 64;

impl Journey {
    pub(crate) fn new(max_tokens: usize) -> Self {
        Self {
            tokens: LruCache::new(capacity(max_tokens)),
            latest: LruCache::new(capacity(max_tokens)),
            replayed: LruCache::new(capacity(max_tokens)),
            mismatches: LruCache::new(capacity(MAX_MISMATCHES)),
            next_family: 1,
            forgotten: 0,
        }
    }

    pub(crate) fn set_cap(&mut self, max_tokens: usize) {
        self.tokens.resize(capacity(max_tokens));
        self.latest.resize(capacity(max_tokens));
        self.replayed.resize(capacity(max_tokens));
    }

    fn remember(&mut self, token: Fingerprint, member: Member) {
        if let Some((old, _)) = self.tokens.push(token, member) {
            if old != token {
                self.forgotten += 1;
            }
        }
    }

    /// An authorization-code grant issued `refresh` (if any) to `client` for `user`. True when it
    /// is a re-authorization: the last family of that user and client never refreshed and was
    /// not revoked.
    pub(crate) fn granted(&mut self, refresh: Option<Fingerprint>, client: Arc<str>, user: Option<Arc<str>>) -> bool {
        let key = hash((&*client, user.as_deref()));
        let previous = self.latest.get(&key).and_then(|fp| self.tokens.peek(fp));
        let again = previous.is_some_and(|m| m.state == State::Current && !m.refreshed);
        if let Some(token) = refresh {
            let family = Family { id: self.next_family, client, user };
            self.next_family += 1;
            self.remember(token, Member { family, state: State::Current, refreshed: false });
            self.latest.put(key, token);
        }
        again
    }

    /// A refresh presented `old`; the answer issued `new` (`None`: refused).
    pub(crate) fn refreshed(&mut self, old: Fingerprint, new: Option<Fingerprint>) -> Presented {
        let Some(member) = self.tokens.get_mut(&old) else { return Presented::Unknown };
        match member.state {
            State::Revoked => Presented::Revoked(member.family.clone()),
            State::Rotated => {
                let family = member.family.clone();
                let first = self.replayed.put(family.id, ()).is_none();
                Presented::Replayed { family, first }
            }
            State::Current => {
                let family = member.family.clone();
                if let Some(new) = new {
                    member.state = State::Rotated;
                    let key = hash((&*family.client, family.user.as_deref()));
                    self.remember(new, Member { family: family.clone(), state: State::Current, refreshed: true });
                    self.latest.put(key, new);
                }
                Presented::Current(family)
            }
        }
    }

    /// A refresh token was revoked; its family, if the tap saw it issued.
    pub(crate) fn revoked(&mut self, token: Fingerprint) -> Option<Family> {
        let member = self.tokens.get_mut(&token)?;
        member.state = State::Revoked;
        Some(member.family.clone())
    }

    /// Protected-resource metadata named `resource` for a client that dialled `dialled`: true the
    /// first time this pair differs.
    pub(crate) fn mismatch(&mut self, resource: &str, dialled: &str) -> bool {
        resource != dialled && self.mismatches.put(hash((resource, dialled)), ()).is_none()
    }

    /// Tokens forgotten since the last call.
    pub(crate) fn take_forgotten(&mut self) -> u64 {
        std::mem::take(&mut self.forgotten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Fingerprinter, KeySource};

    fn fp(token: &str) -> Fingerprint {
        Fingerprinter::new(b"k", KeySource::Env).fingerprint(token)
    }

    #[test]
    fn a_rotated_refresh_token_presented_again_is_one_replay_per_family() {
        let mut j = Journey::new(100);
        let user = Some(Arc::from("user:development/guest"));
        assert!(!j.granted(Some(fp("r1")), "Acme".into(), user.clone()));
        let Presented::Current(family) = j.refreshed(fp("r1"), Some(fp("r2"))) else { panic!("r1 is current") };
        assert_eq!((&*family.client, family.user), ("Acme", user));
        assert!(matches!(j.refreshed(fp("r1"), None), Presented::Replayed { first: true, .. }));
        assert!(matches!(j.refreshed(fp("r1"), None), Presented::Replayed { first: false, .. }));
        // The newer token still works, as Backstage lets it: a refresh, not a replay.
        assert!(matches!(j.refreshed(fp("r2"), Some(fp("r3"))), Presented::Current(_)));
        assert_eq!(j.refreshed(fp("never-seen"), None), Presented::Unknown);
        assert!(j.revoked(fp("r3")).is_some());
        assert!(matches!(j.refreshed(fp("r3"), None), Presented::Revoked(_)));
    }

    #[test]
    fn a_new_grant_without_a_refresh_in_between_is_a_re_authorization() {
        let mut j = Journey::new(100);
        let (client, user): (Arc<str>, Option<Arc<str>>) = ("Acme".into(), Some("user:default/alice".into()));
        assert!(!j.granted(Some(fp("a1")), client.clone(), user.clone()), "the first sign-in");
        assert!(j.granted(Some(fp("a2")), client.clone(), user.clone()), "again, a1 never used");
        j.refreshed(fp("a2"), Some(fp("a3")));
        assert!(!j.granted(Some(fp("a4")), client.clone(), user.clone()), "a2 was refreshed");
        assert!(!j.granted(Some(fp("b1")), client.clone(), Some("user:default/bob".into())), "another user");
        j.revoked(fp("a4"));
        assert!(!j.granted(Some(fp("a5")), client, user), "a revoked family must sign in again");
    }

    #[test]
    fn a_resource_mismatch_is_raised_once_per_pair_and_tables_stay_bounded() {
        let mut j = Journey::new(2);
        assert!(!j.mismatch("https://tap/api/mcp-actions/v1", "https://tap/api/mcp-actions/v1"));
        assert!(j.mismatch("http://backstage:7007/api/mcp-actions/v1", "https://tap/api/mcp-actions/v1"));
        assert!(!j.mismatch("http://backstage:7007/api/mcp-actions/v1", "https://tap/api/mcp-actions/v1"));
        for t in ["x1", "x2", "x3", "x4"] {
            j.granted(Some(fp(t)), "C".into(), Some(t.into()));
        }
        assert_eq!(j.take_forgotten(), 2);
        assert_eq!(j.refreshed(fp("x1"), None), Presented::Unknown);
    }
}
