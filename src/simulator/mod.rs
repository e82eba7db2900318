//! The embedded API simulator: Twilio Voice Insights (calls and conferences), Twilio REST
//! 2010-04-01 (accounts and calls) and Telnyx v2 call events served on one loopback port, so
//! the demo, the tests and the benchmarks never touch the network.
//!
//! It shares no code with voxlake's sources, flattener or schemas: it writes the APIs' JSON
//! from its own model of accounts, calls and conferences (`model`, `facts`, and one generator
//! per API: `insights`, `rest`, `summary`, `conference`, `telnyx`), deterministic from the
//! seed, so a misunderstanding of an API cannot hide on both sides. The serving side
//! (`server`, `routes`, `auth`, `limit`, `faults`, `paging`, `reply`, `api_*`) checks
//! credentials and which account may see what, pages, rate-limits and injects faults.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use voxlake::simulator::{SimConfig, start};
//! let sim = start(SimConfig::default(), 0).await?;
//! let model = sim.model();
//! for call in model.calls() {
//!     println!("{}/v1/Voice/{}/Metrics", sim.base_url(), call.sid);
//! }
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api_conferences;
mod api_insights;
mod api_rest;
mod api_telnyx;
mod auth;
mod cache;
mod conference;
mod config;
mod facts;
mod faults;
mod insights;
mod limit;
mod model;
mod paging;
mod reply;
mod rest;
mod rng;
mod routes;
mod server;
mod stats;
mod summary;
mod telnyx;
#[cfg(test)]
mod tests;

pub use config::{CallSpec, CallType, Faults, SimConfig, SubaccountSpec};
pub use model::{Model, SimAccount, SimCall, SimConference, SimLeg, SimParticipant};
pub use server::{SimHandle, start};
pub use stats::SimStats;
