//! Times for messages and manifests: Unix seconds as RFC 3339 UTC, whatever the value (a hostile
//! expiry or validity date is shown, never a panic or an overflow).

/// Formats seconds since the epoch as RFC 3339 UTC (`2025-02-28T19:18:11Z`), proleptic Gregorian.
/// Values beyond ±10^13 s (±300,000 years) are clamped, so hostile numbers cannot overflow.
///
/// ```
/// assert_eq!(cnb_untrusted::time::rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
/// ```
pub fn rfc3339_utc(seconds: i64) -> String {
    let seconds = seconds.clamp(-10_000_000_000_000, 10_000_000_000_000);
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_seconds_as_rfc3339() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(315_532_801), "1980-01-01T00:00:01Z");
        assert_eq!(rfc3339_utc(1_795_132_800), "2026-11-20T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn hostile_values_do_not_overflow() {
        assert!(rfc3339_utc(i64::MAX).starts_with("318857"));
        assert!(rfc3339_utc(i64::MIN).starts_with('-'));
    }
}
