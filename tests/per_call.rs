//! Issue 2: per-call ingestion lands exactly what the simulator served.

use crate::util::*;

fn sum_mos_expected(world: &World, sid: &str) -> f64 {
    world
        .sim()
        .model()
        .insights_metrics(sid, None)
        .iter()
        .filter_map(|m| m["sdk_edge"]["interval"]["mos"]["value"].as_f64())
        .sum()
}

#[test]
fn rows_per_table_and_partition_match_what_was_served() {
    let world = World::with_sim(sim_config(8));
    let sids = world.call_sids();
    let job = world.job(&PER_CALL_TABLES, "");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let expected = expected(&world, &sids);
    assert!(expected.rows.values().all(|n| *n > 0), "{expected:?}");
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected);
    let served = world.stats().rows_served;
    for table in PER_CALL_TABLES {
        assert_eq!(
            served.get(table).copied().unwrap_or(0) as i64,
            expected.rows[table],
            "{table}"
        );
    }
}

#[test]
fn spot_values_match() {
    let world = World::with_sim(sim_config(8));
    let sids = world.call_sids();
    let job = world.job(&PER_CALL_TABLES, "");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let model = world.sim().model();

    // A client call: the sum of its sdk_edge mos.
    let client_call = model
        .calls()
        .iter()
        .find(|c| c.default_edge() == "sdk_edge")
        .expect("a client call among 8");
    let expected_mos = sum_mos_expected(&world, &client_call.sid);
    let landed_mos = duckdb(&format!(
        "SELECT sum(sdk_edge__interval__mos) FROM {} WHERE call_sid = '{}'",
        world.table("insights_metrics"),
        client_call.sid
    ))[0][0]
        .as_f64()
        .expect("mos sum");
    assert!(
        (landed_mos - expected_mos).abs() < 1e-6,
        "{landed_mos} vs {expected_mos}"
    );

    // An sdk event's os name, found by its timestamp and name.
    let event = model
        .insights_events(&client_call.sid, None)
        .into_iter()
        .find(|e| e["sdk_edge"]["metadata"]["sdk"]["os"]["name"].is_string())
        .expect("an sdk event with an os name");
    let os_name = duckdb(&format!(
        "SELECT DISTINCT sdk_edge__metadata__sdk__os__name FROM {} WHERE call_sid = '{}' \
         AND timestamp = '{}'::TIMESTAMPTZ AND name = '{}'",
        world.table("insights_events"),
        client_call.sid,
        event["timestamp"].as_str().expect("ts"),
        event["name"].as_str().expect("name"),
    ));
    assert_eq!(
        os_name,
        vec![vec![
            event["sdk_edge"]["metadata"]["sdk"]["os"]["name"].clone()
        ]]
    );

    // A REST event: response code and its RFC 2822 date_created as a UTC timestamp.
    let sid = &sids[0];
    let rest = model.call_events(sid);
    let first = &rest[0]["response"];
    let created =
        chrono::DateTime::parse_from_rfc2822(first["date_created"].as_str().expect("date"))
            .expect("rfc 2822");
    let rows = duckdb(&format!(
        "SELECT response__response_code, strftime(response__date_created AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S') \
         FROM {} WHERE call_sid = '{sid}' AND response__date_created = '{}'::TIMESTAMPTZ \
         AND request__url = '{}'",
        world.table("call_events"),
        created.to_rfc3339(),
        rest[0]["request"]["url"].as_str().expect("url"),
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0].as_i64(), first["response_code"].as_i64());
    assert_eq!(
        rows[0][1].as_str(),
        Some(
            created
                .with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
                .as_str()
        )
    );
    let type_row = duckdb(&format!(
        "SELECT typeof(response__date_created), typeof(timestamp) FROM {}, {} LIMIT 1",
        world.table("call_events"),
        world.table("insights_metrics")
    ));
    assert_eq!(type_row[0][0].as_str(), Some("TIMESTAMP WITH TIME ZONE"));
    assert_eq!(type_row[0][1].as_str(), Some("TIMESTAMP WITH TIME ZONE"));
}

#[test]
fn calls_larger_than_a_page_land_whole() {
    for page_size in ["1", "7"] {
        let world = World::with_sim(sim_config(3));
        let sids = world.call_sids();
        let job = world.job(
            &PER_CALL_TABLES,
            &format!("[twilio]\npage_size = {page_size}"),
        );
        let out = world.run_calls(&job, &sids);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let expected = expected(&world, &sids);
        assert!(expected.rows["insights_metrics"] > 7);
        assert_eq!(
            landed(&world, &PER_CALL_TABLES),
            expected,
            "PageSize {page_size}"
        );
    }
}

#[test]
fn the_same_command_twice_leaves_the_same_rows_and_files() {
    let world = World::with_sim(sim_config(6));
    let sids = world.call_sids();
    let job = world.job(&PER_CALL_TABLES, "");
    assert_eq!(world.run_calls(&job, &sids).code, 0);
    let files_before = world.files(false);
    let checksum = |world: &World| {
        duckdb(&format!(
            "SELECT count(*), sum(hash(call_sid, timestamp, name, edge)) FROM {}",
            world.table("insights_events")
        ))
    };
    let sums_before = checksum(&world);
    let landed_before = landed(&world, &PER_CALL_TABLES);

    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(world.files(false), files_before);
    assert_eq!(checksum(&world), sums_before);
    assert_eq!(landed(&world, &PER_CALL_TABLES), landed_before);
    assert!(
        files_before.iter().all(|f| f.ends_with(".parquet")),
        "{files_before:?}"
    );
}

#[test]
fn a_per_sid_pull_merges_into_its_slice_without_duplicates() {
    let world = World::with_sim(sim_config(10));
    let sids = world.call_sids();
    let job = world.job(&PER_CALL_TABLES, "");
    assert_eq!(world.run_calls(&job, &sids).code, 0);
    // Pull two calls again on their own: the rest of their slices stays, nothing doubles.
    let out = world.run_calls(&job, &sids[3..5]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &sids));
}

#[test]
fn fields_the_schema_does_not_know_land_in_extra() {
    let mut config = sim_config(3);
    config.drift = true;
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let job = world.job(&PER_CALL_TABLES, "");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expected = expected(&world, &sids);
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected);
    let with_region = duckdb_i64(&format!(
        "SELECT count(*) FROM {} WHERE json_extract_string(_extra, '$.media_region') = 'us1'",
        world.table("insights_metrics")
    ));
    assert_eq!(with_region, expected.rows["insights_metrics"]);
    let with_version = duckdb_i64(&format!(
        "SELECT count(*) FROM {} WHERE json_extract_string(_extra, '$.response.api_version') = '2010-04-01'",
        world.table("call_events")
    ));
    assert_eq!(with_version, expected.rows["call_events"]);
    // Said once per field, not once per row.
    assert_eq!(
        out.stderr.matches("media_region").count(),
        1,
        "{}",
        out.stderr
    );
}
