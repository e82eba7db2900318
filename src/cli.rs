//! The command line (clap only). `commands` turns it into checked plans; nothing else sees
//! these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// voxlake: voice-call telemetry from Twilio and Telnyx into Hive-partitioned Parquet.
#[derive(Debug, Parser)]
#[command(name = "voxlake", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Only errors and the final summary's failures.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// No progress bar, even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Log level of voxlake's own lines (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,
    /// Pin the clock (RFC 3339): nightly windows, Telnyx's look-back and `status` use it
    /// instead of now. For reproducible runs and tests.
    #[arg(long, global = true, hide = true, value_name = "TIME")]
    pub now: Option<String>,
    /// Threads in all (decoding, flattening, encoding, reading the lake; 1 runs everything
    /// on one thread; default: the machine's cores).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// The subcommands (DESIGN §3).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the simulator on 127.0.0.1, run jobs/demo.toml against it, show what was written.
    Demo {
        /// Output folder.
        #[arg(long, default_value = "./voxlake-demo")]
        output: PathBuf,
        /// Calls the simulator makes up.
        #[arg(long, default_value_t = 20)]
        calls: usize,
    },
    /// Run a job: given calls, a window, or (with neither) the nightly window.
    Run {
        /// The job file (TOML).
        job: PathBuf,
        /// Fetch these calls (repeatable).
        #[arg(long = "call-sid", value_name = "SID")]
        call_sids: Vec<String>,
        /// Fetch these conferences and their participants (repeatable).
        #[arg(long = "conference-sid", value_name = "SID")]
        conference_sids: Vec<String>,
        /// Telnyx call legs to fetch (repeatable).
        #[arg(long = "leg-id", value_name = "UUID")]
        leg_ids: Vec<String>,
        /// Telnyx call sessions to fetch (repeatable).
        #[arg(long = "session-id", value_name = "UUID")]
        session_ids: Vec<String>,
        /// `--from` / `--to`.
        #[command(flatten)]
        window: WindowArgs,
        /// Output (path, file://, s3://bucket/prefix); overrides the job's.
        #[arg(long)]
        output: Option<String>,
        /// Accept a window longer than 31 days (or a nightly catch-up longer than a year).
        #[arg(long)]
        yes: bool,
        /// When another run of the job holds its lock, wait for it instead of exiting 1.
        #[arg(long)]
        wait: bool,
    },
    /// Fetch a long window slice by slice; rerun the same command to resume.
    Backfill {
        /// The job file (TOML).
        job: PathBuf,
        /// Window start: RFC 3339 or a date (midnight UTC).
        #[arg(long)]
        from: String,
        /// Window end (exclusive).
        #[arg(long)]
        to: String,
        /// Output; overrides the job's.
        #[arg(long)]
        output: Option<String>,
        /// Accept a window longer than a year.
        #[arg(long)]
        yes: bool,
        /// When another run of the job holds its lock, wait for it instead of exiting 1.
        #[arg(long)]
        wait: bool,
        /// Be worker I of N (`0/4` … `3/4`): take only this worker's share of the hours, so
        /// that N workers started with the same window fill one lake together (best with
        /// `format = "delta"`; e.g. `--shard $JOB_COMPLETION_INDEX/4` in a Kubernetes
        /// indexed Job).
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Requests per second per API for this worker (default with --shard: the job's rate
        /// divided by N).
        #[arg(long, value_name = "RPS")]
        rate: Option<u32>,
    },
    /// Rewrite the small files of closed days of a Delta job's tables into large ones, in one
    /// transaction per table and day, then vacuum files the tables no longer use.
    Compact {
        /// The job file (TOML; `format = "delta"`).
        job: PathBuf,
        /// First day (RFC 3339 or a date).
        #[arg(long)]
        from: String,
        /// End (exclusive).
        #[arg(long)]
        to: String,
        /// Output; overrides the job's.
        #[arg(long)]
        output: Option<String>,
        /// Vacuum removes unused files older than this (`7d`, `36h`); time travel to versions
        /// older than it stops working.
        #[arg(long, default_value = "7d")]
        retain: String,
    },
    /// Write a self-contained HTML call-quality report of a window of the job's lake (calls,
    /// MOS, jitter, loss and latency per edge, call tags, the worst calls, quality by country,
    /// platform and SDK version, errors).
    Report {
        /// The job file (TOML): whose lake, in which format.
        job: PathBuf,
        /// `--from` / `--to` (default: the 7 days up to the last day with data).
        #[command(flatten)]
        window: WindowArgs,
        /// The HTML file to write (replaced whole).
        #[arg(long, default_value = "report.html", value_name = "FILE")]
        output_file: PathBuf,
        /// Also write the report's figures as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// The lake (path, file://, s3://bucket/prefix); overrides the job's output.
        #[arg(long)]
        output: Option<String>,
        /// A threshold of the tags computed for calls without a call summary (repeatable):
        /// low_mos=3.5, high_rtt_ms=400, high_jitter_avg_ms=5, high_jitter_max_ms=30,
        /// high_packet_loss_pct=5 (Twilio's documented values are the defaults).
        #[arg(long = "threshold", value_name = "NAME=VALUE")]
        thresholds: Vec<String>,
    },
    /// Serve the simulated APIs on 127.0.0.1 until stopped.
    Simulate(SimulateArgs),
    /// Print the schema of one table, or of all.
    Schemas {
        /// Table name.
        table: Option<String>,
    },
    /// Show a job's watermark, slices and last run.
    Status {
        /// The job file (TOML).
        job: PathBuf,
        /// Output; overrides the job's.
        #[arg(long)]
        output: Option<String>,
    },
}

