//! Bursts whose replica went away (a crash, a scale-down) before it ended them. Every replica
//! watches the cluster's index of active bursts; a burst that left it (its quiet period passed)
//! and that its replica did not end within a grace is ended by whichever replica takes its count
//! first (`GETDEL`, so one does), with the start time and client the claim left beside it.

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use super::keys::{ms, unix_ms};
use super::Store;
use crate::config::Config;

impl Store {
    pub(super) async fn end_orphans(
        &mut self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        active: HashSet<String>,
    ) -> redis::RedisResult<()> {
        let quiet = ms(config.bursts.quiet_period).max(1000);
        // The replica that claimed a burst ends it at its next exchange after the claim expired;
        // its count lives twice the quiet period: adopt between the two.
        let grace = Duration::from_millis(quiet / 2).clamp(Duration::from_secs(1), Duration::from_secs(10));
        let now = Instant::now();
        for text in self.bursts.last_active.difference(&active) {
            if !self.bursts.owned.contains_key(text) {
                self.bursts.vanished.entry(text.clone()).or_insert(now);
            }
        }
        self.bursts.last_active = active;
        let due: Vec<String> = self
            .bursts
            .vanished
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= grace)
            .map(|(t, _)| t.clone())
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let p = Self::prefix(config);
        let mut pipe = redis::pipe();
        for text in &due {
            pipe.cmd("GETDEL").arg(format!("{p}:total:{text}"));
            pipe.cmd("GETDEL").arg(format!("{p}:meta:{text}"));
        }
        let values: Vec<Option<String>> = pipe.query_async(conn).await?;
        for (text, pair) in due.iter().zip(values.chunks(2)) {
            self.bursts.vanished.remove(text);
            let Some(failures) = pair[0].as_deref().and_then(|t| t.parse::<u64>().ok()) else { continue };
            let meta = pair.get(1).cloned().flatten().unwrap_or_default();
            let (started, client) = meta.split_once(' ').unwrap_or(("", ""));
            let started = started.parse::<u64>().unwrap_or_else(|_| unix_ms());
            let duration = unix_ms().saturating_sub(started).saturating_sub(quiet) as f64 / 1000.0;
            self.auditor.adopted_burst_end(text, client.to_string(), failures, duration);
        }
        Ok(())
    }
}
