//! Issue 9: a bounded concurrency soak. Four processes at a time of `--call-sid`, window and
//! backfill runs of three jobs over two accounts share one output (a local folder, then S3 on
//! the loopback server); some are killed with SIGKILL at random moments. Then one final
//! backfill per job, and every row is there exactly once per (account, call), each account's
//! files hold only its rows, and no stray file is visible to `read_parquet('out/**/*.parquet')`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use voxlake::simulator::SimHandle;

use crate::s3::{S3Server, SECRET};
use crate::util::*;

const TABLES: [&str; 3] = PER_CALL_TABLES;
const SECOND_ACCOUNT: &str = "AC22222222222222222222222222222222";
const SECOND_TOKEN: &str = "second-token";

/// A job of the soak: its file and its account's credentials.
struct SoakJob {
    file: String,
    account: &'static str,
    token: &'static str,
    calls: Vec<String>,
}

struct Soak {
    world: World,
    second: SimHandle,
    jobs: Vec<SoakJob>,
    /// The variables every process gets besides its account's (S3's).
    store_env: Vec<(String, String)>,
}

fn slow(mut config: voxlake::simulator::SimConfig) -> voxlake::simulator::SimConfig {
    config.faults.slow_ratio = 0.2;
    config.faults.slow_ms = 10;
    config
}

impl Soak {
    fn new(output: &str, store_env: Vec<(String, String)>, calls: usize) -> Soak {
        let world = World::with_sim(slow(sim_config(calls)));
        let mut second = slow(sim_config(calls));
        second.seed = 99;
        second.account_sid = SECOND_ACCOUNT.into();
        second.auth_token = SECOND_TOKEN.into();
        let second = world.start_sim(second);
        let extra = format!("output = {output:?}\nlease = \"5s\"\n[twilio]\nconcurrency = 3");
        let first_calls = world.call_sids();
        let second_calls: Vec<String> = second
            .model()
            .calls()
            .iter()
            .map(|c| c.sid.clone())
            .collect();
        let job = |name: &str, base: &str| {
            world
                .job_named(name, base, &TABLES, &extra)
                .display()
                .to_string()
        };
        let jobs = vec![
            SoakJob {
                file: job("first", &world.base_url()),
                account: ACCOUNT_SID,
                token: AUTH_TOKEN,
                calls: first_calls.clone(),
            },
            SoakJob {
                file: job("first-again", &world.base_url()),
                account: ACCOUNT_SID,
                token: AUTH_TOKEN,
                calls: first_calls,
            },
            SoakJob {
                file: job("second", &second.base_url()),
                account: SECOND_ACCOUNT,
                token: SECOND_TOKEN,
                calls: second_calls,
            },
        ];
        Soak {
            world,
            second,
            jobs,
            store_env,
        }
    }

    fn requests(&self) -> u64 {
        self.world.stats().requests + self.second.stats().requests
    }

