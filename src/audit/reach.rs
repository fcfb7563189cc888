//! A credential refused on MCP reaching the same actions through the actions API
//! (`detect::reach` decides): recorded once per credential as evidence, never as a finding.

use super::event::AuditEvent;
use super::{Auditor, AuthFailure};
use crate::detect::reach::{OtherWay, Reached};
use crate::identity::{Credential, Fingerprint};
use crate::mcp::actions_path::ACTIONS_API_ROUTE;

impl Auditor {
    /// An MCP refusal: remembered when it is about what the credential may reach (in cluster
    /// mode, by the other replicas too).
    pub(super) fn note_mcp_refusal(&self, f: &AuthFailure<'_>) {
        if f.route == ACTIONS_API_ROUTE || !OtherWay::restriction(f.reason) {
            return;
        }
        let Some(fp) = f.credential.fingerprint() else { return };
        self.detect.other_way.lock().expect("other way lock").refused(fp, f.route, f.reason);
        if let Some(outbox) = &self.shared {
            outbox.restricted(fp, f.route, f.reason.as_str());
        }
    }

    /// The actions API of `plugin` answered `credential` (for `tool`, or a list): the first time
    /// for a credential MCP refused, an `actions_api_reach` line. In cluster mode a credential
    /// this replica knows no refusal of is looked up in the store (`cluster::reach`).
    pub(crate) fn actions_api_answered(&self, credential: &Credential, client: &str, plugin: &str, tool: Option<&str>) {
        let Some(fp) = credential.fingerprint() else { return };
        let reached = |route: String, reason: String| Reached {
            client: client.to_string(),
            credential: fp.to_string(),
            refused_route: route,
            refused_reason: reason,
            plugin: plugin.to_string(),
            tool: tool.map(|t| crate::bounded::cut(t, crate::bounded::TOOL_NAME).to_string()),
            at: crate::clock::unix_secs(),
        };
        let mut other_way = self.detect.other_way.lock().expect("other way lock");
        match other_way.answered(fp) {
            Some(refused) => {
                drop(other_way);
                self.actions_api_reached(fp, reached(refused.route, refused.reason.as_str().to_string()));
            }
            None => {
                let Some(outbox) = &self.shared else { return };
                if !other_way.reached(fp) {
                    drop(other_way);
                    outbox.actions_api_answered(fp, || reached(String::new(), String::new()));
                }
            }
        }
    }

    /// A credential refused on MCP (here or on another replica) that the actions API answered:
    /// kept for the report and written once (in cluster mode, once in the cluster).
    pub(crate) fn actions_api_reached(&self, fp: Fingerprint, reached: Reached) {
        {
            let mut other_way = self.detect.other_way.lock().expect("other way lock");
            if other_way.reached(fp) {
                return;
            }
            other_way.recorded(fp, reached.clone());
        }
        tracing::info!(client = %reached.client, credential = %fp, refused_route = %reached.refused_route,
            refused_reason = %reached.refused_reason, plugin = %reached.plugin,
            "a credential refused on MCP reached the same actions through the actions API");
        self.raise(fp, AuditEvent::ActionsApiReach(reached));
    }

    /// Every credential refused on MCP that the actions API answered (this replica's), oldest first.
    pub(crate) fn other_way_evidence(&self) -> Vec<Reached> {
        self.detect.other_way.lock().expect("other way lock").evidence()
    }

    /// How many pieces of that evidence were recorded since the start (it changed when this did).
    pub(crate) fn other_way_recorded(&self) -> u64 {
        self.detect.other_way.lock().expect("other way lock").recorded_count()
    }

    /// The evidence of an earlier run, from the state file.
    pub(crate) fn restore_other_way(&self, evidence: Vec<Reached>) {
        self.detect.other_way.lock().expect("other way lock").restore(evidence);
    }
}
