//! `voxlake compact JOB --from --to [--retain 7d]`: per Delta table, the files of each owner's
//! closed day in the window are rewritten into files of about 128 MB (each hour's rows kept
//! together and tagged, so that a later re-run of one hour still replaces exactly its rows),
//! all in ONE transaction per table; then `vacuum` deletes the files the table stopped using
//! longer ago than the retention.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;

use super::files::{FileRows, MixedFile, discard};
use super::hour::TARGET_FILE_BYTES;
use super::{Attempt, DataFile, DeltaTables, MAX_ATTEMPTS, TableLog};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::hours::HourSlice;
use crate::job::JobPlan;
use crate::output::{Output, TableFormat};
use crate::schema::{Schemas, TableSchema};
use crate::sink::Lake;
use crate::sink::parquet::WriterSettings;
use crate::timefmt::{day_to_string, micros_to_day};

/// What compaction did to one table.
#[derive(Debug, Default)]
pub struct Compacted {
    /// Files rewritten.
    pub files_before: usize,
    /// Files they became.
    pub files_after: usize,
    /// Owner-days merged.
    pub groups: usize,
    /// The version committed (None: nothing to merge).
    pub version: Option<u64>,
    /// Files vacuum deleted.
    pub vacuumed: usize,
}

/// Compacts the job's Delta tables over the closed days of [from, to); prints what it did.
pub async fn run(
    plan: &JobPlan,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    retain: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Exit> {
    if plan.format != TableFormat::Delta {
        return Err(Error::Input(format!(
            "job {}: compact rewrites Delta tables; this job writes format = \"{}\"",
            plan.name,
            plan.format.name()
        )));
    }
    if let Output::Local(path) = &plan.output
        && !path.is_dir()
    {
        return Err(Error::Input(format!(
            "output {} does not exist: nothing to compact",
            path.display()
        )));
    }
    let retain = retain
        .to_std()
        .map_err(|_| Error::Input("--retain must not be negative".into()))?;
    let lake = Lake::open(&plan.output, &plan.store_settings()).await?;
    let schemas = Schemas::builtin().map_err(|e| Error::Internal(e.to_string()))?;
    let settings = Arc::new(WriterSettings::new(&plan.parquet)?);
    let tables = DeltaTables::open(&lake, &plan.tables).await?;
    let days = closed_days((from, to), now - plan.lag);
    if days.0 >= days.1 {
        println!("no closed day in the window: nothing to compact");
        return Ok(Exit::Done);
    }
    let unique = format!(
        "compact-{}-{:06x}",
        now.format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>() & 0xff_ffff
    );
    let mut opened = 0;
    for log in tables.all() {
        opened += 1;
        let table = log.table();
        let compactor = Compactor {
            lake: &lake,
            log,
            schema: &schemas.get(table),
            settings: Arc::clone(&settings),
            days,
            unique: &unique,
        };
        let mut done = compactor.compact().await?;
        done.vacuumed = vacuum(log, retain).await?;
        print_outcome(table.name(), days, &done);
    }
    if opened == 0 {
        println!("no Delta table of the job in {}", lake.shown());
    }
    Ok(Exit::Done)
}

fn print_outcome(table: &str, (first, end): (i32, i32), done: &Compacted) {
    let window = format!("{} .. {}", day_to_string(first), day_to_string(end));
    match done.version {
        Some(version) => println!(
            "{table}: {} files → {} in {} owner-days ({window}), version {version}; vacuum \
             deleted {} files",
            done.files_before, done.files_after, done.groups, done.vacuumed
        ),
        None => println!(
            "{table}: nothing to compact ({window}); vacuum deleted {} files",
            done.vacuumed
        ),
    }
}

/// The days of [from, to) that are over by `closed_at` (no hour of theirs is still to
/// come), as [first, end) day numbers.
fn closed_days((from, to): (DateTime<Utc>, DateTime<Utc>), closed_at: DateTime<Utc>) -> (i32, i32) {
    let first = micros_to_day(from.timestamp_micros());
    let last_hour = HourSlice::from_time(to - chrono::Duration::microseconds(1));
    let end_of_window = micros_to_day(last_hour.start().timestamp_micros()) + 1;
    let today = micros_to_day(closed_at.timestamp_micros());
    (first, end_of_window.min(today))
}

/// Deletes the files the table stopped using more than `retain` ago, and files no commit
/// ever added (a run killed before its commit) older than that.
async fn vacuum(log: &TableLog, retain: std::time::Duration) -> Result<usize> {
    let table = log.loaded().await?;
    let retention = chrono::Duration::from_std(retain)
        .map_err(|_| Error::Input("--retain is too long".into()))?;
    let (_, metrics) = table
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_mode(VacuumMode::Full)
        .await
        .map_err(|e| super::delta_error(log.table(), "vacuum", e))?;
    Ok(metrics.files_deleted.len())
}

/// One table's compaction.
struct Compactor<'a> {
    lake: &'a Lake,
    log: &'a TableLog,
    schema: &'a TableSchema,
    settings: Arc<WriterSettings>,
    days: (i32, i32),
    unique: &'a str,
}

