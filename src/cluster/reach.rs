//! A credential refused on MCP reaching the same actions through a plugin's actions API, across
//! replicas: the refusal and the answer may land on different replicas. Each replica writes the
//! restricted refusals it saw (`{prefix}:restricted:{fingerprint}`, the route and reason, for
//! `checklist.window`) and looks up the credentials its actions API answered; a hit is raised
//! like a finding (claimed once in the cluster), though it is evidence, not a finding.

use redis::aio::MultiplexedConnection;

use super::keys::{ms, take};
use super::Store;
use crate::audit::outbox::Reach;
use crate::config::Config;
use crate::detect::reach::Reached;
use crate::identity::Fingerprint;

impl Store {
    pub(super) async fn exchange_reach(
        &self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        reach: &mut Reach,
    ) -> redis::RedisResult<()> {
        if reach.refused.is_empty() && reach.answered.is_empty() {
            return Ok(());
        }
        let p = Self::prefix(config);
        let ttl = ms(config.checklist.window).max(1000);
        let mut pipe = redis::pipe();
        for (fp, (route, reason)) in &reach.refused {
            let key = format!("{p}:restricted:{fp}");
            pipe.cmd("SET").arg(key).arg(format!("{route}\n{reason}")).arg("PX").arg(ttl).ignore();
        }
        let answered: Vec<(Fingerprint, Reached)> = reach.answered.iter().map(|(fp, r)| (*fp, r.clone())).collect();
        for (fp, _) in &answered {
            pipe.cmd("GET").arg(format!("{p}:restricted:{fp}"));
        }
        let mut values = pipe.query_async::<Vec<redis::Value>>(conn).await?.into_iter();
        for (fp, mut reached) in answered {
            let Some(refused) = take::<Option<String>>(&mut values)? else { continue };
            let (route, reason) = refused.split_once('\n').unwrap_or((refused.as_str(), "other"));
            (reached.refused_route, reached.refused_reason) = (route.to_string(), reason.to_string());
            self.auditor.actions_api_reached(fp, reached);
        }
        reach.refused.clear();
        reach.answered.clear();
        Ok(())
    }
}
