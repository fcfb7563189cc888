//! Wiring: build the metrics and shared state, run the proxy and admin listeners and the session
//! sweeper, and stop them all when the shutdown future resolves.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{self, Shared};

/// Runs the tap on already-bound listeners until `shutdown` resolves, then ends sessions.
pub async fn run(
    config: Config,
    proxy_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(config.sessions.duration_buckets.clone()));
    let shared = Arc::new(Shared::new(config, metrics)?);
    tracing::info!(
        listen = %proxy_listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        upstream = %shared.upstream,
        "mcp-tap is proxying MCP traffic; metrics on http://{}/metrics",
        admin_listener.local_addr()?
    );
    let (stop_tx, stop_rx) = watch::channel(false);
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
    let admin = tokio::spawn(crate::admin::serve(admin_listener, shared.clone(), stopped(stop_rx.clone())));
    let proxy = tokio::spawn(proxy::serve(proxy_listener, shared.clone(), stopped(stop_rx.clone())));

    shutdown.await;
    tracing::info!("shutting down: no new connections; finishing in-flight exchanges");
    let _ = stop_tx.send(true);
    let _ = proxy.await;
    shared.sessions.shutdown();
    let _ = sweeper.await;
    let _ = admin.await;
    tracing::info!("stopped");
    Ok(())
}
