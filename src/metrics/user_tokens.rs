//! Metrics of Backstage user tokens: expired-token requests (clients that stopped refreshing) and
//! the fetches of the upstream's signing keys.

use prometheus::{IntCounterVec, IntGauge, Registry};

use super::counter;

pub struct UserTokenMetrics {
    expired_tokens: IntCounterVec,
    refreshes: IntCounterVec,
    jwks_fetches: IntCounterVec,
    jwks_keys: IntGauge,
}

impl UserTokenMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let jwks_keys =
            IntGauge::new("mcp_tap_jwks_keys", "Signing keys of Backstage user tokens held from the upstream's JWKS.")
                .expect("valid metric");
        registry.register(Box::new(jwks_keys.clone())).expect("unique metric");
        Self {
            expired_tokens: counter(
                registry,
                "mcp_tap_expired_token_requests_total",
                "Requests refused for an expired Backstage user token (a client that stopped refreshing), by client.",
                &["client"],
            ),
            refreshes: counter(
                registry,
                "mcp_tap_user_token_refreshes_total",
                "Clients that came back with a valid user token within user_tokens.refresh_grace of an expired one \
                 (a healthy refresh after a 401, no finding), by client.",
                &["client"],
            ),
            jwks_fetches: counter(
                registry,
                "mcp_tap_jwks_fetches_total",
                "Fetches of the upstream's JWKS (user-token signing keys), by outcome.",
                &["outcome"],
            ),
            jwks_keys,
        }
    }
}

impl super::Metrics {
    pub fn record_expired_token(&self, client: &str) {
        self.user_tokens.expired_tokens.with_label_values(&[client]).inc();
    }

    pub fn record_user_token_refresh(&self, client: &str) {
        self.user_tokens.refreshes.with_label_values(&[client]).inc();
    }

    /// A JWKS fetch: `keys` held after it (`None`: it failed).
    pub fn record_jwks_fetch(&self, keys: Option<usize>) {
        self.user_tokens.jwks_fetches.with_label_values(&[if keys.is_some() { "ok" } else { "error" }]).inc();
        if let Some(n) = keys {
            self.user_tokens.jwks_keys.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn preinit_user_tokens(&self, clients: &[&str]) {
        for outcome in ["ok", "error"] {
            self.user_tokens.jwks_fetches.with_label_values(&[outcome]);
        }
        for client in clients {
            self.user_tokens.expired_tokens.with_label_values(&[client]);
            self.user_tokens.refreshes.with_label_values(&[client]);
        }
    }
}
