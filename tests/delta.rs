//! Issue 13: `format = "delta"`. The tables are read back by readers that are not delta-rs
//! (our own replay of `_delta_log/*.json` in Rust, the one in `tests/delta_read.py`, DuckDB
//! over the exact active files, the Python `deltalake` package, `polars.read_delta` and
//! DuckDB's `delta_scan`); hour re-runs, time travel, sharded workers, a kill -9 mid-run,
//! schema evolution and compaction are checked against the simulator's own figures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::util::*;

const FROM: &str = "2024-05-01T00:00:00Z";
const TO: &str = "2024-05-02T00:00:00Z";
const DELTA: &str = "format = \"delta\"";

/// The Python that has deltalake, polars and DuckDB's delta extension (tests/run.sh makes
/// it); None: the tests that need it say they are skipped.
fn delta_python() -> Option<String> {
    let python = std::env::var("VOXLAKE_DELTA_PYTHON").ok();
    if python.is_none() {
        eprintln!("VOXLAKE_DELTA_PYTHON is not set (tests/run.sh sets it): Python readers skipped");
    }
    python
}

/// What `tests/delta_read.py` reads of a table (every reader's counts, the active files, a
/// checksum of the sorted rows).
fn read_back(python: &str, table: &Path, version: Option<u64>) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/delta_read.py");
    let mut command = Command::new(python);
    command.arg(script).arg(table).arg("--rows-checksum");
    if let Some(version) = version {
        command.args(["--version", &version.to_string()]);
    }
    let output = command.output().expect("run delta_read.py");
    assert!(
        output.status.success(),
        "delta_read.py {}: {}",
        table.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("delta_read.py prints JSON")
}

/// Every reader agrees with the log on rows, rows per date and (deltalake) the files.
fn assert_readers_agree(read: &Value) {
    let log = &read["log"];
    for reader in ["duckdb_files", "deltalake", "polars", "duckdb_delta_scan"] {
        assert_eq!(read[reader]["rows"], log["rows"], "{reader}: {read}");
        assert_eq!(
            read[reader]["rows_by_date"], log["rows_by_date"],
            "{reader}: {read}"
        );
    }
    assert_eq!(read["deltalake"]["files"], log["active_files"], "{read}");
    assert_eq!(
        read["duckdb_files"]["stats_mismatches"],
        Value::Array(vec![])
    );
}

/// A file of the table, as our own replay of the log knows it.
#[derive(Clone, Debug, PartialEq)]
struct LogFile {
    rows: u64,
    date: String,
    /// (hour, rows) from the `voxlake.slices` tag.
    slices: Vec<(String, u64)>,
}

/// The table at one version, by our own replay of `_delta_log/*.json` (the Delta protocol's
/// add and remove actions), without delta-rs.
#[derive(Debug, Default)]
struct LogState {
    version: u64,
    files: BTreeMap<String, LogFile>,
    operations: Vec<String>,
}

impl LogState {
    fn rows(&self) -> u64 {
        self.files.values().map(|f| f.rows).sum()
    }

    fn rows_by_date(&self) -> BTreeMap<String, u64> {
        let mut by_date = BTreeMap::new();
        for file in self.files.values() {
            *by_date.entry(file.date.clone()).or_default() += file.rows;
        }
        by_date
    }

    fn rows_by_hour(&self) -> BTreeMap<String, u64> {
        let mut by_hour = BTreeMap::new();
        for file in self.files.values() {
            for (hour, rows) in &file.slices {
                *by_hour.entry(hour.clone()).or_default() += rows;
            }
        }
        by_hour
    }
}

