//! A token bucket on the worker's millisecond clock: what the LB originates or passes on at a
//! bounded rate (ICMP errors, frames to the host's kernel), like Linux's icmp_ratelimit.

/// `rate` tokens a second, at most `burst` saved up. Owned by one worker; no atomics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: u64,
    refilled_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub const fn new(rate_per_sec: u64, burst: u64) -> Self {
        TokenBucket { rate: rate_per_sec, burst, tokens: burst, refilled_ms: 0 }
    }

    /// Takes one token; false when the rate is spent.
    #[inline]
    pub fn take(&mut self, now_ms: u64) -> bool {
        let earned = now_ms.saturating_sub(self.refilled_ms).saturating_mul(self.rate) / 1000;
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(self.burst);
            self.refilled_ms = now_ms;
        }
        let allowed = self.tokens > 0;
        self.tokens -= u64::from(allowed);
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let mut b = TokenBucket::new(1000, 50);
        assert_eq!((0..100).filter(|_| b.take(0)).count(), 50, "the burst, then nothing");
        // 10 ms earn 10 tokens.
        assert_eq!((0..100).filter(|_| b.take(10)).count(), 10);
        // A long pause refills only up to the burst.
        assert_eq!((0..100).filter(|_| b.take(60_000)).count(), 50);
    }

    #[test]
    fn a_slow_rate_still_earns_over_time() {
        let mut b = TokenBucket::new(1, 1);
        assert!(b.take(0));
        assert!(!b.take(500));
        assert!(b.take(1000));
    }
}
