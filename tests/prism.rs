//! Issue 11: against Prism (Stoplight's mock server) serving Twilio's own OpenAPI specs
//! (`tests/openapi/`, copies of `shared/openapi/`), one call, one conference and its participants land with the
//! specs' example values. Prism comes from npm (tests/run.sh installs it; this test installs
//! it itself when it is missing); the test is skipped, saying so, only when npm cannot be
//! reached.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::util::*;

const PRISM_VERSION: &str = "@stoplight/prism-cli@5.16.0";
const ACCOUNT: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const CALL: &str = "CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const CONFERENCE: &str = "CFaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn openapi(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/openapi")
        .join(name)
}

/// The Prism binary: `VOXLAKE_PRISM`, or installed from npm under `target/`; None when npm
/// cannot install it (no registry).
fn prism() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("VOXLAKE_PRISM")
        && Path::new(&path).is_file()
    {
        return Some(PathBuf::from(path));
    }
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/prism");
    let binary = prefix.join("node_modules/.bin/prism");
    if binary.is_file() {
        return Some(binary);
    }
    let installed = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .arg(PRISM_VERSION)
        .status()
        .is_ok_and(|s| s.success());
    (installed && binary.is_file()).then_some(binary)
}

/// A Prism mock of one spec on a free loopback port; stopped when dropped.
struct Mock {
    child: Child,
    url: String,
}

impl Mock {
    fn start(prism: &Path, spec: &Path) -> Mock {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut child = Command::new(prism)
            .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prism");
        // Ready once it says so (it validates the whole spec first).
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.any(|line| line.is_ok_and(|l| l.contains("Prism is listening")));
        assert!(ready, "prism did not start for {}", spec.display());
        // Keep reading its log so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Mock {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example body of a spec's GET operation.
fn example(spec: &Value, path: &str) -> Value {
    let examples =
        &spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["examples"];
    examples
        .as_object()
        .and_then(|o| o.values().next())
        .map(|e| e["value"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn the_specs_example_call_conference_and_participants_land() {
    let Some(prism) = prism() else {
        eprintln!(
            "SKIPPED prism::the_specs_example_call_conference_and_participants_land: npm could \
             not install {PRISM_VERSION} (no registry reachable)"
        );
        return;
    };
    let rest = Mock::start(&prism, &openapi("twilio_api_v2010.json"));
    let insights = Mock::start(&prism, &openapi("twilio_insights_v1.json"));
    let world = World::new();
    let job = world.write_file(
        "prism.toml",
        &format!(
            "name = \"prism\"\noutput = {:?}\n\
             tables = [\"calls\", \"conference_summaries\", \"conference_participants\"]\n\
             [twilio]\ninsights_url = \"{}\"\napi_url = \"{}\"\n[http]\nmax_attempts = 2\n",
            world.lake().display().to_string(),
            insights.url,
            rest.url
        ),
    );
    let out = world.voxlake_env(
        &[
            "run",
            job.to_str().expect("path"),
            "--call-sid",
            CALL,
            "--conference-sid",
            CONFERENCE,
        ],
        &[
            ("TWILIO_ACCOUNT_SID", ACCOUNT),
            ("TWILIO_AUTH_TOKEN", "prism-token"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    let rest_spec: Value =
        serde_json::from_slice(&std::fs::read(openapi("twilio_api_v2010.json")).expect("spec"))
            .expect("json");
    let insights_spec: Value =
        serde_json::from_slice(&std::fs::read(openapi("twilio_insights_v1.json")).expect("spec"))
            .expect("json");
    let call = example(
        &rest_spec,
        "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json",
    );
    let row = duckdb(&format!(
        "SELECT sid, price, duration, direction, status, \
         strftime(start_time AT TIME ZONE 'UTC', '%a, %d %b %Y %H:%M:%S +0000'), \
         json_extract_string(subresource_uris, '$.events') FROM {}",
        world.table("calls")
    ));
    assert_eq!(row.len(), 1, "{row:?}");
    assert_eq!(row[0][0], call["sid"]);
    assert_eq!(
        row[0][1].as_f64(),
        call["price"].as_str().and_then(|p| p.parse().ok())
    );
    assert_eq!(
        row[0][2].as_i64(),
        call["duration"].as_str().and_then(|d| d.parse().ok())
    );
    assert_eq!(row[0][3], call["direction"]);
    assert_eq!(row[0][4], call["status"]);
    assert_eq!(row[0][5], call["start_time"]);
    assert_eq!(row[0][6], call["subresource_uris"]["events"]);

    let conference = example(&insights_spec, "/v1/Conferences/{ConferenceSid}");
    let row = duckdb(&format!(
        "SELECT conference_sid, friendly_name, duration_seconds, mixer_region, processing_state, \
         tags, strftime(start_time AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') FROM {}",
        world.table("conference_summaries")
    ));
    assert_eq!(row.len(), 1, "{row:?}");
    assert_eq!(row[0][0], conference["conference_sid"]);
    assert_eq!(row[0][1], conference["friendly_name"]);
    assert_eq!(row[0][2], conference["duration_seconds"]);
    assert_eq!(row[0][3], conference["mixer_region"]);
    assert_eq!(row[0][4], conference["processing_state"]);
    let tags: Value = serde_json::from_str(row[0][5].as_str().expect("tags")).expect("json");
    assert_eq!(tags, conference["tags"]);
    assert_eq!(row[0][6], conference["start_time"]);

    let participants = example(
        &insights_spec,
        "/v1/Conferences/{ConferenceSid}/Participants",
    );
    let listed = participants["participants"]
        .as_array()
        .expect("participants");
    let rows = duckdb(&format!(
        "SELECT participant_sid, call_sid, call_type, metrics__outbound__jitter__avg, \
         metrics__inbound__mos, properties__enter_muted FROM {} ORDER BY participant_sid",
        world.table("conference_participants")
    ));
    assert_eq!(rows.len(), listed.len(), "{rows:?}");
    let mut expected: Vec<&Value> = listed.iter().collect();
    expected.sort_by_key(|p| p["participant_sid"].as_str().unwrap_or("").to_string());
    for (row, p) in rows.iter().zip(expected) {
        assert_eq!(row[0], p["participant_sid"]);
        assert_eq!(row[1], p["call_sid"]);
        assert_eq!(row[2], p["call_type"]);
        assert_eq!(
            row[3].as_f64(),
            p["metrics"]["outbound"]["jitter"]["avg"].as_f64()
        );
        assert_eq!(row[4].as_f64(), p["metrics"]["inbound"]["mos"].as_f64());
        assert_eq!(row[5], p["properties"]["enter_muted"]);
    }
}
