//! Staged Parquet files of one table, one owner and one slice: zstd, column statistics, row
//! groups flushed by rows and by size, files rotated by rows, names derived from the slice and
//! the owner. Files are written under the run's staging folder; `commit` publishes them.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::layout::{data_file, unique_data_file};
use super::store::Lake;
use crate::error::{Error, Result};
use crate::hours::HourSlice;
use crate::ids::Owner;
use crate::output::ParquetSettings;
use crate::schema::Table;

/// A finished file waiting in staging.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StagedFile {
    /// Where it is now.
    pub staged: String,
    /// Where it is published.
    pub final_path: String,
    /// Rows in it.
    pub rows: u64,
    /// Its size in bytes.
    #[serde(default)]
    pub bytes: u64,
}

/// Where a set of files is written.
#[derive(Clone, Debug)]
pub enum Placement {
    /// Under a staging folder of its own (unique to the set), published by a journal.
    Staged(String),
    /// At its final place in the table, under a name made unique by this text (Delta
    /// tables: a file is not part of the table until the log says so).
    InPlace(String),
}

/// Writer settings shared by every file of a run.
#[derive(Debug)]
pub struct WriterSettings {
    properties: WriterProperties,
    max_rows_per_file: usize,
    max_buffered_bytes: usize,
}

impl WriterSettings {
    /// From the job's `[parquet]` settings.
    pub fn new(plan: &ParquetSettings) -> Result<WriterSettings> {
        let level = ZstdLevel::try_new(plan.zstd_level)
            .map_err(|e| Error::Input(format!("parquet.zstd_level: {e}")))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(plan.row_group_rows))
            .set_created_by(concat!("voxlake ", env!("CARGO_PKG_VERSION")).to_string())
            .build();
        Ok(WriterSettings {
            properties,
            max_rows_per_file: plan.max_rows_per_file,
            max_buffered_bytes: 8 * 1024 * 1024,
        })
    }

    /// The properties of a file of `table` with columns `schema`, naming the table and (when
    /// it holds one hour's rows) the hour in its key-value metadata. Text columns are
    /// dictionary-encoded; numbers and timestamps are written plain, where zstd does better on
    /// its own: on the Metrics pages, files 17 % smaller and 2 % fewer instructions a run than
    /// with dictionaries on every column (parquet-rs's default).
    pub(crate) fn properties_for(
        &self,
        table: Table,
        schema: &Schema,
        slice: Option<HourSlice>,
    ) -> WriterProperties {
        let mut metadata = vec![KeyValue::new(
            "voxlake.table".into(),
            table.name().to_string(),
        )];
        if let Some(slice) = slice {
            metadata.push(KeyValue::new("voxlake.slice".into(), slice.to_string()));
        }
        let mut builder = self
            .properties
            .clone()
            .into_builder()
            .set_key_value_metadata(Some(metadata));
        for field in schema.fields() {
            if !matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
                let column = ColumnPath::from(field.name().as_str());
                builder = builder.set_column_dictionary_enabled(column, false);
            }
        }
        builder.build()
    }
}

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    staged: String,
    final_path: String,
    rows: u64,
}

#[derive(Default)]
struct DayFiles {
    open: Option<OpenFile>,
    /// Rows not yet given to the writer: a call's batch is small (tens of rows), and a
    /// write costs per column as well as per row, so batches are joined first.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    next_index: u32,
    closed: Vec<StagedFile>,
    /// When rows last went to its open file (a counter of writes).
    last_write: u64,
}

/// Days with an open file at most: a row group in progress is held in memory, so a call
/// whose rows span many days (a long one) closes its older days' files as it moves on (a
/// later row of a closed day opens its next file).
const MAX_OPEN_DAYS: usize = 4;

/// Rows a day's small batches are joined to before they go to its writer (at most a row
/// group's worth): fewer, larger writes, for a bounded amount of memory.
const JOIN_ROWS: usize = 2048;

/// The files of one table, owner and slice, one or more per `date=` day.
pub struct SliceFiles {
    lake: Lake,
    table: Table,
    schema: SchemaRef,
    slice: HourSlice,
    owner: Owner,
    /// Where this set of files is written.
    placement: Placement,
    settings: Arc<WriterSettings>,
    days: BTreeMap<i32, DayFiles>,
    rows: u64,
    /// Rows held in the days' `pending` batches.
    pending_rows: usize,
    writes: u64,
}

fn parquet_error(path: &str, e: parquet::errors::ParquetError) -> Error {
    Error::Store(format!("writing {path}: {e}"))
}

