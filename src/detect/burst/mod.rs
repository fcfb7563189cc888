//! Burst detection over auth failures, pure and driven by the caller's clock: failures over the
//! last window per source address, per credential and globally, counted as the cluster counts
//! them (`windows`, `estimate`), and distinct failing credentials per source (stuffing). Keys are bounded by LRU caches; during a burst per-failure audit lines are capped
//! and the rest are counted exactly into summaries.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;

mod window;
use tokio::time::Instant;
use window::Counter;
pub(crate) use window::{estimate, windows};

use crate::config::Bursts;
use crate::identity::Fingerprint;
use crate::metrics::Reason;

pub(crate) use crate::metrics::Scope;

/// One burst's identity: the scope and the key within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct BurstKey {
    pub scope: Scope,
    pub key: Subject,
}

/// What a burst is about. Typed, so counting a failure formats nothing; written as text
/// (`198.51.100.7`, `2001:db8:1:2::/64`, a fingerprint, `all`) only in audit lines and alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Subject {
    Address(IpAddr),
    /// IPv6 sources grouped by network: the address with host bits cleared, and the prefix.
    Network(std::net::Ipv6Addr, u8),
    Credential(Fingerprint),
    All,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Address(ip) => write!(f, "{ip}"),
            Subject::Network(ip, prefix) => write!(f, "{ip}/{prefix}"),
            Subject::Credential(fp) => write!(f, "{fp}"),
            Subject::All => f.write_str("all"),
        }
    }
}

/// Failures of a burst that got no line of their own, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub count: u64,
    pub by_reason: BTreeMap<Reason, u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BurstEvent {
    Started { key: BurstKey, client: String, failures: u64 },
    Summary { key: BurstKey, summary: Summary },
    Ended { key: BurstKey, client: String, failures: u64, duration: Duration, summary: Summary },
}

#[derive(Debug)]
struct Active {
    started: Instant,
    last_failure: Instant,
    failures: u64,
    lines_written: usize,
    pending: Summary,
    last_summary: Instant,
    client: String,
}

/// What to do with one failure.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Write this failure's own audit (and log) line; false when a burst's line cap took it.
    pub write_line: bool,
    pub events: Vec<BurstEvent>,
    /// Keys evicted from a full cache, per scope.
    pub evicted: Vec<Scope>,
}

pub(crate) struct BurstDetector {
    cfg: Bursts,
    lines_per_burst: usize,
    summary_interval: Duration,
    /// Where the detector's windows are counted from.
    epoch: Instant,
    sources: LruCache<IpAddr, Counter>,
    credentials: LruCache<Fingerprint, Counter>,
    stuffing: LruCache<IpAddr, Vec<(Fingerprint, Instant)>>,
    global: Option<Counter>,
    /// Bounded by `max_tracked_keys` per scope; keyed by what clients send, so the hasher is
    /// randomly seeded (and faster than SipHash, which showed in the auth-failure profile).
    active: HashMap<BurstKey, Active, foldhash::fast::RandomState>,
}

impl BurstDetector {
    pub(crate) fn new(cfg: Bursts, lines_per_burst: usize, summary_interval: Duration) -> Self {
        let cap = crate::bounded::capacity(cfg.max_tracked_keys);
        Self {
            cfg,
            lines_per_burst,
            summary_interval,
            epoch: Instant::now(),
            sources: LruCache::new(cap),
            credentials: LruCache::new(cap),
            stuffing: LruCache::new(cap),
            global: None,
            active: HashMap::default(),
        }
    }

    /// New thresholds take effect for the next failure; tracked state is kept.
    pub(crate) fn reconfigure(&mut self, cfg: Bursts, lines_per_burst: usize, summary_interval: Duration) {
        if let Some(cap) = NonZeroUsize::new(cfg.max_tracked_keys) {
            self.sources.resize(cap);
            self.credentials.resize(cap);
            self.stuffing.resize(cap);
        }
        self.cfg = cfg;
        self.lines_per_burst = lines_per_burst;
        self.summary_interval = summary_interval;
    }

    /// Records one failure and decides whether it gets its own audit line.
    pub(crate) fn failure(
        &mut self,
        now: Instant,
        source: IpAddr,
        credential: Option<Fingerprint>,
        reason: Reason,
        client: &str,
    ) -> Verdict {
        let mut verdict = Verdict::default();
        let source = group(source, self.cfg.ipv6_prefix);
        let crossed = self.crossed(now, source, credential, &mut verdict);
        self.start_bursts(crossed, now, client, &mut verdict);
        verdict.write_line = self.count_in_bursts(now, source, credential, reason);
        for e in &mut verdict.events {
            if let BurstEvent::Started { key, failures, .. } = e {
                *failures = self.active.get(key).map_or(0, |a| a.failures);
            }
        }
        verdict
    }

