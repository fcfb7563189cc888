//! A credential refused on MCP reaching the same actions through the actions API
//! (`detect::reach` decides): recorded once per credential as evidence, never as a finding.

use super::event::AuditEvent;
use super::{Auditor, AuthFailure};
use crate::detect::reach::{OtherWay, Reached};
use crate::identity::Credential;

impl Auditor {
    /// An MCP refusal: remembered when it is about what the credential may reach.
    pub(super) fn note_mcp_refusal(&self, f: &AuthFailure<'_>) {
        if f.route == crate::mcp::actions_path::ACTIONS_API_ROUTE || !OtherWay::restriction(f.reason) {
            return;
        }
        if let Some(fp) = f.credential.fingerprint() {
            self.detect.other_way.lock().expect("other way lock").refused(fp, f.route, f.reason);
        }
    }

    /// The actions API of `plugin` answered `credential` (for `tool`, or a list): the first time
    /// for a credential MCP refused, an `actions_api_reach` line.
    pub(crate) fn actions_api_answered(&self, credential: &Credential, client: &str, plugin: &str, tool: Option<&str>) {
        let Some(fp) = credential.fingerprint() else { return };
        let mut other_way = self.detect.other_way.lock().expect("other way lock");
        let Some(refused) = other_way.answered(fp) else { return };
        let reached = Reached {
            client: client.to_string(),
            credential: fp.to_string(),
            refused_route: refused.route,
            refused_reason: refused.reason.as_str().to_string(),
            plugin: plugin.to_string(),
            tool: tool.map(|t| crate::bounded::cut(t, crate::bounded::TOOL_NAME).to_string()),
            at: crate::clock::unix_secs(),
        };
        other_way.recorded(fp, reached.clone());
        drop(other_way);
        tracing::info!(client, credential = %fp, refused_route = %reached.refused_route,
            refused_reason = %reached.refused_reason, plugin,
            "a credential refused on MCP reached the same actions through the actions API");
        self.write(AuditEvent::ActionsApiReach(reached));
    }

    /// Every credential refused on MCP that the actions API answered (this replica's), oldest first.
    pub(crate) fn other_way_evidence(&self) -> Vec<Reached> {
        self.detect.other_way.lock().expect("other way lock").evidence()
    }
}
