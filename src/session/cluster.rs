//! Sessions in cluster mode. A balancer spreads one client's requests over the replicas, but only
//! the replica that saw a session start holds it. Every replica notes when it answered a
//! session's request (by a hash of its route and session id, or of its client key: never an
//! identity), the cluster exchange shares the latest time per session through the store, and the
//! holder takes the cluster's latest activity as the session's. So a session ends once, when the
//! whole cluster has been quiet for the idle timeout, with its true duration; an `initialize` of
//! the same client on another replica ends it as re-initialized.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::Duration;

use tokio::time::Instant;

use super::{ClientKey, Counted, Session, SessionEnd, SessionTracker};

/// Session activity noted between two exchanges; more is not noted (the sessions then end by
/// what their own replica saw).
const MAX_NOTED: usize = 10_000;
/// An `initialize` elsewhere this long after a session started is a new session of its client
/// (less is the session's own start, seen through clocks that differ a little).
const REINIT_AFTER: Duration = Duration::from_secs(1);

fn hash<T: std::hash::Hash>(value: T) -> u64 {
    foldhash::quality::FixedState::with_seed(0x7365_7373_696f_6e73).hash_one(value)
}

pub(super) fn header_key(route: &str, id: &str) -> u64 {
    hash(("header", route, id))
}

pub(super) fn client_key(k: &ClientKey) -> u64 {
    hash(("client", &*k.route, k.credential, k.source))
}

pub(super) fn init_key(k: &ClientKey, client_name: &str) -> u64 {
    hash(("initialize", &*k.route, k.credential, k.source, client_name))
}

pub(crate) use crate::clock::unix_ms;

/// What this replica saw since the last exchange: session hash → unix milliseconds.
#[derive(Default)]
pub(super) struct Sharing {
    seen: HashMap<u64, u64>,
    inits: HashMap<u64, u64>,
    /// Claims of stateless sessions this replica counted and ended: freed for the next session.
    released: Vec<u64>,
}

/// What the store knows of the sessions a replica holds, and what the replica saw meanwhile.
#[derive(Default)]
pub(crate) struct News {
    pub seen: HashMap<u64, u64>,
    pub inits: HashMap<u64, u64>,
}

fn note(map: &mut HashMap<u64, u64>, key: u64, ms: u64) {
    if map.len() < MAX_NOTED || map.contains_key(&key) {
        map.insert(key, ms);
    }
}

