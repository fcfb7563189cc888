//! A credential refused on MCP that reaches the same actions through a plugin's actions API: MCP
//! refused it for what its restrictions leave out (`plugin_not_allowed`, a denial of one tool),
//! the actions API answered it. Not an attack and not a page: it is what the token's
//! restrictions allow, and the operator who reads the MCP metrics alone would believe otherwise.
//! Remembered per credential (fingerprint), the least recent forgotten first; each credential is
//! evidence once.

use lru::LruCache;

use crate::identity::Fingerprint;
use crate::metrics::Reason;

/// How MCP refused a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub route: String,
    pub reason: Reason,
}

/// The first success on the actions API of a credential refused on MCP.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reached {
    pub client: String,
    pub credential: String,
    /// The MCP route that refused it, and why.
    pub refused_route: String,
    pub refused_reason: String,
    /// The plugin whose actions API answered, and the tool (none for a list).
    pub plugin: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tool: Option<String>,
    /// Unix seconds of that first success.
    pub at: u64,
}

pub(crate) struct OtherWay {
    refused: LruCache<Fingerprint, Refused>,
    /// Evidence already recorded, by the fingerprint's short form (the one the evidence and the
    /// state file carry), the least recently recorded forgotten first.
    reached: LruCache<u64, Reached>,
    /// How many pieces of evidence were recorded since the start (the state file is rewritten
    /// when it moves).
    recorded: u64,
}

impl OtherWay {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            refused: LruCache::new(crate::bounded::capacity(cap)),
            reached: LruCache::new(crate::bounded::capacity(cap)),
            recorded: 0,
        }
    }

    /// Whether a refusal for `reason` is about what the credential may reach (it is valid).
    pub(crate) fn restriction(reason: Reason) -> bool {
        matches!(reason, Reason::PluginNotAllowed | Reason::DelegationDenied | Reason::HiddenDenial)
    }

    /// MCP refused `fp` on `route` for `reason`.
    pub(crate) fn refused(&mut self, fp: Fingerprint, route: &str, reason: Reason) {
        if Self::restriction(reason) && !self.reached(fp) {
            self.refused.put(fp, Refused { route: route.to_string(), reason });
        }
    }

    /// The actions API answered `fp`: how MCP refused it, the first time only.
    pub(crate) fn answered(&mut self, fp: Fingerprint) -> Option<Refused> {
        if self.reached(fp) {
            return None;
        }
        self.refused.pop(&fp)
    }

    /// Whether `fp` is evidence already.
    pub(crate) fn reached(&self, fp: Fingerprint) -> bool {
        self.reached.contains(&fp.short())
    }

    /// Keeps the evidence for the report.
    pub(crate) fn recorded(&mut self, fp: Fingerprint, reached: Reached) {
        self.reached.put(fp.short(), reached);
        self.recorded += 1;
    }

    /// How many pieces of evidence were recorded since the start.
    pub(crate) fn recorded_count(&self) -> u64 {
        self.recorded
    }

    /// The evidence of an earlier run (the state file), oldest first: each credential stays
    /// evidence once across restarts. A line whose credential is not a fingerprint is dropped.
    pub(crate) fn restore(&mut self, evidence: Vec<Reached>) {
        for r in evidence {
            if let Ok(short) = u64::from_str_radix(&r.credential, 16) {
                self.reached.put(short, r);
            }
        }
    }

    /// The evidence recorded, oldest first.
    pub(crate) fn evidence(&self) -> Vec<Reached> {
        let mut all: Vec<Reached> = self.reached.iter().map(|(_, r)| r.clone()).collect();
        all.sort_by(|a, b| (a.at, &a.client).cmp(&(b.at, &b.client)));
        all
    }

    pub(crate) fn set_cap(&mut self, cap: usize) {
        self.refused.resize(crate::bounded::capacity(cap));
        self.reached.resize(crate::bounded::capacity(cap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Fingerprinter, KeySource};

    fn fp(n: u64) -> Fingerprint {
        Fingerprinter::new(b"k", KeySource::Env).fingerprint(&n.to_string())
    }

    fn reached(client: &str) -> Reached {
        Reached {
            client: client.into(),
            credential: "0123".into(),
            refused_route: "default".into(),
            refused_reason: "plugin_not_allowed".into(),
            plugin: "catalog".into(),
            tool: None,
            at: 1,
        }
    }

    #[test]
    fn a_restricted_credential_answered_elsewhere_is_evidence_once() {
        let mut o = OtherWay::new(2);
        let (a, b) = (fp(1), fp(2));
        o.refused(b, "default", Reason::UnknownToken);
        assert_eq!(o.answered(b), None, "an unknown token is not restricted: nothing to tell");
        assert_eq!(o.answered(a), None, "never refused on MCP");
        o.refused(a, "default", Reason::PluginNotAllowed);
        let first = o.answered(a).expect("evidence");
        assert_eq!((first.route.as_str(), first.reason), ("default", Reason::PluginNotAllowed));
        o.recorded(a, reached("catalog-reader"));
        o.refused(a, "default", Reason::PluginNotAllowed);
        assert_eq!(o.answered(a), None, "once per credential");
        assert_eq!(o.evidence().len(), 1);
    }

    #[test]
    fn restored_evidence_is_still_once_per_credential() {
        let mut o = OtherWay::new(4);
        let a = fp(1);
        let earlier = Reached { credential: a.to_string(), ..reached("catalog-reader") };
        o.restore(vec![earlier.clone(), Reached { credential: "not-hex".into(), ..reached("x") }]);
        assert_eq!(o.evidence(), vec![earlier]);
        assert_eq!(o.recorded_count(), 0, "restoring is not recording");
        o.refused(a, "default", Reason::PluginNotAllowed);
        assert_eq!(o.answered(a), None, "evidence of the run before the restart");
    }

    #[test]
    fn random_credentials_stay_within_the_cap() {
        let mut o = OtherWay::new(8);
        for n in 0..1000 {
            let fp = fp(n);
            o.refused(fp, "default", Reason::PluginNotAllowed);
            if o.answered(fp).is_some() {
                o.recorded(fp, reached("x"));
            }
        }
        assert_eq!((o.refused.len(), o.reached.len()), (0, 8));
    }
}
