//! A run: plans the units of work (Twilio calls by hour, Telnyx hours, legs), drives fetch →
//! flatten → write with bounded concurrency, commits hour by hour, records coverage and the
//! job's watermark, and writes the run manifest.

mod calls;
mod clients;
mod telnyx;
mod twilio;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::events::{DriftLog, RunStats, TableCounts};
use crate::flatten::{FlattenPlan, Lineage};
use crate::http::HttpStats;
use crate::ids::{CallSid, Owner, TelnyxId};
use crate::job::JobPlan;
use crate::progress::Progress;
use crate::schema::{Schemas, Table};
use crate::sink::commit as sink_commit;
use crate::sink::hour::SinkContext;
use crate::sink::layout::{coverage_dir, run_manifest, staging_dir};
use crate::sink::lock::{Holder, LeaseTime, Lock, LockName, Wait};
use crate::sink::parquet::WriterSettings;
use crate::sink::{HourSlice, Lake};
use crate::sources::telnyx::LOOKBACK_HOURS;
use crate::state::{CoverageSet, JobState, LastRun};
use crate::stop::Stop;
use clients::Clients;

/// What to fetch.
#[derive(Clone, Debug)]
pub enum RunMode {
    /// Given calls and Telnyx legs/sessions, merged into their hours.
    Ids {
        /// Twilio calls.
        calls: Vec<CallSid>,
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

/// Longest `run --from/--to` window without `--yes`, in days.
pub const RUN_WINDOW_DAYS: i64 = 31;
/// Longest backfill or nightly catch-up without `--yes`, in days.
pub const LONG_WINDOW_DAYS: i64 = 366;

/// Refuses a window longer than `limit_days` unless `yes`: a typo in a year should not start
/// a fetch of years.
pub fn check_window_length(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit_days: i64,
    what: &str,
    yes: bool,
) -> Result<()> {
    let days = (to - from).num_hours() as f64 / 24.0;
    if yes || days <= limit_days as f64 {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{what}: the window {} .. {} is {days:.1} days, longer than {limit_days}; pass --yes if \
         that is meant (for history, a backfill resumes where it stops)",
        from.to_rfc3339(),
        to.to_rfc3339()
    )))
}

/// A unit (call, leg, session, Telnyx range) that did not land, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FailedCall {
    /// The call SID, leg or session id, or range.
    pub id: String,
    /// `call`, `leg`, `session` or `telnyx_window`.
    pub kind: String,
    /// Its hour, when known.
    pub slice: Option<String>,
    /// What went wrong.
    pub reason: String,
}

impl FailedCall {
    fn call(sid: &str, slice: Option<HourSlice>, reason: String) -> FailedCall {
        FailedCall {
            id: sid.to_string(),
            kind: "call".into(),
            slice: slice.map(|s| s.to_string()),
            reason,
        }
    }
}

/// Requests, retries and 429s of one API.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HttpCounts {
    /// Attempts sent.
    pub requests: u64,
    /// Attempts retried.
    pub retries: u64,
    /// 429 answers.
    pub throttled: u64,
}

/// The run manifest (`_voxlake/runs/{run_id}.json`) and the summary on stderr.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Format version.
    pub version: u32,
    /// This run.
    pub run_id: String,
    /// The job's name.
    pub job: String,
    /// The command line.
    pub command: String,
    /// `calls`, `window`, `nightly` or `backfill`.
    pub mode: String,
    /// The window, for window runs.
    pub window: Option<(String, String)>,
    /// Start (RFC 3339).
    pub started_at: String,
    /// Seconds taken.
    pub duration_secs: f64,
    /// `ok`, `nothing_new`, `failed_calls` or `error`.
    pub outcome: String,
    /// The error that stopped the run, if one did.
    pub error: Option<String>,
    /// Rows and pages per table.
    pub tables: BTreeMap<String, TableCounts>,
    /// Per API.
    pub http: BTreeMap<String, HttpCounts>,
    /// Units (calls, legs) to fetch, done, failed.
    pub calls: (u64, u64, u64),
    /// Units that did not land.
    pub failed_calls: Vec<FailedCall>,
    /// Hours committed.
    pub slices_committed: Vec<String>,
    /// Files written (relative to the output).
    pub files_written: Vec<String>,
    /// Fields the APIs sent that the schemas do not name (kept in `_extra`).
    pub unknown_fields: Vec<String>,
    /// The job's watermark after the run (nightly).
    pub watermark: Option<String>,
}

