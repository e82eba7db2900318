//! A run: takes the job's lock, builds the run context, finishes what a crash left, plans the
//! work of its mode (`units`), hands it to the one pipeline (`pipeline`: fetch → flatten →
//! hour → commit), then records coverage, the watermark and the manifest (`report`).
//! `run/` only orchestrates: sources page, the flattener makes rows, the sink commits.

mod clients;
mod context;
mod fetch;
mod pipeline;
mod report;
mod units;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::events::RunStats;
use crate::flatten::Lineage;
use crate::hours::HourSlice;
use crate::http::HttpStats;
use crate::ids::{CallSid, ConferenceSid, Owner, TelnyxId};
use crate::job::JobPlan;
use crate::job::plan::LONG_WINDOW_DAYS;
use crate::output::TableFormat;
use crate::progress::Progress;
use crate::schema::{Schemas, Table};
use crate::sink::Lake;
use crate::sink::commit as sink_commit;
use crate::sink::delta::{DeltaTables, refuse_delta_tables};
use crate::sink::hour::SinkContext;
use crate::sink::layout::{coverage_dir, run_manifest, staging_dir};
use crate::sink::lock::{Holder, LeaseTime, Lock, LockName, Wait};
use crate::sink::parquet::WriterSettings;
use crate::state::{CoverageSet, JobState, LastRun};
use crate::stop::Stop;
use crate::tables::UnitKind as TableUnit;
use clients::Clients;
use context::RunContext;
use report::Landed;
pub use report::{FailedUnit, HttpCounts, Outcome, RunReport, UnitKind};
use units::Work;

/// What to fetch.
#[derive(Clone, Debug)]
pub enum RunMode {
    /// Given calls and Telnyx legs/sessions, merged into their hours.
    Ids {
        /// Twilio calls.
        calls: Vec<CallSid>,
        /// Twilio conferences.
        conferences: Vec<ConferenceSid>,
        /// Telnyx legs.
        legs: Vec<TelnyxId>,
        /// Telnyx sessions.
        sessions: Vec<TelnyxId>,
    },
    /// The window [from, to), always re-ingested (Telnyx by legs/sessions when given).
    Window {
        /// Start (inclusive).
        from: DateTime<Utc>,
        /// End (exclusive).
        to: DateTime<Utc>,
        /// Telnyx legs, for windows older than Telnyx's 24 h look-back.
        legs: Vec<TelnyxId>,
        /// Telnyx sessions.
        sessions: Vec<TelnyxId>,
    },
    /// From the job's watermark (or `start`) to now − lag, whole hours; the watermark advances.
    Nightly,
    /// The window [from, to), hours already done skipped.
    Backfill {
        /// Start (inclusive).
        from: DateTime<Utc>,
        /// End (exclusive).
        to: DateTime<Utc>,
    },
}

impl RunMode {
    fn name(&self) -> &'static str {
        match self {
            RunMode::Ids { .. } => "calls",
            RunMode::Window { .. } => "window",
            RunMode::Nightly => "nightly",
            RunMode::Backfill { .. } => "backfill",
        }
    }
}

/// How the run presents itself.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Draw a progress bar.
    pub progress: bool,
    /// The command line, for the manifest (no secrets: they come from the environment).
    pub command: String,
    /// The clock (tests and the demo pin it); None = now.
    pub now: Option<DateTime<Utc>>,
    /// Accept windows longer than the sane limits.
    pub yes: bool,
    /// Wait for the job's lock when another run holds it, instead of failing.
    pub wait: bool,
}

/// A run id: start time plus randomness, sortable.
fn new_run_id(started: DateTime<Utc>) -> String {
    let suffix: u32 = rand::random::<u32>() & 0xff_ffff;
    format!("{}-{suffix:06x}", started.format("%Y%m%dT%H%M%SZ"))
}

/// Runs a job: fetches, writes, commits, records state, and writes the manifest. `Err` is a run
/// that could not start (exit 2 for bad input), found its job locked, or was stopped; failed
/// units are in the report.
pub async fn execute(plan: JobPlan, mode: RunMode, options: RunOptions) -> Result<RunReport> {
    let started_at = Utc::now();
    let run_id: Arc<str> = new_run_id(started_at).into();
    let lake = Lake::open(&plan.output, &plan.store_settings()).await?;
    lake.check_writable().await?;
    let stop = Stop::listen();
    // A sharded backfill's worker has state of its own (its lock, coverage, staging):
    // workers of one job run at the same time.
    let state_name = plan.state_name();
    let holder = Holder::this_process(&run_id, &state_name);
    let wait = if options.wait { Wait::Yes } else { Wait::No };
    let lease = LeaseTime(plan.lease);
    let job_lock = Lock::take(
        &lake,
        LockName::job(&state_name),
        &holder,
        wait,
        lease,
        &stop,
    )
    .await?;
    let start = Start {
        started_at,
        run_id,
        lake,
        stop,
        job_lock: &job_lock,
    };
    let result = execute_locked(plan, mode, options, start).await;
    job_lock.release().await;
    result
}

