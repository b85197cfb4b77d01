//! The head node's EC2 calls under a budget of their own: a token bucket.
//!
//! EC2 throttles CreateTags and DeleteTags per account and region, each with a bucket of
//! 100 calls refilled 10 a second, shared with every other tool of the account. The
//! convergence keeps to a smaller bucket of its own (by default 5 calls a second, bursts
//! of 20: `[tagging]` in the settings), so it never empties the account's. When EC2 still
//! answers `RequestLimitExceeded` (someone else is using the account's budget), the rate
//! is halved and the burst spent, down to a floor; each call that then goes through wins
//! back a twentieth of the configured rate.

use std::time::{Duration, Instant};

/// The slowest the bucket ever goes after throttling: one call every five seconds.
const MIN_RATE: f64 = 0.2;

/// Time, for the bucket's user: real in production, simulated in tests.
pub(crate) trait Clock {
    fn now(&self) -> Instant;
    fn sleep(&mut self, how_long: Duration);
}

/// The machine's clock.
pub(crate) struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&mut self, how_long: Duration) {
        if !how_long.is_zero() {
            std::thread::sleep(how_long);
        }
    }
}

/// A token bucket: `burst` calls at once, refilled at `rate` a second, slowed by
/// throttling.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    configured: f64,
    rate: f64,
    burst: f64,
    /// May go below 0: tokens already promised to callers that are waiting for them.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { MIN_RATE };
        let burst = f64::from(burst.max(1));
        TokenBucket {
            configured: rate,
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes one token and says how long the caller must wait before its call.
    pub(crate) fn take(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// EC2 throttled a call: halve the rate (not below one call in 5 s) and spend what is
    /// left of the burst, so the next calls are spaced at the slower rate.
    pub(crate) fn throttled(&mut self, now: Instant) {
        self.refill(now);
        self.rate = (self.rate / 2.0).max(MIN_RATE.min(self.configured));
        self.tokens = self.tokens.min(0.0);
    }

    /// A call went through: win back a twentieth of the configured rate.
    pub(crate) fn succeeded(&mut self, now: Instant) {
        self.refill(now);
        self.rate = (self.rate + self.configured / 20.0).min(self.configured);
    }

    /// The rate now, in calls a second.
    #[cfg(test)]
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls made through the bucket within `seconds` of simulated time, each taken as
    /// soon as the bucket allows.
    fn calls_within(bucket: &mut TokenBucket, start: Instant, seconds: f64) -> usize {
        let mut now = start;
        let mut calls = 0;
        loop {
            let wait = bucket.take(now);
            now += wait;
            if now.duration_since(start).as_secs_f64() > seconds {
                return calls;
            }
            calls += 1;
        }
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5.0, 20, t0);
        for _ in 0..20 {
            assert_eq!(b.take(t0), Duration::ZERO);
        }
        assert_eq!(b.take(t0), Duration::from_millis(200));
        assert_eq!(b.take(t0), Duration::from_millis(400));
        // 20 at once, then 5 a second: 70 in 10 s.
        let mut b = TokenBucket::new(5.0, 20, t0);
        assert_eq!(calls_within(&mut b, t0, 10.0), 70);
    }

    #[test]
    fn an_idle_bucket_fills_up_to_the_burst_only() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5.0, 20, t0);
        for _ in 0..20 {
            b.take(t0);
        }
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(calls_within(&mut b, later, 0.999), 20 + 4);
    }

    #[test]
    fn throttling_slows_it_and_successes_win_the_rate_back() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5.0, 20, t0);
        b.throttled(t0);
        assert_eq!(b.rate(), 2.5);
        assert_eq!(b.take(t0), Duration::from_millis(400), "the burst is spent");
        for _ in 0..10 {
            b.throttled(t0);
        }
        assert_eq!(b.rate(), MIN_RATE);
        for _ in 0..100 {
            b.succeeded(t0);
        }
        assert_eq!(b.rate(), 5.0, "never above the configured rate");
    }
}
