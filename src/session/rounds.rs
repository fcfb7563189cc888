//! Multi round-trip calls (MCP 2026-07-28): a server that needs the user answers a request with
//! `input_required` and an opaque `requestState`; the client comes back with the input and the
//! echoed state under a new JSON-RPC id. The rounds are one operation: it lasts from the first
//! request to the final answer, the person's wait included. A retry is linked to the round it
//! answers by the exact `requestState` (kept only as a keyed hash); failing that, by method, tool
//! and the set of input keys from the same credential on the same route, when exactly one call
//! waiting matches. Bounded by `sessions.max_input_waits`; a call whose client never comes back
//! within `sessions.input_wait_timeout` is recorded as `cancelled`.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::mcp::method::Method;
use crate::metrics::{ErrorType, Metrics, Operation, Outcome, OverflowLabel, Surface};

fn hash<T: std::hash::Hash>(value: T) -> u64 {
    foldhash::quality::FixedState::with_seed(0x726f_756e_6473).hash_one(value)
}

/// What links a round's answer to the retry that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundKey {
    /// The route and the `requestState` (its hash): exact.
    pub state: Option<u64>,
    /// Route, credential, method, tool and the set of input keys: a guess, used when unique.
    pub fallback: u64,
}

impl RoundKey {
    /// `state`: the hash of `requestState`; `input_keys`: the hash of the set of input keys
    /// (asked by `inputRequests`, answered by `inputResponses`).
    pub(crate) fn new(
        route: &str,
        credential: u64,
        (method, tool): (Method, Option<&str>),
        state: Option<u64>,
        input_keys: u64,
    ) -> Self {
        Self {
            state: state.map(|s| hash(("state", route, s))),
            fallback: hash(("call", route, credential, method.as_str(), tool, input_keys)),
        }
    }
}

/// Where a multi round-trip operation began, and how many requests it has taken so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub started: Instant,
    pub rounds: u32,
}

/// What a call waiting for input is recorded under if its client never comes back.
#[derive(Debug, Clone)]
pub(crate) struct CallLabels {
    pub route: Box<str>,
    pub method: Method,
    /// The bounded tool and prompt labels (empty but for `tools/call` and `prompts/get`).
    pub tool: String,
    pub prompt: String,
    pub client: Arc<str>,
    pub protocol_version: &'static str,
    pub http_version: &'static str,
}

#[derive(Debug)]
struct Waiting {
    origin: Origin,
    answered: Instant,
    fallback: u64,
    labels: CallLabels,
    /// Where the call waits: on this replica, sent to the store or not yet; or elsewhere in the
    /// cluster (a copy, so that its retry can land here).
    place: Place,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Here,
    Published,
    Elsewhere,
}

#[derive(Default)]
struct Inner {
    waiting: HashMap<u64, Waiting>,
    /// Cluster mode: what the next exchange sends (`shared`).
    sharing: shared::Sharing,
    /// Fallback key → the calls waiting under it.
    by_fallback: HashMap<u64, Vec<u64>>,
    /// Keys for calls whose answer carried no `requestState`.
    next_anonymous: u64,
}

impl Inner {
    fn take(&mut self, key: u64) -> Option<Waiting> {
        let w = self.waiting.remove(&key)?;
        if let Some(keys) = self.by_fallback.get_mut(&w.fallback) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.by_fallback.remove(&w.fallback);
            }
        }
        Some(w)
    }
}

pub(crate) struct InputWaits {
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
    limits: Mutex<(Duration, usize)>,
    /// Cluster mode: calls waiting are shared through the store.
    shared: std::sync::atomic::AtomicBool,
    /// The handshake generation's questions over a call's stream, waiting for their answer.
    questions: questions::Questions,
}

impl InputWaits {
    pub(crate) fn new(metrics: Arc<Metrics>, timeout: Duration, max: usize) -> Self {
        Self {
            inner: Mutex::default(),
            metrics,
            limits: Mutex::new((timeout, max)),
            shared: std::sync::atomic::AtomicBool::new(false),
            questions: Default::default(),
        }
    }

