//! Proxy workers, as nginx has worker processes: one thread per CPU, each with its own
//! single-threaded event loop and upstream pool. The accept loop hands every client connection
//! to the worker serving the fewest, and the connection stays there: its exchanges, their
//! upstream connections and their bodies never cross threads, so no request pays for work
//! stealing or for waking another core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::Shared;

/// A client connection on its way to a worker.
pub(crate) struct Accepted {
    pub stream: std::net::TcpStream,
    pub peer: std::net::SocketAddr,
    pub permit: OwnedSemaphorePermit,
}

struct Worker {
    inbox: mpsc::UnboundedSender<Accepted>,
    /// Client connections this worker serves now.
    load: Arc<AtomicUsize>,
}

pub(crate) struct Workers {
    workers: Vec<Worker>,
    finished: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `count` worker threads. A worker whose thread cannot start runs on the caller's
    /// runtime instead, so the tap serves in any case.
    pub(crate) fn start(shared: &Arc<Shared>, count: usize) -> Self {
        let (mut workers, mut finished) = (Vec::with_capacity(count), Vec::with_capacity(count));
        for i in 0..count.max(1) {
            let (worker, finish) = match spawn_thread(i, shared.clone()) {
                Ok(started) => started,
                Err(e) => {
                    tracing::error!(error = %e, worker = i, "cannot start a proxy worker thread; serving on the main runtime");
                    let (inbox, rx) = mpsc::unbounded_channel();
                    let load = Arc::new(AtomicUsize::new(0));
                    let (done, finish) = oneshot::channel::<()>();
                    let (shared, l) = (shared.clone(), load.clone());
                    tokio::spawn(async move {
                        super::serve_connections(rx, shared, l).await;
                        let _ = done.send(());
                    });
                    (Worker { inbox, load }, finish)
                }
            };
            workers.push(worker);
            finished.push(finish);
        }
        Self { workers, finished }
    }

    /// Hands a connection to the least loaded worker (another one if that one has stopped).
    pub(crate) fn dispatch(&self, mut accepted: Accepted) {
        let least = self.workers.iter().min_by_key(|w| w.load.load(Ordering::Relaxed));
        for worker in least.into_iter().chain(&self.workers) {
            worker.load.fetch_add(1, Ordering::Relaxed);
            match worker.inbox.send(accepted) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    worker.load.fetch_sub(1, Ordering::Relaxed);
                    accepted = back;
                }
            }
        }
        tracing::error!(peer = %accepted.peer, "no proxy worker is running; connection dropped");
    }

    /// Closes the workers' inboxes and waits until each has finished its connections.
    pub(crate) async fn finish(self) {
        drop(self.workers);
        for finish in self.finished {
            let _ = finish.await;
        }
    }
}

fn spawn_thread(i: usize, shared: Arc<Shared>) -> std::io::Result<(Worker, oneshot::Receiver<()>)> {
    let (inbox, rx) = mpsc::unbounded_channel();
    let load = Arc::new(AtomicUsize::new(0));
    let (done, finish) = oneshot::channel::<()>();
    let l = load.clone();
    std::thread::Builder::new().name(format!("mcp-tap-proxy-{i}")).spawn(move || {
        // Told when the thread ends, after its runtime and connections are gone.
        let _done = done;
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(super::serve_connections(rx, shared, l)),
            Err(e) => tracing::error!(error = %e, worker = i, "a proxy worker cannot start its runtime"),
        }
    })?;
    Ok((Worker { inbox, load }, finish))
}
