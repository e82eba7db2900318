//! `voxlake report JOB`: a self-contained HTML call-quality report of a window of the lake
//! (and, with `--json`, its figures). It reads only the window's `date=` partitions and the
//! columns it needs, file by file on a pool of tasks, keeping per call facts and per day
//! value counts (memory grows with the calls and distinct values, not the rows).
//!
//! The engine is arrow's Parquet reader with a projection and plain Rust folds, not
//! DataFusion: the figures are a handful of per call and per day folds, and DataFusion
//! would double the build for them.

mod collect;
mod dist;
pub mod figures;
mod html;
mod scan;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::job::JobPlan;
use crate::output::Output;
use crate::schema::Table;
use crate::sink::Lake;
use crate::timefmt::{day_to_string, micros_to_day};

use collect::{Collected, REPORT_TABLES, TableRead};
use figures::{Figures, Present, TableFigure, Thresholds, Window};
use scan::{LakeFile, ScanSpec, TableIndex};

/// Days in the default window (ending with the last day that has data).
pub const DEFAULT_DAYS: i64 = 7;

/// What `voxlake report` was asked for.
#[derive(Clone, Debug)]
pub struct ReportRequest {
    /// `--from`/`--to`; None: the last [`DEFAULT_DAYS`] days up to the last day with data.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The HTML file to write.
    pub output_file: PathBuf,
    /// Where to write the figures as JSON, if anywhere.
    pub json: Option<PathBuf>,
    /// Thresholds of the tags computed from metrics.
    pub thresholds: Thresholds,
    /// Files read at once.
    pub threads: usize,
    /// The clock (for the default window of a lake without data).
    pub now: DateTime<Utc>,
}

/// Writes the report; prints where it is and what it read.
pub async fn run(plan: &JobPlan, request: &ReportRequest) -> Result<Exit> {
    let figures = build(plan, request).await?;
    let page = html::render(&figures);
    write_atomically(&request.output_file, page.as_bytes())?;
    if let Some(json) = &request.json {
        let text = serde_json::to_vec_pretty(&figures)
            .map_err(|e| Error::Internal(format!("report figures: {e}")))?;
        write_atomically(json, &text)?;
    }
    println!(
        "report of {} ({} .. {}): {} rows from {} tables → {}",
        figures.job,
        figures.window.from,
        figures.window.to,
        figures.rows_read,
        figures.tables.iter().filter(|t| t.present).count(),
        request.output_file.display()
    );
    Ok(Exit::Done)
}

/// Reads the lake and computes the figures.
pub async fn build(plan: &JobPlan, request: &ReportRequest) -> Result<Figures> {
    let lake = open_existing_lake(plan).await?;
    let index = TableIndex::open(&lake, plan.format, &REPORT_TABLES).await?;
    let mut present_tables = Vec::new();
    for table in REPORT_TABLES {
        if index.has_table(&lake, table).await? {
            present_tables.push(table);
        }
    }
    let (window, chosen) = match request.window {
        Some(window) => (window, "given"),
        None => (
            default_window(&lake, &index, &present_tables, request.now).await?,
            "last 7 days with data",
        ),
    };
    let days = window_days(window);
    let collected = read_tables(&lake, &index, &present_tables, window, request.threads).await?;
    let present = Present {
        calls: present_tables.contains(&Table::Calls),
        summaries: present_tables.contains(&Table::CallSummaries),
        metrics: present_tables.contains(&Table::InsightsMetrics),
        events: present_tables.contains(&Table::InsightsEvents),
        telnyx: present_tables.contains(&Table::TelnyxCallEvents),
    };
    Ok(assemble(
        plan,
        &lake,
        &collected,
        present,
        (window, chosen, &days),
        request,
    )
    .await)
}

async fn assemble(
    plan: &JobPlan,
    lake: &Lake,
    collected: &Collected,
    present: Present,
    (window, chosen, days): ((DateTime<Utc>, DateTime<Utc>), &str, &[i32]),
    request: &ReportRequest,
) -> Figures {
    let thresholds = &request.thresholds;
    let (calls, mos, metrics, tags) = figures::compute(collected, present, days, thresholds);
    let insights = present.metrics || present.events || present.summaries;
    let tables: Vec<TableFigure> = REPORT_TABLES
        .iter()
        .map(|table| {
            let read = collected.read.get(table).copied().unwrap_or_default();
            TableFigure {
                table: table.name().into(),
                present: present_of(present, *table),
                files: read.files,
                rows: read.rows,
            }
        })
        .collect();
    Figures {
        job: plan.name.clone(),
        lake: lake.shown().to_string(),
        window: Window {
            from: window.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            to: window.1.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            days: days.iter().map(|d| day_to_string(*d)).collect(),
            chosen: chosen.into(),
        },
        last_commit: last_commit(lake).await,
        rows_read: tables.iter().map(|t| t.rows).sum(),
        tables,
        calls,
        mos,
        metrics,
        tags,
        thresholds: thresholds.clone(),
        worst_calls: present.metrics.then(|| figures::worst_calls(collected)),
        by_country: insights.then(|| figures::groups(collected, thresholds, figures::country_of)),
        by_platform: insights.then(|| figures::groups(collected, thresholds, figures::platform_of)),
        by_sdk_version: present
            .events
            .then(|| figures::groups(collected, thresholds, figures::sdk_version_of)),
        insights_events: present.events.then(|| figures::event_figures(collected)),
        telnyx_events: present.telnyx.then(|| figures::telnyx_figures(collected)),
    }
}

