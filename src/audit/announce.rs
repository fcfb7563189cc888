//! Bursts made known: the audit lines, the log lines, the counters and the page of a burst's
//! start and end, from this replica's detector, or from the cluster store when one is up.

use super::event::AuditEvent;
use super::Auditor;
use crate::detect::burst::{self, BurstEvent};

impl Auditor {
    pub(super) fn burst_events(&self, events: Vec<BurstEvent>) {
        // With the cluster store up, bursts start and end once per cluster (`cluster_events`);
        // this replica's own detector still caps its lines and writes their summaries.
        let local = !self.shared.as_ref().is_some_and(super::outbox::Outbox::is_up);
        let events = events.into_iter().filter(|e| local || matches!(e, BurstEvent::Summary { .. }));
        self.announce(events.collect());
    }

    /// Bursts the cluster started or ended, this replica owning them: written and paged here.
    pub(crate) fn cluster_events(&self, events: Vec<BurstEvent>) {
        self.announce(events);
    }

    /// The store went down (`false`) or came back: while down, this replica's detector decides,
    /// and the gauge shows its own bursts.
    pub(crate) fn cluster_store(&self, up: bool) {
        if let Some(shared) = &self.shared {
            shared.set_up(up);
        }
        if !up {
            let bursts = self.bursts.lock().expect("burst lock");
            for scope in burst::Scope::ALL {
                self.metrics.set_burst_active(*scope, bursts.active(*scope));
            }
        }
    }

    fn announce(&self, events: Vec<BurstEvent>) {
        for e in events {
            match e {
                BurstEvent::Started { key, client, failures } => {
                    self.metrics.record_burst_started(key.scope);
                    tracing::warn!(scope = key.scope.as_str(), key = %key.key, client, "auth-failure burst started");
                    self.write(AuditEvent::BurstStart {
                        scope: key.scope,
                        key: key.key.to_string(),
                        client: client.clone(),
                        count: failures,
                    });
                    if let Some(p) = &self.pager {
                        p.burst_started(&key, &client);
                    }
                }
                BurstEvent::Summary { key, summary } => self.write_summary(&key, summary),
                BurstEvent::Ended { key, client, failures, duration, summary } => {
                    if summary.count > 0 {
                        self.write_summary(&key, summary);
                    }
                    self.metrics.record_burst_ended(key.scope);
                    tracing::info!(scope = key.scope.as_str(), key = %key.key, failures, "auth-failure burst ended");
                    self.write(AuditEvent::BurstEnd {
                        scope: key.scope,
                        key: key.key.to_string(),
                        client: client.clone(),
                        count: failures,
                        duration_seconds: duration.as_secs_f64(),
                    });
                    if let Some(p) = &self.pager {
                        p.burst_ended(&key, &client);
                    }
                }
            }
        }
    }

    /// Cluster mode: a burst whose replica went away before ending it, ended by another one
    /// (`key` as the store writes it: scope, `:`, subject).
    pub(crate) fn adopted_burst_end(&self, key: &str, client: String, failures: u64, duration_seconds: f64) {
        let Some((scope, subject)) = burst::Scope::ALL.iter().find_map(|s| {
            key.strip_prefix(s.as_str()).and_then(|rest| rest.strip_prefix(':')).map(|subject| (*s, subject))
        }) else {
            return;
        };
        self.metrics.record_burst_ended(scope);
        tracing::info!(
            scope = scope.as_str(),
            key = subject,
            failures,
            "auth-failure burst ended (its replica is gone)"
        );
        self.write(AuditEvent::BurstEnd { scope, key: subject.to_string(), client, count: failures, duration_seconds });
    }

    /// The exact counts of a burst's failures that got no line of their own.
    fn write_summary(&self, key: &burst::BurstKey, summary: burst::Summary) {
        self.write(AuditEvent::AuthFailureSummary {
            scope: key.scope,
            key: key.key.to_string(),
            count: summary.count,
            by_reason: summary.by_reason,
        });
    }
}
