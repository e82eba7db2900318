//! The Telnyx side of a run. A window streams `/v2/call_events` page by page (ordered by
//! `occurred_at`) and commits each hour once the pages have moved past it; legs and sessions
//! are fetched whole and merged into the hours their events fall in.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{FailedCall, Outcome, Shared};
use crate::error::{Error, Result};
use crate::events::RunStats;
use crate::flatten::{FlattenError, Flattener, PageOutcome, RecordContext};
use crate::ids::Owner;
use crate::ids::TelnyxId;
use crate::schema::Table;
use crate::sink::HourSlice;
use crate::sink::hour::{HourBuild, Replace, commit_hour as sink_commit};
use crate::sources::telnyx::{Filter, Pager};
use crate::sources::{PageConsumer, SourceError};
use crate::timefmt::micros_to_day;

const TABLE: Table = Table::TelnyxCallEvents;

/// Telnyx records carry their own ids: pages go straight into a flattener.
impl PageConsumer for Flattener {
    fn read_page(&mut self, body: &[u8]) -> std::result::Result<PageOutcome, FlattenError> {
        self.push_page(body, &RecordContext::default())
    }

    fn read_record(&mut self, body: &[u8]) -> std::result::Result<(), FlattenError> {
        self.push_record(body, &RecordContext::default())
    }

    async fn page_done(&mut self) -> std::result::Result<(), SourceError> {
        Ok(())
    }
}

/// The Telnyx account of the job's key.
fn owner(shared: &Shared) -> Result<Owner> {
    shared
        .telnyx_owner
        .clone()
        .ok_or_else(|| Error::Run("no Telnyx key configured".into()))
}

fn new_build(owner: &Owner, hour: HourSlice, replace: Replace, done: bool) -> HourBuild {
    HourBuild::new((owner.clone(), hour), "telnyx", vec![TABLE], replace, done)
}

/// Rows of a batch by hour of their `event_timestamp`; rows outside [from, to) are dropped.
/// A row without a time goes with the row before it (events are ordered by time).
fn rows_by_hour(
    batch: &RecordBatch,
    partition: usize,
    window: Option<(i64, i64)>,
) -> Result<Vec<(HourSlice, RecordBatch)>> {
    let times = batch
        .column(partition)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| Error::Run("telnyx: event_timestamp is not a timestamp".into()))?;
    let mut groups: BTreeMap<HourSlice, Vec<u32>> = BTreeMap::new();
    let mut last: Option<i64> = window.map(|(from, _)| from);
    for (i, time) in times.iter().enumerate() {
        let Some(micros) = time.or(last) else {
            continue;
        };
        last = Some(micros);
        if let Some((from, to)) = window
            && !(from..to).contains(&micros)
        {
            continue;
        }
        groups
            .entry(HourSlice::from_micros(micros))
            .or_default()
            .push(i as u32);
    }
    groups
        .into_iter()
        .map(|(hour, rows)| {
            let indices = UInt32Array::from(rows);
            take_record_batch(batch, &indices)
                .map(|part| (hour, part))
                .map_err(|e| Error::Run(format!("telnyx: {e}")))
        })
        .collect()
}

/// How a window's hour replaces what it had, and whether it is done once committed (wholly
/// inside the window, and closed when the listing started).
fn replace_for(
    hour: HourSlice,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    closed: bool,
) -> (Replace, bool) {
    if hour.start() >= from && hour.end() <= to {
        return (Replace::All, closed);
    }
    let start = hour.start().max(from).timestamp_micros();
    let end = hour.end().min(to).timestamp_micros();
    (
        Replace::Matching {
            keys: Vec::new(),
            time: Some((start, end)),
        },
        false,
    )
}

/// A window [from, to): the hours to do (all, or those not yet done for a backfill), fetched
/// as contiguous ranges so that done hours are never listed again.
pub(crate) async fn run_window(
    shared: &Arc<Shared>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skip_done: bool,
) -> Result<Outcome> {
    let mut todo = HourSlice::covering(from, to);
    if skip_done {
        let owner = owner(shared)?;
        let coverage = shared.coverage.lock().await;
        todo.retain(|h| !coverage.all_of(&owner, &[TABLE], *h));
    }
    let mut outcome = Outcome::default();
    for (first, last) in contiguous(&todo) {
        let range_from = first.start().max(from);
        let range_to = last.end().min(to);
        if let Err(e) = run_range(shared, range_from, range_to, from, to, &mut outcome).await {
            if !e.1 {
                return Err(e.0);
            }
            let reason = e.0.to_string();
            tracing::warn!(from = %range_from, to = %range_to, error = %reason, "Telnyx window failed");
            outcome.failed.push(FailedCall {
                id: format!("telnyx {range_from}..{range_to}"),
                kind: "telnyx_window".into(),
                slice: None,
                reason,
            });
            outcome
                .undone
                .extend(HourSlice::covering(range_from, range_to));
        }
    }
    Ok(outcome)
}

