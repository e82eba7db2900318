//! Delta Lake tables (`format = "delta"`): each table is a Delta table at `{output}/{table}/`,
//! partitioned by `date`, written with delta-rs over the lake's own object store. Every data
//! file voxlake adds is tagged with its owner and the row ranges of each hour it holds
//! (`voxlake.slices`), so that an hour's commit finds the files it replaces in the log itself:
//! the log is the commit (`hour`), and `compact` merges small files without losing that.

pub mod compact;
mod files;
mod hour;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, DataType, PrimitiveType, Remove, StructField, StructType};
use deltalake::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableError};

pub use hour::commit_hour;

use super::store::Lake;
use crate::error::{Error, Result};
use crate::hours::HourSlice;
use crate::schema::{Schemas, Table, TableSchema};
use crate::timefmt::day_to_string;

/// The partition column of every Delta table: the `date=` day of the table's partition
/// column, as a Delta `date`.
pub const DATE_COLUMN: &str = "date";
/// Tag of a data file: the owner (account) whose rows it holds.
const OWNER_TAG: &str = "voxlake.owner";
/// Tag of a data file: `hour:start:rows,…`, the row ranges of each hour in it, in file order.
const SLICES_TAG: &str = "voxlake.slices";
/// Commit attempts before a run gives up on a table that keeps moving under it.
const MAX_ATTEMPTS: usize = 50;

/// The rows of one hour in a data file: `rows` rows from row `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SliceRows {
    /// The hour.
    pub slice: HourSlice,
    /// First row (in file order).
    pub start: u64,
    /// Rows.
    pub rows: u64,
}

/// A data file of a table as its log knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DataFile {
    /// Path relative to the table's folder (`date=…/….parquet`), not URL-encoded.
    pub path: String,
    /// Its `date` partition (days since the epoch).
    pub day: i32,
    /// Whose rows (the owner tag; empty for a file voxlake did not write).
    pub owner: String,
    /// The hours in it.
    pub slices: Vec<SliceRows>,
    /// Bytes.
    pub size: i64,
    /// Rows.
    pub rows: u64,
}

impl DataFile {
    /// Whether it holds rows of the owner's hour.
    pub fn holds(&self, owner: &str, slice: HourSlice) -> bool {
        self.owner == owner && self.slices.iter().any(|s| s.slice == slice)
    }

    fn tags(&self) -> HashMap<String, Option<String>> {
        let slices: Vec<String> = self
            .slices
            .iter()
            .map(|s| format!("{}:{}:{}", s.slice, s.start, s.rows))
            .collect();
        HashMap::from([
            (OWNER_TAG.to_string(), Some(self.owner.clone())),
            (SLICES_TAG.to_string(), Some(slices.join(","))),
        ])
    }

    fn partition_values(&self) -> HashMap<String, Option<String>> {
        HashMap::from([(DATE_COLUMN.to_string(), Some(day_to_string(self.day)))])
    }

    /// The action adding it (`data_change` false when its rows were in the table already).
    pub fn add_action(&self, data_change: bool) -> Action {
        Action::Add(Add {
            path: self.path.clone(),
            partition_values: self.partition_values(),
            size: self.size,
            modification_time: chrono::Utc::now().timestamp_millis(),
            data_change,
            stats: Some(format!("{{\"numRecords\":{}}}", self.rows)),
            tags: Some(self.tags()),
            ..Add::default()
        })
    }

    /// The action removing it.
    pub fn remove_action(&self, data_change: bool) -> Action {
        Action::Remove(Remove {
            path: self.path.clone(),
            data_change,
            deletion_timestamp: Some(chrono::Utc::now().timestamp_millis()),
            extended_file_metadata: Some(true),
            partition_values: Some(self.partition_values()),
            size: Some(self.size),
            tags: Some(self.tags()),
            ..Remove::default()
        })
    }

