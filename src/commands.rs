//! Turns the parsed command line into checked plans and runs them. Every input is checked here
//! or in `job::plan` before a request is sent or the output is touched.

use std::io::{IsTerminal, Write};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::cli::{Cli, Command, SimulateArgs, WindowArgs};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::ids::{CallSid, ConferenceSid, TelnyxId};
use crate::job::plan::{LONG_WINDOW_DAYS, RUN_WINDOW_DAYS, check_window_start};
use crate::job::{JobConfig, JobPlan};
use crate::report;
use crate::run::{self, RunMode, RunOptions, RunReport};
use crate::schema::{Schemas, Table, describe};
use crate::shard::Shard;
use crate::simulator::{self, Faults, SimConfig};
use crate::status;
use crate::tables::{self, UnitKind};
use crate::timefmt::{parse_cli_time, parse_duration};

/// Runs the command; returns the exit code (errors are returned for `main` to print).
pub async fn dispatch(cli: &Cli) -> Result<Exit> {
    match &cli.command {
        Command::Schemas { table } => print_schemas(table.as_deref()),
        Command::Run {
            job,
            call_sids,
            conference_sids,
            leg_ids,
            session_ids,
            window,
            output,
            yes,
            wait,
        } => {
            let ids = [call_sids, conference_sids, leg_ids, session_ids];
            let mode = run_mode(ids, window)?;
            let plan = load_plan(job, output.as_deref())?;
            run_checked(cli, plan, mode, (*yes, *wait)).await
        }
        Command::Backfill {
            job,
            from,
            to,
            output,
            yes,
            wait,
            shard,
            rate,
        } => {
            let window = WindowArgs {
                from: Some(from.clone()),
                to: Some(to.clone()),
            };
            let Some((from, to)) = parse_window(&window)? else {
                return Err(Error::Input("backfill needs --from and --to".into()));
            };
            let mut plan = load_plan(job, output.as_deref())?;
            if rate == &Some(0) {
                return Err(Error::Input("--rate must be at least 1".into()));
            }
            match shard.as_deref().map(Shard::parse).transpose()? {
                Some(shard) => plan = plan.with_shard(shard, *rate),
                None if rate.is_some() => {
                    return Err(Error::Input("--rate goes with --shard".into()));
                }
                None => {}
            }
            run_checked(cli, plan, RunMode::Backfill { from, to }, (*yes, *wait)).await
        }
        Command::Status { job, output } => {
            let plan = load_plan(job, output.as_deref())?;
            status::print(&plan, run_options(cli)?.now.unwrap_or_else(Utc::now)).await
        }
        Command::Compact {
            job,
            from,
            to,
            output,
            retain,
        } => {
            let window = WindowArgs {
                from: Some(from.clone()),
                to: Some(to.clone()),
            };
            let Some(window) = parse_window(&window)? else {
                return Err(Error::Input("compact needs --from and --to".into()));
            };
            let retain = parse_duration(retain)
                .ok()
                .filter(|d| *d >= chrono::Duration::zero())
                .ok_or_else(|| {
                    Error::Input(format!("--retain {retain:?}: give a duration (e.g. 7d)"))
                })?;
            let plan = load_plan(job, output.as_deref())?;
            let now = run_options(cli)?.now.unwrap_or_else(Utc::now);
            crate::sink::delta::compact::run(&plan, window, retain, now).await
        }
        Command::Report {
            job,
            window,
            output_file,
            json,
            output,
            thresholds,
        } => {
            let plan = JobPlan::load_for_reading(job, output.as_deref())?;
            let request = report::ReportRequest {
                window: parse_window(window)?,
                output_file: output_file.clone(),
                json: json.clone(),
                thresholds: report::figures::Thresholds::default().with(thresholds)?,
                threads: threads(cli),
                now: run_options(cli)?.now.unwrap_or_else(Utc::now),
            };
            report::run(&plan, &request).await
        }
        Command::Demo { output, calls } => demo(cli, output, *calls).await,
        Command::Simulate(args) => simulate(args).await,
    }
}

/// Checks a mode against the job (before the output is touched), runs it, reports it.
async fn run_checked(
    cli: &Cli,
    plan: JobPlan,
    mode: RunMode,
    (yes, wait): (bool, bool),
) -> Result<Exit> {
    let options = RunOptions {
        yes,
        wait,
        ..run_options(cli)?
    };
    check_mode_fits(&plan, &mode, &options)?;
    finish_run(cli, run::execute(plan, mode, options).await?)
}

