//! The one count bursts are decided on, alone or in a cluster: a key's failures over the last
//! window, from fixed windows.

use std::time::Duration;

/// The fixed window (of `window`, at least a second) that time `at_ms` falls in, and how far
/// into it (0 to 1). Alone or in a cluster, a burst is decided on the same count: the failures of
/// the last window, estimated from this fixed window's count and the previous one's, weighted by
/// the part of it still inside (as sliding-window rate limiters do).
pub(crate) fn windows(window: Duration, at_ms: u64) -> (u64, f64) {
    let width = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1000);
    (at_ms / width, (at_ms % width) as f64 / width as f64)
}

/// The failures of the last window, from this fixed window's count and the previous one's.
pub(crate) fn estimate(current: u64, previous: u64, into: f64) -> u64 {
    current + (previous as f64 * (1.0 - into)) as u64
}

/// One key's failures in its current fixed window and the one before.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counter {
    index: u64,
    current: u64,
    previous: u64,
}

impl Counter {
    pub(super) fn new(at_ms: u64, window: Duration) -> Self {
        Self { index: windows(window, at_ms).0, current: 0, previous: 0 }
    }

    /// The failures of the last window at `at_ms` (`estimate`).
    pub(super) fn count(&mut self, at_ms: u64, window: Duration) -> u64 {
        let into = self.roll(at_ms, window);
        estimate(self.current, self.previous, into)
    }

    /// Moves to the fixed window `at_ms` falls in; returns how far into it.
    fn roll(&mut self, at_ms: u64, window: Duration) -> f64 {
        let (index, into) = windows(window, at_ms);
        if index != self.index {
            self.previous = if index == self.index + 1 { self.current } else { 0 };
            self.current = 0;
            self.index = index;
        }
        into
    }

    /// Adds one failure at `at_ms`; returns the failures of the last window.
    pub(super) fn add(&mut self, at_ms: u64, window: Duration) -> u64 {
        let into = self.roll(at_ms, window);
        self.current += 1;
        estimate(self.current, self.previous, into)
    }
}