/// Replays the log up to `upto` (all of it when None). Commits are read whole; a commit
/// being written is not there yet (a local put is a rename).
fn replay(table: &Path, upto: Option<u64>) -> LogState {
    let log = table.join("_delta_log");
    let mut versions: Vec<u64> = std::fs::read_dir(&log)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    assert!(
                        !name.contains("checkpoint"),
                        "no checkpoint expected this early: {name}"
                    );
                    name.strip_suffix(".json")?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable();
    let mut state = LogState::default();
    for (expected, version) in versions.iter().enumerate() {
        assert_eq!(*version, expected as u64, "the log has no gaps");
        if upto.is_some_and(|u| *version > u) {
            break;
        }
        let path = log.join(format!("{version:020}.json"));
        let text = std::fs::read_to_string(&path).expect("commit");
        state.version = *version;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let action: Value = serde_json::from_str(line).expect("an action per line");
            if let Some(add) = action.get("add") {
                let path = decode(add["path"].as_str().expect("path"));
                let stats: Value =
                    serde_json::from_str(add["stats"].as_str().expect("stats")).expect("stats");
                let slices = add["tags"]["voxlake.slices"]
                    .as_str()
                    .unwrap_or("")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        let parts: Vec<&str> = s.split(':').collect();
                        (parts[0].to_string(), parts[2].parse().expect("rows"))
                    })
                    .collect();
                let file = LogFile {
                    rows: stats["numRecords"].as_u64().expect("numRecords"),
                    date: add["partitionValues"]["date"]
                        .as_str()
                        .expect("date")
                        .to_string(),
                    slices,
                };
                state.files.insert(path, file);
            } else if let Some(remove) = action.get("remove") {
                let path = decode(remove["path"].as_str().expect("path"));
                state.files.remove(&path);
            } else if let Some(info) = action.get("commitInfo") {
                let operation = info["operation"].as_str().unwrap_or("?").to_string();
                state.operations.push(operation);
            }
        }
    }
    state
}

/// A log path is a URI: %-escapes decoded.
fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&path[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 path")
}

/// The simulator's rows per `date` of a per-call table, for the calls of [from, to).
fn expected_by_date(world: &World, table: &str, from: &str, to: &str) -> BTreeMap<String, u64> {
    let sids = world.calls_between(t(from), t(to));
    let expected = expected(world, &sids);
    expected
        .by_day
        .iter()
        .filter(|((name, _), _)| name == table)
        .map(|((_, day), rows)| (day.clone(), *rows as u64))
        .collect()
}

/// The simulator's rows of a per-call table by the hour its call started in.
fn expected_by_hour(world: &World, table: &str) -> BTreeMap<String, u64> {
    let mut by_hour = BTreeMap::new();
    for call in world.sim().model().calls() {
        if call.start_time < t(FROM) || call.start_time >= t(TO) {
            continue;
        }
        let rows = expected(world, std::slice::from_ref(&call.sid));
        let hour = call.start_time.format("%Y-%m-%dT%H").to_string();
        *by_hour.entry(hour).or_default() += rows.rows.get(table).copied().unwrap_or(0) as u64;
    }
    by_hour.retain(|_, rows| *rows > 0);
    by_hour
}

fn assert_ok(outcome: &Outcome) {
    assert_eq!(outcome.code, 0, "{}\n{}", outcome.stdout, outcome.stderr);
}

fn table_dir(world: &World, table: &str) -> PathBuf {
    world.lake().join(table)
}

/// The `delta_commits` of every run manifest, per table: (table, version) pairs.
fn manifest_commits(world: &World) -> Vec<(String, u64)> {
    let mut commits = Vec::new();
    let runs = world.lake().join("_voxlake/runs");
    for entry in std::fs::read_dir(runs).expect("runs").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("manifest");
        let manifest: Value = serde_json::from_str(&text).expect("manifest JSON");
        for commit in manifest["delta_commits"].as_array().into_iter().flatten() {
            let (table, version) = commit
                .as_str()
                .and_then(|c| c.split_once('@'))
                .expect("table@version");
            commits.push((table.to_string(), version.parse().expect("version")));
        }
    }
    commits.sort();
    commits
}