impl RunReport {
    /// 0 all done; 1 some units failed or the run stopped.
    pub fn exit_code(&self) -> u8 {
        match self.outcome.as_str() {
            "ok" | "nothing_new" => 0,
            _ => 1,
        }
    }

    /// A few lines for people and cron mail.
    pub fn summary(&self) -> String {
        let window = self
            .window
            .as_ref()
            .map(|(f, t)| format!(" {f} .. {t}"))
            .unwrap_or_default();
        let mut out = format!(
            "voxlake {} {}{window} (run {}): {} in {:.1}s; {} done, {} failed of {}\n",
            self.mode,
            self.job,
            self.run_id,
            self.outcome,
            self.duration_secs,
            self.calls.1,
            self.calls.2,
            self.calls.0
        );
        for (table, counts) in &self.tables {
            out.push_str(&format!(
                "  {table}: {} rows, {} pages\n",
                counts.rows, counts.pages
            ));
        }
        for (api, counts) in &self.http {
            out.push_str(&format!(
                "  {api}: {} requests, {} retries, {} throttled (429)\n",
                counts.requests, counts.retries, counts.throttled
            ));
        }
        out.push_str(&format!(
            "  {} hours committed, {} files written\n",
            self.slices_committed.len(),
            self.files_written.len()
        ));
        if let Some(watermark) = &self.watermark {
            out.push_str(&format!("  watermark now {watermark}\n"));
        }
        for failed in &self.failed_calls {
            out.push_str(&format!("  FAILED {}: {}\n", failed.id, failed.reason));
        }
        if let Some(error) = &self.error {
            out.push_str(&format!("  ERROR {error}\n"));
        }
        out
    }
}

/// What the pipelines gave.
#[derive(Default)]
pub(crate) struct Outcome {
    pub committed: Vec<String>,
    pub files: Vec<String>,
    pub failed: Vec<FailedCall>,
    /// Hours of the window not committed whole (failed units, partial hours).
    pub undone: BTreeSet<HourSlice>,
}

impl Outcome {
    fn absorb(&mut self, other: Outcome) {
        self.committed.extend(other.committed);
        self.files.extend(other.files);
        self.failed.extend(other.failed);
        self.undone.extend(other.undone);
    }
}

/// Everything the workers of a run share.
pub(crate) struct Shared {
    pub plan: JobPlan,
    pub lake: Lake,
    pub schemas: Schemas,
    pub clients: Clients,
    pub lineage: Lineage,
    pub run_id: Arc<str>,
    pub stats: Arc<RunStats>,
    pub drift: DriftLog,
    /// Where and how hours are committed.
    pub sink: SinkContext,
    /// The account the Twilio tables belong to, and the Telnyx key's.
    pub twilio_owner: Option<Owner>,
    pub telnyx_owner: Option<Owner>,
    /// The job's coverage of its tables.
    pub coverage: tokio::sync::Mutex<CoverageSet>,
    /// Set by SIGINT/SIGTERM.
    pub stop: Arc<crate::stop::Stop>,
    /// The clock pinned by `--now`; None = the real clock.
    pub pinned_now: Option<DateTime<Utc>>,
    /// Each table's schema compiled for the flattener, once per run.
    plans: BTreeMap<Table, Arc<FlattenPlan>>,
}

impl Shared {
    /// Now, by the run's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.pinned_now.unwrap_or_else(Utc::now)
    }

    /// True when an hour had ended `lag` before `fetched_at`: its data is complete, so a
    /// backfill may skip it from now on. Later hours are fetched but stay pending.
    pub(crate) fn closed_at(&self, hour: HourSlice, fetched_at: DateTime<Utc>) -> bool {
        hour.end() <= fetched_at - self.plan.lag
    }

    /// The table's compiled flatten plan.
    pub(crate) fn flatten_plan(&self, table: Table) -> Arc<FlattenPlan> {
        match self.plans.get(&table) {
            Some(plan) => Arc::clone(plan),
            None => FlattenPlan::new(self.schemas.get(table)),
        }
    }

    /// Marks an hour done for the owner's tables and saves their coverage.
    pub(crate) async fn mark_done(
        &self,
        owner: &Owner,
        tables: &[Table],
        slice: HourSlice,
    ) -> Result<()> {
        let mut coverage = self.coverage.lock().await;
        coverage.mark_done(&self.lake, owner, tables, slice).await
    }
}

