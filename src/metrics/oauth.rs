//! Metrics of MCP clients' OAuth journey: each step and its outcome, refreshes against
//! re-authorizations per client, the opt-in `WWW-Authenticate` header, and what the tap could
//! not read or had to forget.

use prometheus::{IntCounterVec, Registry};

use super::{catalogue, counter_of};
use crate::oauth::{Outcome, Step};

pub(super) struct OAuthMetrics {
    requests: IntCounterVec,
    refreshes: IntCounterVec,
    reauthorizations: IntCounterVec,
    www_authenticate: IntCounterVec,
    unread: IntCounterVec,
    forgotten: IntCounterVec,
}

/// What the tap remembers about OAuth, for `mcp_tap_oauth_forgotten_total{table}`.
pub(crate) const TABLES: [&str; 2] = ["clients", "tokens"];

impl OAuthMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            requests: counter_of(registry, &catalogue::OAUTH_REQUESTS),
            refreshes: counter_of(registry, &catalogue::OAUTH_REFRESHES),
            reauthorizations: counter_of(registry, &catalogue::OAUTH_REAUTHORIZATIONS),
            www_authenticate: counter_of(registry, &catalogue::OAUTH_WWW_AUTHENTICATE),
            unread: counter_of(registry, &catalogue::OAUTH_UNREAD),
            forgotten: counter_of(registry, &catalogue::OAUTH_FORGOTTEN),
        }
    }

    /// Zero series: every step's `ok`, and the failures the dashboards and alerts divide by.
    pub(super) fn preinit(&self, unknown_client: &str) {
        for step in Step::ALL {
            for outcome in [Outcome::Ok, Outcome::InvalidGrant, Outcome::InvalidClient, Outcome::AccessDenied] {
                self.requests.with_label_values(&[step.as_str(), outcome.as_str()]);
            }
            self.unread.with_label_values(&[step.as_str()]);
        }
        for table in TABLES {
            self.forgotten.with_label_values(&[table]);
        }
        // Clients are named as they arrive; `unknown` is there from the start.
        self.refreshes.with_label_values(&[unknown_client]);
        self.reauthorizations.with_label_values(&[unknown_client]);
    }
}

impl super::Metrics {
    /// Zero series of the OAuth journey; `unknown_client` is the label of a client without a name.
    pub(crate) fn preinit_oauth(&self, unknown_client: &str) {
        self.oauth.preinit(unknown_client);
    }

    pub(crate) fn record_oauth_step(&self, step: Step, outcome: Outcome) {
        self.oauth.requests.with_label_values(&[step.as_str(), outcome.as_str()]).inc();
    }

    pub(crate) fn record_oauth_refresh(&self, client: &str) {
        self.oauth.refreshes.with_label_values(&[client]).inc();
    }

    pub(crate) fn record_oauth_reauthorization(&self, client: &str) {
        self.oauth.reauthorizations.with_label_values(&[client]).inc();
    }

    pub(crate) fn record_www_authenticate_added(&self, route: &str) {
        self.oauth.www_authenticate.with_label_values(&[route]).inc();
    }

    pub(crate) fn record_oauth_unread(&self, step: Step) {
        self.oauth.unread.with_label_values(&[step.as_str()]).inc();
    }

    /// `table` is one of `TABLES`.
    pub(crate) fn record_oauth_forgotten(&self, table: &'static str, n: u64) {
        if n > 0 {
            self.oauth.forgotten.with_label_values(&[table]).inc_by(n);
        }
    }
}
