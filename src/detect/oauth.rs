//! What only a proxy sees of the OAuth journey. Refresh tokens form families: an
//! authorization-code grant starts one, each refresh rotates it. A rotated token presented again
//! is a replay (Backstage refuses it but keeps the family alive: the classic sign of a stolen
//! token, raised once per family). A new grant for a user and client whose last family never
//! refreshed is a re-authorization (the person signed in again). Protected-resource metadata
//! naming another URL than the one clients dial is raised once per pair of URLs. Tokens are
//! keyed fingerprints; every table is bounded, least recent forgotten first. In cluster mode each
//! change is noted for the other replicas (`for_cluster`), and theirs adopted (`adopt`): a
//! refresh may reach another replica than the code exchange.

use std::sync::Arc;

use lru::LruCache;

use crate::bounded::capacity;

use crate::identity::Fingerprint;

/// Who a refresh token family belongs to; `id` is its first refresh token's fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Family {
    pub id: Fingerprint,
    pub client: Arc<str>,
    pub user: Option<Arc<str>>,
}

/// A refresh token's state; it only moves forward (a replica adopting an older view keeps its own).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
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
    replayed: LruCache<Fingerprint, ()>,
    /// Resource metadata mismatches raised (hash of both URLs).
    mismatches: LruCache<u64, ()>,
    forgotten: u64,
    /// Cluster mode: tokens whose state changed since the last exchange (bounded).
    noted: Option<Vec<(Fingerprint, String)>>,
}

