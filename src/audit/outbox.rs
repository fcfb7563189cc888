//! Cluster mode's outbox: what this replica counted and decided since the last exchange with the
//! store, taken by the cluster task in the background (the request path only adds to a map).
//! Whether the store is up is the cluster's to know: with it up, the cluster decides bursts and
//! once-only findings from every replica's counts; when it cannot be reached, the cluster hands
//! what this replica decided alone back to be written, as without a store.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::detect::burst::{BurstEvent, BurstKey, Scope, Subject};
use crate::identity::Fingerprint;

/// Declared client names kept per credential between two exchanges.
const NAMES_PER_CREDENTIAL: usize = 8;
/// Distinct credentials kept per source for the stuffing count between two exchanges.
const FINGERPRINTS_PER_SOURCE: usize = 64;

/// Failures of one burst key since the last exchange.
#[derive(Debug, Clone)]
pub(crate) struct Counted {
    pub failures: u64,
    /// The `client` label of the first failure (named in burst_start).
    pub client: String,
}

/// What a replica counted since the last exchange.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub keys: HashMap<BurstKey, Counted>,
    /// Distinct failing credentials per (grouped) source, for the stuffing scope.
    pub stuffing: HashMap<Subject, Vec<Fingerprint>>,
    /// Failures not held because `cluster.max_pending_keys` was reached.
    pub dropped: u64,
    /// Declared client names seen per credential, for cluster-wide sharing findings.
    pub products: HashMap<Fingerprint, Products>,
    /// Per-credential findings this replica raised, for the cluster to write once.
    pub findings: Vec<(Fingerprint, super::event::AuditEvent)>,
    /// What this replica's own detectors decided: written only when the store cannot be reached.
    pub alone: Alone,
    /// Restricted MCP refusals and actions API answers, to link across replicas.
    pub reach: Reach,
}

/// Cluster mode: credentials MCP refused for what their restrictions leave out (route, reason),
/// and credentials a plugin's actions API answered, since the last exchange (`detect::reach`
/// across replicas: the refusal and the answer may reach different replicas).
#[derive(Debug, Default)]
pub(crate) struct Reach {
    pub refused: HashMap<Fingerprint, (String, String)>,
    pub answered: HashMap<Fingerprint, crate::detect::reach::Reached>,
}

/// Decisions of this replica's own detectors in cluster mode. With the store up the cluster
/// makes them once for all replicas, and these are dropped; without it they are this replica's.
#[derive(Debug, Default)]
pub(crate) struct Alone {
    /// Bursts started and ended by this replica's detector.
    pub bursts: Vec<BurstEvent>,
    /// Credentials this replica saw used by two client products.
    pub pairs: Vec<Pair>,
}

/// A credential seen used by two client products.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub route: String,
    pub client: String,
    pub fp: Fingerprint,
    pub names: [String; 2],
    pub source: std::net::IpAddr,
}

/// Declared names one credential came with since the last exchange, and where it was last seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct Products {
    pub names: Vec<Box<str>>,
    pub route: String,
    pub client: String,
    pub source: Option<std::net::IpAddr>,
}

impl Pending {
    /// Puts back what an exchange could not deliver (the store was down), under the cap.
    pub(crate) fn merge(&mut self, older: Pending, cap: usize) {
        for (key, c) in older.keys {
            if let Some(now) = self.keys.get_mut(&key) {
                now.failures += c.failures;
            } else if self.keys.len() < cap {
                self.keys.insert(key, c);
            } else {
                self.dropped += c.failures;
            }
        }
        for (source, fps) in older.stuffing {
            let now = self.stuffing.entry(source).or_default();
            for fp in fps {
                if now.len() < FINGERPRINTS_PER_SOURCE && !now.contains(&fp) {
                    now.push(fp);
                }
            }
        }
        self.dropped += older.dropped;
        for f in older.findings {
            if self.findings.len() < cap {
                self.findings.push(f);
            }
        }
        for b in older.alone.bursts {
            if self.alone.bursts.len() < cap {
                self.alone.bursts.push(b);
            }
        }
        for p in older.alone.pairs {
            if self.alone.pairs.len() < cap {
                self.alone.pairs.push(p);
            }
        }
        for (fp, r) in older.reach.refused {
            if self.reach.refused.len() < cap {
                self.reach.refused.entry(fp).or_insert(r);
            }
        }
        for (fp, a) in older.reach.answered {
            if self.reach.answered.len() < cap {
                self.reach.answered.entry(fp).or_insert(a);
            }
        }
        for (fp, p) in older.products {
            let now = self.products.entry(fp).or_insert_with(|| Products { names: Vec::new(), ..p.clone() });
            for name in p.names {
                if now.names.len() < NAMES_PER_CREDENTIAL && !now.names.contains(&name) {
                    now.names.push(name);
                }
            }
        }
    }
}

