//! Tasks (the `io.modelcontextprotocol/tasks` extension of MCP 2026-07-28): a `tools/call` the
//! server answers with a task handle, then the client's `tasks/get` polls (and the server's
//! `notifications/tasks`) to a terminal status. Each task is followed from its creation: its
//! lifetime, its time in `input_required`, its polls (and those sooner than the server's
//! `pollIntervalMs`), `tasks/cancel`, and tasks no client followed to an end before their
//! `ttlMs`. Tasks are known by a hash of route and task id (ids are never labels nor kept), at
//! most `sessions.max_tasks` at once; a `tasks/*` request from another principal than the one
//! that created the task is reported (`Access::Foreign`), once per task.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::mcp::jsonrpc::{TaskSeen, TaskStatus};
use crate::mcp::method::Method;
use crate::metrics::{Metrics, OverflowLabel, TaskEnd};

/// A poll this much sooner than the interval the server asked for is not "too fast": timers
/// jitter.
const POLL_SLACK: f64 = 0.9;

/// What a task is recorded under.
#[derive(Debug, Clone)]
pub(crate) struct TaskLabels {
    pub route: Box<str>,
    /// The bounded tool label of the `tools/call` that made it.
    pub tool: String,
    /// The client that made it.
    pub client: Arc<str>,
}

#[derive(Debug)]
struct Tracked {
    created: Instant,
    status: TaskStatus,
    input_since: Option<Instant>,
    input_wait: Option<Duration>,
    polls: u32,
    last_poll: Option<Instant>,
    poll_interval: Option<Duration>,
    /// Creation plus `ttlMs` (or `sessions.task_max_age`): not followed to an end by then, orphaned.
    deadline: Instant,
    /// Who created it (a keyed hash of the user, or of the credential).
    owner: u64,
    foreign_seen: bool,
    labels: TaskLabels,
}

/// Whose task a `tasks/*` request touched.
#[derive(Debug, PartialEq)]
pub(crate) enum Access {
    Unknown,
    Own,
    /// Another principal's: the first time for this task. `owner` is the client that created it.
    Foreign {
        owner: Arc<str>,
        tool: String,
    },
}

/// Who made a `tasks/*` request, for the finding if the task is another principal's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Requester {
    pub route: String,
    pub method: Method,
    pub client: String,
    pub credential: Option<String>,
    pub source: String,
}

pub(crate) struct Tasks {
    tracked: Mutex<HashMap<u64, Tracked>>,
    metrics: Arc<Metrics>,
    limits: Mutex<(usize, Duration)>,
    /// Cluster mode: what the tasks do is decided in the store (`shared`).
    shared: std::sync::atomic::AtomicBool,
    events: Mutex<Vec<TaskEvent>>,
}

impl Tasks {
    pub(crate) fn new(metrics: Arc<Metrics>, max: usize, max_age: Duration) -> Self {
        Self {
            tracked: Mutex::default(),
            metrics,
            limits: Mutex::new((max, max_age)),
            shared: std::sync::atomic::AtomicBool::new(false),
            events: Mutex::default(),
        }
    }

    pub(crate) fn set_limits(&self, max: usize, max_age: Duration) {
        *self.limits.lock().expect("tasks lock") = (max, max_age);
    }

    /// What a task is known by: its route and the hash of its id.
    pub(crate) fn key(route: &str, task: &TaskSeen) -> u64 {
        foldhash::quality::FixedState::with_seed(0x0074_6173_6b73).hash_one((route, task.id))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tracked.lock().expect("tasks lock").len()
    }

    /// A `tools/call` was answered with a task handle at `now`.
    pub(crate) fn created(&self, key: u64, owner: u64, labels: TaskLabels, seen: &TaskSeen, now: Instant) {
        let (max, max_age) = *self.limits.lock().expect("tasks lock");
        let mut tracked = self.tracked.lock().expect("tasks lock");
        if tracked.len() >= max && !tracked.contains_key(&key) {
            drop(tracked);
            self.metrics.record_label_overflow(OverflowLabel::Task);
            return;
        }
        self.metrics.record_task_created(&labels.route, &labels.tool);
        let ttl = seen.ttl_ms.map_or(max_age, |ms| Duration::from_millis(ms).min(max_age));
        let task = Tracked {
            created: now,
            status: TaskStatus::Working,
            input_since: None,
            input_wait: None,
            polls: 0,
            last_poll: None,
            poll_interval: seen.poll_ms.map(Duration::from_millis),
            deadline: now + ttl,
            owner,
            foreign_seen: false,
            labels,
        };
        if self.is_shared() {
            self.queue(TaskEvent::created(key, &task, seen));
        }
        tracked.insert(key, task);
        drop(tracked);
        self.observed(key, seen, now);
    }

