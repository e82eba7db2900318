//! Issue 2: faults and rate limits; the data stays exact.

use voxlake::simulator::Faults;

use crate::util::*;

#[test]
fn thirty_percent_429_and_500_still_lands_exact_data() {
    let mut config = sim_config(6);
    config.faults = Faults {
        error_429_ratio: 0.15,
        error_5xx_ratio: 0.15,
        retry_after: Some("0".into()),
        ..Faults::default()
    };
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let job = world.job(&PER_CALL_TABLES, "[http]\nmax_attempts = 12");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(world.stats().injected_faults > 5, "{:?}", world.stats());
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &sids));
}

#[test]
fn a_call_failing_past_the_retry_limit_fails_alone() {
    let world_config = sim_config(6);
    let mut world = World::with_sim(world_config.clone());
    let sids = world.call_sids();
    let doomed = sids[2].clone();
    world
        .runtime
        .block_on(world.sim.take().expect("sim").shutdown());
    let mut config = world_config;
    config.faults.fail_call_sids = vec![doomed.clone()];
    let sim = world
        .runtime
        .block_on(voxlake::simulator::start(config, 0))
        .expect("simulator");
    world.sim = Some(sim);

    let job = world.job(&PER_CALL_TABLES, "[http]\nmax_attempts = 3");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("FAILED {doomed}")),
        "{}",
        out.stderr
    );
    let others: Vec<String> = sids.iter().filter(|s| **s != doomed).cloned().collect();
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &others));
    for table in PER_CALL_TABLES {
        let rows = duckdb_i64(&format!(
            "SELECT count(*) FROM {} WHERE call_sid = '{doomed}'",
            world.table(table)
        ));
        assert_eq!(rows, 0, "{table}");
    }
    // The run manifest names it too.
    let runs = world
        .files(true)
        .into_iter()
        .filter(|f| f.starts_with("_voxlake/runs/"))
        .collect::<Vec<_>>();
    assert_eq!(runs.len(), 1);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.lake().join(&runs[0])).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["outcome"], "failed_calls");
    assert_eq!(manifest["failed_calls"][0]["id"], doomed.as_str());
    assert_eq!(manifest["failed_calls"][0]["kind"], "call");
}

#[test]
fn a_job_at_the_servers_rate_gets_no_429() {
    let mut config = sim_config(5);
    config.rate_limit_per_sec = Some(20);
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let job = world.write_file(
        "rate.toml",
        &format!(
            "name = \"rate\"\noutput = {:?}\ntables = [\"insights_events\", \"insights_metrics\", \"call_events\"]\n\
             [twilio]\ninsights_url = \"{base}\"\napi_url = \"{base}\"\nrequests_per_second = 20\nconcurrency = 8\npage_size = 5\n",
            world.lake().display().to_string(),
            base = world.base_url()
        ),
    );
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = world.stats();
    assert!(stats.requests > 40, "{stats:?}");
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert!(out.stderr.contains(" 0 throttled"), "{}", out.stderr);
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &sids));
}

#[test]
fn a_next_page_on_another_host_stops_the_run() {
    let mut config = sim_config(2);
    config.faults.foreign_next_page = true;
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let job = world.job(&PER_CALL_TABLES, "[twilio]\npage_size = 5");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("evil.invalid"), "{}", out.stderr);
    assert!(
        out.stderr.contains("credentials are only sent there"),
        "{}",
        out.stderr
    );
    // Nothing landed: the run stopped before committing.
    assert!(world.files(false).is_empty(), "{:?}", world.files(false));
}

#[test]
fn a_next_link_seen_twice_fails_its_call_instead_of_looping() {
    let mut config = sim_config(2);
    config.faults.looping_next_page = true;
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let job = world.job(&["insights_metrics"], "");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("was already fetched; stopping instead of looping"),
        "{}",
        out.stderr
    );
    for sid in &sids {
        assert!(
            out.stderr.contains(&format!("FAILED {sid}")),
            "{}",
            out.stderr
        );
    }
    assert!(world.stats().requests < 20, "{:?}", world.stats());
}