/// Changes noted between two exchanges, at most.
const MAX_NOTED: usize = 1_000;

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
            forgotten: 0,
            noted: None,
        }
    }

    pub(crate) fn set_cap(&mut self, max_tokens: usize) {
        self.tokens.resize(capacity(max_tokens));
        self.latest.resize(capacity(max_tokens));
        self.replayed.resize(capacity(max_tokens));
    }

    fn remember(&mut self, token: Fingerprint, member: Member) {
        self.note(token, &member);
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
            let family = Family { id: token, client, user };
            self.remember(token, Member { family, state: State::Current, refreshed: false });
            self.latest.put(key, token);
        }
        again
    }

    /// A refresh presented `old`; the answer issued `new` (`None`: refused). A successful refresh
    /// of a token the tap never saw issued starts a family at it, to `client` (its user unknown),
    /// so a replay of it is seen.
    pub(crate) fn refreshed(&mut self, old: Fingerprint, new: Option<Fingerprint>, client: &Arc<str>) -> Presented {
        let Some(member) = self.tokens.get(&old).cloned() else {
            if let Some(new) = new {
                let family = Family { id: old, client: client.clone(), user: None };
                self.remember(old, Member { family: family.clone(), state: State::Rotated, refreshed: true });
                self.remember(new, Member { family, state: State::Current, refreshed: true });
            }
            return Presented::Unknown;
        };
        let family = member.family.clone();
        match member.state {
            State::Revoked => Presented::Revoked(family),
            State::Rotated => {
                let first = self.replayed.put(family.id, ()).is_none();
                Presented::Replayed { family, first }
            }
            State::Current => {
                if let Some(new) = new {
                    self.remember(old, Member { state: State::Rotated, ..member });
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
        let member = self.tokens.get(&token)?.clone();
        let family = member.family.clone();
        self.remember(token, Member { state: State::Revoked, ..member });
        Some(family)
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

    /// Cluster mode is on: note every change for the other replicas.
    pub(crate) fn share(&mut self) {
        self.noted.get_or_insert_with(Vec::new);
    }

    fn note(&mut self, token: Fingerprint, member: &Member) {
        if let Some(noted) = self.noted.as_mut().filter(|n| n.len() < MAX_NOTED) {
            noted.push((token, encode(member)));
        }
    }

    /// The changes noted since the last call, as the store keeps them (`adopt` reads them).
    pub(crate) fn for_cluster(&mut self) -> Vec<(Fingerprint, String)> {
        self.noted.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Changes the store did not take: sent with the next exchange.
    pub(crate) fn put_back(&mut self, changes: Vec<(Fingerprint, String)>) {
        if let Some(noted) = self.noted.as_mut() {
            let room = MAX_NOTED.saturating_sub(noted.len());
            noted.splice(0..0, changes.into_iter().take(room));
        }
    }

    /// Another replica's view of a token: adopted unless this replica knows it further along.
    pub(crate) fn adopt(&mut self, token: Fingerprint, text: &str) {
        let Some(theirs) = decode(text) else { return };
        let merged = match self.tokens.peek(&token) {
            Some(mine) if mine.state >= theirs.state => return,
            Some(mine) => Member { state: theirs.state, refreshed: mine.refreshed || theirs.refreshed, ..mine.clone() },
            None => theirs,
        };
        if merged.state == State::Current {
            self.latest.put(hash((&*merged.family.client, merged.family.user.as_deref())), token);
        }
        if let Some((old, _)) = self.tokens.push(token, merged) {
            if old != token {
                self.forgotten += 1;
            }
        }
    }
}

/// A member as the store keeps it, `|`-separated: state, refreshed, family, user, and the client
/// last (a client's name may hold a `|`; a user entity ref never does).
fn encode(m: &Member) -> String {
    let state = match m.state {
        State::Current => 'c',
        State::Rotated => 'o',
        State::Revoked => 'x',
    };
    let user = m.family.user.as_deref().unwrap_or("");
    format!("{state}|{}|{}|{user}|{}", u8::from(m.refreshed), m.family.id.hex(), m.family.client)
}

fn decode(text: &str) -> Option<Member> {
    let mut parts = text.splitn(5, '|');
    let state = match parts.next()? {
        "c" => State::Current,
        "o" => State::Rotated,
        "x" => State::Revoked,
        _ => return None,
    };
    let refreshed = parts.next()? == "1";
    let id = Fingerprint::from_hex(parts.next()?)?;
    let user = Some(parts.next()?).filter(|u| !u.is_empty()).map(Arc::from);
    let client = Arc::from(parts.next()?);
    Some(Member { family: Family { id, client, user }, state, refreshed })
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
        let acme: Arc<str> = "Acme".into();
        let Presented::Current(family) = j.refreshed(fp("r1"), Some(fp("r2")), &acme) else { panic!("r1 is current") };
        assert_eq!((&*family.client, family.user), ("Acme", user));
        assert!(matches!(j.refreshed(fp("r1"), None, &acme), Presented::Replayed { first: true, .. }));
        assert!(matches!(j.refreshed(fp("r1"), None, &acme), Presented::Replayed { first: false, .. }));
        // The newer token still works, as Backstage lets it: a refresh, not a replay.
        assert!(matches!(j.refreshed(fp("r2"), Some(fp("r3")), &acme), Presented::Current(_)));
        assert_eq!(j.refreshed(fp("never-seen"), None, &acme), Presented::Unknown);
        assert!(j.revoked(fp("r3")).is_some());
        assert!(matches!(j.refreshed(fp("r3"), None, &acme), Presented::Revoked(_)));
    }

    #[test]
    fn a_new_grant_without_a_refresh_in_between_is_a_re_authorization() {
        let mut j = Journey::new(100);
        let (client, user): (Arc<str>, Option<Arc<str>>) = ("Acme".into(), Some("user:default/alice".into()));
        assert!(!j.granted(Some(fp("a1")), client.clone(), user.clone()), "the first sign-in");
        assert!(j.granted(Some(fp("a2")), client.clone(), user.clone()), "again, a1 never used");
        j.refreshed(fp("a2"), Some(fp("a3")), &client);
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
        assert_eq!(j.refreshed(fp("x1"), None, &"C".into()), Presented::Unknown);
    }

    #[test]
    fn replicas_share_families_so_a_replay_on_one_of_a_rotation_on_another_is_seen() {
        let (mut a, mut b) = (Journey::new(100), Journey::new(100));
        a.share();
        b.share();
        let acme: Arc<str> = "Acme".into();
        a.granted(Some(fp("r1")), acme.clone(), Some("user:default/alice".into()));
        for (token, text) in a.for_cluster() {
            b.adopt(token, &text);
        }
        assert!(matches!(b.refreshed(fp("r1"), Some(fp("r2")), &acme), Presented::Current(_)), "b knew r1");
        for (token, text) in b.for_cluster() {
            a.adopt(token, &text);
        }
        let Presented::Replayed { family, first: true } = a.refreshed(fp("r1"), None, &acme) else {
            panic!("a learned that r1 was rotated")
        };
        assert_eq!((family.id, family.user.as_deref()), (fp("r1"), Some("user:default/alice")));
        // An older view never moves a token back.
        a.adopt(fp("r1"), &encode(&Member { family, state: State::Current, refreshed: false }));
        assert!(matches!(a.refreshed(fp("r1"), None, &acme), Presented::Replayed { first: false, .. }));
        assert!(decode("garbage").is_none() && decode("c|1|00|u|c").is_none());
    }

    #[test]
    fn a_refresh_of_a_token_issued_before_the_tap_watched_starts_a_family() {
        let mut j = Journey::new(100);
        let acme: Arc<str> = "Acme".into();
        assert_eq!(j.refreshed(fp("old"), Some(fp("new")), &acme), Presented::Unknown);
        assert!(matches!(j.refreshed(fp("old"), None, &acme), Presented::Replayed { first: true, .. }));
    }
}
