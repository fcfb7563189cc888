//! The audit trail: JSON lines (schema `mcp-tap.audit.v1`) written by a task behind a bounded
//! queue, so writing never blocks the proxy. Drops and write errors are counted; a file that
//! logrotate moves or removes is reopened.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::event::AuditLine;
use crate::metrics::{AuditLoss, Metrics};

#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<String>,
    metrics: Arc<Metrics>,
}

enum Output {
    Stdout(std::io::Stdout),
    File { path: PathBuf, file: Option<std::io::BufWriter<std::fs::File>>, id: Option<(u64, u64)> },
}

impl AuditSink {
    /// Starts the writer task; it drains and flushes the queue when `stop` turns true.
    pub fn start(
        output: &str,
        capacity: usize,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity);
        let out = if output == "-" {
            Output::Stdout(std::io::stdout())
        } else {
            Output::File { path: PathBuf::from(output), file: None, id: None }
        };
        let task = tokio::spawn(writer(rx, out, metrics.clone(), stop));
        (Self { tx, metrics }, task)
    }

    /// Queues a line; never waits. Returns false when the line was dropped (queue full).
    pub fn write(&self, line: &AuditLine) -> bool {
        let text = serde_json::to_string(line).expect("audit lines serialize");
        match self.tx.try_send(text) {
            Ok(()) => {
                self.metrics.record_audit_event(line.event.name());
                true
            }
            Err(_) => {
                self.metrics.record_audit_write_error(AuditLoss::QueueFull);
                false
            }
        }
    }
}

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.len(), 0)
}

const ROTATION_CHECK: Duration = Duration::from_secs(1);

/// Writes are small buffered appends, done inline; the queue absorbs any stall.
async fn writer(
    mut rx: mpsc::Receiver<String>,
    mut out: Output,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rotation = tokio::time::interval(ROTATION_CHECK);
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else { break };
                batch.push(line);
                while batch.len() < 1024 {
                    match rx.try_recv() {
                        Ok(line) => batch.push(line),
                        Err(_) => break,
                    }
                }
                write_batch(&mut out, &batch, &metrics);
                batch.clear();
            }
            _ = rotation.tick() => check_rotation(&mut out),
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    // Stopping: whatever is queued is still written.
    while let Ok(line) = rx.try_recv() {
        batch.push(line);
    }
    write_batch(&mut out, &batch, &metrics);
}

fn check_rotation(out: &mut Output) {
    if let Output::File { path, file, id } = out {
        let current = std::fs::metadata(&*path).ok().map(|m| file_id(&m));
        if file.is_some() && current != *id {
            // Moved or removed by logrotate: the next write opens the path afresh.
            if let Some(mut f) = file.take() {
                let _ = f.flush();
            }
        }
    }
}

fn write_batch(out: &mut Output, batch: &[String], metrics: &Metrics) {
    if batch.is_empty() {
        return;
    }
    let result = match out {
        Output::Stdout(s) => {
            let mut lock = s.lock();
            batch.iter().try_for_each(|l| writeln!(lock, "{l}")).and_then(|_| lock.flush())
        }
        Output::File { path, file, id } => {
            if file.is_none() {
                match std::fs::OpenOptions::new().create(true).append(true).open(&*path) {
                    Ok(f) => {
                        *id = f.metadata().ok().map(|m| file_id(&m));
                        *file = Some(std::io::BufWriter::new(f));
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "cannot open the audit log; lines are lost until it opens");
                        for _ in batch {
                            metrics.record_audit_write_error(AuditLoss::Io);
                        }
                        return;
                    }
                }
            }
            let f = file.as_mut().expect("opened above");
            batch.iter().try_for_each(|l| writeln!(f, "{l}")).and_then(|_| f.flush())
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "writing the audit log failed");
        metrics.record_audit_write_error(AuditLoss::Io);
        if let Output::File { file, .. } = out {
            *file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::AuditEvent;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mcp-tap-sink-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("audit.jsonl")
    }

    /// Paused time: the rotation check runs on the writer's interval, advanced by the sleeps.
    #[tokio::test(start_paused = true)]
    async fn a_file_moved_by_logrotate_is_reopened() {
        let path = temp_path("rotate");
        let metrics = Arc::new(Metrics::new(vec![1.0]));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (sink, task) = AuditSink::start(path.to_str().unwrap(), 16, metrics, stop_rx);
        assert!(sink.write(&AuditLine::new(AuditEvent::ConfigReloaded)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rotated = path.with_extension("jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        tokio::time::sleep(ROTATION_CHECK + Duration::from_millis(300)).await;
        assert!(sink.write(&AuditLine::new(AuditEvent::TokenSetChanged { added: vec![], removed: vec![] })));
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(old.contains("\"event\":\"config_reloaded\"") && !old.contains("token_set_changed"), "{old}");
        assert!(new.contains("\"event\":\"token_set_changed\"") && new.lines().count() == 1, "{new}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let path = temp_path("full");
        let metrics = Arc::new(Metrics::new(vec![1.0]));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (sink, task) = AuditSink::start(path.to_str().unwrap(), 10, metrics.clone(), stop_rx);
        // On one thread the writer cannot run between these writes: the queue fills.
        let written = (0..100).filter(|_| sink.write(&AuditLine::new(AuditEvent::ConfigReloaded))).count();
        assert_eq!(written, 10);
        let text = metrics.render();
        assert!(text.contains("mcp_tap_audit_write_errors_total{cause=\"queue_full\"} 90"), "{text}");
        assert!(text.contains("mcp_tap_audit_events_total{event=\"config_reloaded\"} 10"));
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 10, "what was queued is written at stop");
    }
}
