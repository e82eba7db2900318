//! Issue 3: call summaries, summaries discovery with every edge of the call type, partial
//! summaries replaced when complete.

use crate::util::*;

#[test]
fn summaries_discovery_fetches_every_edge_and_the_summary() {
    let mut config = sim_config(10);
    config.now = Some(t("2024-05-03T00:00:00Z"));
    let world = World::with_sim(config);
    let tables = ["insights_events", "insights_metrics", "call_summaries"];
    let job = world.job(&tables, "discovery = \"summaries\"\nedges = \"all\"");
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
    let calls = world.calls_between(t("2024-05-01T00:00:00Z"), t("2024-05-02T00:00:00Z"));
    let mut metrics = 0i64;
    let mut events = 0i64;
    for call in model.calls().iter().filter(|c| calls.contains(&c.sid)) {
        for edge in call.edges() {
            metrics += model.insights_metrics(&call.sid, Some(edge)).len() as i64;
            events += model.insights_events(&call.sid, Some(edge)).len() as i64;
        }
    }
    assert!(
        metrics > expected(&world, &calls).rows["insights_metrics"],
        "more than the default edges"
    );
    assert_eq!(
        duckdb_i64(&format!(
            "SELECT count(*) FROM {}",
            world.table("insights_metrics")
        )),
        metrics
    );
    assert_eq!(
        duckdb_i64(&format!(
            "SELECT count(*) FROM {}",
            world.table("insights_events")
        )),
        events
    );
    assert_eq!(world.landed_calls("call_summaries"), sorted(calls.clone()));
    assert_eq!(
        duckdb_i64(&format!(
            "SELECT count(*) FROM {}",
            world.table("call_summaries")
        )),
        calls.len() as i64
    );
    // No Calls.json listing was needed.
    assert_eq!(
        world
            .stats()
            .requests_by_route
            .get("calls")
            .copied()
            .unwrap_or(0),
        0
    );
    let types = duckdb_i64(&format!(
        "SELECT count(DISTINCT call_type) FROM {}",
        world.table("call_summaries")
    ));
    assert!(types >= 3);
}

#[test]
fn partial_summaries_are_replaced_when_complete() {
    let mut config = sim_config(8);
    // The simulator's clock stands 10 minutes after the last call ended: its summary is partial.
    let world_probe = World::with_sim(config.clone());
    let last_end = world_probe
        .sim()
        .model()
        .calls()
        .iter()
        .map(|c| c.end_time)
        .max()
        .expect("calls");
    drop(world_probe);
    config.now = Some(last_end + chrono::Duration::minutes(10));
    let world = World::with_sim(config);
    let job = world.job(&["call_summaries"], "");
    let job = job.to_str().expect("path");
    let args = ["run", job, "--from", "2024-05-01", "--to", "2024-05-02"];
    assert_eq!(world.voxlake(&args).code, 0);
    let partial = duckdb_i64(&format!(
        "SELECT count(*) FROM {} WHERE processing_state = 'partial'",
        world.table("call_summaries")
    ));
    assert!(partial >= 1, "the latest call's summary should be partial");

    // Later, the same window again with the clock past every call's 30 minutes.
    let mut later = sim_config(8);
    later.now = Some(last_end + chrono::Duration::hours(2));
    let mut world = world;
    world
        .runtime
        .block_on(world.sim.take().expect("sim").shutdown());
    world.sim = Some(
        world
            .runtime
            .block_on(voxlake::simulator::start(later, 0))
            .expect("sim"),
    );
    let job = world.job(&["call_summaries"], "");
    let out = world.voxlake(&[
        "run",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = duckdb(&format!(
        "SELECT count(*), count(*) FILTER (WHERE processing_state = 'complete') FROM {}",
        world.table("call_summaries")
    ));
    let calls = world
        .calls_between(t("2024-05-01T00:00:00Z"), t("2024-05-02T00:00:00Z"))
        .len() as i64;
    assert_eq!(
        rows,
        vec![vec![serde_json::json!(calls), serde_json::json!(calls)]]
    );
}
