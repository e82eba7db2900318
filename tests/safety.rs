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
            .contains("Telnyx page 2 holds the same records as page 1"),
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

fn calls_at(starts: &[&str]) -> voxlake::simulator::SimConfig {
    let mut config = sim_config(0);
    config.extra_calls = starts
        .iter()
        .map(|start| voxlake::simulator::CallSpec {
            start_time: t(start),
            duration_secs: 120,
            call_type: voxlake::simulator::CallType::Carrier,
        })
        .collect();
    config
}

fn credentials() -> [(&'static str, &'static str); 2] {
    [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
    ]
}

/// Waits (without sleeping) until the simulator has seen a request about `sid`.
fn until_requested(world: &World, sid: &str, child: &mut std::process::Child) {
    while world.requests_by_call().get(sid).copied().unwrap_or(0) == 0 {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the run ended ({status}) before it asked for {sid}");
        }
        std::thread::yield_now();
    }
}

fn finish(child: std::process::Child) -> (i32, String) {
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// 9.1: two `--call-sid` runs into the same hour at once both exited 0 and each table kept
/// only one of the calls. Now the second run finds the job's lock held and says by whom (exit
/// 1, nothing written), or with `--wait` queues behind it: both calls land whole.
#[test]
fn two_call_sid_runs_into_one_hour_at_once_keep_both_calls() {
    let mut config = calls_at(&["2024-05-01T10:05:00Z", "2024-05-01T10:40:00Z"]);
    config.faults.slow_ratio = 1.0;
    config.faults.slow_ms = 30;
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let (a, b) = (&sids[0], &sids[1]);
    let job = world.job(&PER_CALL_TABLES, "[twilio]\nrequests_per_second = 3");
    let job = job.to_str().expect("path");

    let mut first = world.spawn(&["run", job, "--call-sid", a], &credentials());
    until_requested(&world, a, &mut first);
    let refused = world.voxlake(&["run", job, "--call-sid", b]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("job-test is held by run ")
            && refused.stderr.contains(" since ")
            && refused.stderr.contains("pass --wait to queue behind it"),
        "{}",
        refused.stderr
    );
    assert_eq!(world.requests_by_call().get(b.as_str()), None);
    let queued = world.spawn(&["run", job, "--call-sid", b, "--wait"], &credentials());
    let (code, stderr) = finish(first);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = finish(queued);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &sids));
    for table in PER_CALL_TABLES {
        assert_eq!(world.landed_calls(table), sorted(sids.clone()), "{table}");
    }
}

