//! How long a writer of a shared tag (the `sha256-<hex>` referrers index, cosign's `.att`/`.sig`
//! manifests) waits after its write before reading the tag back.
//!
//! Writers merge: each reads the tag, adds what is missing and writes it back. On a registry that
//! ignores `If-Match` (Distribution 2.8) an entry of ours is lost only to a writer that **read**
//! the tag before our write and **wrote** it after. Every writer of this crate reads the tag
//! immediately before it merges and writes (a `GET`, the merge, the `PUT`, nothing else in
//! between but, for a cosign tag, its config blob), so such a writer's read→write gap is about one
//! round trip, and its write lands within that gap after our write. A read back that comes later
//! than that sees the loss and repairs it. The wait is therefore not a constant: it is
//! [`GAP_FACTOR`] times the longest read→write gap this client measured on the host in this run,
//! or the longest single manifest or referrers read there when that is longer (a concurrent writer of the
//! same code on the same registry takes about as long; the factor covers it being slower, and a
//! loss hidden behind a second writer's overlapping write), at least [`FLOOR`], at most
//! [`crate::AttachOptions::settle`] unless the measured gap itself is more than half of that (then
//! twice the gap), jittered upwards so that signers finishing together do not read back together.
//!
//! Where the registry has shown, in this run, that it honours `If-Match` (it answered a stale one
//! with 412) and our write carried the ETag of the read just before it, no writer using `If-Match`
//! can have written in between: the read back follows at once.
//!
//! `docs/decisions/referrers-fallback.md` gives the argument and what it does not cover.

use std::time::{Duration, Instant};

use crate::client::Client;

/// The wait after a write is this many times the longest read→write gap measured on the host.
pub const GAP_FACTOR: u32 = 4;

/// The shortest wait after an unconditional write, whatever the measured gap.
pub const FLOOR: Duration = Duration::from_millis(50);

/// The longest wait whatever was measured: a registry that takes half a minute from a read to a
/// write is not waited for any longer.
pub const CEILING: Duration = Duration::from_secs(60);

/// What the write just made tells about concurrent writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Accepted, and no `If-Match` that the registry is known to honour guarded it: a concurrent
    /// stale write may still land, within one read→write gap.
    Unguarded,
    /// Accepted with the ETag of the read just before it, by a registry that answered a stale
    /// `If-Match` with 412 in this run: no writer using `If-Match` wrote in between.
    Guarded,
    /// Refused with 412: someone else wrote first. Read again after a jittered pause so that the
    /// writers that collided spread out.
    Refused,
}

/// The wait before the read back, before jitter: [`GAP_FACTOR`] × `largest_gap`, at least
/// [`FLOOR`], at most `settle`; but never less than twice the gap itself, so a registry measured
/// slower than `settle / 2` is waited for as long as it takes (a cap below a gap already seen
/// would be a wait known to be too short), up to [`CEILING`].
pub fn bound(largest_gap: Duration, settle: Duration) -> Duration {
    largest_gap
        .saturating_mul(GAP_FACTOR)
        .max(FLOOR)
        .min(settle)
        .max(largest_gap.saturating_mul(2))
        .min(CEILING)
}

/// The wait before reading back after `written`, given the largest read→write gap measured, the
/// `settle` cap and a uniform draw `fraction` in [0, 1] for the jitter: nothing after a guarded
/// write; `bound × [1, 1.5]` after an unguarded one (never shorter than the bound); `bound × [0.5,
/// 1.5]` after a refusal.
pub fn wait(written: Written, largest_gap: Duration, settle: Duration, fraction: f64) -> Duration {
    let fraction = fraction.clamp(0.0, 1.0);
    let bound = bound(largest_gap, settle);
    match written {
        Written::Guarded => Duration::ZERO,
        Written::Unguarded => bound.mul_f64(1.0 + fraction / 2.0),
        Written::Refused => bound.mul_f64(0.5 + fraction),
    }
}

/// After a merged write that failed on the way (a connection lost, 429, 5xx): whether it may be
/// tried again, from a fresh read, under the retry policy's attempts and the run's deadline. When
/// it may, counts it, remembers in `unsettled` the oldest read any failed write merged (that write
/// may still land, last), and backs off; the caller then reads again. The same merge is never sent
/// again: after the backoff it would be older than other writers wait before reading back.
pub(crate) async fn after_failed_write(
    client: &Client,
    error: &crate::Error,
    failed_writes: &mut u32,
    unsettled: &mut Option<Instant>,
    merged_read: Instant,
    backoff: Duration,
) -> bool {
    if !(error.is_retryable()
        && *failed_writes + 1 < client.retry_policy().max_attempts
        && client.may_wait(backoff))
    {
        return false;
    }
    *failed_writes += 1;
    *unsettled = Some(unsettled.map_or(merged_read, |u| u.min(merged_read)));
    client.note_retry();
    tokio::time::sleep(backoff).await;
    true
}

