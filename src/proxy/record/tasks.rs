//! What the recorder makes of tasks (the Tasks extension): a task handle starts a task under the
//! call's tool and client; a task's state goes to the tracker; a request about another
//! principal's task is a finding.

use super::super::request::Pending;
use super::Recorder;
use crate::audit::event::task::ForeignAccess;
use crate::mcp::jsonrpc::TaskSeen;
use crate::mcp::method::Method;
use crate::metrics::OverflowLabel;
use crate::session::{Access, Requester, TaskLabels, Tasks};

impl Recorder {
    /// A `tools/call` was answered with a task handle.
    pub(crate) fn task_created(&self, p: &Pending, task: &TaskSeen, tasks: &Tasks) {
        let route = &self.route.label;
        let labels = TaskLabels {
            route: route.clone(),
            tool: self.bounded_target(p, Method::ToolsCall, &self.route.tools, OverflowLabel::Tool),
            client: self.client.clone(),
        };
        tasks.created(Tasks::key(route, task), self.principal, labels, task, tokio::time::Instant::now());
    }

    /// A `tasks/get` answer or a `notifications/tasks` showed a task's state.
    pub(crate) fn task_seen(&self, task: &TaskSeen, tasks: &Tasks) {
        tasks.observed(Tasks::key(&self.route.label, task), task, tokio::time::Instant::now());
    }

    /// A `tasks/get`, `tasks/update` or `tasks/cancel` about a task: a poll, a cancel, and a
    /// finding when the task is another principal's.
    pub(crate) fn task_request(&self, p: &Pending, tasks: &Tasks) {
        let Some(id) = p.task else { return };
        let c = &self.call.caller;
        let requester = Requester {
            route: self.route.label.to_string(),
            method: p.method,
            client: self.client.to_string(),
            credential: c.credential.fingerprint().map(|fp| fp.to_string()),
            source: c.source.to_string(),
        };
        let key = Tasks::key(&self.route.label, &TaskSeen { id, ..TaskSeen::default() });
        if let Access::Foreign { owner, tool } =
            tasks.request(key, self.principal, requester.clone(), self.call.started)
        {
            self.auditor.task_foreign_access(key, self.principal, ForeignAccess::of(&requester, &owner, tool));
        }
    }
}
