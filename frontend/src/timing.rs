//! Time arithmetic of the UI: reading the API's RFC 3339 expirations, the countdown text, and the
//! lifetime the user types.
//!
//! Pure functions of their arguments (the current time is passed in), so they are tested natively
//! and the browser only supplies `Date.now()`.

/// Reads an RFC 3339 timestamp (RFC 3339 section 5.6), e.g. `2026-11-29T17:00:00Z`, into epoch
/// seconds. Fractional seconds are dropped; a numeric offset (`+01:00`) is honoured.
///
/// Returns `None` for anything that is not such a timestamp, so a surprising answer shows as
/// "unknown" rather than as a wrong countdown.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from, to| num_in(text, from, to);
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second (RFC 3339 section 5.7); epoch time has no room for it.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let o = rest.as_bytes();
            if o.len() != 6 || !matches!(o[0], b'+' | b'-') || o[3] != b':' {
                return None;
            }
            let (h, m) = (num_in(rest, 1, 3)?, num_in(rest, 4, 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if o[0] == b'-' { -secs } else { secs }
        }
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}

fn num_in(text: &str, from: usize, to: usize) -> Option<i64> {
    let part = text.get(from..to)?;
    if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whole seconds left until `expires_at` (epoch seconds) at `now_ms` (epoch milliseconds, as
/// `Date.now()` gives), rounded up so the countdown reads `00:01` until the very end; never
/// negative.
pub fn remaining_secs(expires_at: i64, now_ms: f64) -> i64 {
    let left_ms = expires_at as f64 * 1000.0 - now_ms;
    if left_ms <= 0.0 { 0 } else { (left_ms / 1000.0).ceil() as i64 }
}

/// The countdown text for `secs` seconds left: `mm:ss` under an hour, `hh:mm:ss` from an hour
/// (hours are not wrapped into days: a week reads `168:00:00`), and `expired` at zero or below.
pub fn format_remaining(secs: i64) -> String {
    if secs <= 0 {
        return "expired".to_owned();
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h == 0 { format!("{m:02}:{s:02}") } else { format!("{h:02}:{m:02}:{s:02}") }
}

/// Reads the optional lifetime field, in seconds: blank means "the server's default" (`None`).
///
/// # Errors
/// A sentence for the user when the text is not a whole number of at least one second. The
/// upper bound is the server's to enforce (its `400` message names it).
pub fn parse_lifetime(input: &str) -> Result<Option<u64>, String> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    match input.parse::<u64>() {
        Ok(secs) if secs >= 1 => Ok(Some(secs)),
        _ => {
            Err("Lifetime must be a whole number of seconds (1 or more), or blank for the default."
                .to_owned())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps_become_epoch_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2027-01-15T08:00:00Z"), Some(1_800_000_000));
        assert_eq!(parse_rfc3339("2000-02-29T23:59:59Z"), Some(951_868_799));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1));
    }

    #[test]
    fn fractions_are_dropped_and_offsets_are_honoured() {
        assert_eq!(parse_rfc3339("2027-01-15T08:00:00.987Z"), Some(1_800_000_000));
        assert_eq!(parse_rfc3339("2027-01-15T09:30:00+01:30"), Some(1_800_000_000));
        assert_eq!(parse_rfc3339("2027-01-15T03:00:00-05:00"), Some(1_800_000_000));
    }

    #[test]
    fn anything_else_is_not_a_timestamp() {
        for bad in [
            "",
            "2027-01-15",
            "2027-01-15T08:00:00",
            "2027-13-15T08:00:00Z",
            "2027-02-29T08:00:00Z",
            "2027-01-15T24:00:00Z",
            "2027-01-15T08:00:00.Z",
            "2027-01-15T08:00:00+1:00",
            "2027-01-15T08:00:00Zjunk",
            "+027-01-15T08:00:00Z",
            "2027-01-15T08:00:00\u{e9}",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn remaining_time_rounds_up_and_stops_at_zero() {
        assert_eq!(remaining_secs(100, 10_000.0), 90);
        assert_eq!(remaining_secs(100, 10_001.0), 90);
        assert_eq!(remaining_secs(100, 99_000.5), 1);
        assert_eq!(remaining_secs(100, 100_000.0), 0);
        assert_eq!(remaining_secs(100, 250_000.0), 0);
    }

    #[test]
    fn the_countdown_reads_minutes_under_an_hour_and_hours_above() {
        assert_eq!(format_remaining(1), "00:01");
        assert_eq!(format_remaining(90), "01:30");
        assert_eq!(format_remaining(3599), "59:59");
        assert_eq!(format_remaining(3600), "01:00:00");
        assert_eq!(format_remaining(8 * 3600 + 61), "08:01:01");
        assert_eq!(format_remaining(7 * 24 * 3600), "168:00:00");
    }

    #[test]
    fn the_countdown_says_expired_at_zero() {
        assert_eq!(format_remaining(0), "expired");
        assert_eq!(format_remaining(-5), "expired");
    }

    #[test]
    fn a_blank_lifetime_means_the_servers_default() {
        assert_eq!(parse_lifetime(""), Ok(None));
        assert_eq!(parse_lifetime("   "), Ok(None));
        assert_eq!(parse_lifetime(" 90 "), Ok(Some(90)));
    }

    #[test]
    fn a_lifetime_must_be_a_positive_whole_number() {
        for bad in ["0", "-5", "1.5", "ten", "1e3"] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?}");
        }
    }
}
