//! Label values the replicas share, so a client or a server key is labelled the same whichever
//! replica answers it: split-server keys learned from traffic, client names admitted under
//! `clients.max_names`, and which declared name each remembered client (credential key, address,
//! User-Agent key) goes by. Sets and a hash per cluster, refreshed while in use; each replica
//! adopts what the others learned up to its own caps, in name order.

use redis::aio::MultiplexedConnection;

use super::keys::{ms, take};
use super::Store;
use crate::config::Config;
use crate::identity::naming::RememberedKey;

/// Remembered clients the store holds for a cluster at most; past it the hash starts again.
const MAX_REMEMBERED: usize = 10_000;

fn field((credential, source, agent): &RememberedKey) -> String {
    format!("{credential:016x}/{source}/{agent:016x}")
}

fn parse(field: &str) -> Option<RememberedKey> {
    let mut parts = field.split('/');
    let credential = u64::from_str_radix(parts.next()?, 16).ok()?;
    let source = parts.next()?.parse().ok()?;
    let agent = u64::from_str_radix(parts.next()?, 16).ok()?;
    Some((credential, source, agent))
}

impl Store {
    pub(super) async fn exchange_labels(
        &self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        read_remembered: bool,
    ) -> redis::RedisResult<()> {
        let p = Self::prefix(config);
        let ttl = ms(config.checklist.window).max(60_000);
        let (routes, clients, named) =
            (format!("{p}:labels:routes"), format!("{p}:labels:clients"), format!("{p}:labels:named"));
        let keys = (self.names.keys)();
        let (admitted, remembered) = self.auditor.who.names.for_cluster();
        let mut pipe = redis::pipe();
        for (key, members) in [(&routes, &keys), (&clients, &admitted)] {
            if !members.is_empty() {
                pipe.cmd("SADD").arg(key).arg(members).ignore();
            }
            pipe.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
            pipe.cmd("SMEMBERS").arg(key);
        }
        for (key, name) in &remembered {
            pipe.cmd("HSET").arg(&named).arg(field(key)).arg(name).ignore();
        }
        pipe.cmd("PEXPIRE").arg(&named).arg(ttl).ignore();
        pipe.cmd("HLEN").arg(&named);
        if read_remembered {
            pipe.cmd("HGETALL").arg(&named);
        }
        let mut values = pipe.query_async::<Vec<redis::Value>>(conn).await?.into_iter();
        let shared_keys: Vec<String> = take(&mut values)?;
        let shared_clients: Vec<String> = take(&mut values)?;
        let held: usize = take(&mut values)?;
        if shared_keys.len() > keys.len() {
            (self.names.learn_keys)(&shared_keys);
        }
        let mut others = Vec::new();
        if read_remembered {
            let all: std::collections::HashMap<String, String> = take(&mut values)?;
            others = all.into_iter().filter_map(|(f, name)| Some((parse(&f)?, name))).collect();
        }
        self.auditor.who.names.adopt_from_cluster(&shared_clients, &others);
        if held > MAX_REMEMBERED {
            redis::cmd("DEL").arg(&named).query_async::<()>(conn).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_client_round_trips_through_its_field() {
        let key: RememberedKey = (0xdead_beef, "2001:db8::7".parse().unwrap(), 42);
        assert_eq!(parse(&field(&key)), Some(key));
        assert_eq!(parse("not/a/field"), None);
    }
}
