//! Which refusals are findings. Most refusals are evidence (an auth_failure line, a count); a
//! revoked token used again and a denial Backstage hides are findings, raised once per
//! credential (and tool), so a client retrying them is one incident, not one per retry.

use lru::LruCache;

use crate::identity::Fingerprint;
use crate::metrics::Reason;

/// Refusals already raised, by reason, credential and tool (hashed); the least recent is
/// forgotten first, like every per-credential memory.
pub(crate) struct Raised(LruCache<(Reason, Fingerprint, u64), ()>);

impl Raised {
    pub(crate) fn new(cap: usize) -> Self {
        Self(LruCache::new(crate::bounded::capacity(cap)))
    }

    /// Whether a refusal for `reason` of `fp` (with `tool`) is a finding raised now (its kind),
    /// or evidence only (`None`): not a finding's reason, or raised before.
    pub(crate) fn first(&mut self, reason: Reason, fp: Fingerprint, tool: Option<&str>) -> Option<&'static str> {
        use std::hash::BuildHasher;
        let kind = match reason {
            Reason::RevokedToken => "revoked_token",
            Reason::HiddenDenial => "hidden_denial",
            _ => return None,
        };
        let tool = foldhash::quality::FixedState::with_seed(0).hash_one(tool);
        self.0.put((reason, fp, tool), ()).is_none().then_some(kind)
    }
}
