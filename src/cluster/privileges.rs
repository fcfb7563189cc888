//! Least privilege across replicas: each replica writes what it saw (per route and client, the
//! tools advertised and called) to the store under its own name, and reads every replica's back,
//! so `/privileges` and `report privileges` give the same union from any replica. Names only:
//! routes, client labels and tool names, all bounded by the label caps.

use redis::aio::MultiplexedConnection;

use super::keys::{ms, take};
use super::Store;
use crate::checklist::ages::Seen;
use crate::checklist::privileges::{union, ClientTools};
use crate::checklist::Checklist;
use crate::config::Config;

/// Each route's label and the tool names it learned.
type Local = Box<dyn Fn() -> Vec<(String, Vec<String>)> + Send + Sync>;
/// Learns tool names for the route with a label.
type Learn = Box<dyn Fn(&str, &[String]) + Send + Sync>;
/// Split-server keys: those learned here, and learning others'.
type Keys = Box<dyn Fn() -> Vec<String> + Send + Sync>;
type LearnKeys = Box<dyn Fn(&[String]) + Send + Sync>;

/// The proxy's routes as the cluster shares them: advertised tool names and learned server keys.
pub(crate) struct RouteNames {
    pub local: Local,
    pub learn: Learn,
    pub keys: Keys,
    pub learn_keys: LearnKeys,
}

/// The key of a replica's token ages, beside its privileges key (`…:priv:<host>`).
fn ages_key(privileges: &str) -> String {
    privileges.replacen(":priv:", ":ages:", 1)
}

impl Store {
    /// Tool names each replica learned, shared so every replica labels a tool call the same.
    pub(super) async fn exchange_names(
        &self,
        conn: &mut MultiplexedConnection,
        config: &Config,
    ) -> redis::RedisResult<()> {
        let p = Self::prefix(config);
        let local = (self.names.local)();
        let mut pipe = redis::pipe();
        for (route, names) in &local {
            let key = format!("{p}:names:{route}");
            if !names.is_empty() {
                pipe.cmd("SADD").arg(&key).arg(names).ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(ms(config.checklist.window).max(60_000)).ignore();
            }
            pipe.cmd("SMEMBERS").arg(&key);
        }
        let mut values = pipe.query_async::<Vec<redis::Value>>(conn).await?.into_iter();
        for (route, names) in &local {
            let shared: Vec<String> = take(&mut values)?;
            if shared.len() > names.len() {
                (self.names.learn)(route, &shared);
            }
        }
        Ok(())
    }

    pub(super) async fn exchange_privileges(
        &self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        checklist: &Checklist,
    ) -> redis::RedisResult<()> {
        let p = Self::prefix(config);
        let ttl = ms(config.checklist.window).max(60_000);
        let replicas = format!("{p}:priv:replicas");
        let mine = format!("{p}:priv:{}", self.host);
        let blob = serde_json::to_string(&checklist.entries()).unwrap_or_else(|_| "[]".into());
        let ages = serde_json::to_string(&checklist.age_entries()).unwrap_or_else(|_| "[]".into());
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&mine).arg(blob).arg("PX").arg(ttl).ignore();
        pipe.cmd("SET").arg(ages_key(&mine)).arg(ages).arg("PX").arg(ttl).ignore();
        pipe.cmd("SADD").arg(&replicas).arg(&mine).ignore();
        pipe.cmd("PEXPIRE").arg(&replicas).arg(ttl).ignore();
        pipe.cmd("SMEMBERS").arg(&replicas);
        let mut values = pipe.query_async::<Vec<redis::Value>>(conn).await?.into_iter();
        let members: Vec<String> = take(&mut values)?;
        let blobs: Vec<Option<String>> = redis::cmd("MGET").arg(&members).query_async(conn).await?;
        let mut all: Vec<ClientTools> = Vec::new();
        let mut gone = Vec::new();
        for (member, blob) in members.iter().zip(blobs) {
            match blob.and_then(|b| serde_json::from_str::<Vec<ClientTools>>(&b).ok()) {
                Some(entries) => all = union(all, entries),
                None => gone.push(member),
            }
        }
        if !gone.is_empty() {
            redis::cmd("SREM").arg(&replicas).arg(gone).query_async::<()>(conn).await?;
        }
        checklist.set_cluster_view(all);
        self.exchange_ages(conn, config, checklist, &members).await
    }

    /// Token ages: every replica's sightings merged (first seen the earliest, last the latest),
    /// and each rotation found claimed with `SET NX`, so one replica writes it.
    async fn exchange_ages(
        &self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        checklist: &Checklist,
        members: &[String],
    ) -> redis::RedisResult<()> {
        let keys: Vec<String> = members.iter().map(|m| ages_key(m)).collect();
        let blobs: Vec<Option<String>> =
            if keys.is_empty() { Vec::new() } else { redis::cmd("MGET").arg(&keys).query_async(conn).await? };
        for blob in blobs.into_iter().flatten() {
            if let Ok(entries) = serde_json::from_str::<Vec<Seen>>(&blob) {
                checklist.merge_ages(entries);
            }
        }
        let p = Self::prefix(config);
        let ttl = ms(config.checklist.window).max(60_000);
        let due = checklist.take_due_rotations();
        if due.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for rotation in &due {
            let claim = format!("{p}:rotated:{}", rotation.old.fingerprint);
            pipe.cmd("SET").arg(claim).arg(&self.replica).arg("NX").arg("PX").arg(ttl);
        }
        match pipe.query_async::<Vec<Option<String>>>(conn).await {
            Ok(won) => {
                for (rotation, won) in due.into_iter().zip(won) {
                    if won.is_some() {
                        checklist.rotated(rotation);
                    }
                }
                Ok(())
            }
            Err(e) => {
                checklist.requeue_rotations(due);
                Err(e)
            }
        }
    }
}
