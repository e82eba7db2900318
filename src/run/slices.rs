//! Slices: calls are fetched concurrently across slices; each finished call's rows go to its
//! slice's staged files; a slice is committed when its last call is done.
//!
//! Commit policies: `Replace` (a window covering the whole hour: the slice becomes exactly this
//! run's calls) and `Merge` (per-SID pulls and partial hours: the slice's earlier rows minus
//! the calls fetched now, plus their new rows). A failed call keeps whatever it had before.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::task::JoinSet;

use super::calls::{CallData, CallError, fetch_call};
use super::{FailedCall, Shared};
use crate::error::{Error, Result};
use crate::events::RunStats;
use crate::ids::CallSid;
use crate::schema::Table;
use crate::sink::HourSlice;
use crate::sink::commit::{self, SliceCommit, SliceRecord, TableCommit};
use crate::sink::layout::day_of_path;
use crate::sink::parquet::SliceFiles;
use crate::sink::partition::split_by_day;
use crate::sources::twilio_rest::CallInfo;
use crate::timefmt::micros_to_day;

/// How a slice's earlier rows are treated at commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The slice becomes this run's calls (when none failed).
    Replace,
    /// Earlier rows of other calls stay.
    Merge,
}

/// One slice to fetch.
pub(crate) struct SliceWork {
    pub slice: HourSlice,
    pub calls: Vec<CallInfo>,
    pub policy: Policy,
}

/// What the slices gave.
#[derive(Default)]
pub(crate) struct SlicesOutcome {
    pub committed: Vec<String>,
    pub files: Vec<String>,
    pub failed: Vec<FailedCall>,
}

struct OpenSlice {
    slice: HourSlice,
    policy: Policy,
    remaining: usize,
    files: BTreeMap<Table, SliceFiles>,
    /// Calls fetched whole, and per table those with rows.
    ok: Vec<CallSid>,
    with_rows: BTreeMap<Table, BTreeSet<String>>,
    failed: Vec<FailedCall>,
}

