//! One exchange with the store: send what this replica counted and read the cluster's totals
//! back (one pipeline), then claim the bursts that crossed, refresh the ones that go on and end
//! the ones this replica owns that went quiet (a second one).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::time::Instant;

use super::keys::{key_text, ms, take, threshold, unix_ms, windows};
use super::{Outcome, Owned, Store};
use crate::audit::outbox::Pending;
use crate::config::Config;
use crate::detect::burst::{estimate, BurstEvent, BurstKey, Scope, Summary};
use crate::identity::CLIENT_UNKNOWN;

/// What the first pipeline read: each key this replica saw with the cluster's count over its
/// window, the bursts active in the cluster, and the owned ones whose claim expired.
struct Read {
    /// Key, client, store text, this replica's failures since the last exchange, cluster count.
    seen: Vec<(BurstKey, String, String, u64, u64)>,
    active: HashSet<String>,
    gone: Vec<String>,
}

impl Store {
    pub(super) async fn exchange(
        &mut self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        pending: &Pending,
    ) -> redis::RedisResult<Outcome> {
        let read = self.send_and_read(conn, config, pending).await?;
        self.settle(conn, config, read).await
    }

    async fn send_and_read(
        &self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        pending: &Pending,
    ) -> redis::RedisResult<Read> {
        let (p, cfg, now) = (Self::prefix(config), &config.bursts, unix_ms());
        let mut seen: Vec<(BurstKey, String, String, u64)> = Vec::new();
        let mut pipe = redis::pipe();
        for (key, counted) in &pending.keys {
            let text = key_text(key);
            let (window, _) = threshold(cfg, key.scope);
            let (current, _) = windows(window, now);
            let this = format!("{p}:n:{text}:{current}");
            pipe.cmd("INCRBY").arg(&this).arg(counted.failures);
            pipe.cmd("PEXPIRE").arg(&this).arg(ms(window) * 2).ignore();
            pipe.cmd("GET").arg(format!("{p}:n:{text}:{}", current.saturating_sub(1)));
            seen.push((*key, counted.client.clone(), text, counted.failures));
        }
        for (source, fps) in &pending.stuffing {
            let key = BurstKey { scope: Scope::Stuffing, key: *source };
            let text = key_text(&key);
            let (current, _) = windows(cfg.stuffing.window, now);
            let this = format!("{p}:s:{text}:{current}");
            pipe.cmd("PFADD").arg(&this).arg(fps.iter().map(ToString::to_string).collect::<Vec<_>>()).ignore();
            pipe.cmd("PEXPIRE").arg(&this).arg(ms(cfg.stuffing.window) * 2).ignore();
            // Distinct credentials over this window and the last (at most twice the window).
            pipe.cmd("PFCOUNT").arg(&this).arg(format!("{p}:s:{text}:{}", current.saturating_sub(1)));
            seen.push((key, CLIENT_UNKNOWN.to_string(), text, fps.len() as u64));
        }
        let active_index = format!("{p}:active");
        pipe.cmd("ZREMRANGEBYSCORE").arg(&active_index).arg("-inf").arg(now).ignore();
        pipe.cmd("ZRANGE").arg(&active_index).arg(0).arg(-1);
        let owned: Vec<String> = self.bursts.owned.keys().cloned().collect();
        for text in &owned {
            pipe.cmd("EXISTS").arg(format!("{p}:burst:{text}"));
        }
        let mut values = pipe.query_async::<Vec<Value>>(conn).await?.into_iter();
        let mut counted = Vec::with_capacity(seen.len());
        for (key, client, text, mine) in seen {
            let count: u64 = if key.scope == Scope::Stuffing {
                take(&mut values)?
            } else {
                let (this, last): (u64, Option<u64>) = (take(&mut values)?, take(&mut values)?);
                let (_, into) = windows(threshold(cfg, key.scope).0, now);
                estimate(this, last.unwrap_or(0), into)
            };
            counted.push((key, client, text, mine, count));
        }
        let active: HashSet<String> = take::<Vec<String>>(&mut values)?.into_iter().collect();
        let mut gone = Vec::new();
        for text in owned {
            if !take::<bool>(&mut values)? {
                gone.push(text);
            }
        }
        Ok(Read { seen: counted, active, gone })
    }

