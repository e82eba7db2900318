//! Staged Parquet files of one table, one owner and one slice: zstd, column statistics, row
//! groups flushed by rows and by size, files rotated by rows, names derived from the slice and
//! the owner. Files are written under the run's staging folder; `commit` publishes them.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

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

    /// The properties of a file of `table`, naming the table and (when it holds one hour's
    /// rows) the hour in its key-value metadata.
    pub(crate) fn properties_for(
        &self,
        table: Table,
        slice: Option<HourSlice>,
    ) -> WriterProperties {
        let mut metadata = vec![KeyValue::new(
            "voxlake.table".into(),
            table.name().to_string(),
        )];
        if let Some(slice) = slice {
            metadata.push(KeyValue::new("voxlake.slice".into(), slice.to_string()));
        }
        self.properties
            .clone()
            .into_builder()
            .set_key_value_metadata(Some(metadata))
            .build()
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
    next_index: u32,
    closed: Vec<StagedFile>,
    /// When rows last went to its open file (a counter of writes).
    last_write: u64,
}

/// Days with an open file at most: a row group in progress is held in memory, so a call
/// whose rows span many days (a long one) closes its older days' files as it moves on (a
/// later row of a closed day opens its next file).
const MAX_OPEN_DAYS: usize = 4;

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
            writes: 0,
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends rows of one day; they stream through the day's open file (rotated at
    /// `max_rows_per_file`), whose row group is flushed by rows or by size.
    pub async fn write(&mut self, day: i32, batch: &RecordBatch) -> Result<()> {
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
        let properties = self.settings.properties_for(self.table, Some(self.slice));
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
