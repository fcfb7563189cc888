//! Wiring: build the metrics, the auditor and the shared state, run the proxy and admin
//! listeners and the background ticks, and stop them all when the shutdown future resolves.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::audit::sink::{AuditSink, Forward};
use crate::audit::{Auditor, Pages};
use crate::config::Config;
use crate::identity::Fingerprinter;
use crate::metrics::Metrics;
use crate::proxy::{self, Shared};

/// Route labels known before any traffic: their auth-failure series start at zero.
fn known_routes(config: &Config) -> Vec<&str> {
    let mut labels: Vec<&str> = Vec::new();
    if config.routes.backstage_actions {
        // `_OTHER` collects unknown split-server keys; its series exist before the first one.
        labels.extend(["default", crate::mcp::names::OTHER]);
        labels.extend(config.routes.server_keys.iter().map(String::as_str));
    }
    labels.extend(config.routes.extra.iter().map(|r| r.label.as_str()));
    labels
}

/// Optional parts of a run: hot reload of a config file, SIGHUP, a log-level handle.
#[derive(Default)]
pub struct Options {
    /// The config file to watch and how to load it (with the command line's overrides).
    pub reload: Option<(std::path::PathBuf, crate::reload::Loader)>,
    /// Reload on SIGHUP as well (the binary; tests leave it off).
    pub sighup: bool,
    pub log_level: Option<crate::reload::LogLevelHandle>,
    /// Where the status snapshots go (the demo reads its summary from them); made when absent.
    pub status: Option<Arc<crate::status::History>>,
}

/// Runs the tap on already-bound listeners until `shutdown` resolves, then ends sessions and
/// bursts and flushes the audit trail.
pub async fn run(
    config: Config,
    proxy_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, proxy_listener, admin_listener, shutdown, Options::default()).await
}

