//! Test helpers: each test gets a temp folder, the simulator on 127.0.0.1:0 (in this process,
//! so the test can read its model and counters), a job file pointing at it, the real `voxlake`
//! binary, and DuckDB (python) to read what was written.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use serde_json::Value;
use voxlake::simulator::{self, SimConfig, SimHandle, SimStats};

/// Credentials the simulator accepts by default.
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
pub const AUTH_TOKEN: &str = "simulator-token";
pub const TELNYX_KEY: &str = "simulator-key";

/// One test's world.
pub struct World {
    pub dir: tempfile::TempDir,
    pub runtime: tokio::runtime::Runtime,
    pub sim: Option<SimHandle>,
}

/// What a voxlake process did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl World {
    /// A temp folder and a runtime; no simulator yet.
    pub fn new() -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        World {
            dir: tempfile::tempdir().expect("temp dir"),
            runtime,
            sim: None,
        }
    }

    /// A world with the simulator started from `config`.
    pub fn with_sim(config: SimConfig) -> World {
        let mut world = World::new();
        let sim = world
            .runtime
            .block_on(simulator::start(config, 0))
            .expect("simulator");
        world.sim = Some(sim);
        world
    }

    pub fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("simulator started")
    }

    pub fn base_url(&self) -> String {
        self.sim().base_url()
    }

    pub fn stats(&self) -> SimStats {
        self.sim().stats()
    }

    /// The lake folder every job writes to.
    pub fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    /// Writes a job file pointing at the simulator; `extra` is TOML (top-level keys, then
    /// `[twilio]`/`[telnyx]`/`[http]` sections) whose keys override the defaults here.
    pub fn job(&self, tables: &[&str], extra: &str) -> PathBuf {
        self.job_named("test", &self.base_url(), tables, extra)
    }

    /// Like `job`, for the job `name` (file `{name}.toml`) against the APIs at `base`.
    pub fn job_named(&self, name: &str, base: &str, tables: &[&str], extra: &str) -> PathBuf {
        let tables: Vec<String> = tables.iter().map(|t| format!("{t:?}")).collect();
        let lake = format!("{:?}", self.lake().display().to_string());
        let table_list = format!("[{}]", tables.join(", "));
        let base_text = format!("\"{base}\"");
        let name_text = format!("{name:?}");
        let sections: [(&str, Vec<(&str, &str)>); 4] = [
            (
                "",
                vec![
                    ("name", &name_text),
                    ("output", &lake),
                    ("tables", &table_list),
                ],
            ),
            (
                "twilio",
                vec![
                    ("insights_url", &base_text),
                    ("api_url", &base_text),
                    ("requests_per_second", "1000"),
                    ("concurrency", "4"),
                ],
            ),
            (
                "telnyx",
                vec![("api_url", &base_text), ("requests_per_second", "1000")],
            ),
            (
                "http",
                vec![
                    ("timeout_secs", "10"),
                    ("backoff_base_ms", "5"),
                    ("backoff_max_secs", "1"),
                ],
            ),
        ];
        let mut text = String::new();
        for (name, defaults) in sections {
            let given = section(extra, name);
            if !name.is_empty() {
                text.push_str(&format!("[{name}]\n"));
            }
            for (key, value) in defaults {
                let overridden = given
                    .lines()
                    .any(|l| l.split('=').next().map(str::trim) == Some(key));
                if !overridden {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
            text.push_str(&given);
            text.push_str("\n\n");
        }
        for (name, body) in other_sections(extra) {
            text.push_str(&format!("[{name}]\n{body}\n"));
        }
        let file = if name == "test" {
            "job.toml".to_string()
        } else {
            format!("{name}.toml")
        };
        self.write_file(&file, &text)
    }

    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// Runs the real binary with the simulator's credentials in the environment.
    pub fn voxlake(&self, args: &[&str]) -> Outcome {
        self.voxlake_env(
            args,
            &[
                ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
                ("TELNYX_API_KEY", TELNYX_KEY),
            ],
        )
    }

    /// Runs the real binary with exactly these credential variables.
    pub fn voxlake_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Outcome {
        let mut command = Command::new(env!("CARGO_BIN_EXE_voxlake"));
        command.args(args).current_dir(self.dir.path());
        for name in [
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "TWILIO_API_KEY",
            "TWILIO_API_SECRET",
            "TELNYX_API_KEY",
            "VOXLAKE_LOG",
        ] {
            command.env_remove(name);
        }
        for (name, value) in vars {
            command.env(name, value);
        }
        let output = command.output().expect("run voxlake");
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// A second simulator (another account, say) in this world's runtime.
    pub fn start_sim(&self, config: SimConfig) -> SimHandle {
        self.runtime
            .block_on(simulator::start(config, 0))
            .expect("simulator")
    }

    /// Starts the real binary in the background (stderr piped, stdout discarded), for tests
    /// that signal or kill it mid-run; `vars` are its only credential variables.
    pub fn spawn(&self, args: &[&str], vars: &[(&str, &str)]) -> std::process::Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_voxlake"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .envs(vars.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        command.spawn().expect("spawn voxlake")
    }

    /// Every call SID of the simulator's model.
    pub fn call_sids(&self) -> Vec<String> {
        self.sim()
            .model()
            .calls()
            .iter()
            .map(|c| c.sid.clone())
            .collect()
    }

    /// `run JOB --call-sid …` for these calls.
    pub fn run_calls(&self, job: &Path, sids: &[String]) -> Outcome {
        let mut args = vec!["run".to_string(), job.display().to_string()];
        for sid in sids {
            args.push("--call-sid".into());
            args.push(sid.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.voxlake(&args)
    }

    /// Files under the lake (relative paths), sorted; `_voxlake/` excluded unless asked.
    pub fn files(&self, with_state: bool) -> Vec<String> {
        let mut files = Vec::new();
        collect_files(&self.lake(), &self.lake(), &mut files);
        files.retain(|f| with_state || !f.starts_with("_voxlake/"));
        files.sort();
        files
    }

    /// The SQL expression reading a table the way analysts do.
    pub fn table(&self, table: &str) -> String {
        format!(
            "read_parquet('{}/{table}/**/*.parquet', hive_partitioning=true)",
            self.lake().display()
        )
    }
}

/// The lines of `extra` under `[name]` (or before any section when name is empty).
fn section(extra: &str, name: &str) -> String {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in extra.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            current = trimmed.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        if current == name {
            out.push(line.to_string());
        }
    }
    out.join("\n")
}

/// Sections of `extra` other than the ones `job` writes itself.
fn other_sections(extra: &str) -> Vec<(String, String)> {
    let mut names: Vec<String> = Vec::new();
    for line in extra.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            let name = trimmed.trim_matches(|c| c == '[' || c == ']').to_string();
            if !["twilio", "telnyx", "http"].contains(&name.as_str()) && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
        .into_iter()
        .map(|n| {
            let body = section(extra, &n);
            (n, body)
        })
        .collect()
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.display().to_string());
        }
    }
}

