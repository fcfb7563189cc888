//! Shared credentials made known: the detector (`detect::sharing`) finds a credential presented
//! by two client products; here it is counted, logged and audited once per pair.

use std::net::IpAddr;

use tokio::time::Instant;

use super::event::AuditEvent;
use super::outbox::Pair;
use super::Auditor;
use crate::detect::sharing::Product;
use crate::identity::{Credential, Fingerprint};

impl Auditor {
    /// A credential presented by a client product: a second product within the window is a
    /// shared credential, counted and audited once per pair.
    pub(crate) fn check_sharing(&self, route: &str, credential: &Credential, client: &str, product: &Product<'_>) {
        let Some(fp) = credential.fingerprint() else { return };
        let Some(outbox) = &self.shared else {
            let pair = self.detect.sharing.lock().expect("sharing lock").observe(fp, product, Instant::now());
            let Some((first, second)) = pair else { return };
            return self.shared_found(route, client, fp, [first, second], product.source);
        };
        // The cluster decides, on declared names (a replica may hold a program's nameless
        // requests without the `initialize` another replica saw); this replica's own pair is
        // the cluster's to hand back when the store cannot be reached.
        let (declared, pair) = {
            let mut sharing = self.detect.sharing.lock().expect("sharing lock");
            (sharing.declared(fp, product), sharing.observe(fp, product, Instant::now()))
        };
        if let Some(name) = declared {
            outbox.product(fp, &name, route, client, product.source);
        }
        if let Some((first, second)) = pair {
            let (route, client) = (route.to_string(), client.to_string());
            outbox.pair_alone(Pair { route, client, fp, names: [first, second], source: product.source });
        }
    }

    /// A credential used by two client products: counted, logged and audited (once per pair,
    /// by this replica's detector or by the cluster's).
    pub(crate) fn shared_found(
        &self,
        route: &str,
        client: &str,
        fp: Fingerprint,
        clients: [String; 2],
        source: IpAddr,
    ) {
        let [first, second] = clients;
        self.metrics.record_credential_shared(client);
        tracing::warn!(route, client, credential = %fp, first = %first, second = %second, "one credential used by different clients");
        self.write(AuditEvent::CredentialShared {
            route: route.to_string(),
            client: client.to_string(),
            credential: fp.to_string(),
            clients: [first, second],
            source: source.to_string(),
        });
    }
}