#[test]
fn a_delta_window_reads_back_the_same_in_every_reader() {
    let world = World::with_sim(sim_config(30));
    let tables = [
        "insights_events",
        "insights_metrics",
        "call_events",
        "calls",
    ];
    let job = world.job(&tables, DELTA);
    assert_ok(&world.voxlake(&[
        "run",
        job.to_str().expect("job"),
        "--from",
        FROM,
        "--to",
        TO,
    ]));
    for table in PER_CALL_TABLES {
        let state = replay(&table_dir(&world, table), None);
        let expected = expected_by_date(&world, table, FROM, TO);
        assert!(!expected.is_empty());
        assert_eq!(state.rows_by_date(), expected, "{table}");
        assert_eq!(state.operations[0], "CREATE TABLE");
        for path in state.files.keys() {
            assert!(table_dir(&world, table).join(path).is_file(), "{path}");
        }
    }
    let calls = replay(&table_dir(&world, "calls"), None);
    assert_eq!(
        calls.rows(),
        world.calls_between(t(FROM), t(TO)).len() as u64
    );
    // Nothing of the Parquet journal: the Delta log is the commit.
    assert!(!world.lake().join("_voxlake/slices").exists());
    let Some(python) = delta_python() else {
        return;
    };
    for table in tables {
        let read = read_back(&python, &table_dir(&world, table), None);
        assert_readers_agree(&read);
        let state = replay(&table_dir(&world, table), None);
        let ours: Vec<String> = state.files.keys().cloned().collect();
        assert_eq!(
            read["log"]["active_files"],
            serde_json::json!(ours),
            "{table}"
        );
        assert_eq!(
            read["log"]["rows"],
            serde_json::json!(state.rows()),
            "{table}"
        );
        assert_eq!(read["log"]["version"], serde_json::json!(state.version));
    }
}

#[test]
fn rerunning_an_hour_is_one_version_more_and_time_travel_keeps_the_old_rows() {
    let world = World::with_sim(sim_config(20));
    let job = world.job(&PER_CALL_TABLES, DELTA);
    let job = job.to_str().expect("job");
    assert_ok(&world.voxlake(&["run", job, "--from", FROM, "--to", TO]));
    let dir = table_dir(&world, "insights_metrics");
    let before = replay(&dir, None);
    let first_call = world
        .sim()
        .model()
        .calls()
        .iter()
        .map(|c| c.start_time)
        .min()
        .expect("a call");
    let hour = first_call.format("%Y-%m-%dT%H").to_string();
    let (from, to) = (
        format!("{hour}:00:00Z"),
        (t(&format!("{hour}:00:00Z")) + chrono::Duration::hours(1)).to_rfc3339(),
    );
    let python = delta_python();
    let old_read = python.as_ref().map(|p| read_back(p, &dir, None));
    assert_ok(&world.voxlake(&["run", job, "--from", &from, "--to", &to]));
    let after = replay(&dir, None);
    assert_eq!(after.version, before.version + 1, "one version more");
    assert_eq!(after.operations.last().map(String::as_str), Some("WRITE"));
    assert_eq!(after.rows_by_date(), before.rows_by_date(), "the same rows");
    assert_eq!(after.rows_by_hour(), before.rows_by_hour());
    // The hour's files were replaced, the other hours' kept.
    let holds = |f: &LogFile| f.slices.iter().any(|(h, _)| *h == hour);
    let old_hour: BTreeSet<&String> = before
        .files
        .iter()
        .filter(|(_, f)| holds(f))
        .map(|(p, _)| p)
        .collect();
    let new_hour: BTreeSet<&String> = after
        .files
        .iter()
        .filter(|(_, f)| holds(f))
        .map(|(p, _)| p)
        .collect();
    assert!(!old_hour.is_empty() && old_hour.is_disjoint(&new_hour));
    let others = |s: &LogState| -> BTreeSet<String> {
        s.files
            .iter()
            .filter(|(_, f)| !holds(f))
            .map(|(p, _)| p.clone())
            .collect()
    };
    assert_eq!(others(&before), others(&after));
    // Time travel: the version before the re-run is the earlier rows exactly.
    let travelled = replay(&dir, Some(before.version));
    assert_eq!(travelled.files, before.files);
    let (Some(python), Some(old_read)) = (python, old_read) else {
        return;
    };
    let at_old = read_back(&python, &dir, Some(before.version));
    assert_readers_agree(&at_old);
    assert_eq!(
        at_old["checksum"], old_read["checksum"],
        "version N-1 is the earlier rows"
    );
    let latest = read_back(&python, &dir, None);
    assert_readers_agree(&latest);
    // The hour's rows are the re-run's now (their ingestion lineage differs).
    assert_ne!(latest["checksum"], old_read["checksum"]);
    assert_eq!(
        latest["log"]["rows_by_date"],
        old_read["log"]["rows_by_date"]
    );
}