    async fn settle(
        &mut self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        read: Read,
    ) -> redis::RedisResult<Outcome> {
        let (p, cfg, now) = (Self::prefix(config), &config.bursts, unix_ms());
        let quiet = ms(cfg.quiet_period).max(1000);
        let active_index = format!("{p}:active");
        let mut pipe = redis::pipe();
        let mut claims = Vec::new();
        for (key, client, text, mine, count) in read.seen {
            if read.active.contains(&text) {
                // A burst's own count, kept only while it lasts: keys under their threshold
                // cost the store one bucket counter each, gone after the window.
                let total = format!("{p}:total:{text}");
                pipe.cmd("INCRBY").arg(&total).arg(mine).ignore();
                pipe.cmd("PEXPIRE").arg(&total).arg(quiet * 2).ignore();
                pipe.cmd("PEXPIRE").arg(format!("{p}:meta:{text}")).arg(quiet * 2).ignore();
                pipe.cmd("PEXPIRE").arg(format!("{p}:burst:{text}")).arg(quiet).ignore();
                pipe.cmd("ZADD").arg(&active_index).arg(now + quiet).arg(&text).ignore();
            } else if count >= threshold(cfg, key.scope).1 {
                pipe.cmd("SET").arg(format!("{p}:burst:{text}")).arg(&self.replica).arg("NX").arg("PX").arg(quiet);
                claims.push((key, client, text, count));
            }
        }
        for text in &read.gone {
            pipe.cmd("GETDEL").arg(format!("{p}:total:{text}"));
            pipe.cmd("DEL").arg(format!("{p}:meta:{text}")).ignore();
            pipe.cmd("ZREM").arg(&active_index).arg(text).ignore();
        }
        let mut won = Vec::new();
        let mut outcome = Outcome::default();
        if pipe.cmd_iter().next().is_some() {
            let mut values = pipe.query_async::<Vec<Value>>(conn).await?.into_iter();
            for (key, client, text, count) in claims {
                if take::<Option<String>>(&mut values)?.is_some() {
                    outcome.started.push(BurstEvent::Started { key, client: client.clone(), failures: count });
                    self.bursts.owned.insert(text.clone(), Owned { key, client, started: Instant::now() });
                    won.push((text, count, client_of(&outcome.started)));
                }
            }
            for text in &read.gone {
                let failures = take::<Option<u64>>(&mut values)?;
                // No count left: another replica took this burst for gone and ended it already.
                if let (Some(o), Some(failures)) = (self.bursts.owned.remove(text), failures) {
                    let duration = o.started.elapsed().saturating_sub(Duration::from_millis(quiet));
                    let summary = Summary::default();
                    outcome.ended.push(BurstEvent::Ended { key: o.key, client: o.client, failures, duration, summary });
                }
            }
        }
        record_won(conn, &active_index, &p, (now, quiet), &won).await?;
        outcome.active = count_active(&read.active, &won, &read.gone);
        outcome.active_keys = read.active;
        Ok(outcome)
    }
}

/// The client of the burst just started (the last one pushed).
fn client_of(started: &[BurstEvent]) -> String {
    match started.last() {
        Some(BurstEvent::Started { client, .. }) => client.clone(),
        _ => String::new(),
    }
}

/// The bursts this replica claimed, into the index of active ones, with their counts so far and
/// what another replica needs to end one whose replica went away (start time and client).
async fn record_won(
    conn: &mut MultiplexedConnection,
    active_index: &str,
    p: &str,
    (now, quiet): (u64, u64),
    won: &[(String, u64, String)],
) -> redis::RedisResult<()> {
    if won.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (text, count, client) in won {
        pipe.cmd("ZADD").arg(active_index).arg(now + quiet).arg(text).ignore();
        pipe.cmd("SET").arg(format!("{p}:total:{text}")).arg(count).arg("PX").arg(quiet * 2).ignore();
        pipe.cmd("SET")
            .arg(format!("{p}:meta:{text}"))
            .arg(format!("{now} {client}"))
            .arg("PX")
            .arg(quiet * 2)
            .ignore();
    }
    pipe.cmd("PEXPIRE").arg(active_index).arg(quiet * 2).ignore();
    pipe.query_async::<()>(conn).await
}

/// Active bursts per scope: the cluster's, the ones just claimed, less the ones just ended.
fn count_active(active: &HashSet<String>, won: &[(String, u64, String)], gone: &[String]) -> HashMap<Scope, usize> {
    let gone: HashSet<&String> = gone.iter().collect();
    let mut counts = HashMap::new();
    for text in active.iter().chain(won.iter().map(|(t, _, _)| t)).filter(|t| !gone.contains(t)) {
        if let Some(scope) = Scope::ALL.iter().find(|s| text.starts_with(&format!("{}:", s.as_str()))) {
            *counts.entry(*scope).or_default() += 1;
        }
    }
    counts
}
