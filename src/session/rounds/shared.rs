//! Calls waiting for input in cluster mode: the balancer may send the retry to another replica.
//! Each replica sends the calls that wait on it to the store and keeps a copy of the others', so
//! a retry links wherever it lands; the replica that takes a call removes it from the store, and
//! the one that held it learns so when it is gone. A call given up at the timeout is recorded by
//! its holder only if it is still in the store (no other replica took it meanwhile).

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{CallLabels, InputWaits, Origin, Place, Waiting};
use crate::clock::unix_ms;
use crate::mcp::method::Method;

#[derive(Default)]
pub(super) struct Sharing {
    /// Calls that began to wait here since the last exchange.
    pub publish: Vec<u64>,
    /// Calls sent to the store that a retry here took.
    pub claimed: Vec<u64>,
    /// Calls sent to the store whose timeout passed here: recorded if still there.
    pub expired: Vec<(u64, Waiting)>,
}

/// A call waiting for input as the store holds it: labels, times, rounds, the fallback key. No
/// `requestState` (its hash is the entry's name), no credential.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct SharedWait {
    pub origin_ms: u64,
    pub answered_ms: u64,
    pub rounds: u32,
    pub fallback: u64,
    pub route: String,
    pub method: String,
    pub tool: String,
    pub prompt: String,
}

/// What an exchange sends: calls to add, calls taken here, calls given up here.
#[derive(Default)]
pub(crate) struct WaitNews {
    pub publish: Vec<(u64, SharedWait)>,
    pub claimed: Vec<u64>,
    pub expired: Vec<u64>,
}

fn to_ms(at: Instant, now: Instant, now_ms: u64) -> u64 {
    now_ms.saturating_sub(now.saturating_duration_since(at).as_millis() as u64)
}

fn to_instant(ms: u64, now: Instant, now_ms: u64) -> Instant {
    now.checked_sub(Duration::from_millis(now_ms.saturating_sub(ms))).unwrap_or(now)
}

impl InputWaits {
    /// Cluster mode is on.
    pub(crate) fn share(&self) {
        self.shared.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What this replica has to tell the store.
    pub(crate) fn take_news(&self) -> WaitNews {
        let (now, now_ms) = (Instant::now(), unix_ms());
        let mut inner = self.inner.lock().expect("rounds lock");
        let mut news = WaitNews {
            claimed: std::mem::take(&mut inner.sharing.claimed),
            expired: inner.sharing.expired.iter().map(|(id, _)| *id).collect(),
            publish: Vec::new(),
        };
        for id in std::mem::take(&mut inner.sharing.publish) {
            let Some(w) = inner.waiting.get_mut(&id).filter(|w| w.place == Place::Here) else { continue };
            w.place = Place::Published;
            news.publish.push((
                id,
                SharedWait {
                    origin_ms: to_ms(w.origin.started, now, now_ms),
                    answered_ms: to_ms(w.answered, now, now_ms),
                    rounds: w.origin.rounds,
                    fallback: w.fallback,
                    route: w.labels.route.to_string(),
                    method: w.labels.method.as_str().to_string(),
                    tool: w.labels.tool.clone(),
                    prompt: w.labels.prompt.clone(),
                },
            ));
        }
        news
    }

    /// The store's answer: for each call given up here, whether it was still there (then it is
    /// recorded as `cancelled` here); and every call waiting in the cluster.
    pub(crate) fn cluster_news(&self, still_there: &[bool], all: HashMap<u64, SharedWait>) {
        let (now, now_ms) = (Instant::now(), unix_ms());
        let max = self.limits.lock().expect("rounds lock").1;
        let mut inner = self.inner.lock().expect("rounds lock");
        let expired = std::mem::take(&mut inner.sharing.expired);
        // Sent from here and gone from the store: a retry on another replica took it.
        let gone: Vec<u64> = inner
            .waiting
            .iter()
            .filter(|(id, w)| w.place != Place::Here && !all.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            inner.take(id);
        }
        for (id, s) in all {
            if inner.waiting.len() >= max || inner.waiting.contains_key(&id) || inner.sharing.claimed.contains(&id) {
                continue;
            }
            let labels = CallLabels {
                route: s.route.into(),
                method: Method::parse(&s.method),
                tool: s.tool,
                prompt: s.prompt,
                client: "".into(),
                protocol_version: "",
                http_version: "",
            };
            let origin = Origin { started: to_instant(s.origin_ms, now, now_ms), rounds: s.rounds };
            let answered = to_instant(s.answered_ms, now, now_ms);
            inner.by_fallback.entry(s.fallback).or_default().push(id);
            let w = Waiting { origin, answered, fallback: s.fallback, labels, place: Place::Elsewhere };
            inner.waiting.insert(id, w);
        }
        drop(inner);
        for ((_, w), there) in expired.iter().zip(still_there.iter().copied().chain(std::iter::repeat(true))) {
            if there {
                self.abandoned(w);
            }
        }
    }
}

impl crate::shares::Shares for InputWaits {
    /// The store is unreachable: calls given up here are recorded here, the copies of other
    /// replicas' calls are dropped, and this replica's calls are its own again.
    fn decide_alone(&self) {
        let mut inner = self.inner.lock().expect("rounds lock");
        let expired = std::mem::take(&mut inner.sharing.expired);
        let copies: Vec<u64> =
            inner.waiting.iter().filter(|(_, w)| w.place == Place::Elsewhere).map(|(id, _)| *id).collect();
        for id in copies {
            inner.take(id);
        }
        for w in inner.waiting.values_mut() {
            w.place = Place::Here;
        }
        // Sent again once the store is back.
        let publish = inner.waiting.keys().copied().collect();
        inner.sharing = Sharing { publish, ..Sharing::default() };
        drop(inner);
        for (_, w) in &expired {
            self.abandoned(w);
        }
    }
}
