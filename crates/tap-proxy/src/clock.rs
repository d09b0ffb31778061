//! Wall-clock helpers: one place that reads the system time.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// Milliseconds elapsed since `since`, with microsecond precision.
pub fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_micros() as f64 / 1000.0
}
