//! Data files of a Delta table, read and written hour by hour: `FileRows` streams a file's
//! batches each tagged with the hour its rows belong to (from the file's row ranges), and
//! `MixedFile` writes rows of several hours of one owner and day into files that record those
//! ranges (the rows an hour's commit keeps of a file it replaces; compaction).

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use object_store::buffered::BufWriter;
#[allow(deprecated)] // object_store's reader is what parquet offers over a store
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStream};
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder};

use super::{DataFile, SliceRows};
use crate::error::{Error, Result};
use crate::hours::HourSlice;
use crate::schema::Table;
use crate::sink::Lake;
use crate::sink::hour::align;
use crate::sink::parquet::{StagedFile, WriterSettings};
use crate::timefmt::day_to_string;

/// A file written by an hour's `SliceFiles` (one hour's rows) as the log will know it.
pub(crate) fn from_staged(
    table: Table,
    file: &StagedFile,
    owner: &str,
    slice: HourSlice,
) -> Result<DataFile> {
    let path = file
        .final_path
        .strip_prefix(&format!("{table}/"))
        .ok_or_else(|| Error::Internal(format!("{} is not in {table}/", file.final_path)))?;
    let day = crate::sink::layout::day_of_path(path)
        .ok_or_else(|| Error::Internal(format!("{path}: no date= in the path")))?;
    Ok(DataFile {
        path: path.to_string(),
        day,
        owner: owner.to_string(),
        slices: vec![SliceRows {
            slice,
            start: 0,
            rows: file.rows,
        }],
        size: file.bytes as i64,
        rows: file.rows,
    })
}

/// The batches of one data file, in file order, each with the hour its rows belong to.
#[allow(deprecated)]
pub(crate) struct FileRows {
    stream: ParquetRecordBatchStream<ParquetObjectReader>,
    ranges: Vec<SliceRows>,
    schema: SchemaRef,
    path: String,
    offset: u64,
    pending: VecDeque<(HourSlice, RecordBatch)>,
}

impl FileRows {
    /// Opens `file` of `table`, its batches lined up with `schema` (new columns null).
    #[allow(deprecated)]
    pub async fn open(
        lake: &Lake,
        table: Table,
        file: &DataFile,
        schema: SchemaRef,
    ) -> Result<FileRows> {
        let path = format!("{table}/{}", file.path);
        let fail = |e: parquet::errors::ParquetError| Error::Lake(format!("reading {path}: {e}"));
        let reader =
            ParquetObjectReader::new(Arc::clone(lake.object_store()), lake.object_path(&path))
                .with_file_size(file.size as u64);
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(fail)?;
        let rows = builder.metadata().file_metadata().num_rows() as u64;
        let tagged: u64 = file.slices.iter().map(|s| s.rows).sum();
        if rows != tagged {
            return Err(Error::Lake(format!(
                "{path}: holds {rows} rows but its voxlake.slices tag names {tagged}"
            )));
        }
        let stream = builder.with_batch_size(8192).build().map_err(fail)?;
        let mut ranges = file.slices.clone();
        ranges.sort_by_key(|r| r.start);
        Ok(FileRows {
            stream,
            ranges,
            schema,
            path,
            offset: 0,
            pending: VecDeque::new(),
        })
    }

    /// The next piece of rows of one hour; None at the end.
    pub async fn next(&mut self) -> Result<Option<(HourSlice, RecordBatch)>> {
        while self.pending.is_empty() {
            let Some(batch) = self.stream.next().await else {
                return Ok(None);
            };
            let batch = batch.map_err(|e| Error::Lake(format!("reading {}: {e}", self.path)))?;
            let batch = align(&batch, &self.schema)
                .map_err(|e| Error::Lake(format!("{}: {e}", self.path)))?;
            let (first, end) = (self.offset, self.offset + batch.num_rows() as u64);
            for range in &self.ranges {
                let lo = range.start.max(first);
                let hi = (range.start + range.rows).min(end);
                if lo < hi {
                    let piece = batch.slice((lo - first) as usize, (hi - lo) as usize);
                    self.pending.push_back((range.slice, piece));
                }
            }
            self.offset = end;
        }
        Ok(self.pending.pop_front())
    }
}