/// What a run has once it holds its job's lock.
struct Start<'a> {
    started_at: DateTime<Utc>,
    run_id: Arc<str>,
    lake: Lake,
    stop: Arc<Stop>,
    job_lock: &'a Lock,
}

async fn execute_locked(
    plan: JobPlan,
    mode: RunMode,
    options: RunOptions,
    start: Start<'_>,
) -> Result<RunReport> {
    let Start {
        started_at,
        run_id,
        lake,
        stop,
        job_lock,
    } = start;
    let now = options.now.unwrap_or(started_at);
    let clock = Instant::now();
    let schemas = Schemas::builtin().map_err(|e| Error::Internal(e.to_string()))?;
    let clients = Clients::build(&plan)?;
    let state_name = plan.state_name();
    let mut job_state = JobState::load(&lake, &state_name).await?;
    let window = resolve_window(&plan, &mode, &job_state, now)?;
    if let (RunMode::Nightly, Some(window)) = (&mode, window) {
        plan.check_window_length(window, LONG_WINDOW_DAYS, "nightly catch-up", options.yes)?;
        plan.check_telnyx_lookback(window.0, now, false)?;
    }
    // Delta tables are created, or their schemas merged, before any request: a changed
    // column type stops the run here.
    let delta = match plan.format {
        TableFormat::Delta => Some(DeltaTables::prepare(&lake, &schemas, &plan.tables).await?),
        TableFormat::Parquet => {
            refuse_delta_tables(&lake, &plan.tables).await?;
            None
        }
    };
    let accounts = units::accounts(&plan, &clients).await?;
    let owners = plan.owners(&accounts);
    let mut sink = SinkContext::new(
        lake.clone(),
        schemas,
        Arc::new(WriterSettings::new(&plan.parquet)?),
        Arc::clone(&run_id),
        &state_name,
        LeaseTime(plan.lease),
        job_lock.watch(),
        Arc::clone(&stop),
    );
    if let Some(tables) = delta {
        sink = sink.with_delta(tables);
    }
    let owner_list: Vec<Owner> = owners.iter().map(|(o, _)| o.clone()).collect();
    recover(&sink, &owner_list).await?;
    let owned_tables: Vec<(Owner, Table)> = owners
        .iter()
        .flat_map(|(owner, tables)| tables.iter().map(|t| (owner.clone(), *t)))
        .collect();
    let coverage = CoverageSet::load(&lake, (&state_name, &plan.name), &owned_tables).await?;
    let lineage = Lineage {
        ingested_at_micros: started_at.timestamp_micros(),
        run_id: Arc::clone(&run_id),
    };
    let ctx = Arc::new(RunContext::new(
        (plan, accounts),
        clients,
        sink,
        (lineage, coverage),
        stop,
        options.now,
    ));
    let http_stats: Vec<Arc<HttpStats>> = ctx.clients.stats().into_iter().map(|(_, s)| s).collect();
    let progress = Progress::start(options.progress, Arc::clone(&ctx.stats), http_stats);
    tracing::info!(run_id = %run_id, job = %ctx.plan.name, mode = mode.name(),
        output = %lake.shown(), "run started");
    let nothing_new = window.is_some_and(|(from, to)| from >= to);
    let result = if nothing_new {
        Ok(Landed::default())
    } else {
        run_mode(&ctx, &mode, window).await
    };
    progress.finish();
    // This run's staging goes, unless a journal a failed commit left still names it.
    if let Err(e) = sink_commit::discard_staging(&lake, &state_name).await {
        tracing::warn!(error = %e, "could not clear the run's staging; the next run does");
    }
    lake.remove_empty_folders(&staging_dir(&state_name));
    let mut report = report_of(&ctx, &mode, window, &options, started_at, clock);
    match result {
        Ok(landed) => {
            if matches!(mode, RunMode::Nightly)
                && let Some((from, to)) = window
            {
                let watermark = advance_watermark(&ctx, from, to, &landed).await;
                job_state.watermark = Some(watermark.to_rfc3339());
                report.watermark = job_state.watermark.clone();
            }
            report.outcome = if nothing_new {
                Outcome::NothingNew
            } else if landed.failed.is_empty() {
                Outcome::Ok
            } else {
                Outcome::FailedCalls
            };
            report.failed_calls = landed.failed;
            report.slices_committed = landed.committed;
            report.files_written = landed.files;
            report.delta_commits = landed.versions;
        }
        Err(e) => {
            report.outcome = if matches!(e, Error::Interrupted { .. }) {
                Outcome::Interrupted
            } else {
                Outcome::Error
            };
            report.error = Some(e.to_string());
            if let Error::Input(_) = e {
                return Err(e);
            }
        }
    }
    let interrupted = ctx.stop.requested().then(|| ctx.stop.error());
    job_state.last_run = Some(LastRun {
        run_id: report.run_id.clone(),
        outcome: report.outcome.name().to_string(),
        mode: report.mode.clone(),
        finished_at: Utc::now().to_rfc3339(),
        failed_calls: report.failed_calls.len(),
    });
    if let Err(e) = job_state.save(&lake).await {
        tracing::warn!(error = %e, "could not save the job's state");
    }
    if let Err(e) = lake.put_json(&run_manifest(&report.run_id), &report).await {
        tracing::warn!(error = %e, "could not write the run manifest");
    }
    if let Some(stopped) = interrupted {
        eprint!("{}", report.summary());
        return Err(stopped);
    }
    match report.error.clone() {
        Some(error) if report.slices_committed.is_empty() && report.failed_calls.is_empty() => {
            Err(Error::Api(error))
        }
        _ => Ok(report),
    }
}