/// Each owner-day's files to merge, by (owner, day).
type Groups = BTreeMap<(String, i32), Vec<DataFile>>;

impl Compactor<'_> {
    async fn compact(&self) -> Result<Compacted> {
        let table = self.log.table();
        let mut prepared: Option<(Groups, Vec<DataFile>)> = None;
        for _ in 0..MAX_ATTEMPTS {
            let Some(snapshot) = self.log.snapshot().await? else {
                return Ok(Compacted::default());
            };
            let groups = self.groups(self.log.data_files(&snapshot));
            if groups.is_empty() {
                return Ok(Compacted::default());
            }
            let written = match prepared.take() {
                Some((was, written)) if was == groups => written,
                Some((_, stale)) => {
                    discard(self.lake, table, &stale).await;
                    self.rewrite(&groups).await?
                }
                None => self.rewrite(&groups).await?,
            };
            let sources: Vec<&DataFile> = groups.values().flatten().collect();
            let mut actions: Vec<_> = sources.iter().map(|f| f.remove_action(false)).collect();
            actions.extend(written.iter().map(|f| f.add_action(false)));
            let operation = DeltaOperation::Optimize {
                predicate: None,
                target_size: TARGET_FILE_BYTES as i64,
            };
            match self.log.try_commit(&snapshot, actions, operation).await? {
                Attempt::Committed(version) => {
                    return Ok(Compacted {
                        files_before: sources.len(),
                        files_after: written.len(),
                        groups: groups.len(),
                        version: Some(version),
                        vacuumed: 0,
                    });
                }
                Attempt::Moved => prepared = Some((groups, written)),
            }
        }
        Err(Error::Lake(format!(
            "delta table {table}: {MAX_ATTEMPTS} compactions lost to other writers"
        )))
    }

    /// voxlake's files of the window's closed days, by owner and day, where a day has
    /// more than one.
    fn groups(&self, files: Vec<DataFile>) -> Groups {
        let mut groups = Groups::new();
        for file in files {
            if !file.owner.is_empty() && (self.days.0..self.days.1).contains(&file.day) {
                groups
                    .entry((file.owner.clone(), file.day))
                    .or_default()
                    .push(file);
            }
        }
        groups.retain(|_, files| files.len() > 1);
        for files in groups.values_mut() {
            files.sort_by(|a, b| {
                let first = |f: &DataFile| f.slices.iter().map(|s| s.slice).min();
                (first(a), &a.path).cmp(&(first(b), &b.path))
            });
        }
        groups
    }

    /// Writes each group's rows into large files, hour after hour.
    async fn rewrite(&self, groups: &Groups) -> Result<Vec<DataFile>> {
        let table = self.log.table();
        let mut written = Vec::new();
        for ((owner, day), files) in groups {
            let mut out = MixedFile::new(
                (self.lake.clone(), table, Arc::clone(&self.schema.arrow)),
                Arc::clone(&self.settings),
                (owner, *day),
                self.unique.to_string(),
                TARGET_FILE_BYTES,
            );
            for file in files {
                let schema = Arc::clone(&self.schema.arrow);
                let mut rows = FileRows::open(self.lake, table, file, schema).await?;
                while let Some((slice, batch)) = rows.next().await? {
                    out.write(slice, &batch).await?;
                }
            }
            written.extend(out.finish().await?);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_days_that_are_over_are_closed() {
        let t = |s: &str| crate::timefmt::parse_cli_time(s).expect("time");
        let (first, end) = closed_days(
            (t("2024-05-01"), t("2024-05-04")),
            t("2024-05-03T10:00:00Z"),
        );
        assert_eq!(
            (day_to_string(first), day_to_string(end)),
            ("2024-05-01".into(), "2024-05-03".into())
        );
        let (first, end) = closed_days((t("2024-05-01"), t("2024-05-02")), t("2024-06-01"));
        assert_eq!(end - first, 1);
    }
}
