//! The library's error type and the exit codes it maps to.

/// What went wrong, with enough context to act on; never a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: job file, flags, SIDs, times, missing credentials. Nothing was fetched.
    #[error("{0}")]
    Input(String),
    /// The run could not go on (output store, state, HTTP setup).
    #[error("{0}")]
    Run(String),
    /// The job (or an owner's commits) is locked by another run.
    #[error("{0}")]
    Locked(String),
    /// SIGINT or SIGTERM: in-flight work was dropped, committed hours stay.
    #[error("stopped by {signal}: committed hours are kept; the same command resumes")]
    Interrupted {
        /// `SIGINT` or `SIGTERM`.
        signal: &'static str,
        /// 130 or 143.
        code: u8,
    },
}

impl Error {
    /// The process exit code for this error (DESIGN §3: 2 bad input, 1 run failure).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) => 2,
            Error::Run(_) | Error::Locked(_) => 1,
            Error::Interrupted { code, .. } => *code,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
