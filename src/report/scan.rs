//! Reads one table's rows of a window from the lake: only the `date=` partitions of the
//! window (from the folder names, or from a Delta table's log) and only the columns asked
//! for (Parquet projection), streamed batch by batch, one file at a time per task.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{Error, Result};
use crate::output::TableFormat;
use crate::schema::Table;
use crate::sink::Lake;
use crate::sink::delta::DeltaTables;
use crate::timefmt::day_to_string;

/// Rows per batch read (a batch is the unit of memory a scan holds per file).
const BATCH_ROWS: usize = 8192;

/// The kind a column is read as (cast to, when a file holds it as another Arrow type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text (Utf8).
    Text,
    /// 64-bit float.
    Float,
    /// 64-bit integer.
    Int,
    /// Microseconds since the epoch, UTC.
    Time,
}

impl Kind {
    fn arrow_type(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::Float => DataType::Float64,
            Kind::Int => DataType::Int64,
            Kind::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// A data file of a table in the window: its path relative to the output, and its size when
/// the listing or the log gave it.
#[derive(Clone, Debug)]
pub struct LakeFile {
    /// Path relative to the output.
    pub path: String,
    /// Bytes.
    pub size: u64,
}

/// Where a table's data files are listed from.
pub struct TableIndex {
    format: TableFormat,
    delta: Option<DeltaTables>,
}

impl TableIndex {
    /// Opens the index of the lake's tables (a Delta job's logs are read here).
    pub async fn open(lake: &Lake, format: TableFormat, tables: &[Table]) -> Result<TableIndex> {
        let delta = match format {
            TableFormat::Delta => Some(DeltaTables::open(lake, tables).await?),
            TableFormat::Parquet => None,
        };
        Ok(TableIndex { format, delta })
    }

    /// Whether the lake holds the table at all.
    pub async fn has_table(&self, lake: &Lake, table: Table) -> Result<bool> {
        match (&self.delta, self.format) {
            (Some(delta), _) => Ok(delta.all().any(|log| log.table() == table)),
            (None, _) => lake.exists_under(&format!("{table}/")).await,
        }
    }

    /// The days (since the epoch) that hold data files of the table.
    pub async fn days(&self, lake: &Lake, table: Table) -> Result<Vec<i32>> {
        if let Some(delta) = &self.delta {
            let mut days: Vec<i32> = delta_files(delta, table)
                .await?
                .iter()
                .map(|f| f.day)
                .collect();
            days.sort_unstable();
            days.dedup();
            return Ok(days);
        }
        let mut days: Vec<i32> = lake
            .subfolders(table.name())
            .await?
            .iter()
            .filter_map(|name| crate::sink::layout::day_of_path(name))
            .collect();
        days.sort_unstable();
        Ok(days)
    }

    /// The table's data files of the days `first..=last`.
    pub async fn files(
        &self,
        lake: &Lake,
        table: Table,
        (first, last): (i32, i32),
    ) -> Result<Vec<LakeFile>> {
        if let Some(delta) = &self.delta {
            let mut files: Vec<LakeFile> = delta_files(delta, table)
                .await?
                .into_iter()
                .filter(|f| (first..=last).contains(&f.day))
                .map(|f| LakeFile {
                    path: format!("{table}/{}", f.path),
                    size: u64::try_from(f.size).unwrap_or(0),
                })
                .collect();
            files.sort_by(|a, b| a.path.cmp(&b.path));
            return Ok(files);
        }
        let mut files = Vec::new();
        for day in first..=last {
            let folder = format!("{table}/date={}/", day_to_string(day));
            for (path, size) in lake.list_sized(&folder).await? {
                let name = path.rsplit('/').next().unwrap_or_default();
                if name.ends_with(".parquet") && !name.starts_with('.') {
                    files.push(LakeFile { path, size });
                }
            }
        }
        Ok(files)
    }
}

async fn delta_files(
    delta: &DeltaTables,
    table: Table,
) -> Result<Vec<crate::sink::delta::DataFile>> {
    let Some(log) = delta.all().find(|log| log.table() == table) else {
        return Ok(Vec::new());
    };
    let Some(snapshot) = log.snapshot().await? else {
        return Ok(Vec::new());
    };
    Ok(log.data_files(&snapshot))
}

/// One batch of a file's rows: the columns asked for, by name, in their kinds (a column the
/// file does not have reads as absent), and which rows are in the window.
pub struct Rows {
    columns: Vec<Option<ArrayRef>>,
    in_window: Vec<usize>,
}

impl Rows {
    /// The rows in the window (indexes into the columns).
    pub fn in_window(&self) -> &[usize] {
        &self.in_window
    }

    /// A text column (the `index`th asked for).
    pub fn text(&self, index: usize) -> Option<&arrow::array::StringArray> {
        self.columns
            .get(index)?
            .as_ref()
            .map(|a| a.as_string::<i32>())
    }

    /// A float column.
    pub fn float(&self, index: usize) -> Option<&arrow::array::Float64Array> {
        self.columns
            .get(index)?
            .as_ref()
            .map(|a| a.as_primitive::<Float64Type>())
    }

    /// An integer column.
    pub fn int(&self, index: usize) -> Option<&arrow::array::Int64Array> {
        self.columns
            .get(index)?
            .as_ref()
            .map(|a| a.as_primitive::<Int64Type>())
    }

    /// A time column (microseconds).
    pub fn time(&self, index: usize) -> Option<&arrow::array::TimestampMicrosecondArray> {
        self.columns
            .get(index)?
            .as_ref()
            .map(|a| a.as_primitive::<TimestampMicrosecondType>())
    }
}

/// What to read of a table: the columns (the first is the table's own time, which the
/// window is applied to) and the window in microseconds `[from, to)`.
#[derive(Clone, Debug)]
pub struct ScanSpec {
    /// Columns and their kinds; column 0 is the time the table is partitioned by.
    pub columns: Vec<(&'static str, Kind)>,
    /// Window start (µs, inclusive).
    pub from: i64,
    /// Window end (µs, exclusive).
    pub to: i64,
}

/// Streams one file's rows of the window through `visit`, batch by batch; returns the rows
/// in the window.
pub async fn scan_file(
    lake: &Lake,
    file: &LakeFile,
    spec: &ScanSpec,
    mut visit: impl FnMut(&Rows),
) -> Result<u64> {
    let reader = StoreReader {
        store: Arc::clone(lake.object_store()),
        path: lake.object_path(&file.path),
        size: file.size,
    };
    let read_error = |e: parquet::errors::ParquetError| {
        Error::Lake(format!(
            "reading {}: {}",
            file.path,
            truncate(&e.to_string())
        ))
    };
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(read_error)?;
    let file_schema = Arc::clone(builder.schema());
    let present: Vec<&str> = spec
        .columns
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| file_schema.field_with_name(name).is_ok())
        .collect();
    let mask = ProjectionMask::columns(builder.parquet_schema(), present.iter().copied());
    let mut stream = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(read_error)?;
    let mut rows_in_window = 0u64;
    while let Some(batch) = stream.try_next().await.map_err(read_error)? {
        let rows = rows_of(&batch, spec, &file.path)?;
        rows_in_window += rows.in_window.len() as u64;
        visit(&rows);
    }
    Ok(rows_in_window)
}

fn rows_of(batch: &RecordBatch, spec: &ScanSpec, path: &str) -> Result<Rows> {
    let columns = spec
        .columns
        .iter()
        .map(|(name, kind)| {
            let Some(array) = batch.column_by_name(name) else {
                return Ok(None);
            };
            if array.data_type() == &kind.arrow_type() {
                return Ok(Some(Arc::clone(array)));
            }
            arrow::compute::cast(array, &kind.arrow_type())
                .map(Some)
                .map_err(|e| Error::Lake(format!("{path}: column {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let in_window = match columns.first().and_then(|c| c.as_ref()) {
        Some(times) => {
            let times = times.as_primitive::<TimestampMicrosecondType>();
            (0..times.len())
                .filter(|&row| {
                    times.is_valid(row) && (spec.from..spec.to).contains(&times.value(row))
                })
                .collect()
        }
        None => Vec::new(),
    };
    Ok(Rows { columns, in_window })
}

/// A Parquet file in the store, read by ranges: the footer first, then only the column
/// chunks of the projection.
struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

/// The store's error as the sink words it (nothing that could carry a secret).
fn store_error(e: object_store::Error) -> ParquetError {
    ParquetError::General(crate::sink::store::describe_store_error(&e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        use object_store::ObjectStoreExt;
        self.store
            .get_range(&self.path, range)
            .map_err(store_error)
            .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(store_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(300).collect()
}