fn present_of(present: Present, table: Table) -> bool {
    match table {
        Table::Calls => present.calls,
        Table::CallSummaries => present.summaries,
        Table::InsightsMetrics => present.metrics,
        Table::InsightsEvents => present.events,
        Table::TelnyxCallEvents => present.telnyx,
        _ => false,
    }
}

/// Opens the job's lake; a lake that does not exist, or holds nothing voxlake wrote, is bad
/// input (a report of nothing would hide a wrong path).
async fn open_existing_lake(plan: &JobPlan) -> Result<Lake> {
    if let Output::Local(path) = &plan.output
        && !path.is_dir()
    {
        return Err(Error::Input(format!(
            "no lake at {}: the folder does not exist (run the job first, or give --output)",
            path.display()
        )));
    }
    let lake = Lake::open(&plan.output, &plan.store_settings()).await?;
    if lake.exists_under("_voxlake/").await? {
        return Ok(lake);
    }
    for table in REPORT_TABLES {
        if lake.exists_under(&format!("{table}/")).await? {
            return Ok(lake);
        }
    }
    Err(Error::Input(format!(
        "no lake at {}: it holds no voxlake tables (run the job first, or give --output)",
        lake.shown()
    )))
}

/// The last [`DEFAULT_DAYS`] days up to the last day with data in any table (up to today
/// when there is none).
async fn default_window(
    lake: &Lake,
    index: &TableIndex,
    tables: &[Table],
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let mut last = None;
    for table in tables {
        last = last.max(index.days(lake, *table).await?.last().copied());
    }
    let last = last.unwrap_or_else(|| micros_to_day(now.timestamp_micros()));
    let end = DateTime::<Utc>::UNIX_EPOCH + Duration::days(i64::from(last) + 1);
    Ok((end - Duration::days(DEFAULT_DAYS), end))
}

/// The days a window touches.
fn window_days((from, to): (DateTime<Utc>, DateTime<Utc>)) -> Vec<i32> {
    let first = micros_to_day(from.timestamp_micros());
    let last = micros_to_day(to.timestamp_micros() - 1);
    (first..=last).collect()
}

/// Reads every file of the tables in the window, `threads` at a time, and adds up what each
/// gave in file order (so the same lake gives the same figures to the last bit).
async fn read_tables(
    lake: &Lake,
    index: &TableIndex,
    tables: &[Table],
    window: (DateTime<Utc>, DateTime<Utc>),
    threads: usize,
) -> Result<Collected> {
    let days = window_days(window);
    let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
        return Ok(Collected::default());
    };
    let permits = Arc::new(Semaphore::new(threads.max(1)));
    let mut tasks: JoinSet<Result<(usize, Collected)>> = JoinSet::new();
    let mut merged = InOrder::default();
    let mut next_file = 0usize;
    for table in tables {
        let spec = Arc::new(ScanSpec {
            columns: collect::columns(*table),
            from: window.0.timestamp_micros(),
            to: window.1.timestamp_micros(),
        });
        merged.collected.read.insert(*table, TableRead::default());
        for file in index.files(lake, *table, (first, last)).await? {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .map_err(|e| Error::Internal(format!("report pool: {e}")))?;
            let (lake, spec, table, number) = (lake.clone(), Arc::clone(&spec), *table, next_file);
            next_file += 1;
            tasks.spawn(async move {
                let part = read_file(&lake, table, &file, &spec).await;
                drop(permit);
                part.map(|part| (number, part))
            });
            while let Some(done) = tasks.try_join_next() {
                merged.add(joined(done)?);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        merged.add(joined(done)?);
    }
    Ok(merged.collected)
}

/// Parts merged in file order as they arrive (early arrivals wait, at most a pool's worth).
#[derive(Default)]
struct InOrder {
    collected: Collected,
    next: usize,
    waiting: std::collections::BTreeMap<usize, Collected>,
}

impl InOrder {
    fn add(&mut self, (number, part): (usize, Collected)) {
        self.waiting.insert(number, part);
        while let Some(part) = self.waiting.remove(&self.next) {
            self.collected.merge(part);
            self.next += 1;
        }
    }
}

fn joined<T>(done: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    done.map_err(|e| Error::Internal(format!("report task: {e}")))?
}

async fn read_file(
    lake: &Lake,
    table: Table,
    file: &LakeFile,
    spec: &ScanSpec,
) -> Result<Collected> {
    let mut part = Collected::default();
    let rows = scan::scan_file(lake, file, spec, |rows| {
        collect::collect(table, rows, &mut part)
    })
    .await?;
    part.read.insert(table, TableRead { files: 1, rows });
    Ok(part)
}

/// When the lake was last committed to: the end of the newest run whose manifest lists a
/// commit.
async fn last_commit(lake: &Lake) -> Option<String> {
    let manifests = lake.list("_voxlake/runs/").await.ok()?;
    for path in manifests.iter().rev() {
        let Ok(Some(manifest)) = lake.get_json::<serde_json::Value>(path).await else {
            continue;
        };
        let listed = |key: &str| manifest[key].as_array().is_some_and(|a| !a.is_empty());
        if !(listed("slices_committed") || listed("delta_commits")) {
            continue;
        }
        let started = manifest["started_at"].as_str()?;
        let started = DateTime::parse_from_rfc3339(started)
            .ok()?
            .with_timezone(&Utc);
        let took = manifest["duration_secs"].as_f64().unwrap_or(0.0);
        let end = started + Duration::milliseconds((took * 1000.0) as i64);
        return Some(end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    None
}

/// Writes a file whole or not at all: into a temporary file next to it, then renamed.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let failed = |what: &str, e: std::io::Error| {
        Error::Input(format!("cannot {what} {}: {e}", path.display()))
    };
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temp, bytes).map_err(|e| failed("write", e))?;
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        failed("write", e)
    })
}
