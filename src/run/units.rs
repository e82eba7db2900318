//! The work of a run, planned from its mode and sent to the pipeline as it is found: per
//! Twilio account, hours with their calls (given SIDs, resolved through each call's resource;
//! or a window's calls, discovered day by day) and hours with their conferences; Telnyx ranges
//! of a window, Telnyx legs and sessions. With `skip_done` (backfill, nightly), hours the job
//! has done are not asked for again. A listing refused for one account of several fails that
//! account's part only.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::context::RunContext;
use super::fetch::{Scope, UnitError};
use super::report::{FailedUnit, Landed, UnitKind as FailedKind};
use crate::error::{Error, Result};
use crate::events::RunStats;
use crate::hours::HourSlice;
use crate::http::{Api, ApiClient, HttpError};
use crate::ids::{AccountSid, CallSid, ConferenceSid, Owner, TelnyxId};
use crate::job::plan::Discovery;
use crate::schema::Table;
use crate::sources::SourceError;
use crate::sources::twilio_insights::{self, ConferenceInfo};
use crate::sources::twilio_rest::{self, CallInfo};
use crate::state::{CallStart, CallStarts};
use crate::tables::{self, UnitKind};

/// A piece of work for the pipeline.
pub(crate) enum Work {
    /// An account's hour and the calls that started in it.
    TwilioHour {
        account: AccountSid,
        slice: HourSlice,
        calls: Vec<CallInfo>,
        /// The hour lies wholly inside a window: it becomes exactly these calls.
        whole: bool,
        /// The hour had ended (and `lag` had passed) when its calls were listed.
        closed: bool,
    },
    /// An account's hour and the conferences that started in it.
    ConferenceHour {
        account: AccountSid,
        slice: HourSlice,
        conferences: Vec<ConferenceInfo>,
        whole: bool,
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

/// A window [from, to).
type Window = (DateTime<Utc>, DateTime<Utc>);

fn owner_of(owner: &Option<Owner>, what: &str) -> Result<Owner> {
    owner
        .clone()
        .ok_or_else(|| Error::Internal(format!("no {what} configured")))
}

/// The job's tables fetched by `unit`.
pub(crate) fn tables_of(ctx: &RunContext, unit: UnitKind) -> Vec<Table> {
    tables::of_unit(&ctx.plan.tables, unit)
}

/// The Twilio accounts a job fetches: its own, the ones it names, or every active account
/// `Accounts.json` lists for the credentials. None without Twilio tables.
pub(crate) async fn accounts(
    plan: &crate::job::JobPlan,
    clients: &super::clients::Clients,
) -> Result<Vec<AccountSid>> {
    if plan.twilio.credentials.is_none() {
        return Ok(Vec::new());
    }
    if let Some(named) = plan.named_accounts() {
        return Ok(named);
    }
    let client = clients.get(Api::TwilioRest)?;
    let listed = twilio_rest::active_accounts(client, plan.twilio.page_size)
        .await
        .map_err(|e| Error::Api(format!("listing the accounts (accounts = \"all\"): {e}")))?;
    if listed.is_empty() {
        return Err(Error::Api(
            "accounts = \"all\": Accounts.json lists no active account for these credentials"
                .into(),
        ));
    }
    Ok(listed)
}

/// How a failure to plan an account's part is taken: in a run of several accounts, the
/// account's credentials being refused fails that part only.
fn account_failure(
    ctx: &RunContext,
    e: SourceError,
    failed: (&str, Option<Window>),
    landed: &mut Landed,
) -> Result<()> {
    let error = UnitError::from(e);
    if error.reach(ctx.several_accounts()) == Scope::Run {
        return Err(Error::Api(error.reason));
    }
    tracing::warn!(what = failed.0, error = %error.reason, "discovery failed");
    landed.failed.push(FailedUnit::new(
        FailedKind::Discovery,
        failed.0,
        None,
        error.reason,
    ));
    if let Some((from, to)) = failed.1 {
        landed.undone.extend(HourSlice::covering(from, to));
    }
    Ok(())
}

/// Per-SID: each call's resource tells its account and when it started (its hour); the hours
/// are merged into, not replaced. With several accounts, each is asked in turn until one has
/// the call. Gives the calls whose resource could not be had.
pub(crate) async fn calls_by_sid(
    ctx: Arc<RunContext>,
    sids: Vec<CallSid>,
    tx: mpsc::Sender<Work>,
) -> Result<Landed> {
    RunStats::bump(&ctx.stats.calls_total, sids.len() as u64);
    let client = ctx.clients.get(Api::TwilioRest)?;
    let accounts = &ctx.accounts;
    let mut starts = CallStarts::load(ctx.lake(), &ctx.plan.state_name()).await?;
    let (known, unknown): (Vec<CallSid>, Vec<CallSid>) = sids
        .into_iter()
        .partition(|sid| known_start(&starts, accounts, sid).is_some());
    let mut results: Vec<_> = futures::stream::iter(unknown)
        .map(|sid| async move {
            let result = find_call(client, accounts, &sid).await;
            (sid, result)
        })
        .buffer_unordered(ctx.plan.twilio.concurrency)
        .collect()
        .await;
    remember_starts(&ctx, &mut starts, &results).await;
    results.extend(known.into_iter().filter_map(|sid| {
        let (account, info) = known_start(&starts, accounts, &sid)?;
        Some((sid, Ok((account, info))))
    }));
    let mut by_hour: BTreeMap<(AccountSid, HourSlice), Vec<CallInfo>> = BTreeMap::new();
    let mut landed = Landed::default();
    for (sid, result) in results {
        match result.map_err(UnitError::from) {
            Ok((account, info)) => by_hour
                .entry((account, HourSlice::from_micros(info.anchor_micros)))
                .or_default()
                .push(info),
            Err(e) if e.reach(ctx.several_accounts()) == Scope::Run => {
                return Err(Error::Api(e.reason));
            }
            Err(e) => {
                tracing::warn!(call_sid = %sid, error = %e.reason, "call failed");
                RunStats::bump(&ctx.stats.calls_failed, 1);
                landed.failed.push(FailedUnit::new(
                    FailedKind::Call,
                    sid.as_str(),
                    None,
                    e.reason,
                ));
            }
        }
    }
    for ((account, slice), calls) in by_hour {
        let hour = Work::TwilioHour {
            account,
            slice,
            calls,
            whole: false,
            closed: false,
        };
        if tx.send(hour).await.is_err() {
            break;
        }
    }
    Ok(landed)
}

/// A call's account and start as an earlier per-SID run of the job learned them (when the
/// account is still one the job fetches).
fn known_start(
    starts: &CallStarts,
    accounts: &[AccountSid],
    sid: &CallSid,
) -> Option<(AccountSid, CallInfo)> {
    let known = starts.calls.get(sid.as_str())?;
    let account = accounts.iter().find(|a| a.as_str() == known.account)?;
    Some((
        account.clone(),
        CallInfo {
            sid: sid.clone(),
            anchor_micros: known.start_micros,
            edges: None,
            summary: None,
            record: None,
            started: true,
        },
    ))
}

/// What looking a call up gave: its account and what its resource tells.
type Lookup = std::result::Result<(AccountSid, CallInfo), SourceError>;

/// Keeps the starts of the calls just looked up (those that had started) for the next run.
async fn remember_starts(ctx: &RunContext, starts: &mut CallStarts, results: &[(CallSid, Lookup)]) {
    let before = starts.calls.len();
    for (sid, result) in results {
        if let Ok((account, info)) = result
            && info.started
        {
            let start = CallStart {
                account: account.to_string(),
                start_micros: info.anchor_micros,
            };
            starts.calls.insert(sid.to_string(), start);
        }
    }
    if starts.calls.len() != before
        && let Err(e) = starts.save(ctx.lake(), &ctx.plan.state_name()).await
    {
        tracing::warn!(error = %e, "could not keep the calls' start times");
    }
}

/// A call's resource, from the first of `accounts` that has it (a call of another account
/// answers 404 under this one).
async fn find_call(
    client: &ApiClient,
    accounts: &[AccountSid],
    sid: &CallSid,
) -> std::result::Result<(AccountSid, CallInfo), SourceError> {
    let mut last = None;
    for account in accounts {
        match twilio_rest::fetch_call(client, account, sid).await {
            Ok(info) => return Ok((account.clone(), info)),
            Err(e @ SourceError::Http(HttpError::Status { status: 404, .. }))
                if accounts.len() > 1 =>
            {
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| SourceError::Record("no Twilio account to ask".into())))
}

/// Per-SID conferences: each one's summary tells its account and its hour.
pub(crate) async fn conferences_by_sid(
    ctx: Arc<RunContext>,
    sids: Vec<ConferenceSid>,
    tx: mpsc::Sender<Work>,
) -> Result<Landed> {
    RunStats::bump(&ctx.stats.calls_total, sids.len() as u64);
    let client = ctx.clients.get(Api::TwilioInsights)?;
    let mut by_hour: BTreeMap<(AccountSid, HourSlice), Vec<ConferenceInfo>> = BTreeMap::new();
    let mut landed = Landed::default();
    for sid in sids {
        let found = twilio_insights::fetch_conference(client, &sid)
            .await
            .map_err(UnitError::from)
            .and_then(|info| {
                if ctx.accounts.contains(&info.account) {
                    Ok(info)
                } else {
                    Err(UnitError {
                        reason: format!(
                            "conference {sid} belongs to account {}, which the job does not fetch",
                            info.account
                        ),
                        scope: Scope::Unit,
                    })
                }
            });
        match found {
            Ok(info) => by_hour
                .entry((
                    info.account.clone(),
                    HourSlice::from_micros(info.anchor_micros),
                ))
                .or_default()
                .push(info),
            Err(e) if e.reach(ctx.several_accounts()) == Scope::Run => {
                return Err(Error::Api(e.reason));
            }
            Err(e) => {
                RunStats::bump(&ctx.stats.calls_failed, 1);
                let failed = FailedUnit::new(FailedKind::Conference, sid.as_str(), None, e.reason);
                landed.failed.push(failed);
            }
        }
    }
    for ((account, slice), conferences) in by_hour {
        let hour = Work::ConferenceHour {
            account,
            slice,
            conferences,
            whole: false,
            closed: false,
        };
        if tx.send(hour).await.is_err() {
            break;
        }
    }
    Ok(landed)
}

/// The hours of a window an account still has to do, in chunks of the job's `slice`.
async fn todo_chunks(
    ctx: &RunContext,
    (owner, tables): (&Owner, &[Table]),
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    skip_done: bool,
) -> Vec<Vec<HourSlice>> {
    let hours = HourSlice::covering(from, to);
    let mut chunks = Vec::new();
    for chunk in hours.chunks(ctx.plan.slice_hours.max(1) as usize) {
        let mut todo = Vec::with_capacity(chunk.len());
        for hour in chunk {
            if ctx.to_do((owner, tables), *hour, skip_done).await {
                todo.push(*hour);
            }
        }
        if todo.is_empty() {
            tracing::info!(from = %chunk[0], hours = chunk.len(), "slice already done; skipped");
        } else {
            chunks.push(todo);
        }
    }
    chunks
}

/// What a window's listing found for a chunk of hours, bucketed by hour.
fn by_hour<T>(
    todo: &[HourSlice],
    listed: Vec<T>,
    anchor: impl Fn(&T) -> i64,
) -> BTreeMap<HourSlice, Vec<T>> {
    let mut buckets: BTreeMap<HourSlice, Vec<T>> = todo.iter().map(|h| (*h, Vec::new())).collect();
    for item in listed {
        if let Some(bucket) = buckets.get_mut(&HourSlice::from_micros(anchor(&item))) {
            bucket.push(item);
        }
    }
    buckets
}

/// A window's calls, per account: cut into work slices of the job's `slice` hours; each is
/// discovered (Calls.json or Summaries) and its hours sent on.
pub(crate) async fn twilio_window(
    ctx: Arc<RunContext>,
    window: (DateTime<Utc>, DateTime<Utc>),
    skip_done: bool,
    tx: mpsc::Sender<Work>,
) -> Result<Landed> {
    let tables = tables_of(&ctx, UnitKind::Call);
    let mut landed = Landed::default();
    for account in &ctx.accounts {
        let owner = Owner::twilio(account);
        let mut directory = CallDirectory::default();
        for todo in todo_chunks(&ctx, (&owner, &tables), window, skip_done).await {
            let (Some(first), Some(last)) = (todo.first(), todo.last()) else {
                continue;
            };
            let chunk = (first.start().max(window.0), last.end().min(window.1));
            let listed_at = ctx.now();
            let calls = match directory.calls(&ctx, account, chunk).await {
                Ok(calls) => calls,
                Err(e) => {
                    let what = format!("twilio discovery {account}");
                    account_failure(&ctx, e, (&what, Some(window)), &mut landed)?;
                    break;
                }
            };
            let buckets = by_hour(&todo, calls, |c: &CallInfo| c.anchor_micros);
            let count: usize = buckets.values().map(Vec::len).sum();
            RunStats::bump(&ctx.stats.calls_total, count as u64);
            for (slice, calls) in buckets {
                let hour = Work::TwilioHour {
                    account: account.clone(),
                    slice,
                    calls,
                    whole: slice.start() >= window.0 && slice.end() <= window.1,
                    closed: ctx.closed_at(slice, listed_at),
                };
                if tx.send(hour).await.is_err() {
                    return Ok(landed);
                }
            }
        }
    }
    Ok(landed)
}

/// A window's conferences, per account, in work slices like calls.
pub(crate) async fn conference_window(
    ctx: Arc<RunContext>,
    window: (DateTime<Utc>, DateTime<Utc>),
    skip_done: bool,
    tx: mpsc::Sender<Work>,
) -> Result<Landed> {
    let tables = tables_of(&ctx, UnitKind::Conference);
    let client = ctx.clients.get(Api::TwilioInsights)?;
    let credentials_account = ctx.credentials_account()?.clone();
    let mut landed = Landed::default();
    for account in &ctx.accounts {
        let owner = Owner::twilio(account);
        for todo in todo_chunks(&ctx, (&owner, &tables), window, skip_done).await {
            let (Some(first), Some(last)) = (todo.first(), todo.last()) else {
                continue;
            };
            let (from, to) = (first.start().max(window.0), last.end().min(window.1));
            let listed_at = ctx.now();
            let accounts = (account, &credentials_account);
            let page_size = ctx.plan.twilio.page_size;
            let listed =
                twilio_insights::discover_conferences(client, accounts, from, to, page_size).await;
            let conferences = match listed {
                Ok(conferences) => conferences,
                Err(e) => {
                    let what = format!("conference discovery {account}");
                    account_failure(&ctx, e, (&what, Some(window)), &mut landed)?;
                    break;
                }
            };
            let buckets = by_hour(&todo, conferences, |c: &ConferenceInfo| c.anchor_micros);
            let count: usize = buckets.values().map(Vec::len).sum();
            RunStats::bump(&ctx.stats.calls_total, count as u64);
            for (slice, conferences) in buckets {
                let hour = Work::ConferenceHour {
                    account: account.clone(),
                    slice,
                    conferences,
                    whole: slice.start() >= window.0 && slice.end() <= window.1,
                    closed: ctx.closed_at(slice, listed_at),
                };
                if tx.send(hour).await.is_err() {
                    return Ok(landed);
                }
            }
        }
    }
    Ok(landed)
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
        account: &AccountSid,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> std::result::Result<Vec<CallInfo>, SourceError> {
        let page_size = ctx.plan.twilio.page_size;
        let client = |api| {
            ctx.clients
                .get(api)
                .map_err(|e| SourceError::Record(e.to_string()))
        };
        if ctx.plan.discovery == Discovery::Summaries {
            let client = client(Api::TwilioInsights)?;
            let own = ctx
                .credentials_account()
                .map_err(|e| SourceError::Record(e.to_string()))?;
            let subaccount = (account != own).then_some(account);
            return twilio_insights::discover_summaries(client, subaccount, from, to, page_size)
                .await;
        }
        let client = client(Api::TwilioRest)?;
        let range = from.timestamp_micros()..to.timestamp_micros();
        let mut calls = Vec::new();
        let mut day = from.date_naive();
        while day <= (to - chrono::Duration::microseconds(1)).date_naive() {
            if self.day.as_ref().is_none_or(|(d, _)| *d != day) {
                let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
                let end = start + chrono::Duration::days(1);
                // Without table `calls`, the day's list holds no resources' JSON (~1.5 kB a
                // call, for nothing).
                let keep_records = ctx.plan.tables.contains(&Table::Calls);
                let listed = twilio_rest::discover_calls(
                    client,
                    account,
                    start,
                    end,
                    page_size,
                    keep_records,
                )
                .await?;
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
    let tables = tables_of(ctx, UnitKind::TelnyxEvents);
    let mut todo = Vec::new();
    for hour in HourSlice::covering(from, to) {
        if ctx.to_do((&owner, &tables), hour, skip_done).await {
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
