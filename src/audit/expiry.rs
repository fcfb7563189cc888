//! Expired-token storms made known: the detector (`detect::expiry`) decides when a client that
//! keeps sending an expired user token is a finding; here it is counted, logged and audited.

use std::time::SystemTime;

use tokio::time::Instant;

use super::event::AuditEvent;
use super::{Auditor, AuthFailure};
use crate::detect::expiry::{Expired, ExpiredRequest, Finding, Holder};
use crate::identity::Fingerprint;

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
        let request = ExpiredRequest {
            route: f.route,
            client: f.client,
            user: f.user,
            source: f.source,
            holder: f.holder,
            expired_seconds: f.expired_seconds,
        };
        let expired = self.detect.expiries.lock().expect("expiry lock").failure(&request, fp, now, &mut ended);
        if expired == Expired::Opened {
            tracing::warn!(route = f.route, client = f.client, credential = %fp, source = %f.source,
                expired_seconds = f.expired_seconds.unwrap_or(0), "a client keeps sending an expired user token: it stopped refreshing");
            let event = AuditEvent::StoppedRefreshing {
                route: f.route.to_string(),
                client: f.client.to_string(),
                user: f.user.map(str::to_string),
                credential: fp.to_string(),
                source: f.source.to_string(),
                expired_seconds: f.expired_seconds.unwrap_or(0),
            };
            match &self.shared {
                // Once per cluster: the cluster claims it, or hands it back (`decide_alone`).
                Some(outbox) => outbox.finding(fp, event),
                None => self.findings_decided(vec![event]),
            }
        }
        self.end_findings(ended);
        !self.detect.bursts.lock().expect("burst lock").source_failing(now, f.source)
    }

    /// A user token the upstream accepted: if its holder sent an expired one within the grace,
    /// the client refreshed as it should (counted, no finding).
    pub(crate) fn user_token_worked(&self, holder: Holder, fp: Fingerprint, client: &str) {
        let refreshed = {
            let mut e = self.detect.expiries.lock().expect("expiry lock");
            e.watching() && e.valid(holder, fp)
        };
        if refreshed {
            self.metrics.record_user_token_refresh(client);
            tracing::debug!(client, credential = %fp, "a client refreshed its expired user token");
        }
    }

    /// Ends findings quiet for `user_tokens.expired_quiet_period` (`all`: every one, at shutdown).
    pub(super) fn end_expired(&self, all: bool) {
        let ended = {
            let mut e = self.detect.expiries.lock().expect("expiry lock");
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
