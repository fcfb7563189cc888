//! MCP sessions: header sessions (`Mcp-Session-Id`) and inferred ones for stateless upstreams
//! such as Backstage (an `initialize` from one client identity opens a logical session).
//! Bounded by a cap; time comes from `tokio::time` so tests can pause it. In cluster mode the
//! replicas share when they saw each session (`cluster`): a session lives on the replica that
//! saw it start, and ends there once the whole cluster has been quiet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::{Metrics, SessionEnd, SessionKind};

/// Who a stateless client is: route, a keyed hash of its credential, its address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub route: Box<str>,
    pub credential: u64,
    pub source: IpAddr,
}

#[derive(Debug, Clone)]
struct Session {
    /// What the replicas call this session's activity by (`cluster::header_key`, `client_key`).
    share_key: u64,
    /// An inferred session: what an `initialize` of the same client elsewhere is called by.
    init_key: Option<u64>,
    /// Cluster mode, a stateless session: its claim in the store, and whether this replica counts it.
    claim: Option<u64>,
    counted: Counted,
    kind: SessionKind,
    route: Box<str>,
    started: Instant,
    last_seen: Instant,
    protocol_version: &'static str,
}

/// Whether a session is in this replica's metrics. A stateless session in cluster mode starts on
/// every replica the client reaches; the one that claims it in the store counts it, the others
/// keep it only to pass its activity on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Yes,
    /// Waiting for the exchange to claim it.
    Pending,
    /// Another replica counts it.
    Elsewhere,
}

#[derive(Default)]
struct Inner {
    header: HashMap<(Box<str>, Box<str>), Session>,
    /// Several clients (by `clientInfo.name`) may share one credential and address.
    inferred: HashMap<ClientKey, Vec<(Box<str>, Session)>>,
    count: usize,
}

pub(crate) struct SessionTracker {
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
    idle_timeout: Mutex<Duration>,
    max_tracked: Mutex<usize>,
    sharing: Mutex<cluster::Sharing>,
    /// Cluster mode: session activity is noted for the exchange.
    shared: std::sync::atomic::AtomicBool,
    /// Multi round-trip calls waiting for their client's input.
    pub waits: InputWaits,
    /// Requests their clients cancelled with `notifications/cancelled`.
    pub cancels: cancels::Cancels,
    /// Tasks (the Tasks extension) followed to their end.
    pub tasks: Tasks,
}

