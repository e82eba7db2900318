//! Issue 2: bad input is exit 2, with a message naming the problem, before any request, and
//! the output untouched.

use crate::util::*;

fn assert_refused(world: &World, out: &Outcome, expected: &str) {
    assert_eq!(out.code, 2, "stdout {}\nstderr {}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(expected),
        "expected {expected:?} in {}",
        out.stderr
    );
    assert_eq!(world.stats().requests, 0, "a request was sent");
    assert!(!world.lake().exists(), "the output was touched");
}

#[test]
fn a_malformed_call_sid() {
    let world = World::with_sim(sim_config(1));
    let job = world.job(&PER_CALL_TABLES, "");
    let out = world.run_calls(&job, &["CA123".to_string()]);
    assert_refused(&world, &out, "call SID \"CA123\" is malformed");
    let traversal = world.run_calls(&job, &["CA../../../../../etc/passwd00000000".to_string()]);
    assert_refused(&world, &traversal, "is malformed");
}

#[test]
fn an_unknown_table() {
    let world = World::with_sim(sim_config(1));
    let job = world.job(&["insights_events", "call_metrics"], "");
    let out = world.run_calls(&job, &world.call_sids());
    assert_refused(&world, &out, "unknown table \"call_metrics\"");
}

#[test]
fn an_unknown_toml_key() {
    let world = World::with_sim(sim_config(1));
    let job = world.job(&PER_CALL_TABLES, "[twilio]\nrequests_per_minute = 5");
    let out = world.run_calls(&job, &world.call_sids());
    assert_refused(&world, &out, "unknown field `requests_per_minute`");
}

#[test]
fn a_missing_credential() {
    let world = World::with_sim(sim_config(1));
    let job = world.job(&PER_CALL_TABLES, "");
    let sid = world.call_sids()[0].clone();
    let args = ["run", job.to_str().expect("path"), "--call-sid", &sid];
    let out = world.voxlake_env(&args, &[("TWILIO_ACCOUNT_SID", ACCOUNT_SID)]);
    assert_refused(&world, &out, "TWILIO_AUTH_TOKEN");
    let out = world.voxlake_env(&args, &[("TWILIO_AUTH_TOKEN", AUTH_TOKEN)]);
    assert_refused(&world, &out, "TWILIO_ACCOUNT_SID");
}

#[test]
fn bad_times_and_flags() {
    let world = World::with_sim(sim_config(1));
    let job = world.job(&PER_CALL_TABLES, "");
    let job = job.to_str().expect("path");
    let out = world.voxlake(&["run", job, "--from", "2024-05-02", "--to", "2024-05-01"]);
    assert_refused(&world, &out, "is not before --to");
    let out = world.voxlake(&["run", job, "--from", "yesterday", "--to", "2024-05-01"]);
    assert_refused(&world, &out, "\"yesterday\" is not a time");
    let out = world.voxlake(&["run", job, "--no-such-flag"]);
    assert_eq!(out.code, 2);
    let out = world.voxlake(&[
        "run",
        "/nonexistent/job.toml",
        "--call-sid",
        &world.call_sids()[0],
    ]);
    assert_refused(&world, &out, "cannot read job file");
}
