//! Backstage's production checklist, measured where it needs memory: how old the static token
//! each client uses is (and when a client rotated to a new one), and which advertised tools each
//! client never calls. Both survive restarts in the state file (`store`).
//!
//! Only tokens the tap can name by a static-token subject (`clients`) are aged: those are the
//! static tokens the checklist asks to rotate. A Backstage user token rotates itself within the
//! hour, and an unknown token cannot be told from one.

pub(crate) mod ages;
pub(crate) mod privileges;
pub(crate) mod store;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use arc_swap::ArcSwap;

use self::ages::{Ages, Rotation, Used};
use self::privileges::{ClientTools, Privileges, Report};
use self::store::State;
use crate::audit::event::AuditEvent;
use crate::audit::Auditor;
use crate::config::Config;
use crate::identity::{Credential, CLIENT_UNKNOWN};
use crate::metrics::Metrics;

fn unix_now() -> u64 {
    crate::clock::unix_secs()
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

pub(crate) struct Checklist {
    ages: Mutex<Ages>,
    privileges: Mutex<Privileges>,
    /// Something changed since the state file was last written.
    dirty: AtomicBool,
    /// The auditor's count of `actions_api_reach` evidence at the last state built.
    reach_recorded: AtomicU64,
    settings: ArcSwap<crate::config::Checklist>,
    /// Where the state file lives; `None` keeps the state in memory only.
    dir: Option<PathBuf>,
    metrics: Arc<Metrics>,
    auditor: Arc<Auditor>,
    /// Cluster mode: what every replica saw, as the store last gave it (`None` alone).
    cluster_view: Mutex<Option<Vec<ClientTools>>>,
    /// Cluster mode: rotations wait here for the exchange to claim them, so one replica writes
    /// each, or for the cluster to hand them back when the store cannot be reached.
    due: Mutex<Vec<Rotation>>,
    /// Cluster mode is on (`cluster.store_url`).
    clustered: bool,
    /// The configured MCP servers, for the report.
    servers: Mutex<privileges::Context>,
}

/// The configured named servers and extra routes.
fn servers(config: &Config) -> privileges::Context {
    privileges::Context {
        configured_servers: config.routes.server_keys.clone(),
        extra_labels: config.routes.extra.iter().map(|r| r.label.clone()).collect(),
        reach: Vec::new(),
    }
}

impl Checklist {
    /// The checklist with the state of `checklist.state_dir`, if it can be read.
    pub(crate) fn open(config: &Config, metrics: Arc<Metrics>, auditor: Arc<Auditor>) -> Self {
        let settings = &config.checklist;
        metrics.checklist.preinit();
        metrics.checklist.set_rotation_period(settings.rotation_period.as_secs());
        let dir = settings.state_dir.clone().filter(|dir| match std::fs::create_dir_all(dir) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "checklist state kept in memory only: {e}; token ages restart at the next start");
                false
            }
        });
        let checklist = Self {
            ages: Mutex::new(Ages::new(settings.max_credentials)),
            privileges: Mutex::new(Privileges::default()),
            dirty: AtomicBool::new(false),
            reach_recorded: AtomicU64::new(0),
            settings: ArcSwap::from_pointee(settings.clone()),
            dir,
            metrics,
            auditor,
            cluster_view: Mutex::new(None),
            due: Mutex::new(Vec::new()),
            clustered: config.cluster.url(&config.env).is_some(),
            servers: Mutex::new(servers(config)),
        };
        checklist.load();
        checklist
    }

    fn load(&self) {
        let Some(dir) = &self.dir else { return };
        match store::read(dir) {
            Ok(Some(state)) => {
                let credentials = state.credentials.len();
                self.ages.lock().expect("ages lock").load(state.credentials);
                self.privileges.lock().expect("privileges lock").load(state.privileges);
                self.auditor.restore_other_way(state.reach);
                tracing::info!(dir = %dir.display(), credentials, "checklist state loaded");
            }
            Ok(None) => tracing::info!(dir = %dir.display(), "no checklist state yet: starting one"),
            Err(e) => {
                self.metrics.checklist.record_state_error("read");
                let aside = store::set_aside(dir).map(|p| p.display().to_string()).unwrap_or_default();
                tracing::warn!(aside, "checklist state unreadable, starting afresh: {e}");
            }
        }
    }

    /// A reload: the new sizes and periods (the state directory needs a restart).
    pub(crate) fn reload(&self, config: &Config) {
        self.ages.lock().expect("ages lock").resize(config.checklist.max_credentials);
        self.metrics.checklist.set_rotation_period(config.checklist.rotation_period.as_secs());
        self.settings.store(Arc::new(config.checklist.clone()));
        *self.servers.lock().expect("servers lock") = servers(config);
    }

    /// The upstream accepted a request with `credential`: a static token named by a subject ages.
    pub(crate) fn credential_worked(&self, credential: &Credential) {
        let Credential::Token { fingerprint, client } = credential else { return };
        if **client == *CLIENT_UNKNOWN {
            return;
        }
        let (key, now) = (fingerprint.short(), unix_now());
        let mut ages = self.ages.lock().expect("ages lock");
        if ages.fresh(key, now) {
            return;
        }
        if ages.used(key, client, now) == Used::NewEvicting {
            self.metrics.checklist.record_eviction();
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// A page of the tools `client` was advertised on `route`.
    pub(crate) fn tools_listed(&self, route: &str, client: &str, tools: &[&str], first_page: bool) {
        self.privileges.lock().expect("privileges lock").listed(route, client, tools, first_page, unix_now());
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// `client` called `tool`, a tool `route` advertised.
    pub(crate) fn tool_called(&self, route: &str, client: &str, tool: &str) {
        let now = unix_now();
        let mut privileges = self.privileges.lock().expect("privileges lock");
        if !privileges.fresh(route, client, tool, now) {
            privileges.called(route, client, tool, now);
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Whether `tool` was in `client`'s own last `tools/list` on `route` (`None`: none seen).
    pub(crate) fn listed_to(&self, route: &str, client: &str, tool: &str) -> Option<bool> {
        self.privileges.lock().expect("privileges lock").listed_to(route, client, tool)
    }

    /// The least-privilege report: this replica's, or in cluster mode the union of every
    /// replica's (as of the last exchange with the store, within a few seconds).
    pub(crate) fn report(&self) -> Report {
        let window = self.settings.load().window.as_secs();
        let local = self.privileges.lock().expect("privileges lock").entries();
        let cx = privileges::Context {
            reach: store::reach_since(self.auditor.other_way_evidence(), unix_now().saturating_sub(window)),
            ..self.servers.lock().expect("servers lock").clone()
        };
        match self.cluster_view.lock().expect("cluster view lock").clone() {
            Some(cluster) => privileges::report(privileges::union(local, cluster).iter(), window, cx),
            None => privileges::report(local.iter(), window, cx),
        }
    }

    /// What this replica saw, for the cluster store.
    pub(crate) fn entries(&self) -> Vec<ClientTools> {
        self.privileges.lock().expect("privileges lock").entries()
    }

    /// What every replica saw, as the cluster store gave it.
    pub(crate) fn set_cluster_view(&self, entries: Vec<ClientTools>) {
        *self.cluster_view.lock().expect("cluster view lock") = Some(entries);
    }

    /// Forgets what left the window, audits rotations, exports the gauges, and returns the state
    /// to write when something changed.
    pub(crate) fn tick(&self) -> Option<State> {
        let settings = self.settings.load();
        let now = unix_now();
        let before = now.saturating_sub(settings.window.as_secs());
        let (rotations, first_seen) = {
            let mut ages = self.ages.lock().expect("ages lock");
            ages.forget_before(before);
            (ages.rotations(now, settings.rotation_grace.as_secs()), ages.first_seen())
        };
        if self.clustered {
            self.due.lock().expect("due lock").extend(rotations);
        } else {
            for r in rotations {
                self.rotated(r);
            }
        }
        self.metrics.checklist.export_first_seen(&first_seen);
        let counts = {
            let mut privileges = self.privileges.lock().expect("privileges lock");
            privileges.forget_before(before);
            privileges.counts()
        };
        self.metrics.checklist.export_tools(&counts);
        let recorded = self.auditor.other_way_recorded();
        let new_evidence = self.reach_recorded.swap(recorded, Ordering::Relaxed) != recorded;
        if !self.dirty.swap(false, Ordering::Relaxed) && !new_evidence {
            return None;
        }
        let credentials = self.ages.lock().expect("ages lock").entries();
        let privileges = self.privileges.lock().expect("privileges lock").entries();
        let reach = store::reach_since(self.auditor.other_way_evidence(), before);
        Some(State::new(now, credentials, privileges, reach))
    }

    /// Cluster mode: every credential as this replica saw it, for the other replicas.
    pub(crate) fn age_entries(&self) -> Vec<ages::Seen> {
        self.ages.lock().expect("ages lock").entries()
    }

    /// Cluster mode: what the other replicas saw of the credentials (first and last seen, rotated).
    pub(crate) fn merge_ages(&self, others: Vec<ages::Seen>) {
        self.ages.lock().expect("ages lock").merge(others);
    }

    /// Cluster mode: rotations found since the last exchange, for the store to claim.
    pub(crate) fn take_due_rotations(&self) -> Vec<Rotation> {
        std::mem::take(&mut *self.due.lock().expect("due lock"))
    }

    /// Rotations the store could not claim: the next exchange, or this replica alone, writes them.
    pub(crate) fn requeue_rotations(&self, rotations: Vec<Rotation>) {
        self.due.lock().expect("due lock").extend(rotations);
    }

    /// Writes the `credential_rotated` line of a rotation (this replica claimed it).
    pub(crate) fn rotated(&self, r: Rotation) {
        tracing::info!(client = %r.client, old = %r.old.fingerprint, new = %r.new.fingerprint,
            "a client rotated its static token");
        self.dirty.store(true, Ordering::Relaxed);
        self.auditor.write(AuditEvent::CredentialRotated {
            client: r.client.to_string(),
            old_credential: r.old.fingerprint,
            new_credential: r.new.fingerprint,
            old_first_seen: rfc3339(r.old.first_seen),
            old_last_seen: rfc3339(r.old.last_seen),
            new_first_seen: rfc3339(r.new.first_seen),
        });
    }

    /// Writes `state` to the state file, if there is one (blocking: call off the serving threads).
    pub(crate) fn write(&self, state: &State) {
        let Some(dir) = &self.dir else { return };
        if let Err(e) = store::write(dir, state) {
            self.metrics.checklist.record_state_error("write");
            self.dirty.store(true, Ordering::Relaxed);
            tracing::warn!(dir = %dir.display(), "checklist state not written: {e}");
        }
    }

    /// Runs `tick` every `checklist.write_interval` and writes the state when it changed, until
    /// `stop`; then writes it a last time.
    pub(crate) async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let interval = self.settings.load().write_interval;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            self.tick_and_write().await;
        }
        self.tick_and_write().await;
    }

    async fn tick_and_write(self: &Arc<Self>) {
        if let Some(state) = self.tick() {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.write(&state)).await;
        }
    }
}

impl crate::shares::Shares for Checklist {
    /// Cluster mode without the store: the rotations that waited for it are this replica's.
    fn decide_alone(&self) {
        for r in self.take_due_rotations() {
            self.rotated(r);
        }
    }
}

#[cfg(test)]
mod tests;
