//! Lease times: when a lease ends, and RFC 3339 UTC timestamps from unix seconds
//! (`list --format json`), without a date library. What time it is now is the `clock`
//! crate's ([`clock::wall_ms`]).

use std::time::Duration;

/// The Unix second at which a lease of `lease` granted at `now_ms` ends, rounded up so that a
/// lease never ends early (expiry is checked in whole seconds).
pub fn expiry_secs(now_ms: u64, lease: Duration) -> u64 {
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    now_ms.saturating_add(lease_ms).div_ceil(1000)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift to an era starting on 0000-03-01 so leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a unix time.
pub fn rfc3339_utc(unix: u64) -> String {
    let secs = unix as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_utc(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_234_567_890), "2009-02-13T23:31:30Z");
    }

    #[test]
    fn agrees_with_date_1() {
        // Cross-check against GNU date for a spread of instants; without date(1) the test says
        // SKIPPED (and fails where skips are forbidden).
        for t in [
            1u64,
            86_399,
            86_400,
            1_000_000_000,
            1_798_761_600,
            2_147_483_648,
            32_503_680_000,
        ] {
            let Ok(out) = std::process::Command::new("date")
                .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"])
                .output()
            else {
                test_support::skip_or_fail("agrees_with_date_1", "date(1) (Debian: coreutils)");
                return;
            };
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                rfc3339_utc(t),
                "t={t}"
            );
        }
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[test]
    fn leases_never_end_early() {
        // Granted at 10.600 s for 2 s: the line must stay until at least 12.600 s.
        assert_eq!(expiry_secs(10_600, Duration::from_secs(2)), 13);
        assert_eq!(expiry_secs(10_000, Duration::from_secs(2)), 12);
        assert_eq!(expiry_secs(10_000, Duration::from_millis(1500)), 12);
        assert_eq!(
            expiry_secs(u64::MAX - 5, Duration::from_secs(60)),
            u64::MAX.div_ceil(1000)
        );
    }
}
