//! The `voxlake` binary: parse the command line, set up logging, run, map the outcome to an
//! exit code (0 done, 1 run failed or some calls failed, 2 bad input).

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use voxlake::cli::{Cli, LogFormat};

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
