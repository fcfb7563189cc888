//! Multi round-trip calls waiting for input, through the store: one hash per cluster, a field
//! per call (named by the hash of its route and `requestState`), written by the replica the call
//! waits on, removed by the one its retry reaches, read back whole every exchange so a retry
//! links on any replica. Fields of a replica that died are removed once past the timeout; the
//! hash expires with the last of them.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::Store;
use crate::config::Config;
use crate::session::{unix_ms, SharedWait};

impl Store {
    pub(super) async fn exchange_waits(
        &mut self,
        conn: &mut MultiplexedConnection,
        config: &Config,
    ) -> redis::RedisResult<()> {
        let waits = &self.sessions.waits;
        let news = waits.take_news();
        let key = format!("{}:input-waits", Store::prefix(config));
        let keep = config.sessions.input_wait_timeout + Duration::from_secs(60);
        let field = |id: &u64| format!("{id:016x}");
        let mut pipe = redis::pipe();
        for (id, w) in &news.publish {
            let value = serde_json::to_string(w).unwrap_or_default();
            pipe.cmd("HSET").arg(&key).arg(field(id)).arg(value).ignore();
        }
        if !news.publish.is_empty() {
            pipe.cmd("PEXPIRE").arg(&key).arg(keep.as_millis() as u64).ignore();
        }
        for id in &news.claimed {
            pipe.cmd("HDEL").arg(&key).arg(field(id)).ignore();
        }
        for id in &news.expired {
            pipe.cmd("HDEL").arg(&key).arg(field(id));
        }
        pipe.cmd("HGETALL").arg(&key);
        let mut replies: Vec<redis::Value> = pipe.query_async(conn).await?;
        let all: HashMap<String, String> = match replies.pop() {
            Some(v) => redis::from_redis_value(v)?,
            None => HashMap::new(),
        };
        let still_there: Vec<bool> =
            replies.into_iter().map(|v| redis::from_redis_value::<i64>(v).map(|n| n > 0)).collect::<Result<_, _>>()?;
        let oldest = unix_ms().saturating_sub(keep.as_millis() as u64);
        let (mut live, mut stale) = (HashMap::new(), Vec::new());
        for (name, value) in all {
            let id = u64::from_str_radix(&name, 16).ok();
            match (id, serde_json::from_str::<SharedWait>(&value).ok()) {
                (Some(id), Some(w)) if w.answered_ms >= oldest => {
                    live.insert(id, w);
                }
                _ => stale.push(name),
            }
        }
        if !stale.is_empty() {
            redis::cmd("HDEL").arg(&key).arg(stale).query_async::<()>(conn).await?;
        }
        waits.cluster_news(&still_there, live);
        Ok(())
    }
}