    /// Whether `source` failed within the last window: an expired user token from it then mixes
    /// with other failures and counts toward the source's burst.
    pub(crate) fn source_failing(&self, now: Instant, source: IpAddr) -> bool {
        let source = group(source, self.cfg.ipv6_prefix);
        let at = self.at_ms(now);
        self.sources.peek(&source).is_some_and(|c| {
            let mut c = *c;
            c.count(at, self.cfg.source.window) > 0
        })
    }

    /// Milliseconds since the detector started: where its fixed windows fall.
    fn at_ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Adds the failure to every bucket it belongs to; returns the keys now over their threshold.
    fn crossed(
        &mut self,
        now: Instant,
        source: IpAddr,
        credential: Option<Fingerprint>,
        verdict: &mut Verdict,
    ) -> Vec<BurstKey> {
        let cfg = self.cfg.clone();
        let at = self.at_ms(now);
        let mut crossed = Vec::new();
        if bump(Scope::Source, &mut self.sources, source, at, &cfg.source, verdict) {
            crossed.push(BurstKey { scope: Scope::Source, key: self.source_key(source) });
        }
        if let Some(fp) = credential {
            if bump(Scope::Credential, &mut self.credentials, fp, at, &cfg.credential, verdict) {
                crossed.push(BurstKey { scope: Scope::Credential, key: Subject::Credential(fp) });
            }
            if self.stuffed(now, source, fp, verdict) {
                crossed.push(BurstKey { scope: Scope::Stuffing, key: self.source_key(source) });
            }
        }
        let global = self.global.get_or_insert(Counter::new(at, cfg.global.window));
        if global.add(at, cfg.global.window) >= u64::from(cfg.global.failures) {
            crossed.push(BurstKey { scope: Scope::Global, key: Subject::All });
        }
        crossed
    }

    /// Remembers that `source` used `fp`; true when it used too many distinct credentials lately.
    fn stuffed(&mut self, now: Instant, source: IpAddr, fp: Fingerprint, verdict: &mut Verdict) -> bool {
        if self.stuffing.len() == self.stuffing.cap().get() && !self.stuffing.contains(&source) {
            verdict.evicted.push(Scope::Stuffing);
        }
        let cfg = &self.cfg.stuffing;
        let seen = self.stuffing.get_or_insert_mut(source, Vec::new);
        seen.retain(|(_, t)| now.saturating_duration_since(*t) < cfg.window);
        let limit = cfg.credentials as usize;
        if let Some(entry) = seen.iter_mut().find(|(f, _)| *f == fp) {
            entry.1 = now;
        } else if seen.len() < limit {
            seen.push((fp, now));
        }
        seen.len() >= limit
    }

    fn start_bursts(&mut self, crossed: Vec<BurstKey>, now: Instant, client: &str, verdict: &mut Verdict) {
        for key in crossed {
            if !self.active.contains_key(&key) && self.active.len() < self.cfg.max_tracked_keys * Scope::ALL.len() {
                self.active.insert(
                    key,
                    Active {
                        started: now,
                        last_failure: now,
                        failures: 0,
                        lines_written: 0,
                        pending: Summary::default(),
                        last_summary: now,
                        client: client.to_string(),
                    },
                );
                verdict.events.push(BurstEvent::Started { key, client: client.to_string(), failures: 0 });
            }
        }
    }

    /// Every active burst this failure belongs to counts it; the first one (in scope order) other
    /// than the global one decides whether it still gets a line of its own. Returns that decision.
    fn count_in_bursts(
        &mut self,
        now: Instant,
        source: IpAddr,
        credential: Option<Fingerprint>,
        reason: Reason,
    ) -> bool {
        let mut owner_decided = false;
        let mut write_line = true;
        if self.active.is_empty() {
            return write_line;
        }
        for key in self.keys_of(source, credential) {
            if let Some(a) = self.active.get_mut(&key) {
                a.failures += 1;
                a.last_failure = now;
                // The global burst counts every failure but silences none: a new attacker's own
                // lines are written until its own source or credential burst caps them.
                if !owner_decided && key.scope != Scope::Global {
                    owner_decided = true;
                    if a.lines_written < self.lines_per_burst {
                        a.lines_written += 1;
                    } else {
                        write_line = false;
                        a.pending.count += 1;
                        *a.pending.by_reason.entry(reason).or_default() += 1;
                    }
                }
            }
        }
        write_line
    }

