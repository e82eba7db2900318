//! voxlake: voice-call telemetry from the Twilio and Telnyx APIs into Hive-partitioned Parquet.
//!
//! Data flows one way: a source pages through an API (`sources`, over the one HTTP client in
//! `http`), the flattener turns pages into Arrow rows by schema (`flatten`, `schema`), the sink
//! writes partitioned Parquet through object_store and commits it slice by slice (`sink`), and
//! the state store records what is done (`state`). `run` drives it; `cli` and `main.rs` are the
//! edge. The `simulator` serves the same APIs on loopback for the demo and the tests.

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod error;
pub mod events;
pub mod exit;
pub mod flatten;
pub mod hours;
pub mod http;
pub mod ids;
pub mod job;
pub mod output;
pub mod progress;
pub mod report;
pub mod run;
pub mod schema;
pub mod secret;
pub mod shard;
pub mod simulator;
pub mod sink;
pub mod sources;
pub mod state;
pub mod status;
pub mod stop;
pub mod tables;
pub mod timefmt;
