//! Time parsing in one place: the command line's TIME (RFC 3339 or a date), the APIs' timestamps
//! (RFC 3339 and RFC 2822), durations (`15m`), and the hour slices that units of work are cut into.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

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
