//! Issue 5: the fault matrix. Every fault ends with exact data (or a clear, named failure where
//! no data can be right), and the next run completes.

use std::process::Command;

use voxlake::simulator::Faults;

use crate::proxy::{Mutation, Proxy};
use crate::util::*;

fn exact_after(faults: Faults, extra: &str) -> (World, Outcome) {
    let mut config = sim_config(5);
    config.faults = faults;
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let job = world.job(&PER_CALL_TABLES, extra);
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &sids));
    assert!(
        world.stats().injected_faults > 0,
        "no fault was injected: {:?}",
        world.stats()
    );
    (world, out)
}

#[test]
fn a_429_storm_without_retry_after() {
    exact_after(
        Faults {
            error_429_ratio: 0.5,
            ..Faults::default()
        },
        "[http]\nmax_attempts = 20",
    );
}

#[test]
fn a_429_storm_with_retry_after_as_an_http_date() {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    exact_after(
        Faults {
            error_429_ratio: 0.4,
            retry_after: Some(date),
            ..Faults::default()
        },
        "[http]\nmax_attempts = 20",
    );
}

#[test]
fn server_errors_500_502_503_504() {
    let (world, _) = exact_after(
        Faults {
            error_5xx_ratio: 0.5,
            ..Faults::default()
        },
        "[http]\nmax_attempts = 20",
    );
    let by_status = world.stats().by_status;
    for status in [500, 502, 503, 504] {
        assert!(
            by_status.get(&status).copied().unwrap_or(0) > 0,
            "{status}: {by_status:?}"
        );
    }
}

#[test]
fn connections_reset_mid_body() {
    exact_after(
        Faults {
            drop_ratio: 0.3,
            ..Faults::default()
        },
        "[http]\nmax_attempts = 20",
    );
}

#[test]
fn a_server_that_never_answers_times_out() {
    exact_after(
        Faults {
            hang_ratio: 0.1,
            ..Faults::default()
        },
        "[http]\nmax_attempts = 20\ntimeout_secs = 1",
    );
}

#[test]
fn truncated_json_bodies() {
    exact_after(
        Faults {
            malformed_ratio: 0.3,
            ..Faults::default()
        },
        "[http]\nmax_attempts = 20",
    );
}

fn through_proxy(mutation: Mutation, times: usize, extra: &str) -> (World, Proxy, Outcome) {
    let world = World::with_sim(sim_config(4));
    let proxy = Proxy::start(
        &world.runtime,
        &world.base_url(),
        "/Metrics",
        mutation,
        times,
    );
    let sids = world.call_sids();
    let job = world.job_via(&proxy.base_url, &PER_CALL_TABLES, extra);
    let out = world.run_calls(&job, &sids);
    (world, proxy, out)
}

#[test]
fn http_200_with_an_error_object_is_retried() {
    let (world, proxy, out) = through_proxy(Mutation::ErrorObject, 3, "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(proxy.mutated(), 3);
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids())
    );
}

#[test]
fn http_200_that_is_not_json_is_retried() {
    let (world, proxy, out) = through_proxy(Mutation::Html, 3, "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(proxy.mutated(), 3);
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids())
    );
}

#[test]
fn a_wrong_content_type_on_a_json_body_is_read() {
    let (world, proxy, out) = through_proxy(Mutation::WrongContentType, 4, "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(proxy.mutated(), 4);
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids())
    );
}

#[test]
fn an_error_object_that_persists_fails_the_call_with_the_api_error() {
    let (_world, _proxy, out) =
        through_proxy(Mutation::ErrorObject, 1000, "[http]\nmax_attempts = 2");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the body is an error: Twilio error 20500"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_page_far_larger_than_normal_is_a_clear_error() {
    let (world, proxy, out) = through_proxy(
        Mutation::Huge(3 * 1024 * 1024),
        1,
        "[http]\nmax_page_mb = 1",
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(proxy.mutated(), 1);
    assert!(
        out.stderr.contains("body larger than 1048576 bytes"),
        "{}",
        out.stderr
    );
    // The other calls landed; the one whose page was too large did not.
    let failed = out
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("FAILED"))
        .count();
    assert_eq!(failed, 1, "{}", out.stderr);
    assert_eq!(world.landed_calls("insights_metrics").len(), 3);
}

#[test]
fn redirects_are_not_followed() {
    // A second server that must never be asked anything.
    let world = World::with_sim(sim_config(2));
    let elsewhere = Proxy::start(
        &world.runtime,
        &world.base_url(),
        "never",
        Mutation::Html,
        0,
    );
    let target = format!(
        "{}/steal",
        elsewhere.base_url.replace("127.0.0.1", "localhost")
    );
    let proxy = Proxy::start(
        &world.runtime,
        &world.base_url(),
        "/Metrics",
        Mutation::Redirect(target),
        1000,
    );
    let sids = world.call_sids();
    let job = world.job_via(&proxy.base_url, &["insights_metrics"], "");
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 302"), "{}", out.stderr);
    assert_eq!(elsewhere.mutated(), 0);
}

#[test]
fn the_client_lowers_its_rate_when_429s_keep_coming() {
    let mut config = sim_config(12);
    config.rate_limit_per_sec = Some(4);
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let job = world.job(
        &PER_CALL_TABLES,
        "[twilio]\nrequests_per_second = 40\nconcurrency = 4\n[http]\nmax_attempts = 30",
    );
    let out = world.run_calls(&job, &sids);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(landed(&world, &PER_CALL_TABLES), expected(&world, &sids));
    let lowered = out.stderr.matches("lowering the request rate").count();
    assert!(lowered >= 1, "{}", out.stderr);
    let stats = world.stats();
    assert!(stats.rate_limited < stats.requests / 2, "{stats:?}");
}

fn interrupt(signal: &str, code: i32) {
    let mut config = sim_config(30);
    config.faults.slow_ratio = 1.0;
    config.faults.slow_ms = 30;
    let world = World::with_sim(config);
    let job = world.job(&PER_CALL_TABLES, "[twilio]\nconcurrency = 2");
    let args = [
        "backfill",
        job.to_str().expect("path"),
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
    ];
    let child = world.spawn(
        &args,
        &[
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ],
    );
    while world.stats().requests < 20 {
        std::thread::yield_now();
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains("the same command resumes"), "{stderr}");
    let runs: Vec<String> = world
        .files(true)
        .into_iter()
        .filter(|f| f.starts_with("_voxlake/runs/"))
        .collect();
    assert_eq!(runs.len(), 1);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.lake().join(&runs[0])).expect("read"))
            .expect("json");
    assert_eq!(manifest["outcome"], "interrupted");
    // Resumes and ends exact.
    world.sim().set_faults(Faults::default());
    let out = world.voxlake(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        landed(&world, &PER_CALL_TABLES),
        expected(&world, &world.call_sids())
    );
}

#[test]
fn sigint_stops_with_130_and_the_next_run_resumes() {
    interrupt("-INT", 130);
}

#[test]
fn sigterm_stops_with_143_and_the_next_run_resumes() {
    interrupt("-TERM", 143);
}
