//! MCP method names as a closed set: the methods MCP revisions 2024-11-05 through 2026-07-28
//! define, and `Other` for anything a client or server invents (label `_OTHER`).

use crate::labels::label_enum;

label_enum! {
    /// An MCP method; unknown names are `Other`, so a method is always a bounded label.
    pub(crate) enum Method {
        Initialize = "initialize",
        Ping = "ping",
        ToolsList = "tools/list",
        ToolsCall = "tools/call",
        ResourcesList = "resources/list",
        ResourcesRead = "resources/read",
        ResourcesTemplatesList = "resources/templates/list",
        ResourcesSubscribe = "resources/subscribe",
        ResourcesUnsubscribe = "resources/unsubscribe",
        PromptsList = "prompts/list",
        PromptsGet = "prompts/get",
        CompletionComplete = "completion/complete",
        LoggingSetLevel = "logging/setLevel",
        SamplingCreateMessage = "sampling/createMessage",
        ElicitationCreate = "elicitation/create",
        RootsList = "roots/list",
        TasksGet = "tasks/get",
        TasksList = "tasks/list",
        TasksResult = "tasks/result",
        TasksCancel = "tasks/cancel",
        /// The Tasks extension (`io.modelcontextprotocol/tasks`, MCP 2026-07-28).
        TasksUpdate = "tasks/update",
        ServerDiscover = "server/discover",
        SubscriptionsListen = "subscriptions/listen",
        NotificationsInitialized = "notifications/initialized",
        NotificationsCancelled = "notifications/cancelled",
        NotificationsProgress = "notifications/progress",
        NotificationsMessage = "notifications/message",
        NotificationsResourcesUpdated = "notifications/resources/updated",
        NotificationsResourcesListChanged = "notifications/resources/list_changed",
        NotificationsToolsListChanged = "notifications/tools/list_changed",
        NotificationsPromptsListChanged = "notifications/prompts/list_changed",
        NotificationsRootsListChanged = "notifications/roots/list_changed",
        NotificationsElicitationComplete = "notifications/elicitation/complete",
        NotificationsTasksStatus = "notifications/tasks/status",
        NotificationsTasks = "notifications/tasks",
        Other = "_OTHER",
    }
}

impl Method {
    /// The method a name denotes; names MCP does not define are `Other`.
    pub(crate) fn parse(name: &str) -> Self {
        Self::from_label(name).unwrap_or(Method::Other)
    }

    /// Methods whose `params.name` names a tool or prompt (`gen_ai.tool.name`, `gen_ai.prompt.name`).
    pub(crate) fn names_a_target(self) -> bool {
        matches!(self, Method::ToolsCall | Method::PromptsGet)
    }

    /// The Tasks extension's requests about a task (`params.taskId`).
    pub(crate) fn names_a_task(self) -> bool {
        matches!(self, Method::TasksGet | Method::TasksUpdate | Method::TasksCancel)
    }

    /// A server's request that waits for the person behind the client (the handshake generation
    /// asks over a call's stream): a form to fill, or a model answer to approve.
    pub(crate) fn asks_the_person(self) -> bool {
        matches!(self, Method::ElicitationCreate | Method::SamplingCreateMessage)
    }

    /// Methods that list what the server offers: their answers repeat for every session.
    pub(crate) fn lists_offerings(self) -> bool {
        matches!(self, Method::ToolsList | Method::PromptsList | Method::ResourcesList | Method::ResourcesTemplatesList)
    }

    /// The methods whose auth-failure series exist from start-up.
    pub(crate) const AUDITED: [Method; 3] = [Method::Initialize, Method::ToolsList, Method::ToolsCall];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_fold() {
        assert_eq!(Method::parse("tools/call"), Method::ToolsCall);
        assert_eq!(Method::parse("tools/calls").as_str(), "_OTHER");
        assert_eq!(Method::parse(""), Method::Other);
        assert!(Method::ALL.iter().all(|m| Method::parse(m.as_str()) == *m));
    }
}
