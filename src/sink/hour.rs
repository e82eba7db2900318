//! One hour of one owner's tables: built from the rows a run fetched (streamed in as pages
//! arrive), then committed under the owner's lock: the hour's committed record is read again,
//! the earlier rows the commit keeps are copied in, and the journal publishes it all at once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::commit::{self, SliceCommit, SliceRecord, TableCommit};
use super::delta::DeltaTables;
use super::layout::{day_of_path, staging_dir};
use super::lock::{Holder, LeaseTime, Lock, LockName, LockWatch, Wait};
use super::parquet::{Placement, SliceFiles, StagedFile, WriterSettings};
use super::partition::split_by_day;
use super::store::Lake;
use crate::error::{Error, Result};
use crate::hours::HourSlice;
use crate::ids::Owner;
use crate::schema::{Schemas, Table};
use crate::stop::Stop;

/// What every commit of a run shares: the lake, where the run stages, who it is (for locks).
pub struct SinkContext {
    /// The output.
    pub lake: Lake,
    /// The tables' schemas.
    pub schemas: Schemas,
    /// The run's Parquet settings.
    pub settings: Arc<WriterSettings>,
    /// The committing run.
    pub run_id: Arc<str>,
    /// Its job (names its staging folder).
    pub job: String,
    /// Written into the locks it takes.
    pub holder: Holder,
    /// How long its leases last (object stores).
    pub lease: LeaseTime,
    /// The job's lock, checked before every commit.
    pub job_lock: LockWatch,
    /// Stops waiting for a lock on SIGINT/SIGTERM.
    pub stop: Arc<Stop>,
    /// The job's Delta tables (`format = "delta"`): commits go to their logs instead of
    /// voxlake's journal.
    pub delta: Option<Arc<DeltaTables>>,
    generation: AtomicU64,
}

impl SinkContext {
    /// A context for one run.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lake: Lake,
        schemas: Schemas,
        settings: Arc<WriterSettings>,
        run_id: Arc<str>,
        job: &str,
        lease: LeaseTime,
        job_lock: LockWatch,
        stop: Arc<Stop>,
    ) -> SinkContext {
        SinkContext {
            holder: Holder::this_process(&run_id, job),
            lake,
            schemas,
            settings,
            run_id,
            job: job.to_string(),
            lease,
            job_lock,
            stop,
            delta: None,
            generation: AtomicU64::new(0),
        }
    }

    /// Commits go to these Delta tables.
    pub fn with_delta(mut self, tables: DeltaTables) -> SinkContext {
        self.delta = Some(Arc::new(tables));
        self
    }

    /// A new set of staged files: each set stages in a folder of its own.
    pub fn files(&self, table: Table, slice: HourSlice, owner: &Owner) -> SliceFiles {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        SliceFiles::new(
            self.lake.clone(),
            table,
            Arc::clone(&self.schemas.get(table).arrow),
            (slice, owner.clone()),
            Placement::Staged(format!(
                "{}/{}/{generation}",
                staging_dir(&self.job),
                self.run_id
            )),
            Arc::clone(&self.settings),
        )
    }

    /// A new set of files at their final place in a Delta table, named uniquely.
    pub fn delta_files(&self, table: Table, slice: HourSlice, owner: &Owner) -> SliceFiles {
        SliceFiles::new(
            self.lake.clone(),
            table,
            Arc::clone(&self.schemas.get(table).arrow),
            (slice, owner.clone()),
            Placement::InPlace(self.unique_name()),
            Arc::clone(&self.settings),
        )
    }

    /// A new set of files of the sink's kind: staged for the journal, or in place in a
    /// Delta table.
    pub fn new_files(&self, table: Table, slice: HourSlice, owner: &Owner) -> SliceFiles {
        if self.delta.is_some() {
            self.delta_files(table, slice, owner)
        } else {
            self.files(table, slice, owner)
        }
    }

    /// A name no other file of this run has: the run and a counter.
    pub fn unique_name(&self) -> String {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        format!("{}-{generation}", self.run_id)
    }

    /// Takes the lock of one owner's hour (Delta tables: runs of several jobs or shards
    /// commit the same table at once, but one hour of one owner at a time).
    pub async fn lock_slice(&self, owner: &Owner, slice: HourSlice) -> Result<Lock> {
        Lock::take(
            &self.lake,
            LockName::owner(&format!("{owner}-{slice}")),
            &self.holder,
            Wait::Yes,
            self.lease,
            &self.stop,
        )
        .await
    }

    /// Takes an owner's commit lock (waiting for it: commits are short).
    pub async fn lock_owner(&self, owner: &Owner) -> Result<Lock> {
        Lock::take(
            &self.lake,
            LockName::owner(owner.as_str()),
            &self.holder,
            Wait::Yes,
            self.lease,
            &self.stop,
        )
        .await
    }
}

