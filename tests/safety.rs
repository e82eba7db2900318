//! Issue 9: runs that exited 0 yet lost or doubled data, each reproduced as the issue wrote it.

use crate::util::*;

/// 9.8: a literal `1e400` failed its call on every retry, and an integer beyond 64 bits lost
/// digits in `_extra`. Now the rows land and `_extra` keeps both as the API wrote them.
#[test]
fn numbers_beyond_a_float_or_64_bits_land_in_extra_as_sent() {
    let mut config = sim_config(6);
    config.odd_numbers = true;
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let job = world.job(&["insights_metrics"], "[http]\nmax_attempts = 2");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        landed(&world, &["insights_metrics"]),
        expected_metrics(&world, &sids)
    );
    let table = world.table("insights_metrics");
    let big = duckdb_i64(&format!(
        "SELECT count(*) FROM {table} WHERE _extra LIKE '%\"odd_counter\":99999999999999999999999%'"
    ));
    assert_eq!(big, sids.len() as i64, "one first sample per call");
    let model = world.sim().model();
    let sdk_calls = model
        .calls()
        .iter()
        .filter(|c| c.default_edge() == "sdk_edge")
        .count() as i64;
    assert!(sdk_calls > 0);
    let huge_mos = duckdb_i64(&format!(
        "SELECT count(*) FROM {table} WHERE _extra LIKE '%\"mos\":{{\"value\":1e400}}%' \
         AND sdk_edge__interval__mos IS NULL"
    ));
    assert_eq!(huge_mos, sdk_calls);
    assert!(
        out.stderr
            .contains("sdk_edge.interval.mos.value (out of range for Float64)"),
        "{}",
        out.stderr
    );
}

/// Expected rows of `insights_metrics` alone.
fn expected_metrics(world: &World, sids: &[String]) -> Expected {
    let all = expected(world, sids);
    Expected {
        rows: all
            .rows
            .into_iter()
            .filter(|(t, _)| t == "insights_metrics")
            .collect(),
        by_day: all
            .by_day
            .into_iter()
            .filter(|((t, _), _)| t == "insights_metrics")
            .collect(),
    }
}

const TELNYX_NOW: &str = "2024-05-02T00:00:00Z";

fn telnyx_world(faults: voxlake::simulator::Faults) -> World {
    let mut config = sim_config(1);
    config.telnyx_calls = 1;
    config.now = Some(t(TELNYX_NOW));
    config.faults = faults;
    World::with_sim(config)
}

fn telnyx_window(world: &World, extra: &str) -> Outcome {
    let job = world.job(&["telnyx_call_events"], extra);
    world.voxlake(&[
        "--now",
        TELNYX_NOW,
        "run",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01T00:00:00Z",
        "--to",
        "2024-05-02T00:00:00Z",
    ])
}

/// Rows landed and distinct events among them.
fn telnyx_rows(world: &World) -> (i64, i64) {
    if world.files(false).is_empty() {
        return (0, 0);
    }
    let rows = duckdb(&format!(
        "SELECT count(*), count(DISTINCT id) FROM {}",
        world.table("telnyx_call_events")
    ));
    (
        rows[0][0].as_i64().expect("rows"),
        rows[0][1].as_i64().expect("distinct"),
    )
}

/// 9.5: a server that ignored `page[number]` and claimed 50 pages landed 150 rows for 3
/// events; one echoing the page number with the same events, likewise; a listing that never
/// ends paged forever. Now each stops with an error naming why, exit 1, nothing twice.
#[test]
fn a_telnyx_server_that_does_not_page_is_caught() {
    use voxlake::simulator::Faults;
    let stuck = telnyx_world(Faults {
        telnyx_stuck_total_pages: Some(50),
        ..Faults::default()
    });
    let events = stuck.sim().model().telnyx_events().len();
    assert!(events >= 2, "{events}");
    let out = telnyx_window(&stuck, "[telnyx]\npage_size = 1");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Telnyx answered page 1 when page 2 was asked for"),
        "{}",
        out.stderr
    );
    let (rows, distinct) = telnyx_rows(&stuck);
    assert_eq!(rows, distinct);
    assert!(stuck.stats().requests <= 3, "{:?}", stuck.stats());

    let repeating = telnyx_world(Faults {
        telnyx_repeat_pages: true,
        ..Faults::default()
    });
    let out = telnyx_window(&repeating, "[telnyx]\npage_size = 1");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Telnyx page 2 holds the same events as page 1"),
        "{}",
        out.stderr
    );
    let (rows, distinct) = telnyx_rows(&repeating);
    assert_eq!(rows, distinct);

    // A listing longer than telnyx.max_pages stops there.
    let long = telnyx_world(Faults::default());
    let out = telnyx_window(&long, "[telnyx]\npage_size = 1\nmax_pages = 2");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the listing goes on past 2 pages (telnyx.max_pages)"),
        "{}",
        out.stderr
    );
    assert_eq!(long.stats().requests, 2, "{:?}", long.stats());
}