pub(crate) struct Outbox {
    cap: usize,
    pending: Mutex<Pending>,
}

impl Outbox {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, pending: Mutex::default() }
    }

    /// A burst this replica's detector started or ended.
    pub(crate) fn burst_alone(&self, event: BurstEvent) {
        let mut pending = self.pending.lock().expect("outbox lock");
        if pending.alone.bursts.len() < self.cap {
            pending.alone.bursts.push(event);
        }
    }

    /// A shared credential this replica's detector found.
    pub(crate) fn pair_alone(&self, pair: Pair) {
        let mut pending = self.pending.lock().expect("outbox lock");
        if pending.alone.pairs.len() < self.cap {
            pending.alone.pairs.push(pair);
        }
    }

    /// One failure, in every burst key it belongs to (`keys`), from `source` with `credential`.
    pub(crate) fn failure(
        &self,
        keys: &[Option<BurstKey>],
        source: Subject,
        credential: Option<Fingerprint>,
        client: &str,
    ) {
        let mut pending = self.pending.lock().expect("outbox lock");
        for key in keys.iter().flatten().filter(|k| k.scope != Scope::Stuffing) {
            if let Some(c) = pending.keys.get_mut(key) {
                c.failures += 1;
            } else if pending.keys.len() < self.cap {
                pending.keys.insert(*key, Counted { failures: 1, client: client.to_string() });
            } else {
                pending.dropped += 1;
            }
        }
        if let Some(fp) = credential {
            if pending.stuffing.len() < self.cap || pending.stuffing.contains_key(&source) {
                let fps = pending.stuffing.entry(source).or_default();
                if fps.len() < FINGERPRINTS_PER_SOURCE && !fps.contains(&fp) {
                    fps.push(fp);
                }
            }
        }
    }

    /// A credential used by a client that declared `name` (on `route`, labelled `client`).
    pub(crate) fn product(&self, fp: Fingerprint, name: &str, route: &str, client: &str, source: std::net::IpAddr) {
        let mut pending = self.pending.lock().expect("outbox lock");
        let full = pending.products.len() >= self.cap;
        match pending.products.entry(fp) {
            // The common case, a credential seen again within the interval: nothing to allocate.
            std::collections::hash_map::Entry::Occupied(o) => {
                let p = o.into_mut();
                if p.names.len() < NAMES_PER_CREDENTIAL && !p.names.iter().any(|n| &**n == name) {
                    p.names.push(name.into());
                }
            }
            std::collections::hash_map::Entry::Vacant(v) if !full => {
                v.insert(Products {
                    names: vec![name.into()],
                    route: route.to_string(),
                    client: client.to_string(),
                    source: Some(source),
                });
            }
            std::collections::hash_map::Entry::Vacant(_) => {}
        }
    }

    /// A finding about credential `fp` (a client that stopped refreshing): the cluster writes it
    /// once, whichever replicas raised it.
    pub(crate) fn finding(&self, fp: Fingerprint, event: super::event::AuditEvent) {
        let mut pending = self.pending.lock().expect("outbox lock");
        if pending.findings.len() < self.cap {
            pending.findings.push((fp, event));
        }
    }

    /// MCP refused `fp` on `route` for `reason`, a restriction: the other replicas should know.
    pub(crate) fn restricted(&self, fp: Fingerprint, route: &str, reason: &str) {
        let mut pending = self.pending.lock().expect("outbox lock");
        if pending.reach.refused.len() < self.cap && !pending.reach.refused.contains_key(&fp) {
            pending.reach.refused.insert(fp, (route.to_string(), reason.to_string()));
        }
    }

    /// A plugin's actions API answered `fp` (this replica knows no refusal of it): the cluster
    /// looks for one another replica saw.
    pub(crate) fn actions_api_answered(
        &self,
        fp: Fingerprint,
        reached: impl FnOnce() -> crate::detect::reach::Reached,
    ) {
        let mut pending = self.pending.lock().expect("outbox lock");
        if pending.reach.answered.len() < self.cap && !pending.reach.answered.contains_key(&fp) {
            pending.reach.answered.insert(fp, reached());
        }
    }

    /// What this replica decided alone and the findings waiting to be claimed, for it to write
    /// them itself (the store cannot be reached).
    pub(crate) fn take_decisions(&self) -> (Alone, Vec<(Fingerprint, super::event::AuditEvent)>) {
        let mut pending = self.pending.lock().expect("outbox lock");
        (std::mem::take(&mut pending.alone), std::mem::take(&mut pending.findings))
    }

    /// What was counted since the last call.
    pub(crate) fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().expect("outbox lock"))
    }

    /// Puts back what could not be delivered.
    pub(crate) fn put_back(&self, older: Pending) {
        let mut pending = self.pending.lock().expect("outbox lock");
        pending.merge(older, self.cap);
    }
}
