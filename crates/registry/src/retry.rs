//! Retry policy: jittered exponential backoff that honours `Retry-After`, within a budget.
//!
//! A registry that answers `Retry-After` to every request could otherwise hold a run until its
//! deadline: each wait is capped ([`RetryPolicy::max_delay`]) and all waits one [`crate::Client`]
//! makes on `Retry-After` together are bounded ([`RetryPolicy::retry_after_budget`]); past it a
//! request that is asked to wait fails with [`crate::Error::RetryLater`].

use std::time::Duration;

/// How often and how long to retry a failed request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled each time.
    pub base: Duration,
    /// Longest delay, including one asked for by `Retry-After`.
    pub max_delay: Duration,
    /// The most one client waits on `Retry-After` in all, every request together. A `Retry-After`
    /// wait that does not fit in what is left ends the request with [`crate::Error::RetryLater`].
    pub retry_after_budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            retry_after_budget: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt + 1`: `Retry-After` when the server gave one (capped),
    /// else `base * 2^attempt` with "full jitter" (uniform in [50%, 100%]) so that many clients
    /// failing together do not retry together.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_delay);
        }
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let mut byte = [0u8; 1];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut byte);
        let fraction = 0.5 + f64::from(byte[0]) / 510.0;
        exp.mul_f64(fraction)
    }
}

impl RetryPolicy {
    /// `base` scaled uniformly into [50%, 150%], so that concurrent writers spread out.
    pub fn jitter(&self, base: Duration) -> Duration {
        base.mul_f64(0.5 + self.fraction())
    }

    /// A uniform draw in [0, 1] (256 steps), for jitter.
    pub fn fraction(&self) -> f64 {
        let mut byte = [0u8; 1];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut byte);
        f64::from(byte[0]) / 255.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let p = RetryPolicy::default();
        for attempt in 0..4 {
            let d = p.delay(attempt, None);
            let full = p.base * 2u32.pow(attempt);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(3600))), p.max_delay);
        assert!(p.delay(60, None) <= p.max_delay);
    }
}
