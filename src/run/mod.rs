//! A run: plans the units of work (Twilio calls by hour, Telnyx hours, legs), drives fetch →
//! flatten → write with bounded concurrency, commits hour by hour, records coverage and the
//! job's watermark, and writes the run manifest.

mod calls;
mod clients;
mod commit;
mod telnyx;
mod twilio;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::events::{DriftLog, RunStats, TableCounts};
use crate::flatten::{FlattenPlan, Lineage};
use crate::http::HttpStats;
use crate::ids::{CallSid, TelnyxId};
use crate::job::JobPlan;
use crate::progress::Progress;
use crate::schema::{Schemas, Table};
use crate::sink::commit as sink_commit;
use crate::sink::layout::{STAGING_DIR, run_manifest, slice_records_dir};
use crate::sink::parquet::WriterSettings;
use crate::sink::{HourSlice, Lake};
use crate::sources::telnyx::LOOKBACK_HOURS;
use crate::state::{CoverageSet, JobState, LastRun};
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
    pub writer_settings: Arc<WriterSettings>,
    /// Coverage of the job's tables.
    pub coverage: tokio::sync::Mutex<CoverageSet>,
    /// Hours with a slice record, per table (listed once at start).
    records: Mutex<BTreeMap<Table, BTreeSet<HourSlice>>>,
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

    /// True when the table has a record for the hour.
    pub(crate) fn has_record(&self, table: Table, slice: HourSlice) -> bool {
        self.records
            .lock()
            .map(|r| r.get(&table).is_some_and(|s| s.contains(&slice)))
            .unwrap_or(true)
    }

    /// Notes a record written.
    pub(crate) fn note_record(&self, table: Table, slice: HourSlice) {
        if let Ok(mut records) = self.records.lock() {
            records.entry(table).or_default().insert(slice);
        }
    }

    /// Marks an hour done for these tables and saves their coverage.
    pub(crate) async fn mark_done(&self, tables: &[Table], slice: HourSlice) -> Result<()> {
        let mut coverage = self.coverage.lock().await;
        for table in tables {
            let entry = coverage.tables.entry(*table).or_default();
            entry.mark(slice);
            entry.save(&self.lake, *table).await?;
        }
        Ok(())
    }
}

/// A run id: start time plus randomness, sortable.
fn new_run_id(started: DateTime<Utc>) -> String {
    let suffix: u32 = rand::random::<u32>() & 0xff_ffff;
    format!("{}-{suffix:06x}", started.format("%Y%m%dT%H%M%SZ"))
}

async fn list_records(
    lake: &Lake,
    tables: &[Table],
) -> Result<BTreeMap<Table, BTreeSet<HourSlice>>> {
    let mut records = BTreeMap::new();
    for table in tables {
        let hours = lake
            .list(&slice_records_dir(*table))
            .await?
            .iter()
            .filter_map(|path| {
                let name = path.rsplit('/').next()?.strip_suffix(".json")?;
                HourSlice::parse(name)
            })
            .collect();
        records.insert(*table, hours);
    }
    Ok(records)
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
    let now = options.now.unwrap_or(started_at);
    let clock = Instant::now();
    let run_id: Arc<str> = new_run_id(started_at).into();
    let schemas = Schemas::builtin().map_err(|e| Error::Run(e.to_string()))?;
    let clients = Clients::build(&plan)?;
    let lake = Lake::open(&plan.output, &plan.store_settings()).await?;
    lake.check_writable().await?;
    let mut job_state = JobState::load(&lake, &plan.name).await?;
    let window = resolve_window(&plan, &mode, &job_state, now)?;
    if let (RunMode::Nightly, Some((from, to))) = (&mode, window) {
        check_window_length(from, to, LONG_WINDOW_DAYS, "nightly catch-up", options.yes)?;
    }
    if let Some((from, _)) = window {
        let have_ids = matches!(&mode, RunMode::Window { legs, sessions, .. } if !legs.is_empty() || !sessions.is_empty());
        check_telnyx_lookback(&plan, from, now, have_ids)?;
    }
    let recovered = sink_commit::recover(&lake).await?;
    if recovered > 0 {
        tracing::info!(
            journals = recovered,
            "finished commits an earlier run left half done"
        );
    }
    let records = list_records(&lake, &plan.tables).await?;
    let coverage = CoverageSet::load(&lake, &plan.tables).await?;
    let plans = Table::ALL
        .into_iter()
        .map(|t| (t, FlattenPlan::new(schemas.get(t))))
        .collect();
    let shared = Arc::new(Shared {
        writer_settings: Arc::new(WriterSettings::new(&plan.parquet)?),
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
        coverage: tokio::sync::Mutex::new(coverage),
        records: Mutex::new(records),
        stop: crate::stop::Stop::listen(),
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
    shared.lake.remove_empty_folders(STAGING_DIR);
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
    let tables = &shared.plan.tables;
    HourSlice::covering(from, to)
        .into_iter()
        .find(|h| outcome.undone.contains(h) || !coverage.all_of(tables, *h))
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
