//! The Twilio side of a run: which calls (given SIDs, or discovered for a window), and the
//! pipeline that fetches them concurrently across hours, streams their rows into their hours,
//! and commits each hour when its last call is done. A call is all or nothing: a failed call's
//! rows are taken out of its hour, and the hour keeps whatever that call had before.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::calls::{CallError, CallEvent, fetch_call};
use super::{FailedCall, Outcome, Shared};
use crate::error::{Error, Result};
use crate::events::RunStats;
use crate::ids::{CallSid, Owner};
use crate::job::plan::Discovery;
use crate::schema::Table;
use crate::sink::HourSlice;
use crate::sink::hour::{HourBuild, Replace, commit_hour as sink_commit};
use crate::sources::twilio_insights;
use crate::sources::twilio_rest::{self, CallInfo};
use crate::timefmt::micros_to_day;

/// One hour's calls.
pub(crate) struct HourWork {
    pub slice: HourSlice,
    pub calls: Vec<CallInfo>,
    /// The hour lies wholly inside a window: it becomes exactly this run's calls.
    pub whole: bool,
    /// The hour had ended (and `lag` had passed) when its calls were listed: once committed
    /// whole it is done.
    pub closed: bool,
}

struct OpenHour {
    build: HourBuild,
    whole: bool,
    closed: bool,
    remaining: usize,
    ok: HashSet<String>,
    failed: Vec<FailedCall>,
}

/// The Twilio per-call tables of the job.
pub(crate) fn tables(shared: &Shared) -> Vec<Table> {
    shared
        .plan
        .tables
        .iter()
        .copied()
        .filter(|t| t.is_per_call())
        .collect()
}

/// The account the Twilio tables' hours belong to.
fn owner(shared: &Shared) -> Result<Owner> {
    shared
        .twilio_owner
        .clone()
        .ok_or_else(|| Error::Run("no Twilio credentials configured".into()))
}

