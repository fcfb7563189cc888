//! Why a request was refused, from what the client sent, what Backstage answered, and whether
//! the credential worked before (a rotated token still in use).

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use lru::LruCache;
use serde::Deserialize;
use tokio::time::Instant;

use crate::identity::jwt::Verdict;
use crate::identity::{Credential, Fingerprint};

pub(crate) use crate::metrics::Reason;

/// Backstage's JSON error body: `{"error":{"name":"AuthenticationError","message":"…"},…}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BackstageError {
    #[serde(default)]
    pub error: ErrorBody,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub message: String,
}

impl BackstageError {
    pub(crate) fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// The reason for a Backstage user token's 401, from the tap's own verdict. Only a token whose
/// signature holds and that is in date is `revoked_token`.
pub(crate) fn user_token_reason(verdict: Verdict) -> Reason {
    match verdict {
        Verdict::Malformed => Reason::MalformedJwt,
        Verdict::WrongType => Reason::WrongTokenType,
        Verdict::UnknownKey => Reason::UnknownSigningKey,
        Verdict::BadSignature => Reason::BadSignature,
        Verdict::WrongAudience => Reason::WrongAudience,
        Verdict::Expired { .. } => Reason::TokenExpired,
        Verdict::NotYetValid => Reason::TokenNotYetValid,
        Verdict::Valid => Reason::RevokedToken,
    }
}

/// The reason for a 401, 403 or 429.
pub(crate) fn classify_rejection(
    status: u16,
    credential: &Credential,
    body: &BackstageError,
    was_valid: bool,
) -> Reason {
    match (status, credential) {
        (429, _) => Reason::RateLimited,
        (401, Credential::Missing) => Reason::MissingCredentials,
        (401, Credential::Malformed) => Reason::MalformedAuthorization,
        (401, Credential::Token { .. }) if was_valid => Reason::RevokedToken,
        (401, Credential::Token { .. }) => Reason::UnknownToken,
        (403, _) if body.error.name == "NotAllowedError" && body.error.message.contains("restricted to plugin") => {
            Reason::PluginNotAllowed
        }
        _ => Reason::Other,
    }
}

/// A tool result that Backstage refused because the token may not reach the action's plugin.
///
/// Backstage lists actions with the caller's own credentials. For a token whose
/// `accessRestrictions` leave out the owning plugin, delegation fails while listing, that
/// plugin's actions silently vanish, and `tools/call` answers `NotFoundError: Action "…" not
/// found` (measured on plugin-mcp-actions-backend 0.2.2). So a not-found for a tool this route
/// *did* advertise to someone is a delegation denial. An explicit `NotAllowedError: Access to
/// target plugin …` (delegation refused at invoke time) is one too.
pub(crate) fn is_delegation_denied(tool_error_text: &str, advertised_on_route: bool) -> bool {
    tool_error_text.starts_with("NotAllowedError: Access to target plugin")
        || (advertised_on_route && tool_error_text.starts_with("NotFoundError: Action \""))
}

/// Credentials that succeeded recently; bounded, least recently used forgotten first.
pub(crate) struct SuccessHistory {
    seen: Mutex<LruCache<Fingerprint, Instant>>,
    retention: Mutex<Duration>,
}

impl SuccessHistory {
    pub(crate) fn new(capacity: usize, retention: Duration) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        Self { seen: Mutex::new(LruCache::new(cap)), retention: Mutex::new(retention) }
    }

    pub(crate) fn succeeded(&self, fp: Fingerprint) {
        self.seen.lock().expect("history lock").put(fp, Instant::now());
    }

    /// Whether the credential succeeded within the retention window.
    pub(crate) fn was_valid(&self, fp: Fingerprint) -> bool {
        let retention = *self.retention.lock().expect("history lock");
        self.seen.lock().expect("history lock").get(&fp).is_some_and(|t| t.elapsed() <= retention)
    }

    pub(crate) fn set_limits(&self, capacity: usize, retention: Duration) {
        *self.retention.lock().expect("history lock") = retention;
        if let Some(cap) = NonZeroUsize::new(capacity) {
            self.seen.lock().expect("history lock").resize(cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Fingerprinter, KeySource};

    fn token() -> Credential {
        let fp = Fingerprinter::new(b"0123456789abcdef", KeySource::File).fingerprint("t");
        Credential::Token { fingerprint: fp, client: "ci".into() }
    }

    #[test]
    fn backstage_rejections_are_classified() {
        let none = BackstageError::default();
        let restricted = BackstageError::parse(
            br#"{"error":{"name":"NotAllowedError","message":"This token's access is restricted to plugin(s) 'catalog'"},"response":{"statusCode":403}}"#,
        );
        assert_eq!(classify_rejection(401, &Credential::Missing, &none, false), Reason::MissingCredentials);
        assert_eq!(classify_rejection(401, &Credential::Malformed, &none, false), Reason::MalformedAuthorization);
        assert_eq!(classify_rejection(401, &token(), &none, false), Reason::UnknownToken);
        assert_eq!(classify_rejection(401, &token(), &none, true), Reason::RevokedToken);
        assert_eq!(classify_rejection(403, &token(), &restricted, false), Reason::PluginNotAllowed);
        assert_eq!(classify_rejection(403, &token(), &none, false), Reason::Other);
        assert!(is_delegation_denied(
            "NotAllowedError: Access to target plugin 'scaffolder' is not included in token's access restrictions",
            false
        ));
        let not_found = "NotFoundError: Action \"catalog.get-catalog-entity\" not found";
        assert!(is_delegation_denied(not_found, true));
        assert!(!is_delegation_denied(not_found, false), "a tool nobody was offered is just unknown");
    }

    #[tokio::test(start_paused = true)]
    async fn success_history_expires_and_is_bounded() {
        let fp = |t: &str| Fingerprinter::new(b"0123456789abcdef", KeySource::File).fingerprint(t);
        let h = SuccessHistory::new(2, Duration::from_secs(60));
        h.succeeded(fp("a"));
        assert!(h.was_valid(fp("a")) && !h.was_valid(fp("b")));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!h.was_valid(fp("a")));
        h.succeeded(fp("a"));
        h.succeeded(fp("b"));
        h.succeeded(fp("c"));
        assert!(!h.was_valid(fp("a")), "least recently used is forgotten at the cap");
    }
}