impl SliceFiles {
    /// Files for `owner`'s `table` in `slice`, written as `placement` says (a staging folder
    /// or a unique name no other set of files uses).
    pub fn new(
        lake: Lake,
        table: Table,
        schema: SchemaRef,
        (slice, owner): (HourSlice, Owner),
        placement: Placement,
        settings: Arc<WriterSettings>,
    ) -> SliceFiles {
        SliceFiles {
            lake,
            table,
            schema,
            slice,
            owner,
            placement,
            settings,
            days: BTreeMap::new(),
            rows: 0,
            pending_rows: 0,
            writes: 0,
        }
    }

    /// Rows written so far (held ones included).
    pub fn rows(&self) -> u64 {
        self.rows + self.pending_rows as u64
    }

    /// Appends rows of one day; they stream through the day's open file (rotated at
    /// `max_rows_per_file`), whose row group is flushed by rows or by size. Small batches
    /// are held and joined first (up to `JOIN_ROWS`); `finish` writes what is held.
    pub async fn write(&mut self, day: i32, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let join_rows = JOIN_ROWS
            .min(
                self.settings
                    .properties
                    .max_row_group_row_count()
                    .unwrap_or(JOIN_ROWS),
            )
            .max(1);
        let files = self.days.entry(day).or_default();
        files.pending.push(batch.clone());
        files.pending_rows += batch.num_rows();
        self.pending_rows += batch.num_rows();
        if files.pending_rows >= join_rows {
            self.write_pending(day).await?;
        }
        Ok(())
    }

    /// Gives a day's held batches to its writer, joined into one.
    async fn write_pending(&mut self, day: i32) -> Result<()> {
        let Some(files) = self.days.get_mut(&day) else {
            return Ok(());
        };
        let held = std::mem::take(&mut files.pending);
        self.pending_rows -= std::mem::take(&mut files.pending_rows);
        let joined = match held.as_slice() {
            [] => return Ok(()),
            [one] => one.clone(),
            many => concat_batches(&self.schema, many)
                .map_err(|e| Error::Internal(format!("joining batches: {e}")))?,
        };
        self.write_now(day, &joined).await
    }

    /// Writes rows of one day to its open file now.
    async fn write_now(&mut self, day: i32, batch: &RecordBatch) -> Result<()> {
        let max_rows = self.settings.max_rows_per_file as u64;
        let mut offset = 0usize;
        self.writes += 1;
        while offset < batch.num_rows() {
            self.make_room_for(day).await?;
            self.ensure_open(day)?;
            let files = self.days.entry(day).or_default();
            files.last_write = self.writes;
            let Some(file) = files.open.as_mut() else {
                return Err(Error::Internal("no open file".into()));
            };
            let room = (max_rows - file.rows).min((batch.num_rows() - offset) as u64) as usize;
            if let Err(e) = file.writer.write(&batch.slice(offset, room)).await {
                let error = parquet_error(&file.staged, e);
                if let Some(open) = files.open.take() {
                    abort(open).await;
                }
                return Err(error);
            }
            file.rows += room as u64;
            offset += room;
            self.rows += room as u64;
            if file.writer.in_progress_size() > self.settings.max_buffered_bytes {
                file.writer
                    .flush()
                    .await
                    .map_err(|e| parquet_error(&file.staged, e))?;
            }
            if file.rows >= max_rows {
                close_open(files).await?;
            }
        }
        Ok(())
    }

    /// Closes the least recently written day's file when `day` would open one too many.
    async fn make_room_for(&mut self, day: i32) -> Result<()> {
        if self.days.get(&day).is_some_and(|d| d.open.is_some()) {
            return Ok(());
        }
        let open: Vec<(u64, i32)> = self
            .days
            .iter()
            .filter(|(_, d)| d.open.is_some())
            .map(|(day, d)| (d.last_write, *day))
            .collect();
        if open.len() < MAX_OPEN_DAYS {
            return Ok(());
        }
        if let Some((_, oldest)) = open.into_iter().min()
            && let Some(files) = self.days.get_mut(&oldest)
        {
            close_open(files).await?;
        }
        Ok(())
    }

    fn ensure_open(&mut self, day: i32) -> Result<()> {
        let files = self.days.entry(day).or_default();
        if files.open.is_some() {
            return Ok(());
        }
        let index = files.next_index;
        let (staged, final_path) = match &self.placement {
            Placement::Staged(folder) => {
                let final_path = data_file(self.table, day, self.slice, &self.owner, index);
                (format!("{folder}/{final_path}"), final_path)
            }
            Placement::InPlace(unique) => {
                let path = unique_data_file(self.table, day, self.slice, &self.owner, unique);
                let path = format!("{path}-{index:03}.parquet");
                (path.clone(), path)
            }
        };
        let properties = self
            .settings
            .properties_for(self.table, &self.schema, Some(self.slice));
        let writer = AsyncArrowWriter::try_new(
            self.lake.writer(&staged),
            Arc::clone(&self.schema),
            Some(properties),
        )
        .map_err(|e| parquet_error(&staged, e))?;
        files.next_index += 1;
        files.open = Some(OpenFile {
            writer,
            staged,
            final_path,
            rows: 0,
        });
        Ok(())
    }

