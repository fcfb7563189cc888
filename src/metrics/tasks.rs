//! Metrics of tasks (the `io.modelcontextprotocol/tasks` extension): created, followed to their
//! end (lifetime, time in `input_required`, polls), polled too fast, cancelled, orphaned.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, Registry};

use super::{catalogue, counter_of, histogram, otel, Metrics};

pub(super) struct TaskMetrics {
    created: IntCounterVec,
    duration: HistogramVec,
    input_wait: HistogramVec,
    polls: HistogramVec,
    fast_polls: IntCounterVec,
    cancels: IntCounterVec,
    orphaned: IntCounterVec,
}

impl TaskMetrics {
    pub(super) fn new(r: &Registry, session_buckets: &[f64]) -> Self {
        Self {
            created: counter_of(r, &catalogue::TASKS_CREATED),
            duration: histogram(r, &catalogue::TASK_DURATION, session_buckets),
            input_wait: histogram(r, &catalogue::TASK_INPUT_WAIT, session_buckets),
            polls: histogram(r, &catalogue::TASK_POLLS, session_buckets),
            fast_polls: counter_of(r, &catalogue::TASK_FAST_POLLS),
            cancels: counter_of(r, &catalogue::TASK_CANCELS),
            orphaned: counter_of(r, &catalogue::TASKS_ORPHANED),
        }
    }
}

/// How a task ended, as its metrics record it.
pub(crate) struct TaskEnd<'a> {
    pub route: &'a str,
    pub tool: &'a str,
    pub status: &'static str,
    pub lifetime: Duration,
    /// Time in `input_required`, if it was ever there.
    pub input_wait: Option<Duration>,
    pub polls: u32,
}

impl Metrics {
    pub(crate) fn record_task_created(&self, route: &str, tool: &str) {
        self.tasks.created.with_label_values(&[route, tool]).inc();
    }

    pub(crate) fn record_task_end(&self, end: &TaskEnd<'_>) {
        let (route, tool) = (end.route, end.tool);
        let t = &self.tasks;
        t.duration.with_label_values(&[route, tool, end.status]).observe(end.lifetime.as_secs_f64());
        t.polls.with_label_values(&[route, tool]).observe(f64::from(end.polls));
        if let Some(wait) = end.input_wait {
            t.input_wait.with_label_values(&[route, tool]).observe(wait.as_secs_f64());
        }
        if let Some(h) = self.otel.get() {
            let labels = [("mcp_route", route), ("gen_ai_tool_name", tool)];
            let attributes = otel::attributes(&labels);
            let status = [("mcp_route", route), ("gen_ai_tool_name", tool), ("task_status", end.status)];
            h.task_duration.record(end.lifetime.as_secs_f64(), &otel::attributes(&status));
            h.task_polls.record(f64::from(end.polls), &attributes);
            if let Some(wait) = end.input_wait {
                h.task_input_wait.record(wait.as_secs_f64(), &attributes);
            }
        }
    }

    pub(crate) fn record_task_fast_poll(&self, route: &str, tool: &str) {
        self.tasks.fast_polls.with_label_values(&[route, tool]).inc();
    }

    pub(crate) fn record_task_cancel(&self, route: &str, tool: &str) {
        self.tasks.cancels.with_label_values(&[route, tool]).inc();
    }

    pub(crate) fn record_task_orphaned(&self, route: &str, tool: &str) {
        self.tasks.orphaned.with_label_values(&[route, tool]).inc();
    }
}