/// Runs a query in DuckDB (python package) and returns its rows as JSON values.
pub fn duckdb(sql: &str) -> Vec<Vec<Value>> {
    let script = "import duckdb, json, sys\n\
        rows = duckdb.sql(sys.argv[1]).fetchall()\n\
        print(json.dumps([list(r) for r in rows], default=str))";
    let output = Command::new("python3")
        .args(["-c", script, sql])
        .output()
        .expect("python3 must be installed (tests/run.sh installs duckdb)");
    assert!(
        output.status.success(),
        "duckdb failed for {sql}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("duckdb output is JSON")
}

/// One number from a query.
pub fn duckdb_i64(sql: &str) -> i64 {
    let rows = duckdb(sql);
    rows.first()
        .and_then(|r| r.first())
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or_else(|| panic!("no number from {sql}: {rows:?}"))
}

/// UTC day (`YYYY-MM-DD`) of an API timestamp (RFC 3339 or RFC 2822), parsed by the test itself.
pub fn day_of(text: &str) -> String {
    let t: DateTime<Utc> = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_rfc2822(text))
        .unwrap_or_else(|_| panic!("unparseable time {text}"))
        .with_timezone(&Utc);
    t.format("%Y-%m-%d").to_string()
}

/// What the simulator says a set of calls has, per table: row count and rows per `date=` day.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub rows: BTreeMap<String, i64>,
    pub by_day: BTreeMap<(String, String), i64>,
}

