//! Token age: when each static token (by fingerprint) was first and last seen working, and which
//! client it names. A client whose newest token appeared while an older one falls silent has
//! rotated; the older one is reported once.

use std::collections::BTreeMap;
use std::sync::Arc;

use lru::LruCache;
use serde::{Deserialize, Serialize};

/// One credential as remembered (and as written to the state file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Seen {
    /// The fingerprint as audit lines show it (16 hex digits of the keyed HMAC).
    pub fingerprint: String,
    pub client: Arc<str>,
    /// Unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
    /// Replaced by a newer token of the same client (reported once).
    #[serde(default)]
    pub rotated: bool,
}

/// A client moved from `old` to `new`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rotation {
    pub client: Arc<str>,
    pub old: Seen,
    pub new: Seen,
}

/// What `used` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Used {
    /// Seen before (its last-seen time moved).
    Known,
    /// First seen now.
    New,
    /// First seen now, and the least recently used credential was forgotten to make room.
    NewEvicting,
}

/// Keyed by the fingerprint's 64-bit digest, so a request allocates nothing.
pub(crate) struct Ages {
    seen: LruCache<u64, Seen>,
}

/// The digest of a fingerprint as the state file writes it (16 hex digits).
fn key(fingerprint: &str) -> Option<u64> {
    u64::from_str_radix(fingerprint, 16).ok().filter(|_| fingerprint.len() == 16)
}

impl Ages {
    pub(crate) fn new(cap: usize) -> Self {
        Self { seen: LruCache::new(crate::bounded::capacity(cap)) }
    }

    pub(crate) fn resize(&mut self, cap: usize) {
        self.seen.resize(crate::bounded::capacity(cap));
    }

    /// A token named `client` worked at `now`.
    pub(crate) fn used(&mut self, fingerprint: u64, client: &Arc<str>, now: u64) -> Used {
        if let Some(s) = self.seen.get_mut(&fingerprint) {
            s.last_seen = s.last_seen.max(now);
            if s.client != *client {
                s.client = client.clone();
            }
            return Used::Known;
        }
        let evicted = self.seen.len() == self.seen.cap().get();
        let s = Seen {
            fingerprint: format!("{fingerprint:016x}"),
            client: client.clone(),
            first_seen: now,
            last_seen: now,
            rotated: false,
        };
        self.seen.put(fingerprint, s);
        if evicted {
            Used::NewEvicting
        } else {
            Used::New
        }
    }

    /// Whether `fingerprint` was used at `now` already (a repeat within the same second).
    pub(crate) fn fresh(&self, fingerprint: u64, now: u64) -> bool {
        self.seen.peek(&fingerprint).is_some_and(|s| s.last_seen >= now)
    }

    /// Forgets credentials unused since `before`.
    pub(crate) fn forget_before(&mut self, before: u64) {
        while self.seen.peek_lru().is_some_and(|(_, s)| s.last_seen < before) {
            self.seen.pop_lru();
        }
    }

    /// The token each client uses now (its most recently used one).
    fn current(&self) -> BTreeMap<Arc<str>, &Seen> {
        let mut current: BTreeMap<Arc<str>, &Seen> = BTreeMap::new();
        for (_, s) in &self.seen {
            let newer = current.get(&s.client).is_none_or(|c| s.last_seen > c.last_seen);
            if newer {
                current.insert(s.client.clone(), s);
            }
        }
        current
    }

    /// When each client's current token was first seen.
    pub(crate) fn first_seen(&self) -> BTreeMap<String, u64> {
        self.current().into_iter().map(|(c, s)| (c.to_string(), s.first_seen)).collect()
    }

    /// Rotations due at `now`: per client, older tokens that appeared before its current one and
    /// have not been used for `grace` seconds. One rotation (the latest of them) per client; all
    /// of them are marked so none is reported again.
    pub(crate) fn rotations(&mut self, now: u64, grace: u64) -> Vec<Rotation> {
        let current: BTreeMap<Arc<str>, Seen> = self.current().into_iter().map(|(c, s)| (c, s.clone())).collect();
        let mut latest: BTreeMap<Arc<str>, Seen> = BTreeMap::new();
        for (_, s) in &mut self.seen {
            let Some(new) = current.get(&s.client) else { continue };
            let replaced = s.fingerprint != new.fingerprint
                && s.first_seen < new.first_seen
                && s.last_seen.saturating_add(grace) <= now;
            if replaced && !s.rotated {
                s.rotated = true;
                if latest.get(&s.client).is_none_or(|l| s.last_seen > l.last_seen) {
                    latest.insert(s.client.clone(), s.clone());
                }
            }
        }
        latest.into_iter().map(|(client, old)| Rotation { new: current[&client].clone(), client, old }).collect()
    }

