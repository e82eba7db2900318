//! Issue 12: `voxlake report`. The figures it embeds (its `--json`) equal DuckDB's over the
//! same Parquet files; the page opens in headless Chromium with no console errors and no
//! request but itself; markup planted in the data (the simulator's drift mode) stays text;
//! empty windows, lakes missing tables and lakes that do not exist are answered plainly.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::util::*;

const FROM: &str = "2024-05-01T00:00:00Z";
const TO: &str = "2024-05-04T00:00:00Z";
const ALL: [&str; 5] = [
    "calls",
    "call_summaries",
    "insights_metrics",
    "insights_events",
    "telnyx_call_events",
];
const PLANTED: &str = "<script>alert(1)</script>";

/// A lake of three days of 120 calls (drift on: the SDK version is [`PLANTED`]) with `tables`
/// at `lake` (Telnyx lists only the last 24 h, so its table holds the last day, run with the
/// clock pinned at the window's end).
fn fill(world: &World, lake: &Path, tables: &[&str], extra: &str) {
    fill_at(world, path(lake), tables, extra, &[]);
}

/// [`fill`] of any output (`s3://…` with the S3 server's `env`; the API credentials are added).
fn fill_at(world: &World, lake: &str, tables: &[&str], extra: &str, env: &[(&str, &str)]) {
    let mut vars = vec![
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TELNYX_API_KEY", TELNYX_KEY),
    ];
    vars.extend_from_slice(env);
    let twilio: Vec<&str> = tables
        .iter()
        .copied()
        .filter(|t| *t != "telnyx_call_events")
        .collect();
    let parts = [
        (twilio, FROM),
        (vec!["telnyx_call_events"], "2024-05-03T00:00:00Z"),
    ];
    for (part, from) in parts
        .iter()
        .filter(|(p, _)| p.iter().all(|t| tables.contains(t)))
    {
        let job = world.job_named("part", &world.base_url(), part, extra);
        let out = world.voxlake_env(
            &[
                "--now",
                TO,
                "run",
                path(&job),
                "--from",
                from,
                "--to",
                TO,
                "--output",
                lake,
            ],
            &vars,
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
}

/// [`fill`] of the world's lake; returns the world and a job of `tables` on that lake.
fn lake_with(tables: &[&str], extra: &str) -> (World, PathBuf) {
    let mut config = sim_config(120);
    config.from = t(FROM);
    config.to = t(TO);
    config.drift = true;
    config.now = Some(t(TO));
    let world = World::with_sim(config);
    let job = world.job(tables, extra);
    fill(&world, &world.lake(), tables, extra);
    (world, job)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `voxlake report` (no API credentials in its environment: it needs none) and returns
/// the outcome, the page and its figures.
fn report(world: &World, job: &Path, args: &[&str]) -> (Outcome, String, Value) {
    report_env(world, job, args, &[])
}

/// [`report`] with these environment variables (an S3 lake's).
fn report_env(
    world: &World,
    job: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Outcome, String, Value) {
    let html = world.dir.path().join("report.html");
    let figures = world.dir.path().join("figures.json");
    let mut all = vec![
        "report",
        path(job),
        "--output-file",
        path(&html),
        "--json",
        path(&figures),
    ];
    all.extend_from_slice(args);
    let out = world.voxlake_env(&all, env);
    if out.code != 0 {
        return (out, String::new(), Value::Null);
    }
    let page = std::fs::read_to_string(&html).expect("report written");
    let figures = std::fs::read(&figures).expect("figures written");
    (
        out,
        page,
        serde_json::from_slice(&figures).expect("figures are JSON"),
    )
}

fn window_args() -> [&'static str; 4] {
    ["--from", FROM, "--to", TO]
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        _ => a == b,
    }
}

/// Equal, floats to 1e-9 (sums of the same samples in another file order differ in the last
/// bits).
fn same_figures(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_figures(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_figures(v, w)))
        }
        _ => close(a, b),
    }
}

fn assert_close_rows(what: &str, ours: &[Vec<Value>], duckdb: &[Vec<Value>]) {
    assert_eq!(
        ours.len(),
        duckdb.len(),
        "{what}: ours {ours:?}\nDuckDB {duckdb:?}"
    );
    for (a, b) in ours.iter().zip(duckdb) {
        assert!(
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(x, y)),
            "{what}: ours {a:?} DuckDB {b:?}"
        );
    }
}