/// `run` with hot reload and the other options.
pub async fn run_with(
    config: Config,
    proxy_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: Options,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(config.sessions.duration_buckets.clone()));
    metrics.record_config_loaded(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (outputs, sink) = Outputs::start(&config, &metrics)?;
    let parts = parts(&config, &metrics, sink)?;
    let auditor = parts.auditor.clone();
    let resend_interval = config.alertmanager.resend_interval;
    let access = Arc::new(crate::admin::Access::new(&config, metrics.clone())?);
    let shared = Arc::new(Shared::new(config, metrics, parts)?);
    if let Some(tracer) = outputs.export.as_ref().and_then(super::export::Export::tracer) {
        let _ = shared.tracer.set(tracer);
    }
    let (listen, admin_addr) = (proxy_listener.local_addr()?, admin_listener.local_addr()?);
    tracing::info!(%listen, admin = %admin_addr, upstream = %shared.upstream,
        "mcp-tap is proxying MCP traffic; metrics on http://{admin_addr}/metrics");
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let history = options.status.clone().unwrap_or_default();
    let (auditing, others) = spawn_background(&shared, resend_interval, history.clone(), options, &stop_rx);
    let admin =
        tokio::spawn(crate::admin::serve(admin_listener, shared.clone(), history, access, stopped(stop_rx.clone())));
    let proxy = tokio::spawn(proxy::serve(proxy_listener, shared.clone(), stop_rx.clone()));
    let cluster = spawn_cluster(&shared, &stop_rx);

    shutdown.await;
    drain(&shared).await;
    tracing::info!("shutting down: no new connections; finishing in-flight exchanges");
    let _ = stop_tx.send(true);
    let _ = proxy.await;
    if let Some(cluster) = cluster {
        let _ = cluster.await;
    }
    shared.sessions.shutdown();
    // A refusal waits at most EXPLAIN_WAIT for the keys; a second more lets its line be written.
    auditor.settle(proxy::jwks::EXPLAIN_WAIT + Duration::from_secs(1)).await;
    for task in auditing {
        let _ = task.await;
    }
    auditor.drain();
    outputs.stop().await;
    for task in others.into_iter().chain([admin]) {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

type Task = tokio::task::JoinHandle<()>;

/// Before it stops, the tap keeps serving for `shutdown_drain_delay` while `/readyz` fails and
/// every HTTP/1 answer closes its connection: Kubernetes takes the pod out of its endpoints,
/// load balancers stop sending, and no keep-alive connection is closed under a request.
async fn drain(shared: &Shared) {
    let delay = shared.config.load().shutdown_drain_delay;
    if delay.is_zero() {
        return;
    }
    shared.start_draining();
    tracing::info!(
        ?delay,
        "draining before the stop: /readyz fails, answers close their connections, HTTP/2 gets GOAWAY"
    );
    tokio::time::sleep(delay).await;
}

/// The parts every other one shares: the audit (with its pager), the checklist, the sessions.
fn parts(config: &Config, metrics: &Arc<Metrics>, sink: AuditSink) -> anyhow::Result<proxy::Parts> {
    let fingerprinter = Fingerprinter::from_config(&config.audit, &config.env)?;
    let pager = config.alertmanager.url.as_ref().map(|_| {
        Box::new(crate::export::alertmanager::Pager::new(&config.alertmanager, metrics.clone())) as Box<dyn Pages>
    });
    let routes = known_routes(config);
    let auditor = Arc::new(Auditor::new(config, metrics.clone(), sink, fingerprinter, pager, &routes));
    let checklist = Arc::new(crate::checklist::Checklist::open(config, metrics.clone(), auditor.clone()));
    let sessions = Arc::new(crate::session::SessionTracker::new(
        metrics.clone(),
        config.sessions.idle_timeout,
        config.sessions.max_tracked,
    ));
    sessions.waits.set_limits(config.sessions.input_wait_timeout, config.sessions.max_input_waits);
    sessions.tasks.set_limits(config.sessions.max_tasks, config.sessions.task_max_age);
    Ok(proxy::Parts { auditor, checklist, sessions })
}

/// Where audit events and telemetry go: the JSON lines, OTLP (metrics, traces, audit events as
/// logs) and syslog. The audit trail stops last, after the final burst and session events.
struct Outputs {
    export: Option<crate::export::Export>,
    stop: watch::Sender<bool>,
    sink: Task,
    syslog: Option<crate::export::syslog::Sending>,
}

/// How long a stopping tap gives the syslog receiver for what is still queued.
const SYSLOG_DRAIN: Duration = Duration::from_secs(3);

impl Outputs {
    fn start(config: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<(Self, AuditSink)> {
        let mut export = crate::export::start(&config.otlp, &config.env, metrics.clone())?;
        let mut forwards: Vec<Box<dyn Forward>> =
            export.as_mut().and_then(crate::export::Export::take_audit_logs).into_iter().collect();
        let mut syslog = None;
        if let Some(url) = &config.audit.syslog {
            let target = crate::config::SyslogTarget::parse(url).map_err(anyhow::Error::msg)?;
            let (a, m) = (&config.audit, metrics.clone());
            let (output, task) =
                crate::export::syslog::start(target, a.syslog_ca_file.as_deref(), a.syslog_queue_size, m)?;
            forwards.push(Box::new(output));
            syslog = Some(task);
        }
        let (stop, stop_rx) = watch::channel(false);
        let audit = &config.audit;
        let (sink, task) = AuditSink::start(&audit.output, audit.queue_capacity, metrics.clone(), stop_rx, forwards);
        Ok((Self { export, stop, sink: task, syslog }, sink))
    }

    /// Drains the audit trail into its outputs, then flushes them.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.sink.await;
        if let Some(sending) = self.syslog {
            sending.finish(SYSLOG_DRAIN).await;
        }
        if let Some(export) = self.export {
            // The SDK's shutdown blocks until the last export is done (bounded by its timeout).
            let _ = tokio::task::spawn_blocking(move || export.shutdown()).await;
        }
    }
}

/// The background tasks: the ticks that write audit lines (to end before the audit trail
/// drains), and the rest (session sweep, hot reload, canary, status sampler).
fn spawn_background(
    shared: &Arc<Shared>,
    resend_interval: Duration,
    history: Arc<crate::status::History>,
    options: Options,
    stop: &watch::Receiver<bool>,
) -> ([Task; 2], Vec<Task>) {
    let auditing = [
        tokio::spawn(tick_audit(shared.auditor.clone(), resend_interval, stop.clone())),
        tokio::spawn(shared.checklist.clone().run(stop.clone())),
    ];
    let mut others = vec![
        tokio::spawn(sweep_sessions(shared.clone(), stop.clone())),
        tokio::spawn(sample_status(shared.clone(), history, stop.clone())),
        tokio::spawn(proxy::jwks::run(shared.clone(), stop.clone())),
    ];
    if let Some((path, load)) = options.reload {
        let r = Arc::new(crate::reload::Reloader::new(path, load, shared.clone(), options.log_level));
        others.push(crate::reload::start(r, options.sighup, stop.clone()));
    }
    if shared.config.load().canary.enabled {
        others.push(tokio::spawn(canary(shared.clone(), stop.clone())));
    }
    (auditing, others)
}

/// Snapshots the metrics for the status page's rates and percentiles.
async fn sample_status(shared: Arc<Shared>, history: Arc<crate::status::History>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(crate::status::SAMPLE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let families = shared.metrics.registry().gather();
                history.record(crate::status::Snapshot::from_families(&families, tokio::time::Instant::now()));
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// Ends idle sessions, about ten times per idle timeout.
async fn sweep_sessions(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let interval = shared.sessions.sweep_interval();
        tokio::select! {
            _ = tokio::time::sleep(interval) => { shared.sessions.sweep(); }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// Bursts end and summaries are written on a one-second tick; active alerts are re-sent.
async fn tick_audit(auditor: Arc<Auditor>, resend_interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut resend = tokio::time::interval(resend_interval);
    resend.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => auditor.tick(),
            _ = resend.tick() => auditor.resend_alerts(),
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// Cluster mode: the exchange with the shared store, when one is configured.
fn spawn_cluster(shared: &Arc<Shared>, stop: &watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    shared.auditor.shared.is_some().then(|| {
        let source = shared.clone();
        let config: crate::cluster::ConfigSource = Arc::new(move || source.config.load_full());
        let (auditor, metrics, checklist) = (shared.auditor.clone(), shared.metrics.clone(), shared.checklist.clone());
        let (from, to, keys, learn) = (shared.clone(), shared.clone(), shared.clone(), shared.clone());
        let names = crate::cluster::RouteNames {
            local: Box::new(move || from.routes.tool_names()),
            learn: Box::new(move |route, names| to.routes.learn_tools(route, names)),
            keys: Box::new(move || keys.routes.learned_keys()),
            learn_keys: Box::new(move |k| learn.routes.learn_keys(k, &learn.config.load())),
        };
        let sessions = shared.sessions.clone();
        tokio::spawn(crate::cluster::run(auditor, metrics, checklist, sessions, names, config, stop.clone()))
    })
}

/// The in-daemon canary: the `probe` checks against the upstream, every `canary.interval`.
async fn canary(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let config = shared.config.load_full();
        let c = &config.canary;
        let spec = crate::probe::ProbeSpec {
            base_url: config.upstream.url.clone(),
            mcp_path: c.mcp_path.clone(),
            readiness_path: config.upstream.readiness_path.clone(),
            token: config.env.var(&c.token_env),
            expect_tools: c.expect_tools.clone(),
            timeout: c.timeout,
            ca_file: config.upstream.ca_file.clone(),
        };
        for r in crate::probe::run(&spec).await {
            if !r.ok {
                tracing::warn!(check = r.check, "canary check failed: {}", r.detail);
            }
            shared.metrics.record_probe(r.check, r.ok, r.duration_seconds);
        }
        tokio::select! {
            _ = tokio::time::sleep(c.interval) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}