/// Starts `voxlake backfill --shard i/N` for every i at once and waits for all of them.
fn run_shards(world: &World, job: &str, shards: u32, vars: &[(&str, &str)]) -> Vec<Outcome> {
    let children: Vec<std::process::Child> = (0..shards)
        .map(|i| {
            let shard = format!("{i}/{shards}");
            let args = [
                "backfill", job, "--from", FROM, "--to", TO, "--shard", &shard,
            ];
            world.spawn(&args, vars)
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("worker");
            Outcome {
                code: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).to_string(),
            }
        })
        .collect()
}

fn sim_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
    ]
}

/// Every version of the log is a commit some run's manifest names, or the table's creation.
fn assert_no_commit_lost(world: &World, tables: &[&str]) {
    let commits = manifest_commits(world);
    for table in tables {
        let state = replay(&table_dir(world, table), None);
        let named: Vec<u64> = commits
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, v)| *v)
            .collect();
        let distinct: BTreeSet<u64> = named.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            named.len(),
            "{table}: no version claimed twice"
        );
        for (version, operation) in state.operations.iter().enumerate() {
            let claimed = distinct.contains(&(version as u64));
            assert_eq!(
                claimed,
                operation == "WRITE",
                "{table} version {version} ({operation}): claimed by a manifest = {claimed}"
            );
        }
    }
}

#[test]
fn four_workers_fill_one_local_lake_exactly_once() {
    let world = World::with_sim(sim_config(40));
    let tables = [
        "insights_events",
        "insights_metrics",
        "call_events",
        "calls",
    ];
    let job = world.job(&tables, DELTA);
    let job = job.to_str().expect("job");
    let outcomes = run_shards(&world, job, 4, &sim_vars());
    for outcome in &outcomes {
        assert_ok(outcome);
    }
    for table in PER_CALL_TABLES {
        let state = replay(&table_dir(&world, table), None);
        assert_eq!(
            state.rows_by_date(),
            expected_by_date(&world, table, FROM, TO),
            "{table}"
        );
        assert_eq!(
            state.rows_by_hour(),
            expected_by_hour(&world, table),
            "{table}"
        );
    }
    let calls = replay(&table_dir(&world, "calls"), None);
    assert_eq!(calls.rows(), 40);
    assert_no_commit_lost(&world, &tables);
    // Each hour went to exactly one worker: their manifests' hours are disjoint and cover
    // the day's hours with calls.
    let status = world.voxlake(&["status", job]);
    assert_ok(&status);
    assert!(
        status.stdout.contains(&format!(
            "done: {} .. {}",
            t(FROM).to_rfc3339(),
            t(TO).to_rfc3339()
        )),
        "status merges the shards' coverage:\n{}",
        status.stdout
    );
    // The job (unsharded) and each worker again: everything is done, nothing is asked.
    let requests = world.stats().requests;
    assert_ok(&world.voxlake(&["backfill", job, "--from", FROM, "--to", TO]));
    assert_eq!(
        world.stats().requests,
        requests,
        "the shards' coverage is the job's"
    );
    if let Some(python) = delta_python() {
        for table in tables {
            assert_readers_agree(&read_back(&python, &table_dir(&world, table), None));
        }
    }
}

