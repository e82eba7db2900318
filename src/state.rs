//! State that outlives a run, all under `{output}/_voxlake/`: a job's coverage of each owner's
//! tables (the hours its window runs committed whole; its backfills skip them) and per-job
//! state (the nightly watermark and the last run's outcome). Small JSON objects, each written
//! whole, only by the run that holds the job's lock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::hours::HourSlice;
use crate::ids::Owner;
use crate::schema::Table;
use crate::sink::Lake;
use crate::sink::layout::{call_starts, coverage_file, job_state};

/// The hours of one table committed whole by window runs, as merged ranges of hour indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Sorted, disjoint, non-adjacent [start, end) ranges of hour indexes.
    ranges: Vec<(i64, i64)>,
}

#[derive(Serialize, Deserialize)]
struct CoverageFile {
    version: u32,
    table: String,
    /// [start, end) as RFC 3339 hours.
    done: Vec<(String, String)>,
}

fn hour_text(index: i64) -> String {
    HourSlice::from_index(index).start().to_rfc3339()
}

fn hour_index(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| HourSlice::from_time(t.with_timezone(&Utc)).index())
}

impl Coverage {
    /// Reads a job's coverage of an owner's table (empty when none was written).
    pub async fn load(lake: &Lake, job: &str, owner: &Owner, table: Table) -> Result<Coverage> {
        let file: Option<CoverageFile> = lake.get_json(&coverage_file(job, owner, table)).await?;
        let mut coverage = Coverage::default();
        for (start, end) in file.map(|f| f.done).unwrap_or_default() {
            if let (Some(start), Some(end)) = (hour_index(&start), hour_index(&end))
                && start < end
            {
                coverage.ranges.push((start, end));
            }
        }
        coverage.normalize();
        Ok(coverage)
    }

    /// Writes it whole.
    pub async fn save(&self, lake: &Lake, job: &str, owner: &Owner, table: Table) -> Result<()> {
        let file = CoverageFile {
            version: 1,
            table: table.name().to_string(),
            done: self
                .ranges
                .iter()
                .map(|(s, e)| (hour_text(*s), hour_text(*e)))
                .collect(),
        };
        lake.put_json(&coverage_file(job, owner, table), &file)
            .await
    }

    /// True when the hour was committed whole.
    pub fn contains(&self, hour: HourSlice) -> bool {
        let i = hour.index();
        self.ranges.iter().any(|(s, e)| *s <= i && i < *e)
    }

    /// Records an hour as committed whole.
    pub fn mark(&mut self, hour: HourSlice) {
        let i = hour.index();
        if self.contains(hour) {
            return;
        }
        self.ranges.push((i, i + 1));
        self.normalize();
    }

    fn normalize(&mut self) {
        self.ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(self.ranges.len());
        for (s, e) in self.ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if last.1 >= s => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.ranges = merged;
    }

    /// The hours of [from, to) not covered.
    pub fn missing(&self, hours: &[HourSlice]) -> Vec<HourSlice> {
        hours
            .iter()
            .copied()
            .filter(|h| !self.contains(*h))
            .collect()
    }

    /// Adds every hour `other` covers.
    pub fn merge(&mut self, other: &Coverage) {
        self.ranges.extend(other.ranges.iter().copied());
        self.normalize();
    }

    /// The ranges, as RFC 3339 pairs.
    pub fn ranges(&self) -> Vec<(String, String)> {
        self.ranges
            .iter()
            .map(|(s, e)| (hour_text(*s), hour_text(*e)))
            .collect()
    }
}

/// A job's state: its nightly watermark and its last run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct JobState {
    /// Format version.
    pub version: u32,
    /// The job's name.
    pub job: String,
    /// Nightly runs start here (RFC 3339); everything before is committed.
    pub watermark: Option<String>,
    /// The last run of this job.
    pub last_run: Option<LastRun>,
}

/// What the last run did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LastRun {
    /// Its id (the manifest is `_voxlake/runs/{run_id}.json`).
    pub run_id: String,
    /// `ok`, `failed_calls` or `error`.
    pub outcome: String,
    /// `calls`, `window`, `nightly` or `backfill`.
    pub mode: String,
    /// When it ended (RFC 3339).
    pub finished_at: String,
    /// Calls that failed.
    pub failed_calls: usize,
}

impl JobState {
    /// Reads a job's state; a default one when none was written.
    pub async fn load(lake: &Lake, job: &str) -> Result<JobState> {
        let state: Option<JobState> = lake.get_json(&job_state(job)).await?;
        Ok(state.unwrap_or_else(|| JobState {
            version: 1,
            job: job.to_string(),
            ..JobState::default()
        }))
    }

    /// Writes it whole.
    pub async fn save(&self, lake: &Lake) -> Result<()> {
        lake.put_json(&job_state(&self.job), self).await
    }