/// `--from` / `--to`.
#[derive(Debug, Args, Clone, Default)]
pub struct WindowArgs {
    /// Window start: RFC 3339 (2024-05-01T00:00:00Z) or a date (midnight UTC).
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Window end (exclusive).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
}

/// `voxlake simulate` flags.
#[derive(Debug, Args, Clone)]
pub struct SimulateArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Twilio calls to make up.
    #[arg(long, default_value_t = 20)]
    pub calls: usize,
    /// Twilio conferences to make up (their participants are calls too).
    #[arg(long, default_value_t = 0)]
    pub conferences: usize,
    /// A subaccount of the simulated account (repeatable):
    /// `calls=N,conferences=M,status=active|suspended|closed,refuse-parent`.
    #[arg(long = "subaccount", value_name = "SPEC")]
    pub subaccounts: Vec<String>,
    /// Seed of the made-up data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The window the simulated calls start in.
    #[command(flatten)]
    pub window: WindowArgs,
    /// Account SID accepted.
    #[arg(long, default_value = "AC00000000000000000000000000000000")]
    pub account_sid: String,
    /// Auth token accepted (or from the environment, to keep it out of process lists).
    #[arg(
        long,
        env = "VOXLAKE_SIMULATOR_TOKEN",
        default_value = "simulator-token",
        hide_env_values = true
    )]
    pub auth_token: String,
    /// Telnyx API key accepted (or from the environment).
    #[arg(
        long,
        env = "VOXLAKE_SIMULATOR_TELNYX_KEY",
        default_value = "simulator-key",
        hide_env_values = true
    )]
    pub telnyx_key: String,
    /// Enforce this many requests per second per API (429 beyond).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Keep up to this many MB of per-call pages (Insights events and metrics, REST call
    /// events) once rendered, and serve repeats from memory while no faults are set: for
    /// benchmarks, so the simulator's own work stays small beside the client's. 0: off.
    #[arg(long, value_name = "MB", default_value_t = 0)]
    pub cache_mb: usize,
    /// Share of requests answered 429 (0–1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_429: f64,
    /// Share of requests answered 5xx (0–1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_5xx: f64,
    /// Retry-After value sent with injected 429s.
    #[arg(long)]
    pub retry_after: Option<String>,
    /// Also one carrier call this long (seconds; a metric sample every 10 s), starting at
    /// 10:00 on the window's first day: the benchmarks' one huge call.
    #[arg(long, hide = true, value_name = "SECS")]
    pub long_call_secs: Option<u32>,
}
