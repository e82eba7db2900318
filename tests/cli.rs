//! The command line's own contract: schemas, help, JSON log lines, the simulator's first line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::util::*;

#[test]
fn schemas_prints_columns_types_and_paths() {
    let world = World::new();
    let out = world.voxlake(&["schemas", "insights_metrics"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("sdk_edge__interval__mos "))
        .expect("mos column");
    assert!(
        line.contains("Float64") && line.contains("sdk_edge.interval.mos.value"),
        "{line}"
    );
    assert!(out.stdout.contains("_extra"));
    let unknown = world.voxlake(&["schemas", "nope"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("unknown table \"nope\""),
        "{}",
        unknown.stderr
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let world = World::with_sim(sim_config(2));
    let job = world.job(&PER_CALL_TABLES, "");
    let mut args = vec!["--log-format", "json", "run", job.to_str().expect("path")];
    let sids = world.call_sids();
    for sid in &sids {
        args.extend(["--call-sid", sid.as_str()]);
    }
    let out = world.voxlake(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let logs: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert!(
        logs.iter().any(|l| l["fields"]["message"] == "run started"),
        "{}",
        out.stderr
    );
}

#[test]
fn simulate_prints_where_it_listens_first() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voxlake"))
        .args(["simulate", "--port", "0", "--calls", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("line");
    let _ = child.kill();
    let _ = child.wait();
    let address = first
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .expect(&first);
    assert!(address.parse::<u16>().is_ok(), "{first}");
}
