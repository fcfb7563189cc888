//! Writing to the audit trail, and which refusals are findings (`detect::raised` decides).

use super::{AuditEvent, AuditLine, Auditor, AuthFailure};

impl Auditor {
    /// Whether this refusal is a finding (its kind), or evidence only (`None`).
    pub(super) fn first_finding(&self, f: &AuthFailure<'_>) -> Option<&'static str> {
        let fp = f.credential.fingerprint()?;
        self.detect.raised.lock().expect("findings lock").first(f.reason, fp, f.tool)
    }

    /// Writes one event to the audit trail; a finding is also counted by kind.
    pub(crate) fn write(&self, event: AuditEvent) {
        let line = AuditLine::new(event);
        if let Some(kind) = line.finding {
            self.metrics.record_finding(kind);
        }
        self.sink.write(line);
    }
}

impl Auditor {
    /// A `tasks/*` request about a task another principal created: a finding, once per task and
    /// principal in the cluster.
    pub(crate) fn task_foreign_access(&self, task: u64, principal: u64, line: super::event::task::ForeignAccess) {
        tracing::warn!(route = %line.route, client = %line.client, owner = %line.owner_client,
            "a task was reached by another principal than the one that created it");
        let key = self.who.fingerprinter.fingerprint(&format!("task\n{task:016x}\n{principal:016x}"));
        self.raise(key, AuditEvent::TaskForeignAccess(line));
    }
}