/// Expected rows for the three per-call tables (default edge) of these calls.
pub fn expected(world: &World, sids: &[String]) -> Expected {
    let model = world.sim().model();
    let mut expected = Expected::default();
    for sid in sids {
        let tables: [(&str, Vec<Value>, &[&str]); 3] = [
            (
                "insights_events",
                model.insights_events(sid, None),
                &["timestamp"],
            ),
            (
                "insights_metrics",
                model.insights_metrics(sid, None),
                &["timestamp"],
            ),
            (
                "call_events",
                model.call_events(sid),
                &["response", "date_created"],
            ),
        ];
        for (table, records, time_path) in tables {
            for record in records {
                let mut value = &record;
                for key in time_path {
                    value = &value[*key];
                }
                let day = day_of(value.as_str().expect("record time"));
                *expected.rows.entry(table.to_string()).or_default() += 1;
                *expected.by_day.entry((table.to_string(), day)).or_default() += 1;
            }
        }
    }
    expected
}

/// The same figures read back from the lake with DuckDB.
pub fn landed(world: &World, tables: &[&str]) -> Expected {
    let mut landed = Expected::default();
    for table in tables {
        let rows = duckdb(&format!(
            "SELECT CAST(date AS VARCHAR), count(*) FROM {} GROUP BY ALL ORDER BY 1",
            world.table(table)
        ));
        for row in rows {
            let day = row[0].as_str().expect("date").to_string();
            let count = row[1].as_i64().expect("count");
            *landed.rows.entry(table.to_string()).or_default() += count;
            landed.by_day.insert((table.to_string(), day), count);
        }
    }
    landed
}

/// Default simulator settings with `calls` calls.
pub fn sim_config(calls: usize) -> SimConfig {
    SimConfig {
        calls,
        ..SimConfig::default()
    }
}

pub const PER_CALL_TABLES: [&str; 3] = ["insights_events", "insights_metrics", "call_events"];

/// Parses RFC 3339 (test inputs).
pub fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|_| panic!("bad time {text}"))
        .with_timezone(&Utc)
}

impl World {
    /// SIDs of the model's calls that started in [from, to).
    pub fn calls_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
        self.sim()
            .model()
            .calls()
            .iter()
            .filter(|c| c.start_time >= from && c.start_time < to)
            .map(|c| c.sid.clone())
            .collect()
    }

    /// Requests the simulator received about each call.
    pub fn requests_by_call(&self) -> BTreeMap<String, u64> {
        self.stats().requests_by_call
    }

    /// Distinct call SIDs landed in a table.
    pub fn landed_calls(&self, table: &str) -> Vec<String> {
        let rows = duckdb(&format!(
            "SELECT DISTINCT call_sid FROM {} ORDER BY 1",
            self.table(table)
        ));
        rows.into_iter()
            .map(|r| r[0].as_str().expect("sid").to_string())
            .collect()
    }
}

/// Sorted copy.
pub fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

impl World {
    /// A job like `job`, with every API URL pointing at `base` instead of the simulator.
    pub fn job_via(&self, base: &str, tables: &[&str], extra: &str) -> PathBuf {
        let path = self.job(tables, extra);
        let text = std::fs::read_to_string(&path)
            .expect("job")
            .replace(&self.base_url(), base);
        self.write_file("job.toml", &text)
    }
}