    /// Cluster mode: what other replicas saw. A credential's first sighting is the earliest
    /// anywhere, its last the latest, and a rotation reported anywhere is reported.
    pub(crate) fn merge(&mut self, others: Vec<Seen>) {
        for o in others {
            let Some(k) = key(&o.fingerprint) else { continue };
            match self.seen.peek_mut(&k) {
                Some(s) => {
                    s.first_seen = s.first_seen.min(o.first_seen);
                    if o.last_seen > s.last_seen {
                        s.last_seen = o.last_seen;
                        s.client = o.client;
                    }
                    s.rotated |= o.rotated;
                }
                None => {
                    self.seen.put(k, o);
                }
            }
        }
    }

    /// Every credential, least recently used first (the order `load` keeps).
    pub(crate) fn entries(&self) -> Vec<Seen> {
        self.seen.iter().rev().map(|(_, s)| s.clone()).collect()
    }

    /// Restores `entries` (least recently used first), up to the cap; entries with a malformed
    /// fingerprint are left out.
    pub(crate) fn load(&mut self, entries: Vec<Seen>) {
        for s in entries {
            if let Some(k) = key(&s.fingerprint) {
                self.seen.put(k, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_moves_to_a_new_token_is_rotated_once_after_the_grace() {
        let mut ages = Ages::new(10);
        let ci: Arc<str> = "ci-agent".into();
        assert_eq!(ages.used(0xaaaa, &ci, 100), Used::New);
        assert_eq!(ages.used(0xaaaa, &ci, 200), Used::Known);
        assert_eq!(ages.used(0xbbbb, &ci, 300), Used::New);
        assert_eq!(ages.first_seen()["ci-agent"], 300, "the age of the token in use now");
        assert!(ages.rotations(250, 60).is_empty(), "the old token was used within the grace");
        let due = ages.rotations(400, 60);
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].old.fingerprint.as_str(), due[0].new.fingerprint.as_str()),
            ("000000000000aaaa", "000000000000bbbb")
        );
        assert!(ages.rotations(10_000, 60).is_empty(), "reported once");
    }

    #[test]
    fn replicas_merge_to_the_earliest_first_and_the_latest_last_sighting() {
        let mut here = Ages::new(10);
        let client: Arc<str> = "ci-agent".into();
        here.used(0xa, &client, 100);
        here.used(0xa, &client, 150);
        let mut there = Ages::new(10);
        there.used(0xa, &client, 90);
        there.used(0xb, &client, 300);
        here.merge(there.entries());
        let a = here.entries().into_iter().find(|s| s.fingerprint == format!("{:016x}", 0xa)).unwrap();
        assert_eq!((a.first_seen, a.last_seen), (90, 150));
        // The newer token seen only there is this replica's current one too: a rotation here.
        let rotations = here.rotations(150 + 3600, 600);
        assert_eq!(rotations.len(), 1);
        assert_eq!(rotations[0].new.fingerprint, format!("{:016x}", 0xb));
    }

    #[test]
    fn two_tokens_in_use_side_by_side_are_no_rotation() {
        let mut ages = Ages::new(10);
        let ci: Arc<str> = "ci-agent".into();
        for t in (0..1000).step_by(10) {
            ages.used(0xaaaa, &ci, t);
            ages.used(0xbbbb, &ci, t + 5);
        }
        assert!(ages.rotations(1000, 60).is_empty());
    }

    #[test]
    fn the_cap_forgets_the_least_recently_used_and_the_window_the_unused() {
        let mut ages = Ages::new(3);
        let c: Arc<str> = "c".into();
        for fp in [0xa, 0xb, 0xc] {
            ages.used(fp, &c, fp);
        }
        ages.used(0xa, &c, 20);
        assert_eq!(ages.used(0xd, &c, 21), Used::NewEvicting);
        let left: Vec<String> = ages.entries().into_iter().map(|s| s.fingerprint).collect();
        assert_eq!(left, ["000000000000000c", "000000000000000a", "000000000000000d"], "b was least recently used");
        let mut restored = Ages::new(3);
        restored.load(ages.entries());
        assert_eq!(restored.entries(), ages.entries(), "the state file order keeps the LRU order");
        ages.forget_before(20);
        assert_eq!(ages.entries().len(), 2);
    }
}
