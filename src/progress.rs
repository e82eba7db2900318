//! Progress for people (an indicatif bar on a terminal: calls done/total, pages, rows,
//! requests/s, retries) and nothing extra for cron, whose log lines come from `tracing`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::RunStats;
use crate::http::HttpStats;

/// A progress bar that redraws itself from the run's counters.
pub struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// A bar when `enabled` (stderr is a terminal and not `--no-progress`/`--quiet`), else nothing.
    pub fn start(enabled: bool, stats: Arc<RunStats>, http: Vec<Arc<HttpStats>>) -> Progress {
        if !enabled {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} calls  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            let started = Instant::now();
            loop {
                redraw(&ticking, &stats, &http, started.elapsed());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Progress {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    /// Clears the bar.
    pub fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

fn redraw(bar: &ProgressBar, stats: &RunStats, http: &[Arc<HttpStats>], elapsed: Duration) {
    let total = RunStats::get(&stats.calls_total);
    let done = RunStats::get(&stats.calls_done) + RunStats::get(&stats.calls_failed);
    let requests: u64 = http.iter().map(|h| RunStats::get(&h.requests)).sum();
    let retries: u64 = http.iter().map(|h| RunStats::get(&h.retries)).sum();
    let rate = requests as f64 / elapsed.as_secs_f64().max(0.001);
    bar.set_length(total);
    bar.set_position(done);
    bar.set_message(format!(
        "pages {}  rows {}  {rate:.1} req/s  retries {retries}  failed {}",
        RunStats::get(&stats.pages),
        RunStats::get(&stats.rows),
        RunStats::get(&stats.calls_failed),
    ));
}
