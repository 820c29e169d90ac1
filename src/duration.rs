//! Durations written as Prometheus writes them: `500ms`, `15s`, `5m`, `1h30m`, `2d`, `1w`, `1y`.

use std::time::Duration;

/// The units Prometheus accepts, largest first, in the order they must appear.
const UNITS: &[(&str, u64)] = &[
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration: one or more `<integer><unit>` terms, units from largest to
/// smallest, each at most once; or `0`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration such as 500ms, 15s, 5m or 1h30m");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        // "ms" before "m": try the longest unit that matches here.
        let (index, (unit, millis)) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (unit, _))| rest.starts_with(unit))
            .max_by_key(|(_, (unit, _))| unit.len())
            .ok_or_else(invalid)?;
        rest = &rest[unit.len()..];
        next_unit = index + 1;
        total_ms = number
            .checked_mul(*millis)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(invalid)?;
    }
    if next_unit == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way [`parse`] reads it (sub-millisecond parts are dropped).
pub fn format(duration: Duration) -> String {
    let mut ms = duration.as_millis().min(u128::from(u64::MAX)) as u64;
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, unit_ms) in UNITS {
        if ms >= *unit_ms {
            out.push_str(&(ms / unit_ms).to_string());
            out.push_str(unit);
            ms %= unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_forms_parse() {
        let cases = [
            ("0", 0),
            ("500ms", 500),
            ("15s", 15_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("1m30s500ms", 90_500),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn other_forms_are_refused() {
        for text in [
            "",
            "15",
            "1.5s",
            "s",
            "5m1h",
            "1s1s",
            "10 s",
            "-1s",
            "1sec",
            "1S",
            "99999999999999999999y",
        ] {
            assert!(parse(text).is_err(), "{text:?} accepted");
        }
        assert_eq!(
            parse("5x").unwrap_err(),
            "\"5x\" is not a duration such as 500ms, 15s, 5m or 1h30m"
        );
    }

    #[test]
    fn format_is_the_inverse_of_parse() {
        for text in ["500ms", "15s", "5m", "1h30m", "1d", "1w", "1m30s500ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
