//! Failed authentications are limited per source — never by locking the token, since anyone can
//! learn a token id and would otherwise lock its owner out.
//!
//! Only work that costs counts: a database lookup for an id the cache does not know, and scrypt
//! for a wrong secret. A valid token the cache already knows is always served, even from a
//! source over its limit, so a shared NAT address that someone floods with garbage keeps working
//! for everyone holding a good token; and garbage that fails the checksum costs nanoseconds and is
//! not counted at all. (Kept by hand: it is a failure counter with a window, not a request-rate
//! limiter such as `governor` provides.)

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use token_core::{Clock, TokenId};

/// Where failures are counted: the client's address (IPv6 per /64); a client of a resource server
/// as that server reported it; or the resource server itself, by the token it introspects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A client address, as the server saw it.
    Address(IpAddr),
    /// A client of a resource server, by the address that server reported (if any).
    Reported {
        /// The resource server's introspect token.
        reporter: TokenId,
        /// The client's address, as reported.
        client: Option<IpAddr>,
    },
    /// A resource server as a whole: the ceiling over all its clients.
    Reporter(TokenId),
    /// A dashboard account (a digest of workspace name and email), for failed sign-ins.
    Account([u8; 16]),
}

impl Source {
    /// IPv6 clients usually hold a whole /64; count them as one.
    fn bucket(self) -> Source {
        match self {
            Source::Address(ip) => Source::Address(bucket(ip)),
            Source::Reported { reporter, client } => Source::Reported {
                reporter,
                client: client.map(bucket),
            },
            other => other,
        }
    }
}

fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// At most `max_failures` failures per source per `window`; after that, work for the source is
/// refused until the window ends.
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    clock: Arc<dyn Clock>,
    windows: Mutex<HashMap<Source, (Duration, u32)>>,
}

impl std::fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("max_failures", &self.max_failures)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl FailureLimiter {
    /// A limiter allowing `max_failures` per `window`, timed by `clock`'s monotonic reading.
    /// `max_failures == 0` disables it.
    pub fn new(max_failures: u32, window: Duration, clock: Arc<dyn Clock>) -> Self {
        FailureLimiter {
            max_failures,
            window,
            capacity: 100_000,
            clock,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` until `source` may try again.
    ///
    /// # Errors
    /// The number of seconds to wait, for `Retry-After`.
    pub fn check(&self, source: Source) -> Result<(), u64> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let now = self.clock.monotonic();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get(&source.bucket()) {
            Some(&(start, count)) if count >= self.max_failures => {
                let left = self.window.saturating_sub(now.saturating_sub(start));
                if left.is_zero() {
                    Ok(())
                } else {
                    Err(left.as_secs() + 1)
                }
            }
            _ => Ok(()),
        }
    }

    /// Takes one attempt from `source`'s allowance before the work, in one step, so that a
    /// burst of parallel attempts cannot all pass a check made before any of them fails. Give
    /// the attempt back with [`FailureLimiter::forgive`] when it succeeds.
    ///
    /// # Errors
    /// The number of seconds to wait, for `Retry-After`, when the allowance is spent.
    pub fn attempt(&self, source: Source) -> Result<(), u64> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let now = self.clock.monotonic();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let entry = self.current(&mut windows, source, now);
        if entry.1 >= self.max_failures {
            let left = self.window.saturating_sub(now.saturating_sub(entry.0));
            return Err(left.as_secs() + 1);
        }
        entry.1 += 1;
        Ok(())
    }

    /// Gives back an attempt taken with [`FailureLimiter::attempt`] that succeeded.
    pub fn forgive(&self, source: Source) {
        if self.max_failures == 0 {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = windows.get_mut(&source.bucket()) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }

    /// Counts a failure from `source`.
    pub fn failure(&self, source: Source) {
        if self.max_failures == 0 {
            return;
        }
        let now = self.clock.monotonic();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        self.current(&mut windows, source, now).1 += 1;
    }

    /// `source`'s window (started afresh if it ended), making room in the table first.
    fn current<'w>(
        &self,
        windows: &'w mut HashMap<Source, (Duration, u32)>,
        source: Source,
        now: Duration,
    ) -> &'w mut (Duration, u32) {
        if windows.len() >= self.capacity {
            let window = self.window;
            windows.retain(|_, (start, _)| now.saturating_sub(*start) < window);
            if windows.len() >= self.capacity {
                windows.clear(); // a flood from more sources than we track: start over
            }
        }
        let entry = windows.entry(source.bucket()).or_insert((now, 0));
        if now.saturating_sub(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use token_core::ManualClock;

    use super::*;

    fn limiter(max: u32, window: Duration) -> (FailureLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-11-29 12:00 UTC),
        ));
        (FailureLimiter::new(max, window, clock.clone()), clock)
    }

    fn ip(text: &str) -> Source {
        Source::Address(text.parse().unwrap())
    }

    #[test]
    fn blocks_after_the_limit_and_per_source() {
        let (limiter, _) = limiter(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.check(ip("192.0.2.1")).is_ok());
            limiter.failure(ip("192.0.2.1"));
        }
        assert_eq!(limiter.check(ip("192.0.2.1")), Err(61));
        assert!(
            limiter.check(ip("192.0.2.2")).is_ok(),
            "other addresses are unaffected"
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_the_window_expires() {
        let (limiter, clock) = limiter(2, Duration::from_millis(50));
        limiter.failure(ip("2001:db8:1:2::1"));
        limiter.failure(ip("2001:db8:1:2::ffff"));
        assert!(limiter.check(ip("2001:db8:1:2::9")).is_err());
        assert!(limiter.check(ip("2001:db8:1:3::9")).is_ok());
        clock.advance(time::Duration::milliseconds(60));
        assert!(limiter.check(ip("2001:db8:1:2::9")).is_ok());
    }

    #[test]
    fn a_wall_clock_step_does_not_end_the_window() {
        let (limiter, clock) = limiter(1, Duration::from_secs(60));
        limiter.failure(ip("192.0.2.1"));
        clock.step_wall_clock(time::Duration::hours(1));
        assert!(limiter.check(ip("192.0.2.1")).is_err());
    }

    #[test]
    fn reporters_and_addresses_are_separate_budgets() {
        let (limiter, _) = limiter(1, Duration::from_secs(60));
        let id: TokenId = "0123456789abcdef".parse().unwrap();
        limiter.failure(Source::Reporter(id));
        assert!(limiter.check(Source::Reporter(id)).is_err());
        assert!(limiter.check(ip("127.0.0.1")).is_ok());
    }

    #[test]
    fn zero_disables() {
        let (limiter, _) = limiter(0, Duration::from_secs(60));
        for _ in 0..100 {
            limiter.failure(ip("192.0.2.1"));
        }
        assert!(limiter.check(ip("192.0.2.1")).is_ok());
    }
}