fn print_schemas(table: Option<&str>) -> Result<Exit> {
    let schemas = Schemas::builtin().map_err(|e| Error::Internal(e.to_string()))?;
    let tables: Vec<Table> = match table {
        Some(name) => vec![name.parse::<Table>().map_err(Error::Input)?],
        None => Table::ALL.to_vec(),
    };
    let mut out = std::io::stdout().lock();
    for table in tables {
        let _ = writeln!(out, "{}", describe(&schemas.get(table)));
    }
    Ok(Exit::Done)
}

/// The worker threads: `--threads`, or the machine's cores.
pub fn threads(cli: &Cli) -> usize {
    match cli.threads {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(2, usize::from),
    }
}

fn load_plan(job: &Path, output: Option<&str>) -> Result<JobPlan> {
    JobPlan::load(job, output, &|name| std::env::var(name).ok())
}

fn parse_window(window: &WindowArgs) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
    let (Some(from), Some(to)) = (&window.from, &window.to) else {
        return Ok(None);
    };
    let from = parse_cli_time(from).map_err(|e| Error::Input(format!("--from: {e}")))?;
    let to = parse_cli_time(to).map_err(|e| Error::Input(format!("--to: {e}")))?;
    if from >= to {
        return Err(Error::Input(format!(
            "--from {} is not before --to {}",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    Ok(Some((from, to)))
}

/// Parses the values of a repeatable id flag (`--call-sid`, `--leg-id`, …): each checked,
/// sorted, each once.
fn parse_ids<T: std::str::FromStr + Ord>(ids: &[String], flag: &str) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    let mut parsed = ids
        .iter()
        .map(|id| {
            id.trim()
                .parse::<T>()
                .map_err(|e| Error::Input(format!("{flag}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

/// The mode of `run`: given ids (`--call-sid`, `--conference-sid`, `--leg-id`,
/// `--session-id`), a window, or (neither) the nightly window.
fn run_mode(
    [call_sids, conference_sids, leg_ids, session_ids]: [&Vec<String>; 4],
    window: &WindowArgs,
) -> Result<RunMode> {
    let calls: Vec<CallSid> = parse_ids(call_sids, "--call-sid")?;
    let conferences: Vec<ConferenceSid> = parse_ids(conference_sids, "--conference-sid")?;
    let legs: Vec<TelnyxId> = parse_ids(leg_ids, "--leg-id")?;
    let sessions: Vec<TelnyxId> = parse_ids(session_ids, "--session-id")?;
    let twilio_ids = !calls.is_empty() || !conferences.is_empty();
    match parse_window(window)? {
        Some(_) if twilio_ids => Err(Error::Input(
            "give either --call-sid/--conference-sid or --from/--to, not both (a window finds \
             its calls and conferences itself)"
                .into(),
        )),
        Some((from, to)) => Ok(RunMode::Window {
            from,
            to,
            legs,
            sessions,
        }),
        None if !twilio_ids && legs.is_empty() && sessions.is_empty() => Ok(RunMode::Nightly),
        None => Ok(RunMode::Ids {
            calls,
            conferences,
            legs,
            sessions,
        }),
    }
}

fn check_mode_fits(plan: &JobPlan, mode: &RunMode, options: &RunOptions) -> Result<()> {
    let has = |unit| !tables::of_unit(&plan.tables, unit).is_empty();
    let (twilio, telnyx) = (has(UnitKind::Call), has(UnitKind::TelnyxEvents));
    if let RunMode::Ids {
        calls,
        conferences,
        legs,
        sessions,
    } = mode
    {
        if !calls.is_empty() && !twilio {
            return Err(Error::Input(
                "--call-sid needs a per-call Twilio table (insights_events, insights_metrics, call_events, call_summaries, calls) in the job".into(),
            ));
        }
        if !conferences.is_empty() && !has(UnitKind::Conference) {
            return Err(Error::Input(
                "--conference-sid needs conference_summaries or conference_participants in the job's tables".into(),
            ));
        }
        if (!legs.is_empty() || !sessions.is_empty()) && !telnyx {
            return Err(Error::Input(
                "--leg-id/--session-id need telnyx_call_events in the job's tables".into(),
            ));
        }
    }
    let window = match mode {
        RunMode::Window {
            from,
            to,
            legs,
            sessions,
        } => {
            let what = "run --from/--to";
            plan.check_window_length((*from, *to), RUN_WINDOW_DAYS, what, options.yes)?;
            Some((*from, !legs.is_empty() || !sessions.is_empty()))
        }
        RunMode::Backfill { from, to } => {
            plan.check_window_length((*from, *to), LONG_WINDOW_DAYS, "backfill", options.yes)?;
            Some((*from, false))
        }
        _ => None,
    };
    if let Some((from, have_ids)) = window {
        let now = options.now.unwrap_or_else(Utc::now);
        check_window_start(from, now)?;
        plan.check_telnyx_lookback(from, now, have_ids)?;
    }
    Ok(())
}

fn run_options(cli: &Cli) -> Result<RunOptions> {
    let args: Vec<String> = std::env::args().collect();
    let now = cli
        .now
        .as_deref()
        .map(parse_cli_time)
        .transpose()
        .map_err(|e| Error::Input(format!("--now: {e}")))?;
    Ok(RunOptions {
        progress: !cli.quiet && !cli.no_progress && std::io::stderr().is_terminal(),
        command: args.join(" "),
        now,
        yes: false,
        wait: false,
    })
}

fn finish_run(cli: &Cli, report: RunReport) -> Result<Exit> {
    let mut err = std::io::stderr().lock();
    if cli.quiet {
        for failed in &report.failed_calls {
            let _ = writeln!(err, "FAILED {}: {}", failed.id, failed.reason);
        }
    } else {
        let _ = write!(err, "{}", report.summary());
    }
    Ok(report.exit())
}

/// Conferences the demo's simulator makes up (with their participants' calls).
const DEMO_CONFERENCES: usize = 3;

/// The demo job file, compiled in so that `voxlake demo` works from any folder.
const DEMO_JOB: &str = include_str!("../jobs/demo.toml");

async fn demo(cli: &Cli, output: &Path, calls: usize) -> Result<Exit> {
    let mut sim_config = SimConfig {
        calls,
        conferences: DEMO_CONFERENCES,
        ..SimConfig::default()
    };
    let (from, to) = (sim_config.from, sim_config.to);
    // The simulator's clock stands at the end of its window, so Telnyx's 24 h look-back covers it.
    sim_config.now = Some(to);
    let credentials = (
        sim_config.account_sid.clone(),
        sim_config.auth_token.clone(),
        sim_config.telnyx_key.clone(),
    );
    let sim = simulator::start(sim_config, 0)
        .await
        .map_err(|e| Error::Internal(format!("cannot start the simulator: {e}")))?;
    let base = sim.base_url();
    let mut config: JobConfig =
        toml::from_str(DEMO_JOB).map_err(|e| Error::Internal(format!("jobs/demo.toml: {e}")))?;
    config.twilio.insights_url = base.clone();
    config.twilio.api_url = base.clone();
    config.telnyx.api_url = base;
    let env = move |name: &str| match name {
        "TWILIO_ACCOUNT_SID" => Some(credentials.0.clone()),
        "TWILIO_AUTH_TOKEN" => Some(credentials.1.clone()),
        "TELNYX_API_KEY" => Some(credentials.2.clone()),
        _ => None,
    };
    let output_text = output.to_string_lossy().to_string();
    // The same job again as Delta Lake tables, into `{output}/delta`.
    let mut delta_config = config.clone();
    delta_config.name = "demo-delta".into();
    delta_config.format = "delta".into();
    let delta_output = format!("{}/delta", output_text.trim_end_matches('/'));
    let plan = JobPlan::from_config(config, Some(&output_text), &env)
        .map_err(|e| Error::Internal(format!("jobs/demo.toml: {e}")))?;
    let delta_plan = JobPlan::from_config(delta_config, Some(&delta_output), &env)
        .map_err(|e| Error::Internal(format!("jobs/demo.toml: {e}")))?;
    let tables = plan.tables.clone();
    let report_plan = plan.clone();
    let mode = RunMode::Window {
        from,
        to,
        legs: Vec::new(),
        sessions: Vec::new(),
    };
    let options = RunOptions {
        now: Some(to),
        ..run_options(cli)?
    };
    let report = run::execute(plan, mode.clone(), options.clone()).await;
    let delta_report = match &report {
        Ok(_) => Some(run::execute(delta_plan, mode, options).await),
        Err(_) => None,
    };
    sim.shutdown().await;
    let report = report?;
    print_demo(&report, &tables, &output_text);
    let Some(delta_report) = delta_report else {
        return Ok(report.exit());
    };
    let delta_report = delta_report?;
    print_delta_demo(&delta_report, &delta_output);
    // And the call-quality report of what was written.
    let request = report::ReportRequest {
        window: Some((from, to)),
        output_file: output.join("report.html"),
        json: None,
        thresholds: report::figures::Thresholds::default(),
        threads: threads(cli),
        now: to,
    };
    println!();
    report::run(&report_plan, &request).await?;
    println!(
        "  open it in a browser: it is one file, with no script and nothing loaded from the network"
    );
    Ok(match report.exit() {
        Exit::Done => delta_report.exit(),
        failed => failed,
    })
}

fn print_delta_demo(report: &RunReport, output: &str) {
    let mut out = std::io::stdout().lock();
    let rows: u64 = report.tables.values().map(|c| c.rows).sum();
    let _ = writeln!(
        out,
        "\nThe same job with format = \"delta\": {rows} rows in Delta Lake tables under {output} \
         ({} Delta commits, one per table and hour) in {:.1}s. In DuckDB (its delta extension):",
        report.delta_commits.len(),
        report.duration_secs
    );
    let _ = writeln!(
        out,
        "  SELECT date, count(*) FROM delta_scan('{output}/insights_metrics') GROUP BY date;"
    );
}

fn print_demo(report: &RunReport, tables: &[Table], output: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "voxlake demo: {} calls from the simulator into {output} in {:.1}s",
        report.calls.1, report.duration_secs
    );
    for table in tables {
        let rows = report.tables.get(table.name()).map_or(0, |c| c.rows);
        let prefix = format!("{}/", table.name());
        let files = report
            .files_written
            .iter()
            .filter(|f| f.starts_with(&prefix))
            .count();
        let _ = writeln!(
            out,
            "  {:<24} {rows:>7} rows  {files:>3} files",
            table.name()
        );
    }
    if !report.failed_calls.is_empty() {
        let _ = writeln!(
            out,
            "  {} calls failed (see the summary above)",
            report.failed_calls.len()
        );
    }
    let _ = writeln!(out, "\nTry it in DuckDB (python3 -m pip install duckdb):");
    let _ = writeln!(
        out,
        "  python3 -c \"import duckdb; duckdb.sql(\\\"SELECT call_sid, count(*) AS samples, round(avg(sdk_edge__interval__mos), 2) AS avg_mos FROM read_parquet('{output}/insights_metrics/**/*.parquet', hive_partitioning=true) WHERE edge = 'sdk_edge' GROUP BY call_sid ORDER BY avg_mos LIMIT 5\\\").show()\""
    );
}

/// `calls=N,conferences=M,status=…,refuse-parent` → a simulated subaccount.
fn subaccount_spec(text: &str) -> Result<simulator::SubaccountSpec> {
    let bad = |why: String| Error::Input(format!("--subaccount {text:?}: {why}"));
    let mut spec = simulator::SubaccountSpec::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| bad(format!("{key}: {e}")))
        };
        match key {
            "calls" => spec.calls = number()?,
            "conferences" => spec.conferences = number()?,
            "status" if ["active", "suspended", "closed"].contains(&value) => {
                spec.status = value.to_string();
            }
            "status" => return Err(bad("status is active, suspended or closed".into())),
            "refuse-parent" => spec.refuse_parent = true,
            other => return Err(bad(format!("unknown key {other:?}"))),
        }
    }
    Ok(spec)
}

async fn simulate(args: &SimulateArgs) -> Result<Exit> {
    let mut config = SimConfig {
        seed: args.seed,
        calls: args.calls,
        conferences: args.conferences,
        subaccounts: args
            .subaccounts
            .iter()
            .map(|spec| subaccount_spec(spec))
            .collect::<Result<Vec<_>>>()?,
        account_sid: args.account_sid.clone(),
        auth_token: args.auth_token.clone(),
        telnyx_key: args.telnyx_key.clone(),
        rate_limit_per_sec: args.rate_limit,
        page_cache_bytes: args.cache_mb.saturating_mul(1 << 20),
        faults: Faults {
            error_429_ratio: args.fault_429,
            error_5xx_ratio: args.fault_5xx,
            retry_after: args.retry_after.clone(),
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    if let Some((from, to)) = parse_window(&args.window)? {
        config.from = from;
        config.to = to;
    }
    if let Some(duration_secs) = args.long_call_secs {
        config.extra_calls.push(simulator::CallSpec {
            start_time: config.from + chrono::Duration::hours(10),
            duration_secs,
            call_type: simulator::CallType::Carrier,
        });
    }
    for (name, ratio) in [
        ("--fault-429", args.fault_429),
        ("--fault-5xx", args.fault_5xx),
    ] {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::Input(format!(
                "{name} {ratio}: give a share from 0 to 1"
            )));
        }
    }
    let sim = simulator::start(config, args.port)
        .await
        .map_err(|e| Error::Input(format!("cannot listen on 127.0.0.1:{}: {e}", args.port)))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", sim.base_url());
        let _ = out.flush();
    }
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    Ok(Exit::Done)
}
