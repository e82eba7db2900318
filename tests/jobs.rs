//! The reference job files parse and check (with credentials present).

use std::path::Path;

use voxlake::job::JobPlan;

#[test]
fn the_reference_job_files_are_valid() {
    let env = |name: &str| match name {
        "TWILIO_ACCOUNT_SID" => Some("AC00000000000000000000000000000000".to_string()),
        "TWILIO_AUTH_TOKEN" | "TELNYX_API_KEY" => Some("x".to_string()),
        _ => None,
    };
    for job in ["demo", "nightly", "backfill"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("jobs/{job}.toml"));
        let plan = JobPlan::load(&path, None, &env).unwrap_or_else(|e| panic!("{job}: {e}"));
        assert_eq!(plan.name, job);
    }
}
