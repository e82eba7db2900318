//! A run: plans the units of work (calls by slice), drives fetch → flatten → write with bounded
//! concurrency, commits slice by slice, and writes the run manifest.

mod calls;
mod slices;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::events::{DriftLog, RunStats, TableCounts};
use crate::flatten::Lineage;
use crate::http::{Api, ApiClient, ApiConfig, HttpStats};
use crate::ids::CallSid;
use crate::job::JobPlan;
use crate::job::plan::Credentials;
use crate::progress::Progress;
use crate::schema::Schemas;
use crate::sink::commit;
use crate::sink::layout::run_manifest;
use crate::sink::parquet::WriterSettings;
use crate::sink::{HourSlice, Lake};
use crate::sources::twilio_rest::{self, CallInfo};
use slices::{Policy, SliceWork, run_slices};

/// What to fetch.
#[derive(Clone, Debug)]
pub enum RunMode {
    /// These calls (the per-call Twilio tables).
    Calls(Vec<CallSid>),
    /// The calls started in [from, to), always re-ingested.
    Window {
        /// Window start (inclusive).
        from: DateTime<Utc>,
        /// Window end (exclusive).
        to: DateTime<Utc>,
    },
}

/// How the run presents itself.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Draw a progress bar.
    pub progress: bool,
    /// The command line, for the manifest (no secrets: they come from the environment).
    pub command: String,
}

/// A call that did not land, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FailedCall {
    /// The call SID.
    pub call_sid: String,
    /// Its slice, when known.
    pub slice: Option<String>,
    /// What went wrong.
    pub reason: String,
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
    /// `calls` or `window`.
    pub mode: String,
    /// The window, for window runs.
    pub window: Option<(String, String)>,
    /// Start (RFC 3339).
    pub started_at: String,
    /// Seconds taken.
    pub duration_secs: f64,
    /// `ok`, `failed_calls` or `error`.
    pub outcome: String,
    /// The error that stopped the run, if one did.
    pub error: Option<String>,
    /// Rows and pages per table.
    pub tables: BTreeMap<String, TableCounts>,
    /// Per API.
    pub http: BTreeMap<String, HttpCounts>,
    /// Calls to fetch, done, failed.
    pub calls: (u64, u64, u64),
    /// Calls that did not land.
    pub failed_calls: Vec<FailedCall>,
    /// Slices committed.
    pub slices_committed: Vec<String>,
    /// Files written (relative to the output).
    pub files_written: Vec<String>,
    /// Fields the APIs sent that the schemas do not name (kept in `_extra`).
    pub unknown_fields: Vec<String>,
}

impl RunReport {
    /// 0 all done; 1 some calls failed or the run stopped.
    pub fn exit_code(&self) -> u8 {
        if self.outcome == "ok" { 0 } else { 1 }
    }

    /// A few lines for people and cron mail.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "voxlake run {} ({}): {} in {:.1}s; calls {} done, {} failed of {}\n",
            self.run_id,
            self.job,
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
            "  {} slices committed, {} files written\n",
            self.slices_committed.len(),
            self.files_written.len()
        ));
        for failed in &self.failed_calls {
            out.push_str(&format!(
                "  FAILED {}: {}\n",
                failed.call_sid, failed.reason
            ));
        }
        if let Some(error) = &self.error {
            out.push_str(&format!("  ERROR {error}\n"));
        }
        out
    }
}

/// The API clients a run needs.
pub(crate) struct Clients {
    insights: Option<ApiClient>,
    rest: Option<ApiClient>,
    credentials: Option<Credentials>,
}

impl Clients {
    fn build(plan: &JobPlan) -> Result<Clients> {
        let credentials = plan.twilio.credentials.clone();
        let make = |api: Api, base: &url::Url, creds: &Credentials| {
            ApiClient::new(ApiConfig {
                api,
                base_url: base.clone(),
                auth: creds.auth.clone(),
                requests_per_second: plan.twilio.requests_per_second,
                concurrency: plan.twilio.concurrency,
                timeout: plan.http.timeout,
                retry: plan.http.retry.clone(),
                max_body_bytes: plan.http.max_body_bytes,
            })
            .map_err(|e| Error::Input(e.to_string()))
        };
        let (insights, rest) = match &credentials {
            Some(creds) => (
                Some(make(Api::TwilioInsights, &plan.twilio.insights_url, creds)?),
                Some(make(Api::TwilioRest, &plan.twilio.api_url, creds)?),
            ),
            None => (None, None),
        };
        Ok(Clients {
            insights,
            rest,
            credentials,
        })
    }

