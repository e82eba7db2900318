//! Issue 2: the auth token appears nowhere: stdout, stderr (debug logs), output files.

use crate::util::*;

/// Every byte voxlake wrote under the lake.
fn all_output_bytes(world: &World) -> Vec<u8> {
    let mut bytes = Vec::new();
    for file in world.files(true) {
        bytes.extend(std::fs::read(world.lake().join(file)).expect("read"));
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_token_never_leaks_even_at_debug_level() {
    let mut config = sim_config(3);
    let token = "tok-3f9a8b7c6d5e4f3a2b1c";
    config.auth_token = token.into();
    config.faults.error_5xx_ratio = 0.2;
    let world = World::with_sim(config);
    let sids = world.call_sids();
    let job = world.job(&PER_CALL_TABLES, "");
    let mut args = vec!["--log-level", "trace", "run", job.to_str().expect("path")];
    for sid in &sids {
        args.extend(["--call-sid", sid.as_str()]);
    }
    let out = world.voxlake_env(
        &args,
        &[
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", token),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("retrying"),
        "debug lines expected: {}",
        out.stderr
    );
    // A wrong token: the error path must not echo it either.
    let wrong = "wrong-9c8b7a6f5e4d3c2b1a";
    let refused = world.voxlake_env(
        &args,
        &[
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", wrong),
        ],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    let written = all_output_bytes(&world);
    for secret in [token, wrong] {
        for (name, text) in [
            ("stdout", &out.stdout),
            ("stderr", &out.stderr),
            ("stdout", &refused.stdout),
            ("stderr", &refused.stderr),
        ] {
            assert!(!text.contains(secret), "{secret} in {name}");
        }
        assert!(!contains(&written, secret), "{secret} in the output files");
    }
}
