//! Bounded label values: MCP method names from the spec's list, tool and prompt names only when the
//! upstream advertised them (or config allows them), protocol versions from the known revisions.

use std::collections::HashSet;

/// The value any label folds into when its real value is not allowed.
pub const OTHER: &str = "_OTHER";

/// Methods defined by MCP revisions 2024-11-05 through 2026-07-28.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "server/discover",
    "subscriptions/listen",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/resources/updated",
    "notifications/resources/list_changed",
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/roots/list_changed",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
];

const KNOWN_PROTOCOL_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

/// The version the spec tells servers to assume when a client sends none.
pub const DEFAULT_PROTOCOL_VERSION: &str = "2025-03-26";

/// The method label for a method name: itself if MCP defines it, else `_OTHER`.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS.iter().find(|m| **m == method).copied().unwrap_or(OTHER)
}

pub fn protocol_version_label(version: &str) -> &'static str {
    KNOWN_PROTOCOL_VERSIONS.iter().find(|v| **v == version).copied().unwrap_or(OTHER)
}

/// Names a route's upstream advertised, capped; `allow` comes from config and is always accepted.
#[derive(Debug, Default)]
pub struct NameSet {
    learned: HashSet<Box<str>>,
    cap: usize,
}

impl NameSet {
    pub fn new(cap: usize) -> Self {
        Self { learned: HashSet::new(), cap }
    }

    /// Remembers an advertised name; returns false when the cap left it out.
    pub fn learn(&mut self, name: &str) -> bool {
        if self.learned.contains(name) {
            return true;
        }
        if self.learned.len() >= self.cap || name.is_empty() || name.len() > 128 {
            return false;
        }
        self.learned.insert(name.into());
        true
    }

    pub fn contains(&self, name: &str) -> bool {
        self.learned.contains(name)
    }

    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_fold() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("tools/calls"), OTHER);
        assert_eq!(method_label(""), OTHER);
    }

    #[test]
    fn name_set_is_capped() {
        let mut s = NameSet::new(2);
        assert!(s.learn("a") && s.learn("b") && s.learn("a"));
        assert!(!s.learn("c"));
        assert!(s.contains("b") && !s.contains("c"));
    }
}