#[test]
fn a_worker_killed_mid_run_leaves_whole_hours_and_the_rerun_is_exact() {
    let world = World::with_sim(sim_config(60));
    let job = world.job(
        &["insights_metrics"],
        &format!("{DELTA}\n[twilio]\nconcurrency = 2"),
    );
    let job = job.to_str().expect("job");
    let dir = table_dir(&world, "insights_metrics");
    let expected = expected_by_hour(&world, "insights_metrics");
    let done = Arc::new(AtomicBool::new(false));
    // A reader polling the table through the whole test: every state it sees holds each
    // hour whole or not at all.
    let reader = {
        let (dir, expected, done) = (dir.clone(), expected.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !done.load(Ordering::SeqCst) {
                if !dir.join("_delta_log").exists() {
                    std::thread::yield_now();
                    continue;
                }
                let state = replay(&dir, None);
                for (hour, rows) in state.rows_by_hour() {
                    assert_eq!(Some(&rows), expected.get(&hour), "hour {hour} seen partly");
                }
                seen.insert(state.version);
            }
            seen
        })
    };
    let mut child = world.spawn(&["backfill", job, "--from", FROM, "--to", TO], &sim_vars());
    // Kill -9 once some hours are in: the run is then between or inside commits.
    while replay(&dir, None).version < 4 && child.try_wait().expect("wait").is_none() {
        std::thread::yield_now();
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let killed_at = replay(&dir, None).version;
    assert_ok(&world.voxlake(&["backfill", job, "--from", FROM, "--to", TO]));
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().expect("the reader saw only whole hours");
    let state = replay(&dir, None);
    assert_eq!(state.rows_by_hour(), expected, "exact after the re-run");
    assert_eq!(
        state.rows_by_date(),
        expected_by_date(&world, "insights_metrics", FROM, TO)
    );
    assert!(state.version > killed_at && seen.len() > 2, "{seen:?}");
}