/// A run id: start time plus randomness, sortable.
fn new_run_id(started: DateTime<Utc>) -> String {
    let suffix: u32 = rand::random::<u32>() & 0xff_ffff;
    format!("{}-{suffix:06x}", started.format("%Y%m%dT%H%M%SZ"))
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

/// Refuses a Telnyx window older than the API's look-back when no legs or sessions are given.
pub fn check_telnyx_lookback(
    plan: &JobPlan,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    have_ids: bool,
) -> Result<()> {
    if !plan.tables.contains(&Table::TelnyxCallEvents) || have_ids {
        return Ok(());
    }
    let oldest = now - chrono::Duration::hours(LOOKBACK_HOURS);
    if from < oldest {
        return Err(Error::Input(format!(
            "telnyx_call_events: the window starts at {} but Telnyx lists events only {LOOKBACK_HOURS} h back \
             (from {}) unless filtered by leg or session; give --leg-id/--session-id for older windows \
             or start the window within the last {LOOKBACK_HOURS} h",
            from.to_rfc3339(),
            oldest.to_rfc3339()
        )));
    }
    Ok(())
}

/// Runs a job: fetches, writes, commits, records state, and writes the manifest. `Err` is a run
/// that could not start (exit 2 for bad input) or was stopped; failed units are in the report.
pub async fn execute(plan: JobPlan, mode: RunMode, options: RunOptions) -> Result<RunReport> {
    let started_at = Utc::now();
    let run_id: Arc<str> = new_run_id(started_at).into();
    let lake = Lake::open(&plan.output, &plan.store_settings()).await?;
    lake.check_writable().await?;
    let stop = Stop::listen();
    let holder = Holder::this_process(&run_id, &plan.name);
    let wait = if options.wait { Wait::Yes } else { Wait::No };
    let lease = LeaseTime(plan.lease);
    let job_lock = Lock::take(
        &lake,
        LockName::job(&plan.name),
        &holder,
        wait,
        lease,
        &stop,
    )
    .await?;
    let run = Run {
        started_at,
        run_id,
        lake,
        stop,
        job_lock: &job_lock,
    };
    let result = execute_locked(plan, mode, options, run).await;
    job_lock.release().await;
    result
}

/// What a run has before it holds its job's lock.
struct Run<'a> {
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
    run: Run<'_>,
) -> Result<RunReport> {
    let Run {
        started_at,
        run_id,
        lake,
        stop,
        job_lock,
    } = run;
    let now = options.now.unwrap_or(started_at);
    let clock = Instant::now();
    let schemas = Schemas::builtin().map_err(|e| Error::Run(e.to_string()))?;
    let clients = Clients::build(&plan)?;
    let mut job_state = JobState::load(&lake, &plan.name).await?;
    let window = resolve_window(&plan, &mode, &job_state, now)?;
    if let (RunMode::Nightly, Some((from, to))) = (&mode, window) {
        check_window_length(from, to, LONG_WINDOW_DAYS, "nightly catch-up", options.yes)?;
    }
    if let Some((from, _)) = window {
        let have_ids = matches!(&mode, RunMode::Window { legs, sessions, .. } if !legs.is_empty() || !sessions.is_empty());
        check_telnyx_lookback(&plan, from, now, have_ids)?;
    }
    let owners = plan.owners();
    let sink = SinkContext::new(
        lake.clone(),
        schemas.clone(),
        Arc::new(WriterSettings::new(&plan.parquet)?),
        Arc::clone(&run_id),
        &plan.name,
        LeaseTime(plan.lease),
        job_lock.watch(),
        Arc::clone(&stop),
    );
    recover(
        &sink,
        &owners.iter().map(|(o, _)| o.clone()).collect::<Vec<_>>(),
    )
    .await?;
    let owned_tables: Vec<(Owner, Table)> = owners
        .iter()
        .flat_map(|(owner, tables)| tables.iter().map(|t| (owner.clone(), *t)))
        .collect();
    let coverage = CoverageSet::load(&lake, &plan.name, &owned_tables).await?;
    let plans = Table::ALL
        .into_iter()
        .map(|t| (t, FlattenPlan::new(schemas.get(t))))
        .collect();
    let twilio_owner = plan
        .twilio
        .credentials
        .as_ref()
        .map(|c| Owner::twilio(&c.account_sid));
    let telnyx_owner = plan.telnyx.api_key.as_ref().map(Owner::telnyx);
    let shared = Arc::new(Shared {
        plan,
        lake,
        schemas,
        clients,
        lineage: Lineage {
            ingested_at_micros: started_at.timestamp_micros(),
            run_id: Arc::clone(&run_id),
        },
        run_id,
        stats: Arc::new(RunStats::default()),
        drift: DriftLog::default(),
        sink,
        twilio_owner,
        telnyx_owner,
        coverage: tokio::sync::Mutex::new(coverage),
        stop,
        pinned_now: options.now,
        plans,
    });
    let http_stats: Vec<Arc<HttpStats>> =
        shared.clients.stats().into_iter().map(|(_, s)| s).collect();
    let progress = Progress::start(options.progress, Arc::clone(&shared.stats), http_stats);
    tracing::info!(run_id = %shared.run_id, job = %shared.plan.name, mode = mode.name(),
        output = %shared.lake.shown(), "run started");
    let result = match (&mode, window) {
        (_, Some((from, to))) if from >= to => Ok(Outcome::default()),
        (
            RunMode::Ids {
                calls,
                legs,
                sessions,
            },
            _,
        ) => run_ids(&shared, calls, legs, sessions).await,
        (RunMode::Window { legs, sessions, .. }, Some((from, to))) => {
            run_window(&shared, from, to, false, legs, sessions).await
        }
        (_, Some((from, to))) => run_window(&shared, from, to, true, &[], &[]).await,
        (_, None) => Ok(Outcome::default()),
    };
    progress.finish();
    // This run's staging goes, unless a journal a failed commit left still names it.
    if let Err(e) = sink_commit::discard_staging(&shared.lake, &shared.plan.name).await {
        tracing::warn!(error = %e, "could not clear the run's staging; the next run does");
    }
    shared
        .lake
        .remove_empty_folders(&staging_dir(&shared.plan.name));
    let mut report = report_of(&shared, &mode, window, &options, started_at, clock);
    let nothing_new = window.is_some_and(|(from, to)| from >= to);
    match result {
        Ok(outcome) => {
            if matches!(mode, RunMode::Nightly)
                && let Some((from, to)) = window
            {
                let watermark = advance_watermark(&shared, from, to, &outcome).await;
                job_state.watermark = Some(watermark.to_rfc3339());
                report.watermark = job_state.watermark.clone();
            }
            report.failed_calls = outcome.failed;
            report.slices_committed = outcome.committed;
            report.files_written = outcome.files;
            report.outcome = if nothing_new {
                "nothing_new"
            } else if report.failed_calls.is_empty() {
                "ok"
            } else {
                "failed_calls"
            }
            .into();
        }
        Err(e) => {
            report.outcome = if matches!(e, Error::Interrupted { .. }) {
                "interrupted"
            } else {
                "error"
            }
            .into();
            report.error = Some(e.to_string());
            if let Error::Input(_) = e {
                return Err(e);
            }
        }
    }
    let interrupted = shared.stop.requested().then(|| shared.stop.error());
    job_state.last_run = Some(LastRun {
        run_id: report.run_id.clone(),
        outcome: report.outcome.clone(),
        mode: report.mode.clone(),
        finished_at: Utc::now().to_rfc3339(),
        failed_calls: report.failed_calls.len(),
    });
    if let Err(e) = job_state.save(&shared.lake).await {
        tracing::warn!(error = %e, "could not save the job's state");
    }
    if let Err(e) = shared
        .lake
        .put_json(&run_manifest(&report.run_id), &report)
        .await
    {
        tracing::warn!(error = %e, "could not write the run manifest");
    }
    if let Some(stopped) = interrupted {
        eprint!("{}", report.summary());
        return Err(stopped);
    }
    match report.error.clone() {
        Some(error) if report.slices_committed.is_empty() && report.failed_calls.is_empty() => {
            Err(Error::Run(error))
        }
        _ => Ok(report),
    }
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
    shared: &Shared,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    outcome: &Outcome,
) -> DateTime<Utc> {
    let coverage = shared.coverage.lock().await;
    let owners = shared.plan.owners();
    HourSlice::covering(from, to)
        .into_iter()
        .find(|h| {
            outcome.undone.contains(h)
                || owners
                    .iter()
                    .any(|(owner, tables)| !coverage.all_of(owner, tables, *h))
        })
        .map(|h| h.start())
        .unwrap_or(to)
}

