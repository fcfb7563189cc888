//! Approved networks (Backstage's production checklist): a request with a credential from
//! outside `audit.approved_networks` is counted, and audited once per credential and address per
//! `audit.unapproved_audit_interval`, whatever Backstage answered.

use std::net::IpAddr;

use tokio::time::Instant;

use super::event::AuditEvent;
use super::identity::Credential;
use super::Auditor;

impl Auditor {
    /// A request with a credential came from `source`. Outside `audit.approved_networks` it is
    /// counted, and audited once per credential and address per interval, whatever the answer.
    pub(crate) fn check_source(
        &self,
        route: &str,
        credential: &Credential,
        caller: (&str, Option<&str>),
        source: IpAddr,
        status: u16,
    ) {
        let (client, user) = caller;
        let approved = self.approved.load();
        let (networks, interval) = &**approved;
        if networks.is_empty() || networks.iter().any(|n| n.contains(&source)) {
            return;
        }
        let Some(fingerprint) = credential.fingerprint() else { return };
        self.metrics.record_unapproved_source(client);
        let now = Instant::now();
        let due = {
            let mut seen = self.unapproved_seen.lock().expect("unapproved lock");
            match seen.get(&(fingerprint, source)) {
                Some(last) if now.saturating_duration_since(*last) < *interval => false,
                _ => {
                    seen.put((fingerprint, source), now);
                    true
                }
            }
        };
        if due {
            tracing::warn!(route, client, credential = %fingerprint, %source, "a credential used from outside the approved networks");
            self.write(AuditEvent::UnapprovedSource {
                route: route.to_string(),
                client: client.to_string(),
                user: user.map(str::to_string),
                credential: Some(fingerprint.to_string()),
                source: source.to_string(),
                status,
            });
        }
    }
}
