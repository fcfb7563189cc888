//! Credentials used from outside the approved networks made known: the detector
//! (`detect::approved`) decides; here it is counted, and audited when due.

use std::net::IpAddr;

use tokio::time::Instant;

use super::event::AuditEvent;
use super::Auditor;
use crate::identity::Credential;

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
        if !self.detect.approved.outside(source) {
            return;
        }
        let Some(fingerprint) = credential.fingerprint() else { return };
        self.metrics.record_unapproved_source(client);
        if self.detect.approved.due(fingerprint, source, Instant::now()) {
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
