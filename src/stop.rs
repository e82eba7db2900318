//! Graceful stops: SIGINT (exit 130) and SIGTERM (exit 143) ask the run to stop taking work;
//! it drops what is in flight (staged files are discarded by the next run), writes its
//! manifest and exits. A second signal exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

use crate::error::Error;

/// Shared by the workers of a run: set once a stop was asked for.
#[derive(Debug, Default)]
pub struct Stop {
    code: AtomicU8,
    notify: Notify,
}

impl Stop {
    /// A stop handle listening to SIGINT and SIGTERM.
    pub fn listen() -> Arc<Stop> {
        let stop = Arc::new(Stop::default());
        let listener = Arc::clone(&stop);
        tokio::spawn(async move { listener.wait_for_signals().await });
        stop
    }

    async fn wait_for_signals(&self) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut interrupt), Ok(mut terminate)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                let code = tokio::select! {
                    _ = interrupt.recv() => 130,
                    _ = terminate.recv() => 143,
                };
                self.request(code);
            }
        }
        #[cfg(not(unix))]
        loop {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            self.request(130);
        }
    }

    /// Asks for a stop (a second request exits the process at once).
    pub fn request(&self, code: u8) {
        if self.code.swap(code, Ordering::SeqCst) != 0 {
            eprintln!("stopping now");
            std::process::exit(i32::from(code));
        }
        tracing::warn!(
            code,
            "stop requested: finishing nothing new, writing the manifest"
        );
        self.notify.notify_waiters();
    }

    /// True once a stop was asked for.
    pub fn requested(&self) -> bool {
        self.code.load(Ordering::SeqCst) != 0
    }

    /// Resolves once a stop is asked for.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.requested() {
                return;
            }
            notified.await;
        }
    }

    /// The error a stopped run returns.
    pub fn error(&self) -> Error {
        match self.code.load(Ordering::SeqCst) {
            143 => Error::Interrupted {
                signal: "SIGTERM",
                code: 143,
            },
            _ => Error::Interrupted {
                signal: "SIGINT",
                code: 130,
            },
        }
    }
}
