//! Metrics of Backstage user tokens: expired-token requests (clients that stopped refreshing) and
//! the fetches of the upstream's signing keys.

use prometheus::{IntCounterVec, IntGauge, Registry};

use super::{catalogue, counter_of, int_gauge_of};

pub(super) struct UserTokenMetrics {
    expired_tokens: IntCounterVec,
    refreshes: IntCounterVec,
    jwks_fetches: IntCounterVec,
    jwks_keys: IntGauge,
}

impl UserTokenMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            expired_tokens: counter_of(registry, &catalogue::EXPIRED_TOKENS),
            refreshes: counter_of(registry, &catalogue::USER_TOKEN_REFRESHES),
            jwks_fetches: counter_of(registry, &catalogue::JWKS_FETCHES),
            jwks_keys: int_gauge_of(registry, &catalogue::JWKS_KEYS),
        }
    }
}

impl super::Metrics {
    pub(crate) fn record_expired_token(&self, client: &str) {
        self.user_tokens.expired_tokens.with_label_values(&[client]).inc();
    }

    pub(crate) fn record_user_token_refresh(&self, client: &str) {
        self.user_tokens.refreshes.with_label_values(&[client]).inc();
    }

    /// A JWKS fetch: `keys` held after it (`None`: it failed).
    pub(crate) fn record_jwks_fetch(&self, keys: Option<usize>) {
        self.user_tokens.jwks_fetches.with_label_values(&[if keys.is_some() { "ok" } else { "error" }]).inc();
        if let Some(n) = keys {
            self.user_tokens.jwks_keys.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn preinit_user_tokens(&self, clients: &[&str]) {
        for outcome in ["ok", "error"] {
            self.user_tokens.jwks_fetches.with_label_values(&[outcome]);
        }
        for client in clients {
            self.user_tokens.expired_tokens.with_label_values(&[client]);
            self.user_tokens.refreshes.with_label_values(&[client]);
        }
    }
}