/// Plans the mode's work and runs it through the pipeline: the Twilio producers (given calls
/// and conferences resolved, or a window's discovered, per account) and the Telnyx work feed
/// one channel.
async fn run_mode(
    ctx: &Arc<RunContext>,
    mode: &RunMode,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<Landed> {
    let (tx, rx) = mpsc::channel::<Work>(4);
    let has = |unit| !units::tables_of(ctx, unit).is_empty();
    let (calls, conferences) = (has(TableUnit::Call), has(TableUnit::Conference));
    let telnyx = ctx.telnyx_owner.is_some() && has(TableUnit::TelnyxEvents);
    let mut producers: Vec<tokio::task::JoinHandle<Result<Landed>>> = Vec::new();
    let skip_done = matches!(mode, RunMode::Nightly | RunMode::Backfill { .. });
    match (mode, window) {
        (
            RunMode::Ids {
                calls: sids,
                conferences: conference_sids,
                ..
            },
            _,
        ) => {
            if calls && !sids.is_empty() {
                let task = units::calls_by_sid(Arc::clone(ctx), sids.clone(), tx.clone());
                producers.push(tokio::spawn(task));
            }
            if conferences && !conference_sids.is_empty() {
                let sids = conference_sids.clone();
                let task = units::conferences_by_sid(Arc::clone(ctx), sids, tx.clone());
                producers.push(tokio::spawn(task));
            }
        }
        (_, Some(window)) => {
            if calls {
                let task = units::twilio_window(Arc::clone(ctx), window, skip_done, tx.clone());
                producers.push(tokio::spawn(task));
            }
            if conferences {
                let task = units::conference_window(Arc::clone(ctx), window, skip_done, tx.clone());
                producers.push(tokio::spawn(task));
            }
        }
        (_, None) => {}
    }
    let mut telnyx_work = Vec::new();
    if telnyx {
        match (mode, window) {
            (
                RunMode::Ids { legs, sessions, .. } | RunMode::Window { legs, sessions, .. },
                window,
            ) if !legs.is_empty() || !sessions.is_empty() => {
                telnyx_work.push(units::telnyx_ids(ctx, legs, sessions, window)?);
            }
            (RunMode::Ids { .. }, _) | (_, None) => {}
            (_, Some(window)) => {
                telnyx_work.extend(units::telnyx_window(ctx, window, skip_done).await?);
            }
        }
    }
    let feeder = {
        let tx = tx.clone();
        tokio::spawn(async move {
            for work in telnyx_work {
                if tx.send(work).await.is_err() {
                    break;
                }
            }
        })
    };
    drop(tx);
    let landed = pipeline::run(Arc::clone(ctx), rx).await?;
    let stopped = |e: tokio::task::JoinError| Error::Internal(format!("planning stopped: {e}"));
    feeder.await.map_err(stopped)?;
    // What could not even be planned (unresolved SIDs, refused listings) comes first.
    let mut planned = Landed::default();
    for producer in producers {
        planned.absorb(producer.await.map_err(stopped)??);
    }
    planned.absorb(landed);
    let mut landed = planned;
    if let (RunMode::Window { legs, sessions, .. }, Some((from, to))) = (mode, window)
        && (!legs.is_empty() || !sessions.is_empty())
    {
        landed.undone.extend(HourSlice::covering(from, to));
    }
    Ok(landed)
}

/// Before anything is fetched, under the job's lock: finishes the commits of the job's owners
/// that a crash left (each under its owner's lock), discards the job's abandoned staging, and
/// the temporary files a killed write of its state left.
async fn recover(sink: &SinkContext, owners: &[Owner]) -> Result<()> {
    let lake = &sink.lake;
    for owner in owners {
        let lock = sink.lock_owner(owner).await?;
        let recovered = sink_commit::recover_owner(lake, owner).await;
        lock.release().await;
        let recovered = recovered?;
        if recovered > 0 {
            tracing::info!(
                journals = recovered,
                owner = %owner,
                "finished commits an earlier run left half done"
            );
        }
    }
    sink_commit::discard_staging(lake, &sink.job).await?;
    lake.remove_local_temp_files(&coverage_dir(&sink.job), "");
    lake.remove_local_temp_files("_voxlake/jobs", &format!("{}.json#", sink.job));
    Ok(())
}

/// The window a mode covers: given, or (nightly) from the watermark or `start` to now − lag,
/// both rounded down to the hour so that every hour is committed whole.
fn resolve_window(
    plan: &JobPlan,
    mode: &RunMode,
    state: &JobState,
    now: DateTime<Utc>,
) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
    match mode {
        RunMode::Ids { .. } => Ok(None),
        RunMode::Window { from, to, .. } | RunMode::Backfill { from, to } => Ok(Some((*from, *to))),
        RunMode::Nightly => {
            let from = match (state.watermark_time(), plan.start) {
                (Some(watermark), _) => watermark,
                (None, Some(start)) => HourSlice::from_time(start).start(),
                (None, None) => {
                    return Err(Error::Input(format!(
                        "job {}: no watermark yet and no `start` in the job file: set start = \"YYYY-MM-DD\" \
                         for the first nightly window",
                        plan.name
                    )));
                }
            };
            let to = HourSlice::from_time(now - plan.lag).start();
            Ok(Some((from, to.max(from))))
        }
    }
}

