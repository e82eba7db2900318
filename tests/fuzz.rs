//! Issue 5: bounded fuzzing (proptest) of everything that reads outside input — pages, single
//! records, error bodies, Retry-After, job files, times, ids, outputs. No panic, no hang.

use proptest::prelude::*;
use serde_json::{Map, Value};
use voxlake::flatten::{Flattener, Lineage, RecordContext};
use voxlake::job::{JobConfig, JobPlan, Output};
use voxlake::schema::{Schemas, Table};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, nested a few levels, with keys that sometimes hit schema paths.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("sdk_edge".to_string()),
        Just("interval".to_string()),
        Just("mos".to_string()),
        Just("value".to_string()),
        Just("timestamp".to_string()),
        Just("call_sid".to_string()),
        Just("metadata".to_string()),
        Just("request".to_string()),
        Just("parameters".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        Just(Value::String("2024-05-01T00:00:00Z".into())),
        Just(Value::String("Tue, 11 Aug 2020 17:44:08 +0000".into())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn lineage() -> Lineage {
    Lineage {
        ingested_at_micros: 0,
        run_id: "fuzz".into(),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pages_of_any_records_never_panic_and_keep_row_counts(records in prop::collection::vec(json_value(), 0..8), table_index in 0usize..5) {
        let table = Table::ALL[table_index];
        let schema = Schemas::builtin().expect("schemas").get(table);
        let mut page = Map::new();
        page.insert(schema.records_key.clone(), Value::Array(records.clone()));
        page.insert("meta".into(), Value::Object(Map::new()));
        let body = serde_json::to_vec(&Value::Object(page)).expect("json");
        let mut flattener = Flattener::new(schema);
        let ctx = RecordContext { call_sid: Some("CA00000000000000000000000000000001"), account_sid: None };
        match flattener.push_page(&body, &ctx) {
            // Every record that is an object becomes a row.
            Ok(outcome) => prop_assert_eq!(outcome.rows, records.len()),
            // A record that is not an object makes the page malformed, and nothing is kept.
            Err(_) => prop_assert!(records.iter().any(|r| !r.is_object())),
        }
        let batch = flattener.finish(&lineage()).expect("finish");
        let rows = batch.map_or(0, |b| b.num_rows());
        prop_assert!(rows == records.len() || rows == 0);
    }

    #[test]
    fn arbitrary_bytes_as_a_page_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        for table in Table::ALL {
            let schema = Schemas::builtin().expect("schemas").get(table);
            let mut flattener = Flattener::new(schema);
            let _ = flattener.push_page(&body, &RecordContext::default());
            let _ = flattener.push_record(&body, &RecordContext::default());
            let _ = flattener.finish(&lineage());
        }
        let _ = voxlake::http::client::describe_error_body(&body);
    }

    #[test]
    fn texts_never_panic(text in ".{0,64}") {
        let _ = voxlake::http::retry::parse_retry_after(&text);
        let _ = voxlake::timefmt::parse_cli_time(&text);
        let _ = voxlake::timefmt::parse_api_timestamp(&text);
        let _ = voxlake::timefmt::parse_duration(&text);
        let _ = voxlake::hours::HourSlice::parse(&text);
        let _ = voxlake::sink::layout::day_of_path(&text);
        let _ = text.parse::<voxlake::ids::CallSid>();
        let _ = text.parse::<voxlake::ids::TelnyxId>();
        let _ = Output::parse(&text);
    }

    #[test]
    fn job_files_never_panic(text in job_text()) {
        let env = |name: &str| (name == "TWILIO_ACCOUNT_SID").then(|| "AC00000000000000000000000000000000".to_string());
        if let Ok(config) = toml::from_str::<JobConfig>(&text) {
            let _ = JobPlan::from_config(config, None, &env);
        }
    }
}

/// Job files: the real keys with arbitrary values, and arbitrary lines.
fn job_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("name"),
        Just("output"),
        Just("tables"),
        Just("start"),
        Just("lag"),
        Just("slice"),
        Just("edges"),
        Just("discovery"),
        Just("[twilio]\nrequests_per_second"),
        Just("[twilio]\napi_url"),
        Just("[http]\ntimeout_secs"),
        Just("[parquet]\nzstd_level"),
        Just("[telnyx]\npage_size"),
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| if f.is_finite() {
            format!("{f:?}")
        } else {
            "0.0".into()
        }),
        "\"[ -~]{0,20}\"",
        Just("[\"insights_metrics\", \"nope\"]".to_string()),
        Just("\"https://u:p@api.twilio.com\"".to_string()),
        Just("\"http://127.0.0.1:1\"".to_string()),
        "[ -~]{0,20}",
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|lines| {
        let mut text =
            String::from("name = \"n\"\noutput = \"o\"\ntables = [\"insights_metrics\"]\n");
        for (key, value) in lines {
            text.push_str(&format!("{key} = {value}\n"));
        }
        text
    })
}
