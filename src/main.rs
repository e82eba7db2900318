//! The `voxlake` binary: parse the command line, set up logging, run, map the outcome to an
//! exit code (0 done, 1 run failed or some calls failed, 2 bad input).

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use voxlake::cli::{Cli, LogFormat};

/// jemalloc, not the system's malloc. The pipeline thread frees the batches a fetch thread
/// built; glibc takes the fetch thread's arena lock for each of those frees, and at
/// `--threads 2` both threads kept falling asleep on that lock (perf: futex waits inside the
/// Parquet writes and the flattener; the two cores stood idle 29 % of the run). jemalloc
/// returns them through the freeing thread's cache: `benches/compare.sh` ran in 0.78× the
/// wall time of the glibc build, and 2 threads went from 1.87× DuckDB's speed to 2.27×.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings (`_RJEM_MALLOC_CONF` in the environment overrides them): freed pages
/// go back to the system after half a second rather than ten, and at once rather than
/// lazily (pages left to `MADV_FREE` still count as resident). Peak RSS at 2 threads is
/// then glibc's (77 MB against 80 in compare.sh); jemalloc's defaults held 85-95 MB, for no
/// gain in speed.
// SAFETY: jemalloc reads this NUL-terminated string once, before the first allocation,
// and never writes it; the name and type are those `tikv-jemalloc-sys` declares.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: Option<&'static std::ffi::c_char> =
    Some(unsafe { &*c"dirty_decay_ms:500,muzzy_decay_ms:0".as_ptr() });

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(&cli);
    let runtime = match runtime_for(voxlake::commands::threads(&cli))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(voxlake::commands::dispatch(&cli)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// A runtime of `threads` threads in all, counting this one (which runs the command's own
/// task: the pipeline and the Parquet encoding): one thread is a current-thread runtime, `N`
/// is this thread and `N - 1` workers for the fetches.
fn runtime_for(threads: usize) -> tokio::runtime::Builder {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads - 1);
        builder
    }
}

/// Log lines on stderr: voxlake's own at `--log-level` (or `$VOXLAKE_LOG`, a tracing filter),
/// other crates' at warn.
fn init_logging(cli: &Cli) {
    let demo_default =
        matches!(cli.command, voxlake::cli::Command::Demo { .. }) && cli.log_level == "info";
    let level = if cli.quiet {
        "error"
    } else if demo_default {
        // The demo prints its own summary; per-hour lines would bury it.
        "warn"
    } else {
        cli.log_level.as_str()
    };
    let filter = std::env::var("VOXLAKE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        // delta-rs logs, as errors, the commit races voxlake resolves by committing again;
        // what it cannot resolve comes back to voxlake as an error, and is reported there.
        .unwrap_or_else(|| EnvFilter::new(format!("warn,voxlake={level},deltalake_core=off")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
