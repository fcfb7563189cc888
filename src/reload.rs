//! Config hot reload: the config file's folder (and those of imported Backstage app-configs) is
//! watched, so in-place edits, atomic renames and Kubernetes ConfigMap symlink swaps all count.
//! Events are debounced and contents compared; SIGHUP reloads too. A file that fails to parse
//! or validate, or that changes a restart-only setting, is refused and the running config stays.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::audit::event::AuditEvent;
use crate::config::{Config, ConfigError};
use crate::proxy::Shared;

/// Events within this window are one change (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Loads the config as at start-up (the file plus command-line overrides).
pub type Loader = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;
/// Applies a new `log.level` filter.
pub type LogLevelHandle = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

pub(crate) struct Reloader {
    path: PathBuf,
    load: Loader,
    shared: Arc<Shared>,
    log_level: Option<LogLevelHandle>,
    /// Hash of the inputs last looked at, so an unchanged file is not reloaded on every event.
    last: Mutex<u64>,
}

impl Reloader {
    pub(crate) fn new(path: PathBuf, load: Loader, shared: Arc<Shared>, log_level: Option<LogLevelHandle>) -> Self {
        let r = Self { path, load, shared, log_level, last: Mutex::new(0) };
        let inputs = r.inputs_hash();
        *r.last.lock().expect("reload lock") = inputs;
        r
    }

    /// Folders to watch: the config file's and every imported app-config's, both as named and
    /// with symlinks resolved (an edit through a symlink changes the target's folder).
    fn folders(&self) -> BTreeSet<PathBuf> {
        let config = self.shared.config.load();
        let files: Vec<PathBuf> =
            std::iter::once(self.path.clone()).chain(config.clients.backstage_app_config.iter().cloned()).collect();
        let mut folders = BTreeSet::new();
        for f in files {
            for p in [Some(f.clone()), std::fs::canonicalize(&f).ok()].into_iter().flatten() {
                folders
                    .insert(p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf());
            }
        }
        folders
    }

    fn inputs_hash(&self) -> u64 {
        let config = self.shared.config.load();
        let mut h = DefaultHasher::new();
        for p in std::iter::once(&self.path).chain(config.clients.backstage_app_config.iter()) {
            std::fs::read(p).ok().hash(&mut h);
        }
        h.finish()
    }

    /// Reloads if the config file or an imported file changed since last time.
    pub(crate) fn reload_if_changed(&self) {
        let now = self.inputs_hash();
        let changed = {
            let mut last = self.last.lock().expect("reload lock");
            std::mem::replace(&mut *last, now) != now
        };
        if changed {
            self.reload("file changed");
        }
    }

    /// Loads, validates and applies the config; refuses it (keeping the running one) on any
    /// problem or on a restart-only change.
    pub(crate) fn reload(&self, why: &str) {
        let metrics = &self.shared.metrics;
        let mut new = match (self.load)() {
            Ok(c) => c,
            Err(e) => {
                for p in &e.problems {
                    tracing::error!(problem = %p, "config reload refused; the running config stays");
                }
                self.refused(e.problems);
                return;
            }
        };
        let old = self.shared.config.load_full();
        // The environment is not in the file: a reload keeps the one the tap started with.
        new.env = old.env.clone();
        let restart = old.restart_only_changes(&new);
        if !restart.is_empty() {
            let problem = format!(
                "{} can only change with a restart; the running config stays (restart the tap to apply it)",
                restart.join(", ")
            );
            tracing::error!("config reload refused: {problem}");
            self.refused(vec![problem]);
            return;
        }
        if new.upstream != old.upstream {
            match crate::http_client::UpstreamClients::new(&new.upstream) {
                Ok(client) => self.shared.client.store(Arc::new(client)),
                Err(e) => {
                    tracing::error!(error = %e, "config reload refused: the upstream client cannot be built");
                    self.refused(vec![e.to_string()]);
                    return;
                }
            }
        }
        if new.log.level != old.log.level && std::env::var_os("RUST_LOG").is_none() {
            if let Some(set) = &self.log_level {
                if let Err(e) = set(&new.log.level) {
                    tracing::warn!(error = %e, "log.level could not be applied");
                }
            }
        }
        self.shared.sessions.set_limits(new.sessions.idle_timeout, new.sessions.max_tracked);
        self.shared.sessions.waits.set_limits(new.sessions.input_wait_timeout, new.sessions.max_input_waits);
        self.shared.sessions.tasks.set_limits(new.sessions.max_tasks, new.sessions.task_max_age);
        self.shared.routes.apply_labels(&new);
        self.shared.auditor.reload(&new);
        self.shared.checklist.reload(&new);
        self.shared.config.store(Arc::new(new));
        metrics.record_config_loaded(true);
        self.shared.auditor.write(AuditEvent::ConfigReloaded);
        tracing::info!(path = %self.path.display(), why, "config reloaded");
    }

    fn refused(&self, problems: Vec<String>) {
        self.shared.metrics.record_config_reload_failed();
        self.shared.auditor.write(AuditEvent::ConfigReloadRefused { problems });
    }
}

/// Starts watching: the folders are watched before this returns (so no change made after it is
/// missed), then a task reloads on changes and, if `sighup`, on SIGHUP, until `stop`.
pub(crate) fn start(reloader: Arc<Reloader>, sighup: bool, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let (tx, rx) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.try_send(());
        }
    });
    match watcher {
        Ok(mut watcher) => {
            let mut watched = BTreeSet::new();
            rewatch(&mut watcher, &mut watched, reloader.folders());
            tokio::spawn(watch_loop(reloader, watcher, watched, rx, sighup, stop))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the config file; reload with SIGHUP");
            tokio::spawn(watch_signal_only(reloader, sighup, stop))
        }
    }
}

fn rewatch(watcher: &mut notify::RecommendedWatcher, watched: &mut BTreeSet<PathBuf>, folders: BTreeSet<PathBuf>) {
    for f in folders.difference(watched) {
        if let Err(e) = watcher.watch(f, RecursiveMode::NonRecursive) {
            tracing::warn!(folder = %f.display(), error = %e, "cannot watch a config folder");
        }
    }
    *watched = folders;
}

async fn watch_loop(
    reloader: Arc<Reloader>,
    mut watcher: notify::RecommendedWatcher,
    mut watched: BTreeSet<PathBuf>,
    mut rx: mpsc::Receiver<()>,
    sighup: bool,
    stop: watch::Receiver<bool>,
) {
    let mut hup = hangup(sighup);
    let stopped = stopped(stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            Some(()) = rx.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                reloader.reload_if_changed();
                rewatch(&mut watcher, &mut watched, reloader.folders());
            }
            _ = recv_hup(&mut hup) => reloader.reload("SIGHUP"),
            _ = &mut stopped => break,
        }
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn watch_signal_only(reloader: Arc<Reloader>, sighup: bool, stop: watch::Receiver<bool>) {
    let mut hup = hangup(sighup);
    let stopped = stopped(stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = recv_hup(&mut hup) => reloader.reload("SIGHUP"),
            _ = &mut stopped => break,
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup(enabled: bool) -> Hangup {
    enabled.then(|| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()).flatten()
}
#[cfg(not(unix))]
fn hangup(_: bool) -> Hangup {
    None
}

#[cfg(unix)]
async fn recv_hup(h: &mut Hangup) {
    match h {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn recv_hup(_: &mut Hangup) {
    std::future::pending().await
}
