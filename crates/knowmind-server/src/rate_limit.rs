//! Failed authentications are limited per client address — never by locking the token, since
//! anyone can learn a token id and would otherwise lock its owner out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `max_failures` failed authentications per address (IPv6: per /64) per `window`;
/// after that, requests from the address get 429 until the window ends.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// A limiter allowing `max_failures` per `window`. `max_failures == 0` disables it.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        FailureLimiter {
            max_failures,
            window,
            capacity: 100_000,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` until the address may try again.
    ///
    /// # Errors
    /// The number of seconds to wait, for `Retry-After`.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let key = bucket(ip);
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get(&key) {
            Some(&(start, count)) if count >= self.max_failures => {
                let left = self.window.saturating_sub(start.elapsed());
                if left.is_zero() {
                    Ok(())
                } else {
                    Err(left.as_secs() + 1)
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `ip`.
    pub fn failure(&self, ip: IpAddr) {
        if self.max_failures == 0 {
            return;
        }
        let key = bucket(ip);
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= self.capacity {
            let window = self.window;
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
            if windows.len() >= self.capacity {
                windows.clear(); // a flood from more addresses than we track: start over
            }
        }
        let entry = windows.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// IPv6 clients usually hold a whole /64; count them as one.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_per_address() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
            limiter.failure(a);
        }
        let wait = limiter.check(a).unwrap_err();
        assert!((1..=61).contains(&wait), "{wait}");
        assert!(limiter.check(b).is_ok(), "other addresses are unaffected");
    }

    #[test]
    fn ipv6_counts_per_64_and_the_window_expires() {
        let limiter = FailureLimiter::new(2, Duration::from_millis(50));
        limiter.failure("2001:db8:1:2::1".parse().unwrap());
        limiter.failure("2001:db8:1:2::ffff".parse().unwrap());
        assert!(limiter.check("2001:db8:1:2::9".parse().unwrap()).is_err());
        assert!(limiter.check("2001:db8:1:3::9".parse().unwrap()).is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.check("2001:db8:1:2::9".parse().unwrap()).is_ok());
    }

    #[test]
    fn zero_disables() {
        let limiter = FailureLimiter::new(0, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            limiter.failure(a);
        }
        assert!(limiter.check(a).is_ok());
    }
}
