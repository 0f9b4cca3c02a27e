//! Checked arithmetic for every number that comes from a registry, a file or a flag.
//!
//! The rule: a number read from outside is never added to an [`Instant`], multiplied or cast
//! unchecked. Instants are computed with [`deadline_after`] (or [`time_left`]), which cannot
//! overflow; a value that is out of range, negative or not a number falls back to a documented
//! default or limit instead of panicking:
//!
//! | input | out of range / not a number |
//! |---|---|
//! | `--timeout` / `CNB_ATTEST_TIMEOUT` | past what the clock can represent: no deadline (as `0`) |
//! | token `expires_in` | negative, fractional, non-numeric: [`DEFAULT_TOKEN_LIFETIME`]; above [`MAX_TOKEN_LIFETIME`]: that |
//! | `Retry-After` | not whole non-negative seconds (an HTTP date, `-5`, `tomorrow`): ignored (own backoff); huge: [`crate::RetryPolicy::max_delay`]; all waits of a client together: [`crate::RetryPolicy::retry_after_budget`] |
//! | `Content-Length`, sizes | compared with limits only, never added to or allocated from |

use std::time::{Duration, Instant};

/// Token lifetime when the token endpoint gives none, or one that is not whole seconds.
pub const DEFAULT_TOKEN_LIFETIME: u64 = 60;
/// Longest a token is reused, whatever lifetime its endpoint claims.
pub const MAX_TOKEN_LIFETIME: u64 = 3600;

/// The instant `seconds` from now, or `None` when it is past what the clock can represent (a
/// caller treats that as "never": no deadline, or no expiry within the run).
pub fn deadline_after(seconds: u64) -> Option<Instant> {
    Instant::now().checked_add(Duration::from_secs(seconds))
}

/// Time left until `deadline` (zero once it has passed); never panics.
pub fn time_left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// How long a bearer token may be reused: the token endpoint's `expires_in` (its raw JSON text,
/// `None` when absent or `null`) less a 5 s margin, at least 1 s and at most
/// [`MAX_TOKEN_LIFETIME`]. A value that is not a whole non-negative number of seconds (`-1`,
/// `"soon"`, `1e400`, `2.5`) is ignored: [`DEFAULT_TOKEN_LIFETIME`].
pub fn token_lifetime(expires_in: Option<&str>) -> Duration {
    let seconds = expires_in
        .and_then(|raw| raw.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
    Duration::from_secs(seconds.saturating_sub(5).clamp(1, MAX_TOKEN_LIFETIME))
}

/// A `Retry-After` header value as a wait: whole non-negative seconds only (any size: the retry
/// policy caps it). An HTTP date, a negative or non-numeric value is `None` (the policy's own
/// backoff applies).
pub fn retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_past_the_clock_is_none_and_zero_is_now() {
        assert_eq!(deadline_after(u64::MAX), None);
        let now = Instant::now();
        let zero = deadline_after(0).unwrap();
        assert!(zero >= now && zero <= Instant::now());
        assert!(deadline_after(900).unwrap() > Instant::now());
    }

    #[test]
    fn time_left_saturates_at_zero() {
        let past = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(time_left(past), Duration::ZERO);
        assert!(time_left(deadline_after(60).unwrap()) > Duration::from_secs(50));
    }

    #[test]
    fn token_lifetimes_are_clamped_and_garbage_is_the_default() {
        let secs = |raw: Option<&str>| token_lifetime(raw).as_secs();
        assert_eq!(secs(Some("18446744073709551615")), MAX_TOKEN_LIFETIME);
        assert_eq!(secs(Some("0")), 1);
        assert_eq!(secs(Some("300")), 295);
        assert_eq!(secs(None), DEFAULT_TOKEN_LIFETIME - 5);
        for garbage in [
            "-1",
            "\"soon\"",
            "1e400",
            "2.5",
            "18446744073709551616",
            "null",
        ] {
            assert_eq!(secs(Some(garbage)), DEFAULT_TOKEN_LIFETIME - 5, "{garbage}");
        }
        // Whatever the lifetime, its expiry instant is representable.
        assert!(Instant::now()
            .checked_add(token_lifetime(Some("18446744073709551615")))
            .is_some());
    }

    #[test]
    fn retry_after_takes_whole_seconds_only() {
        assert_eq!(retry_after("0"), Some(Duration::ZERO));
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        for garbage in [
            "-5",
            "tomorrow",
            "1e400",
            "18446744073709551616",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(retry_after(garbage), None, "{garbage}");
        }
    }
}