fn contiguous(hours: &[HourSlice]) -> Vec<(HourSlice, HourSlice)> {
    let mut ranges: Vec<(HourSlice, HourSlice)> = Vec::new();
    for hour in hours {
        match ranges.last_mut() {
            Some((_, last)) if last.next() == *hour => *last = *hour,
            _ => ranges.push((*hour, *hour)),
        }
    }
    ranges
}

/// One contiguous range of hours; `Err((e, true))` is a failure of this range only.
async fn run_range(
    shared: &Arc<Shared>,
    range_from: DateTime<Utc>,
    range_to: DateTime<Utc>,
    window_from: DateTime<Utc>,
    window_to: DateTime<Utc>,
    outcome: &mut Outcome,
) -> std::result::Result<(), (Error, bool)> {
    let run_error = |e: Error| (e, false);
    let range_error = |e: crate::sources::SourceError| {
        let classified = super::calls::CallError::from(e);
        (Error::Run(classified.reason), !classified.fatal)
    };
    let client = shared
        .clients
        .telnyx()
        .map_err(|e| (Error::Run(e.reason), false))?;
    let schema = shared.schemas.get(TABLE);
    let window = (range_from.timestamp_micros(), range_to.timestamp_micros());
    let filter = Filter {
        occurred_from: Some(range_from),
        ..Filter::default()
    };
    let mut pager = Pager::new(
        client,
        &filter,
        shared.plan.telnyx.page_size,
        shared.plan.telnyx.max_pages,
        Some(window.1),
    )
    .map_err(range_error)?;
    let owner = owner(shared).map_err(run_error)?;
    let mut open: BTreeMap<HourSlice, HourBuild> = BTreeMap::new();
    let listed_at = shared.now();
    let closed = |hour: HourSlice| shared.closed_at(hour, listed_at);
    let mut next_hour = HourSlice::from_time(range_from);
    let last_hour = HourSlice::from_micros(window.1 - 1);
    loop {
        if shared.stop.requested() {
            return Err((shared.stop.error(), false));
        }
        let mut flattener = Flattener::from_plan(shared.flatten_plan(TABLE));
        let page = pager
            .next_page(client, &mut flattener)
            .await
            .map_err(range_error)?;
        let Some(page) = page else { break };
        shared
            .drift
            .report(TABLE, flattener.take_new_unknown_paths());
        let batch = flattener
            .finish(&shared.lineage)
            .map_err(|e| (Error::Run(e.to_string()), true))?;
        let rows = batch.as_ref().map_or(0, |b| b.num_rows()) as u64;
        shared.stats.add(TABLE, rows, 1);
        let Some(batch) = batch else { continue };
        for (hour, part) in
            rows_by_hour(&batch, schema.partition_column, Some(window)).map_err(run_error)?
        {
            let build = open.entry(hour).or_insert_with(|| {
                let (replace, done) = replace_for(hour, window_from, window_to, closed(hour));
                new_build(&owner, hour, replace, done)
            });
            build
                .add_rows(
                    &shared.sink,
                    TABLE,
                    &part,
                    micros_to_day(hour.start().timestamp_micros()),
                )
                .await
                .map_err(run_error)?;
        }
        // Events come in time order: hours before the page's last event are complete.
        if let Some(last) = page.last_partition_micros {
            let current = HourSlice::from_micros(last).min(last_hour.next());
            let window = (window_from, window_to, listed_at);
            commit_before(shared, &mut next_hour, current, &mut open, window, outcome)
                .await
                .map_err(run_error)?;
        }
    }
    let window = (window_from, window_to, listed_at);
    commit_before(
        shared,
        &mut next_hour,
        last_hour.next(),
        &mut open,
        window,
        outcome,
    )
    .await
    .map_err(run_error)
}

/// Commits the hours from `next_hour` up to (not including) `until`.
async fn commit_before(
    shared: &Shared,
    next_hour: &mut HourSlice,
    until: HourSlice,
    open: &mut BTreeMap<HourSlice, HourBuild>,
    window: (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>),
    outcome: &mut Outcome,
) -> Result<()> {
    while *next_hour < until {
        commit_hour(shared, *next_hour, open, window, outcome).await?;
        *next_hour = next_hour.next();
    }
    Ok(())
}

async fn commit_hour(
    shared: &Shared,
    hour: HourSlice,
    open: &mut BTreeMap<HourSlice, HourBuild>,
    (from, to, listed_at): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>),
    outcome: &mut Outcome,
) -> Result<()> {
    let build = match open.remove(&hour) {
        Some(build) => build,
        None => {
            let closed = shared.closed_at(hour, listed_at);
            let (replace, done) = replace_for(hour, from, to, closed);
            new_build(&owner(shared)?, hour, replace, done)
        }
    };
    let done = build.complete;
    if !done {
        outcome.undone.insert(hour);
    }
    let owner = build.owner.clone();
    let committed = sink_commit(&shared.sink, build).await?;
    if done {
        shared.mark_done(&owner, &[TABLE], hour).await?;
    }
    if committed.rows > 0 {
        tracing::info!(slice = %hour, rows = committed.rows, "Telnyx hour committed");
    }
    outcome.committed.push(format!("{hour} (telnyx)"));
    outcome.files.extend(committed.files);
    Ok(())
}

