//! Shared credentials across replicas: the client names a credential was declared with, by every
//! replica, in one set per credential (keyed fingerprints only); a pair of names is a finding
//! claimed with `SET NX`, so it is raised once in the cluster whichever replicas saw the two.

use std::collections::HashMap;

use redis::aio::MultiplexedConnection;

use super::keys::{ms, take};
use super::Store;
use crate::audit::outbox::Products;
use crate::config::Config;
use crate::identity::Fingerprint;

/// A pair of client names this replica won the right to report, with where it was seen last.
pub(super) struct Pair {
    pub fp: Fingerprint,
    pub seen: Products,
    pub names: [String; 2],
}

impl Store {
    /// Per-credential findings raised by replicas: written by the one that claims them first.
    pub(super) async fn claim_findings(
        &self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        findings: &[(Fingerprint, crate::audit::event::AuditEvent)],
    ) -> redis::RedisResult<Vec<crate::audit::event::AuditEvent>> {
        if findings.is_empty() {
            return Ok(Vec::new());
        }
        let p = Self::prefix(config);
        let ttl = ms(config.user_tokens.expired_quiet_period).max(1000);
        let mut pipe = redis::pipe();
        for (fp, event) in findings {
            pipe.cmd("SET").arg(format!("{p}:finding:{}:{fp}", event.name())).arg(1).arg("NX").arg("PX").arg(ttl);
        }
        let mut values = pipe.query_async::<Vec<redis::Value>>(conn).await?.into_iter();
        let mut won = Vec::new();
        for (_, event) in findings {
            if take::<Option<String>>(&mut values)?.is_some() {
                won.push(event.clone());
            }
        }
        Ok(won)
    }

    pub(super) async fn exchange_products(
        &self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        products: &HashMap<Fingerprint, Products>,
    ) -> redis::RedisResult<Vec<Pair>> {
        if products.is_empty() {
            return Ok(Vec::new());
        }
        let p = Self::prefix(config);
        let ttl = ms(config.audit.shared_credential_window).max(1000);
        let mut pipe = redis::pipe();
        let order: Vec<(&Fingerprint, &Products)> = products.iter().collect();
        for (fp, seen) in &order {
            let key = format!("{p}:cn:{fp}");
            pipe.cmd("SADD").arg(&key).arg(seen.names.iter().map(ToString::to_string).collect::<Vec<_>>()).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
            pipe.cmd("SMEMBERS").arg(&key);
        }
        let mut values = pipe.query_async::<Vec<redis::Value>>(conn).await?.into_iter();
        let mut candidates = Vec::new();
        for (fp, seen) in &order {
            let members: Vec<String> = take(&mut values)?;
            for mine in &seen.names {
                for other in members.iter().filter(|m| m.as_str() != &**mine).take(8) {
                    let (a, b) =
                        if other.as_str() < &**mine { (other.as_str(), &**mine) } else { (&**mine, other.as_str()) };
                    candidates.push((
                        **fp,
                        (*seen).clone(),
                        [other.clone(), mine.to_string()],
                        format!("{p}:pair:{fp}:{a}:{b}"),
                    ));
                }
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (_, _, _, key) in &candidates {
            pipe.cmd("SET").arg(key).arg(1).arg("NX").arg("PX").arg(ttl);
        }
        let mut values = pipe.query_async::<Vec<redis::Value>>(conn).await?.into_iter();
        let mut won = Vec::new();
        for (fp, seen, names, _) in candidates {
            if take::<Option<String>>(&mut values)?.is_some() {
                won.push(Pair { fp, seen, names });
            }
        }
        Ok(won)
    }
}
