//! The hour: voxlake's unit of commit and of coverage, shared by the sink (which names files
//! after it) and the state store (which records the hours done).

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

/// The unit of commit: one UTC hour (Twilio: the hour a call started; Telnyx: the hour an
/// event occurred). Its id names the data files, so a slice's files are found and replaced whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HourSlice(i64);

const MICROS_PER_HOUR: i64 = 3_600_000_000;

impl HourSlice {
    /// The hour that holds a time (µs since the epoch).
    pub fn from_micros(micros: i64) -> HourSlice {
        HourSlice(micros.div_euclid(MICROS_PER_HOUR))
    }

    /// The hour that holds a time.
    pub fn from_time(t: DateTime<Utc>) -> HourSlice {
        HourSlice::from_micros(t.timestamp_micros())
    }

    /// Parses an id such as `2024-05-01T13`.
    pub fn parse(id: &str) -> Option<HourSlice> {
        let t =
            chrono::NaiveDateTime::parse_from_str(&format!("{id}:00"), "%Y-%m-%dT%H:%M").ok()?;
        Some(HourSlice::from_micros(t.and_utc().timestamp_micros()))
    }

    /// Start of the hour.
    pub fn start(self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0 * MICROS_PER_HOUR)
            .single()
            .unwrap_or_default()
    }

    /// Start of the next hour.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    /// Hours since the epoch.
    pub fn index(self) -> i64 {
        self.0
    }

    /// The hour with this index.
    pub fn from_index(index: i64) -> HourSlice {
        HourSlice(index)
    }

    /// The following hour.
    pub fn next(self) -> HourSlice {
        HourSlice(self.0 + 1)
    }

    /// The hours that intersect [from, to).
    pub fn covering(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<HourSlice> {
        if to <= from {
            return Vec::new();
        }
        let first = HourSlice::from_time(from);
        let last = HourSlice::from_micros(to.timestamp_micros() - 1);
        (first.0..=last.0).map(HourSlice).collect()
    }
}

impl fmt::Display for HourSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.start().format("%Y-%m-%dT%H"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt::parse_cli_time;

    #[test]
    fn slice_ids_round_trip() {
        let t = parse_cli_time("2024-05-01T13:59:59Z").expect("time");
        let slice = HourSlice::from_time(t);
        assert_eq!(slice.to_string(), "2024-05-01T13");
        assert_eq!(HourSlice::parse("2024-05-01T13"), Some(slice));
        assert_eq!(slice.next().to_string(), "2024-05-01T14");
    }

    #[test]
    fn covering_hours() {
        let from = parse_cli_time("2024-05-01T23:30:00Z").expect("from");
        let to = parse_cli_time("2024-05-02T01:00:00Z").expect("to");
        let ids: Vec<String> = HourSlice::covering(from, to)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(ids, ["2024-05-01T23", "2024-05-02T00"]);
        assert!(HourSlice::covering(to, from).is_empty());
    }
}
