//! RFC 3339 timestamps in UTC, as the logs and the `/health` body carry them.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// How much of the second to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Seconds,
    Millis,
}

/// `2024-01-15T10:30:00Z` (or `...00.123Z`). Times before 1970 are shown as the epoch: the
/// exporter never produces them, and no caller should fail for a clock set wrong.
pub fn rfc3339(time: SystemTime, precision: Precision) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, time, precision);
    out
}

/// [`rfc3339`] appended to `out`.
pub fn write_rfc3339(out: &mut String, time: SystemTime, precision: Precision) {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let second_of_day = seconds % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    );
    if precision == Precision::Millis {
        let _ = write!(out, ".{:03}", since_epoch.subsec_millis());
    }
    out.push('Z');
}

/// Parses an RFC 3339 time (`2024-01-15T10:30:00Z`, `...00.123+02:00`) into seconds since the
/// epoch. `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = bytes.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
    {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&month)
        || !(1..=days_in_month).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let count = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if count == 0 {
            return None;
        }
        fraction = format!("0.{}", &after_dot[..count]).parse().ok()?;
        rest = &after_dot[count..];
    }
    let offset_seconds = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let field = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let seconds = field(*h1, *h2)? * 3600 + field(*m1, *m2)? * 60;
            if *sign == b'+' { seconds } else { -seconds }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds as f64 + fraction)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (the inverse of `civil_from_days`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's algorithm,
/// exact for every day an i64 of seconds can name).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis)
    }

    #[test]
    fn known_instants() {
        assert_eq!(
            rfc3339(UNIX_EPOCH, Precision::Seconds),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(at(1_705_314_600, 0), Precision::Seconds),
            "2024-01-15T10:30:00Z"
        );
        assert_eq!(
            rfc3339(at(951_782_400, 7), Precision::Millis),
            "2000-02-29T00:00:00.007Z"
        );
        assert_eq!(
            rfc3339(at(4_102_444_799, 999), Precision::Millis),
            "2099-12-31T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339(at(1_798_761_600, 0), Precision::Seconds),
            "2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn parses_what_it_writes_and_offsets() {
        assert_eq!(parse_rfc3339("2024-01-15T10:30:00Z"), Some(1_705_314_600.0));
        assert_eq!(
            parse_rfc3339("2024-01-15T12:30:00+02:00"),
            Some(1_705_314_600.0)
        );
        assert_eq!(
            parse_rfc3339("2024-01-15T10:30:00.250Z"),
            Some(1_705_314_600.25)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        for days in [0i64, 59, 60, 365, 11_016, 20_000, 47_482] {
            let time = UNIX_EPOCH + Duration::from_secs(days as u64 * 86_400 + 3_723);
            let text = rfc3339(time, Precision::Millis);
            assert_eq!(
                parse_rfc3339(&text),
                Some((days * 86_400 + 3_723) as f64),
                "{text}"
            );
        }
        for bad in [
            "",
            "2024-01-15",
            "2024-13-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-15T10:30:00",
            "2024-01-15T10:30:00+0200",
            "yesterday",
            "2024-01-15T10:30:00.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_day_boundary_matches_a_naive_calendar_walk() {
        let (mut year, mut month, mut day) = (1970i64, 1u32, 1u32);
        for days in 0..(366 * 500) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let month_len = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > month_len {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}
