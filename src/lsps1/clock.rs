//! Time for the order service, injected so that expiry and timestamps are testable.
//!
//! Everything in `lsps1` that needs "now" takes a [`Clock`]; production code uses
//! [`SystemClock`], tests use [`ManualClock`] and move time forward explicitly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, as whole seconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync {
    fn now_unix_secs(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_secs(&self) -> u64 {
        // A clock set before 1970 is treated as 1970 rather than panicking.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    pub fn new(now_unix_secs: u64) -> Self {
        ManualClock {
            now: AtomicU64::new(now_unix_secs),
        }
    }

    pub fn set(&self, now_unix_secs: u64) {
        self.now.store(now_unix_secs, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: u64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_secs(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now_unix_secs(&self) -> u64 {
        (**self).now_unix_secs()
    }
}

/// Renders Unix seconds as an RFC 3339 UTC timestamp, the LSPS0 datetime format
/// (`2026-11-22T04:22:04Z`). Times past the year 9999 are clamped to the last second of 9999.
pub fn rfc3339(unix_secs: u64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm), exact for the proleptic Gregorian calendar.
    let unix_secs = unix_secs.min(253_402_300_799);
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        year,
        month,
        day,
        secs_of_day / 3_600,
        (secs_of_day % 3_600) / 60,
        secs_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_321_324), "2026-11-22T04:22:04Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn rfc3339_agrees_with_lightning_liquidity_parser() {
        use lightning_liquidity::lsps0::ser::LSPSDateTime;
        use std::str::FromStr;
        for secs in [0u64, 86_399, 1_700_000_000, 1_795_321_324, 4_102_444_800] {
            let parsed = LSPSDateTime::from_str(&rfc3339(secs)).expect("valid RFC 3339");
            assert_eq!(parsed.0.timestamp() as u64, secs);
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(100);
        assert_eq!(clock.now_unix_secs(), 100);
        clock.advance(5);
        assert_eq!(clock.now_unix_secs(), 105);
        clock.set(7);
        assert_eq!(clock.now_unix_secs(), 7);
    }
}
