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

fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn no_secret_anywhere_for_every_command_at_trace_level() {
    const API_KEY: &str = "SK0123456789abcdef0123456789abcdef";
    const API_SECRET: &str = "apisecret-7d6c5b4a39281706";
    const TELNYX: &str = "KEY-telnyx-5f4e3d2c1b0a9988";
    const AWS: &str = "aws-secret-1a2b3c4d5e6f7a8b";
    let mut config = sim_config(4);
    config.api_key = Some((API_KEY.into(), API_SECRET.into()));
    config.telnyx_key = TELNYX.into();
    config.now = Some(t("2024-05-02T00:00:00Z"));
    config.faults.error_429_ratio = 0.2;
    let world = World::with_sim(config);
    let all = [
        "insights_events",
        "insights_metrics",
        "call_events",
        "call_summaries",
        "telnyx_call_events",
    ];
    let job = world.job(&all, "start = \"2024-05-01\"");
    let job = job.to_str().expect("path");
    let env = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", API_KEY),
        ("TWILIO_API_SECRET", API_SECRET),
        ("TELNYX_API_KEY", TELNYX),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", AWS),
    ];
    let now = "2024-05-02T00:00:00Z";
    let sid = world.call_sids()[0].clone();
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "run",
            job,
            "--from",
            "2024-05-01T00:00:00Z",
            "--to",
            "2024-05-02T00:00:00Z",
        ],
        vec!["run", job, "--call-sid", &sid],
        vec!["run", job],
        vec![
            "backfill",
            job,
            "--from",
            "2024-05-01",
            "--to",
            "2024-05-02",
        ],
        vec!["status", job],
        vec!["schemas"],
    ];
    let mut outputs = Vec::new();
    for command in &commands {
        let mut args = vec!["--log-level", "trace", "--now", now];
        args.extend(command.iter().copied());
        let out = world.voxlake_env(&args, &env);
        assert!(out.code == 0, "{command:?}: {}", out.stderr);
        outputs.push(out);
    }
    // Every crate at trace (hyper, reqwest, rustls, object_store) for one window.
    let mut everything = env.to_vec();
    everything.push(("VOXLAKE_LOG", "trace"));
    let out = world.voxlake_env(
        &[
            "--now",
            now,
            "run",
            job,
            "--from",
            "2024-05-01T00:00:00Z",
            "--to",
            "2024-05-01T06:00:00Z",
        ],
        &everything,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("http1 handshake complete"),
        "dependency trace lines expected"
    );
    outputs.push(out);
    // Refused credentials: the error path must not echo them either.
    let wrong = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", API_KEY),
        ("TWILIO_API_SECRET", "wrong-secret-0099"),
        ("TELNYX_API_KEY", "wrong-telnyx-0099"),
    ];
    let refused = world.voxlake_env(
        &[
            "--log-level",
            "trace",
            "--now",
            now,
            "run",
            job,
            "--call-sid",
            &sid,
        ],
        &wrong,
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    outputs.push(refused);
    let written = all_output_bytes(&world);
    let basic = base64(format!("{API_KEY}:{API_SECRET}").as_bytes());
    for secret in [
        API_SECRET,
        TELNYX,
        AWS,
        "wrong-secret-0099",
        "wrong-telnyx-0099",
        basic.as_str(),
    ] {
        for out in &outputs {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "{secret} printed"
            );
        }
        assert!(!contains(&written, secret), "{secret} in the output files");
    }
    assert!(outputs[0].stderr.contains("TRACE") || outputs[0].stderr.contains("DEBUG"));
}
