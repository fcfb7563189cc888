//! Wiring: build the metrics, the auditor and the shared state, run the proxy and admin
//! listeners and the background ticks, and stop them all when the shutdown future resolves.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::audit::identity::Fingerprinter;
use crate::audit::sink::AuditSink;
use crate::audit::Auditor;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{self, Shared};

/// Route labels known before any traffic: their auth-failure series start at zero.
fn known_routes(config: &Config) -> Vec<&str> {
    let mut labels: Vec<&str> = Vec::new();
    if config.routes.backstage_actions {
        labels.push("default");
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
    // The audit trail stops last, after the final burst and session events are queued.
    let (sink_stop_tx, sink_stop_rx) = watch::channel(false);
    let (sink, sink_task) =
        AuditSink::start(&config.audit.output, config.audit.queue_capacity, metrics.clone(), sink_stop_rx);
    let export = crate::export::start(&config.otlp, metrics.clone())?;
    let fingerprinter = Fingerprinter::from_config(&config.audit)?;
    let auditor = Arc::new(Auditor::new(&config, metrics.clone(), sink, fingerprinter, &known_routes(&config)));
    let resend_interval = config.alertmanager.resend_interval;
    let shared = Arc::new(Shared::new(config, metrics, auditor.clone())?);
    if let Some(tracer) = export.as_ref().and_then(|e| e.tracer()) {
        let _ = shared.tracer.set(tracer);
    }
    tracing::info!(
        listen = %proxy_listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        upstream = %shared.upstream,
        "mcp-tap is proxying MCP traffic; metrics on http://{}/metrics",
        admin_listener.local_addr()?
    );
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let sweeper = {
        let shared = shared.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                let interval = shared.sessions.sweep_interval();
                tokio::select! {
                    _ = tokio::time::sleep(interval) => { shared.sessions.sweep(); }
                    _ = rx.wait_for(|s| *s) => break,
                }
            }
        })
    };
    // Bursts end and summaries are written on a one-second tick; active alerts are re-sent.
    let ticker = {
        let auditor = auditor.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut resend = tokio::time::interval(resend_interval);
            resend.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => auditor.tick(),
                    _ = resend.tick() => auditor.resend_alerts(),
                    _ = rx.wait_for(|s| *s) => break,
                }
            }
        })
    };
    let reloader = options.reload.map(|(path, load)| {
        let r = Arc::new(crate::reload::Reloader::new(path, load, shared.clone(), options.log_level));
        crate::reload::start(r, options.sighup, stop_rx.clone())
    });
    let canary = shared.config.load().canary.enabled.then(|| tokio::spawn(canary(shared.clone(), stop_rx.clone())));
    let admin = tokio::spawn(crate::admin::serve(admin_listener, shared.clone(), stopped(stop_rx.clone())));
    let proxy = tokio::spawn(proxy::serve(proxy_listener, shared.clone(), stopped(stop_rx.clone())));

    shutdown.await;
    tracing::info!("shutting down: no new connections; finishing in-flight exchanges");
    let _ = stop_tx.send(true);
    let _ = proxy.await;
    shared.sessions.shutdown();
    let _ = ticker.await;
    auditor.drain();
    if let Some(export) = export {
        // The SDK's shutdown blocks until the last export is done (bounded by its timeout).
        let _ = tokio::task::spawn_blocking(move || export.shutdown()).await;
    }
    let _ = sink_stop_tx.send(true);
    let _ = sink_task.await;
    let _ = sweeper.await;
    if let Some(r) = reloader {
        let _ = r.await;
    }
    if let Some(c) = canary {
        let _ = c.await;
    }
    let _ = admin.await;
    tracing::info!("stopped");
    Ok(())
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
            token: std::env::var(&c.token_env).ok(),
            expect_tools: c.expect_tools.clone(),
            timeout: c.timeout,
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
