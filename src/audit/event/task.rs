//! The audit line of a task reached by another principal than its creator.

use serde::Serialize;

use crate::mcp::method::Method;
use crate::session::Requester;

/// A `tasks/get`, `tasks/update` or `tasks/cancel` about a task another principal created (the
/// Tasks extension): a task id leaked to, or guessed by, someone else. Once per task.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ForeignAccess {
    pub route: String,
    pub mcp_method: Method,
    /// The tool whose call made the task.
    pub tool: String,
    /// The client that made the request, and the one that created the task.
    pub client: String,
    pub owner_client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    pub source: String,
}

impl ForeignAccess {
    /// The line of `requester` reaching a task of `owner`'s client, made by a call of `tool`.
    pub(crate) fn of(requester: &Requester, owner: &str, tool: String) -> Self {
        Self {
            route: requester.route.clone(),
            mcp_method: requester.method,
            tool,
            client: requester.client.clone(),
            owner_client: owner.to_string(),
            credential: requester.credential.clone(),
            source: requester.source.clone(),
        }
    }
}