    fn spawn(&self, job: &SoakJob, args: &[String]) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_voxlake"));
        command
            .args(args)
            .current_dir(self.world.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TWILIO_ACCOUNT_SID", job.account)
            .env("TWILIO_AUTH_TOKEN", job.token)
            .envs(self.store_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command.spawn().expect("spawn voxlake")
    }

    /// A random run of a random job: a day's backfill, an hour window, or a few calls.
    fn random_run(&self, rng: &mut impl Rng) -> (usize, Vec<String>) {
        let index = rng.random_range(0..self.jobs.len());
        let job = &self.jobs[index];
        let mut args = vec!["--quiet".to_string()];
        match rng.random_range(0..3) {
            0 => args.extend(
                [
                    "backfill",
                    &job.file,
                    "--from",
                    "2024-05-01",
                    "--to",
                    "2024-05-02",
                ]
                .map(String::from),
            ),
            1 => {
                let from = rng.random_range(0..20);
                let hours = rng.random_range(1..5);
                args.extend(["run", &job.file].map(String::from));
                args.push("--from".into());
                args.push(format!("2024-05-01T{from:02}:00:00Z"));
                args.push("--to".into());
                args.push(format!("2024-05-01T{:02}:00:00Z", from + hours));
            }
            _ => {
                args.extend(["run", &job.file].map(String::from));
                for sid in job.calls.choose_multiple(rng, 3) {
                    args.push("--call-sid".into());
                    args.push(sid.clone());
                }
            }
        }
        args.push("--wait".into());
        (index, args)
    }

    fn run(&self, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for round in 0..3 {
            let mut children: Vec<(Child, Vec<String>)> = (0..4)
                .map(|_| {
                    let (job, args) = self.random_run(&mut rng);
                    (self.spawn(&self.jobs[job], &args), args)
                })
                .collect();
            let victims = rng.random_range(1..=2);
            for _ in 0..victims {
                let target = self.requests() + rng.random_range(5..60);
                while self.requests() < target && children.iter_mut().any(|(c, _)| alive(c)) {
                    std::thread::yield_now();
                }
                let victim = rng.random_range(0..children.len());
                let (child, args) = &mut children[victim];
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("seed {seed}: round {round}: killed {args:?}");
            }
            for (child, args) in children {
                let output = child.wait_with_output().expect("wait");
                let code = output.status.code();
                // Killed ones have no code; every other run waits its turn and succeeds.
                assert!(
                    code.is_none() || code == Some(0),
                    "seed {seed}: {args:?} exited {code:?}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        for job in &self.jobs {
            let args: Vec<String> = [
                "backfill",
                &job.file,
                "--from",
                "2024-05-01",
                "--to",
                "2024-05-02",
                "--wait",
            ]
            .map(String::from)
            .to_vec();
            let output = self.spawn(job, &args).wait_with_output().expect("wait");
            assert_eq!(
                output.status.code(),
                Some(0),
                "seed {seed}: final {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Rows per table per account that the two simulators served for their calls.
    fn expected(&self) -> BTreeMap<(String, String), i64> {
        let mut expected = BTreeMap::new();
        for (sim, account) in [
            (self.world.sim(), ACCOUNT_SID),
            (&self.second, SECOND_ACCOUNT),
        ] {
            let model = sim.model();
            for call in model.calls() {
                for (table, rows) in [
                    (
                        "insights_events",
                        model.insights_events(&call.sid, None).len(),
                    ),
                    (
                        "insights_metrics",
                        model.insights_metrics(&call.sid, None).len(),
                    ),
                    ("call_events", model.call_events(&call.sid).len()),
                ] {
                    *expected
                        .entry((table.to_string(), account.to_string()))
                        .or_default() += rows as i64;
                }
            }
        }
        expected
    }

    /// Checks the lake as a local folder (S3's downloaded whole).
    fn check(&self, lake: &Path, seed: u64) {
        let read = |table: &str| {
            format!(
                "read_parquet('{}/{table}/**/*.parquet', hive_partitioning = true, filename = true)",
                lake.display()
            )
        };
        let mut landed = BTreeMap::new();
        for table in TABLES {
            for row in duckdb(&format!(
                "SELECT account_sid, count(*) FROM {} GROUP BY 1",
                read(table)
            )) {
                let account = row[0].as_str().expect("account").to_string();
                landed.insert((table.to_string(), account), row[1].as_i64().expect("n"));
            }
            // Each account's files hold its rows only.
            let foreign = duckdb_i64(&format!(
                "SELECT count(*) FROM {} WHERE NOT contains(filename, account_sid)",
                read(table)
            ));
            assert_eq!(foreign, 0, "seed {seed}: {table}");
        }
        assert_eq!(landed, self.expected(), "seed {seed}");
        let keys = [
            ("insights_events", "call_sid, timestamp, name, edge"),
            ("insights_metrics", "call_sid, timestamp, edge, direction"),
            (
                "call_events",
                "call_sid, request__url, response__date_created",
            ),
        ];
        for (table, key) in keys {
            let doubled = duckdb_i64(&format!(
                "SELECT count(*) FROM (SELECT {key}, count(*) AS n FROM {} GROUP BY ALL HAVING n > 1)",
                read(table)
            ));
            assert_eq!(doubled, 0, "seed {seed}: {table} has doubled rows");
        }
        // Nothing but the tables' files under the whole output.
        let all = duckdb_i64(&format!(
            "SELECT count(*) FROM read_parquet('{}/**/*.parquet', union_by_name = true)",
            lake.display()
        ));
        assert_eq!(all, self.expected().values().sum::<i64>(), "seed {seed}");
    }
}

fn alive(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

fn seed() -> u64 {
    let seed = rand::rng().random();
    eprintln!("soak seed {seed}");
    seed
}

#[test]
fn concurrent_runs_of_two_accounts_with_kills_on_a_local_folder() {
    let world_lake = tempfile::tempdir().expect("dir");
    let lake = world_lake.path().join("lake");
    let soak = Soak::new(&lake.display().to_string(), Vec::new(), 16);
    let seed = seed();
    soak.run(seed);
    soak.check(&lake, seed);
}

#[test]
fn concurrent_runs_of_two_accounts_with_kills_on_s3() {
    let s3 = S3Server::start();
    let store_env: Vec<(String, String)> = s3
        .env(SECRET)
        .into_iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Fewer calls than locally: every commit is a dozen requests to the S3 server.
    let soak = Soak::new("s3://lake/soak", store_env, 10);
    let seed = seed();
    soak.run(seed);
    let lake = soak.world.dir.path().join("downloaded");
    s3.download("soak/", &lake);
    soak.check(&lake, seed);
}
