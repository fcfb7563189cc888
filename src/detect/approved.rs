//! Approved networks (Backstage's production checklist): whether a request with a credential came
//! from outside `audit.approved_networks`, and whether that credential and address are due to be
//! audited again (once per `audit.unapproved_audit_interval`).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use lru::LruCache;
use tokio::time::Instant;

use crate::identity::Fingerprint;

pub(crate) struct Approved {
    /// The networks and the interval, swapped by a reload.
    networks: ArcSwap<(Vec<ipnet::IpNet>, Duration)>,
    /// When each credential and address outside them was last audited.
    seen: Mutex<LruCache<(Fingerprint, IpAddr), Instant>>,
}

impl Approved {
    pub(crate) fn new(networks: Vec<ipnet::IpNet>, interval: Duration, remembered: usize) -> Self {
        Self {
            networks: ArcSwap::from_pointee((networks, interval)),
            seen: Mutex::new(LruCache::new(crate::bounded::capacity(remembered))),
        }
    }

    pub(crate) fn reconfigure(&self, networks: Vec<ipnet::IpNet>, interval: Duration) {
        self.networks.store(Arc::new((networks, interval)));
    }

    /// Whether the check is on and `source` is outside every approved network.
    pub(crate) fn outside(&self, source: IpAddr) -> bool {
        let networks = self.networks.load();
        !networks.0.is_empty() && !networks.0.iter().any(|n| n.contains(&source))
    }

    /// Whether `fingerprint` from `source` is due to be audited at `now` (and if so, marks it).
    pub(crate) fn due(&self, fingerprint: Fingerprint, source: IpAddr, now: Instant) -> bool {
        let interval = self.networks.load().1;
        let mut seen = self.seen.lock().expect("unapproved lock");
        match seen.get(&(fingerprint, source)) {
            Some(last) if now.saturating_duration_since(*last) < interval => false,
            _ => {
                seen.put((fingerprint, source), now);
                true
            }
        }
    }
}
