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