/// The new watermark: the first hour of the window some table did not commit whole, or the end.
async fn advance_watermark(
    ctx: &RunContext,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    landed: &Landed,
) -> DateTime<Utc> {
    let coverage = ctx.coverage.lock().await;
    let owners = &ctx.owners;
    HourSlice::covering(from, to)
        .into_iter()
        .find(|h| {
            landed.undone.contains(h)
                || owners
                    .iter()
                    .any(|(owner, tables)| !coverage.all_of(owner, tables, *h))
        })
        .map(|h| h.start())
        .unwrap_or(to)
}

fn report_of(
    ctx: &RunContext,
    mode: &RunMode,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    options: &RunOptions,
    started_at: DateTime<Utc>,
    clock: Instant,
) -> RunReport {
    let http = ctx
        .clients
        .stats()
        .into_iter()
        .map(|(api, s)| {
            let counts = HttpCounts {
                requests: RunStats::get(&s.requests),
                retries: RunStats::get(&s.retries),
                throttled: RunStats::get(&s.throttled),
            };
            (api.to_string(), counts)
        })
        .collect();
    RunReport {
        version: 1,
        run_id: ctx.lineage.run_id.to_string(),
        job: ctx.plan.name.clone(),
        command: options.command.clone(),
        mode: mode.name().into(),
        window: window.map(|(f, t)| (f.to_rfc3339(), t.to_rfc3339())),
        started_at: started_at.to_rfc3339(),
        duration_secs: clock.elapsed().as_secs_f64(),
        outcome: Outcome::Ok,
        error: None,
        tables: ctx
            .stats
            .tables()
            .into_iter()
            .map(|(t, c)| (t.name().to_string(), c))
            .collect(),
        http,
        calls: (
            RunStats::get(&ctx.stats.calls_total),
            RunStats::get(&ctx.stats.calls_done),
            RunStats::get(&ctx.stats.calls_failed),
        ),
        failed_calls: Vec::new(),
        slices_committed: Vec::new(),
        files_written: Vec::new(),
        delta_commits: Vec::new(),
        unknown_fields: ctx.drift.all(),
        watermark: None,
    }
}