/// `[date, samples, p5?, p50, p95]` of the days with samples.
fn daily_rows(daily: &Value, with_p5: bool) -> Vec<Vec<Value>> {
    let days = daily.as_array().expect("daily");
    days.iter()
        .filter(|d| d["samples"].as_u64() > Some(0))
        .map(|d| {
            let mut row = vec![d["date"].clone(), d["samples"].clone()];
            if with_p5 {
                row.push(d["p5"].clone());
            }
            row.extend([d["p50"].clone(), d["p95"].clone()]);
            row
        })
        .collect()
}

fn in_window(column: &str) -> String {
    format!("{column} >= TIMESTAMPTZ '{FROM}' AND {column} < TIMESTAMPTZ '{TO}'")
}

fn utc_day(column: &str) -> String {
    format!("strftime(timezone('UTC', {column}), '%Y-%m-%d')")
}

#[test]
fn report_figures_equal_duckdbs_over_the_same_files() {
    let (world, job) = lake_with(&ALL, "");
    let (out, page, figures) = report(&world, &job, &window_args());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let [c, s, m, e, x] = ALL.map(|table| world.table(table));

    // Calls per day, from `calls`.
    let calls = duckdb(&format!(
        "SELECT {}, count(*) FROM {c} WHERE {} GROUP BY 1 ORDER BY 1",
        utc_day("start_time"),
        in_window("start_time")
    ));
    let ours: Vec<Vec<Value>> = figures["calls"]["per_day"]
        .as_array()
        .expect("per_day")
        .iter()
        .filter(|d| d["count"].as_u64() > Some(0))
        .map(|d| vec![d["date"].clone(), d["count"].clone()])
        .collect();
    assert_eq!(figures["calls"]["source"], "calls");
    assert_eq!(ours, calls);
    assert!(calls.len() >= 3, "three days of calls: {calls:?}");

    // MOS p5/p50/p95 per day, and one gateway series.
    let quantiles = |column: &str, with_p5: bool| {
        let p5 = if with_p5 {
            format!("quantile_cont({column}, 0.05), ")
        } else {
            String::new()
        };
        duckdb(&format!(
            "SELECT {}, count({column}), {p5}quantile_cont({column}, 0.5), \
             quantile_cont({column}, 0.95) FROM {m} WHERE {column} IS NOT NULL AND {} \
             GROUP BY 1 ORDER BY 1",
            utc_day("timestamp"),
            in_window("timestamp")
        ))
    };
    let mos = quantiles("sdk_edge__interval__mos", true);
    assert_close_rows(
        "MOS per day",
        &daily_rows(&figures["mos"]["daily"], true),
        &mos,
    );
    let carrier_jitter = figures["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|s| s["edge"] == "carrier_edge" && s["metric"] == "jitter")
        .expect("carrier jitter series");
    assert_close_rows(
        "carrier jitter per day",
        &daily_rows(&carrier_jitter["daily"], false),
        &quantiles("carrier_edge__interval__jitter__avg", false),
    );
    let histogram_total: u64 = figures["mos"]["histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .filter_map(|b| b["samples"].as_u64())
        .sum();
    assert_eq!(
        histogram_total as i64,
        duckdb_i64(&format!("SELECT count(sdk_edge__interval__mos) FROM {m}"))
    );

    // Tag shares: every call with metrics has a summary here, so all are Twilio's own tags.
    assert_eq!(
        duckdb_i64(&format!(
            "SELECT count(DISTINCT call_sid) FROM {m} WHERE call_sid NOT IN (SELECT call_sid FROM {s})"
        )),
        0
    );
    let summaries = duckdb_i64(&format!("SELECT count(DISTINCT call_sid) FROM {s}"));
    assert_eq!(figures["tags"]["calls"], json!(summaries));
    assert_eq!(figures["tags"]["from_summaries"], json!(summaries));
    let tagged = duckdb(&format!(
        "SELECT tag, count(DISTINCT call_sid) FROM (SELECT call_sid, \
         unnest(from_json(tags, '[\"VARCHAR\"]')) AS tag FROM {s}) GROUP BY 1 ORDER BY 1"
    ));
    let ours_tagged = nonzero_shares(&figures);
    assert_eq!(ours_tagged, tagged);
    assert!(!tagged.is_empty(), "the simulator tags some calls");
    for share in figures["tags"]["shares"].as_array().expect("shares") {
        let expected = share["calls"].as_f64().unwrap_or(-1.0) / summaries as f64;
        assert!(close(&share["share"], &json!(expected)), "{share}");
    }

    // The 20 calls with the lowest MOS, with their start, duration and error codes.
    let worst = duckdb(&format!(
        "WITH w AS (SELECT call_sid, min(sdk_edge__interval__mos) AS low FROM {m} \
           WHERE sdk_edge__interval__mos IS NOT NULL GROUP BY 1 ORDER BY low, call_sid LIMIT 20), \
         codes AS (SELECT call_sid, list_sort(list_distinct(list(sdk_edge__error__code))) AS codes \
           FROM {e} GROUP BY 1) \
         SELECT w.call_sid, w.low, c.duration, strftime(timezone('UTC', c.start_time), '%Y-%m-%dT%H:%M:%SZ'), \
           coalesce(codes.codes, []) \
         FROM w LEFT JOIN {c} c ON c.sid = w.call_sid LEFT JOIN codes USING (call_sid) \
         ORDER BY w.low, w.call_sid"
    ));
    let ours_worst: Vec<Vec<Value>> = figures["worst_calls"]
        .as_array()
        .expect("worst calls")
        .iter()
        .map(|w| {
            vec![
                w["call_sid"].clone(),
                w["min_mos"].clone(),
                w["duration"].clone(),
                w["start"].clone(),
                w["error_codes"].clone(),
            ]
        })
        .collect();
    assert_eq!(worst.len(), 20);
    assert_close_rows("worst calls", &ours_worst, &worst);
    for row in &worst {
        let sid = row[0].as_str().expect("sid");
        assert!(page.contains(sid), "the page lists {sid}");
    }

    // Calls per country (the SDK's country, else the caller's from the summary).
    let countries = duckdb(&format!(
        "WITH sids AS (SELECT sid AS call_sid FROM {c} UNION SELECT call_sid FROM {s} \
           UNION SELECT call_sid FROM {m} UNION SELECT call_sid FROM {e}), \
         ec AS (SELECT call_sid, min(sdk_edge__metadata__country_code) AS cc FROM {e} GROUP BY 1), \
         sc AS (SELECT call_sid, min(from__country_code) AS cc FROM {s} GROUP BY 1) \
         SELECT coalesce(ec.cc, sc.cc) AS country, count(*) AS n FROM sids \
           LEFT JOIN ec USING (call_sid) LEFT JOIN sc USING (call_sid) \
         WHERE country IS NOT NULL GROUP BY 1 ORDER BY n DESC, country LIMIT 15"
    ));
    let ours_countries: Vec<Vec<Value>> = figures["by_country"]
        .as_array()
        .expect("by country")
        .iter()
        .map(|g| vec![g["key"].clone(), g["calls"].clone()])
        .collect();
    assert_eq!(ours_countries, countries);
    assert!(countries.len() >= 2, "{countries:?}");

    // Insights errors and warnings; Telnyx events by type and name.
    let events = duckdb(&format!(
        "SELECT level, sdk_edge__error__code, name, count(*), count(DISTINCT call_sid) FROM {e} \
         WHERE level IN ('ERROR', 'WARNING') OR sdk_edge__error__code IS NOT NULL \
         GROUP BY ALL ORDER BY 4 DESC, 1, 2, 3"
    ));
    let mut ours_events: Vec<Vec<Value>> = figures["insights_events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|g| {
            vec![
                g["level"].clone(),
                g["code"].clone(),
                g["name"].clone(),
                g["events"].clone(),
                g["calls"].clone(),
            ]
        })
        .collect();
    ours_events.sort_by_key(|r| {
        (
            std::cmp::Reverse(r[3].as_u64()),
            r[0].to_string(),
            r[1].as_i64(),
            r[2].to_string(),
        )
    });
    assert_eq!(ours_events, events);
    let telnyx = duckdb(&format!(
        "SELECT type, name, count(*) FROM {x} GROUP BY ALL ORDER BY 1, 2"
    ));
    let mut ours_telnyx: Vec<Vec<Value>> = figures["telnyx_events"]
        .as_array()
        .expect("telnyx")
        .iter()
        .map(|g| vec![g["type"].clone(), g["name"].clone(), g["events"].clone()])
        .collect();
    ours_telnyx.sort_by_key(|r| (r[0].to_string(), r[1].to_string()));
    assert_eq!(ours_telnyx, telnyx);

    // The header: the rows read are every table's rows of the window.
    for (table, sql_table, time) in [
        ("calls", &c, "start_time"),
        ("insights_metrics", &m, "timestamp"),
        ("telnyx_call_events", &x, "event_timestamp"),
    ] {
        let rows = duckdb_i64(&format!(
            "SELECT count(*) FROM {sql_table} WHERE {}",
            in_window(time)
        ));
        let read = figures["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["table"] == table)
            .expect("table read");
        assert_eq!(read["rows"], json!(rows), "{table}");
    }
    assert!(
        figures["last_commit"].is_string(),
        "{}",
        figures["last_commit"]
    );

    // Without --from/--to: the 7 days up to the last day with data.
    let last_day = duckdb(&format!("SELECT CAST(max(date) AS VARCHAR) FROM {m}"));
    let (out, _, default) = report(&world, &job, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let days = default["window"]["days"].as_array().expect("days");
    assert_eq!(days.len(), 7);
    assert_eq!(days.last(), last_day[0].first());
}

/// `[tag, calls]` of the tags some call carries, by tag.
fn nonzero_shares(figures: &Value) -> Vec<Vec<Value>> {
    let mut rows: Vec<Vec<Value>> = figures["tags"]["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .filter(|s| s["calls"].as_u64() > Some(0))
        .map(|s| vec![s["tag"].clone(), s["calls"].clone()])
        .collect();
    rows.sort_by_key(|r| r[0].to_string());
    rows
}

#[test]
fn a_lake_missing_tables_skips_their_sections_and_computes_tags_from_metrics() {
    let (world, job) = lake_with(&["insights_metrics", "insights_events"], "");
    let (out, page, figures) = report(&world, &job, &window_args());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        figures["telnyx_events"].is_null(),
        "{}",
        figures["telnyx_events"]
    );
    assert_eq!(
        page.matches("table in this lake: section skipped.").count(),
        1,
        "only the Telnyx section is skipped"
    );
    assert!(
        page.contains("No <code>telnyx_call_events</code> table in this lake: section skipped.")
    );
    let present: Vec<(String, bool)> = figures["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap_or_default().to_string(),
                t["present"] == json!(true),
            )
        })
        .collect();
    assert_eq!(
        present,
        [
            ("calls", false),
            ("call_summaries", false),
            ("insights_metrics", true),
            ("insights_events", true),
            ("telnyx_call_events", false)
        ]
        .map(|(t, p)| (t.to_string(), p))
    );
    let [m, e] = ["insights_metrics", "insights_events"].map(|t| world.table(t));

    // Calls per day: distinct call SIDs of the Insights tables, by their first row.
    let calls = duckdb(&format!(
        "SELECT d, count(*) FROM (SELECT call_sid, {} AS d FROM (SELECT call_sid, min(timestamp) AS timestamp \
         FROM (SELECT call_sid, timestamp FROM {m} UNION ALL SELECT call_sid, timestamp FROM {e}) GROUP BY 1)) \
         GROUP BY 1 ORDER BY 1",
        utc_day("timestamp")
    ));
    let ours: Vec<Vec<Value>> = figures["calls"]["per_day"]
        .as_array()
        .expect("per_day")
        .iter()
        .filter(|d| d["count"].as_u64() > Some(0))
        .map(|d| vec![d["date"].clone(), d["count"].clone()])
        .collect();
    assert_eq!(figures["calls"]["source"], "insights");
    assert_eq!(ours, calls);

    // Tags computed from metrics with the documented thresholds.
    let per_call = "SELECT call_sid, avg(sdk_edge__interval__mos) AS mos, avg(sdk_edge__interval__rtt) AS rtt, \
        avg(sdk_edge__interval__jitter) AS j0, max(sdk_edge__interval__jitter) AS x0, \
        avg(sdk_edge__interval__packets_loss_percentage) AS l0, \
        avg(carrier_edge__interval__jitter__avg) AS j1, max(carrier_edge__interval__jitter__max) AS x1, \
        avg(carrier_edge__interval__packets_loss_percentage) AS l1, \
        avg(sip_edge__interval__jitter__avg) AS j2, max(sip_edge__interval__jitter__max) AS x2, \
        avg(sip_edge__interval__packets_loss_percentage) AS l2, \
        avg(client_edge__interval__jitter__avg) AS j3, max(client_edge__interval__jitter__max) AS x3, \
        avg(client_edge__interval__packets_loss_percentage) AS l3 FROM TABLE GROUP BY 1"
        .replace("TABLE", &m);
    let tags = duckdb(&format!(
        "WITH per AS ({per_call}) SELECT count(*), \
         count(*) FILTER (WHERE mos < 3.5), count(*) FILTER (WHERE rtt > 400), \
         count(*) FILTER (WHERE (j0 > 5 AND x0 > 30) OR (j1 > 5 AND x1 > 30) OR (j2 > 5 AND x2 > 30) OR (j3 > 5 AND x3 > 30)), \
         count(*) FILTER (WHERE l0 > 5 OR l1 > 5 OR l2 > 5 OR l3 > 5) FROM per"
    ));
    let share = |tag: &str| {
        figures["tags"]["shares"]
            .as_array()
            .expect("shares")
            .iter()
            .find(|s| s["tag"] == tag)
            .map(|s| s["calls"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        vec![
            figures["tags"]["calls"].clone(),
            share("low_mos"),
            share("high_latency"),
            share("high_jitter"),
            share("high_packet_loss")
        ],
        tags[0]
    );
    assert_eq!(figures["tags"]["computed"], figures["tags"]["calls"]);
    let flagged: i64 = tags[0][1..].iter().filter_map(Value::as_i64).sum();
    assert!(flagged > 0, "some calls are tagged: {tags:?}");

    // A stricter MOS threshold tags more calls, as DuckDB counts them.
    let (out, _, strict) = report(
        &world,
        &job,
        &["--from", FROM, "--to", TO, "--threshold", "low_mos=4.2"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let low = duckdb_i64(&format!(
        "WITH per AS ({per_call}) SELECT count(*) FILTER (WHERE mos < 4.2) FROM per"
    ));
    let strict_low = strict["tags"]["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .find(|s| s["tag"] == "low_mos")
        .map(|s| s["calls"].clone());
    assert_eq!(strict_low, Some(json!(low)));
    assert!(
        low > tags[0][1].as_i64().unwrap_or(0),
        "4.2 tags more than 3.5"
    );
}

#[test]
fn empty_windows_and_lakes_that_do_not_exist_are_answered_plainly() {
    let (world, job) = lake_with(&["insights_metrics"], "");

    // A window without data: exit 0 and a report that says so.
    let (out, page, figures) = report(
        &world,
        &job,
        &["--from", "2020-01-01", "--to", "2020-01-08"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(figures["rows_read"], json!(0));
    assert_eq!(figures["mos"]["samples"], json!(0));
    assert!(page.contains("No data in this window"), "{page}");

    // A lake that does not exist: exit 2, and nothing is created.
    let nowhere = world.dir.path().join("nowhere");
    let (out, _, _) = report(&world, &job, &["--output", path(&nowhere)]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no lake at") && out.stderr.contains("does not exist"),
        "{}",
        out.stderr
    );
    assert!(!nowhere.exists());

    // A folder that holds no lake: exit 2.
    let empty = world.dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let (out, _, _) = report(&world, &job, &["--output", path(&empty)]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("holds no voxlake tables"),
        "{}",
        out.stderr
    );

    // Bad flags: exit 2 before anything is read.
    for args in [
        vec!["--threshold", "low_mos"],
        vec!["--threshold", "loudness=3"],
        vec!["--from", "2024-05-02", "--to", "2024-05-01"],
        vec!["--threads", "0"],
        vec!["--threads", "many"],
    ] {
        let (out, _, _) = report(&world, &job, &args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
    }
}

#[test]
fn a_delta_lake_reports_the_same_figures_as_a_parquet_lake() {
    let (world, job) = lake_with(&ALL, "");
    let delta_lake = world.dir.path().join("delta-lake");
    let delta_job = world.job_named("delta", &world.base_url(), &ALL, "format = \"delta\"");
    fill(&world, &delta_lake, &ALL, "format = \"delta\"");
    let (out, _, parquet) = report(&world, &job, &window_args());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut args = window_args().to_vec();
    args.extend(["--output", path(&delta_lake)]);
    let (out, _, delta) = report(&world, &delta_job, &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for key in [
        "rows_read",
        "calls",
        "mos",
        "metrics",
        "tags",
        "worst_calls",
        "by_country",
        "by_platform",
        "by_sdk_version",
        "insights_events",
        "telnyx_events",
    ] {
        assert!(
            same_figures(&parquet[key], &delta[key]),
            "{key}: {}\n{}",
            parquet[key],
            delta[key]
        );
    }
    assert!(parquet["rows_read"].as_u64() > Some(1000));
}

/// The browser check's tools: node with playwright-core, and Chromium (tests/run.sh installs
/// both and sets `VOXLAKE_REQUIRE_BROWSER`, so CI fails rather than skips without them).
fn browser() -> Option<(String, String)> {
    let modules = std::env::var("VOXLAKE_PLAYWRIGHT").ok();
    let chromium = std::env::var("VOXLAKE_CHROMIUM").ok().or_else(|| {
        Path::new("/usr/bin/chromium")
            .exists()
            .then(|| "/usr/bin/chromium".to_string())
    });
    match (modules, chromium) {
        (Some(m), Some(c)) => Some((m, c)),
        _ if std::env::var("VOXLAKE_REQUIRE_BROWSER").is_ok() => {
            panic!("VOXLAKE_PLAYWRIGHT or chromium missing, and tests/run.sh asked for them")
        }
        _ => {
            eprintln!(
                "no playwright-core/chromium (tests/run.sh installs them): browser check skipped"
            );
            None
        }
    }
}

#[test]
fn the_report_opens_offline_in_chromium_and_planted_markup_stays_text() {
    let (world, job) = lake_with(&ALL, "");
    let (out, page, figures) = report(&world, &job, &window_args());
    assert_eq!(out.code, 0, "{}", out.stderr);

    // The planted SDK version is in the figures as it is in the data, and escaped in the page.
    let versions: Vec<&str> = figures["by_sdk_version"]
        .as_array()
        .expect("by sdk version")
        .iter()
        .filter_map(|g| g["key"].as_str())
        .collect();
    assert!(
        versions.iter().any(|v| v.ends_with(PLANTED)),
        "{versions:?}"
    );
    assert!(!page.contains("<script"), "no script element at all");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        page.contains("default-src 'none'"),
        "the page forbids loading anything"
    );

    let Some((modules, chromium)) = browser() else {
        return;
    };
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshot.png");
    let html = world.dir.path().join("report.html");
    let output = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report_browser.cjs"))
        .arg(&html)
        .arg(&shot)
        .env("NODE_PATH", &modules)
        .env("VOXLAKE_CHROMIUM", &chromium)
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("browser JSON");
    assert_eq!(seen["console"], json!([]), "console errors: {seen}");
    assert_eq!(seen["errors"], json!([]), "page errors");
    assert_eq!(seen["dialogs"], json!([]), "no alert ran");
    assert_eq!(
        seen["requests"],
        json!([seen["url"]]),
        "no request but the page itself"
    );
    assert_eq!(seen["scripts"], json!(0));
    let text = seen["text"].as_str().expect("text");
    assert!(text.contains(PLANTED), "the planted markup shows as text");
    assert!(text.contains("The 20 calls with the lowest MOS"));
    assert!(
        seen["svgs"].as_u64() > Some(10),
        "charts drawn: {}",
        seen["svgs"]
    );
    let png = std::fs::read(&shot).expect("screenshot saved");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

#[test]
fn an_s3_lake_reports_what_the_same_local_lake_reports() {
    let s3 = crate::s3::S3Server::start();
    let (world, job) = lake_with(&ALL, "");
    let aws: Vec<(&str, &str)> = s3
        .env(crate::s3::SECRET)
        .into_iter()
        .filter(|(name, _)| name.starts_with("AWS_"))
        .collect();
    fill_at(&world, "s3://lake/voice", &ALL, "", &aws);
    let (out, _, local) = report(&world, &job, &window_args());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut args = window_args().to_vec();
    args.extend(["--output", "s3://lake/voice"]);
    let (out, _, remote) = report_env(&world, &job, &args, &aws);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(remote["lake"], "s3://lake/voice");
    for key in [
        "rows_read",
        "tables",
        "calls",
        "mos",
        "metrics",
        "tags",
        "worst_calls",
        "by_country",
        "insights_events",
        "telnyx_events",
    ] {
        assert!(
            same_figures(&local[key], &remote[key]),
            "{key}: {}\n{}",
            local[key],
            remote[key]
        );
    }
    assert!(!out.stderr.contains(crate::s3::SECRET) && !out.stdout.contains(crate::s3::SECRET));

    // A prefix that holds nothing is no lake.
    let (out, _, _) = report_env(&world, &job, &["--output", "s3://lake/nothing-here"], &aws);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("holds no voxlake tables"),
        "{}",
        out.stderr
    );
}
