//! The library's error type, by kind: what went wrong decides the exit code (see `exit`).

/// What went wrong, with enough context to act on; never a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: job file, flags, SIDs, times, missing credentials. Nothing was fetched.
    #[error("{0}")]
    Input(String),
    /// The output store could not do what was asked (write, read, list, rename).
    #[error("{0}")]
    Store(String),
    /// voxlake's own files in the lake cannot be used (a record, a journal, a Parquet file
    /// whose columns changed type).
    #[error("{0}")]
    Lake(String),
    /// An API answer that stops the whole run (credentials refused, a link off the origin).
    #[error("{0}")]
    Api(String),
    /// The job, or an account's commits, is locked by another run; or a lease lapsed.
    #[error("{0}")]
    Locked(String),
    /// Something that cannot happen did (a bug).
    #[error("internal error: {0}")]
    Internal(String),
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
    /// How the process exits for this error.
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            Error::Input(_) => Exit::BadInput,
            Error::Interrupted { code, .. } => Exit::Interrupted(*code),
            Error::Store(_)
            | Error::Lake(_)
            | Error::Api(_)
            | Error::Locked(_)
            | Error::Internal(_) => Exit::Failed,
        }
    }

    /// The process exit code for this error (DESIGN §3: 2 bad input, 1 run failure).
    pub fn exit_code(&self) -> u8 {
        self.exit().code()
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