async fn run_ids(
    shared: &Arc<Shared>,
    calls: &[CallSid],
    legs: &[TelnyxId],
    sessions: &[TelnyxId],
) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    if !calls.is_empty() {
        let (tx, rx) = mpsc::channel(4);
        let producer = tokio::spawn(twilio::produce_calls(
            Arc::clone(shared),
            calls.to_vec(),
            tx,
        ));
        let mut pipeline = twilio::run_hours(Arc::clone(shared), rx).await?;
        let failed = producer
            .await
            .map_err(|e| Error::Run(format!("resolving calls stopped: {e}")))??;
        pipeline.failed.splice(0..0, failed);
        outcome.absorb(pipeline);
    }
    if !legs.is_empty() || !sessions.is_empty() {
        outcome.absorb(telnyx::run_ids(shared, legs, sessions, None).await?);
    }
    Ok(outcome)
}

async fn run_window(
    shared: &Arc<Shared>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skip_done: bool,
    legs: &[TelnyxId],
    sessions: &[TelnyxId],
) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    if !twilio::tables(shared).is_empty() {
        let (tx, rx) = mpsc::channel(4);
        let producer = tokio::spawn(twilio::produce_window(
            Arc::clone(shared),
            from,
            to,
            skip_done,
            tx,
        ));
        let pipeline = twilio::run_hours(Arc::clone(shared), rx).await;
        let produced = producer
            .await
            .map_err(|e| Error::Run(format!("discovery stopped: {e}")))?;
        outcome.absorb(pipeline?);
        if let Err(e) = produced {
            outcome.failed.push(FailedCall {
                id: "twilio discovery".into(),
                kind: "discovery".into(),
                slice: None,
                reason: e.to_string(),
            });
            outcome.undone.extend(HourSlice::covering(from, to));
        }
    }
    if shared.plan.tables.contains(&Table::TelnyxCallEvents) {
        let part = if legs.is_empty() && sessions.is_empty() {
            telnyx::run_window(shared, from, to, skip_done).await?
        } else {
            let mut part = telnyx::run_ids(shared, legs, sessions, Some((from, to))).await?;
            part.undone.extend(HourSlice::covering(from, to));
            part
        };
        outcome.absorb(part);
    }
    Ok(outcome)
}

fn report_of(
    shared: &Shared,
    mode: &RunMode,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    options: &RunOptions,
    started_at: DateTime<Utc>,
    clock: Instant,
) -> RunReport {
    let http = shared
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
        run_id: shared.run_id.to_string(),
        job: shared.plan.name.clone(),
        command: options.command.clone(),
        mode: mode.name().into(),
        window: window.map(|(f, t)| (f.to_rfc3339(), t.to_rfc3339())),
        started_at: started_at.to_rfc3339(),
        duration_secs: clock.elapsed().as_secs_f64(),
        outcome: String::new(),
        error: None,
        tables: shared
            .stats
            .tables()
            .into_iter()
            .map(|(t, c)| (t.name().to_string(), c))
            .collect(),
        http,
        calls: (
            RunStats::get(&shared.stats.calls_total),
            RunStats::get(&shared.stats.calls_done),
            RunStats::get(&shared.stats.calls_failed),
        ),
        failed_calls: Vec::new(),
        slices_committed: Vec::new(),
        files_written: Vec::new(),
        unknown_fields: shared.drift.all(),
        watermark: None,
    }
}
