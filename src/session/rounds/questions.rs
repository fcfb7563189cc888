//! The handshake generation's way to ask the person: the server sends a request of its own
//! (`elicitation/create`, `sampling/createMessage`) on the stream of the call that needs it, and
//! the client answers with a POST of a JSON-RPC response under that request's id. The time in
//! between is the person's wait, recorded in the same histogram as a 2026-07-28 input wait, under
//! the call's route, method and tool. Kept by a hash of route, session and the question's id, for
//! `sessions.input_wait_timeout`, at most `sessions.max_input_waits` at once (beyond it counted as
//! overflow `input_wait`). In cluster mode a wait is recorded only when the answer reaches the
//! replica that carried the question; the call's operation includes the wait either way.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{CallLabels, InputWaits};
use crate::metrics::OverflowLabel;

#[derive(Debug)]
pub(super) struct Question {
    asked: Instant,
    labels: CallLabels,
}

impl InputWaits {
    /// The server asked the client something at `now`, on the stream of the call `labels` names;
    /// `key` names the question (route, session, its id).
    pub(crate) fn question_asked(&self, key: u64, now: Instant, labels: CallLabels) {
        let (timeout, max) = *self.limits.lock().expect("rounds lock");
        let mut questions = self.questions.lock().expect("questions lock");
        if questions.len() >= max {
            questions.retain(|_, q| now.saturating_duration_since(q.asked) < timeout);
        }
        if questions.len() >= max && !questions.contains_key(&key) {
            drop(questions);
            self.metrics.record_label_overflow(OverflowLabel::InputWait);
            return;
        }
        questions.insert(key, Question { asked: now, labels });
    }

    /// The client answered the question `key` names at `now`: the person's wait is recorded.
    /// Whether it was a question the tap saw asked (within the timeout).
    pub(crate) fn question_answered(&self, key: u64, now: Instant) -> bool {
        let timeout = self.limits.lock().expect("rounds lock").0;
        let mut questions = self.questions.lock().expect("questions lock");
        if questions.is_empty() {
            return false;
        }
        let Some(q) = questions.remove(&key) else { return false };
        drop(questions);
        let waited = now.saturating_duration_since(q.asked);
        if waited >= timeout {
            return false;
        }
        let l = &q.labels;
        self.metrics.record_input_wait(&l.route, l.method, &l.tool, waited);
        true
    }

    /// Questions not answered yet.
    #[cfg(test)]
    pub(crate) fn questions(&self) -> usize {
        self.questions.lock().expect("questions lock").len()
    }
}

pub(super) type Questions = std::sync::Mutex<HashMap<u64, Question>>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::metrics::Metrics;
    use crate::session::rounds::tests::labels;

    #[tokio::test(start_paused = true)]
    async fn a_question_answered_is_one_wait_and_the_table_stays_bounded() {
        let m = Arc::new(Metrics::new(vec![1.0]));
        let waits = InputWaits::new(m.clone(), Duration::from_secs(60), 4);
        waits.question_asked(1, Instant::now(), labels());
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(waits.question_answered(1, Instant::now()));
        assert!(!waits.question_answered(1, Instant::now()), "once");
        let text = m.render();
        let line = "mcp_tap_input_wait_duration_seconds_sum{gen_ai_tool_name=\"delete_entity\",mcp_method_name=\"tools/call\",mcp_route=\"default\"} 1.5";
        assert!(text.contains(line), "{line} in:\n{text}");

        // Questions never answered: the oldest make room once past the timeout; random ids
        // beyond the cap are counted, never kept.
        for key in 10..1_000 {
            waits.question_asked(key, Instant::now(), labels());
        }
        assert_eq!(waits.questions(), 4);
        assert!(m.render().contains("mcp_tap_label_overflow_total{label=\"input_wait\"} 986"));
        tokio::time::advance(Duration::from_secs(60)).await;
        waits.question_asked(2_000, Instant::now(), labels());
        assert_eq!(waits.questions(), 1, "the expired ones made room");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!waits.question_answered(2_000, Instant::now()), "answered after the timeout: not a wait");
        assert!(m.render().contains("mcp_tap_input_wait_duration_seconds_count{gen_ai_tool_name=\"delete_entity\",mcp_method_name=\"tools/call\",mcp_route=\"default\"} 1"));
    }
}