    fn missing(what: &str) -> calls::CallError {
        calls::CallError {
            reason: format!("no {what} configured"),
            fatal: true,
        }
    }

    pub(crate) fn insights(&self) -> std::result::Result<&ApiClient, calls::CallError> {
        self.insights
            .as_ref()
            .ok_or_else(|| Self::missing("Twilio Insights client"))
    }

    pub(crate) fn rest(&self) -> std::result::Result<&ApiClient, calls::CallError> {
        self.rest
            .as_ref()
            .ok_or_else(|| Self::missing("Twilio REST client"))
    }

    pub(crate) fn credentials(&self) -> std::result::Result<&Credentials, calls::CallError> {
        self.credentials
            .as_ref()
            .ok_or_else(|| Self::missing("Twilio credentials"))
    }

    fn stats(&self) -> Vec<(Api, Arc<HttpStats>)> {
        [&self.insights, &self.rest]
            .into_iter()
            .flatten()
            .map(|c| (c.api(), c.stats()))
            .collect()
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
}

/// A run id: start time plus randomness, sortable.
fn new_run_id(started: DateTime<Utc>) -> String {
    let suffix: u32 = rand::random::<u32>() & 0xff_ffff;
    format!("{}-{suffix:06x}", started.format("%Y%m%dT%H%M%SZ"))
}

/// Runs a job: fetches, writes, commits, and writes the manifest. `Err` is a run that could not
/// start or was stopped; failed calls are in the report (exit code 1).
pub async fn execute(plan: JobPlan, mode: RunMode, options: RunOptions) -> Result<RunReport> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let run_id: Arc<str> = new_run_id(started_at).into();
    let schemas = Schemas::builtin().map_err(|e| Error::Run(e.to_string()))?;
    let clients = Clients::build(&plan)?;
    let lake = Lake::open(&plan.output).await?;
    let recovered = commit::recover(&lake).await?;
    if recovered > 0 {
        tracing::info!(
            journals = recovered,
            "finished commits an earlier run left half done"
        );
    }
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
    });
    let http_stats: Vec<Arc<HttpStats>> =
        shared.clients.stats().into_iter().map(|(_, s)| s).collect();
    let progress = Progress::start(options.progress, Arc::clone(&shared.stats), http_stats);
    tracing::info!(run_id = %shared.run_id, job = %shared.plan.name, output = %shared.lake.shown(), "run started");
    let result = match &mode {
        RunMode::Calls(sids) => run_calls(&shared, sids.clone()).await,
        RunMode::Window { from, to } => run_window(&shared, *from, *to).await,
    };
    progress.finish();
    shared
        .lake
        .remove_empty_folders(crate::sink::layout::STAGING_DIR);
    let mut report = report_of(&shared, &mode, &options, started_at, clock);
    match result {
        Ok(outcome) => {
            report.failed_calls = outcome.failed;
            report.slices_committed = outcome.committed;
            report.files_written = outcome.files;
            report.outcome = if report.failed_calls.is_empty() {
                "ok"
            } else {
                "failed_calls"
            }
            .into();
        }
        Err(e) => {
            report.outcome = "error".into();
            report.error = Some(e.to_string());
        }
    }
    let manifest = run_manifest(&report.run_id);
    if let Err(e) = shared.lake.put_json(&manifest, &report).await {
        tracing::warn!(error = %e, "could not write the run manifest");
    }
    match report.error.clone() {
        Some(error) if report.slices_committed.is_empty() && report.failed_calls.is_empty() => {
            Err(Error::Run(error))
        }
        _ => Ok(report),
    }
}

