//! Bounded label values: tool and prompt names only when the upstream advertised them (or config
//! allows them), protocol versions from the known revisions. Methods are `method::Method`.

use std::collections::HashSet;

/// The value any label folds into when its real value is not allowed.
pub(crate) const OTHER: &str = "_OTHER";

const KNOWN_PROTOCOL_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

/// The version the spec tells servers to assume when a client sends none.
pub(crate) const DEFAULT_PROTOCOL_VERSION: &str = "2025-03-26";

pub(crate) fn protocol_version_label(version: &str) -> &'static str {
    KNOWN_PROTOCOL_VERSIONS.iter().find(|v| **v == version).copied().unwrap_or(OTHER)
}

/// Names a route's upstream advertised, capped; `allow` comes from config and is always accepted.
#[derive(Debug, Default)]
pub(crate) struct NameSet {
    learned: HashSet<Box<str>>,
    cap: usize,
}

impl NameSet {
    pub(crate) fn new(cap: usize) -> Self {
        Self { learned: HashSet::new(), cap }
    }

    /// Remembers an advertised name; returns false when the cap left it out.
    pub(crate) fn learn(&mut self, name: &str) -> bool {
        if self.learned.contains(name) {
            return true;
        }
        if self.learned.len() >= self.cap || name.is_empty() || name.len() > 128 {
            return false;
        }
        self.learned.insert(name.into());
        true
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.learned.contains(name)
    }

    pub(crate) fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// Every name learned, for the other replicas of a cluster.
    pub(crate) fn names(&self) -> Vec<String> {
        self.learned.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_set_is_capped() {
        let mut s = NameSet::new(2);
        assert!(s.learn("a") && s.learn("b") && s.learn("a"));
        assert!(!s.learn("c"));
        assert!(s.contains("b") && !s.contains("c"));
    }
}