    /// A `tasks/get`, `tasks/update` or `tasks/cancel` from `principal` arrived at `now`. In
    /// cluster mode the store decides (the finding too): `Unknown` here.
    pub(crate) fn request(&self, key: u64, principal: u64, requester: Requester, now: Instant) -> Access {
        if self.is_shared() {
            self.queue(TaskEvent::access(key, principal, requester, now));
            return Access::Unknown;
        }
        self.request_here(key, principal, requester.method, now)
    }

    fn request_here(&self, key: u64, principal: u64, method: Method, now: Instant) -> Access {
        let mut tracked = self.tracked.lock().expect("tasks lock");
        let Some(t) = tracked.get_mut(&key) else { return Access::Unknown };
        let (route, tool) = (t.labels.route.clone(), t.labels.tool.clone());
        match method {
            Method::TasksGet => {
                t.polls += 1;
                let fast = match (t.last_poll, t.poll_interval) {
                    (Some(last), Some(interval)) => now.saturating_duration_since(last) < interval.mul_f64(POLL_SLACK),
                    _ => false,
                };
                t.last_poll = Some(now);
                if fast {
                    self.metrics.record_task_fast_poll(&route, &tool);
                }
            }
            Method::TasksCancel => self.metrics.record_task_cancel(&route, &tool),
            _ => {}
        }
        if t.owner == principal {
            Access::Own
        } else if !t.foreign_seen {
            t.foreign_seen = true;
            Access::Foreign { owner: t.labels.client.clone(), tool }
        } else {
            Access::Own
        }
    }

    /// A `tasks/get` answer or a `notifications/tasks` showed the task's state at `now`.
    pub(crate) fn observed(&self, key: u64, seen: &TaskSeen, now: Instant) {
        if self.is_shared() {
            self.observed_in_cluster(key, seen, now);
            return;
        }
        self.observed_here(key, seen, now);
    }

    fn observed_here(&self, key: u64, seen: &TaskSeen, now: Instant) {
        let mut tracked = self.tracked.lock().expect("tasks lock");
        let Some(t) = tracked.get_mut(&key) else { return };
        if let Some(ms) = seen.poll_ms {
            t.poll_interval = Some(Duration::from_millis(ms));
        }
        let Some(status) = seen.status else { return };
        match (status, t.input_since) {
            (TaskStatus::InputRequired, None) => t.input_since = Some(now),
            (TaskStatus::InputRequired, Some(_)) => {}
            (_, Some(since)) => {
                t.input_wait = Some(t.input_wait.unwrap_or_default() + now.saturating_duration_since(since));
                t.input_since = None;
            }
            (_, None) => {}
        }
        t.status = status;
        if !status.is_terminal() {
            return;
        }
        let Some(t) = tracked.remove(&key) else { return };
        drop(tracked);
        self.metrics.record_task_end(&TaskEnd {
            route: &t.labels.route,
            tool: &t.labels.tool,
            status: status.as_str(),
            lifetime: now.saturating_duration_since(t.created),
            input_wait: t.input_wait,
            polls: t.polls,
        });
    }

    /// Tasks past their deadline that no client followed to an end are orphans. Returns how many.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let mut tracked = self.tracked.lock().expect("tasks lock");
        let expired: Vec<u64> = tracked.iter().filter(|(_, t)| now >= t.deadline).map(|(k, _)| *k).collect();
        let gone: Vec<(u64, Tracked)> = expired.iter().filter_map(|k| tracked.remove(k).map(|t| (*k, t))).collect();
        drop(tracked);
        for (key, t) in &gone {
            if self.is_shared() {
                // Followed on another replica, maybe: the store says whether it ended.
                self.queue(TaskEvent::Orphan {
                    key: *key,
                    route: t.labels.route.to_string(),
                    tool: t.labels.tool.clone(),
                });
            } else {
                self.metrics.record_task_orphaned(&t.labels.route, &t.labels.tool);
            }
        }
        gone.len()
    }
}

mod shared;
pub(crate) use shared::TaskEvent;

#[cfg(test)]
mod tests;