    /// Closes every file; returns them in path order.
    pub async fn finish(mut self) -> Result<Vec<StagedFile>> {
        let days: Vec<i32> = self.days.keys().copied().collect();
        for day in days {
            self.write_pending(day).await?;
        }
        let mut all = Vec::new();
        for files in self.days.values_mut() {
            close_open(files).await?;
            all.append(&mut files.closed);
        }
        all.sort_by(|a, b| a.final_path.cmp(&b.final_path));
        Ok(all)
    }
}

/// Discards a file being written (an S3 multipart upload is aborted, so nothing lingers).
async fn abort(file: OpenFile) {
    let mut inner = file.writer.into_inner();
    if let Err(e) = inner.abort().await {
        tracing::debug!(file = %file.staged, error = %e, "could not abort an upload");
    }
}

async fn close_open(files: &mut DayFiles) -> Result<()> {
    if let Some(file) = files.open.take() {
        let mut file = file;
        if let Err(e) = file.writer.finish().await {
            // The writer already tried to complete the upload; aborting a shut-down writer
            // panics in object_store, and there is nothing left to abort locally (S3: a
            // lifecycle rule clears incomplete uploads).
            return Err(parquet_error(&file.staged, e));
        }
        files.closed.push(StagedFile {
            staged: file.staged,
            final_path: file.final_path,
            rows: file.rows,
            bytes: file.writer.bytes_written() as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Output, ParquetSettings};
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// The values of column `n` of a staged file, in file order.
    fn values_of(dir: &std::path::Path, staged: &StagedFile) -> Vec<i64> {
        let file = std::fs::File::open(dir.join(&staged.staged)).expect("staged file");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
        reader
            .flat_map(|batch| {
                let batch = batch.expect("batch");
                batch
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn small_batches_are_joined_and_every_held_row_lands_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        let output = Output::Local(dir.path().to_path_buf());
        let lake = Lake::open(&output, &Default::default())
            .await
            .expect("lake");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let settings = WriterSettings::new(&ParquetSettings {
            zstd_level: 3,
            row_group_rows: 32_768,
            max_rows_per_file: 5_000,
        })
        .expect("settings");
        let slice = HourSlice::parse("2024-05-01T13").expect("slice");
        let owner = Owner::parse("AC00000000000000000000000000000000").expect("owner");
        let mut files = SliceFiles::new(
            lake,
            Table::CallEvents,
            Arc::clone(&schema),
            (slice, owner),
            Placement::Staged("stage".into()),
            Arc::new(settings),
        );
        // 300 calls of 30 rows: every tenth on the next day (2024-05-02).
        let (may_1, may_2) = (19_844, 19_845);
        let mut expected: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for call in 0..300i64 {
            let day = if call % 10 == 9 { may_2 } else { may_1 };
            let values: Vec<i64> = (call * 30..call * 30 + 30).collect();
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(values.clone()))],
            )
            .expect("batch");
            files.write(day, &batch).await.expect("write");
            expected.entry(day).or_default().extend(values);
        }
        // Held rows count as written; `finish` writes them.
        assert_eq!(files.rows(), 9_000);
        let staged = files.finish().await.expect("finish");
        let landed: Vec<(&str, u64)> = staged
            .iter()
            .map(|f| (f.final_path.as_str(), f.rows))
            .collect();
        let prefix = "call_events/date=2024-05-0";
        let name = "2024-05-01T13-AC00000000000000000000000000000000";
        assert_eq!(
            landed,
            vec![
                (format!("{prefix}1/{name}-000.parquet").as_str(), 5_000),
                (format!("{prefix}1/{name}-001.parquet").as_str(), 3_100),
                (format!("{prefix}2/{name}-000.parquet").as_str(), 900),
            ]
        );
        let may_1_values: Vec<i64> = [&staged[0], &staged[1]]
            .into_iter()
            .flat_map(|f| values_of(dir.path(), f))
            .collect();
        assert_eq!(may_1_values, expected[&may_1]);
        assert_eq!(values_of(dir.path(), &staged[2]), expected[&may_2]);
    }
}
