//! Issue 3: windows land exactly the calls started in [from, to); re-running replaces.

use voxlake::simulator::{CallSpec, CallType};

use crate::util::*;

fn spec(start: &str) -> CallSpec {
    CallSpec {
        start_time: t(start),
        duration_secs: 120,
        call_type: CallType::Client,
    }
}

#[test]
fn a_window_lands_exactly_the_calls_started_in_it() {
    let mut config = sim_config(12);
    config.extra_calls = vec![
        spec("2024-05-01T05:59:59Z"), // just before from: out
        spec("2024-05-01T06:00:00Z"), // at from: in
        spec("2024-05-01T06:00:01Z"), // a second after from: in
        spec("2024-05-01T09:29:59Z"), // just before to: in
        spec("2024-05-01T09:30:00Z"), // at to: out
    ];
    let world = World::with_sim(config);
    let job = world.job(&PER_CALL_TABLES, "");
    let out = world.voxlake(&[
        "run",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01T06:00:00Z",
        "--to",
        "2024-05-01T09:30:00Z",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let all = world.call_sids();
    let extra = &all[all.len() - 5..];
    let inside = world.calls_between(t("2024-05-01T06:00:00Z"), t("2024-05-01T09:30:00Z"));
    for sid in &extra[1..4] {
        assert!(inside.contains(sid));
    }
    let landed_sids = world.landed_calls("call_events");
    assert_eq!(landed_sids, sorted(inside.clone()));
    assert!(!landed_sids.contains(&extra[0]) && !landed_sids.contains(&extra[4]));
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &inside));
}

#[test]
fn a_call_crossing_midnight_lands_under_both_dates() {
    let world = World::with_sim(sim_config(6));
    let job = world.job(&PER_CALL_TABLES, "");
    let out = world.voxlake(&[
        "run",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let model = world.sim().model();
    let crossing = model
        .calls()
        .iter()
        .find(|c| c.start_time.date_naive() != c.end_time.date_naive())
        .expect("the simulator makes a call cross midnight");
    let rows = duckdb(&format!(
        "SELECT CAST(date AS VARCHAR), count(*) FROM {} WHERE call_sid = '{}' GROUP BY ALL ORDER BY 1",
        world.table("insights_metrics"),
        crossing.sid
    ));
    let of_call = expected(&world, std::slice::from_ref(&crossing.sid));
    let expected_days: Vec<Vec<serde_json::Value>> = of_call
        .by_day
        .iter()
        .filter(|((table, _), _)| table == "insights_metrics")
        .map(|((_, day), n)| vec![serde_json::json!(day), serde_json::json!(n)])
        .collect();
    assert_eq!(rows, expected_days);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids())
    );
}

#[test]
fn re_running_and_overlapping_windows_replace_rows() {
    let world = World::with_sim(sim_config(15));
    let job = world.job(&PER_CALL_TABLES, "");
    let job = job.to_str().expect("path");
    let windows = [
        ("2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"),
        ("2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"),
        ("2024-05-01T05:30:00Z", "2024-05-01T14:45:00Z"),
        ("2024-05-01T10:00:00Z", "2024-05-01T20:00:00Z"),
    ];
    let everything = expected(&world, &world.call_sids());
    for (from, to) in windows {
        let out = world.voxlake(&["run", job, "--from", from, "--to", to]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            landed(&world, &PER_CALL_TABLES),
            everything,
            "after {from}..{to}"
        );
    }
    // And a per-SID pull of a call a window also covered.
    let sid = world.call_sids()[4].clone();
    assert_eq!(world.run_calls(std::path::Path::new(job), &[sid]).code, 0);
    assert_eq!(landed(&world, &PER_CALL_TABLES), everything);
}
