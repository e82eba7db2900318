//! voxlake's integration tests: the real binary against the simulator on 127.0.0.1, output read
//! back with DuckDB. One binary, split by topic.

mod util;

mod bad_input;
mod cli;
mod delta;
mod faults;
mod fuzz;
mod http_client;
mod jobs;
mod per_call;
mod prism;
mod proxy;
mod reliability;
mod report;
mod requests;
mod s3;
mod safety;
mod secrets;
mod soak;
mod state;
mod store;
mod summaries;
mod telnyx;
mod twilio_model;
mod windows;
