//! Exit codes, decided in one place (DESIGN §3): 0 all done, 1 the run failed or some units
//! failed, 2 bad input; 130 and 143 for SIGINT and SIGTERM.

/// How a command ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for is done (or there was nothing new).
    Done,
    /// The run failed, some units failed after retries, or another run holds the job's lock.
    Failed,
    /// Bad input: checked before any request and before the output is touched.
    BadInput,
    /// Stopped by a signal: 130 (SIGINT) or 143 (SIGTERM).
    Interrupted(u8),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Failed => 1,
            Exit::BadInput => 2,
            Exit::Interrupted(code) => code,
        }
    }
}