    /// The watermark as a time.
    pub fn watermark_time(&self) -> Option<DateTime<Utc>> {
        self.watermark
            .as_deref()
            .and_then(|w| DateTime::parse_from_rfc3339(w).ok())
            .map(|t| t.with_timezone(&Utc))
    }
}

/// The names a job's state goes by in the lake: the job's own and its shards'
/// (`{job}.shard-I-of-N`, see [`crate::shard`]), those that have coverage, sorted.
pub async fn state_names(lake: &Lake, job: &str) -> Result<Vec<String>> {
    let root = "_voxlake/coverage/";
    let mut names: Vec<String> = lake
        .list(root)
        .await?
        .iter()
        .filter_map(|path| path.strip_prefix(root)?.split('/').next())
        .filter(|name| *name == job || crate::shard::Shard::is_state_of(name, job))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The union of the coverage of an owner's table under several state names.
pub async fn merged_coverage(
    lake: &Lake,
    names: &[String],
    owner: &Owner,
    table: Table,
) -> Result<Coverage> {
    let mut merged = Coverage::default();
    for name in names {
        merged.merge(&Coverage::load(lake, name, owner, table).await?);
    }
    Ok(merged)
}

/// A job's coverage of its owners' tables, loaded once per run.
#[derive(Debug, Default)]
pub struct CoverageSet {
    job: String,
    /// Per owner and table: what this run's state name covers (it writes these).
    pub tables: BTreeMap<(Owner, Table), Coverage>,
    /// What the job's other state names cover (the job itself and its other shards): done
    /// for skipping, never written by this run.
    others: BTreeMap<(Owner, Table), Coverage>,
}

impl CoverageSet {
    /// Loads the coverage of these owners' tables under the state name `own`, and what the
    /// other state names of `job` (itself, its shards) cover.
    pub async fn load(
        lake: &Lake,
        (own, job): (&str, &str),
        tables: &[(Owner, Table)],
    ) -> Result<CoverageSet> {
        let mut set = CoverageSet {
            job: own.to_string(),
            ..CoverageSet::default()
        };
        let mut others = state_names(lake, job).await?;
        others.retain(|name| name != own);
        for (owner, table) in tables {
            let coverage = Coverage::load(lake, own, owner, *table).await?;
            set.tables.insert((owner.clone(), *table), coverage);
            let other = merged_coverage(lake, &others, owner, *table).await?;
            set.others.insert((owner.clone(), *table), other);
        }
        Ok(set)
    }

    /// True when every one of the owner's `tables` covers the hour.
    pub fn all_of(&self, owner: &Owner, tables: &[Table], hour: HourSlice) -> bool {
        let covers = |map: &BTreeMap<(Owner, Table), Coverage>, table: Table| {
            map.get(&(owner.clone(), table))
                .is_some_and(|c| c.contains(hour))
        };
        !tables.is_empty()
            && tables
                .iter()
                .all(|t| covers(&self.tables, *t) || covers(&self.others, *t))
    }

    /// Marks an hour done for the owner's tables and writes each file whole. Only the run
    /// holding the job's lock writes the job's coverage, and it loaded the files under that
    /// lock: its copy is the file, so read-modify-write needs no second read.
    pub async fn mark_done(
        &mut self,
        lake: &Lake,
        owner: &Owner,
        tables: &[Table],
        hour: HourSlice,
    ) -> Result<()> {
        for table in tables {
            let coverage = self.tables.entry((owner.clone(), *table)).or_default();
            coverage.mark(hour);
            coverage.save(lake, &self.job, owner, *table).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge() {
        let mut c = Coverage::default();
        for i in [5, 3, 4, 9, 7, 8] {
            c.mark(HourSlice::from_index(i));
        }
        assert_eq!(c.ranges, vec![(3, 6), (7, 10)]);
        assert!(c.contains(HourSlice::from_index(9)));
        assert!(!c.contains(HourSlice::from_index(6)));
        c.mark(HourSlice::from_index(6));
        assert_eq!(c.ranges, vec![(3, 10)]);
    }
}

/// Where and when the calls a job's per-SID runs fetched started (`_voxlake/call_starts/`),
/// kept only for calls that had started: a start time never changes again.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CallStarts {
    /// Format version.
    pub version: u32,
    /// Per call SID: its account and start (µs since the epoch).
    pub calls: BTreeMap<String, CallStart>,
}

/// One call's account and start.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallStart {
    /// The account that has the call.
    pub account: String,
    /// Its start, µs since the epoch.
    pub start_micros: i64,
}

impl CallStarts {
    /// Reads a job's call starts (none yet: empty).
    pub async fn load(lake: &Lake, job: &str) -> Result<CallStarts> {
        let starts: Option<CallStarts> = lake.get_json(&call_starts(job)).await?;
        Ok(starts.unwrap_or(CallStarts {
            version: 1,
            calls: BTreeMap::new(),
        }))
    }

    /// Writes them whole.
    pub async fn save(&self, lake: &Lake, job: &str) -> Result<()> {
        lake.put_json(&call_starts(job), self).await
    }
}
