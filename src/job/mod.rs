//! The job file (`config`: its serde shape, the documented contract) and the checked plan built
//! from it, the command line and the environment (`plan`).

pub mod config;
pub mod plan;

pub use crate::output::Output;
pub use config::JobConfig;
pub use plan::{Credentials, JobPlan};
