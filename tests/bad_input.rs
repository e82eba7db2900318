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

#[test]
fn job_file_mistakes_each_get_a_precise_message() {
    let world = World::with_sim(sim_config(1));
    let sid = world.call_sids()[0].clone();
    let cases: [(&str, &str); 10] = [
        (
            "[twilio]\nrequests_per_second = \"fast\"",
            "invalid type: string \"fast\", expected i64",
        ),
        (
            "[twilio]\nrequests_per_second = -5",
            "twilio.requests_per_second = -5: must be from 1 to 10000",
        ),
        (
            "[twilio]\nconcurrency = 0",
            "twilio.concurrency = 0: must be from 1 to 256",
        ),
        (
            "[telnyx]\npage_size = 500",
            "telnyx.page_size = 500: must be from 1 to 250",
        ),
        (
            "[http]\ntimeout_secs = 0",
            "http.timeout_secs = 0: must be more than 0",
        ),
        (
            "[twilio]\ninsights_url = \"https://user:pass@insights.twilio.com\"",
            "credentials do not belong in the URL",
        ),
        (
            "[twilio]\napi_url = \"http://api.twilio.com\"",
            "plain http:// is only allowed to loopback",
        ),
        (
            "output = \"s3://AKIA:secret@bucket/x\"",
            "credentials or ports do not belong in the URL",
        ),
        ("output = \"gs://bucket/x\"", "gs:// is not supported"),
        ("slice = \"90m\"", "whole number of hours"),
    ];
    for (extra, expected) in cases {
        let job = world.job(&PER_CALL_TABLES, extra);
        let out = world.run_calls(&job, std::slice::from_ref(&sid));
        assert_eq!(out.code, 2, "{extra}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "{extra}: expected {expected:?} in {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("pass"),
            "a secret echoed: {}",
            out.stderr
        );
    }
    assert_eq!(world.stats().requests, 0);
    assert!(!world.lake().exists());
}

#[test]
fn long_windows_need_yes_and_nightly_needs_a_start() {
    let world = World::with_sim(sim_config(1));
    let job = world.job(&PER_CALL_TABLES, "");
    let job = job.to_str().expect("path");
    let out = world.voxlake(&["run", job, "--from", "2024-01-01", "--to", "2024-03-01"]);
    assert_refused(&world, &out, "is 60.0 days, longer than 31; pass --yes");
    let out = world.voxlake(&[
        "backfill",
        job,
        "--from",
        "2020-01-01",
        "--to",
        "2024-03-01",
    ]);
    assert_refused(&world, &out, "longer than 366; pass --yes");
    let out = world.voxlake(&["--now", "2024-05-02T00:00:00Z", "run", job]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no watermark yet and no `start`"),
        "{}",
        out.stderr
    );
    assert_eq!(world.stats().requests, 0);
    // With --yes the long window runs.
    let out = world.voxlake(&[
        "run",
        job,
        "--from",
        "2024-04-01",
        "--to",
        "2024-06-01",
        "--yes",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn relative_and_absolute_output_paths() {
    let world = World::with_sim(sim_config(2));
    let sids = world.call_sids();
    // Relative: under the current folder (the test's temp dir).
    let job = world.job(&["call_events"], "output = \"relative/lake\"");
    assert_eq!(world.run_calls(&job, &sids).code, 0);
    assert!(world.dir.path().join("relative/lake/call_events").is_dir());
    // Absolute, and file:// absolute.
    let absolute = world.dir.path().join("absolute");
    let job = world.job(
        &["call_events"],
        &format!("output = {:?}", absolute.display().to_string()),
    );
    assert_eq!(world.run_calls(&job, &sids).code, 0);
    assert!(absolute.join("call_events").is_dir());
    let uri = format!("file://{}", world.dir.path().join("uri").display());
    let job = world.job(&["call_events"], &format!("output = {uri:?}"));
    assert_eq!(world.run_calls(&job, &sids).code, 0);
    assert!(world.dir.path().join("uri/call_events").is_dir());
}
