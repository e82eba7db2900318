//! Issue 4: S3 output against a real S3-compatible server on 127.0.0.1 (s3s-fs: signatures
//! checked, objects kept on disk), read back through the S3 API and with DuckDB.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::util::*;

const NOW: &str = "2024-05-02T00:00:00Z";
const TABLES: [&str; 5] = [
    "insights_events",
    "insights_metrics",
    "call_events",
    "call_summaries",
    "telnyx_call_events",
];
pub(crate) const KEY: &str = "AKIAVOXLAKETEST";
pub(crate) const SECRET: &str = "s3cr3t-VoXlAkE-9f8e7d6c5b4a";

/// The S3 server of one test (s3s-fs, installed by tests/run.sh); stops when dropped.
pub(crate) struct S3Server {
    child: Child,
    _root: tempfile::TempDir,
    url: String,
    bucket: String,
    runtime: tokio::runtime::Runtime,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn s3s_fs() -> String {
    std::env::var("VOXLAKE_S3S_FS").unwrap_or_else(|_| "s3s-fs".into())
}

impl S3Server {
    pub(crate) fn start() -> S3Server {
        let root = tempfile::tempdir().expect("root");
        let bucket = "lake".to_string();
        std::fs::create_dir(root.path().join(&bucket)).expect("bucket folder");
        let port = free_port();
        let child = Command::new(s3s_fs())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                KEY,
                "--secret-key",
                SECRET,
            ])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs on PATH (tests/run.sh installs it), or VOXLAKE_S3S_FS");
        // Ready when it accepts connections.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::yield_now();
        }
        S3Server {
            child,
            _root: root,
            url: format!("http://127.0.0.1:{port}"),
            bucket,
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
        }
    }

    /// Variables for voxlake (the simulator's credentials, and S3's).
    pub(crate) fn env<'a>(&'a self, secret: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ("TELNYX_API_KEY", TELNYX_KEY),
            ("AWS_ACCESS_KEY_ID", KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &self.url),
            ("AWS_ALLOW_HTTP", "true"),
        ]
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        let store = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region("us-east-1")
            .with_endpoint(&self.url)
            .with_allow_http(true)
            .with_access_key_id(KEY)
            .with_secret_access_key(SECRET)
            .build()
            .expect("store");
        Arc::new(store)
    }

    /// Every object key, sorted.
    pub(crate) fn objects(&self) -> Vec<String> {
        let store = self.store();
        let mut keys: Vec<String> = self
            .runtime
            .block_on(store.list(None).try_collect::<Vec<_>>())
            .expect("list")
            .into_iter()
            .map(|o| o.location.to_string())
            .collect();
        keys.sort();
        keys
    }

    /// Copies every object under `prefix` into `dir`, through the S3 API.
    pub(crate) fn download(&self, prefix: &str, dir: &Path) {
        let store = self.store();
        for key in self.objects().into_iter().filter(|k| k.starts_with(prefix)) {
            let bytes = self
                .runtime
                .block_on(async {
                    store
                        .get(&ObjectPath::from(key.as_str()))
                        .await?
                        .bytes()
                        .await
                })
                .expect("get");
            let path = dir.join(key[prefix.len()..].trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, bytes).expect("write");
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn world() -> World {
    let mut config = sim_config(20);
    config.now = Some(t(NOW));
    World::with_sim(config)
}

fn window_args(job: &Path, output: &str) -> Vec<String> {
    [
        "--now",
        NOW,
        "run",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
        "--output",
        output,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(world: &World, args: &[String], env: &[(&str, &str)]) -> Outcome {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    world.voxlake_env(&args, env)
}

/// Per table: rows and a checksum of the sorted rows without lineage.
fn fingerprint(lake: &Path) -> Vec<Vec<serde_json::Value>> {
    TABLES
        .iter()
        .map(|table| {
            let mut row = duckdb(&format!(
                "SELECT count(*), md5(string_agg(r, '|' ORDER BY r)) FROM (SELECT CAST(struct_pack(COLUMNS(* EXCLUDE (_ingested_at, _run_id))) AS VARCHAR) AS r \
                 FROM read_parquet('{}/{table}/**/*.parquet', hive_partitioning=true))",
                lake.display()
            ))
            .remove(0);
            row.insert(0, serde_json::json!(table));
            row
        })
        .collect()
}

fn data_files(files: &[String]) -> Vec<String> {
    files
        .iter()
        .filter(|f| !f.starts_with("_voxlake/"))
        .cloned()
        .collect()
}

#[test]
fn s3_lands_what_a_local_folder_lands_and_reruns_replace() {
    let s3 = S3Server::start();
    let world = world();
    let job = world.job(&TABLES, "");
    let env = s3.env(SECRET);
    let local = run(
        &world,
        &window_args(&job, world.lake().to_str().expect("lake")),
        &env,
    );
    assert_eq!(local.code, 0, "{}", local.stderr);
    let remote = run(
        &world,
        &window_args(&job, "s3://lake/tenant-a/voxlake"),
        &env,
    );
    assert_eq!(remote.code, 0, "{}", remote.stderr);

    let objects = s3.objects();
    assert!(
        objects.iter().all(|o| o.starts_with("tenant-a/voxlake/")),
        "{objects:?}"
    );
    let relative: Vec<String> = objects
        .iter()
        .map(|o| o["tenant-a/voxlake/".len()..].to_string())
        .collect();
    assert_eq!(data_files(&relative), world.files(false));
    assert!(relative.iter().any(|o| o.starts_with("_voxlake/runs/")));
    assert!(relative.iter().any(|o| o.starts_with("_voxlake/coverage/")));

    let remote_lake = world.dir.path().join("downloaded");
    s3.download("tenant-a/voxlake/", &remote_lake);
    let expected = fingerprint(&world.lake());
    assert!(
        expected.iter().all(|r| r[1].as_i64().unwrap_or(0) > 0),
        "{expected:?}"
    );
    assert_eq!(fingerprint(&remote_lake), expected);

    // The same command again: the same objects (names) and the same rows.
    let again = run(
        &world,
        &window_args(&job, "s3://lake/tenant-a/voxlake"),
        &env,
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let after: Vec<String> = s3.objects();
    assert_eq!(data_files(&strip(&after)), data_files(&relative));
    let downloaded = world.dir.path().join("downloaded-again");
    s3.download("tenant-a/voxlake/", &downloaded);
    assert_eq!(fingerprint(&downloaded), expected);

    // No S3 secret anywhere in what voxlake printed or wrote.
    for out in [&local, &remote, &again] {
        assert!(!out.stderr.contains(SECRET) && !out.stdout.contains(SECRET));
    }
    for file in walk(&downloaded) {
        let bytes = std::fs::read(&file).expect("read");
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{file:?}"
        );
    }
}

fn strip(objects: &[String]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o.trim_start_matches("tenant-a/voxlake/").to_string())
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn wrong_credentials_or_a_missing_bucket_fail_before_any_request() {
    let s3 = S3Server::start();
    let world = world();
    let job = world.job(&["insights_metrics"], "");
    let wrong = run(
        &world,
        &window_args(&job, "s3://lake/x"),
        &s3.env("not-the-secret"),
    );
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("bucket lake") && wrong.stderr.contains("access denied"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("not-the-secret"));
    let missing = run(
        &world,
        &window_args(&job, "s3://no-such-bucket/x"),
        &s3.env(SECRET),
    );
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("bucket no-such-bucket: the bucket does not exist"),
        "{}",
        missing.stderr
    );
    assert_eq!(world.stats().requests, 0);
    assert!(s3.objects().is_empty());
}

#[test]
fn the_server_stopped_mid_run_then_back_completes_exactly() {
    let s3 = S3Server::start();
    let mut config = sim_config(40);
    config.to = t("2024-05-03T00:00:00Z");
    config.faults.slow_ratio = 0.5;
    config.faults.slow_ms = 20;
    let world = World::with_sim(config);
    let job = world.job(
        &["insights_metrics", "call_events"],
        "start = \"2024-05-01\"\n[twilio]\nconcurrency = 2\n[http]\ntimeout_secs = 2\nmax_attempts = 2",
    );
    let args = [
        "--now",
        "2024-05-03T01:00:00Z",
        "run",
        job.to_str().expect("path"),
        "--output",
        "s3://lake/nightly",
    ];
    let env = s3.env(SECRET);
    let mut child = world.spawn(&args, &env);
    // Stop the server once a third of the calls were fetched.
    while world.stats().requests < 40 {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before the server stopped"
        );
        std::thread::yield_now();
    }
    s3.signal("-STOP");
    let output = child.wait_with_output().expect("run ends");
    s3.signal("-CONT");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("output store"), "{stderr}");

    // Whatever is under the tables is whole and listed in a slice record; the watermark did
    // not advance.
    let lake = world.dir.path().join("after-stop");
    s3.download("nightly/", &lake);
    let recorded: Vec<String> = walk(&lake.join("_voxlake/slices"))
        .iter()
        .flat_map(|p| {
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json");
            record["files"]
                .as_array()
                .expect("files")
                .iter()
                .map(|f| f.as_str().expect("file").to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let parquet: Vec<PathBuf> = walk(&lake)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    for file in &parquet {
        let relative = file
            .strip_prefix(&lake)
            .expect("inside")
            .display()
            .to_string();
        assert!(!relative.starts_with("_voxlake"), "{relative}");
        assert!(
            recorded.contains(&relative),
            "{relative} is not in a slice record"
        );
    }
    if !parquet.is_empty() {
        let list: Vec<String> = parquet
            .iter()
            .map(|f| format!("'{}'", f.display()))
            .collect();
        duckdb(&format!(
            "SELECT count(*) FROM read_parquet([{}], union_by_name = true)",
            list.join(", ")
        ));
    }
    let state = lake.join("_voxlake/jobs/test.json");
    if state.exists() {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).expect("read")).expect("json");
        assert!(state["watermark"].is_null(), "{state}");
    }

    // With the server back, the same command completes with exact data.
    let out = world.voxlake_env(&args, &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lake = world.dir.path().join("after-resume");
    s3.download("nightly/", &lake);
    let sids = world.call_sids();
    let expected = expected(&world, &sids);
    for table in ["insights_metrics", "call_events"] {
        let rows = duckdb_i64(&format!(
            "SELECT count(*) FROM read_parquet('{}/{table}/**/*.parquet', hive_partitioning=true)",
            lake.display()
        ));
        assert_eq!(rows, expected.rows[table], "{table}");
    }
}
