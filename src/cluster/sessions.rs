//! Session activity through the store: the latest time any replica answered each session, in two
//! sorted sets per cluster (`ZADD GT` keeps the latest; members older than the retention are
//! removed and the sets expire), read back for the sessions this replica holds.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::Store;
use crate::config::Config;
use crate::session::{unix_ms, News};

/// Pipelines the adds for one sorted set: `ZADD key GT ms member …`.
fn add(pipe: &mut redis::Pipeline, key: &str, entries: &HashMap<u64, u64>) {
    if entries.is_empty() {
        return;
    }
    let cmd = pipe.cmd("ZADD").arg(key).arg("GT");
    for (member, ms) in entries {
        cmd.arg(*ms).arg(format!("{member:016x}"));
    }
    cmd.ignore();
}

/// The scores of `members` in a reply of `ZMSCORE`, as a map of those that have one.
fn scores(members: &[u64], reply: Vec<Option<f64>>) -> HashMap<u64, u64> {
    members.iter().zip(reply).filter_map(|(m, s)| Some((*m, s? as u64))).collect()
}

impl Store {
    /// Stateless sessions: each started here is claimed with `SET NX` (one replica counts it),
    /// and the claims of the ones this replica counts are kept while they live.
    async fn claim_sessions(
        &self,
        conn: &mut MultiplexedConnection,
        prefix: &str,
        keep: u64,
    ) -> redis::RedisResult<()> {
        let (pending, held) = self.sessions.claims();
        let released = self.sessions.take_released();
        if pending.is_empty() && held.is_empty() && released.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for claim in &released {
            pipe.cmd("DEL").arg(format!("{prefix}:sessions:own:{claim:016x}")).ignore();
        }
        for claim in &held {
            pipe.cmd("PEXPIRE").arg(format!("{prefix}:sessions:own:{claim:016x}")).arg(keep).ignore();
        }
        for claim in &pending {
            let key = format!("{prefix}:sessions:own:{claim:016x}");
            pipe.cmd("SET").arg(key).arg(&self.replica).arg("NX").arg("PX").arg(keep);
        }
        let won: Vec<Option<String>> = pipe.query_async(conn).await?;
        let won: HashMap<u64, bool> = pending.iter().zip(won).map(|(c, w)| (*c, w.is_some())).collect();
        self.sessions.claimed(&won);
        Ok(())
    }

    pub(super) async fn exchange_sessions(
        &mut self,
        conn: &mut MultiplexedConnection,
        config: &Config,
    ) -> redis::RedisResult<()> {
        let noted = self.sessions.take_news();
        let (held, held_inits) = self.sessions.held();
        let prefix = Store::prefix(config);
        let (seen_key, init_key) = (format!("{prefix}:sessions:seen"), format!("{prefix}:sessions:init"));
        // Kept twice the idle timeout (a minute at least): long enough for any holder to read it.
        let keep = (config.sessions.idle_timeout * 2).max(Duration::from_secs(60)).as_millis() as u64;
        let oldest = unix_ms().saturating_sub(keep);
        let mut pipe = redis::pipe();
        add(&mut pipe, &seen_key, &noted.seen);
        add(&mut pipe, &init_key, &noted.inits);
        for key in [&seen_key, &init_key] {
            pipe.cmd("ZREMRANGEBYSCORE").arg(key).arg("-inf").arg(format!("({oldest}")).ignore();
            pipe.cmd("PEXPIRE").arg(key).arg(keep).ignore();
        }
        let hex = |v: &[u64]| v.iter().map(|m| format!("{m:016x}")).collect::<Vec<_>>();
        if !held.is_empty() {
            pipe.cmd("ZMSCORE").arg(&seen_key).arg(hex(&held));
        }
        if !held_inits.is_empty() {
            pipe.cmd("ZMSCORE").arg(&init_key).arg(hex(&held_inits));
        }
        let mut replies: Vec<Vec<Option<f64>>> = pipe.query_async(conn).await?;
        self.claim_sessions(conn, &prefix, keep).await?;
        let mut news = News::default();
        if !held_inits.is_empty() {
            news.inits = scores(&held_inits, replies.pop().unwrap_or_default());
        }
        if !held.is_empty() {
            news.seen = scores(&held, replies.pop().unwrap_or_default());
        }
        self.sessions.cluster_news(&news);
        Ok(())
    }
}