struct OpenMixed {
    writer: AsyncArrowWriter<BufWriter>,
    path: String,
    slices: Vec<SliceRows>,
    rows: u64,
}

/// Files of one table, owner and day holding rows of several hours, each hour's rows written
/// together; a new file starts past `target_bytes`.
pub(crate) struct MixedFile {
    lake: Lake,
    table: Table,
    schema: SchemaRef,
    settings: Arc<WriterSettings>,
    owner: String,
    day: i32,
    /// Makes the names unique: `{owner}-{unique}-NNN.parquet`.
    unique: String,
    target_bytes: u64,
    open: Option<OpenMixed>,
    index: u32,
    done: Vec<DataFile>,
}

impl MixedFile {
    /// A writer of `table`'s files for `owner` and `day`.
    pub fn new(
        (lake, table, schema): (Lake, Table, SchemaRef),
        settings: Arc<WriterSettings>,
        (owner, day): (&str, i32),
        unique: String,
        target_bytes: u64,
    ) -> MixedFile {
        MixedFile {
            lake,
            table,
            schema,
            settings,
            owner: owner.to_string(),
            day,
            unique,
            target_bytes,
            open: None,
            index: 0,
            done: Vec::new(),
        }
    }

    /// Appends rows of one hour (an hour's rows are written one after another).
    pub async fn write(&mut self, slice: HourSlice, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.open.is_none() {
            self.open = Some(self.start_file()?);
        }
        let Some(file) = self.open.as_mut() else {
            return Err(Error::Internal("no open file".into()));
        };
        file.writer
            .write(batch)
            .await
            .map_err(|e| Error::Store(format!("writing {}: {e}", file.path)))?;
        let rows = batch.num_rows() as u64;
        match file.slices.last_mut() {
            Some(last) if last.slice == slice => last.rows += rows,
            _ => file.slices.push(SliceRows {
                slice,
                start: file.rows,
                rows,
            }),
        }
        file.rows += rows;
        let size = (file.writer.bytes_written() + file.writer.in_progress_size()) as u64;
        if size >= self.target_bytes {
            self.close().await?;
        }
        Ok(())
    }

    fn start_file(&mut self) -> Result<OpenMixed> {
        let relative = format!(
            "date={}/{}-{}-{:03}.parquet",
            day_to_string(self.day),
            self.owner,
            self.unique,
            self.index
        );
        self.index += 1;
        let path = format!("{}/{relative}", self.table);
        let properties = self.settings.properties_for(self.table, &self.schema, None);
        let writer = AsyncArrowWriter::try_new(
            self.lake.writer(&path),
            Arc::clone(&self.schema),
            Some(properties),
        )
        .map_err(|e| Error::Store(format!("writing {path}: {e}")))?;
        Ok(OpenMixed {
            writer,
            path: relative,
            slices: Vec::new(),
            rows: 0,
        })
    }

    async fn close(&mut self) -> Result<()> {
        let Some(mut file) = self.open.take() else {
            return Ok(());
        };
        file.writer
            .finish()
            .await
            .map_err(|e| Error::Store(format!("writing {}: {e}", file.path)))?;
        self.done.push(DataFile {
            path: file.path,
            day: self.day,
            owner: self.owner.clone(),
            slices: file.slices,
            size: file.writer.bytes_written() as i64,
            rows: file.rows,
        });
        Ok(())
    }

    /// Closes the open file; returns every file written.
    pub async fn finish(mut self) -> Result<Vec<DataFile>> {
        self.close().await?;
        Ok(self.done)
    }
}

/// Deletes files written for a commit that will not use them (the table moved on).
pub(crate) async fn discard(lake: &Lake, table: Table, files: &[DataFile]) {
    for file in files {
        let path = format!("{table}/{}", file.path);
        if let Err(e) = lake.delete(&path).await {
            tracing::debug!(file = %path, error = %e, "could not delete an unused file; vacuum does");
        }
    }
}
