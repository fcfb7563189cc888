//! Zero series for what the audit can count, so dashboards and alerts see every label set from
//! the start (and for new subjects and routes after a reload).

use super::reason::Reason;
use super::Auditor;
use crate::identity::{CLIENT_NONE, CLIENT_UNKNOWN};
use crate::mcp::method::Method;

impl Auditor {
    /// Zero series for the failures a route can see, per known client.
    pub(crate) fn preinit_route(&self, route: &str) {
        {
            let mut routes = self.routes.lock().expect("routes lock");
            if !routes.iter().any(|r| r == route) {
                routes.push(route.to_string());
            }
        }
        self.metrics.preinit_route(route);
        let directory = self.who.directory.load();
        let subjects: Vec<&str> = directory.subjects().iter().map(|s| &**s).collect();
        let methods = Method::AUDITED;
        self.metrics.preinit_auth_failures(route, &[Reason::MissingCredentials], &[CLIENT_NONE], &methods);
        let anonymous = [
            Reason::MalformedAuthorization,
            Reason::UnknownToken,
            Reason::TokenExpired,
            Reason::BadSignature,
            Reason::UnknownSigningKey,
            Reason::RateLimited,
        ];
        self.metrics.preinit_auth_failures(route, &anonymous, &[CLIENT_UNKNOWN], &methods);
        let mut known = subjects.clone();
        known.push(CLIENT_UNKNOWN);
        let named = [Reason::RevokedToken, Reason::PluginNotAllowed, Reason::DelegationDenied];
        self.metrics.preinit_auth_failures(route, &named, &known, &methods);
    }

    /// Zero series of `mcp_tap_unapproved_source_total` for every known client.
    pub(super) fn preinit_unapproved(&self) {
        self.metrics.preinit_checklist(CLIENT_UNKNOWN);
        for subject in self.who.directory.load().subjects() {
            self.metrics.preinit_checklist(subject);
        }
    }
}
