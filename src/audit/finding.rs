//! Which refusals are findings. Most refusals are evidence (an auth_failure line, a count); a
//! revoked token used again and a denial Backstage hides are findings, raised once per
//! credential (and tool), so a client retrying them is one incident, not one per retry.

use std::num::NonZeroUsize;

use lru::LruCache;

use super::identity::Fingerprint;
use super::reason::Reason;
use super::{AuditEvent, AuditLine, Auditor, AuthFailure};

/// Refusals already raised, by reason, credential and tool (hashed); the least recent is
/// forgotten first, like every per-credential memory.
pub(super) struct Raised(LruCache<(Reason, Fingerprint, u64), ()>);

impl Raised {
    pub(super) fn new(cap: usize) -> Self {
        Self(LruCache::new(NonZeroUsize::new(cap.max(1)).expect("non-zero")))
    }
}

impl Auditor {
    /// Whether this refusal is a finding (its kind), or evidence only (`None`).
    pub(super) fn first_finding(&self, f: &AuthFailure<'_>) -> Option<&'static str> {
        use std::hash::BuildHasher;
        let kind = match f.reason {
            Reason::RevokedToken => "revoked_token",
            Reason::HiddenDenial => "hidden_denial",
            _ => return None,
        };
        let fp = f.credential.fingerprint()?;
        let tool = foldhash::quality::FixedState::with_seed(0).hash_one(f.tool);
        let mut raised = self.raised.lock().expect("findings lock");
        raised.0.put((f.reason, fp, tool), ()).is_none().then_some(kind)
    }

    /// Writes one event to the audit trail; a finding is also counted by kind.
    pub(crate) fn write(&self, event: AuditEvent) {
        let line = AuditLine::new(event);
        if let Some(kind) = line.finding {
            self.metrics.record_finding(kind);
        }
        self.sink.write(&line);
    }
}