/// When a write whose answer was lost may have landed (`unsettled`: the start of the read it
/// merged), waits for it as for an unguarded write and clears it; `true` when it waited, so the
/// caller reads again before deciding.
pub(crate) async fn after_lost_answer(
    client: &Client,
    host: &str,
    unsettled: &mut Option<Instant>,
    settle: Duration,
) -> bool {
    match unsettled.take() {
        Some(started) => {
            after_write(client, host, started, Written::Unguarded, settle).await;
            true
        }
        None => false,
    }
}

/// Records the read→write gap of the write just made (from the start of the read it merged to
/// the end of its `PUT`), sleeps the [`wait`] for it, and returns the wait.
pub(crate) async fn after_write(
    client: &Client,
    host: &str,
    read_started: Instant,
    written: Written,
    settle: Duration,
) -> Duration {
    let largest = client.note_write_gap(host, read_started.elapsed());
    let wait = wait(written, largest, settle, client.retry_policy().fraction());
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(1500);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_wait_follows_the_measured_gap_between_a_floor_and_the_settle_cap() {
        assert_eq!(
            bound(ms(2), SETTLE),
            FLOOR,
            "a fast registry still waits the floor"
        );
        assert_eq!(bound(ms(30), SETTLE), ms(120), "four times the gap");
        assert_eq!(
            bound(ms(375), SETTLE),
            SETTLE,
            "four times the gap, up to settle"
        );
        assert_eq!(bound(ms(600), SETTLE), SETTLE, "capped at settle");
        assert_eq!(bound(ms(30), ms(80)), ms(80), "settle caps the multiple");
        assert_eq!(bound(ms(2), ms(20)), ms(20), "settle caps the floor too");
        assert_eq!(bound(ms(0), Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_gap_longer_than_half_of_settle_is_waited_for_twice_over() {
        assert_eq!(bound(ms(900), SETTLE), ms(1800));
        assert_eq!(bound(ms(4500), SETTLE), ms(9000));
        assert_eq!(
            bound(ms(30), Duration::ZERO),
            ms(60),
            "settle zero still waits the gap"
        );
        assert_eq!(bound(Duration::MAX, SETTLE), CEILING, "no overflow");
        for gap in [0, 1, 10, 100, 749, 750, 751, 5000] {
            let b = bound(ms(gap), SETTLE);
            assert!(b >= ms(gap) * 2, "{gap}: {b:?}");
            assert!(b <= SETTLE.max(ms(gap) * 2), "{gap}: {b:?}");
        }
    }

    #[test]
    fn an_unguarded_write_waits_at_least_the_bound_and_at_most_half_again() {
        for gap in [ms(0), ms(5), ms(30), ms(200), ms(2000)] {
            let b = bound(gap, SETTLE);
            assert_eq!(wait(Written::Unguarded, gap, SETTLE, 0.0), b);
            assert_eq!(wait(Written::Unguarded, gap, SETTLE, 1.0), b.mul_f64(1.5));
            let mid = wait(Written::Unguarded, gap, SETTLE, 0.5);
            assert!(mid > b && mid < b.mul_f64(1.5), "{gap:?}: {mid:?}");
            // Out-of-range draws are clamped, never below the bound.
            assert_eq!(wait(Written::Unguarded, gap, SETTLE, -3.0), b);
            assert!(
                wait(Written::Unguarded, gap, SETTLE, 0.0) >= gap.saturating_mul(4).min(SETTLE)
            );
        }
    }

    #[test]
    fn a_guarded_write_does_not_wait_and_a_refused_one_spreads_out() {
        assert_eq!(wait(Written::Guarded, ms(30), SETTLE, 1.0), Duration::ZERO);
        assert_eq!(wait(Written::Refused, ms(30), SETTLE, 0.0), ms(60));
        assert_eq!(wait(Written::Refused, ms(30), SETTLE, 1.0), ms(180));
    }

    #[test]
    fn the_old_constant_is_the_most_it_waits_unless_the_gap_itself_is_longer() {
        // The previous rule waited settle × [0.5, 1.5] whatever the registry did; the new one waits
        // longer only for a gap measured above settle / 2.
        for fraction in [0.0, 0.3, 1.0] {
            for written in [Written::Unguarded, Written::Refused, Written::Guarded] {
                assert!(wait(written, ms(750), SETTLE, fraction) <= SETTLE.mul_f64(1.5));
                assert!(wait(written, ms(2), SETTLE, fraction) <= FLOOR.mul_f64(1.5));
            }
        }
    }
}