fn report_of(
    shared: &Shared,
    mode: &RunMode,
    options: &RunOptions,
    started_at: DateTime<Utc>,
    clock: Instant,
) -> RunReport {
    let (mode_name, window) = match mode {
        RunMode::Calls(_) => ("calls", None),
        RunMode::Window { from, to } => ("window", Some((from.to_rfc3339(), to.to_rfc3339()))),
    };
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
        mode: mode_name.into(),
        window,
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
    }
}

/// Per-SID: learn each call's start (its slice), then fetch and merge into those slices.
async fn run_calls(shared: &Arc<Shared>, sids: Vec<CallSid>) -> Result<slices::SlicesOutcome> {
    RunStats::bump(&shared.stats.calls_total, sids.len() as u64);
    let (infos, mut failed) = resolve_calls(shared, sids).await?;
    let mut by_slice: BTreeMap<HourSlice, Vec<CallInfo>> = BTreeMap::new();
    for info in infos {
        by_slice
            .entry(HourSlice::from_micros(info.anchor_micros))
            .or_default()
            .push(info);
    }
    let work = by_slice
        .into_iter()
        .map(|(slice, calls)| SliceWork {
            slice,
            calls,
            policy: Policy::Merge,
        })
        .collect();
    let mut outcome = run_slices(Arc::clone(shared), work).await?;
    failed.append(&mut outcome.failed);
    outcome.failed = failed;
    Ok(outcome)
}

async fn resolve_calls(
    shared: &Arc<Shared>,
    sids: Vec<CallSid>,
) -> Result<(Vec<CallInfo>, Vec<FailedCall>)> {
    let client = shared.clients.rest().map_err(|e| Error::Run(e.reason))?;
    let account = &shared
        .clients
        .credentials()
        .map_err(|e| Error::Run(e.reason))?
        .account_sid;
    let results: Vec<_> = futures::stream::iter(sids)
        .map(|sid| async move {
            let result = twilio_rest::fetch_call(client, account, &sid).await;
            (sid, result)
        })
        .buffer_unordered(shared.plan.twilio.concurrency)
        .collect()
        .await;
    let mut infos = Vec::new();
    let mut failed = Vec::new();
    for (sid, result) in results {
        match result.map_err(calls::CallError::from) {
            Ok(info) => infos.push(info),
            Err(e) if e.fatal => return Err(Error::Run(e.reason)),
            Err(e) => {
                tracing::warn!(call_sid = %sid, error = %e.reason, "call failed");
                RunStats::bump(&shared.stats.calls_failed, 1);
                failed.push(FailedCall {
                    call_sid: sid.to_string(),
                    slice: None,
                    reason: e.reason,
                });
            }
        }
    }
    Ok((infos, failed))
}

/// A window: discover the calls started in [from, to), then fetch them slice by slice. Whole
/// hours are replaced; the partial hours at either end are merged.
async fn run_window(
    shared: &Arc<Shared>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<slices::SlicesOutcome> {
    let client = shared.clients.rest().map_err(|e| Error::Run(e.reason))?;
    let account = &shared
        .clients
        .credentials()
        .map_err(|e| Error::Run(e.reason))?
        .account_sid;
    let calls =
        twilio_rest::discover_calls(client, account, from, to, shared.plan.twilio.page_size)
            .await
            .map_err(|e| Error::Run(format!("discovering the calls of the window: {e}")))?;
    RunStats::bump(&shared.stats.calls_total, calls.len() as u64);
    tracing::info!(calls = calls.len(), from = %from, to = %to, "window discovered");
    let mut by_slice: BTreeMap<HourSlice, Vec<CallInfo>> = HourSlice::covering(from, to)
        .into_iter()
        .map(|s| (s, Vec::new()))
        .collect();
    for call in calls {
        by_slice
            .entry(HourSlice::from_micros(call.anchor_micros))
            .or_default()
            .push(call);
    }
    let work = by_slice
        .into_iter()
        .map(|(slice, calls)| {
            let whole_hour = slice.start() >= from && slice.end() <= to;
            SliceWork {
                slice,
                calls,
                policy: if whole_hour {
                    Policy::Replace
                } else {
                    Policy::Merge
                },
            }
        })
        .collect();
    run_slices(Arc::clone(shared), work).await
}