/// Legs and sessions: each fetched whole (within the window, if one is given), merged into the
/// hours their events fall in; a failed leg keeps what it had.
pub(crate) async fn run_ids(
    shared: &Arc<Shared>,
    legs: &[TelnyxId],
    sessions: &[TelnyxId],
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<Outcome> {
    let units: Vec<(&'static str, TelnyxId)> = legs
        .iter()
        .map(|l| ("leg", l.clone()))
        .chain(sessions.iter().map(|s| ("session", s.clone())))
        .collect();
    RunStats::bump(&shared.stats.calls_total, units.len() as u64);
    let results: Vec<_> = futures::stream::iter(units)
        .map(|(kind, id)| async move {
            let result = fetch_unit(shared, kind, &id, window).await;
            (kind, id, result)
        })
        .buffer_unordered(shared.plan.telnyx.concurrency)
        .collect()
        .await;
    let mut outcome = Outcome::default();
    let mut legs_ok = HashSet::new();
    let mut sessions_ok = HashSet::new();
    let mut batches = Vec::new();
    for (kind, id, result) in results {
        match result {
            Ok(batch) => {
                RunStats::bump(&shared.stats.calls_done, 1);
                if kind == "leg" {
                    legs_ok.insert(id.to_string())
                } else {
                    sessions_ok.insert(id.to_string())
                };
                batches.extend(batch);
            }
            Err(e) if e.1 => return Err(Error::Run(e.0)),
            Err(e) => {
                RunStats::bump(&shared.stats.calls_failed, 1);
                tracing::warn!(id = %id, kind, error = %e.0, "Telnyx {kind} failed");
                outcome.failed.push(FailedCall {
                    id: id.to_string(),
                    kind: kind.into(),
                    slice: None,
                    reason: e.0,
                });
            }
        }
    }
    let keys = vec![("call_leg_id", legs_ok), ("call_session_id", sessions_ok)];
    let time = window.map(|(f, t)| (f.timestamp_micros(), t.timestamp_micros()));
    let schema = shared.schemas.get(TABLE);
    let owner = owner(shared)?;
    let mut builds: BTreeMap<HourSlice, HourBuild> = BTreeMap::new();
    for batch in batches {
        for (hour, part) in rows_by_hour(&batch, schema.partition_column, time)? {
            let build = builds.entry(hour).or_insert_with(|| {
                let replace = Replace::Matching {
                    keys: keys.clone(),
                    time,
                };
                new_build(&owner, hour, replace, false)
            });
            build
                .add_rows(
                    &shared.sink,
                    TABLE,
                    &part,
                    micros_to_day(hour.start().timestamp_micros()),
                )
                .await?;
        }
    }
    let hours: BTreeSet<HourSlice> = builds.keys().copied().collect();
    for hour in hours {
        if let Some(build) = builds.remove(&hour) {
            let committed = sink_commit(&shared.sink, build).await?;
            outcome.committed.push(format!("{hour} (telnyx)"));
            outcome.files.extend(committed.files);
        }
    }
    Ok(outcome)
}

/// Every page of one leg or session; `Err((reason, fatal))`.
async fn fetch_unit(
    shared: &Shared,
    kind: &str,
    id: &TelnyxId,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> std::result::Result<Option<RecordBatch>, (String, bool)> {
    let client = shared.clients.telnyx().map_err(|e| (e.reason, true))?;
    let filter = Filter {
        occurred_from: window.map(|w| w.0),
        leg: (kind == "leg").then(|| id.clone()),
        session: (kind == "session").then(|| id.clone()),
    };
    let stop = window.map(|w| w.1.timestamp_micros());
    let telnyx = &shared.plan.telnyx;
    let mut pager = Pager::new(client, &filter, telnyx.page_size, telnyx.max_pages, stop)
        .map_err(|e| (e.to_string(), true))?;
    let mut flattener = Flattener::from_plan(shared.flatten_plan(TABLE));
    let mut pages = 0;
    while pager
        .next_page(client, &mut flattener)
        .await
        .map_err(|e| {
            let fatal = super::calls::CallError::from(e);
            (fatal.reason, fatal.fatal)
        })?
        .is_some()
    {
        pages += 1;
    }
    shared
        .drift
        .report(TABLE, flattener.take_new_unknown_paths());
    shared.stats.add(TABLE, flattener.rows() as u64, pages);
    flattener
        .finish(&shared.lineage)
        .map_err(|e| (e.to_string(), false))
}
