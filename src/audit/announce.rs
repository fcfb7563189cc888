//! Bursts made known: the audit lines, the log lines, the counters and the page of a burst's
//! start and end, from this replica's detector, or from the cluster when it decides them; and
//! what this replica decided alone in cluster mode, when the cluster hands it back.

use super::event::AuditEvent;
use super::Auditor;
use crate::detect::burst::{self, BurstEvent};
use crate::shares::Shares;

impl Auditor {
    pub(super) fn burst_events(&self, events: Vec<BurstEvent>) {
        let Some(outbox) = &self.shared else { return self.announce(events) };
        // In cluster mode a burst starts and ends once per cluster (`cluster_events`), and this
        // replica's own decision is the cluster's to hand back (`decide_alone`); the detector
        // still caps this replica's lines and writes their summaries, the last one too when its
        // own burst ends (at shutdown the cluster task is gone, and the counts with it).
        let mut summaries = Vec::new();
        for e in events {
            match e {
                BurstEvent::Summary { .. } => summaries.push(e),
                BurstEvent::Ended { key, client, failures, duration, summary } => {
                    if summary.count > 0 {
                        summaries.push(BurstEvent::Summary { key, summary });
                    }
                    let summary = burst::Summary::default();
                    outbox.burst_alone(BurstEvent::Ended { key, client, failures, duration, summary });
                }
                started @ BurstEvent::Started { .. } => outbox.burst_alone(started),
            }
        }
        self.announce(summaries);
    }

    /// Bursts the cluster started or ended, this replica owning them: written and paged here.
    pub(crate) fn cluster_events(&self, events: Vec<BurstEvent>) {
        self.announce(events);
    }

    /// Once-only findings the cluster (or this replica alone) decided: the one place they are
    /// written.
    pub(crate) fn findings_decided(&self, events: Vec<AuditEvent>) {
        for event in events {
            self.write(event);
        }
    }

    /// The store was lost: the burst gauge shows this replica's own bursts until it is back.
    pub(crate) fn local_burst_gauges(&self) {
        let bursts = self.detect.bursts.lock().expect("burst lock");
        for scope in burst::Scope::ALL {
            self.metrics.set_burst_active(*scope, bursts.active(*scope));
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

impl Shares for Auditor {
    /// Cluster mode without the store: what this replica decided alone since the last exchange
    /// (bursts, shared credentials, findings waiting to be claimed) is written, as without a
    /// cluster.
    fn decide_alone(&self) {
        let Some(outbox) = &self.shared else { return };
        let (alone, findings) = outbox.take_decisions();
        self.announce(alone.bursts);
        for p in alone.pairs {
            self.shared_found(&p.route, &p.client, p.fp, p.names, p.source);
        }
        self.findings_decided(findings.into_iter().map(|(_, event)| event).collect());
    }
}
