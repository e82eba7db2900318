//! Issue 5: the output store failing — a read-only folder, a full disk (a small tmpfs), the
//! path being a file — is a clear error, leaves nothing half-written and no state advanced, and
//! the same command completes once the store is fixed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// A tmpfs mounted over a folder; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// None where this machine does not let the test mount (not root, no CAP_SYS_ADMIN).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .expect("mount");
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Every table file readable whole, and each listed in its slice record.
fn assert_only_whole_recorded_files(world: &World) {
    let files = world.files(false);
    let mut recorded = Vec::new();
    for record in world
        .files(true)
        .into_iter()
        .filter(|f| f.starts_with("_voxlake/slices/"))
    {
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(world.lake().join(record)).expect("read"))
                .expect("json");
        for file in value["files"].as_array().expect("files") {
            recorded.push(file.as_str().expect("file").to_string());
        }
    }
    for file in &files {
        assert!(file.ends_with(".parquet"), "{file}");
        assert!(recorded.contains(file), "{file} is not recorded");
    }
    // Every file opens whole (one DuckDB query over the list).
    if !files.is_empty() {
        let list: Vec<String> = files
            .iter()
            .map(|f| format!("'{}'", world.lake().join(f).display()))
            .collect();
        duckdb(&format!(
            "SELECT count(*) FROM read_parquet([{}], union_by_name = true)",
            list.join(", ")
        ));
    }
}

fn lake_on_tmpfs(world: &World, size: &str) -> Option<Tmpfs> {
    let mount = Tmpfs::mount(&world.lake(), size);
    if mount.is_none() {
        eprintln!("NOTE: tmpfs cannot be mounted here; the disk-full case is not exercised");
    }
    mount
}

#[test]
fn a_full_disk_fails_cleanly_and_the_same_command_completes_after() {
    let world = World::with_sim(sim_config(40));
    let Some(disk) = lake_on_tmpfs(&world, "400k") else {
        return;
    };
    let job = world.job(&PER_CALL_TABLES, "start = \"2024-05-01\"");
    let args = [
        "--now",
        "2024-05-02T01:00:00Z",
        "run",
        job.to_str().expect("path"),
    ];
    let out = world.voxlake(&args);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert_only_whole_recorded_files(&world);
    let state = world.lake().join("_voxlake/jobs/test.json");
    if let Ok(bytes) = std::fs::read(&state) {
        let state: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert!(state["watermark"].is_null(), "{state}");
    }

    disk.remount("size=64m");
    let out = world.voxlake(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids())
    );
    assert_only_whole_recorded_files(&world);
}

#[test]
fn a_read_only_output_is_refused_before_any_request() {
    let world = World::with_sim(sim_config(3));
    let Some(disk) = lake_on_tmpfs(&world, "16m") else {
        return;
    };
    disk.remount("ro");
    let job = world.job(&PER_CALL_TABLES, "");
    let out = world.run_calls(&job, &world.call_sids());
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not writable") && out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    assert_eq!(world.stats().requests, 0);
    disk.remount("rw");
    let out = world.run_calls(&job, &world.call_sids());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids())
    );
}

#[test]
fn an_output_path_that_is_a_file_is_refused() {
    let world = World::with_sim(sim_config(2));
    std::fs::write(world.lake(), b"not a folder").expect("file");
    let job = world.job(&PER_CALL_TABLES, "");
    let out = world.run_calls(&job, &world.call_sids());
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("exists and is not a folder"),
        "{}",
        out.stderr
    );
    assert_eq!(world.stats().requests, 0);
    assert_eq!(
        std::fs::read(world.lake()).expect("still the file"),
        b"not a folder"
    );
}
