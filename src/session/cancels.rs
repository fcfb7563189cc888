//! Requests a client cancelled with `notifications/cancelled` (the handshake generation: the
//! client says which request it gives up, and may also close its stream). The server may end
//! the request's stream before the tap sees the client leave; a request noted here is then
//! `cancelled`, not `stream_aborted`. Kept by a hash of route, session and request id, for a
//! minute, at most `sessions.max_tracked` at once (beyond it counted as overflow `cancellation`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::{Metrics, OverflowLabel};

/// How long a cancellation waits for its request's end.
const REMEMBERED: Duration = Duration::from_secs(60);

pub(crate) struct Cancels {
    noted: Mutex<HashMap<u64, Instant>>,
    metrics: Arc<Metrics>,
    max: AtomicUsize,
}

impl Cancels {
    pub(crate) fn new(metrics: Arc<Metrics>, max: usize) -> Self {
        Self { noted: Mutex::default(), metrics, max: AtomicUsize::new(max) }
    }

    pub(crate) fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// The client cancelled the request `key` names.
    pub(crate) fn note(&self, key: u64, now: Instant) {
        let mut noted = self.noted.lock().expect("cancels lock");
        if noted.len() >= self.max.load(Ordering::Relaxed) {
            noted.retain(|_, at| now.saturating_duration_since(*at) < REMEMBERED);
        }
        if noted.len() >= self.max.load(Ordering::Relaxed) {
            drop(noted);
            self.metrics.record_label_overflow(OverflowLabel::Cancellation);
            return;
        }
        noted.insert(key, now);
    }

    /// Whether the client cancelled the request `key` names (forgotten once asked).
    pub(crate) fn take(&self, key: u64, now: Instant) -> bool {
        let mut noted = self.noted.lock().expect("cancels lock");
        if noted.is_empty() {
            return false;
        }
        noted.remove(&key).is_some_and(|at| now.saturating_duration_since(at) < REMEMBERED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_cancellation_is_taken_once_within_a_minute_and_bounded() {
        let m = Arc::new(Metrics::new(vec![1.0]));
        let c = Cancels::new(m.clone(), 2);
        c.note(1, Instant::now());
        assert!(c.take(1, Instant::now()));
        assert!(!c.take(1, Instant::now()), "once");
        c.note(2, Instant::now());
        tokio::time::advance(REMEMBERED).await;
        assert!(!c.take(2, Instant::now()), "too old: the request ended long ago");
        for key in 10..20 {
            c.note(key, Instant::now());
        }
        assert!(c.take(10, Instant::now()) && c.take(11, Instant::now()) && !c.take(12, Instant::now()));
        assert!(m.render().contains("mcp_tap_label_overflow_total{label=\"cancellation\"} 8"));
    }
}