/// In a key of [`Replace::Matching`] or [`HourBuild::drop_rows`]: each table's own unit
/// column (`call_sid`, `sid` for `calls`, `conference_sid`…), for a group of tables whose
/// units are the same things named differently.
pub const UNIT_COLUMN: &str = "@unit";

/// The column `column` names in `table` ([`UNIT_COLUMN`] resolved).
fn resolve(column: &'static str, table: Table) -> &'static str {
    if column == UNIT_COLUMN {
        table.spec().unit_column
    } else {
        column
    }
}

/// Which of a slice's earlier rows this commit replaces (drops).
#[derive(Clone, Debug)]
pub enum Replace {
    /// Every earlier row: the slice becomes exactly this run's rows.
    All,
    /// Earlier rows matching: any key set (column value in set; no sets = any row) and, when
    /// given, a partition time in [from, to) (µs).
    Matching {
        /// (column, values) pairs; a row matches if any column's value is in its set.
        keys: Vec<(&'static str, HashSet<String>)>,
        /// Partition time range the rows must fall in.
        time: Option<(i64, i64)>,
    },
}

/// One hour of one owner's group of tables, being built.
pub struct HourBuild {
    /// The account it belongs to.
    pub owner: Owner,
    /// The hour.
    pub slice: HourSlice,
    /// The tables' group (`twilio`, `telnyx`): names the journal.
    pub group: &'static str,
    /// The tables committed together.
    pub tables: Vec<Table>,
    files: BTreeMap<Table, SliceFiles>,
    /// Per table, the units (calls, legs) with rows.
    units: BTreeMap<Table, BTreeSet<String>>,
    /// Rows written so far that must not land: (column, value) of units that failed.
    dropped: BTreeSet<(&'static str, String)>,
    /// Which earlier rows go.
    pub replace: Replace,
    /// Every unit of the hour is in it: recorded complete.
    pub complete: bool,
}

impl HourBuild {
    /// An empty build.
    pub fn new(
        (owner, slice): (Owner, HourSlice),
        group: &'static str,
        tables: Vec<Table>,
        replace: Replace,
        complete: bool,
    ) -> HourBuild {
        HourBuild {
            owner,
            slice,
            group,
            tables,
            files: BTreeMap::new(),
            units: BTreeMap::new(),
            dropped: BTreeSet::new(),
            replace,
            complete,
        }
    }

    /// Adds rows of one unit (a call), or (`unit` None) rows whose units are read from the
    /// table's unit column (Telnyx pages); rows go to their own `date=` day.
    pub async fn add(
        &mut self,
        ctx: &SinkContext,
        table: Table,
        unit: Option<&str>,
        batch: &RecordBatch,
        fallback_day: i32,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.write_by_day(ctx, table, batch, fallback_day).await?;
        let units = self.units.entry(table).or_default();
        match unit {
            Some(unit) => {
                units.insert(unit.to_string());
            }
            None => units.extend(distinct(batch, table.spec().unit_column)),
        }
        Ok(())
    }

    /// The rows whose `column` is `value` written so far will not land (their unit failed
    /// after some of its pages had streamed in).
    pub fn drop_rows(&mut self, column: &'static str, value: &str) {
        self.dropped.insert((column, value.to_string()));
    }

    async fn write_by_day(
        &mut self,
        ctx: &SinkContext,
        table: Table,
        batch: &RecordBatch,
        fallback_day: i32,
    ) -> Result<()> {
        let partition_column = ctx.schemas.get(table).partition_column;
        let parts = split_by_day(batch, partition_column, fallback_day)
            .map_err(|e| Error::Lake(format!("{table}: {e}")))?;
        let (slice, owner) = (self.slice, &self.owner);
        let files = self
            .files
            .entry(table)
            .or_insert_with(|| ctx.new_files(table, slice, owner));
        for (day, part) in parts {
            files.write(day, &part).await?;
        }
        Ok(())
    }
}

pub(crate) fn distinct(batch: &RecordBatch, column: &str) -> BTreeSet<String> {
    let Some(values) = batch
        .column_by_name(column)
        .and_then(|c| c.as_string_opt::<i32>())
    else {
        return BTreeSet::new();
    };
    values.iter().flatten().map(str::to_string).collect()
}

/// What a commit did.
#[derive(Debug, Default)]
pub struct Committed {
    /// Data files written (relative to the output).
    pub files: Vec<String>,
    /// Rows in them.
    pub rows: u64,
    /// Delta tables: the versions committed, as `table@version`.
    pub versions: Vec<String>,
}

/// Publishes an hour: per table, this run's rows plus the earlier rows `replace` keeps,
/// replacing the hour's earlier files. Runs under the owner's lock, after finishing any commit
/// of the owner a crash left. An hour with no rows and no earlier files writes nothing.
pub async fn commit_hour(ctx: &SinkContext, build: HourBuild) -> Result<Committed> {
    if let Some(tables) = &ctx.delta {
        return super::delta::commit_hour(ctx, tables, build).await;
    }
    if build.files.is_empty() && !has_records(ctx, &build).await? {
        // Nothing to write and nothing to replace: as if committed before anyone else's.
        return Ok(Committed::default());
    }
    let lock = ctx.lock_owner(&build.owner).await?;
    let result = commit_locked(ctx, &lock, build).await;
    lock.release().await;
    result
}

/// Whether any of the build's tables has a record for its hour.
async fn has_records(ctx: &SinkContext, build: &HourBuild) -> Result<bool> {
    for table in &build.tables {
        if commit::read_record(&ctx.lake, &build.owner, *table, build.slice)
            .await?
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn commit_locked(ctx: &SinkContext, lock: &Lock, mut build: HourBuild) -> Result<Committed> {
    commit::recover_owner(&ctx.lake, &build.owner).await?;
    let mut tables = Vec::new();
    let mut committed = Committed::default();
    for table in build.tables.clone() {
        let old = commit::read_record(&ctx.lake, &build.owner, table, build.slice).await?;
        let (files, mut units) = build.take_table(ctx, table).await?;
        if old.is_none() && files.is_none() {
            continue;
        }
        let mut files = files.unwrap_or_else(|| ctx.files(table, build.slice, &build.owner));
        if let Some(old) = &old
            && !matches!(build.replace, Replace::All)
        {
            units.extend(copy_old_rows(ctx, table, old, &build.replace, &mut files).await?);
        }
        let rows = files.rows();
        let staged = files.finish().await?;
        let finals: Vec<String> = staged.iter().map(|f| f.final_path.clone()).collect();
        let delete = old
            .as_ref()
            .map(|o| {
                o.files
                    .iter()
                    .filter(|f| !finals.contains(f))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let complete = build.complete || old.as_ref().is_some_and(|o| o.complete);
        committed.files.extend(finals.iter().cloned());
        committed.rows += rows;
        tables.push(TableCommit {
            table: table.name().to_string(),
            publish: staged
                .into_iter()
                .map(|f| (f.staged, f.final_path))
                .collect(),
            delete,
            record: SliceRecord {
                version: 1,
                table: table.name().to_string(),
                slice: build.slice.to_string(),
                files: finals,
                rows,
                calls: units.len() as u64,
                complete,
                run_id: ctx.run_id.to_string(),
                committed_at: chrono::Utc::now().to_rfc3339(),
            },
        });
    }
    if tables.is_empty() {
        return Ok(committed);
    }
    // The commit point: only while both locks are surely still this run's.
    lock.check()?;
    ctx.job_lock.check()?;
    let slice_commit = SliceCommit {
        version: 1,
        run_id: ctx.run_id.to_string(),
        owner: build.owner.to_string(),
        slice: build.slice.to_string(),
        group: build.group.to_string(),
        tables,
    };
    commit::commit(&ctx.lake, &slice_commit).await?;
    Ok(committed)
}

impl HourBuild {
    /// One table's files and units, without the rows of units that failed after some of
    /// their pages had streamed in (rewritten without them).
    pub(crate) async fn take_table(
        &mut self,
        ctx: &SinkContext,
        table: Table,
    ) -> Result<(Option<SliceFiles>, BTreeSet<String>)> {
        let units = self.units.remove(&table).unwrap_or_default();
        let Some(written) = self.files.remove(&table) else {
            return Ok((None, units));
        };
        let dropped = dropped_keys(&self.dropped, table, &units);
        if dropped.is_empty() {
            return Ok((Some(written), units));
        }
        let (kept, kept_units) = without_rows(ctx, self, table, written, dropped).await?;
        Ok((Some(kept), kept_units))
    }
}

/// A fresh set of files of the sink's kind (staged, or in place for Delta tables).
fn fresh_files(ctx: &SinkContext, table: Table, build: &HourBuild) -> SliceFiles {
    ctx.new_files(table, build.slice, &build.owner)
}

/// The drops that may touch `table`'s rows: by its unit column, only units it has rows of;
/// by another column (a Telnyx session), any.
fn dropped_keys(
    dropped: &BTreeSet<(&'static str, String)>,
    table: Table,
    units: &BTreeSet<String>,
) -> Vec<(&'static str, HashSet<String>)> {
    let unit_column = table.spec().unit_column;
    let mut keys: BTreeMap<&'static str, HashSet<String>> = BTreeMap::new();
    for (column, value) in dropped {
        let column = resolve(column, table);
        if column != unit_column || units.contains(value) {
            keys.entry(column).or_default().insert(value.clone());
        }
    }
    keys.into_iter().collect()
}

/// The staged files again, without the rows `dropped` names (units that failed after some
/// of their pages had streamed in); returns them and the units they still hold.
async fn without_rows(
    ctx: &SinkContext,
    build: &HourBuild,
    table: Table,
    written: SliceFiles,
    dropped: Vec<(&'static str, HashSet<String>)>,
) -> Result<(SliceFiles, BTreeSet<String>)> {
    let staged = written.finish().await?;
    let mut files = fresh_files(ctx, table, build);
    let replace = Replace::Matching {
        keys: dropped,
        time: None,
    };
    let mut units = BTreeSet::new();
    for StagedFile { staged, .. } in &staged {
        units.extend(copy_rows(ctx, table, staged, &replace, &mut files).await?);
        ctx.lake.delete(staged).await?;
    }
    Ok((files, units))
}

/// Copies a slice's earlier rows that `replace` keeps into the new files; returns their units.
async fn copy_old_rows(
    ctx: &SinkContext,
    table: Table,
    old: &SliceRecord,
    replace: &Replace,
    files: &mut SliceFiles,
) -> Result<BTreeSet<String>> {
    let mut kept_units = BTreeSet::new();
    for path in &old.files {
        kept_units.extend(copy_rows(ctx, table, path, replace, files).await?);
    }
    Ok(kept_units)
}

/// Streams the rows of one file that `replace` keeps into `files`, batch by batch; returns
/// their units. A missing file is reported and skipped (its rows are gone).
pub(crate) async fn copy_rows(
    ctx: &SinkContext,
    table: Table,
    path: &str,
    replace: &Replace,
    files: &mut SliceFiles,
) -> Result<BTreeSet<String>> {
    let schema = ctx.schemas.get(table);
    let mut kept_units = BTreeSet::new();
    let Some(bytes) = ctx.lake.get_bytes_opt(path).await? else {
        tracing::warn!(file = %path, "a file of the slice record is missing; its rows are gone");
        return Ok(kept_units);
    };
    let day =
        day_of_path(path).ok_or_else(|| Error::Lake(format!("{path}: no date= in the path")))?;
    for batch in read_parquet(path, bytes)? {
        let batch = batch.map_err(|e| Error::Lake(format!("reading {path}: {e}")))?;
        let batch =
            align(&batch, &schema.arrow).map_err(|e| Error::Lake(format!("{path}: {e}")))?;
        let kept = keep_rows(&batch, replace, (table, schema.partition_column))
            .map_err(|e| Error::Lake(format!("{path}: {e}")))?;
        kept_units.extend(distinct(&kept, table.spec().unit_column));
        if kept.num_rows() > 0 {
            files.write(day, &kept).await?;
        }
    }
    Ok(kept_units)
}

fn read_parquet(
    path: &str,
    bytes: Bytes,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    let fail = |e: String| Error::Lake(format!("reading {path}: {e}"));
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| fail(e.to_string()))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| fail(e.to_string()))
}

/// The rows `replace` does not replace.
pub(crate) fn keep_rows(
    batch: &RecordBatch,
    replace: &Replace,
    (table, partition): (Table, usize),
) -> std::result::Result<RecordBatch, String> {
    let Replace::Matching { keys, time } = replace else {
        return Ok(batch.slice(0, 0));
    };
    let key_columns = keys
        .iter()
        .map(|(column, set)| {
            let column = resolve(column, table);
            batch
                .column_by_name(column)
                .and_then(|c| c.as_string_opt::<i32>())
                .map(|values| (values, set))
                .ok_or_else(|| format!("no {column} column"))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let times = batch
        .column(partition)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or("the partition column is not a timestamp")?;
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let key_match = key_columns.is_empty()
                || key_columns
                    .iter()
                    .any(|(values, set)| !values.is_null(i) && set.contains(values.value(i)));
            let time_match = match time {
                Some((from, to)) => !times.is_null(i) && (*from..*to).contains(&times.value(i)),
                None => true,
            };
            Some(!(key_match && time_match))
        })
        .collect();
    filter_record_batch(batch, &mask).map_err(|e| e.to_string())
}

/// Lines an earlier file's batch up with the current schema: columns by name, new columns
/// null. A column that changed type or disappeared is refused rather than dropped.
pub(crate) fn align(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, String> {
    if batch.schema().fields() == schema.fields() {
        return RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())
            .map_err(|e| e.to_string());
    }
    for field in batch.schema().fields() {
        if schema.field_with_name(field.name()).is_err() {
            return Err(format!(
                "column {} is not in the current schema; re-run this slice's window",
                field.name()
            ));
        }
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
            Some(_) => Err(format!("column {} changed type", field.name())),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| e.to_string())
}
