//! Where "now" comes from. Libraries take a [`Clock`] (or `now` itself) and never read the real
//! clock: the one implementation that does is `token_store::SystemClock`, the store's default
//! (and the CLI has its own), so every time-dependent rule can be tested at any instant.
//!
//! A clock answers two questions: the wall-clock time ([`Clock::now`], for expiry and for what is
//! stored) and a monotonic reading ([`Clock::monotonic`], for how long ago something happened:
//! cache freshness, rate-limit windows). Trust that lasts "a second" is measured on the
//! monotonic clock, so setting the wall clock back cannot extend it.

use std::time::Duration;

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// Time elapsed since an arbitrary fixed start, on a clock that never goes back and is not
    /// moved by changes to the wall clock.
    fn monotonic(&self) -> Duration;
}

/// A clock that only moves when told to. For tests.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<(OffsetDateTime, Duration)>);

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        ManualClock(std::sync::Mutex::new((at, Duration::ZERO)))
    }

    /// Lets time pass: both the wall clock and the monotonic clock move forward by `by` (a
    /// negative `by` moves the wall clock back and leaves the monotonic clock where it is).
    pub fn advance(&self, by: time::Duration) {
        let mut clocks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        clocks.0 += by;
        if let Ok(forward) = Duration::try_from(by) {
            clocks.1 += forward;
        }
    }

    /// Sets the wall clock by `by` without time passing, as an operator or NTP step would.
    pub fn step_wall_clock(&self, by: time::Duration) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0 += by;
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn monotonic(&self) -> Duration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}
