//! Where everything lives under the output (DESIGN §5): data files
//! `{table}/date=YYYY-MM-DD/{slice}-{owner}-NNN.parquet`, and voxlake's own files under
//! `_voxlake/`: what an owner (account) has committed (`slices/{owner}/`, `journal/{owner}/`),
//! what a job has done (`coverage/{job}/`, `jobs/{job}.json`, `staging/{job}/`), the runs'
//! manifests (`runs/`) and the locks (`locks/`).

use crate::hours::HourSlice;
use crate::ids::Owner;
use crate::schema::Table;
use crate::timefmt::day_to_string;

/// A data file's path relative to the output: the owner is part of the name, so that each
/// account's hour is its own set of files.
pub fn data_file(table: Table, day: i32, slice: HourSlice, owner: &Owner, index: u32) -> String {
    format!(
        "{table}/date={}/{slice}-{owner}-{index:03}.parquet",
        day_to_string(day)
    )
}

/// The start of a Delta table's data file name, unique by `unique` (the run and a
/// counter): `{table}/date=D/{slice}-{owner}-{unique}`; the writer adds `-NNN.parquet`.
pub fn unique_data_file(
    table: Table,
    day: i32,
    slice: HourSlice,
    owner: &Owner,
    unique: &str,
) -> String {
    format!(
        "{table}/date={}/{slice}-{owner}-{unique}",
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

/// What a job's per-SID runs learned of each call: its account and start (so a re-run of
/// the same SIDs does not ask for the call resource again).
pub fn call_starts(job: &str) -> String {
    format!("_voxlake/call_starts/{job}.json")
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