/// Fetches the calls of every slice and commits each slice when its calls are done.
pub(crate) async fn run_slices(shared: Arc<Shared>, work: Vec<SliceWork>) -> Result<SlicesOutcome> {
    let mut outcome = SlicesOutcome::default();
    let mut open: BTreeMap<HourSlice, OpenSlice> = BTreeMap::new();
    let mut queue: VecDeque<(HourSlice, CallInfo)> = VecDeque::new();
    for w in work {
        let slice = OpenSlice {
            slice: w.slice,
            policy: w.policy,
            remaining: w.calls.len(),
            files: BTreeMap::new(),
            ok: Vec::new(),
            with_rows: BTreeMap::new(),
            failed: Vec::new(),
        };
        if w.calls.is_empty() {
            commit_slice(&shared, slice, &mut outcome).await?;
            continue;
        }
        queue.extend(w.calls.into_iter().map(|c| (w.slice, c)));
        open.insert(w.slice, slice);
    }
    let concurrency = shared.plan.twilio.concurrency;
    let mut tasks: JoinSet<(
        HourSlice,
        CallInfo,
        std::result::Result<CallData, CallError>,
    )> = JoinSet::new();
    loop {
        while tasks.len() < concurrency {
            let Some((slice, call)) = queue.pop_front() else {
                break;
            };
            let shared = Arc::clone(&shared);
            tasks.spawn(async move {
                let result = fetch_call(&shared, &call).await;
                (slice, call, result)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (slice, call, result) =
            joined.map_err(|e| Error::Run(format!("a fetch task stopped: {e}")))?;
        let Some(entry) = open.get_mut(&slice) else {
            continue;
        };
        match result {
            Ok(data) => {
                entry.add(&shared, &call, data).await?;
                RunStats::bump(&shared.stats.calls_done, 1);
            }
            Err(e) if e.fatal => return Err(Error::Run(e.reason)),
            Err(e) => {
                tracing::warn!(call_sid = %call.sid, slice = %slice, error = %e.reason, "call failed");
                RunStats::bump(&shared.stats.calls_failed, 1);
                entry.failed.push(FailedCall {
                    call_sid: call.sid.to_string(),
                    slice: Some(slice.to_string()),
                    reason: e.reason,
                });
            }
        }
        entry.remaining -= 1;
        if entry.remaining == 0
            && let Some(done) = open.remove(&slice)
        {
            commit_slice(&shared, done, &mut outcome).await?;
        }
    }
    Ok(outcome)
}

impl OpenSlice {
    fn files_for(&mut self, shared: &Shared, table: Table) -> &mut SliceFiles {
        self.files
            .entry(table)
            .or_insert_with(|| new_files(shared, table, self.slice))
    }

    async fn add(&mut self, shared: &Shared, call: &CallInfo, data: CallData) -> Result<()> {
        let fallback_day = micros_to_day(call.anchor_micros);
        for (table, batch) in data.batches {
            let partition_column = shared.schemas.get(table).partition_column;
            let parts = split_by_day(&batch, partition_column, fallback_day)
                .map_err(|e| Error::Run(format!("{table}: {e}")))?;
            let files = self.files_for(shared, table);
            for (day, part) in parts {
                files.write(day, &part).await?;
            }
            self.with_rows
                .entry(table)
                .or_default()
                .insert(call.sid.to_string());
        }
        self.ok.push(call.sid.clone());
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

/// Publishes a slice: for each per-call table, this run's rows plus the earlier rows the
/// policy keeps, replacing the slice's earlier files.
async fn commit_slice(
    shared: &Shared,
    mut open: OpenSlice,
    outcome: &mut SlicesOutcome,
) -> Result<()> {
    outcome.failed.append(&mut open.failed.clone());
    let nothing_new = open.ok.is_empty() && open.remaining == 0 && !open.failed.is_empty();
    if nothing_new || (open.policy == Policy::Merge && open.ok.is_empty()) {
        return Ok(());
    }
    let replace_all = open.policy == Policy::Replace && open.failed.is_empty();
    let refetched: HashSet<String> = open.ok.iter().map(|s| s.to_string()).collect();
    let mut tables = Vec::new();
    let per_call: Vec<Table> = shared
        .plan
        .tables
        .iter()
        .copied()
        .filter(|t| t.is_per_call())
        .collect();
    for table in per_call {
        let old = commit::read_record(&shared.lake, table, open.slice).await?;
        let mut files = open
            .files
            .remove(&table)
            .unwrap_or_else(|| new_files(shared, table, open.slice));
        let mut calls: BTreeSet<String> = open.with_rows.remove(&table).unwrap_or_default();
        if let Some(old) = old.as_ref().filter(|_| !replace_all) {
            let kept = copy_old_rows(shared, table, old, &refetched, &mut files).await?;
            calls.extend(kept);
        }
        let rows = files.rows();
        let staged = files.finish().await?;
        let finals: Vec<String> = staged.iter().map(|f| f.final_path.clone()).collect();
        let delete: Vec<String> = old
            .as_ref()
            .map(|o| {
                o.files
                    .iter()
                    .filter(|f| !finals.contains(f))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let complete = match open.policy {
            Policy::Replace => open.failed.is_empty(),
            Policy::Merge => old.as_ref().is_some_and(|o| o.complete),
        };
        outcome.files.extend(finals.iter().cloned());
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
                slice: open.slice.to_string(),
                files: finals,
                rows,
                calls: calls.len() as u64,
                complete,
                run_id: shared.run_id.to_string(),
                committed_at: chrono::Utc::now().to_rfc3339(),
            },
        });
    }
    let slice_commit = SliceCommit {
        version: 1,
        run_id: shared.run_id.to_string(),
        slice: open.slice.to_string(),
        tables,
    };
    commit::commit(&shared.lake, &slice_commit).await?;
    let rows: u64 = slice_commit.tables.iter().map(|t| t.record.rows).sum();
    if rows > 0 || !open.failed.is_empty() {
        tracing::info!(slice = %open.slice, calls = open.ok.len(), failed = open.failed.len(), rows,
            "slice committed");
    } else {
        tracing::debug!(slice = %open.slice, "empty slice committed");
    }
    outcome.committed.push(open.slice.to_string());
    Ok(())
}

/// Copies a slice's earlier rows into the new files, except those of `refetched` calls.
/// Returns the calls whose rows were kept.
async fn copy_old_rows(
    shared: &Shared,
    table: Table,
    old: &SliceRecord,
    refetched: &HashSet<String>,
    files: &mut SliceFiles,
) -> Result<BTreeSet<String>> {
    let schema = Arc::clone(&shared.schemas.get(table).arrow);
    let mut kept_calls = BTreeSet::new();
    for path in &old.files {
        let Some(bytes) = shared.lake.get_bytes_opt(path).await? else {
            tracing::warn!(file = %path, "a file of the slice record is missing; its rows are gone");
            continue;
        };
        let day =
            day_of_path(path).ok_or_else(|| Error::Run(format!("{path}: no date= in the path")))?;
        for batch in read_parquet(path, bytes)? {
            let batch = align(&batch, &schema).map_err(|e| Error::Run(format!("{path}: {e}")))?;
            let (kept, calls) =
                without_calls(&batch, refetched).map_err(|e| Error::Run(format!("{path}: {e}")))?;
            kept_calls.extend(calls);
            if kept.num_rows() > 0 {
                files.write(day, &kept).await?;
            }
        }
    }
    Ok(kept_calls)
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

/// Rows whose `call_sid` is not in `calls`, and the distinct call SIDs among them.
fn without_calls(
    batch: &RecordBatch,
    calls: &HashSet<String>,
) -> std::result::Result<(RecordBatch, BTreeSet<String>), String> {
    let sids = batch
        .column_by_name("call_sid")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or("no call_sid column")?;
    let mut kept = BTreeSet::new();
    let mask: BooleanArray = (0..sids.len())
        .map(|i| {
            let keep = sids.is_null(i) || !calls.contains(sids.value(i));
            if keep && !sids.is_null(i) {
                kept.insert(sids.value(i).to_string());
            }
            Some(keep)
        })
        .collect();
    let filtered = filter_record_batch(batch, &mask).map_err(|e| e.to_string())?;
    Ok((filtered, kept))
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
