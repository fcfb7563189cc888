//! Tasks in cluster mode: a task's polls, answers and cancel may reach any replica. The store
//! holds each task (`cluster::tasks` applies these events there, atomically), so polls and time
//! in `input_required` are the cluster's, the replica whose event ended the task records its
//! end, and a foreign principal is found wherever it polls. The replica that made a task keeps it
//! only to give it up at its deadline; whether it was orphaned is the store's answer.

use tokio::time::Instant;

use super::{Requester, TaskSeen, TaskStatus, Tasks, Tracked};
use crate::clock::unix_ms;
use crate::metrics::OverflowLabel;

/// Events waiting for the next exchange, at most.
const MAX_EVENTS: usize = 10_000;
/// An event about a task the store does not know yet is sent again this many times (about a
/// second): the replica that made it may not have sent it yet.
pub(crate) const TRIES: u8 = 4;

/// What a replica saw of a task, for the store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TaskEvent {
    Created {
        key: u64,
        at_ms: u64,
        owner: u64,
        route: String,
        tool: String,
        client: String,
        /// Until the task is given up, from its creation.
        ttl_ms: u64,
        poll_ms: Option<u64>,
    },
    Access {
        key: u64,
        at_ms: u64,
        principal: u64,
        requester: Requester,
        tries: u8,
    },
    Status {
        key: u64,
        at_ms: u64,
        status: TaskStatus,
        poll_ms: Option<u64>,
        tries: u8,
    },
    /// The replica that made the task reached its deadline.
    Orphan {
        key: u64,
        route: String,
        tool: String,
    },
}

/// Wall-clock milliseconds of an instant.
fn ms_at(at: Instant) -> u64 {
    unix_ms().saturating_sub(Instant::now().saturating_duration_since(at).as_millis() as u64)
}

impl TaskEvent {
    pub(super) fn created(key: u64, t: &Tracked, seen: &TaskSeen) -> Self {
        TaskEvent::Created {
            key,
            at_ms: ms_at(t.created),
            owner: t.owner,
            route: t.labels.route.to_string(),
            tool: t.labels.tool.clone(),
            client: t.labels.client.to_string(),
            ttl_ms: t.deadline.saturating_duration_since(t.created).as_millis() as u64,
            poll_ms: seen.poll_ms,
        }
    }

    pub(super) fn access(key: u64, principal: u64, requester: Requester, at: Instant) -> Self {
        TaskEvent::Access { key, at_ms: ms_at(at), principal, requester, tries: TRIES }
    }

    /// The same event, once more if it has tries left.
    pub(crate) fn retry(self) -> Option<Self> {
        match self {
            TaskEvent::Access { tries, key, at_ms, principal, requester } if tries > 1 => {
                Some(TaskEvent::Access { key, at_ms, principal, requester, tries: tries - 1 })
            }
            TaskEvent::Status { tries, key, at_ms, status, poll_ms } if tries > 1 => {
                Some(TaskEvent::Status { key, at_ms, status, poll_ms, tries: tries - 1 })
            }
            _ => None,
        }
    }
}

impl Tasks {
    /// Cluster mode is on.
    pub(crate) fn share(&self) {
        self.shared.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn queue(&self, event: TaskEvent) {
        let mut events = self.events.lock().expect("tasks lock");
        if events.len() < MAX_EVENTS {
            events.push(event);
        } else {
            drop(events);
            self.metrics.record_label_overflow(OverflowLabel::Task);
        }
    }

    pub(super) fn observed_in_cluster(&self, key: u64, seen: &TaskSeen, now: Instant) {
        let Some(status) = seen.status else { return };
        self.queue(TaskEvent::Status { key, at_ms: ms_at(now), status, poll_ms: seen.poll_ms, tries: TRIES });
        if status.is_terminal() {
            self.tracked.lock().expect("tasks lock").remove(&key);
        }
    }

    /// The events for the next exchange.
    pub(crate) fn take_events(&self) -> Vec<TaskEvent> {
        std::mem::take(&mut *self.events.lock().expect("tasks lock"))
    }

    /// Events the store did not take: decided here if it stays away (`decide_alone`).
    pub(crate) fn requeue(&self, events: Vec<TaskEvent>) {
        let mut queued = self.events.lock().expect("tasks lock");
        let later = std::mem::replace(&mut *queued, events);
        queued.extend(later);
        queued.truncate(MAX_EVENTS);
    }

    /// Events about tasks the store did not know yet, for the next exchange.
    pub(crate) fn put_back(&self, events: Vec<TaskEvent>) {
        for event in events.into_iter().filter_map(TaskEvent::retry) {
            self.queue(event);
        }
    }
}

impl crate::shares::Shares for Tasks {
    /// The store is unreachable: what this replica saw of its own tasks is decided here, as
    /// without a cluster; what it saw of others' is dropped.
    fn decide_alone(&self) {
        let now = Instant::now();
        for event in self.take_events() {
            match event {
                TaskEvent::Access { key, principal, requester, .. } => {
                    self.request_here(key, principal, requester.method, now);
                }
                TaskEvent::Status { key, status, poll_ms, .. } => {
                    self.observed_here(key, &TaskSeen { status: Some(status), poll_ms, ..TaskSeen::default() }, now);
                }
                TaskEvent::Orphan { route, tool, .. } => self.metrics.record_task_orphaned(&route, &tool),
                TaskEvent::Created { .. } => {}
            }
        }
    }
}
