//! Config of Backstage user tokens (the JWTs OAuth clients send): where the upstream publishes
//! its signing keys, how often the tap fetches them, and when an expired-token finding ends.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct UserTokens {
    /// Path of the upstream's JWKS (Backstage's auth backend publishes it here).
    pub jwks_path: String,
    /// The keys are fetched this often, and when a token names an unknown `kid`.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Never two fetches closer than this, however many unknown `kid`s arrive.
    #[serde(with = "humantime_serde")]
    pub min_refresh_interval: Duration,
    /// A "client stopped refreshing" finding ends after its credential sent no expired token for
    /// this long.
    #[serde(with = "humantime_serde")]
    pub expired_quiet_period: Duration,
    /// Expired credentials followed at once; beyond it the least recently seen is forgotten.
    pub max_expired_tracked: usize,
    /// How long a client has, after its first request with an expired user token, to come back
    /// with a valid one for the same user (an OAuth client that refreshes on a 401). Only a
    /// credential still sent expired past this is a "client stopped refreshing" finding.
    #[serde(with = "humantime_serde")]
    pub refresh_grace: Duration,
}

impl Default for UserTokens {
    fn default() -> Self {
        Self {
            jwks_path: "/api/auth/.well-known/jwks.json".into(),
            refresh_interval: Duration::from_secs(600),
            min_refresh_interval: Duration::from_secs(30),
            expired_quiet_period: Duration::from_secs(600),
            max_expired_tracked: 10_000,
            refresh_grace: Duration::from_secs(60),
        }
    }
}

/// How the audit names the caller of a user token.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UserIdentity {
    /// The user entity ref (`sub`, e.g. `user:default/alice`), as Backstage's own audit log does.
    #[default]
    Ref,
    /// Only the credential fingerprint.
    Fingerprint,
}

impl UserTokens {
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if !self.jwks_path.starts_with('/') {
            p.push("user_tokens.jwks_path must start with `/`".into());
        }
        if self.refresh_interval.is_zero() || self.min_refresh_interval.is_zero() || self.expired_quiet_period.is_zero()
        {
            p.push("user_tokens intervals must be greater than zero".into());
        }
        if self.max_expired_tracked == 0 {
            p.push("user_tokens.max_expired_tracked must be greater than zero".into());
        }
    }
}
