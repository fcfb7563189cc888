//! Tasks through the store: one hash per task (`{prefix}:task:{hash}`, expiring after its TTL),
//! changed by each replica's events with one script (`tasks.lua`), so that polls, time in
//! `input_required` and the end are the cluster's wherever the balancer sends a task's requests.
//! The replica whose event ends a task records its end; a foreign principal is reported once.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;

use super::Store;
use crate::audit::event::task::ForeignAccess;
use crate::config::Config;
use crate::mcp::method::Method;
use crate::metrics::TaskEnd;
use crate::session::TaskEvent;

const SCRIPT: &str = include_str!("tasks.lua");

fn add(pipe: &mut redis::Pipeline, prefix: &str, event: &TaskEvent) {
    let eval = |pipe: &mut redis::Pipeline, key: u64, kind: &str, at_ms: u64| {
        pipe.cmd("EVAL").arg(SCRIPT).arg(1).arg(format!("{prefix}:task:{key:016x}")).arg(kind).arg(at_ms);
    };
    match event {
        TaskEvent::Created { key, at_ms, owner, route, tool, client, ttl_ms, poll_ms } => {
            eval(pipe, *key, "created", *at_ms);
            let poll = poll_ms.map(|p| p.to_string()).unwrap_or_default();
            pipe.arg(format!("{owner:016x}")).arg(route).arg(tool).arg(client).arg(*ttl_ms).arg(poll);
        }
        TaskEvent::Access { key, at_ms, principal, requester, .. } => {
            eval(pipe, *key, "access", *at_ms);
            pipe.arg(format!("{principal:016x}")).arg(requester.method.as_str());
        }
        TaskEvent::Status { key, at_ms, status, poll_ms, .. } => {
            eval(pipe, *key, "status", *at_ms);
            pipe.arg(status.as_str()).arg(poll_ms.map(|p| p.to_string()).unwrap_or_default());
        }
        TaskEvent::Orphan { key, .. } => eval(pipe, *key, "orphan", 0),
    }
}

fn text(v: &Value) -> String {
    redis::from_redis_value_ref::<String>(v).unwrap_or_default()
}

fn number(v: &Value) -> i64 {
    redis::from_redis_value_ref::<i64>(v).unwrap_or_default()
}

impl Store {
    pub(super) async fn exchange_tasks(
        &mut self,
        conn: &mut MultiplexedConnection,
        config: &Config,
    ) -> redis::RedisResult<()> {
        let tasks = &self.sessions.tasks;
        let events = tasks.take_events();
        if events.is_empty() {
            return Ok(());
        }
        let prefix = Store::prefix(config);
        let mut pipe = redis::pipe();
        for event in &events {
            add(&mut pipe, &prefix, event);
        }
        let replies: Vec<Value> = match pipe.query_async(conn).await {
            Ok(replies) => replies,
            Err(e) => {
                // Decided here instead (`decide_alone`), as without a store.
                tasks.requeue(events);
                return Err(e);
            }
        };
        let mut unknown = Vec::new();
        for (event, reply) in events.into_iter().zip(replies) {
            if matches!(reply, Value::Int(-1)) {
                unknown.push(event);
            } else {
                self.task_decided(event, &reply);
            }
        }
        tasks.put_back(unknown);
        Ok(())
    }

    /// What the store answered to one event.
    fn task_decided(&self, event: TaskEvent, reply: &Value) {
        let m = &self.metrics;
        match (event, reply) {
            (TaskEvent::Access { key, principal, requester, .. }, Value::Array(a)) if a.len() == 5 => {
                let (route, tool, owner) = (text(&a[2]), text(&a[3]), text(&a[4]));
                if number(&a[0]) == 1 {
                    m.record_task_fast_poll(&route, &tool);
                }
                if requester.method == Method::TasksCancel {
                    m.record_task_cancel(&route, &tool);
                }
                if number(&a[1]) == 1 {
                    self.auditor.task_foreign_access(key, principal, ForeignAccess::of(&requester, &owner, tool));
                }
            }
            (TaskEvent::Status { status, .. }, Value::Array(a)) if a.len() == 5 => {
                let (route, tool, input) = (text(&a[1]), text(&a[2]), text(&a[4]));
                m.record_task_end(&TaskEnd {
                    route: &route,
                    tool: &tool,
                    status: status.as_str(),
                    lifetime: Duration::from_millis(number(&a[0]).max(0) as u64),
                    input_wait: input.parse::<u64>().ok().map(Duration::from_millis),
                    polls: u32::try_from(number(&a[3])).unwrap_or(u32::MAX),
                });
            }
            (TaskEvent::Orphan { route, tool, .. }, Value::Int(1)) => m.record_task_orphaned(&route, &tool),
            _ => {}
        }
    }
}
