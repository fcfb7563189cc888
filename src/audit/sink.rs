//! The audit trail: JSON lines (schema `mcp-tap.audit.v1`) written by a thread of its own behind
//! a bounded queue, so neither a slow disk nor a blocked stdout ever holds an async worker that
//! serves traffic. Drops and write errors are counted; a file that logrotate moves or removes is
//! reopened at the next write. The typed events cross the queue and are serialized on that
//! thread, which hands each line and its fields to the forwards (OTLP logs, syslog), which queue
//! it without waiting.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};

use tokio::sync::watch;

use super::event::AuditLine;
use crate::metrics::{AuditLoss, Metrics};

#[derive(Clone)]
pub(crate) struct AuditSink {
    tx: SyncSender<Msg>,
    metrics: Arc<Metrics>,
}

enum Msg {
    Line(Box<AuditLine>),
    /// Tests: everything queued before it is written; then the sender is told.
    #[cfg(test)]
    Flush(mpsc::Sender<()>),
    /// Tests: the writer says it holds, then stops reading the queue until released.
    #[cfg(test)]
    Hold(mpsc::Sender<()>, Receiver<()>),
}

/// Another place audit events go: called on the writer thread with each JSON line and its
/// fields (both made from the typed event, once for every forward; never parsed back), in
/// order. It must not wait (queue, and count what it cannot queue).
pub(crate) trait Forward: Send {
    fn forward(&mut self, line: &str, fields: &serde_json::Map<String, serde_json::Value>);
}

enum Output {
    /// `audit.output: none`: the events only go to the forwards.
    None,
    Stdout(std::io::Stdout),
    File {
        path: PathBuf,
        file: Option<std::io::BufWriter<std::fs::File>>,
        id: Option<(u64, u64)>,
    },
}

impl AuditSink {
    /// Starts the writer thread; it drains and flushes the queue when `stop` turns true. The
    /// returned task ends when the thread has.
    pub(crate) fn start(
        output: &str,
        capacity: usize,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
        forwards: Vec<Box<dyn Forward>>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let out = match output {
            "-" => Output::Stdout(std::io::stdout()),
            "none" => Output::None,
            path => Output::File { path: PathBuf::from(path), file: None, id: None },
        };
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("mcp-tap-audit".into())
            .spawn(move || writer(&rx, out, forwards, &m, &stop))
            .expect("the audit writer thread starts");
        let task = tokio::task::spawn_blocking(move || {
            let _ = thread.join();
        });
        (Self { tx, metrics }, task)
    }

    /// Queues a line; never waits. Returns false when the line was dropped (queue full).
    pub(crate) fn write(&self, line: AuditLine) -> bool {
        let name = line.event.name();
        match self.tx.try_send(Msg::Line(Box::new(line))) {
            Ok(()) => {
                self.metrics.record_audit_event(name);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.record_audit_write_error(AuditLoss::QueueFull);
                false
            }
        }
    }

    /// Waits until every line queued so far is written (blocking: not for async workers).
    #[cfg(test)]
    pub(crate) fn flush_blocking(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
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

/// How often the writer looks at the stop signal while the queue is empty.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Writes are small buffered appends on this thread; the queue absorbs any stall.
fn writer(
    rx: &Receiver<Msg>,
    mut out: Output,
    mut forwards: Vec<Box<dyn Forward>>,
    metrics: &Metrics,
    stop: &watch::Receiver<bool>,
) {
    let mut batch = Vec::new();
    loop {
        let first = match rx.recv_timeout(STOP_CHECK) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) if *stop.borrow() => break,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        #[cfg_attr(not(test), allow(unused_mut))]
        let mut flushed: Vec<mpsc::Sender<()>> = Vec::new();
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok()).take(1023)) {
            match msg {
                Msg::Line(line) => batch.push(serialized(line)),
                #[cfg(test)]
                Msg::Flush(done) => flushed.push(done),
                #[cfg(test)]
                Msg::Hold(held, release) => {
                    let _ = held.send(());
                    let _ = release.recv();
                }
            }
        }
        check_rotation(&mut out);
        write_batch(&mut out, &batch, metrics);
        forward(&mut forwards, &batch);
        batch.clear();
        for done in flushed {
            let _ = done.send(());
        }
    }
    // Stopping: whatever is queued is still written.
    while let Ok(msg) = rx.try_recv() {
        #[cfg_attr(not(test), allow(irrefutable_let_patterns))]
        if let Msg::Line(line) = msg {
            batch.push(serialized(line));
        }
    }
    write_batch(&mut out, &batch, metrics);
    forward(&mut forwards, &batch);
}

fn forward(forwards: &mut [Box<dyn Forward>], batch: &[(Box<AuditLine>, String)]) {
    if forwards.is_empty() {
        return;
    }
    for (line, text) in batch {
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(line) else { continue };
        for f in forwards.iter_mut() {
            f.forward(text, &fields);
        }
    }
}

/// A typed event and its JSON line.
fn serialized(line: Box<AuditLine>) -> (Box<AuditLine>, String) {
    let text = serde_json::to_string(&line).expect("audit lines serialize");
    (line, text)
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

fn write_batch(out: &mut Output, batch: &[(Box<AuditLine>, String)], metrics: &Metrics) {
    if batch.is_empty() {
        return;
    }
    let result = match out {
        Output::None => Ok(()),
        Output::Stdout(s) => {
            let mut lock = s.lock();
            batch.iter().try_for_each(|(_, l)| writeln!(lock, "{l}")).and_then(|_| lock.flush())
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
            batch.iter().try_for_each(|(_, l)| writeln!(f, "{l}")).and_then(|_| f.flush())
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

    #[tokio::test]
    async fn a_file_moved_by_logrotate_is_reopened() {
        let path = temp_path("rotate");
        let metrics = Arc::new(Metrics::new(vec![1.0]));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (sink, task) = AuditSink::start(path.to_str().unwrap(), 16, metrics, stop_rx, Vec::new());
        assert!(sink.write(AuditLine::new(AuditEvent::ConfigReloaded)));
        sink.flush_blocking();
        let rotated = path.with_extension("jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        assert!(sink.write(AuditLine::new(AuditEvent::TokenSetChanged { added: vec![], removed: vec![] })));
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
        let (sink, task) = AuditSink::start(path.to_str().unwrap(), 10, metrics.clone(), stop_rx, Vec::new());
        // The writer is held (a stalled disk, a blocked stdout): the queue fills, nothing waits.
        let (held_tx, held) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        sink.tx.send(Msg::Hold(held_tx, release_rx)).unwrap();
        held.recv().unwrap();
        let written = (0..100).filter(|_| sink.write(AuditLine::new(AuditEvent::ConfigReloaded))).count();
        assert_eq!(written, 10);
        let text = metrics.render();
        assert!(text.contains("mcp_tap_audit_write_errors_total{cause=\"queue_full\"} 90"), "{text}");
        assert!(text.contains("mcp_tap_audit_events_total{event=\"config_reloaded\"} 10"));
        release.send(()).unwrap();
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 10, "what was queued is written at stop");
    }
}