    /// From an add action of the log.
    fn from_add(add: &Add) -> Option<DataFile> {
        let date = add.partition_values.get(DATE_COLUMN)?.as_deref()?;
        let day = crate::sink::layout::day_of_path(&format!("date={date}"))?;
        let tag = |name: &str| {
            add.tags
                .as_ref()
                .and_then(|t| t.get(name).cloned().flatten())
        };
        let slices = tag(SLICES_TAG)
            .map(|text| parse_slices(&text))
            .unwrap_or_default();
        let rows = slices.iter().map(|s| s.rows).sum();
        Some(DataFile {
            path: add.path.clone(),
            day,
            owner: tag(OWNER_TAG).unwrap_or_default(),
            slices,
            size: add.size,
            rows,
        })
    }
}

fn parse_slices(text: &str) -> Vec<SliceRows> {
    text.split(',')
        .filter_map(|part| {
            let mut fields = part.split(':');
            let slice = HourSlice::parse(fields.next()?)?;
            let start = fields.next()?.parse().ok()?;
            let rows = fields.next()?.parse().ok()?;
            Some(SliceRows { slice, start, rows })
        })
        .collect()
}

/// What a commit attempt came to.
pub(crate) enum Attempt {
    /// Committed as this version.
    Committed(u64),
    /// Another writer committed first: reload and try again.
    Moved,
}

fn delta_error(table: Table, what: &str, e: DeltaTableError) -> Error {
    let text: String = e.to_string().chars().take(500).collect();
    Error::Lake(format!("delta table {table}: {what}: {text}"))
}

/// One Delta table of the lake.
pub struct TableLog {
    table: Table,
    lake: Lake,
    log_store: LogStoreRef,
    /// The last snapshot read, brought up to date incrementally (only the commits since).
    cached: tokio::sync::Mutex<Option<DeltaTableState>>,
}

