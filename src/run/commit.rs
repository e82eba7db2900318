//! Committing one hour of one group of tables: this run's rows plus the earlier rows that are
//! not being replaced, published through the sink's journal, then recorded in coverage.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::Shared;
use crate::error::{Error, Result};
use crate::schema::Table;
use crate::sink::HourSlice;
use crate::sink::commit::{self, SliceCommit, SliceRecord, TableCommit};
use crate::sink::layout::day_of_path;
use crate::sink::parquet::SliceFiles;
use crate::sink::partition::split_by_day;

/// Which of a slice's earlier rows this commit replaces (drops).
#[derive(Clone, Debug)]
pub(crate) enum Replace {
    /// Every earlier row: the slice becomes exactly this run's rows.
    All,
    /// Earlier rows matching: any key set (column value in set; no sets = any row) and, when
    /// given, a partition time in [from, to) (µs).
    Matching {
        keys: Vec<(&'static str, HashSet<String>)>,
        time: Option<(i64, i64)>,
    },
}

/// One hour of one group of tables, being built.
pub(crate) struct SliceBuild {
    pub slice: HourSlice,
    pub group: &'static str,
    pub tables: Vec<Table>,
    files: BTreeMap<Table, SliceFiles>,
    /// Per table, the units (calls, legs) with rows.
    units: BTreeMap<Table, BTreeSet<String>>,
    pub replace: Replace,
    /// Mark the hour done in coverage once committed.
    pub mark_done: bool,
}

impl SliceBuild {
    /// An empty build.
    pub(crate) fn new(
        slice: HourSlice,
        group: &'static str,
        tables: Vec<Table>,
        replace: Replace,
        mark_done: bool,
    ) -> SliceBuild {
        SliceBuild {
            slice,
            group,
            tables,
            files: BTreeMap::new(),
            units: BTreeMap::new(),
            replace,
            mark_done,
        }
    }

    fn files_for(&mut self, shared: &Shared, table: Table) -> &mut SliceFiles {
        let slice = self.slice;
        self.files
            .entry(table)
            .or_insert_with(|| new_files(shared, table, slice))
    }

    /// Adds rows of one unit (a call, a leg); rows go to their own `date=` day.
    pub(crate) async fn add(
        &mut self,
        shared: &Shared,
        table: Table,
        unit: &str,
        batch: &RecordBatch,
        fallback_day: i32,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.write_by_day(shared, table, batch, fallback_day)
            .await?;
        self.units
            .entry(table)
            .or_default()
            .insert(unit.to_string());
        Ok(())
    }

    async fn write_by_day(
        &mut self,
        shared: &Shared,
        table: Table,
        batch: &RecordBatch,
        fallback_day: i32,
    ) -> Result<()> {
        let partition_column = shared.schemas.get(table).partition_column;
        let parts = split_by_day(batch, partition_column, fallback_day)
            .map_err(|e| Error::Run(format!("{table}: {e}")))?;
        let files = self.files_for(shared, table);
        for (day, part) in parts {
            files.write(day, &part).await?;
        }
        Ok(())
    }

