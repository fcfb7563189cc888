//! Expired-token storms: an OAuth client that stopped refreshing keeps sending the same expired
//! user token. That is one finding ("client stopped refreshing"), with its first and latest time
//! and count, not a burst of attacks: its failures feed the per-source burst only when the source
//! also fails for other reasons.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use lru::LruCache;
use tokio::time::Instant;

use super::event::AuditEvent;
use super::identity::Fingerprint;
use super::{Auditor, AuthFailure};

/// One credential that keeps coming back expired.
#[derive(Debug, Clone)]
pub struct Finding {
    pub route: String,
    pub client: String,
    pub user: Option<String>,
    pub credential: Fingerprint,
    pub source: IpAddr,
    pub first: SystemTime,
    pub latest: SystemTime,
    pub count: u64,
    /// Seconds past `exp` at the latest request.
    pub expired_seconds: u64,
    last: Instant,
}

pub struct Expiries {
    open: LruCache<Fingerprint, Finding>,
    quiet: Duration,
}

impl Expiries {
    pub fn new(cap: usize, quiet: Duration) -> Self {
        Self { open: LruCache::new(NonZeroUsize::new(cap.max(1)).expect("non-zero")), quiet }
    }

    pub fn reconfigure(&mut self, cap: usize, quiet: Duration) {
        self.open.resize(NonZeroUsize::new(cap.max(1)).expect("non-zero"));
        self.quiet = quiet;
    }

    /// An expired request: `Some(finding)` when it opens a new finding. A finding pushed out by
    /// the cap is returned in `ended`.
    fn failure(&mut self, f: &AuthFailure<'_>, fp: Fingerprint, now: Instant, ended: &mut Vec<Finding>) -> bool {
        let wall = SystemTime::now();
        if let Some(open) = self.open.get_mut(&fp) {
            open.latest = wall;
            open.count += 1;
            open.last = now;
            open.expired_seconds = f.expired_seconds.unwrap_or(open.expired_seconds);
            return false;
        }
        let finding = Finding {
            route: f.route.to_string(),
            client: f.client.to_string(),
            user: f.user.map(str::to_string),
            credential: fp,
            source: f.source,
            first: wall,
            latest: wall,
            count: 1,
            expired_seconds: f.expired_seconds.unwrap_or(0),
            last: now,
        };
        if let Some((_, evicted)) = self.open.push(fp, finding) {
            if evicted.credential != fp {
                ended.push(evicted);
            }
        }
        true
    }

    /// Findings quiet for the quiet period, ended.
    fn quiet_ones(&mut self, now: Instant) -> Vec<Finding> {
        let mut ended = Vec::new();
        while self.open.peek_lru().is_some_and(|(_, f)| now.saturating_duration_since(f.last) >= self.quiet) {
            ended.extend(self.open.pop_lru().map(|(_, f)| f));
        }
        ended
    }

    fn all(&mut self) -> Vec<Finding> {
        let mut ended = Vec::new();
        while let Some((_, f)) = self.open.pop_lru() {
            ended.push(f);
        }
        ended
    }
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Auditor {
    /// An expired user token: counted, and audited once per finding. Returns whether the failure
    /// is done with (true), or should also go through the burst detector because its source is
    /// failing for other reasons too.
    pub(super) fn expired(&self, f: &AuthFailure<'_>) -> bool {
        self.metrics.record_expired_token(f.client);
        let Some(fp) = f.credential.fingerprint() else { return true };
        let now = Instant::now();
        let mut ended = Vec::new();
        let opened = self.expiries.lock().expect("expiry lock").failure(f, fp, now, &mut ended);
        if opened {
            tracing::warn!(route = f.route, client = f.client, credential = %fp, source = %f.source,
                expired_seconds = f.expired_seconds.unwrap_or(0), "a client keeps sending an expired user token: it stopped refreshing");
            self.write(AuditEvent::StoppedRefreshing {
                route: f.route.to_string(),
                client: f.client.to_string(),
                user: f.user.map(str::to_string),
                credential: fp.to_string(),
                source: f.source.to_string(),
                expired_seconds: f.expired_seconds.unwrap_or(0),
            });
        }
        self.end_findings(ended);
        !self.bursts.lock().expect("burst lock").source_failing(now, f.source)
    }

    /// Ends findings quiet for `user_tokens.expired_quiet_period` (`all`: every one, at shutdown).
    pub(super) fn end_expired(&self, all: bool) {
        let ended = {
            let mut e = self.expiries.lock().expect("expiry lock");
            if all {
                e.all()
            } else {
                e.quiet_ones(Instant::now())
            }
        };
        self.end_findings(ended);
    }

    fn end_findings(&self, ended: Vec<Finding>) {
        for f in ended {
            self.write(AuditEvent::StoppedRefreshingEnd {
                route: f.route,
                client: f.client,
                user: f.user,
                credential: f.credential.to_string(),
                source: f.source.to_string(),
                first: time(f.first),
                latest: time(f.latest),
                count: f.count,
                expired_seconds: f.expired_seconds,
            });
        }
    }
}
