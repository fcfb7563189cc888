//! Cluster mode: replicas behind one load balancer decide bursts together through a Redis or
//! Valkey store. Every `cluster.sync_interval` a background task sends what this replica counted
//! (failures per burst key in time buckets, failing credentials per source as HyperLogLogs),
//! reads the cluster's totals over each window back, and claims a burst that crossed its
//! threshold with `SET NX`: the one replica that wins writes `burst_start` and pages, once per
//! cluster, and writes `burst_end` when the claim expires after the quiet period. Every replica
//! reads the same index of active bursts for `mcp_tap_auth_burst_active`.
//!
//! The request path never waits on the store: it adds to a map in memory (`audit::shared`). A
//! store that is down, slow or flushed fails the exchange: counted, `mcp_tap_store_up` 0, one
//! `store_lost` audit line; each replica decides alone meanwhile, reconnects with backoff, and
//! sends what it counted once the store is back. Only addresses and keyed fingerprints are
//! written, never a token, and every key expires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

mod exchange;
mod keys;
mod labels;
mod oauth;
mod orphans;
mod privileges;
mod reach;
mod sessions;
mod sharing;
mod tasks;
mod waits;
use keys::urls;
pub(crate) use privileges::RouteNames;

use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::audit::event::AuditEvent;
use crate::audit::outbox::{Alone, Pending};
use crate::audit::Auditor;
use crate::config::Config;
use crate::detect::burst::{BurstEvent, BurstKey, Scope};
use crate::metrics::{Metrics, StoreOperation};
use crate::shares::Shares;

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Reads the config in force (it changes on reload).
pub(crate) type ConfigSource = Arc<dyn Fn() -> Arc<Config> + Send + Sync>;

/// A burst this replica claimed, and so ends.
struct Owned {
    key: BurstKey,
    client: String,
    started: Instant,
}

/// What one exchange found.
#[derive(Default)]
struct Outcome {
    started: Vec<BurstEvent>,
    ended: Vec<BurstEvent>,
    active: HashMap<Scope, usize>,
    /// The cluster's active bursts, as the store names them.
    active_keys: std::collections::HashSet<String>,
}

struct Store {
    auditor: Arc<Auditor>,
    metrics: Arc<Metrics>,
    config: ConfigSource,
    /// This replica, as written into the bursts it claims.
    replica: String,
    /// This replica's stable name (the pod's host name), for what it saw of least privilege.
    host: String,
    checklist: Arc<crate::checklist::Checklist>,
    sessions: Arc<crate::session::SessionTracker>,
    names: RouteNames,
    ticks: u64,
    link: Link,
    bursts: Claimed,
    /// The id of the last OAuth stream entry read (empty: none yet).
    oauth_read: String,
}

/// The connection to the store, and whether it is up: the one place the tap knows it.
struct Link {
    conn: Option<MultiplexedConnection>,
    up: Option<bool>,
    down_since: Option<Instant>,
    retry_at: Instant,
    backoff: Duration,
}

/// The bursts this replica claimed, and what it saw of the others'.
#[derive(Default)]
struct Claimed {
    owned: HashMap<String, Owned>,
    /// The cluster's active bursts at the last exchange, and those that left the index since,
    /// with when: one no replica ended is ended here (`orphans`).
    last_active: std::collections::HashSet<String>,
    vanished: HashMap<String, Instant>,
}

impl Store {
    fn prefix(config: &Config) -> String {
        format!("mcp-tap:{}", config.cluster.name)
    }

