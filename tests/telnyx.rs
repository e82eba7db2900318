//! Issue 3: Telnyx windows, paging, the 24 h look-back.

use crate::util::*;

const NOW: &str = "2024-05-02T00:00:00Z";

fn telnyx_world() -> World {
    let mut config = sim_config(4);
    config.telnyx_calls = 25;
    config.now = Some(t(NOW));
    World::with_sim(config)
}

fn expected_events(world: &World, from: &str, to: &str) -> i64 {
    let (from, to) = (t(from), t(to));
    world
        .sim()
        .model()
        .telnyx_events()
        .iter()
        .filter(|e| {
            let at = t(e["event_timestamp"].as_str().expect("time"));
            at >= from && at < to
        })
        .count() as i64
}

#[test]
fn a_window_lands_exact_event_counts_with_page_size_250_and_1() {
    for page_size in ["250", "1"] {
        let world = telnyx_world();
        let job = world.job(
            &["telnyx_call_events"],
            &format!("[telnyx]\npage_size = {page_size}"),
        );
        let (from, to) = ("2024-05-01T03:30:00Z", "2024-05-01T20:00:00Z");
        let out = world.voxlake(&[
            "--now",
            NOW,
            "run",
            job.to_str().expect("path"),
            "--from",
            from,
            "--to",
            to,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let expected = expected_events(&world, from, to);
        assert!(expected > 20, "{expected}");
        let landed = duckdb_i64(&format!(
            "SELECT count(*) FROM {}",
            world.table("telnyx_call_events")
        ));
        assert_eq!(landed, expected, "page[size] {page_size}");
        let outside = duckdb_i64(&format!(
            "SELECT count(*) FROM {} WHERE event_timestamp < '{from}' OR event_timestamp >= '{to}'",
            world.table("telnyx_call_events")
        ));
        assert_eq!(outside, 0);
        // Again: replaced, not added.
        let out = world.voxlake(&[
            "--now",
            NOW,
            "run",
            job.to_str().expect("path"),
            "--from",
            from,
            "--to",
            to,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let again = duckdb_i64(&format!(
            "SELECT count(*) FROM {}",
            world.table("telnyx_call_events")
        ));
        assert_eq!(again, expected);
    }
}

#[test]
fn an_old_window_without_legs_is_refused_before_any_request() {
    let world = telnyx_world();
    let job = world.job(&["telnyx_call_events"], "");
    let out = world.voxlake(&[
        "--now",
        "2024-05-05T00:00:00Z",
        "run",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("only 24 h back"), "{}", out.stderr);
    assert!(out.stderr.contains("--leg-id"), "{}", out.stderr);
    assert_eq!(world.stats().requests, 0);
    assert!(!world.lake().exists());
}

#[test]
fn an_old_window_with_legs_is_ingested_per_leg() {
    let world = telnyx_world();
    let job = world.job(&["telnyx_call_events"], "");
    let legs: Vec<String> = world
        .sim()
        .model()
        .telnyx_legs()
        .iter()
        .take(3)
        .map(|l| l.call_leg_id.clone())
        .collect();
    let mut args = vec![
        "--now",
        "2024-05-05T00:00:00Z",
        "run",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
    ];
    for leg in &legs {
        args.extend(["--leg-id", leg.as_str()]);
    }
    let out = world.voxlake(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expected = world
        .sim()
        .model()
        .telnyx_events()
        .iter()
        .filter(|e| {
            let at = t(e["event_timestamp"].as_str().expect("time"));
            legs.iter().any(|l| e["call_leg_id"] == l.as_str())
                && at >= t("2024-05-01T00:00:00Z")
                && at < t("2024-05-02T00:00:00Z")
        })
        .count() as i64;
    assert!(expected > 0);
    assert_eq!(
        duckdb_i64(&format!(
            "SELECT count(*) FROM {}",
            world.table("telnyx_call_events")
        )),
        expected
    );
    // The same legs again: replaced, not added.
    assert_eq!(world.voxlake(&args).code, 0);
    assert_eq!(
        duckdb_i64(&format!(
            "SELECT count(*) FROM {}",
            world.table("telnyx_call_events")
        )),
        expected
    );
}
