//! `voxlake status JOB`: the job's watermark, the hours done and pending per table, the slices
//! with data, and the last run's outcome, read from `{output}/_voxlake/`.

use std::fmt::Write as _;
use std::io::Write;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::exit::Exit;
use crate::hours::HourSlice;
use crate::job::JobPlan;
use crate::output::Output;
use crate::output::TableFormat;
use crate::sink::Lake;
use crate::sink::delta::DeltaTables;
use crate::sink::layout::{run_manifest, slice_records_dir};
use crate::state::{JobState, merged_coverage, state_names};

/// Prints the status; exit code 0.
pub async fn print(plan: &JobPlan, now: DateTime<Utc>) -> Result<Exit> {
    if let Output::Local(path) = &plan.output
        && !path.exists()
    {
        println!(
            "job {}: nothing written yet ({} does not exist)",
            plan.name,
            path.display()
        );
        return Ok(Exit::Done);
    }
    let lake = Lake::open(&plan.output, &plan.store_settings()).await?;
    let text = render(plan, &lake, now).await?;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(Exit::Done)
}

/// The status as text.
pub async fn render(plan: &JobPlan, lake: &Lake, now: DateTime<Utc>) -> Result<String> {
    let state = JobState::load(lake, &plan.name).await?;
    // A sharded backfill's workers keep state of their own; the job's status is all of it.
    let mut names = state_names(lake, &plan.name).await?;
    if !names.contains(&plan.name) {
        names.insert(0, plan.name.clone());
    }
    let mut out = String::new();
    let _ = writeln!(out, "job {} → {}", plan.name, lake.shown());
    let watermark = state.watermark_time();
    match watermark {
        Some(w) => {
            let _ = writeln!(
                out,
                "watermark: {} (the next nightly run starts here)",
                w.to_rfc3339()
            );
        }
        None => {
            let start = plan
                .start
                .map(|s| s.to_rfc3339())
                .unwrap_or_else(|| "not set".into());
            let _ = writeln!(
                out,
                "watermark: none yet (the first nightly run starts at `start`: {start})"
            );
        }
    }
    match &state.last_run {
        Some(last) => {
            let _ = writeln!(
                out,
                "last run: {} ({}) {} at {}, {} failed; manifest {}",
                last.run_id,
                last.mode,
                last.outcome,
                last.finished_at,
                last.failed_calls,
                run_manifest(&last.run_id)
            );
        }
        None => {
            let _ = writeln!(out, "last run: none");
        }
    }
    for name in names.iter().filter(|n| **n != plan.name) {
        if let Some(last) = JobState::load(lake, name).await?.last_run {
            let _ = writeln!(
                out,
                "last run of {name}: {} ({}) {} at {}, {} failed",
                last.run_id, last.mode, last.outcome, last.finished_at, last.failed_calls
            );
        }
    }
    let delta = match plan.format {
        TableFormat::Delta => Some(DeltaTables::open(lake, &plan.tables).await?),
        TableFormat::Parquet => None,
    };
    let nightly_end = HourSlice::from_time(now - plan.lag).start();
    let nightly_start = watermark.or(plan.start.map(|s| HourSlice::from_time(s).start()));
    let accounts = match plan.named_accounts() {
        Some(accounts) => accounts,
        None => accounts_with_coverage(plan, lake).await?,
    };
    let owners = plan.owners(&accounts);
    // A table of several accounts names the account on each of its lines.
    let twilio_accounts = owners
        .iter()
        .filter(|(_, t)| t.iter().any(|t| t.spec().api != crate::http::Api::Telnyx));
    let several = twilio_accounts.count() > 1;
    for (owner, table) in owners
        .iter()
        .flat_map(|(owner, tables)| tables.iter().map(move |t| (owner, *t)))
    {
        let coverage = merged_coverage(lake, &names, owner, table).await?;
        let slices = match &delta {
            Some(tables) => tables.hours_with_data(table, owner).await?,
            None => lake.list(&slice_records_dir(owner, table)).await?.len(),
        };
        if several {
            let _ = writeln!(out, "{table} ({owner}): {slices} hours with data");
        } else {
            let _ = writeln!(out, "{table}: {slices} hours with data");
        }
        let ranges = coverage.ranges();
        if ranges.is_empty() {
            let _ = writeln!(out, "  done: nothing yet");
        }
        for (from, to) in ranges.iter().take(20) {
            let _ = writeln!(out, "  done: {from} .. {to}");
        }
        if ranges.len() > 20 {
            let _ = writeln!(out, "  done: … {} more ranges", ranges.len() - 20);
        }
        if let Some(start) = nightly_start {
            let hours = HourSlice::covering(start, nightly_end);
            let pending = coverage.missing(&hours);
            if let (Some(first), Some(last)) = (pending.first(), pending.last()) {
                let _ = writeln!(
                    out,
                    "  pending: {} hours between {} and {} (to now − lag)",
                    pending.len(),
                    first.start().to_rfc3339(),
                    last.end().to_rfc3339()
                );
            } else {
                let _ = writeln!(out, "  pending: nothing up to now − lag");
            }
        }
    }
    Ok(out)
}

/// The Twilio accounts the job has coverage of (for `accounts = "all"`: which ones there are
/// is the API's to say, and `status` sends no request).
async fn accounts_with_coverage(
    plan: &JobPlan,
    lake: &Lake,
) -> Result<Vec<crate::ids::AccountSid>> {
    let folder = crate::sink::layout::coverage_dir(&plan.name);
    let mut accounts: Vec<crate::ids::AccountSid> = lake
        .list(&folder)
        .await?
        .iter()
        .filter_map(|path| {
            path.strip_prefix(&folder)?
                .trim_start_matches('/')
                .split('/')
                .next()
        })
        .filter_map(|name| name.parse().ok())
        .collect();
    accounts.sort();
    accounts.dedup();
    Ok(accounts)
}