impl SessionTracker {
    pub(crate) fn new(metrics: Arc<Metrics>, idle_timeout: Duration, max_tracked: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            idle_timeout: Mutex::new(idle_timeout),
            max_tracked: Mutex::new(max_tracked),
            sharing: Mutex::default(),
            shared: std::sync::atomic::AtomicBool::new(false),
            waits: InputWaits::new(metrics.clone(), Duration::from_secs(600), 10_000),
            cancels: cancels::Cancels::new(metrics.clone(), max_tracked),
            tasks: Tasks::new(metrics.clone(), 10_000, Duration::from_secs(24 * 3600)),
            metrics,
        }
    }

    pub(crate) fn set_limits(&self, idle_timeout: Duration, max_tracked: usize) {
        *self.idle_timeout.lock().expect("session lock") = idle_timeout;
        *self.max_tracked.lock().expect("session lock") = max_tracked;
        self.cancels.set_max(max_tracked);
    }

    fn has_room(&self, inner: &Inner) -> bool {
        if inner.count < *self.max_tracked.lock().expect("session lock") {
            true
        } else {
            self.metrics.record_label_overflow(crate::metrics::OverflowLabel::Session);
            false
        }
    }

    /// Records a session's end at `at` (its last activity when it ended without a word).
    fn end(&self, s: Session, reason: SessionEnd, at: Instant) {
        if s.counted != Counted::Yes {
            return;
        }
        if let Some(claim) = s.claim {
            self.release(claim);
        }
        let duration = at.saturating_duration_since(s.started);
        self.metrics.record_session_end(&s.route, s.protocol_version, (s.kind, reason), duration);
    }

    /// An `initialize` answer carried `Mcp-Session-Id`.
    pub(crate) fn header_started(&self, route: &str, id: &str, protocol_version: &'static str) {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("session lock");
        let key = (route.into(), id.into());
        let share_key = cluster::header_key(route, id);
        if inner.header.contains_key(&key) || !self.has_room(&inner) {
            return;
        }
        let kind = SessionKind::Header;
        let s = Session {
            share_key,
            init_key: None,
            claim: None,
            counted: Counted::Yes,
            kind,
            route: route.into(),
            started: now,
            last_seen: now,
            protocol_version,
        };
        inner.header.insert(key, s);
        inner.count += 1;
        self.metrics.record_session_start(route);
    }

    /// Traffic on a header session; returns its protocol version if the session is known.
    pub(crate) fn touch_header(&self, route: &str, id: &str) -> Option<&'static str> {
        let mut inner = self.inner.lock().expect("session lock");
        let s = inner.header.get_mut(&(route.into(), id.into()))?;
        s.last_seen = Instant::now();
        Some(s.protocol_version)
    }

    pub(crate) fn end_header(&self, route: &str, id: &str, reason: SessionEnd) {
        let now = Instant::now();
        let removed = {
            let mut inner = self.inner.lock().expect("session lock");
            let s = inner.header.remove(&(route.into(), id.into()));
            if s.is_some() {
                inner.count -= 1;
            }
            s
        };
        if let Some(s) = removed {
            self.end(s, reason, now);
        }
    }

    /// A successful `initialize` without a session id: a new logical session for this identity,
    /// ending the previous one of the same client name.
    pub(crate) fn inferred_started(&self, key: ClientKey, client_name: &str, protocol_version: &'static str) {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("session lock");
        let route: Box<str> = key.route.clone();
        let mut ended = None;
        if let Some(list) = inner.inferred.get_mut(&key) {
            if let Some(pos) = list.iter().position(|(n, _)| &**n == client_name) {
                ended = Some(list.swap_remove(pos).1);
            }
        }
        if ended.is_some() {
            inner.count -= 1;
        } else if !self.has_room(&inner) {
            return;
        }
        let kind = SessionKind::Inferred;
        let (share_key, init_key) = (cluster::client_key(&key), cluster::init_key(&key, client_name));
        self.seen(share_key, Some(init_key));
        let s = Session {
            share_key,
            init_key: Some(init_key),
            claim: None,
            counted: Counted::Yes,
            kind,
            route: route.clone(),
            started: now,
            last_seen: now,
            protocol_version,
        };
        inner.inferred.entry(key).or_default().push((client_name.into(), s));
        inner.count += 1;
        drop(inner);
        if let Some(old) = ended {
            // The gap between the last request and the new `initialize` is not session time.
            let last = old.last_seen;
            self.end(old, SessionEnd::Reinitialized, last);
        }
        self.metrics.record_session_start(&route);
    }

    /// A request of an MCP 2026-07-28 client, which has no handshake: its session (this client
    /// name on this identity) starts at its first request and ends after an idle gap.
    pub(crate) fn stateless_request(&self, key: &ClientKey, client_name: &str, protocol_version: &'static str) {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("session lock");
        if let Some(list) = inner.inferred.get_mut(key) {
            if let Some((_, s)) = list.iter_mut().find(|(n, s)| &**n == client_name && s.kind == SessionKind::Stateless)
            {
                s.last_seen = now;
                s.protocol_version = protocol_version;
                return;
            }
        }
        if !self.has_room(&inner) {
            return;
        }
        let kind = SessionKind::Stateless;
        let (route, share_key) = (key.route.clone(), cluster::client_key(key));
        // In a cluster, the replica that claims it in the store counts it (`cluster`).
        let clustered = self.is_shared();
        let (claim, counted) = if clustered {
            (Some(cluster::init_key(key, client_name)), Counted::Pending)
        } else {
            (None, Counted::Yes)
        };
        let s = Session {
            share_key,
            init_key: None,
            claim,
            counted,
            kind,
            route,
            started: now,
            last_seen: now,
            protocol_version,
        };
        inner.inferred.entry(key.clone()).or_default().push((client_name.into(), s));
        inner.count += 1;
        drop(inner);
        if counted == Counted::Yes {
            self.metrics.record_session_start(&key.route);
        }
    }

    /// Traffic from a stateless client; returns the protocol version of its newest session.
    pub(crate) fn touch_inferred(&self, key: &ClientKey) -> Option<&'static str> {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("session lock");
        let list = inner.inferred.get_mut(key)?;
        for (_, s) in list.iter_mut() {
            s.last_seen = now;
        }
        list.iter().max_by_key(|(_, s)| s.started).map(|(_, s)| s.protocol_version)
    }

    /// Ends sessions idle longer than the timeout, and records calls whose client never came
    /// back with the input they waited for; returns how many sessions ended.
    pub(crate) fn sweep(&self) -> usize {
        let now = Instant::now();
        self.waits.sweep(now);
        self.tasks.sweep(now);
        let idle = *self.idle_timeout.lock().expect("session lock");
        let mut ended = Vec::new();
        {
            let mut inner = self.inner.lock().expect("session lock");
            inner.header.retain(|_, s| {
                let keep = now.saturating_duration_since(s.last_seen) < idle;
                if !keep {
                    ended.push(s.clone());
                }
                keep
            });
            inner.inferred.retain(|_, list| {
                list.retain(|(_, s)| {
                    let keep = now.saturating_duration_since(s.last_seen) < idle;
                    if !keep {
                        ended.push(s.clone());
                    }
                    keep
                });
                !list.is_empty()
            });
            inner.count -= ended.len();
        }
        let n = ended.len();
        for s in ended {
            // Idle time is not session time: the session ended when it was last seen.
            let last = s.last_seen;
            self.end(s, SessionEnd::Idle, last);
        }
        n
    }

    /// Ends every session (the tap is stopping).
    pub(crate) fn shutdown(&self) {
        let now = Instant::now();
        let all: Vec<Session> = {
            let mut inner = self.inner.lock().expect("session lock");
            inner.count = 0;
            let mut all: Vec<Session> = inner.header.drain().map(|(_, s)| s).collect();
            all.extend(inner.inferred.drain().flat_map(|(_, l)| l.into_iter().map(|(_, s)| s)));
            all
        };
        for s in all {
            self.end(s, SessionEnd::Shutdown, now);
        }
    }

    /// Sessions tracked now (the gauge follows them per route).
    #[cfg(test)]
    pub(crate) fn active(&self) -> usize {
        self.inner.lock().expect("session lock").count
    }

    /// How often `sweep` should run so a session ends (and a call waiting for input is given
    /// up) within ~10% of its timeout.
    pub(crate) fn sweep_interval(&self) -> Duration {
        let idle = *self.idle_timeout.lock().expect("session lock");
        let wait = self.waits.timeout();
        (idle.min(wait) / 10).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }
}

mod cancels;
mod cluster;
mod rounds;
mod tasks;
pub(crate) use cluster::{unix_ms, News};
pub(crate) use rounds::{CallLabels, InputWaits, Origin, RoundKey, SharedWait};
pub(crate) use tasks::{Access, Requester, TaskEvent, TaskLabels, Tasks};

#[cfg(test)]
mod tests;
