//! Issue 11: the rest of the Twilio voice data model — `calls`, Conference Insights, and
//! subaccounts — against the simulator, exact figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use voxlake::simulator::{SimConfig, SubaccountSpec};

use crate::util::*;

/// The UTC time of an API text (RFC 2822 or RFC 3339).
fn time_of(value: &Value) -> Option<DateTime<Utc>> {
    let text = value.as_str()?;
    DateTime::parse_from_rfc2822(text)
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn window(world: &World, job: &std::path::Path) -> Outcome {
    world.voxlake(&[
        "run",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
    ])
}

#[test]
fn calls_of_a_window_land_whole_typed_and_without_a_request_per_call() {
    let world = World::with_sim(sim_config(14));
    let job = world.job(&["calls", "insights_metrics"], "");
    let out = window(&world, &job);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let model = world.sim().model();
    let resources: Vec<Value> = world
        .call_sids()
        .iter()
        .map(|sid| model.call_resource(sid).expect("resource"))
        .collect();
    let mut expected_days: BTreeMap<String, i64> = BTreeMap::new();
    for resource in &resources {
        let start = time_of(&resource["start_time"]).expect("start_time");
        *expected_days
            .entry(start.format("%Y-%m-%d").to_string())
            .or_default() += 1;
    }
    let landed: BTreeMap<String, i64> = duckdb(&format!(
        "SELECT CAST(date AS VARCHAR), count(*) FROM {} GROUP BY 1",
        world.table("calls")
    ))
    .into_iter()
    .map(|r| {
        (
            r[0].as_str().expect("day").to_string(),
            r[1].as_i64().expect("n"),
        )
    })
    .collect();
    assert_eq!(landed, expected_days);

    // A call that crosses midnight is in its start day.
    let crossing = resources
        .iter()
        .find(|r| {
            let (start, end) = (time_of(&r["start_time"]), time_of(&r["end_time"]));
            matches!((start, end), (Some(s), Some(e)) if s.date_naive() != e.date_naive())
        })
        .expect("a call crosses midnight");
    let sid = crossing["sid"].as_str().expect("sid");
    let day = duckdb(&format!(
        "SELECT CAST(date AS VARCHAR) FROM {} WHERE sid = '{sid}'",
        world.table("calls")
    ));
    assert_eq!(
        day[0][0].as_str(),
        Some(
            time_of(&crossing["start_time"])
                .expect("start")
                .format("%Y-%m-%d")
                .to_string()
                .as_str()
        )
    );

    // Spot values: price, duration, direction, RFC 2822 start_time as UTC, typed.
    for resource in resources.iter().take(5) {
        let sid = resource["sid"].as_str().expect("sid");
        let row = duckdb(&format!(
            "SELECT price, duration, direction, strftime(start_time AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S'), \
             typeof(price), typeof(duration), typeof(start_time), json_extract_string(subresource_uris, '$.events') \
             FROM {} WHERE sid = '{sid}'",
            world.table("calls")
        ));
        let row = &row[0];
        let price: Option<f64> = resource["price"].as_str().and_then(|p| p.parse().ok());
        assert_eq!(row[0].as_f64(), price, "{sid}");
        let duration: Option<i64> = resource["duration"].as_str().and_then(|d| d.parse().ok());
        assert_eq!(row[1].as_i64(), duration, "{sid}");
        assert_eq!(row[2], resource["direction"], "{sid}");
        let start = time_of(&resource["start_time"]).expect("start");
        assert_eq!(
            row[3].as_str(),
            Some(start.format("%Y-%m-%dT%H:%M:%S").to_string().as_str())
        );
        assert_eq!(row[4].as_str(), Some("DOUBLE"));
        assert_eq!(row[5].as_str(), Some("BIGINT"));
        assert_eq!(row[6].as_str(), Some("TIMESTAMP WITH TIME ZONE"));
        assert_eq!(row[7], resource["subresource_uris"]["events"]);
    }

    // No request per call for the calls table: one listing, then the metrics lists.
    let routes = world.stats().requests_by_route;
    assert_eq!(routes.get("calls").copied(), Some(1), "{routes:?}");
    assert_eq!(routes.get("call").copied(), None, "{routes:?}");
    assert_eq!(
        routes.get("insights_metrics").copied(),
        Some(world.call_sids().len() as u64),
        "{routes:?}"
    );

    // The join analysts make: every metric row has its call.
    let orphans = duckdb_i64(&format!(
        "SELECT count(*) FROM {} m LEFT JOIN {} c ON m.call_sid = c.sid WHERE c.sid IS NULL",
        world.table("insights_metrics"),
        world.table("calls")
    ));
    assert_eq!(orphans, 0);
}

fn conference_config() -> SimConfig {
    let mut config = sim_config(4);
    config.conferences = 8;
    config
}

const CONFERENCE_TABLES: [&str; 2] = ["conference_summaries", "conference_participants"];

/// (conferences, participants) the model has whose conference started in the window.
fn expected_conferences(world: &World) -> (i64, i64, Vec<String>) {
    let (from, to) = (t("2024-05-01T00:00:00Z"), t("2024-05-02T00:00:00Z"));
    let model = world.sim().model();
    let mut participants = 0;
    let mut sids = Vec::new();
    for conference in model.conferences() {
        let anchor = conference.start_time.unwrap_or(conference.create_time);
        if anchor >= from && anchor < to {
            participants += model.conference_participants(&conference.sid).len() as i64;
            sids.push(conference.sid.clone());
        }
    }
    (sids.len() as i64, participants, sorted(sids))
}

#[test]
fn conferences_of_a_window_land_exact_with_typed_participant_quality() {
    let world = World::with_sim(conference_config());
    let job = world.job(&CONFERENCE_TABLES, "[twilio]\npage_size = 2");
    let out = window(&world, &job);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (conferences, participants, sids) = expected_conferences(&world);
    assert!(
        conferences >= 3 && participants > conferences,
        "{conferences} {participants}"
    );
    let summaries = world.table("conference_summaries");
    let people = world.table("conference_participants");
    assert_eq!(
        duckdb_i64(&format!("SELECT count(*) FROM {summaries}")),
        conferences
    );
    assert_eq!(
        duckdb_i64(&format!("SELECT count(*) FROM {people}")),
        participants
    );
    let landed: Vec<String> = duckdb(&format!(
        "SELECT conference_sid FROM {summaries} ORDER BY 1"
    ))
    .into_iter()
    .map(|r| r[0].as_str().expect("sid").to_string())
    .collect();
    assert_eq!(landed, sids);
    let call_types = duckdb(&format!(
        "SELECT DISTINCT call_type FROM {people} ORDER BY 1"
    ));
    assert_eq!(
        call_types,
        vec![
            vec![Value::from("carrier")],
            vec![Value::from("client")],
            vec![Value::from("sip")]
        ]
    );

    // A participant's quality: typed columns with the values served.
    let model = world.sim().model();
    let participant = model.conference_participants(&sids[0]).remove(0);
    let sid = participant["participant_sid"].as_str().expect("sid");
    let row = duckdb(&format!(
        "SELECT metrics__outbound__jitter__avg, metrics__outbound__packet_loss_percentage, \
         metrics__inbound__mos, metrics__inbound__total_packets_received, \
         typeof(metrics__outbound__jitter__avg), typeof(metrics__inbound__total_packets_received), \
         properties__enter_muted, typeof(join_time), CAST(date AS VARCHAR) \
         FROM {people} WHERE participant_sid = '{sid}'"
    ));
    let row = &row[0];
    let metrics = &participant["metrics"];
    assert_eq!(
        row[0].as_f64(),
        metrics["outbound"]["jitter"]["avg"].as_f64()
    );
    assert_eq!(
        row[1].as_f64(),
        metrics["outbound"]["packet_loss_percentage"].as_f64()
    );
    assert_eq!(row[2].as_f64(), metrics["inbound"]["mos"].as_f64());
    assert_eq!(
        row[3].as_i64(),
        metrics["inbound"]["total_packets_received"].as_i64()
    );
    assert_eq!(row[4].as_str(), Some("DOUBLE"));
    assert_eq!(row[5].as_str(), Some("BIGINT"));
    assert_eq!(row[6], participant["properties"]["enter_muted"]);
    assert_eq!(row[7].as_str(), Some("TIMESTAMP WITH TIME ZONE"));
    let joined = time_of(&participant["join_time"]).expect("join_time");
    assert_eq!(
        row[8].as_str(),
        Some(joined.format("%Y-%m-%d").to_string().as_str())
    );

    // Participants join their calls (each participant is a call).
    let call_job = world.job_named("calls-only", &world.base_url(), &["calls"], "");
    assert_eq!(window(&world, &call_job).code, 0);
    let orphans = duckdb_i64(&format!(
        "SELECT count(*) FROM {people} p LEFT JOIN {} c ON p.call_sid = c.sid WHERE c.sid IS NULL",
        world.table("calls")
    ));
    assert_eq!(orphans, 0);

    // --conference-sid, like --call-sid: merged into its hour, nothing doubled.
    let job = job.to_str().expect("path");
    let out = world.voxlake(&["run", job, "--conference-sid", &sids[0]]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        duckdb_i64(&format!("SELECT count(*) FROM {people}")),
        participants
    );
    let out = world.voxlake(&["run", job, "--conference-sid", "CF1234"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("CF followed by 32 hex digits"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_conference_backfill_killed_midway_resumes_exactly() {
    let mut config = conference_config();
    config.conferences = 16;
    config.faults.slow_ratio = 0.5;
    config.faults.slow_ms = 15;
    let world = World::with_sim(config);
    let job = world.job(&CONFERENCE_TABLES, "[twilio]\nconcurrency = 2");
    let args = [
        "backfill",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
    ];
    let mut child = world.spawn(
        &args,
        &[
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ],
    );
    while world
        .stats()
        .requests_by_route
        .get("conference_participants")
        .copied()
        .unwrap_or(0)
        < 5
    {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the backfill ended ({status}) before it could be killed");
        }
        std::thread::yield_now();
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let out = world.voxlake(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (conferences, participants, _) = expected_conferences(&world);
    let people = world.table("conference_participants");
    let counts = duckdb(&format!(
        "SELECT count(*), count(DISTINCT participant_sid) FROM {people}"
    ));
    assert_eq!(counts[0][0].as_i64(), Some(participants));
    assert_eq!(counts[0][1].as_i64(), Some(participants));
    let summaries = duckdb(&format!(
        "SELECT count(*), count(DISTINCT conference_sid) FROM {}",
        world.table("conference_summaries")
    ));
    assert_eq!(summaries[0][0].as_i64(), Some(conferences));
    assert_eq!(summaries[0][1].as_i64(), Some(conferences));
}

fn subaccount(calls: usize, status: &str, refuse_parent: bool) -> SubaccountSpec {
    SubaccountSpec {
        calls,
        status: status.into(),
        refuse_parent,
        ..SubaccountSpec::default()
    }
}

/// Calls of each account in the model.
fn calls_by_account(world: &World) -> BTreeMap<String, Vec<String>> {
    let mut by_account: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for call in world.sim().model().calls() {
        by_account
            .entry(call.account_sid.clone())
            .or_default()
            .push(call.sid.clone());
    }
    by_account
}

#[test]
fn accounts_all_lands_the_active_subaccounts_only() {
    let mut config = sim_config(0);
    config.subaccounts = vec![
        subaccount(5, "active", false),
        subaccount(4, "closed", false),
        subaccount(6, "active", false),
    ];
    let world = World::with_sim(config);
    let job = world.job(
        &["calls", "insights_events", "call_events"],
        "accounts = \"all\"",
    );
    let out = window(&world, &job);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let accounts = world.sim().model().accounts().to_vec();
    let active: Vec<String> = accounts
        .iter()
        .filter(|a| !a.is_parent() && a.status == "active")
        .map(|a| a.sid.clone())
        .collect();
    assert_eq!(active.len(), 2);
    let by_account = calls_by_account(&world);
    for table in ["calls", "insights_events", "call_events"] {
        let sid_column = if table == "calls" { "sid" } else { "call_sid" };
        let landed: BTreeMap<String, Vec<String>> = duckdb(&format!(
            "SELECT account_sid, list(DISTINCT {sid_column} ORDER BY {sid_column}) FROM {} GROUP BY 1",
            world.table(table)
        ))
        .into_iter()
        .map(|r| {
            let sids = r[1]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default();
            (r[0].as_str().expect("account").to_string(), sids)
        })
        .collect();
        let expected: BTreeMap<String, Vec<String>> = active
            .iter()
            .map(|a| {
                (
                    a.clone(),
                    sorted(by_account.get(a).cloned().unwrap_or_default()),
                )
            })
            .collect();
        assert_eq!(landed, expected, "{table}");
    }
    // The accounts' own tokens (Accounts.json returns them) appear nowhere.
    for account in &accounts {
        assert!(!out.stderr.contains(account.auth_token()), "a token leaked");
    }
    let all_files = world.files(true);
    for file in all_files.iter().filter(|f| f.ends_with(".json")) {
        let text = std::fs::read_to_string(world.lake().join(file)).expect("read");
        for account in &accounts {
            assert!(!text.contains(account.auth_token()), "{file} has a token");
        }
    }
}

#[test]
fn a_subaccount_whose_credentials_are_refused_fails_its_own_calls_only() {
    let mut config = sim_config(0);
    config.subaccounts = vec![
        subaccount(5, "active", false),
        subaccount(4, "active", true),
    ];
    let world = World::with_sim(config);
    let model = world.sim().model();
    let subs: Vec<String> = model
        .accounts()
        .iter()
        .filter(|a| !a.is_parent())
        .map(|a| a.sid.clone())
        .collect();
    let (open, refused) = (&subs[0], &subs[1]);
    let job = world.job(
        &["calls", "insights_metrics"],
        &format!("accounts = [\"{open}\", \"{refused}\"]"),
    );
    let out = window(&world, &job);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("FAILED twilio discovery {refused}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("403"), "{}", out.stderr);
    let by_account = calls_by_account(&world);
    let landed = duckdb(&format!(
        "SELECT DISTINCT account_sid FROM {}",
        world.table("insights_metrics")
    ));
    assert_eq!(landed, vec![vec![Value::from(open.as_str())]]);
    assert_eq!(
        world.landed_calls("insights_metrics"),
        sorted(by_account[open].clone())
    );
}

#[test]
fn the_demo_lands_every_twilio_table_and_metrics_join_their_calls() {
    let world = World::new();
    let out = world.voxlake(&["demo", "--output", "demo"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let demo = world.dir.path().join("demo");
    let read = |table: &str| {
        format!(
            "read_parquet('{}/{table}/**/*.parquet', hive_partitioning = true)",
            demo.display()
        )
    };
    for table in [
        "calls",
        "insights_events",
        "insights_metrics",
        "call_events",
        "call_summaries",
        "conference_summaries",
        "conference_participants",
    ] {
        assert!(
            duckdb_i64(&format!("SELECT count(*) FROM {}", read(table))) > 0,
            "{table}"
        );
        assert!(out.stdout.contains(table), "{}", out.stdout);
    }
    let join = duckdb(&format!(
        "SELECT count(*), count(c.sid) FROM {} m LEFT JOIN {} c ON m.call_sid = c.sid",
        read("insights_metrics"),
        read("calls")
    ));
    assert!(join[0][0].as_i64() > Some(0));
    assert_eq!(join[0][0], join[0][1], "every metric row has its call");
    // The demo also writes the call-quality report of its lake and says where.
    let report = demo.join("report.html");
    let page = std::fs::read_to_string(&report).expect("the demo writes report.html");
    assert!(
        page.contains("Call quality report") && page.contains("The 20 calls with the lowest MOS")
    );
    assert!(
        out.stdout.contains(&format!("→ {}", report.display()))
            || out.stdout.contains("report.html"),
        "{}",
        out.stdout
    );
}
