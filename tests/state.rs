//! Issue 3: nightly runs from a watermark, backfills that resume after SIGKILL, failed hours
//! fetched again, status.

use rand::Rng;

use crate::util::*;

fn nightly_job(world: &World, lag: &str) -> std::path::PathBuf {
    world.job(
        &PER_CALL_TABLES,
        &format!("start = \"2024-05-01\"\nlag = \"{lag}\""),
    )
}

#[test]
fn nightly_twice_fetches_only_the_new_window_then_nothing() {
    let world = World::with_sim(sim_config(16));
    let job = nightly_job(&world, "10h");
    let job_path = job.to_str().expect("path");
    let now = "2024-05-02T00:30:00Z";

    // First night: lag 10h → [2024-05-01T00, 2024-05-01T14).
    let out = world.voxlake(&["--now", now, "run", job_path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("watermark now 2024-05-01T14:00:00+00:00"),
        "{}",
        out.stderr
    );
    let first = world.calls_between(t("2024-05-01T00:00:00Z"), t("2024-05-01T14:00:00Z"));
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &first));
    let requests_after_first = world.requests_by_call();

    // Second night: lag 15m → only [14:00, 2024-05-02T00:00) is fetched.
    let job = nightly_job(&world, "15m");
    let out = world.voxlake(&["--now", now, "run", job.to_str().expect("path")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("watermark now 2024-05-02T00:00:00+00:00"),
        "{}",
        out.stderr
    );
    let requests_after_second = world.requests_by_call();
    for sid in &first {
        assert_eq!(
            requests_after_second.get(sid),
            requests_after_first.get(sid),
            "{sid} fetched again"
        );
    }
    let second = world.calls_between(t("2024-05-01T14:00:00Z"), t("2024-05-02T00:00:00Z"));
    assert!(!second.is_empty());
    for sid in &second {
        assert!(
            requests_after_second.get(sid).copied().unwrap_or(0) > 0,
            "{sid} not fetched"
        );
    }
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids())
    );

    // Third, at once: nothing new, exit 0, no request.
    let before = world.stats().requests;
    let out = world.voxlake(&["--now", now, "run", job.to_str().expect("path")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("nothing_new"), "{}", out.stderr);
    assert_eq!(world.stats().requests, before);

    let status = world.voxlake(&["--now", now, "status", job.to_str().expect("path")]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status
            .stdout
            .contains("watermark: 2024-05-02T00:00:00+00:00"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("(nightly) nothing_new"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("done: 2024-05-01T00:00:00+00:00 .. 2024-05-02T00:00:00+00:00"),
        "{}",
        status.stdout
    );
}

fn done_hours(world: &World) -> Vec<(String, String)> {
    let path = world.lake().join(format!(
        "_voxlake/coverage/test/{ACCOUNT_SID}/insights_metrics.json"
    ));
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let file: serde_json::Value = serde_json::from_slice(&bytes).expect("coverage json");
    file["done"]
        .as_array()
        .expect("done")
        .iter()
        .map(|r| {
            (
                r[0].as_str().expect("from").to_string(),
                r[1].as_str().expect("to").to_string(),
            )
        })
        .collect()
}

fn call_in(ranges: &[(String, String)], start: chrono::DateTime<chrono::Utc>) -> bool {
    ranges
        .iter()
        .any(|(from, to)| start >= t(from) && start < t(to))
}

#[test]
fn a_backfill_killed_at_random_moments_resumes_exactly() {
    let mut config = sim_config(60);
    config.to = t("2024-05-03T00:00:00Z");
    config.faults.slow_ratio = 0.3;
    config.faults.slow_ms = 15;
    let world = World::with_sim(config);
    let job = world.job(
        &PER_CALL_TABLES,
        "slice = \"2h\"\n[twilio]\nconcurrency = 2",
    );
    let args = [
        "backfill",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-03",
    ];
    let seed: u64 = rand::rng().random();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    // Two days' Calls.json listings, then three lists per call.
    let total_requests: u64 = 2 + 60 * 3;
    for round in 0..2 {
        // Kill once the simulator has served a random number of the requests still to come.
        let served = world.stats().requests;
        let remaining = total_requests.saturating_sub(served);
        let kill_after = served + rng.random_range(5..(remaining / 2).max(6));
        let mut child = world.spawn(
            &args,
            &[
                ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ],
        );
        while world.stats().requests < kill_after {
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("seed {seed}: the backfill ended ({status}) before it could be killed");
            }
            std::thread::yield_now();
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        eprintln!("seed {seed}: round {round} killed after {kill_after} requests");
    }
    let done = done_hours(&world);
    let requests_before = world.requests_by_call();
    let out = world.voxlake(&args);
    assert_eq!(out.code, 0, "seed {seed}: {}", out.stderr);

    // Exact rows, no duplicate.
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids()),
        "seed {seed}"
    );
    let duplicates = duckdb_i64(&format!(
        "SELECT count(*) FROM (SELECT call_sid, timestamp, edge, direction, count(*) AS n FROM {} GROUP BY ALL HAVING n > 1)",
        world.table("insights_metrics")
    ));
    assert_eq!(duplicates, 0, "seed {seed}");
    // No call of an hour recorded done was fetched again.
    let requests_after = world.requests_by_call();
    let model = world.sim().model();
    for call in model
        .calls()
        .iter()
        .filter(|c| call_in(&done, c.start_time))
    {
        assert_eq!(
            requests_after.get(&call.sid),
            requests_before.get(&call.sid),
            "seed {seed}: {} refetched",
            call.sid
        );
    }
    // No staging or journal left behind.
    let leftovers: Vec<String> = world
        .files(true)
        .into_iter()
        .filter(|f| f.starts_with("_voxlake/staging") || f.starts_with("_voxlake/journal"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_hour_with_a_failed_call_is_not_done_and_is_fetched_again() {
    let world = World::with_sim(sim_config(10));
    let doomed = world.call_sids()[3].clone();
    world.sim().set_faults(voxlake::simulator::Faults {
        fail_call_sids: vec![doomed.clone()],
        ..Default::default()
    });
    let job = world.job(&PER_CALL_TABLES, "[http]\nmax_attempts = 2");
    let args = [
        "backfill",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
    ];
    let out = world.voxlake(&args);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("FAILED {doomed}")),
        "{}",
        out.stderr
    );
    let start = world
        .sim()
        .model()
        .calls()
        .iter()
        .find(|c| c.sid == doomed)
        .expect("call")
        .start_time;
    assert!(
        !call_in(&done_hours(&world), start),
        "the failed call's hour is marked done"
    );

    world
        .sim()
        .set_faults(voxlake::simulator::Faults::default());
    let before = world.requests_by_call().get(&doomed).copied().unwrap_or(0);
    let out = world.voxlake(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(world.requests_by_call().get(&doomed).copied().unwrap_or(0) > before);
    assert!(call_in(&done_hours(&world), start));
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids())
    );
}