/// 9.6: a next link to another call's list on the same host was followed (call B landed
/// twice). Now a next link must keep the first request's path: A fails, B lands once.
#[test]
fn a_next_link_to_another_calls_list_fails_the_call() {
    let world = World::with_sim(sim_config(2));
    let sids = world.call_sids();
    let (a, b) = (&sids[0], &sids[1]);
    world.sim().set_faults(voxlake::simulator::Faults {
        next_page_to_call: Some(b.clone()),
        ..Default::default()
    });
    let job = world.job(&PER_CALL_TABLES, "[twilio]\npage_size = 1");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("FAILED {a}")),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&format!("FAILED {b}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("refusing to mix another resource's rows in"),
        "{}",
        out.stderr
    );
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, std::slice::from_ref(b))
    );
}

/// 9.4: a backfill of hours still to come committed them empty and marked them done, so the
/// same command later, with data there, fetched nothing. Now a window wholly in the future is
/// exit 2 before any request, and an hour is done only if it had ended `lag` before it was
/// fetched: later hours are fetched but stay pending.
#[test]
fn future_hours_are_fetched_but_never_marked_done() {
    let world = World::with_sim(sim_config(24));
    let job = world.job(&PER_CALL_TABLES, "lag = \"15m\"");
    let job = job.to_str().expect("path");
    let backfill = |now: &str| {
        world.voxlake(&[
            "--now",
            now,
            "backfill",
            job,
            "--from",
            "2024-05-01",
            "--to",
            "2024-05-02",
        ])
    };

    let out = backfill("2024-04-30T12:00:00Z");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("there is nothing to fetch yet"),
        "{}",
        out.stderr
    );
    let out = world.voxlake(&["run", job, "--from", "2030-01-01", "--to", "2030-01-02"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = world.voxlake(&["run", job, "--from", "9999-01-01", "--to", "9999-01-02"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(world.stats().requests, 0);

    // Midday: the morning is done; the afternoon is fetched (the API has it) but pending.
    let out = backfill("2024-05-01T12:00:00Z");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = world.voxlake(&["--now", "2024-05-01T12:00:00Z", "status", job]);
    assert!(
        status
            .stdout
            .contains("done: 2024-05-01T00:00:00+00:00 .. 2024-05-01T11:00:00+00:00"),
        "{}",
        status.stdout
    );
    let all = world.call_sids();
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &all));
    let before = world.requests_by_call();

    // The next day the same command fetches only the pending hours, and they are done.
    let out = backfill("2024-05-02T01:00:00Z");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = world.voxlake(&["--now", "2024-05-02T01:00:00Z", "status", job]);
    assert!(
        status
            .stdout
            .contains("done: 2024-05-01T00:00:00+00:00 .. 2024-05-02T00:00:00+00:00"),
        "{}",
        status.stdout
    );
    let after = world.requests_by_call();
    let morning = world.calls_between(t("2024-05-01T00:00:00Z"), t("2024-05-01T11:00:00Z"));
    let afternoon = world.calls_between(t("2024-05-01T11:00:00Z"), t("2024-05-02T00:00:00Z"));
    assert!(!morning.is_empty() && !afternoon.is_empty());
    for sid in &morning {
        assert_eq!(after.get(sid), before.get(sid), "{sid} fetched again");
    }
    for sid in &afternoon {
        assert!(after.get(sid) > before.get(sid), "{sid} not fetched again");
    }
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &all));
}

/// 9.9: a year-9999 window was sent to the API; `file://localhost/…` landed under
/// `./localhost/…`; S3 without credentials or with plain http said only what object_store
/// said. Now each is exit 2 before any request, with a message saying what to do.
#[test]
fn clear_errors_for_far_windows_file_urls_and_s3_setup() {
    let world = World::with_sim(sim_config(2));
    let job = world.job(
        &PER_CALL_TABLES,
        "[http]\ntimeout_secs = 3\nmax_attempts = 1",
    );
    let job = job.to_str().expect("path");
    let out = world.voxlake(&["run", job, "--from", "9999-01-01", "--to", "9999-01-02"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("after now"), "{}", out.stderr);
    let out = world.voxlake(&["run", job, "--from", "1999-01-01", "--to", "1999-01-02"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("check the year"), "{}", out.stderr);
    assert_eq!(world.stats().requests, 0);

    // RFC 8089: file://localhost/abs is /abs on this machine.
    let target = world.dir.path().join("by-url");
    let url = format!("file://localhost{}", target.display());
    let sid = world.call_sids()[0].clone();
    let out = world.voxlake(&["run", job, "--output", &url, "--call-sid", &sid]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(target.join("insights_metrics").is_dir());
    assert!(!world.dir.path().join("localhost").exists());
    let out = world.voxlake(&[
        "run",
        job,
        "--output",
        "file://elsewhere/tmp/x",
        "--call-sid",
        &sid,
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not this machine"), "{}", out.stderr);

    let s3_env = |extra: &[(&'static str, &'static str)]| {
        let mut vars = vec![
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_REGION", "us-east-1"),
        ];
        vars.extend_from_slice(extra);
        vars
    };
    let requests = world.stats().requests;
    let args = ["run", job, "--output", "s3://lake/x", "--call-sid", &sid];
    let out = world.voxlake_env(
        &args,
        &s3_env(&[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("plain http needs AWS_ALLOW_HTTP=true"),
        "{}",
        out.stderr
    );
    let out = world.voxlake_env(&args, &s3_env(&[("AWS_ALLOW_HTTP", "true")]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no AWS credentials found (set AWS_ACCESS_KEY_ID"),
        "{}",
        out.stderr
    );
    assert_eq!(world.stats().requests, requests);
}