impl TableLog {
    fn open(lake: &Lake, table: Table) -> Result<TableLog> {
        let (prefixed, root, url) = lake.folder_stores(table.name())?;
        let log_store = default_logstore(prefixed, root, &url, &StorageConfig::default());
        Ok(TableLog {
            table,
            lake: lake.clone(),
            log_store,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// The table.
    pub fn table(&self) -> Table {
        self.table
    }

    /// The latest snapshot; None while the table has no log. The commits since the last
    /// snapshot are read on top of it; the whole log only the first time.
    pub(crate) async fn snapshot(&self) -> Result<Option<DeltaTableState>> {
        let mut cached = self.cached.lock().await;
        if let Some(state) = cached.as_mut() {
            match state.update(self.log_store.as_ref(), None).await {
                Ok(()) => return Ok(Some(state.clone())),
                Err(e) => {
                    tracing::debug!(table = %self.table, error = %e,
                        "reading the log again from its start");
                    *cached = None;
                }
            }
        }
        let log = format!("{}/_delta_log/", self.table);
        if !self.lake.exists_under(&log).await? {
            return Ok(None);
        }
        let mut table = DeltaTable::new(Arc::clone(&self.log_store));
        match table.load().await {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => return Ok(None),
            Err(e) => return Err(delta_error(self.table, "reading the log", e)),
        }
        let state = table
            .snapshot()
            .cloned()
            .map_err(|e| delta_error(self.table, "reading the log", e))?;
        *cached = Some(state.clone());
        Ok(Some(state))
    }

    /// The data files of a snapshot.
    pub(crate) fn data_files(&self, snapshot: &DeltaTableState) -> Vec<DataFile> {
        snapshot
            .log_data()
            .iter()
            .filter_map(|view| {
                #[allow(deprecated)] // the Add action is what the tags come in
                let add = view.add_action();
                DataFile::from_add(&add)
            })
            .collect()
    }

    /// Creates the table, or merges the schema's new columns into it (nullable); refuses a
    /// column whose type changed, naming it.
    async fn prepare(&self, schema: &TableSchema) -> Result<()> {
        let wanted = delta_schema(self.table, schema)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some(snapshot) = self.snapshot().await? else {
                self.lake.create_local_folder(self.table.name())?;
                let created = DeltaTable::new(Arc::clone(&self.log_store))
                    .create()
                    .with_table_name(self.table.name())
                    .with_columns(wanted.fields().cloned())
                    .with_partition_columns([DATE_COLUMN])
                    .with_save_mode(SaveMode::Ignore)
                    .await;
                match created {
                    Ok(_) => return Ok(()),
                    // Another worker created it at the same moment: look again.
                    Err(DeltaTableError::VersionAlreadyExists(_)) => continue,
                    Err(DeltaTableError::Transaction { .. }) => continue,
                    Err(e) => return Err(delta_error(self.table, "creating the table", e)),
                }
            };
            let existing = snapshot.schema();
            let mut missing = Vec::new();
            for field in wanted.fields() {
                match existing.field(field.name()) {
                    Some(old) if old.data_type() == field.data_type() => {}
                    Some(old) => {
                        return Err(Error::Input(format!(
                            "delta table {}: column {} is {} in the table but {} in this \
                             voxlake's schema; a column's type cannot change in place (write \
                             to a new output, or rewrite the table)",
                            self.table,
                            field.name(),
                            old.data_type(),
                            field.data_type()
                        )));
                    }
                    None => missing.push(field.clone()),
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            let names: Vec<String> = missing.iter().map(|f| f.name().to_string()).collect();
            let mut table = DeltaTable::new(Arc::clone(&self.log_store));
            table
                .load()
                .await
                .map_err(|e| delta_error(self.table, "reading the log", e))?;
            match table.add_columns().with_fields(missing).await {
                Ok(_) => {
                    tracing::info!(table = %self.table, columns = ?names,
                        "new columns merged into the Delta table (nullable)");
                    return Ok(());
                }
                Err(DeltaTableError::Transaction { .. })
                | Err(DeltaTableError::VersionAlreadyExists(_)) => continue,
                Err(e) => return Err(delta_error(self.table, "adding columns", e)),
            }
        }
        Err(Error::Lake(format!(
            "delta table {}: the log kept moving while preparing it",
            self.table
        )))
    }

    /// Tries to commit `actions` on top of `snapshot`, with no retry of its own: when the
    /// table has moved on, the caller looks at the new version and decides.
    pub(crate) async fn try_commit(
        &self,
        snapshot: &DeltaTableState,
        actions: Vec<Action>,
        operation: DeltaOperation,
    ) -> Result<Attempt> {
        let properties = CommitProperties::default().with_max_retries(0);
        let committed = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), Arc::clone(&self.log_store), operation)
            .await;
        match committed {
            Ok(done) => Ok(Attempt::Committed(done.version())),
            Err(DeltaTableError::VersionAlreadyExists(_)) => Ok(Attempt::Moved),
            Err(DeltaTableError::Transaction {
                source:
                    TransactionError::MaxCommitAttempts(_) | TransactionError::VersionAlreadyExists(_),
            }) => Ok(Attempt::Moved),
            Err(e) => Err(delta_error(self.table, "committing", e)),
        }
    }

    /// A DeltaTable over the log (vacuum).
    async fn loaded(&self) -> Result<DeltaTable> {
        let mut table = DeltaTable::new(Arc::clone(&self.log_store));
        table
            .load()
            .await
            .map_err(|e| delta_error(self.table, "reading the log", e))?;
        Ok(table)
    }
}

/// The Delta schema of a table: its columns (nullable, so that columns added later merge)
/// and the `date` partition column.
fn delta_schema(table: Table, schema: &TableSchema) -> Result<StructType> {
    let converted: StructType = schema
        .arrow
        .as_ref()
        .try_into_kernel()
        .map_err(|e| Error::Internal(format!("{table}: no Delta type for a column: {e}")))?;
    let mut fields: Vec<StructField> = converted
        .fields()
        .map(|f| StructField::new(f.name(), f.data_type().clone(), true))
        .collect();
    if fields.iter().any(|f| f.name() == DATE_COLUMN) {
        return Err(Error::Internal(format!(
            "{table} has a column named {DATE_COLUMN}, the Delta partition column"
        )));
    }
    fields.push(StructField::new(
        DATE_COLUMN,
        DataType::Primitive(PrimitiveType::Date),
        true,
    ));
    StructType::try_new(fields).map_err(|e| Error::Internal(format!("{table}: {e}")))
}

/// The job's Delta tables, prepared (created, new columns merged) before any request.
pub struct DeltaTables {
    tables: BTreeMap<Table, TableLog>,
}

impl DeltaTables {
    /// Opens and prepares each table: refuses a folder that holds files but no Delta log
    /// (a Parquet-format table: mixing the two would hide rows), and a changed column type.
    pub async fn prepare(lake: &Lake, schemas: &Schemas, tables: &[Table]) -> Result<DeltaTables> {
        let mut logs = BTreeMap::new();
        for table in tables {
            let folder = table.name();
            // In this order: a log is written before any data file, so files seen first
            // and no log seen after them is a table of another kind, never a table another
            // worker is creating at this moment.
            let has_files = lake.exists_under(&format!("{folder}/")).await?;
            if has_files && !lake.exists_under(&format!("{folder}/_delta_log/")).await? {
                return Err(Error::Input(format!(
                    "{}/{folder} holds files but no Delta log: it is a Parquet-format table; \
                     write format = \"delta\" to a new output",
                    lake.shown()
                )));
            }
            let log = TableLog::open(lake, *table)?;
            log.prepare(&schemas.get(*table)).await?;
            logs.insert(*table, log);
        }
        Ok(DeltaTables { tables: logs })
    }

    /// Opens the tables that exist, as they are (status, compact).
    pub async fn open(lake: &Lake, tables: &[Table]) -> Result<DeltaTables> {
        let mut logs = BTreeMap::new();
        for table in tables {
            if lake
                .exists_under(&format!("{}/_delta_log/", table.name()))
                .await?
            {
                logs.insert(*table, TableLog::open(lake, *table)?);
            }
        }
        Ok(DeltaTables { tables: logs })
    }

    /// A table's log.
    pub fn get(&self, table: Table) -> Result<&TableLog> {
        self.tables
            .get(&table)
            .ok_or_else(|| Error::Internal(format!("delta table {table} was not prepared")))
    }

    /// How many hours of the owner's rows the table holds (0 when it does not exist).
    pub async fn hours_with_data(&self, table: Table, owner: &crate::ids::Owner) -> Result<usize> {
        let Some(log) = self.tables.get(&table) else {
            return Ok(0);
        };
        let Some(snapshot) = log.snapshot().await? else {
            return Ok(0);
        };
        let hours: std::collections::BTreeSet<HourSlice> = log
            .data_files(&snapshot)
            .iter()
            .filter(|f| f.owner == owner.as_str())
            .flat_map(|f| f.slices.iter().map(|s| s.slice))
            .collect();
        Ok(hours.len())
    }

    /// Every table opened.
    pub fn all(&self) -> impl Iterator<Item = &TableLog> {
        self.tables.values()
    }
}

/// For a Parquet-format job: refuses tables that are Delta tables (their files are not the
/// table: only their log says which are).
pub async fn refuse_delta_tables(lake: &Lake, tables: &[Table]) -> Result<()> {
    for table in tables {
        if lake
            .exists_under(&format!("{}/_delta_log/", table.name()))
            .await?
        {
            return Err(Error::Input(format!(
                "{}/{table} is a Delta table: set format = \"delta\" in the job file to write it",
                lake.shown()
            )));
        }
    }
    Ok(())
}
