//! What is wrong: the detectors, each a plain structure with its clock passed in, that decide
//! from what the audit feeds them (refusals, credentials, client products, expired user tokens)
//! and return their decisions; `audit` writes what they decide. `outbox` holds what this replica
//! counted for the cluster (`cluster` takes it in the background).

pub(crate) mod approved;
pub(crate) mod burst;
pub(crate) mod expiry;
pub(crate) mod oauth;
pub(crate) mod raised;
pub(crate) mod reach;
pub(crate) mod sharing;

use std::sync::Mutex;

use crate::config::Config;

/// Every detector of one replica, each behind its own lock, configured from the config in force.
pub(crate) struct Detectors {
    pub bursts: Mutex<burst::BurstDetector>,
    pub expiries: Mutex<expiry::Expiries>,
    /// Client products per credential.
    pub sharing: Mutex<sharing::Sharing>,
    /// `audit.approved_networks`: who is outside them, and when each was last audited.
    pub approved: approved::Approved,
    /// Refusals already raised as a finding.
    pub raised: Mutex<raised::Raised>,
    /// Refresh token families and resource metadata mismatches (the OAuth journey).
    pub oauth: Mutex<oauth::Journey>,
    /// Credentials refused on MCP that the actions API answers.
    pub other_way: Mutex<reach::OtherWay>,
}

impl Detectors {
    pub(crate) fn new(config: &Config) -> Self {
        let (audit, tokens) = (&config.audit, &config.user_tokens);
        let remembered = audit.max_remembered_credentials;
        Self {
            bursts: Mutex::new(burst::BurstDetector::new(
                config.bursts.clone(),
                audit.lines_per_burst,
                audit.summary_interval,
            )),
            expiries: Mutex::new(expiry::Expiries::new(
                tokens.max_expired_tracked,
                tokens.expired_quiet_period,
                tokens.refresh_grace,
            )),
            sharing: Mutex::new(sharing::Sharing::new(remembered, audit.shared_credential_window)),
            approved: approved::Approved::new(
                audit.approved_networks.clone(),
                audit.unapproved_audit_interval,
                remembered,
            ),
            raised: Mutex::new(raised::Raised::new(remembered)),
            oauth: Mutex::new(oauth::Journey::new(config.oauth.max_tokens)),
            other_way: Mutex::new(reach::OtherWay::new(remembered)),
        }
    }

    /// New thresholds and limits from a reloaded config; what is tracked is kept.
    pub(crate) fn reconfigure(&self, config: &Config) {
        let (audit, tokens) = (&config.audit, &config.user_tokens);
        self.bursts.lock().expect("burst lock").reconfigure(
            config.bursts.clone(),
            audit.lines_per_burst,
            audit.summary_interval,
        );
        self.expiries.lock().expect("expiry lock").reconfigure(
            tokens.max_expired_tracked,
            tokens.expired_quiet_period,
            tokens.refresh_grace,
        );
        self.approved.reconfigure(audit.approved_networks.clone(), audit.unapproved_audit_interval);
        self.oauth.lock().expect("oauth lock").set_cap(config.oauth.max_tokens);
        self.other_way.lock().expect("other way lock").set_cap(config.audit.max_remembered_credentials);
    }
}
