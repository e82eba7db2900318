//! Issue 14 (requests): what a run asks the APIs for, counted by route in the simulator and
//! reported per table in the run manifest.

use serde_json::Value;

use crate::util::*;

const FROM: &str = "2024-05-01T00:00:00Z";
const TO: &str = "2024-05-04T00:00:00Z";

/// The last run's manifest.
fn manifest(world: &World) -> Value {
    let runs = world.lake().join("_voxlake/runs");
    let mut files: Vec<_> = std::fs::read_dir(&runs)
        .expect("runs")
        .flatten()
        .map(|e| e.path())
        .collect();
    // The newest by modification time (run ids of one second sort by their random part).
    files.sort_by_key(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
    let last = files.last().expect("a manifest");
    serde_json::from_slice(&std::fs::read(last).expect("read")).expect("JSON")
}

fn route(world: &World, name: &str) -> u64 {
    world
        .stats()
        .requests_by_route
        .get(name)
        .copied()
        .unwrap_or(0)
}

/// `voxlake [flags] run JOB --from FROM --to TO`.
fn run_window(world: &World, job: &std::path::Path, flags: &[&str]) -> Outcome {
    let job = job.to_str().expect("path");
    let mut args = flags.to_vec();
    args.extend(["run", job, "--from", FROM, "--to", TO]);
    world.voxlake(&args)
}

#[test]
fn a_window_lists_its_calls_once_and_asks_no_call_resource() {
    let mut config = sim_config(60);
    config.from = t(FROM);
    config.to = t(TO);
    let world = World::with_sim(config);
    let tables = [
        "calls",
        "insights_metrics",
        "insights_events",
        "call_events",
    ];
    let job = world.job(&tables, "");
    let out = run_window(&world, &job, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let calls = world.calls_between(t(FROM), t(TO)).len() as u64;
    assert_eq!(calls, 60);
    // One Calls.json listing per covering day (60 calls fit a page of PageSize=1000), and no
    // call resource at all: the listing has them.
    assert_eq!(route(&world, "calls"), 3);
    assert_eq!(route(&world, "call"), 0);
    // The manifest's requests per table are the simulator's requests per route, exactly.
    let m = manifest(&world);
    for (table, route_name) in [
        ("insights_metrics", "insights_metrics"),
        ("insights_events", "insights_events"),
        ("call_events", "call_events"),
    ] {
        let counts = &m["tables"][table];
        assert_eq!(counts["units"], calls, "{table}");
        assert_eq!(counts["requests"], route(&world, route_name), "{table}");
        let per_call = counts["requests_per_unit"].as_f64().unwrap_or(0.0);
        assert!((per_call - route(&world, route_name) as f64 / calls as f64).abs() < 1e-12);
        assert!(out.stderr.contains(&format!("{table}: ")), "{}", out.stderr);
    }
    assert_eq!(
        m["tables"]["calls"]["requests"], 0,
        "every calls row came from the listing"
    );
    assert_eq!(m["tables"]["calls"]["rows"], calls);
    assert!(out.stderr.contains("requests per call"), "{}", out.stderr);
}

#[test]
fn per_sid_reruns_do_not_ask_for_the_call_resource_again() {
    let world = World::with_sim(sim_config(6));
    let sids = world.call_sids();
    let sids = &sids[..3];
    let job = world.job(&["insights_metrics", "call_events"], "");
    let out = world.run_calls(&job, sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        route(&world, "call"),
        3,
        "one lookup per call, the first time"
    );
    let first = landed(&world, &["insights_metrics", "call_events"]);
    let starts = world.lake().join("_voxlake/call_starts/test.json");
    let kept: Value =
        serde_json::from_slice(&std::fs::read(&starts).expect("call starts kept")).expect("JSON");
    assert_eq!(kept["calls"].as_object().map(|c| c.len()), Some(3));

    let out = world.run_calls(&job, sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(route(&world, "call"), 3, "no second lookup");
    assert_eq!(landed(&world, &["insights_metrics", "call_events"]), first);
    let all = expected(&world, sids);
    for table in ["insights_metrics", "call_events"] {
        assert_eq!(first.rows[table], all.rows[table], "{table}");
    }

    // With the `calls` table the resource is the table's row: one request per call per run,
    // the lookup and the row being the same request.
    let with_calls = world.job_named(
        "withcalls",
        &world.base_url(),
        &["calls", "insights_metrics"],
        "",
    );
    let before = route(&world, "call");
    let out = world.run_calls(&with_calls, sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(route(&world, "call") - before, 3);
    let out = world.run_calls(&with_calls, sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(route(&world, "call") - before, 6);
    assert_eq!(
        manifest(&world)["tables"]["calls"]["requests_per_unit"],
        1.0
    );
}

/// A window's discovery lists a day's calls in one request, far faster than the calls'
/// pages can be fetched: the run takes the next day's calls only as the fetches catch up,
/// so a backfill holds about a day of calls, never the whole window's.
#[test]
fn a_window_lists_the_next_day_only_as_the_fetches_catch_up() {
    let mut config = sim_config(1800);
    config.from = t(FROM);
    config.to = t("2024-05-04T00:00:00Z");
    let world = World::with_sim(config);
    let job = world.job(&["insights_metrics"], "");
    let out = run_window(&world, &job, &["--threads", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let days = ["2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04"]
        .map(|d| t(&format!("{d}T00:00:00Z")));
    let per_day: Vec<usize> = days
        .windows(2)
        .map(|w| world.calls_between(w[0], w[1]).len())
        .collect();
    let busiest_hour = (0..72)
        .map(|h| {
            let from = days[0] + chrono::Duration::hours(h);
            world
                .calls_between(from, from + chrono::Duration::hours(1))
                .len()
        })
        .max()
        .unwrap_or(0);
    assert_eq!(per_day.iter().sum::<usize>(), 1800);
    // Calls taken but not yet asked for, at most: four hours in the work channel, a lane
    // of 32 units (concurrency 4, eight a slot at 2 threads) queued plus the hour that
    // filled it, and 32 in flight.
    let ahead = 4 * busiest_hour + (32 - 1 + busiest_hour) + 32;
    let arrivals = world.stats().arrivals;
    let listings: Vec<usize> = arrivals
        .iter()
        .enumerate()
        .filter(|(_, route)| **route == "calls")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(listings.len(), 3, "one listing a day");
    for day in 1..3 {
        let fetched_before = arrivals[..listings[day]]
            .iter()
            .filter(|route| **route == "insights_metrics")
            .count();
        let earlier_calls: usize = per_day[..day].iter().sum();
        assert!(
            fetched_before + ahead >= earlier_calls,
            "day {}'s listing came after {fetched_before} of the {earlier_calls} earlier \
             calls' pages (at most {ahead} may be ahead)",
            day + 1
        );
    }
    assert_eq!(route(&world, "insights_metrics"), 1800);
}
