//! RFC 3339 timestamps as users write them (`2030-01-01T00:00:00Z`, `2030-01-01T09:30:00+02:00`,
//! with or without a fraction) and as the server renders them (UTC, milliseconds).
//!
//! The provider parses a timestamp at plan time (a diagnostic at the attribute instead of a 400
//! at apply), sends the server one canonical form, and keeps the user's own text in the state
//! while it means the same instant as the server's, so spelling never shows as a change.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const DAYS_0000_03_01_TO_EPOCH: i64 = 719_468;

/// Days from 1970-01-01 to `year-month-day` (a valid date).
fn days_since_epoch(year: i64, month: u32, day: u32) -> i64 {
    // Count years from March, so the leap day is the last day of the counted year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - DAYS_0000_03_01_TO_EPOCH
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `n` ASCII digits.
fn digits(s: &[u8], n: usize) -> Option<u32> {
    let d = s.get(..n)?;
    d.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// The instant `text` names, or why it is not an RFC 3339 timestamp.
pub fn parse(text: &str) -> Result<SystemTime, String> {
    let bad = |why: &str| {
        format!("{text:?} is not an RFC 3339 timestamp such as \"2030-01-01T00:00:00Z\" ({why})")
    };
    let s = text.as_bytes();
    let field =
        |at: usize, n: usize, what: &str| digits(&s[at.min(s.len())..], n).ok_or_else(|| bad(what));
    let sep = |at: usize, allowed: &[u8], what: &str| match s.get(at) {
        Some(b) if allowed.contains(b) => Ok(()),
        _ => Err(bad(what)),
    };
    let year = i64::from(field(0, 4, "year")?);
    sep(4, b"-", "date")?;
    let month = field(5, 2, "month")?;
    sep(7, b"-", "date")?;
    let day = field(8, 2, "day")?;
    sep(10, b"Tt ", "no time")?;
    let hour = field(11, 2, "hour")?;
    sep(13, b":", "time")?;
    let minute = field(14, 2, "minute")?;
    sep(16, b":", "time")?;
    let second = field(17, 2, "second")?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    // A leap second (:60) is the same instant as the next second, as most systems treat it.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time"));
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while s.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 9 {
                nanos = nanos * 10 + u32::from(s[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return Err(bad("empty fraction"));
        }
        for _ in (at - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match s.get(at) {
        Some(b'Z' | b'z') if at + 1 == s.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == s.len() => {
            let h = field(at + 1, 2, "offset")?;
            sep(at + 3, b":", "offset")?;
            let m = field(at + 4, 2, "offset")?;
            if h > 23 || m > 59 {
                return Err(bad("offset out of range"));
            }
            let o = i64::from(h * 3600 + m * 60);
            if sign == b'-' { -o } else { o }
        }
        _ => return Err(bad("it needs a time zone: Z or an offset such as +02:00")),
    };
    let secs = days_since_epoch(year, month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset_secs;
    let secs = u64::try_from(secs).map_err(|_| bad("before 1970"))?;
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// The form the provider sends: UTC with milliseconds, as the server renders timestamps.
pub fn canonical(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// `ours` (the user's text) when it names the same millisecond as the server's `server`;
/// otherwise the server's text.
pub fn same_instant_or(server: &str, ours: Option<&str>) -> String {
    if let (Some(o), Ok(s)) = (ours, parse(server))
        && parse(o).is_ok_and(|o| millis(o) == millis(s))
    {
        return o.to_owned();
    }
    server.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> u64 {
        parse(text)
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn utc_offsets_and_fractions() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0);
        assert_eq!(secs("2000-03-01T00:00:00Z"), 951_868_800);
        assert_eq!(secs("2030-01-01T00:00:00Z"), 1_893_456_000);
        assert_eq!(secs("2030-01-01T02:00:00+02:00"), 1_893_456_000);
        assert_eq!(secs("2029-12-31t19:30:00-04:30"), 1_893_456_000);
        assert_eq!(secs("2024-02-29 12:00:00Z"), 1_709_208_000);
        let t = parse("2030-01-01T00:00:00.25Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().subsec_millis(), 250);
        assert_eq!(canonical(t), "2030-01-01T00:00:00.250Z");
    }

    #[test]
    fn every_kind_of_mistake_is_named() {
        for (text, why) in [
            ("2030-01-01", "no time"),
            ("2030-01-01T00:00:00", "time zone"),
            ("2030-13-01T00:00:00Z", "no such date"),
            ("2023-02-29T00:00:00Z", "no such date"),
            ("2030-01-01T24:00:00Z", "no such time"),
            ("2030-01-01T00:00:00.Z", "empty fraction"),
            ("2030-01-01T00:00:00+2:00", "time zone"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("tomorrow", "year"),
            ("", "year"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_users_spelling_is_kept_for_the_same_instant() {
        let server = "2030-01-01T00:00:00.000Z";
        assert_eq!(
            same_instant_or(server, Some("2030-01-01T01:00:00+01:00")),
            "2030-01-01T01:00:00+01:00"
        );
        assert_eq!(
            same_instant_or(server, Some("2031-01-01T00:00:00Z")),
            server
        );
        assert_eq!(same_instant_or(server, None), server);
    }
}
