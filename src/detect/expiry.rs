//! Expired-token storms: an OAuth client that stopped refreshing keeps sending the same expired
//! user token. That is one finding ("client stopped refreshing"), with its first and latest time
//! and count, not a burst of attacks: its failures feed the per-source burst only when the source
//! also fails for other reasons.
//!
//! Many healthy OAuth clients refresh only when a request comes back 401, then retry at once with
//! a fresh token. So the first expired request of a credential only opens a watch: a valid token
//! for the same user from the same client (address and User-Agent) within
//! `user_tokens.refresh_grace` closes it as a refresh. The finding opens when the expired
//! credential is still sent once the grace has passed.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use lru::LruCache;
use tokio::time::Instant;

use crate::identity::Fingerprint;

/// Who holds a user token: a hash of its user, source address and User-Agent. A refresh is a
/// valid token with the same holder.
pub(crate) type Holder = u64;

/// The holder of a user token for `user` sent from `source` with `user_agent`.
pub(crate) fn holder(user: &str, source: IpAddr, user_agent: Option<&str>) -> Holder {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x7265_6672_6573_6821).hash_one((user, source, user_agent))
}

/// One request with an expired user token, as the detector sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExpiredRequest<'a> {
    pub route: &'a str,
    pub client: &'a str,
    pub user: Option<&'a str>,
    pub source: IpAddr,
    pub holder: Option<Holder>,
    pub expired_seconds: Option<u64>,
}

/// One credential that keeps coming back expired.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
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
    /// When the first expired request came (the grace runs from here).
    since: Instant,
    last: Instant,
    holder: Option<Holder>,
    /// The grace has passed with the credential still in use: a finding, audited.
    open: bool,
}

/// What one expired request did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// The first expired request of a credential, or a retry within the grace: watched.
    Watching,
    /// Past the grace and still expired: a new finding.
    Opened,
    /// Another request of an open finding.
    Ongoing,
}

pub(crate) struct Expiries {
    /// Credentials watched or with an open finding.
    tracked: LruCache<Fingerprint, Finding>,
    /// The watched credential of each holder, for a refresh to close.
    watched: LruCache<Holder, Fingerprint>,
    quiet: Duration,
    grace: Duration,
}

impl Expiries {
    pub(crate) fn new(cap: usize, quiet: Duration, grace: Duration) -> Self {
        let cap = NonZeroUsize::new(cap.max(1)).expect("non-zero");
        Self { tracked: LruCache::new(cap), watched: LruCache::new(cap), quiet, grace }
    }

    pub(crate) fn reconfigure(&mut self, cap: usize, quiet: Duration, grace: Duration) {
        let cap = NonZeroUsize::new(cap.max(1)).expect("non-zero");
        self.tracked.resize(cap);
        self.watched.resize(cap);
        self.quiet = quiet;
        self.grace = grace;
    }

    /// An expired request of `fp` by `holder`. A finding pushed out by the cap is returned in
    /// `ended`.
    pub(crate) fn failure(
        &mut self,
        f: &ExpiredRequest<'_>,
        fp: Fingerprint,
        now: Instant,
        ended: &mut Vec<Finding>,
    ) -> Expired {
        let wall = crate::clock::now();
        if let Some(t) = self.tracked.get_mut(&fp) {
            t.latest = wall;
            t.count += 1;
            t.last = now;
            t.expired_seconds = f.expired_seconds.unwrap_or(t.expired_seconds);
            if t.open {
                return Expired::Ongoing;
            }
            if now.saturating_duration_since(t.since) < self.grace {
                return Expired::Watching;
            }
            t.open = true;
            if let Some(h) = t.holder {
                self.watched.pop(&h);
            }
            return Expired::Opened;
        }
        let watch = Finding {
            route: f.route.to_string(),
            client: f.client.to_string(),
            user: f.user.map(str::to_string),
            credential: fp,
            source: f.source,
            first: wall,
            latest: wall,
            count: 1,
            expired_seconds: f.expired_seconds.unwrap_or(0),
            since: now,
            last: now,
            holder: f.holder,
            open: self.grace.is_zero(),
        };
        let opened = watch.open;
        if let Some(h) = f.holder.filter(|_| !opened) {
            self.watched.put(h, fp);
        }
        if let Some((_, evicted)) = self.tracked.push(fp, watch) {
            if evicted.credential != fp && evicted.open {
                ended.push(evicted);
            }
        }
        if opened {
            Expired::Opened
        } else {
            Expired::Watching
        }
    }

    /// A valid user token `fp` of `holder`: closes the holder's watched expired credential, if
    /// any. Returns whether that was a refresh.
    pub(crate) fn valid(&mut self, holder: Holder, fp: Fingerprint) -> bool {
        let Some(&old) = self.watched.peek(&holder) else { return false };
        if old == fp {
            return false;
        }
        self.watched.pop(&holder);
        self.tracked.pop(&old).is_some_and(|t| !t.open)
    }

    /// Whether any credential is watched (a valid token can then be a refresh).
    pub(crate) fn watching(&self) -> bool {
        !self.watched.is_empty()
    }