impl SessionTracker {
    /// Cluster mode is on: note session activity for the exchange.
    pub(crate) fn share(&self) {
        self.shared.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Without a cluster, a request pays one relaxed load here and hashes nothing.
    pub(super) fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn seen(&self, key: u64, init: Option<u64>) {
        if !self.is_shared() {
            return;
        }
        let mut s = self.sharing.lock().expect("session lock");
        let now = unix_ms();
        note(&mut s.seen, key, now);
        if let Some(init) = init {
            note(&mut s.inits, init, now);
        }
    }

    /// The upstream answered a request of this header session (whichever replica holds it).
    pub(crate) fn header_answered(&self, route: &str, id: &str) {
        if self.is_shared() {
            self.seen(header_key(route, id), None);
        }
    }

    /// The upstream answered a request of this client (inferred and stateless sessions).
    pub(crate) fn client_answered(&self, key: &ClientKey) {
        if self.is_shared() {
            self.seen(client_key(key), None);
        }
    }

    /// What this replica saw since the last exchange, to send.
    pub(crate) fn take_news(&self) -> News {
        let mut s = self.sharing.lock().expect("session lock");
        News { seen: std::mem::take(&mut s.seen), inits: std::mem::take(&mut s.inits) }
    }

    /// The sessions this replica holds: their activity keys and `initialize` keys.
    pub(crate) fn held(&self) -> (Vec<u64>, Vec<u64>) {
        let inner = self.inner.lock().expect("session lock");
        let sessions = inner.header.values().chain(inner.inferred.values().flatten().map(|(_, s)| s));
        let (mut seen, mut inits): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
        for s in sessions {
            seen.push(s.share_key);
            inits.extend(s.init_key);
        }
        seen.sort_unstable();
        seen.dedup();
        (seen, inits)
    }

    pub(super) fn release(&self, claim: u64) {
        let mut s = self.sharing.lock().expect("session lock");
        if s.released.len() < MAX_NOTED {
            s.released.push(claim);
        }
    }

    /// Claims of sessions that ended here, to free in the store.
    pub(crate) fn take_released(&self) -> Vec<u64> {
        std::mem::take(&mut self.sharing.lock().expect("session lock").released)
    }

    /// Stateless sessions to claim in the store (started here since the last exchange), and the
    /// claims this replica holds (to keep while the session lives).
    pub(crate) fn claims(&self) -> (Vec<u64>, Vec<u64>) {
        let inner = self.inner.lock().expect("session lock");
        let (mut pending, mut held) = (Vec::new(), Vec::new());
        for (_, s) in inner.inferred.values().flatten() {
            match (s.claim, s.counted) {
                (Some(k), Counted::Pending) => pending.push(k),
                (Some(k), Counted::Yes) => held.push(k),
                _ => {}
            }
        }
        (pending, held)
    }

    /// What the store said of the claims: the replica that won counts the session from its
    /// start; the others keep passing its activity on.
    pub(crate) fn claimed(&self, won: &HashMap<u64, bool>) {
        self.count_pending(|claim| won.get(&claim).copied());
    }

    fn count_pending(&self, won: impl Fn(u64) -> Option<bool>) {
        let mut started: Vec<Box<str>> = Vec::new();
        {
            let mut inner = self.inner.lock().expect("session lock");
            for (_, s) in inner.inferred.values_mut().flatten() {
                let (Some(claim), Counted::Pending) = (s.claim, s.counted) else { continue };
                match won(claim) {
                    Some(true) => {
                        s.counted = Counted::Yes;
                        started.push(s.route.clone());
                    }
                    Some(false) => s.counted = Counted::Elsewhere,
                    None => {}
                }
            }
        }
        for route in started {
            self.metrics.record_session_start(&route);
        }
    }

    /// What the cluster saw of the sessions held here: later activity is the session's; a later
    /// `initialize` of the same client elsewhere ends it (re-initialized, at that time at the latest).
    pub(crate) fn cluster_news(&self, news: &News) {
        let (now, now_ms) = (Instant::now(), unix_ms());
        let at = |ms: u64| now.checked_sub(Duration::from_millis(now_ms.saturating_sub(ms))).unwrap_or(now);
        let later = |s: &mut Session| {
            if let Some(ms) = news.seen.get(&s.share_key) {
                s.last_seen = s.last_seen.max(at(*ms).min(now));
            }
        };
        let mut ended = Vec::new();
        {
            let mut inner = self.inner.lock().expect("session lock");
            inner.header.values_mut().for_each(later);
            inner.inferred.retain(|_, list| {
                list.retain_mut(|(_, s)| {
                    later(s);
                    let init = s.init_key.and_then(|k| news.inits.get(&k)).map(|ms| at(*ms));
                    match init.filter(|t| *t > s.started + REINIT_AFTER) {
                        Some(t) => {
                            let mut old = s.clone();
                            old.last_seen = old.last_seen.min(t);
                            ended.push(old);
                            false
                        }
                        None => true,
                    }
                });
                !list.is_empty()
            });
            inner.count -= ended.len();
        }
        for s in ended {
            let last = s.last_seen;
            self.end(s, SessionEnd::Reinitialized, last);
        }
    }
}

impl crate::shares::Shares for SessionTracker {
    /// The store is unreachable: this replica counts the sessions it started, as alone.
    fn decide_alone(&self) {
        self.count_pending(|_| Some(true));
    }
}
