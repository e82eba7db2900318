//! The work of a run, planned from its mode and sent to the pipeline as it is found: Twilio
//! hours with their calls (given SIDs, resolved through each call's resource; or a window's
//! calls, discovered day by day), Telnyx ranges of a window, Telnyx legs and sessions. With
//! `skip_done` (backfill, nightly), hours the job has done are not asked for again.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::context::RunContext;
use super::fetch::{Scope, UnitError};
use super::report::{FailedUnit, UnitKind as FailedKind};
use crate::error::{Error, Result};
use crate::events::RunStats;
use crate::hours::HourSlice;
use crate::http::{Api, ApiClient};
use crate::ids::{AccountSid, CallSid, Owner, TelnyxId};
use crate::job::plan::Discovery;
use crate::schema::Table;
use crate::sources::twilio_insights;
use crate::sources::twilio_rest::{self, CallInfo};
use crate::tables::{self, UnitKind};

/// A piece of work for the pipeline.
pub(crate) enum Work {
    /// A Twilio hour and the calls that started in it.
    TwilioHour {
        owner: Owner,
        slice: HourSlice,
        calls: Vec<CallInfo>,
        /// The hour lies wholly inside a window: it becomes exactly these calls.
        whole: bool,
        /// The hour had ended (and `lag` had passed) when its calls were listed.
        closed: bool,
    },
    /// A contiguous range of a Telnyx window's hours, listed in time order.
    TelnyxRange {
        owner: Owner,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        /// The whole window the range is part of (hours wholly inside it are replaced).
        window: (DateTime<Utc>, DateTime<Utc>),
        listed_at: DateTime<Utc>,
    },
    /// Telnyx legs and sessions, merged into the hours their events fall in.
    TelnyxIds {
        owner: Owner,
        ids: Vec<(FailedKind, TelnyxId)>,
        window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    },
}

fn owner_of(owner: &Option<Owner>, what: &str) -> Result<Owner> {
    owner
        .clone()
        .ok_or_else(|| Error::Internal(format!("no {what} configured")))
}

/// The Twilio tables of the job (the per-call ones).
pub(crate) fn twilio_tables(ctx: &RunContext) -> Vec<Table> {
    tables::of_unit(&ctx.plan.tables, UnitKind::Call)
}

/// The REST client and the account its paths are under.
fn rest_and_account(ctx: &RunContext) -> Result<(&ApiClient, &AccountSid)> {
    let client = ctx.clients.get(Api::TwilioRest)?;
    let account = &ctx.clients.credentials()?.account_sid;
    Ok((client, account))
}