    /// Credentials quiet for the quiet period: open findings ended, watches dropped.
    pub(crate) fn quiet_ones(&mut self, now: Instant) -> Vec<Finding> {
        let mut ended = Vec::new();
        while self.tracked.peek_lru().is_some_and(|(_, t)| now.saturating_duration_since(t.last) >= self.quiet) {
            if let Some((_, t)) = self.tracked.pop_lru() {
                if let Some(h) = t.holder {
                    if self.watched.peek(&h) == Some(&t.credential) {
                        self.watched.pop(&h);
                    }
                }
                if t.open {
                    ended.push(t);
                }
            }
        }
        ended
    }

    pub(crate) fn all(&mut self) -> Vec<Finding> {
        self.watched.clear();
        let mut ended = Vec::new();
        while let Some((_, t)) = self.tracked.pop_lru() {
            if t.open {
                ended.push(t);
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Fingerprinter, KeySource};

    const GRACE: Duration = Duration::from_secs(60);
    const QUIET: Duration = Duration::from_secs(600);

    fn fp(token: &str) -> Fingerprint {
        Fingerprinter::new(b"k", KeySource::Env).fingerprint(token)
    }

    fn expired(holder: Option<Holder>) -> ExpiredRequest<'static> {
        ExpiredRequest {
            route: "default",
            client: "claude",
            user: Some("user:default/alice"),
            source: "192.0.2.1".parse().unwrap(),
            holder,
            expired_seconds: Some(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_refreshes_after_its_401_gets_no_finding() {
        let mut e = Expiries::new(100, QUIET, GRACE);
        let alice = holder("user:default/alice", "192.0.2.1".parse().unwrap(), Some("claude/1"));
        let mut ended = Vec::new();
        let f = expired(Some(alice));
        assert_eq!(e.failure(&f, fp("old"), Instant::now(), &mut ended), Expired::Watching);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(e.failure(&f, fp("old"), Instant::now(), &mut ended), Expired::Watching, "a retry in the grace");
        assert!(!e.valid(alice, fp("old")), "the same token is no refresh");
        assert!(e.valid(alice, fp("new")), "a fresh token for the same user and client");
        assert!(!e.valid(alice, fp("newer")), "counted once");
        // An hour later the fresh token expires in turn: the same again, still no finding.
        tokio::time::advance(Duration::from_secs(3600)).await;
        let f = expired(Some(alice));
        assert_eq!(e.failure(&f, fp("new"), Instant::now(), &mut ended), Expired::Watching);
        assert!(e.valid(alice, fp("newest")));
        assert!(ended.is_empty() && e.all().is_empty(), "no finding was ever open");
    }

    #[tokio::test(start_paused = true)]
    async fn a_credential_still_sent_expired_past_the_grace_is_one_finding() {
        let mut e = Expiries::new(100, QUIET, GRACE);
        let alice = holder("user:default/alice", "192.0.2.1".parse().unwrap(), Some("claude/1"));
        let f = expired(Some(alice));
        let mut ended = Vec::new();
        assert_eq!(e.failure(&f, fp("old"), Instant::now(), &mut ended), Expired::Watching);
        tokio::time::advance(GRACE - Duration::from_secs(1)).await;
        assert_eq!(e.failure(&f, fp("old"), Instant::now(), &mut ended), Expired::Watching);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(e.failure(&f, fp("old"), Instant::now(), &mut ended), Expired::Opened);
        assert_eq!(e.failure(&f, fp("old"), Instant::now(), &mut ended), Expired::Ongoing);
        // A late refresh does not take the finding back: it ends when the credential goes quiet.
        assert!(!e.valid(alice, fp("new")));
        tokio::time::advance(QUIET).await;
        let quiet = e.quiet_ones(Instant::now());
        assert_eq!(quiet.len(), 1);
        assert_eq!(quiet[0].count, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn another_user_or_client_is_no_refresh_and_a_lone_expired_request_is_forgotten() {
        let mut e = Expiries::new(100, QUIET, GRACE);
        let source = "192.0.2.1".parse().unwrap();
        let alice = holder("user:default/alice", source, Some("claude/1"));
        let bob = holder("user:default/bob", source, Some("claude/1"));
        let alice_elsewhere = holder("user:default/alice", source, Some("curl/8"));
        let mut ended = Vec::new();
        e.failure(&expired(Some(alice)), fp("old"), Instant::now(), &mut ended);
        assert!(!e.valid(bob, fp("bob")));
        assert!(!e.valid(alice_elsewhere, fp("other")));
        // Nothing came back: the watch is dropped quietly once the quiet period passed.
        tokio::time::advance(QUIET).await;
        assert!(e.quiet_ones(Instant::now()).is_empty());
        assert!(!e.watching());
        // Without a grace, the first expired request is the finding (the earlier behaviour).
        let mut strict = Expiries::new(100, QUIET, Duration::ZERO);
        assert_eq!(strict.failure(&expired(None), fp("old"), Instant::now(), &mut ended), Expired::Opened);
    }
}