    /// The burst key of a (grouped) source: the address, or the IPv6 network with its prefix.
    fn source_key(&self, source: IpAddr) -> Subject {
        match source {
            IpAddr::V6(v6) if self.cfg.ipv6_prefix < 128 => Subject::Network(v6, self.cfg.ipv6_prefix),
            _ => Subject::Address(source),
        }
    }

    /// The bursts a failure can belong to, in scope order.
    fn keys_of(&self, source: IpAddr, credential: Option<Fingerprint>) -> impl Iterator<Item = BurstKey> + use<> {
        let source = self.source_key(source);
        let by_credential = credential.map(|fp| {
            [
                BurstKey { scope: Scope::Credential, key: Subject::Credential(fp) },
                BurstKey { scope: Scope::Stuffing, key: source },
            ]
        });
        std::iter::once(BurstKey { scope: Scope::Source, key: source })
            .chain(by_credential.into_iter().flatten())
            .chain(std::iter::once(BurstKey { scope: Scope::Global, key: Subject::All }))
    }

    /// Ends bursts quiet for the quiet period and emits summaries that are due.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<BurstEvent> {
        let quiet = self.cfg.quiet_period;
        let mut events = Vec::new();
        let mut ended: Vec<BurstKey> = Vec::new();
        for (key, a) in &mut self.active {
            if now.saturating_duration_since(a.last_failure) >= quiet {
                ended.push(*key);
            } else if a.pending.count > 0 && now.saturating_duration_since(a.last_summary) >= self.summary_interval {
                a.last_summary = now;
                events.push(BurstEvent::Summary { key: *key, summary: std::mem::take(&mut a.pending) });
            }
        }
        ended.sort();
        for key in ended {
            let a = self.active.remove(&key).expect("present");
            events.push(BurstEvent::Ended {
                key,
                client: a.client,
                failures: a.failures,
                duration: a.last_failure - a.started,
                summary: a.pending,
            });
        }
        events
    }

    /// Ends every burst (the tap is stopping).
    pub(crate) fn drain(&mut self) -> Vec<BurstEvent> {
        let mut keys: Vec<BurstKey> = self.active.keys().copied().collect();
        keys.sort();
        keys.into_iter()
            .map(|key| {
                let a = self.active.remove(&key).expect("present");
                BurstEvent::Ended {
                    key,
                    client: a.client,
                    failures: a.failures,
                    duration: a.last_failure - a.started,
                    summary: a.pending,
                }
            })
            .collect()
    }

    /// The burst keys a failure from `source` with `credential` belongs to (stuffing included),
    /// and the source's key: what a replica tells the cluster store.
    pub(crate) fn keys_for(&self, source: IpAddr, credential: Option<Fingerprint>) -> (Subject, [Option<BurstKey>; 4]) {
        let source = group(source, self.cfg.ipv6_prefix);
        // At most four keys (source, credential, stuffing, global): no allocation per failure.
        let mut keys = [None; 4];
        for (slot, key) in keys.iter_mut().zip(self.keys_of(source, credential)) {
            *slot = Some(key);
        }
        (self.source_key(source), keys)
    }

    /// Keys in burst in `scope` (the metrics count them as they start and end).
    pub(crate) fn active(&self, scope: Scope) -> usize {
        self.active.keys().filter(|k| k.scope == scope).count()
    }
}

/// Adds a failure to a key's counter (creating it, evicting the least recent key if full);
/// returns whether the failures of the last window reach the threshold.
fn bump<K: std::hash::Hash + Eq + Copy>(
    scope: Scope,
    cache: &mut LruCache<K, Counter>,
    key: K,
    at_ms: u64,
    threshold: &crate::config::Threshold,
    verdict: &mut Verdict,
) -> bool {
    if cache.len() == cache.cap().get() && !cache.contains(&key) {
        verdict.evicted.push(scope);
    }
    let window = threshold.window;
    cache.get_or_insert_mut(key, || Counter::new(at_ms, window)).add(at_ms, window) >= u64::from(threshold.failures)
}

/// The address with its host bits cleared: IPv6 sources are grouped by `prefix` bits.
fn group(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if prefix < 128 => {
            let mask = u128::MAX << (128 - u32::from(prefix));
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & mask))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
