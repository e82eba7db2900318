//! Time parsing in one place: the command line's TIME (RFC 3339 or a date), the APIs' timestamps
//! (RFC 3339 and RFC 2822), durations (`15m`), and the hour slices that units of work are cut into.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

/// Parses a command-line or job-file TIME: RFC 3339 (`2024-05-01T00:00:00Z`) or a date
/// (`2024-05-01`, meaning midnight UTC).
///
/// ```
/// let t = voxlake::timefmt::parse_cli_time("2024-05-01").unwrap();
/// assert_eq!(t.to_rfc3339(), "2024-05-01T00:00:00+00:00");
/// ```
pub fn parse_cli_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN)));
    }
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2024-05-01T00:00:00Z) or a date (2024-05-01)"
    ))
}

/// Parses an API timestamp: RFC 3339 first, then RFC 2822 (Twilio's 2010 API), then a few
/// zone-less forms read as UTC. Returns microseconds since the Unix epoch.
///
/// ```
/// use voxlake::timefmt::parse_api_timestamp;
/// assert_eq!(parse_api_timestamp("1970-01-01T00:00:01Z"), Some(1_000_000));
/// assert_eq!(parse_api_timestamp("Thu, 01 Jan 1970 00:00:01 +0000"), Some(1_000_000));
/// ```
pub fn parse_api_timestamp(text: &str) -> Option<i64> {
    if let Some(micros) = plain_utc_seconds(text) {
        return Some(micros);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(text) {
        return Some(t.timestamp_micros());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    None
}

/// The commonest API timestamp, `YYYY-MM-DDTHH:MM:SSZ` exactly (every Insights metric row
/// has one), read without chrono's general RFC 3339 parser (chrono still checks the date);
/// `None` for any other text, which the general parsers then read.
fn plain_utc_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0u32, |value, &digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + u32::from(digit - b'0'))
        })
    };
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    let days = i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE;
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(seconds * 1_000_000)
}

/// 1970-01-01 in chrono's days from the common era.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// Parses a duration such as `15m`, `1h`, `90s` (humantime syntax).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let std = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); use e.g. 15m, 1h, 90s"))?;
    Duration::from_std(std).map_err(|_| format!("{text:?} is too long a duration"))
}

/// Microseconds since the epoch → days since the epoch (the `date=` partition value).
pub fn micros_to_day(micros: i64) -> i32 {
    micros.div_euclid(86_400_000_000) as i32
}

/// Days since the epoch → `YYYY-MM-DD`.
pub fn day_to_string(day: i32) -> String {
    let date = NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(Duration::days(i64::from(day))));
    match date {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => "1970-01-01".to_string(),
    }
}

/// The start of the UTC hour that holds `t`.
pub fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_utc_timestamps_read_as_chrono_reads_them() {
        let mut texts = vec![
            "1970-01-01T00:00:00Z".to_string(),
            "1969-12-31T23:59:59Z".into(),
            "2024-02-29T12:00:00Z".into(),
            "2023-02-29T12:00:00Z".into(),
            "2024-04-31T00:00:00Z".into(),
            "2024-05-01T24:00:00Z".into(),
            "2024-05-01T23:60:00Z".into(),
            "2024-05-01T23:59:60Z".into(),
            "2024-13-01T00:00:00Z".into(),
            "2024-00-10T00:00:00Z".into(),
            "2024-05-01t00:00:00z".into(),
            "2024-05-01T00:00:00+00:00".into(),
            "2024-05-01T00:00:0xZ".into(),
            "0001-01-01T00:00:00Z".into(),
        ];
        for day in (0..20_000).step_by(37) {
            let t = chrono::DateTime::from_timestamp(day * 86_400 + day * 7, 0).expect("time");
            texts.push(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        for text in texts {
            let chrono = DateTime::parse_from_rfc3339(&text)
                .ok()
                .map(|t| t.timestamp_micros());
            if let Some(fast) = plain_utc_seconds(&text) {
                assert_eq!(Some(fast), chrono, "{text}");
            } else {
                assert!(
                    chrono.is_none() || !text.ends_with('Z') || text.contains(":60"),
                    "{text} should take the plain path"
                );
            }
        }
    }

    #[test]
    fn cli_times() {
        assert!(parse_cli_time("2024-05-01T12:30:00+02:00").is_ok());
        assert!(parse_cli_time("yesterday").is_err());
        assert!(parse_cli_time("2024-13-01").is_err());
    }

    #[test]
    fn api_timestamps() {
        let rfc2822 = parse_api_timestamp("Tue, 11 Aug 2020 17:44:08 +0000");
        let rfc3339 = parse_api_timestamp("2020-08-11T17:44:08Z");
        assert_eq!(rfc2822, rfc3339);
        assert_eq!(
            parse_api_timestamp("2019-03-29T11:10:19.127783Z").map(|m| m % 1_000_000),
            Some(127_783)
        );
        assert_eq!(parse_api_timestamp("not a time"), None);
    }

    #[test]
    fn days() {
        assert_eq!(day_to_string(micros_to_day(-1)), "1969-12-31");
        assert_eq!(day_to_string(19844), "2024-05-01");
    }
}