    /// Adds rows whose units are read from the table's unit column (Telnyx pages).
    pub(crate) async fn add_rows(
        &mut self,
        shared: &Shared,
        table: Table,
        batch: &RecordBatch,
        fallback_day: i32,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.write_by_day(shared, table, batch, fallback_day)
            .await?;
        let units = distinct(batch, table.unit_column());
        self.units.entry(table).or_default().extend(units);
        Ok(())
    }
}

fn new_files(shared: &Shared, table: Table, slice: HourSlice) -> SliceFiles {
    SliceFiles::new(
        shared.lake.clone(),
        table,
        Arc::clone(&shared.schemas.get(table).arrow),
        slice,
        Arc::clone(&shared.run_id),
        Arc::clone(&shared.writer_settings),
    )
}

fn distinct(batch: &RecordBatch, column: &str) -> BTreeSet<String> {
    let Some(values) = batch
        .column_by_name(column)
        .and_then(|c| c.as_string_opt::<i32>())
    else {
        return BTreeSet::new();
    };
    values.iter().flatten().map(str::to_string).collect()
}

/// What a commit did.
pub(crate) struct Committed {
    pub files: Vec<String>,
    pub rows: u64,
}

/// Publishes a slice: per table, this run's rows plus the earlier rows `replace` keeps,
/// replacing the slice's earlier files; then marks coverage. An hour with no rows and no earlier
/// files writes nothing but coverage.
pub(crate) async fn commit_slice(shared: &Shared, mut build: SliceBuild) -> Result<Committed> {
    let mut tables = Vec::new();
    let mut files_written = Vec::new();
    let mut total_rows = 0;
    for table in build.tables.clone() {
        let old = if shared.has_record(table, build.slice) {
            commit::read_record(&shared.lake, table, build.slice).await?
        } else {
            None
        };
        let new_files = build.files.remove(&table);
        if old.is_none() && new_files.is_none() {
            continue;
        }
        let mut files = new_files.unwrap_or_else(|| new_files_for(shared, table, build.slice));
        let mut units = build.units.remove(&table).unwrap_or_default();
        if let Some(old) = &old
            && !matches!(build.replace, Replace::All)
        {
            units.extend(copy_old_rows(shared, table, old, &build.replace, &mut files).await?);
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
        let complete = build.mark_done || old.as_ref().is_some_and(|o| o.complete);
        files_written.extend(finals.iter().cloned());
        total_rows += rows;
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
                run_id: shared.run_id.to_string(),
                committed_at: chrono::Utc::now().to_rfc3339(),
            },
        });
    }
    if !tables.is_empty() {
        let slice_commit = SliceCommit {
            version: 1,
            run_id: shared.run_id.to_string(),
            slice: build.slice.to_string(),
            group: build.group.to_string(),
            tables,
        };
        commit::commit(&shared.lake, &slice_commit).await?;
        for table in &build.tables {
            shared.note_record(*table, build.slice);
        }
    }
    if build.mark_done {
        shared.mark_done(&build.tables, build.slice).await?;
    }
    Ok(Committed {
        files: files_written,
        rows: total_rows,
    })
}

fn new_files_for(shared: &Shared, table: Table, slice: HourSlice) -> SliceFiles {
    new_files(shared, table, slice)
}

/// Copies a slice's earlier rows that `replace` keeps into the new files; returns their units.
async fn copy_old_rows(
    shared: &Shared,
    table: Table,
    old: &SliceRecord,
    replace: &Replace,
    files: &mut SliceFiles,
) -> Result<BTreeSet<String>> {
    let schema = shared.schemas.get(table);
    let mut kept_units = BTreeSet::new();
    for path in &old.files {
        let Some(bytes) = shared.lake.get_bytes_opt(path).await? else {
            tracing::warn!(file = %path, "a file of the slice record is missing; its rows are gone");
            continue;
        };
        let day =
            day_of_path(path).ok_or_else(|| Error::Run(format!("{path}: no date= in the path")))?;
        for batch in read_parquet(path, bytes)? {
            let batch =
                align(&batch, &schema.arrow).map_err(|e| Error::Run(format!("{path}: {e}")))?;
            let partition = schema.partition_column;
            let kept = keep_rows(&batch, replace, partition)
                .map_err(|e| Error::Run(format!("{path}: {e}")))?;
            kept_units.extend(distinct(&kept, table.unit_column()));
            if kept.num_rows() > 0 {
                files.write(day, &kept).await?;
            }
        }
    }
    Ok(kept_units)
}

fn read_parquet(path: &str, bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let fail = |e: String| Error::Run(format!("reading {path}: {e}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| fail(e.to_string()))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))
}

/// The rows `replace` does not replace.
fn keep_rows(
    batch: &RecordBatch,
    replace: &Replace,
    partition: usize,
) -> std::result::Result<RecordBatch, String> {
    let Replace::Matching { keys, time } = replace else {
        return Ok(batch.slice(0, 0));
    };
    let key_columns = keys
        .iter()
        .map(|(column, set)| {
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
fn align(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
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
