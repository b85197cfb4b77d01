//! Spacing the head node's EC2 calls: a sweep over thousands of instances must not use up
//! the account's EC2 request rate that every node's prolog and epilog share.

use std::time::{Duration, Instant};

/// Spaces calls at most `rate` per second.
pub struct Pacer {
    gap: Duration,
    next: Instant,
}

impl Pacer {
    pub fn new(rate: f64) -> Pacer {
        let gap = if rate.is_finite() && rate > 0.0 {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Pacer {
            gap,
            next: Instant::now(),
        }
    }

    /// Returns when the next call may go.
    pub fn wait(&mut self) {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next = Instant::now().max(self.next) + self.gap;
    }
}