    pub(crate) fn set_limits(&self, timeout: Duration, max: usize) {
        *self.limits.lock().expect("rounds lock") = (timeout, max);
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.limits.lock().expect("rounds lock").0
    }

    /// Calls waiting for input now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().expect("rounds lock").waiting.len()
    }

    /// A request was answered `input_required` at `now`: the call waits for its client. `origin`
    /// is where the operation began (this request, or the first round it retried). `false` when
    /// the table is full: the round is then an operation of its own (counted as overflow).
    pub(crate) fn asked(&self, key: RoundKey, origin: Origin, now: Instant, labels: CallLabels) -> bool {
        let max = self.limits.lock().expect("rounds lock").1;
        let mut inner = self.inner.lock().expect("rounds lock");
        let id = match key.state {
            Some(id) => id,
            None => {
                inner.next_anonymous = inner.next_anonymous.wrapping_add(1);
                hash(("anonymous", inner.next_anonymous))
            }
        };
        if inner.waiting.len() >= max && !inner.waiting.contains_key(&id) {
            drop(inner);
            self.metrics.record_label_overflow(OverflowLabel::InputWait);
            return false;
        }
        let _ = inner.take(id);
        if self.is_shared() {
            inner.sharing.publish.push(id);
        }
        inner.by_fallback.entry(key.fallback).or_default().push(id);
        inner.waiting.insert(id, Waiting { origin, answered: now, fallback: key.fallback, labels, place: Place::Here });
        true
    }

    /// A request arrived at `now` with input for a call: the operation it continues (with this
    /// request counted), and its wait recorded; `None` when no call waiting matches.
    pub(crate) fn resumed(&self, key: RoundKey, now: Instant) -> Option<Origin> {
        let mut inner = self.inner.lock().expect("rounds lock");
        let exact = key.state.filter(|id| inner.waiting.contains_key(id));
        let id = exact.or_else(|| match inner.by_fallback.get(&key.fallback).map(Vec::as_slice) {
            Some([only]) => Some(*only),
            _ => None,
        })?;
        let w = inner.take(id)?;
        if w.place != Place::Here {
            // Taken here: the store's entry goes, and the replica that holds it learns so.
            inner.sharing.claimed.push(id);
        }
        drop(inner);
        let l = &w.labels;
        self.metrics.record_input_wait(&l.route, l.method, &l.tool, now.saturating_duration_since(w.answered));
        Some(Origin { started: w.origin.started, rounds: w.origin.rounds + 1 })
    }

    /// Calls whose client has not come back within the timeout are recorded as `cancelled`,
    /// lasting until their last answer. Returns how many.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let timeout = self.limits.lock().expect("rounds lock").0;
        let mut inner = self.inner.lock().expect("rounds lock");
        let expired: Vec<u64> =
            inner.waiting.iter().filter(|(_, w)| now >= w.answered + timeout).map(|(k, _)| *k).collect();
        let mut gone = Vec::new();
        for id in expired {
            match inner.take(id) {
                // Its retry may have reached another replica: the store decides (`shared`).
                Some(w) if w.place == Place::Published => inner.sharing.expired.push((id, w)),
                Some(w) if w.place == Place::Here => gone.push(w),
                _ => {}
            }
        }
        drop(inner);
        for w in &gone {
            self.abandoned(w);
        }
        gone.len()
    }

    fn abandoned(&self, w: &Waiting) {
        let l = &w.labels;
        let (tool, prompt) = (l.tool.as_str(), l.prompt.as_str());
        self.metrics.record_operation(&Operation {
            route: &l.route,
            method: l.method,
            tool,
            prompt,
            error: ErrorType::Cancelled,
            protocol_version: l.protocol_version,
            http_version: l.http_version,
            duration: w.answered.saturating_duration_since(w.origin.started),
            upstream: None,
        });
        self.metrics.record_rounds(&l.route, l.method, tool, w.origin.rounds);
        let outcome = Outcome::of(l.method, ErrorType::Cancelled, false);
        self.metrics.record_client_operation(&l.client, Surface::Mcp, l.method, tool, outcome);
    }
}

mod questions;
mod shared;
pub(crate) use shared::SharedWait;

#[cfg(test)]
mod tests;