/// 9.2: a second run deleted the first run's staging ("Unable to sync data… No such file")
/// and raced its coverage. Now staging and recovery are per job and run, and coverage is
/// written only under the job's lock: a slow full-day backfill of one job and short window
/// runs of another job into the same output all land, each job's coverage whole.
#[test]
fn a_second_run_never_touches_the_first_runs_staging_or_coverage() {
    let mut config = sim_config(30);
    config.to = t("2024-05-03T00:00:00Z");
    config.faults.slow_ratio = 0.5;
    config.faults.slow_ms = 20;
    let world = World::with_sim(config);
    let base = world.base_url();
    let slow = world.job_named("slow", &base, &PER_CALL_TABLES, "[twilio]\nconcurrency = 2");
    let quick = world.job_named("quick", &base, &PER_CALL_TABLES, "");
    let day = ["--from", "2024-05-01", "--to", "2024-05-02"];
    let mut args = vec!["backfill", slow.to_str().expect("path")];
    args.extend(day);
    let mut backfill = world.spawn(&args, &credentials());
    let first_call = world.calls_between(t("2024-05-01T00:00:00Z"), t("2024-05-02T00:00:00Z"));
    until_requested(&world, &first_call[0], &mut backfill);
    let quick = quick.to_str().expect("path");
    for (from, to) in [
        ("2024-05-02T00:00:00Z", "2024-05-02T06:00:00Z"),
        ("2024-05-02T06:00:00Z", "2024-05-02T12:00:00Z"),
        ("2024-05-01T00:00:00Z", "2024-05-01T03:00:00Z"),
    ] {
        let out = world.voxlake(&["run", quick, "--from", from, "--to", to]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let (code, stderr) = finish(backfill);
    assert_eq!(code, 0, "{stderr}");
    let window = world.calls_between(t("2024-05-01T00:00:00Z"), t("2024-05-02T12:00:00Z"));
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &window));
    let status = world.voxlake(&["status", slow.to_str().expect("path")]);
    assert!(
        status
            .stdout
            .contains("done: 2024-05-01T00:00:00+00:00 .. 2024-05-02T00:00:00+00:00"),
        "{}",
        status.stdout
    );
    let status = world.voxlake(&["status", quick]);
    for range in [
        "done: 2024-05-01T00:00:00+00:00 .. 2024-05-01T03:00:00+00:00",
        "done: 2024-05-02T00:00:00+00:00 .. 2024-05-02T12:00:00+00:00",
    ] {
        assert!(status.stdout.contains(range), "{}", status.stdout);
    }
    let leftovers: Vec<String> = world
        .files(true)
        .into_iter()
        .filter(|f| f.starts_with("_voxlake/staging") || f.starts_with("_voxlake/journal"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// 9.3: two jobs or two accounts sharing one output shared coverage and hour files: job
/// `acct2` backfilled nothing because `acct1` had covered the hours, then its window run
/// deleted every row of `acct1`. Now coverage is per job and account, and an hour's files
/// belong to (account, hour): each account lands all its rows and never touches the other's.
#[test]
fn two_jobs_or_accounts_sharing_an_output_keep_their_own_rows_and_coverage() {
    let world = World::with_sim(sim_config(12));
    let other_account = format!("AC{}", "1".repeat(32));
    let mut second = sim_config(12);
    second.seed = 7;
    second.account_sid = other_account.clone();
    second.auth_token = "other-token".into();
    let sim2 = world.start_sim(second);
    let job1 = world.job_named("acct1", &world.base_url(), &PER_CALL_TABLES, "");
    let job2 = world.job_named("acct2", &sim2.base_url(), &PER_CALL_TABLES, "");
    let env2 = [
        ("TWILIO_ACCOUNT_SID", other_account.as_str()),
        ("TWILIO_AUTH_TOKEN", "other-token"),
    ];
    let day = ["--from", "2024-05-01", "--to", "2024-05-02"];
    let run = |job: &std::path::Path, verb: &str, env: &[(&str, &str)]| {
        let mut args = vec![verb, job.to_str().expect("path")];
        args.extend(day);
        world.voxlake_env(&args, env)
    };
    let out = run(&job1, "backfill", &credentials());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&job2, "backfill", &env2);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(sim2.stats().requests > 12, "{:?}", sim2.stats());
    let out = run(&job2, "run", &env2);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A third job of the first account: its own coverage, the same hour files (no doubles).
    let job3 = world.job_named("acct1-again", &world.base_url(), &PER_CALL_TABLES, "");
    let before = world.stats().requests;
    let out = run(&job3, "backfill", &credentials());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(world.stats().requests > before);

    let sids1 = world.call_sids();
    let sids2: Vec<String> = sim2.model().calls().iter().map(|c| c.sid.clone()).collect();
    let mut expected_rows = expected(&world, &sids1).rows;
    let model2 = sim2.model();
    for sid in &sids2 {
        for (table, n) in [
            ("insights_events", model2.insights_events(sid, None).len()),
            ("insights_metrics", model2.insights_metrics(sid, None).len()),
            ("call_events", model2.call_events(sid).len()),
        ] {
            *expected_rows.entry(table.to_string()).or_default() += n as i64;
        }
    }
    assert_eq!(landed(&world, &PER_CALL_TABLES).rows, expected_rows);
    for (account, sids) in [(ACCOUNT_SID, &sids1), (other_account.as_str(), &sids2)] {
        let landed = duckdb(&format!(
            "SELECT DISTINCT call_sid FROM {} WHERE account_sid = '{account}' ORDER BY 1",
            world.table("insights_metrics")
        ));
        let landed: Vec<String> = landed
            .into_iter()
            .map(|r| r[0].as_str().expect("sid").to_string())
            .collect();
        assert_eq!(landed, sorted(sids.clone()), "{account}");
        let files: Vec<String> = world
            .files(false)
            .into_iter()
            .filter(|f| f.contains(account))
            .collect();
        assert!(!files.is_empty());
    }
    let duplicates = duckdb_i64(&format!(
        "SELECT count(*) FROM (SELECT call_sid, timestamp, edge, direction, count(*) AS n FROM {} GROUP BY ALL HAVING n > 1)",
        world.table("insights_metrics")
    ));
    assert_eq!(duplicates, 0);
}

/// 9.7 (the all-or-nothing half): rows now stream into the hour as pages arrive, so a call
/// that fails after thousands of rows have gone to the hour's files must still land none of
/// them, and keep what it had before.
#[test]
fn a_call_failing_after_its_rows_streamed_lands_none_of_them() {
    let mut config = calls_at(&["2024-05-01T10:05:00Z", "2024-05-01T10:40:00Z"]);
    // A sample every 10 s for 28 h: 10 000 metric rows, ten pages of 1 000.
    config.extra_calls[0].duration_secs = 100_000;
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let (long, short) = (&sids[0], &sids[1]);
    let rows_of_long = world.sim().model().insights_metrics(long, None).len();
    assert!(rows_of_long > 9_500, "{rows_of_long}");
    let job = world.job(&["insights_metrics"], "[http]\nmax_attempts = 2");
    world.sim().set_faults(voxlake::simulator::Faults {
        fail_call_from_page: Some((long.clone(), 9)),
        ..Default::default()
    });
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("FAILED {long}")),
        "{}",
        out.stderr
    );
    assert_eq!(world.landed_calls("insights_metrics"), vec![short.clone()]);
    let table = world.table("insights_metrics");
    assert_eq!(
        duckdb_i64(&format!("SELECT count(*) FROM {table}")),
        world.sim().model().insights_metrics(short, None).len() as i64
    );

    // Landed whole once, then failing midway again: it keeps what it had.
    world
        .sim()
        .set_faults(voxlake::simulator::Faults::default());
    assert_eq!(world.run_calls(&job, &sids).code, 0);
    let whole = landed(&world, &["insights_metrics"]);
    world.sim().set_faults(voxlake::simulator::Faults {
        fail_call_from_page: Some((long.clone(), 9)),
        ..Default::default()
    });
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(landed(&world, &["insights_metrics"]), whole);
    assert_eq!(whole, expected_metrics(&world, &sids));
}