    async fn connection(&mut self, config: &Config) -> Option<MultiplexedConnection> {
        if let Some(c) = &self.link.conn {
            return Some(c.clone());
        }
        if Instant::now() < self.link.retry_at {
            return None;
        }
        let (url, _) = urls(&config.cluster.url(&config.env)?, config.cluster.password(&config.env).as_deref());
        let ca_file = config.cluster.ca_file.clone();
        let connect = async {
            let client = match ca_file {
                Some(path) => {
                    let root = std::fs::read(&path).map_err(|e| {
                        redis::RedisError::from((redis::ErrorKind::Io, "cluster.ca_file cannot be read", e.to_string()))
                    })?;
                    let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(root) };
                    redis::Client::build_with_tls(url.as_str(), certs)?
                }
                None => redis::Client::open(url.as_str())?,
            };
            client.get_multiplexed_async_connection().await
        };
        match tokio::time::timeout(config.cluster.timeout, connect).await {
            Ok(Ok(conn)) => {
                self.link.conn = Some(conn.clone());
                Some(conn)
            }
            Ok(Err(e)) => {
                self.failed(config, StoreOperation::Connect, &e.to_string());
                None
            }
            Err(_) => {
                self.failed(config, StoreOperation::Connect, "no answer within cluster.timeout");
                None
            }
        }
    }

    /// The store failed: counted, and the first failure after it was up written to the audit.
    fn failed(&mut self, config: &Config, operation: StoreOperation, error: &str) {
        self.metrics.record_store_error(operation);
        self.link.conn = None;
        self.link.retry_at = Instant::now() + self.link.backoff;
        self.link.backoff = (self.link.backoff * 2).min(MAX_BACKOFF);
        if self.link.up != Some(false) {
            let (_, store) = urls(&config.cluster.url(&config.env).unwrap_or_default(), None);
            tracing::warn!(%store, "cluster store lost: each replica decides bursts alone until it is back: {error}");
            self.auditor.write(AuditEvent::StoreLost {
                cluster: config.cluster.name.clone(),
                store,
                error: crate::bounded::cut(error, crate::bounded::STORE_ERROR).to_string(),
            });
            self.link.up = Some(false);
            self.link.down_since = Some(Instant::now());
            self.metrics.set_store_up(&config.cluster.name, false);
            self.auditor.local_burst_gauges();
        }
    }

    fn succeeded(&mut self, config: &Config) {
        self.link.backoff = FIRST_BACKOFF;
        if self.link.up != Some(true) {
            let (_, store) = urls(&config.cluster.url(&config.env).unwrap_or_default(), None);
            if let Some(since) = self.link.down_since.take() {
                tracing::info!(%store, "cluster store back: bursts are decided by the cluster again");
                self.auditor.write(AuditEvent::StoreRegained {
                    cluster: config.cluster.name.clone(),
                    store,
                    down_seconds: since.elapsed().as_secs_f64(),
                });
            }
            self.link.up = Some(true);
            self.metrics.set_store_up(&config.cluster.name, true);
        }
    }

    /// Everything else the cluster shares: credentials used by two products, learned tool
    /// names, calls waiting for input and tasks (every exchange), session activity (every second one,
    /// about 0.5 s), least privilege (every eighth, about 2 s).
    async fn share(
        &mut self,
        conn: &mut MultiplexedConnection,
        config: &Config,
        pending: &mut Pending,
    ) -> Result<(), String> {
        let timeout = config.cluster.timeout;
        let within = |r: Result<redis::RedisResult<()>, tokio::time::error::Elapsed>| match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within cluster.timeout".to_string()),
        };
        self.ticks += 1;
        let pairs = tokio::time::timeout(timeout, self.exchange_products(conn, config, &pending.products))
            .await
            .map_err(|_| "no answer within cluster.timeout".to_string())?
            .map_err(|e| e.to_string())?;
        for pair in pairs {
            let (seen, source) = (&pair.seen, pair.seen.source.unwrap_or([0, 0, 0, 0].into()));
            self.auditor.shared_found(&seen.route, &seen.client, pair.fp, pair.names, source);
        }
        within(tokio::time::timeout(timeout, self.exchange_reach(conn, config, &mut pending.reach)).await)?;
        let findings = tokio::time::timeout(timeout, self.claim_findings(conn, config, &pending.findings))
            .await
            .map_err(|_| "no answer within cluster.timeout".to_string())?
            .map_err(|e| e.to_string())?;
        // Claimed: written by the replica that won, never again by this one alone.
        pending.findings.clear();
        self.auditor.findings_decided(findings);
        within(tokio::time::timeout(timeout, self.exchange_names(conn, config)).await)?;
        within(tokio::time::timeout(timeout, self.exchange_oauth(conn, config)).await)?;
        let read_remembered = self.ticks % 4 == 1;
        within(tokio::time::timeout(timeout, self.exchange_labels(conn, config, read_remembered)).await)?;
        if self.ticks % 2 == 1 {
            within(tokio::time::timeout(timeout, self.exchange_sessions(conn, config)).await)?;
        }
        within(tokio::time::timeout(timeout, self.exchange_waits(conn, config)).await)?;
        within(tokio::time::timeout(timeout, self.exchange_tasks(conn, config)).await)?;
        if self.ticks % 8 == 1 {
            let checklist = self.checklist.clone();
            within(tokio::time::timeout(timeout, self.exchange_privileges(conn, config, &checklist)).await)?;
        }
        Ok(())
    }

    async fn tick(&mut self) {
        let config = (self.config)();
        let auditor = self.auditor.clone();
        let Some(outbox) = auditor.shared.as_ref() else { return };
        let mut pending = outbox.take();
        if pending.dropped > 0 {
            tracing::warn!(
                failures = pending.dropped,
                "more burst keys than cluster.max_pending_keys: these failures counted on this replica only"
            );
            pending.dropped = 0;
        }
        let Some(mut conn) = self.connection(&config).await else {
            self.alone(pending);
            return;
        };
        let result = tokio::time::timeout(config.cluster.timeout, self.exchange(&mut conn, &config, &pending)).await;
        let error = match result {
            Ok(Ok(outcome)) => {
                self.succeeded(&config);
                // The store is up: the cluster decided; this replica's own decisions are dropped.
                pending.alone = Alone::default();
                self.auditor.cluster_events(outcome.started);
                self.auditor.cluster_events(outcome.ended);
                for scope in Scope::ALL {
                    self.metrics.set_burst_active(*scope, outcome.active.get(scope).copied().unwrap_or(0));
                }
                let shared = match self.end_orphans(&mut conn, &config, outcome.active_keys).await {
                    Ok(()) => self.share(&mut conn, &config, &mut pending).await,
                    Err(e) => Err(e.to_string()),
                };
                let Err(e) = shared else { return };
                // The bursts were sent; credential products go again with the next exchange.
                let rest = Pending {
                    products: pending.products,
                    findings: pending.findings,
                    reach: pending.reach,
                    ..Pending::default()
                };
                self.failed(&config, StoreOperation::Exchange, &e);
                self.alone(rest);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within cluster.timeout".to_string(),
        };
        self.failed(&config, StoreOperation::Exchange, &error);
        self.alone(pending);
    }

    /// The store cannot be reached: what this replica decided alone is written, as without a
    /// cluster, and what it counted waits for the next exchange. The one place the parts that
    /// share learn that they decide alone.
    fn alone(&self, pending: Pending) {
        let Some(outbox) = self.auditor.shared.as_ref() else { return };
        outbox.put_back(pending);
        let sessions = &self.sessions;
        let parts: [&dyn Shares; 5] = [&*self.auditor, &*self.checklist, &**sessions, &sessions.waits, &sessions.tasks];
        for part in parts {
            part.decide_alone();
        }
    }
}

/// Exchanges with the store every `cluster.sync_interval` until `stop`.
pub(crate) async fn run(
    auditor: Arc<Auditor>,
    metrics: Arc<Metrics>,
    checklist: Arc<crate::checklist::Checklist>,
    sessions: Arc<crate::session::SessionTracker>,
    names: RouteNames,
    config: ConfigSource,
    mut stop: watch::Receiver<bool>,
) {
    sessions.share();
    sessions.waits.share();
    sessions.tasks.share();
    auditor.who.names.share();
    auditor.share_oauth();
    let mut random = [0u8; 6];
    let _ = getrandom::fill(&mut random);
    let replica: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let host = (config)().env.var("HOSTNAME").filter(|h| !h.is_empty()).unwrap_or_else(|| replica.clone());
    let mut store = Store {
        auditor,
        metrics,
        config,
        replica,
        host,
        checklist,
        sessions,
        names,
        ticks: 0,
        link: Link { conn: None, up: None, down_since: None, retry_at: Instant::now(), backoff: FIRST_BACKOFF },
        bursts: Claimed::default(),
        oauth_read: String::new(),
    };
    loop {
        let interval = (store.config)().cluster.sync_interval;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        store.tick().await;
    }
}
