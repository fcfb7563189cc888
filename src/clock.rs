//! The wall clock, in one place: audit timestamps, token expiry, the store's time windows. Every
//! other reading of `SystemTime::now` is refused by clippy (`clippy.toml`). Durations, windows
//! and timeouts use `tokio::time`, which tests can pause.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, on the wall clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_secs() -> u64 {
    now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms() -> u64 {
    now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