/// 9.9 (the last part): a `coverage/*.json#1` temporary file a killed write left behind stayed
/// forever. The job's next run removes its own.
#[test]
fn temporary_files_a_killed_write_left_are_cleaned_at_the_next_start() {
    let world = World::with_sim(sim_config(2));
    let job = world.job(&PER_CALL_TABLES, "");
    let sids = world.call_sids();
    assert_eq!(world.run_calls(&job, &sids).code, 0);
    let coverage = world
        .lake()
        .join(format!("_voxlake/coverage/test/{ACCOUNT_SID}"));
    std::fs::create_dir_all(&coverage).expect("mkdir");
    let leftovers = [
        coverage.join("insights_metrics.json#1"),
        world.lake().join("_voxlake/jobs/test.json#2"),
        world.lake().join(format!(
            "_voxlake/journal/{ACCOUNT_SID}/2024-05-01T10_twilio_x.json#1"
        )),
    ];
    let others = world.lake().join("_voxlake/jobs/other-job.json#1");
    for file in leftovers.iter().chain([&others]) {
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, b"{").expect("write");
    }
    let out = world.run_calls(&job, &sids[..1]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for file in &leftovers {
        assert!(!file.exists(), "{} left", file.display());
    }
    assert!(
        others.exists(),
        "another job's file is not this run's to remove"
    );
}
