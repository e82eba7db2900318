//! What a run says it did: the manifest (`_voxlake/runs/{run_id}.json`), the summary on
//! stderr, and the outcome that decides the exit code.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::events::TableCounts;
use crate::exit::Exit;
use crate::hours::HourSlice;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything asked for landed.
    Ok,
    /// A nightly run with nothing new to fetch.
    NothingNew,
    /// Some units (calls, legs, windows) failed after retries; the others landed.
    FailedCalls,
    /// Stopped by SIGINT or SIGTERM.
    Interrupted,
    /// An error stopped the run.
    Error,
}

impl Outcome {
    /// The outcome's name, as the manifest and the summary write it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NothingNew => "nothing_new",
            Outcome::FailedCalls => "failed_calls",
            Outcome::Interrupted => "interrupted",
            Outcome::Error => "error",
        }
    }
}

/// What a unit that did not land was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A Twilio call.
    Call,
    /// A Twilio conference.
    Conference,
    /// A Telnyx call leg.
    Leg,
    /// A Telnyx call session.
    Session,
    /// A range of a Telnyx window.
    TelnyxWindow,
    /// Finding the calls of a window.
    Discovery,
}

/// A unit (call, leg, session, Telnyx range) that did not land, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FailedUnit {
    /// The call SID, leg or session id, or range.
    pub id: String,
    /// What it was.
    pub kind: UnitKind,
    /// Its hour, when known.
    pub slice: Option<String>,
    /// What went wrong.
    pub reason: String,
}

impl FailedUnit {
    /// A unit that failed, in `slice` if it has one.
    pub fn new(kind: UnitKind, id: &str, slice: Option<HourSlice>, reason: String) -> FailedUnit {
        FailedUnit {
            id: id.to_string(),
            kind,
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
    /// How it ended.
    pub outcome: Outcome,
    /// The error that stopped the run, if one did.
    pub error: Option<String>,
    /// Rows and pages per table.
    pub tables: BTreeMap<String, TableCounts>,
    /// Per API.
    pub http: BTreeMap<String, HttpCounts>,
    /// Units (calls, legs) to fetch, done, failed.
    pub calls: (u64, u64, u64),
    /// Units that did not land.
    pub failed_calls: Vec<FailedUnit>,
    /// Hours committed.
    pub slices_committed: Vec<String>,
    /// Files written (relative to the output).
    pub files_written: Vec<String>,
    /// Delta tables: the versions this run committed, as `table@version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delta_commits: Vec<String>,
    /// Fields the APIs sent that the schemas do not name (kept in `_extra`).
    pub unknown_fields: Vec<String>,
    /// The job's watermark after the run (nightly).
    pub watermark: Option<String>,
}

impl RunReport {
    /// How the process exits: done, or failed (some units, or the run).
    pub fn exit(&self) -> Exit {
        match self.outcome {
            Outcome::Ok | Outcome::NothingNew => Exit::Done,
            Outcome::FailedCalls | Outcome::Interrupted | Outcome::Error => Exit::Failed,
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
            self.outcome.name(),
            self.duration_secs,
            self.calls.1,
            self.calls.2,
            self.calls.0
        );
        for (table, counts) in &self.tables {
            let per = match table.parse::<crate::schema::Table>().map(|t| t.spec().unit) {
                Ok(crate::tables::UnitKind::Call) => "call",
                Ok(crate::tables::UnitKind::Conference) => "conference",
                _ => "listing",
            };
            out.push_str(&format!(
                "  {table}: {} rows, {} pages, {:.2} requests per {per}\n",
                counts.rows, counts.pages, counts.requests_per_unit
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
        if !self.delta_commits.is_empty() {
            out.push_str(&format!("  {} Delta commits\n", self.delta_commits.len()));
        }
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

/// What a run's parts landed (the pipeline) or could not plan (discovery).
#[derive(Default)]
pub(crate) struct Landed {
    /// Hours committed.
    pub committed: Vec<String>,
    /// Files written.
    pub files: Vec<String>,
    /// Delta versions committed (`table@version`).
    pub versions: Vec<String>,
    /// Units that did not land.
    pub failed: Vec<FailedUnit>,
    /// Hours of the run's window not committed whole (failed units, partial hours).
    pub undone: BTreeSet<HourSlice>,
}

impl Landed {
    /// Adds what another part of the run landed or missed.
    pub(crate) fn absorb(&mut self, other: Landed) {
        self.committed.extend(other.committed);
        self.files.extend(other.files);
        self.versions.extend(other.versions);
        self.failed.extend(other.failed);
        self.undone.extend(other.undone);
    }
}
