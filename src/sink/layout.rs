//! Where everything lives under the output (DESIGN §5): data files
//! `{table}/date=YYYY-MM-DD/{slice}-{owner}-NNN.parquet`, and voxlake's own files under
//! `_voxlake/`: what an owner (account) has committed (`slices/{owner}/`, `journal/{owner}/`),
//! what a job has done (`coverage/{job}/`, `jobs/{job}.json`, `staging/{job}/`), the runs'
//! manifests (`runs/`) and the locks (`locks/`).

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

use crate::ids::Owner;
use crate::schema::Table;
use crate::timefmt::day_to_string;

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

/// A data file's path relative to the output: the owner is part of the name, so that each
/// account's hour is its own set of files.
pub fn data_file(table: Table, day: i32, slice: HourSlice, owner: &Owner, index: u32) -> String {
    format!(
        "{table}/date={}/{slice}-{owner}-{index:03}.parquet",
        day_to_string(day)
    )
}

/// A job's staging folder: each run stages under its own `{run}/` there.
pub fn staging_dir(job: &str) -> String {
    format!("_voxlake/staging/{job}")
}

/// Folder of all staged files.
pub const STAGING_DIR: &str = "_voxlake/staging";

/// Folder of one owner's commit journals (intents to publish).
pub fn journal_dir(owner: &Owner) -> String {
    format!("_voxlake/journal/{owner}")
}

/// Folder of every owner's journals.
pub const JOURNAL_DIR: &str = "_voxlake/journal";

/// The journal of one slice commit of a group of tables (`twilio`, `telnyx`).
pub fn journal_file(owner: &Owner, run_id: &str, slice: HourSlice, group: &str) -> String {
    format!("{}/{slice}_{group}_{run_id}.json", journal_dir(owner))
}

/// The run that wrote a journal, from its path.
pub fn journal_run(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?.strip_suffix(".json")?;
    name.rsplit('_').next()
}

/// What is committed for one owner, table and slice.
pub fn slice_record(owner: &Owner, table: Table, slice: HourSlice) -> String {
    format!("{}/{slice}.json", slice_records_dir(owner, table))
}

/// Folder of one owner's slice records of a table.
pub fn slice_records_dir(owner: &Owner, table: Table) -> String {
    format!("{}/{table}", slice_records_root(owner))
}

/// Folder of all of one owner's slice records.
pub fn slice_records_root(owner: &Owner) -> String {
    format!("_voxlake/slices/{owner}")
}

/// A run's manifest.
pub fn run_manifest(run_id: &str) -> String {
    format!("_voxlake/runs/{run_id}.json")
}

/// A job's coverage folder.
pub fn coverage_dir(job: &str) -> String {
    format!("_voxlake/coverage/{job}")
}

/// A job's coverage of one owner's table: the hours committed whole by its window runs.
pub fn coverage_file(job: &str, owner: &Owner, table: Table) -> String {
    format!("{}/{owner}/{table}.json", coverage_dir(job))
}

/// A job's state (watermark).
pub fn job_state(job: &str) -> String {
    format!("_voxlake/jobs/{job}.json")
}

/// The `date=` day (days since the epoch) of a data file path, if it has one.
pub fn day_of_path(path: &str) -> Option<i32> {
    let segment = path.split('/').find_map(|s| s.strip_prefix("date="))?;
    let date = chrono::NaiveDate::parse_from_str(segment, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days() as i32)
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

    #[test]
    fn paths() {
        let slice = HourSlice::parse("2024-05-01T23").expect("slice");
        let owner = Owner::parse("AC00000000000000000000000000000000").expect("owner");
        let path = data_file(Table::InsightsMetrics, 19845, slice, &owner, 2);
        assert_eq!(
            path,
            "insights_metrics/date=2024-05-02/2024-05-01T23-AC00000000000000000000000000000000-002.parquet"
        );
        assert_eq!(day_of_path(&path), Some(19845));
        let journal = journal_file(&owner, "20240501T000000Z-0abc12", slice, "twilio");
        assert_eq!(journal_run(&journal), Some("20240501T000000Z-0abc12"));
    }
}