/// Writes, with the Python deltalake package, a copy of `source` (a table voxlake wrote)
/// at `target` with one column dropped or changed: a table an older voxlake wrote.
fn older_table(python: &str, source: &Path, target: &Path, change: &str) {
    let script = format!(
        "import sys, deltalake, pyarrow as pa, pyarrow.compute as pc\n\
         t = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table()\n\
         {change}\n\
         deltalake.write_deltalake(sys.argv[2], t, partition_by=['date'])\n"
    );
    let output = Command::new(python)
        .args(["-c", &script])
        .arg(source)
        .arg(target)
        .output()
        .expect("python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_new_column_merges_into_an_older_table_and_a_changed_type_is_refused() {
    let Some(python) = delta_python() else {
        return;
    };
    let world = World::with_sim(sim_config(20));
    let job = world.job(&["insights_metrics"], DELTA);
    let job = job.to_str().expect("job");
    let half = "2024-05-01T12:00:00Z";
    assert_ok(&world.voxlake(&["run", job, "--from", FROM, "--to", half]));
    let source = table_dir(&world, "insights_metrics");
    let old_rows = replay(&source, None).rows();
    // An older table without `direction`, and one where `carrier_edge__codec` is text.
    let without = world.dir.path().join("older/insights_metrics");
    older_table(
        &python,
        &source,
        &without,
        "t = t.drop_columns(['direction'])",
    );
    let retyped = world.dir.path().join("retyped/insights_metrics");
    older_table(
        &python,
        &source,
        &retyped,
        "i = t.schema.get_field_index('carrier_edge__codec')\n\
         t = t.set_column(i, 'carrier_edge__codec', pc.cast(t['carrier_edge__codec'], pa.string()))",
    );
    let older = world.dir.path().join("older");
    let merged = world.voxlake(&[
        "run",
        job,
        "--from",
        half,
        "--to",
        TO,
        "--output",
        older.to_str().expect("path"),
    ]);
    assert_ok(&merged);
    let read = read_back(&python, &without, None);
    assert_readers_agree(&read);
    let new_rows: u64 = expected_by_date(&world, "insights_metrics", half, TO)
        .values()
        .sum();
    assert_eq!(read["log"]["rows"], serde_json::json!(old_rows + new_rows));
    let nulls = duckdb_with_delta(
        &python,
        &format!(
            "SELECT count(*) FILTER (WHERE direction IS NULL), count(direction) FROM delta_scan('{}')",
            without.display()
        ),
    );
    assert_eq!(
        nulls,
        vec![old_rows as i64, new_rows as i64],
        "old rows null in the new column"
    );
    let requests = world.stats().requests;
    let retyped_root = world.dir.path().join("retyped");
    let refused = world.voxlake(&[
        "run",
        job,
        "--from",
        half,
        "--to",
        TO,
        "--output",
        retyped_root.to_str().expect("path"),
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("carrier_edge__codec"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        world.stats().requests,
        requests,
        "refused before any request"
    );
}

/// One row of numbers from DuckDB with the delta extension loaded from its file.
fn duckdb_with_delta(python: &str, sql: &str) -> Vec<i64> {
    let script = "import sys, glob, os, duckdb, duckdb_extension_delta as d\n\
        ext = glob.glob(os.path.join(os.path.dirname(d.__file__), 'extensions', '*', 'delta.duckdb_extension'))[0]\n\
        con = duckdb.connect(config={'autoinstall_known_extensions': False, 'autoload_known_extensions': False})\n\
        con.execute(f\"LOAD '{ext}'\")\n\
        print(','.join(str(v) for v in con.execute(sys.argv[1]).fetchone()))";
    let output = Command::new(python)
        .args(["-c", script, sql])
        .output()
        .expect("python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .split(',')
        .map(|v| v.parse().expect("number"))
        .collect()
}

#[test]
fn compact_keeps_every_row_in_fewer_files_in_one_version() {
    let world = World::with_sim(sim_config(40));
    let job = world.job(&PER_CALL_TABLES, DELTA);
    let job = job.to_str().expect("job");
    assert_ok(&world.voxlake(&["run", job, "--from", FROM, "--to", TO]));
    let dir = table_dir(&world, "insights_metrics");
    let before = replay(&dir, None);
    let python = delta_python();
    let old_read = python.as_ref().map(|p| read_back(p, &dir, None));
    let compacted = world.voxlake(&["compact", job, "--from", "2024-05-01", "--to", "2024-05-03"]);
    assert_ok(&compacted);
    let after = replay(&dir, None);
    assert_eq!(after.version, before.version + 1, "{}", compacted.stdout);
    assert_eq!(
        after.operations.last().map(String::as_str),
        Some("OPTIMIZE")
    );
    assert_eq!(after.rows_by_date(), before.rows_by_date());
    assert_eq!(after.rows_by_hour(), before.rows_by_hour());
    let days = before.rows_by_date().len();
    assert_eq!(after.files.len(), days, "one file per owner and day");
    assert!(after.files.len() < before.files.len());
    if let (Some(python), Some(old_read)) = (&python, &old_read) {
        let read = read_back(python, &dir, None);
        assert_readers_agree(&read);
        assert_eq!(read["checksum"], old_read["checksum"], "the same rows");
        assert_eq!(read["log"]["rows_by_date"], old_read["log"]["rows_by_date"]);
    }
    // An hour of a compacted day re-run: its rows replaced, the other hours' kept.
    let hour = after
        .rows_by_hour()
        .keys()
        .next()
        .cloned()
        .expect("an hour");
    let from = format!("{hour}:00:00Z");
    let to = (t(&from) + chrono::Duration::hours(1)).to_rfc3339();
    assert_ok(&world.voxlake(&["run", job, "--from", &from, "--to", &to]));
    let rerun = replay(&dir, None);
    assert_eq!(
        rerun.rows_by_hour(),
        expected_by_hour(&world, "insights_metrics")
    );
    assert_eq!(rerun.rows_by_date(), before.rows_by_date());
    // Vacuum with no retention: only the files the table uses are left.
    assert_ok(&world.voxlake(&[
        "compact",
        job,
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-03",
        "--retain",
        "0s",
    ]));
    let last = replay(&dir, None);
    let on_disk: BTreeSet<String> = world
        .files(false)
        .into_iter()
        .filter_map(|f| f.strip_prefix("insights_metrics/").map(str::to_string))
        .filter(|f| !f.starts_with("_delta_log/"))
        .collect();
    let active: BTreeSet<String> = last.files.keys().cloned().collect();
    assert_eq!(on_disk, active);
    assert_eq!(
        last.rows_by_hour(),
        expected_by_hour(&world, "insights_metrics")
    );
}

/// `voxlake run JOB --from FROM --to TO` (the simulator's day).
fn run_day(world: &World, job: &Path) -> Outcome {
    let job = job.to_str().expect("job");
    world.voxlake(&["run", job, "--from", FROM, "--to", TO])
}

/// A refused command: exit 2 with `message` in stderr.
fn assert_refused(outcome: &Outcome, message: &str) {
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert!(outcome.stderr.contains(message), "{}", outcome.stderr);
}

#[test]
fn formats_are_not_mixed_in_one_table() {
    let world = World::with_sim(sim_config(5));
    let parquet = world.job_named("p", &world.base_url(), &["insights_metrics"], "");
    let delta = world.job_named("d", &world.base_url(), &["insights_metrics"], DELTA);
    assert_ok(&run_day(&world, &parquet));
    let requests = world.stats().requests;
    assert_refused(&run_day(&world, &delta), "no Delta log");
    assert_eq!(world.stats().requests, requests);
    let other = World::with_sim(sim_config(5));
    let delta = other.job_named("d", &other.base_url(), &["insights_metrics"], DELTA);
    let parquet = other.job_named("p", &other.base_url(), &["insights_metrics"], "");
    assert_ok(&run_day(&other, &delta));
    assert_refused(&run_day(&other, &parquet), "is a Delta table");
    let parquet = parquet.to_str().expect("job");
    let window = ["--from", FROM, "--to", TO];
    let bad_shard = [&["backfill", parquet][..], &window, &["--shard", "4/4"]].concat();
    assert_refused(&other.voxlake(&bad_shard), "--shard");
    let compact = [&["compact", parquet][..], &window].concat();
    assert_refused(&other.voxlake(&compact), "compact rewrites Delta tables");
}

/// moto's S3 server, served one request at a time (`tests/moto_s3.py`: its conditional PUT
/// is then atomic, as AWS S3's is); stops when dropped.
struct MotoS3 {
    child: std::process::Child,
    url: String,
}

impl MotoS3 {
    fn start(python: &str) -> MotoS3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto_s3.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([&port.to_string(), "lake"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("moto says ready");
        assert_eq!(line.trim(), "ready");
        MotoS3 {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn vars(&self) -> Vec<(&str, &str)> {
        let mut vars = sim_vars();
        vars.extend([
            ("AWS_ACCESS_KEY_ID", "AKIAMOTO"),
            ("AWS_SECRET_ACCESS_KEY", "moto-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]);
        vars
    }

    /// Copies every object under `prefix/` into `dir`, through the S3 API.
    fn download(&self, prefix: &str, dir: &Path) {
        use futures::TryStreamExt;
        use object_store::{ObjectStore, ObjectStoreExt};
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("lake")
            .with_region("us-east-1")
            .with_endpoint(&self.url)
            .with_allow_http(true)
            .with_access_key_id("AKIAMOTO")
            .with_secret_access_key("moto-secret")
            .build()
            .expect("store");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let root = object_store::path::Path::from(prefix);
            let objects: Vec<_> = store.list(Some(&root)).try_collect().await.expect("list");
            for object in objects {
                let key = object.location.to_string();
                let bytes = store
                    .get(&object.location)
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("bytes");
                let path = dir.join(key[prefix.len()..].trim_start_matches('/'));
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, bytes).expect("write");
            }
        });
    }
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn four_workers_fill_one_s3_lake_exactly_once() {
    let Some(python) = delta_python() else {
        return;
    };
    let s3 = MotoS3::start(&python);
    let world = World::with_sim(sim_config(30));
    let tables = ["insights_metrics", "calls"];
    let job = world.job(&tables, &format!("{DELTA}\noutput = \"s3://lake/voice\""));
    let job = job.to_str().expect("job");
    let outcomes = run_shards(&world, job, 4, &s3.vars());
    for outcome in &outcomes {
        assert_ok(outcome);
    }
    s3.download("voice", &world.lake());
    let state = replay(&table_dir(&world, "insights_metrics"), None);
    assert_eq!(
        state.rows_by_date(),
        expected_by_date(&world, "insights_metrics", FROM, TO)
    );
    assert_eq!(
        state.rows_by_hour(),
        expected_by_hour(&world, "insights_metrics")
    );
    assert_eq!(replay(&table_dir(&world, "calls"), None).rows(), 30);
    assert_no_commit_lost(&world, &tables);
    for table in tables {
        assert_readers_agree(&read_back(&python, &table_dir(&world, table), None));
    }
}
