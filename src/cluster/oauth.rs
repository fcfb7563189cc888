//! The OAuth journey across replicas: tokens issued on one replica and refresh tokens rotated or
//! revoked on another (`audit::oauth`), in one stream per cluster that every replica appends its
//! changes to and reads the others' from where it left off. Keyed fingerprints and client names
//! only. The stream is capped (`oauth.max_tokens`, approximately) and expires a day after the
//! last change.

use redis::aio::MultiplexedConnection;

use super::keys::{ms, take};
use super::Store;
use crate::audit::oauth::OAuthChanges;
use crate::config::Config;
use crate::identity::Fingerprint;

/// How long the stream outlives its last change.
const KEEP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Entries read at most per exchange; the rest the next time.
const READ: usize = 2_000;

/// One stream entry: kind (`t` issued access token, `r` refresh token state), fingerprint, value.
type Entry = (String, Vec<String>);

impl Store {
    pub(super) async fn exchange_oauth(
        &mut self,
        conn: &mut MultiplexedConnection,
        config: &Config,
    ) -> redis::RedisResult<()> {
        let changes = self.auditor.oauth_for_cluster();
        let read = self.send_and_read_oauth(conn, config, &changes).await;
        let entries = match read {
            Ok(entries) => entries,
            Err(e) => {
                self.auditor.oauth_put_back(changes);
                return Err(e);
            }
        };
        let mut theirs = OAuthChanges::default();
        for (id, fields) in entries {
            if let [replica, kind, fp, value] = fields.as_slice() {
                let fp = Fingerprint::from_hex(fp);
                match (replica == &self.replica, kind.as_str(), fp) {
                    (false, "t", Some(fp)) => theirs.issued.push((fp, value.as_str().into())),
                    (false, "r", Some(fp)) => theirs.families.push((fp, value.clone())),
                    _ => {}
                }
            }
            self.oauth_read = id;
        }
        self.auditor.oauth_from_cluster(theirs);
        Ok(())
    }

    async fn send_and_read_oauth(
        &self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        changes: &OAuthChanges,
    ) -> redis::RedisResult<Vec<Entry>> {
        let key = format!("{}:oauth", Self::prefix(config));
        let cap = config.oauth.max_tokens.to_string();
        let mut pipe = redis::pipe();
        let issued = changes.issued.iter().map(|(fp, client)| ("t", fp, &**client));
        let families = changes.families.iter().map(|(fp, state)| ("r", fp, state.as_str()));
        for (kind, fp, value) in issued.chain(families) {
            pipe.cmd("XADD").arg(&key).arg("MAXLEN").arg("~").arg(&cap).arg("*");
            pipe.arg("r").arg(&self.replica).arg("k").arg(kind).arg("f").arg(fp.hex()).arg("v").arg(value).ignore();
        }
        if !(changes.issued.is_empty() && changes.families.is_empty()) {
            pipe.cmd("PEXPIRE").arg(&key).arg(ms(KEEP)).ignore();
        }
        // From just after the last entry read (`(id`); the first time, from the start.
        let from = if self.oauth_read.is_empty() { "-".to_string() } else { format!("({}", self.oauth_read) };
        pipe.cmd("XRANGE").arg(&key).arg(from).arg("+").arg("COUNT").arg(READ);
        let mut values = pipe.query_async::<Vec<redis::Value>>(conn).await?.into_iter();
        let raw: Vec<(String, Vec<String>)> = take(&mut values)?;
        // Each entry's fields alternate name and value: keep the values, in the order written.
        Ok(raw.into_iter().map(|(id, fields)| (id, fields.into_iter().skip(1).step_by(2).collect())).collect())
    }
}