/// Per-SID: each call's resource tells when it started (its hour); the hours are merged into,
/// not replaced. Returns the calls whose resource could not be had.
pub(crate) async fn calls_by_sid(
    ctx: Arc<RunContext>,
    sids: Vec<CallSid>,
    tx: mpsc::Sender<Work>,
) -> Result<Vec<FailedUnit>> {
    RunStats::bump(&ctx.stats.calls_total, sids.len() as u64);
    let owner = owner_of(&ctx.twilio_owner, "Twilio credentials")?;
    let (client, account) = rest_and_account(&ctx)?;
    let results: Vec<_> = futures::stream::iter(sids)
        .map(|sid| async move {
            let result = twilio_rest::fetch_call(client, account, &sid).await;
            (sid, result)
        })
        .buffer_unordered(ctx.plan.twilio.concurrency)
        .collect()
        .await;
    let mut by_hour: BTreeMap<HourSlice, Vec<CallInfo>> = BTreeMap::new();
    let mut failed = Vec::new();
    for (sid, result) in results {
        match result.map_err(UnitError::from) {
            Ok(info) => by_hour
                .entry(HourSlice::from_micros(info.anchor_micros))
                .or_default()
                .push(info),
            Err(e) if e.scope == Scope::Run => return Err(Error::Api(e.reason)),
            Err(e) => {
                tracing::warn!(call_sid = %sid, error = %e.reason, "call failed");
                RunStats::bump(&ctx.stats.calls_failed, 1);
                failed.push(FailedUnit::new(
                    FailedKind::Call,
                    sid.as_str(),
                    None,
                    e.reason,
                ));
            }
        }
    }
    for (slice, calls) in by_hour {
        let hour = Work::TwilioHour {
            owner: owner.clone(),
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
pub(crate) async fn twilio_window(
    ctx: Arc<RunContext>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    skip_done: bool,
    tx: mpsc::Sender<Work>,
) -> Result<()> {
    let hours = HourSlice::covering(from, to);
    let mut directory = CallDirectory::default();
    let tables = twilio_tables(&ctx);
    let owner = owner_of(&ctx.twilio_owner, "Twilio credentials")?;
    for chunk in hours.chunks(ctx.plan.slice_hours.max(1) as usize) {
        let mut todo = Vec::with_capacity(chunk.len());
        for hour in chunk {
            if !(skip_done && ctx.is_done(&owner, &tables, *hour).await) {
                todo.push(*hour);
            }
        }
        let (Some(first), Some(last)) = (todo.first(), todo.last()) else {
            tracing::info!(from = %chunk[0], hours = chunk.len(), "slice already done; skipped");
            continue;
        };
        let chunk_from = first.start().max(from);
        let chunk_to = last.end().min(to);
        let listed_at = ctx.now();
        let calls = directory.calls(&ctx, chunk_from, chunk_to).await?;
        RunStats::bump(
            &ctx.stats.calls_total,
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
            let hour = Work::TwilioHour {
                owner: owner.clone(),
                slice,
                calls,
                whole: slice.start() >= from && slice.end() <= to,
                closed: ctx.closed_at(slice, listed_at),
            };
            if tx.send(hour).await.is_err() {
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
        ctx: &RunContext,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallInfo>> {
        let discovery_error = |e: crate::sources::SourceError| {
            Error::Api(format!("discovering the calls from {from} to {to}: {e}"))
        };
        if ctx.plan.discovery == Discovery::Summaries {
            let client = ctx.clients.get(Api::TwilioInsights)?;
            return twilio_insights::discover_summaries(
                client,
                from,
                to,
                ctx.plan.twilio.page_size,
            )
            .await
            .map_err(discovery_error);
        }
        let (client, account) = rest_and_account(ctx)?;
        let range = from.timestamp_micros()..to.timestamp_micros();
        let mut calls = Vec::new();
        let mut day = from.date_naive();
        while day <= (to - chrono::Duration::microseconds(1)).date_naive() {
            if self.day.as_ref().is_none_or(|(d, _)| *d != day) {
                let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
                let end = start + chrono::Duration::days(1);
                let page_size = ctx.plan.twilio.page_size;
                let listed = twilio_rest::discover_calls(client, account, start, end, page_size)
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

/// A Telnyx window: its hours to do (all, or those not done yet), as contiguous ranges so that
/// done hours are never listed again.
pub(crate) async fn telnyx_window(
    ctx: &RunContext,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    skip_done: bool,
) -> Result<Vec<Work>> {
    let owner = owner_of(&ctx.telnyx_owner, "Telnyx key")?;
    let tables = tables::of_unit(&ctx.plan.tables, UnitKind::TelnyxEvents);
    let mut todo = Vec::new();
    for hour in HourSlice::covering(from, to) {
        if !(skip_done && ctx.is_done(&owner, &tables, hour).await) {
            todo.push(hour);
        }
    }
    let listed_at = ctx.now();
    Ok(contiguous(&todo)
        .into_iter()
        .map(|(first, last)| Work::TelnyxRange {
            owner: owner.clone(),
            from: first.start().max(from),
            to: last.end().min(to),
            window: (from, to),
            listed_at,
        })
        .collect())
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

/// Telnyx legs and sessions (within a window, if one is given).
pub(crate) fn telnyx_ids(
    ctx: &RunContext,
    legs: &[TelnyxId],
    sessions: &[TelnyxId],
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<Work> {
    let ids: Vec<(FailedKind, TelnyxId)> = legs
        .iter()
        .map(|l| (FailedKind::Leg, l.clone()))
        .chain(sessions.iter().map(|s| (FailedKind::Session, s.clone())))
        .collect();
    RunStats::bump(&ctx.stats.calls_total, ids.len() as u64);
    Ok(Work::TelnyxIds {
        owner: owner_of(&ctx.telnyx_owner, "Telnyx key")?,
        ids,
        window,
    })
}