/// Fetches and commits the hours `work` yields, calls concurrently across hours.
pub(crate) async fn run_hours(
    shared: Arc<Shared>,
    mut work: mpsc::Receiver<HourWork>,
) -> Result<Outcome> {
    let concurrency = shared.plan.twilio.concurrency;
    let mut outcome = Outcome::default();
    let mut open: BTreeMap<HourSlice, OpenHour> = BTreeMap::new();
    let mut queue: VecDeque<(HourSlice, CallInfo)> = VecDeque::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Rows and ends of calls, in the order each call sent them; bounded, so that fetches
    // wait while the hours' files take what they sent.
    let (events_tx, mut events) = mpsc::channel::<CallEvent>(concurrency * 2);
    let mut in_flight = 0usize;
    let mut work_open = true;
    loop {
        while in_flight < concurrency {
            let Some((slice, call)) = queue.pop_front() else {
                break;
            };
            tasks.spawn(fetch_task(
                Arc::clone(&shared),
                slice,
                call,
                events_tx.clone(),
            ));
            in_flight += 1;
        }
        if in_flight == 0 && queue.is_empty() && !work_open {
            break;
        }
        tokio::select! {
            () = shared.stop.wait() => {
                tasks.abort_all();
                return Err(shared.stop.error());
            }
            Some(event) = events.recv(), if in_flight > 0 => match event {
                CallEvent::Rows { slice, sid, table, batch } => {
                    if let Some(hour) = open.get_mut(&slice) {
                        let fallback_day = micros_to_day(slice.start().timestamp_micros());
                        hour.build.add(&shared.sink, table, &sid, &batch, fallback_day).await?;
                    }
                }
                CallEvent::Done { slice, call, result } => {
                    in_flight -= 1;
                    if let Some(done) = finish_call(&shared, &mut open, slice, &call, result)? {
                        commit_hour(&shared, done, &mut outcome).await?;
                    }
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                joined.map_err(|e| Error::Run(format!("a fetch task stopped: {e}")))?;
            }
            next = work.recv(), if work_open && queue.len() < concurrency => match next {
                Some(hour) => accept(&shared, hour, &mut open, &mut queue, &mut outcome).await?,
                None => work_open = false,
            },
        }
    }
    Ok(outcome)
}

/// One call's fetch: its rows, then its end, always (a panic counts as a failed call).
async fn fetch_task(
    shared: Arc<Shared>,
    slice: HourSlice,
    call: CallInfo,
    events: mpsc::Sender<CallEvent>,
) {
    let fetched = std::panic::AssertUnwindSafe(fetch_call(&shared, &call, slice, &events))
        .catch_unwind()
        .await;
    let result = fetched.unwrap_or_else(|_| {
        Err(CallError {
            reason: "internal error: the call's fetch panicked".into(),
            fatal: false,
        })
    });
    let _ = events
        .send(CallEvent::Done {
            slice,
            call,
            result,
        })
        .await;
}

async fn accept(
    shared: &Arc<Shared>,
    hour: HourWork,
    open: &mut BTreeMap<HourSlice, OpenHour>,
    queue: &mut VecDeque<(HourSlice, CallInfo)>,
    outcome: &mut Outcome,
) -> Result<()> {
    let entry = OpenHour {
        build: HourBuild::new(
            (owner(shared)?, hour.slice),
            "twilio",
            tables(shared),
            Replace::All,
            hour.whole && hour.closed,
        ),
        whole: hour.whole,
        closed: hour.closed,
        remaining: hour.calls.len(),
        ok: HashSet::new(),
        failed: Vec::new(),
    };
    if hour.calls.is_empty() {
        return commit_hour(shared, entry, outcome).await;
    }
    queue.extend(hour.calls.into_iter().map(|c| (hour.slice, c)));
    open.insert(hour.slice, entry);
    Ok(())
}

/// Files a finished call into its hour; returns the hour when it was the last call.
fn finish_call(
    shared: &Arc<Shared>,
    open: &mut BTreeMap<HourSlice, OpenHour>,
    slice: HourSlice,
    call: &CallInfo,
    result: std::result::Result<(), CallError>,
) -> Result<Option<OpenHour>> {
    let Some(entry) = open.get_mut(&slice) else {
        return Ok(None);
    };
    match result {
        Ok(()) => {
            entry.ok.insert(call.sid.to_string());
            RunStats::bump(&shared.stats.calls_done, 1);
        }
        Err(e) if e.fatal => return Err(Error::Run(e.reason)),
        Err(e) => {
            tracing::warn!(call_sid = %call.sid, slice = %slice, error = %e.reason, "call failed");
            RunStats::bump(&shared.stats.calls_failed, 1);
            entry.build.drop_unit(call.sid.as_str());
            entry
                .failed
                .push(FailedCall::call(call.sid.as_str(), Some(slice), e.reason));
        }
    }
    entry.remaining -= 1;
    Ok(if entry.remaining == 0 {
        open.remove(&slice)
    } else {
        None
    })
}

async fn commit_hour(shared: &Shared, mut hour: OpenHour, outcome: &mut Outcome) -> Result<()> {
    let slice = hour.build.slice;
    outcome.failed.append(&mut hour.failed.clone());
    let clean = hour.failed.is_empty();
    if !clean && hour.ok.is_empty() {
        outcome.undone.insert(slice);
        return Ok(());
    }
    if !(hour.whole && clean) {
        hour.build.replace = Replace::Matching {
            keys: vec![("call_sid", hour.ok.clone())],
            time: None,
        };
    }
    let done = hour.whole && clean && hour.closed;
    hour.build.complete = done;
    if !done {
        outcome.undone.insert(slice);
    }
    let (owner, tables) = (hour.build.owner.clone(), hour.build.tables.clone());
    let committed = sink_commit(&shared.sink, hour.build).await?;
    if done {
        shared.mark_done(&owner, &tables, slice).await?;
    }
    if committed.rows > 0 || !clean {
        tracing::info!(slice = %slice, calls = hour.ok.len(), failed = hour.failed.len(),
            rows = committed.rows, "hour committed");
    }
    outcome.committed.push(slice.to_string());
    outcome.files.extend(committed.files);
    Ok(())
}

/// The REST client and the account its paths are under.
fn rest_and_account(shared: &Shared) -> Result<(&crate::http::ApiClient, &crate::ids::AccountSid)> {
    let client = shared.clients.rest().map_err(|e| Error::Run(e.reason))?;
    let account = &shared
        .clients
        .credentials()
        .map_err(|e| Error::Run(e.reason))?
        .account_sid;
    Ok((client, account))
}

/// Per-SID: each call's resource tells its start (its hour); hours are merged, not replaced.
pub(crate) async fn produce_calls(
    shared: Arc<Shared>,
    sids: Vec<CallSid>,
    tx: mpsc::Sender<HourWork>,
) -> Result<Vec<FailedCall>> {
    RunStats::bump(&shared.stats.calls_total, sids.len() as u64);
    let (client, account) = rest_and_account(&shared)?;
    let results: Vec<_> = futures::stream::iter(sids)
        .map(|sid| async move {
            let result = twilio_rest::fetch_call(client, account, &sid).await;
            (sid, result)
        })
        .buffer_unordered(shared.plan.twilio.concurrency)
        .collect()
        .await;
    let mut by_hour: BTreeMap<HourSlice, Vec<CallInfo>> = BTreeMap::new();
    let mut failed = Vec::new();
    for (sid, result) in results {
        match result.map_err(CallError::from) {
            Ok(info) => by_hour
                .entry(HourSlice::from_micros(info.anchor_micros))
                .or_default()
                .push(info),
            Err(e) if e.fatal => return Err(Error::Run(e.reason)),
            Err(e) => {
                tracing::warn!(call_sid = %sid, error = %e.reason, "call failed");
                RunStats::bump(&shared.stats.calls_failed, 1);
                failed.push(FailedCall::call(sid.as_str(), None, e.reason));
            }
        }
    }
    for (slice, calls) in by_hour {
        let hour = HourWork {
            slice,
            calls,
            whole: false,
            closed: false,
        };
        if tx.send(hour).await.is_err() {
            break;
        }
    }
    Ok(failed)
}

/// A window: cut into work slices of the job's `slice` hours; each is discovered (Calls.json or
/// Summaries) and its hours sent on. With `skip_done`, hours every table covers are skipped
/// without a request.
pub(crate) async fn produce_window(
    shared: Arc<Shared>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skip_done: bool,
    tx: mpsc::Sender<HourWork>,
) -> Result<()> {
    let hours = HourSlice::covering(from, to);
    let mut directory = CallDirectory::default();
    let tables = tables(&shared);
    let owner = owner(&shared)?;
    for chunk in hours.chunks(shared.plan.slice_hours.max(1) as usize) {
        let todo: Vec<HourSlice> = if skip_done {
            let coverage = shared.coverage.lock().await;
            chunk
                .iter()
                .copied()
                .filter(|h| !coverage.all_of(&owner, &tables, *h))
                .collect()
        } else {
            chunk.to_vec()
        };
        let (Some(first), Some(last)) = (todo.first(), todo.last()) else {
            tracing::info!(from = %chunk[0], hours = chunk.len(), "slice already done; skipped");
            continue;
        };
        let chunk_from = first.start().max(from);
        let chunk_to = last.end().min(to);
        let listed_at = shared.now();
        let calls = directory.calls(&shared, chunk_from, chunk_to).await?;
        RunStats::bump(
            &shared.stats.calls_total,
            calls
                .iter()
                .filter(|c| todo.contains(&HourSlice::from_micros(c.anchor_micros)))
                .count() as u64,
        );
        let mut by_hour: BTreeMap<HourSlice, Vec<CallInfo>> =
            todo.iter().map(|h| (*h, Vec::new())).collect();
        for call in calls {
            if let Some(bucket) = by_hour.get_mut(&HourSlice::from_micros(call.anchor_micros)) {
                bucket.push(call);
            }
        }
        for (slice, calls) in by_hour {
            let whole = slice.start() >= from && slice.end() <= to;
            if tx
                .send(HourWork {
                    slice,
                    calls,
                    whole,
                    closed: shared.closed_at(slice, listed_at),
                })
                .await
                .is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Finds the calls of a time range. Calls.json filters by UTC day only, so one day's list is
/// kept while consecutive ranges of the same day are asked for.
#[derive(Default)]
struct CallDirectory {
    day: Option<(NaiveDate, Vec<CallInfo>)>,
}

impl CallDirectory {
    async fn calls(
        &mut self,
        shared: &Shared,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallInfo>> {
        let discovery_error = |e: crate::sources::SourceError| {
            Error::Run(format!("discovering the calls from {from} to {to}: {e}"))
        };
        if shared.plan.discovery == Discovery::Summaries {
            let client = shared
                .clients
                .insights()
                .map_err(|e| Error::Run(e.reason))?;
            return twilio_insights::discover_summaries(
                client,
                from,
                to,
                shared.plan.twilio.page_size,
            )
            .await
            .map_err(discovery_error);
        }
        let (client, account) = rest_and_account(shared)?;
        let range = from.timestamp_micros()..to.timestamp_micros();
        let mut calls = Vec::new();
        let mut day = from.date_naive();
        while day <= (to - chrono::Duration::microseconds(1)).date_naive() {
            if self.day.as_ref().is_none_or(|(d, _)| *d != day) {
                let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
                let end = start + chrono::Duration::days(1);
                let listed = twilio_rest::discover_calls(
                    client,
                    account,
                    start,
                    end,
                    shared.plan.twilio.page_size,
                )
                .await
                .map_err(discovery_error)?;
                self.day = Some((day, listed));
            }
            if let Some((_, listed)) = &self.day {
                calls.extend(
                    listed
                        .iter()
                        .filter(|c| range.contains(&c.anchor_micros))
                        .cloned(),
                );
            }
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
        Ok(calls)
    }
}
