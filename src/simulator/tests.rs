//! Black-box tests of the simulator over HTTP: paging against the model, auth, filters, the
//! Telnyx rules, the rate limit, every fault kind, determinism and drift; the call resource's
//! every field, Conference Insights, subaccounts and who may see whose records.

use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use super::{CallSpec, CallType, Faults, SimConfig, SimHandle, SubaccountSpec, start};

const ACCOUNT: &str = "AC00000000000000000000000000000000";
const TOKEN: &str = "simulator-token";

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid time")
}

async fn sim(config: SimConfig) -> SimHandle {
    start(config, 0).await.expect("simulator starts")
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// GET with Twilio Basic auth; the status and the body as JSON (Null if not JSON).
async fn twilio(url: &str) -> (StatusCode, Value) {
    let r = client()
        .get(url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// GET with the Telnyx bearer token.
async fn telnyx(url: &str) -> (StatusCode, Value) {
    let r = client()
        .get(url)
        .bearer_auth("simulator-key")
        .send()
        .await
        .expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Follows Insights `meta.next_page_url` from `first`, collecting `key` items.
async fn follow_insights(first: String, key: &str) -> Vec<Value> {
    let mut url = Some(first);
    let mut out = Vec::new();
    let mut pages = 0;
    while let Some(u) = url {
        let (status, body) = twilio(&u).await;
        assert_eq!(status, StatusCode::OK, "{u}: {body}");
        out.extend(body[key].as_array().cloned().unwrap_or_default());
        url = body["meta"]["next_page_url"].as_str().map(String::from);
        pages += 1;
        assert!(pages < 10_000, "paging does not end");
    }
    out
}

/// Follows REST `next_page_uri` (relative) from `first_uri`.
async fn follow_rest(base: &str, first_uri: String, key: &str) -> Vec<Value> {
    let mut uri = Some(first_uri);
    let mut out = Vec::new();
    while let Some(u) = uri {
        let (status, body) = twilio(&format!("{base}{u}")).await;
        assert_eq!(status, StatusCode::OK, "{u}: {body}");
        out.extend(body[key].as_array().cloned().unwrap_or_default());
        uri = body["next_page_uri"].as_str().map(String::from);
    }
    out
}

#[tokio::test]
async fn insights_paging_matches_the_model() {
    let s = sim(SimConfig::default()).await;
    let model = s.model();
    for call in model.calls().iter().take(6) {
        for edge in call.edges() {
            for size in [1, 1000] {
                let base = format!("{}/v1/Voice/{}", s.base_url(), call.sid);
                let events = follow_insights(
                    format!("{base}/Events?Edge={edge}&PageSize={size}"),
                    "events",
                )
                .await;
                assert_eq!(events, model.insights_events(&call.sid, Some(edge)));
                assert!(!events.is_empty());
                let metrics = follow_insights(
                    format!("{base}/Metrics?Edge={edge}&PageSize={size}"),
                    "metrics",
                )
                .await;
                assert_eq!(metrics, model.insights_metrics(&call.sid, Some(edge)));
                assert_eq!(metrics.len() as u64, call_secs(call) / 10);
            }
        }
        let default = follow_insights(
            format!("{}/v1/Voice/{}/Events", s.base_url(), call.sid),
            "events",
        )
        .await;
        assert_eq!(default, model.insights_events(&call.sid, None));
        assert!(default.iter().all(|e| e["edge"] == call.default_edge()));
    }
    s.shutdown().await;
}

fn call_secs(call: &super::SimCall) -> u64 {
    (call.end_time - call.start_time).num_seconds() as u64
}

#[tokio::test]
async fn records_have_the_seed_shapes() {
    let s = sim(SimConfig::default()).await;
    let model = s.model();
    let client_call = model
        .calls()
        .iter()
        .find(|c| c.call_type == CallType::Client)
        .expect("a client call");
    let metric = &model.insights_metrics(&client_call.sid, None)[0];
    for key in ["timestamp", "call_sid", "account_sid", "edge", "direction"] {
        assert!(metric[key].is_string(), "{key}");
    }
    for key in ["carrier_edge", "sip_edge", "client_edge"] {
        assert!(metric[key].is_null(), "{key}");
    }
    assert_eq!(metric["direction"], "both");
    assert!(metric["sdk_edge"]["interval"]["mos"]["value"].is_f64());
    assert!(metric["sdk_edge"]["cumulative"]["bytes_sent"].is_u64());
    assert!(metric.get("media_region").is_none());
    let event = &model.insights_events(&client_call.sid, None)[0];
    assert!(event["sdk_edge"]["metadata"]["sdk"]["os"]["name"].is_string());
    let gateway = &model.insights_metrics(&client_call.sid, Some("client_edge"))[1];
    assert_eq!(gateway["direction"], "outbound");
    assert!(gateway["client_edge"]["interval"]["jitter"]["avg"].is_number());
    assert!(gateway["client_edge"]["metadata"]["edge_location"].is_string());
    assert!(gateway["sdk_edge"].is_null());
    let errors: Vec<Value> = model
        .calls()
        .iter()
        .flat_map(|c| model.insights_events(&c.sid, Some("sdk_edge")))
        .collect();
    assert!(
        errors
            .iter()
            .all(|e| (e["level"] == "ERROR") == e["sdk_edge"]["error"]["code"].is_u64())
    );
    let rest = &model.call_events(&client_call.sid)[0];
    assert!(rest.get("call_sid").is_none());
    let date = rest["response"]["date_created"].as_str().expect("date");
    let parsed = DateTime::parse_from_rfc2822(date).expect("RFC 2822");
    assert!(parsed >= client_call.start_time && parsed <= client_call.end_time);
    let resource = model.call_resource(&client_call.sid).expect("resource");
    assert_eq!(resource["status"], "completed");
    assert!(resource["duration"].is_string());
    assert!(DateTime::parse_from_rfc2822(resource["start_time"].as_str().unwrap_or("")).is_ok());
    let summary = model.summary(&client_call.sid).expect("summary");
    assert_eq!(summary["call_type"], "client");
    assert!(summary["sdk_edge"]["metrics"]["inbound"].is_object());
    assert!(summary["carrier_edge"].is_null());
    assert!(summary["tags"].is_array());
    s.shutdown().await;
}

#[tokio::test]
async fn metrics_direction_filter_splits_gateway_samples() {
    let s = sim(SimConfig::default()).await;
    let model = s.model();
    let call = model
        .calls()
        .iter()
        .find(|c| c.call_type == CallType::Carrier)
        .expect("carrier call");
    let all = model.insights_metrics(&call.sid, None);
    let base = format!("{}/v1/Voice/{}/Metrics", s.base_url(), call.sid);
    let inbound = follow_insights(format!("{base}?Direction=inbound&PageSize=7"), "metrics").await;
    let outbound =
        follow_insights(format!("{base}?Direction=outbound&PageSize=7"), "metrics").await;
    assert_eq!(inbound.len() + outbound.len(), all.len());
    assert!(inbound.iter().all(|m| m["direction"] == "inbound"));
    let expected: Vec<Value> = all
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .cloned()
        .collect();
    assert_eq!(inbound, expected);
    let (status, body) = twilio(&format!("{base}?Direction=sideways")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], 400);
    s.shutdown().await;
}

#[tokio::test]
async fn insights_links_are_absolute_and_keep_filters() {
    let s = sim(SimConfig::default()).await;
    let call = s.model().calls()[2].clone();
    let url = format!(
        "{}/v1/Voice/{}/Metrics?Edge=sdk_edge&Direction=both&PageSize=2",
        s.base_url(),
        call.sid
    );
    let (_, body) = twilio(&url).await;
    let meta = &body["meta"];
    assert_eq!(meta["key"], "metrics");
    assert_eq!(meta["page"], 0);
    assert_eq!(meta["page_size"], 2);
    let prefix = format!("{}/v1/Voice/{}/Metrics?", s.base_url(), call.sid);
    assert_eq!(
        meta["url"],
        format!("{prefix}Direction=both&Edge=sdk_edge&PageSize=2&Page=0")
    );
    assert_eq!(meta["first_page_url"], meta["url"]);
    assert_eq!(
        meta["next_page_url"],
        format!("{prefix}Direction=both&Edge=sdk_edge&PageSize=2&Page=1&PageToken=PT2")
    );
    assert!(meta["previous_page_url"].is_null());
    s.shutdown().await;
}

#[tokio::test]
async fn rest_call_events_page_like_seed_002() {
    let s = sim(SimConfig::default()).await;
    let model = s.model();
    for call in model.calls() {
        let first = format!(
            "/2010-04-01/Accounts/{ACCOUNT}/Calls/{}/Events.json?PageSize=1",
            call.sid
        );
        let events = follow_rest(&s.base_url(), first, "events").await;
        assert_eq!(events, model.call_events(&call.sid));
        assert!((2..=8).contains(&events.len()));
        let big = format!(
            "/2010-04-01/Accounts/{ACCOUNT}/Calls/{}/Events.json?PageSize=1000",
            call.sid
        );
        assert_eq!(follow_rest(&s.base_url(), big, "events").await, events);
    }
    let call = &model.calls()[0];
    let path = format!(
        "/2010-04-01/Accounts/{ACCOUNT}/Calls/{}/Events.json",
        call.sid
    );
    let (_, body) = twilio(&format!(
        "{}{path}?PageSize=1&Page=1&PageToken=PT1",
        s.base_url()
    ))
    .await;
    assert_eq!(body["start"], 1);
    assert_eq!(body["end"], 1);
    assert_eq!(body["page"], 1);
    assert_eq!(
        body["uri"],
        format!("{path}?PageSize=1&Page=1&PageToken=PT1")
    );
    assert_eq!(body["first_page_uri"], format!("{path}?PageSize=1&Page=0"));
    assert_eq!(
        body["previous_page_uri"],
        format!("{path}?PageSize=1&Page=0&PageToken=PT0")
    );
    let (status, body) = twilio(&format!(
        "{}/2010-04-01/Accounts/AC{}/Calls/{}/Events.json",
        s.base_url(),
        "1".repeat(32),
        call.sid
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    s.shutdown().await;
}

#[tokio::test]
async fn calls_list_filters_by_date_newest_first() {
    let may1 = at(2024, 5, 1, 0, 0);
    let config = SimConfig {
        from: may1,
        to: at(2024, 5, 3, 0, 0),
        calls: 30,
        extra_calls: vec![CallSpec {
            start_time: at(2024, 4, 30, 23, 59),
            duration_secs: 90,
            call_type: CallType::Sip,
        }],
        ..SimConfig::default()
    };
    let s = sim(config).await;
    let model = s.model();
    let list = |q: &str| {
        let base = s.base_url();
        let q = q.to_string();
        async move {
            let first = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json?{q}");
            follow_rest(&base, first, "calls").await
        }
    };
    let sids = |calls: &[Value]| -> Vec<String> {
        calls
            .iter()
            .filter_map(|c| c["sid"].as_str().map(String::from))
            .collect()
    };
    let all = list("PageSize=7").await;
    assert_eq!(all.len(), 31);
    let starts: Vec<DateTime<Utc>> = all
        .iter()
        .filter_map(|c| DateTime::parse_from_rfc2822(c["start_time"].as_str()?).ok())
        .map(|t| t.with_timezone(&Utc))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let may2 = at(2024, 5, 2, 0, 0);
    let expect = |pred: &dyn Fn(DateTime<Utc>) -> bool| -> Vec<String> {
        let mut v: Vec<_> = model
            .calls()
            .iter()
            .filter(|c| pred(c.start_time))
            .collect();
        v.sort_by(|a, b| b.start_time.cmp(&a.start_time).then(a.sid.cmp(&b.sid)));
        v.into_iter().map(|c| c.sid.clone()).collect()
    };
    let on_may1 = expect(&|t| t >= may1 && t < may2);
    assert_eq!(sids(&list("StartTime=2024-05-01").await), on_may1);
    assert_eq!(
        sids(&list("StartTime%3E=2024-05-01&StartTime%3C=2024-05-02&PageSize=3").await),
        on_may1
    );
    assert_eq!(
        sids(&list("StartTime>=2024-05-01&StartTime<=2024-05-02").await),
        on_may1
    );
    assert_eq!(
        sids(&list("StartTime%3E=2024-05-02").await),
        expect(&|t| t >= may2)
    );
    assert_eq!(sids(&list("StartTime%3C=2024-05-01").await).len(), 1);
    assert_eq!(
        all[0],
        model
            .call_resource(all[0]["sid"].as_str().unwrap_or(""))
            .unwrap_or_default()
    );
    let (_, page) = twilio(&format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Calls.json?StartTime%3E=2024-05-01&PageSize=2",
        s.base_url()
    ))
    .await;
    assert_eq!(
        page["next_page_uri"],
        format!(
            "/2010-04-01/Accounts/{ACCOUNT}/Calls.json?StartTime%3E=2024-05-01&PageSize=2&Page=1&PageToken=PT2"
        )
    );
    let (status, body) = twilio(&format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Calls.json?StartTime%3E=2024-13-01",
        s.base_url()
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 20001);
    let one = &model.calls()[3];
    let (status, body) = twilio(&format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Calls/{}.json",
        s.base_url(),
        one.sid
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Some(body), model.call_resource(&one.sid));
    let stats = s.stats();
    let listed = 31 + 3 * on_may1.len() + expect(&|t| t >= may2).len() + 1 + 2;
    assert_eq!(stats.rows_served.get("calls"), Some(&(listed as u64)));
    assert_eq!(stats.requests_by_route.get("call"), Some(&1));
    s.shutdown().await;
}

#[tokio::test]
async fn summaries_window_and_processing_state() {
    let config = SimConfig {
        now: Some(at(2024, 5, 1, 12, 0)),
        ..SimConfig::default()
    };
    let s = sim(config).await;
    let model = s.model();
    let url = format!(
        "{}/v1/Voice/Summaries?StartTime=2024-05-01T00:00:00Z&EndTime=2024-05-01T12:00:00Z&PageSize=3",
        s.base_url()
    );
    let got = follow_insights(url, "call_summaries").await;
    let expected: Vec<_> = model
        .calls()
        .iter()
        .filter(|c| c.start_time < at(2024, 5, 1, 12, 0))
        .collect();
    assert_eq!(got.len(), expected.len());
    for summary in &got {
        let sid = summary["call_sid"].as_str().expect("sid");
        assert_eq!(Some(summary.clone()), model.summary(sid));
        let call = expected.iter().find(|c| c.sid == sid).expect("in window");
        let done = call.end_time + Span::minutes(30) <= at(2024, 5, 1, 12, 0);
        assert_eq!(
            summary["processing_state"],
            if done { "complete" } else { "partial" }
        );
    }
    let (status, body) = twilio(&format!(
        "{}/v1/Voice/Summaries?StartTime=2024-05-01T00:00:00Z",
        s.base_url()
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let sid = &model.calls()[0].sid;
    let (status, one) = twilio(&format!("{}/v1/Voice/{sid}/Summary", s.base_url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Some(one), model.summary(sid));
    s.shutdown().await;
}

#[tokio::test]
async fn auth_is_checked_per_api() {
    let config = SimConfig {
        api_key: Some(("SK0123".into(), "key-secret".into())),
        ..SimConfig::default()
    };
    let s = sim(config).await;
    let sid = s.model().calls()[0].sid.clone();
    let url = format!("{}/v1/Voice/{sid}/Events", s.base_url());
    let c = client();
    let none = c.get(&url).send().await.expect("send");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let body: Value = none.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"code": 20003, "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
    );
    let wrong = c
        .get(&url)
        .basic_auth(ACCOUNT, Some("nope"))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let key = c
        .get(&url)
        .basic_auth("SK0123", Some("key-secret"))
        .send()
        .await
        .expect("send");
    assert_eq!(key.status(), StatusCode::OK);
    let tel = c
        .get(format!("{}/v2/call_events", s.base_url()))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(tel.status(), StatusCode::UNAUTHORIZED);
    let body: Value = tel.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "10009");
    assert_eq!(body["errors"][0]["title"], "Authentication failed");
    let stats = s.stats();
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.by_status.get(&401), Some(&3));
    assert_eq!(stats.injected_faults, 0);
    s.shutdown().await;
}

#[tokio::test]
async fn bad_sids_paths_and_page_sizes() {
    let s = sim(SimConfig::default()).await;
    let base = s.base_url();
    let unknown = format!("CA{}", "f".repeat(32));
    let (status, body) = twilio(&format!("{base}/v1/Voice/{unknown}/Metrics")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 20404);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("was not found")
    );
    let (status, body) = twilio(&format!("{base}/v1/Voice/CA123/Events")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], 400);
    let sid = s.model().calls()[0].sid.clone();
    for size in ["0", "1001", "x"] {
        let (status, _) = twilio(&format!("{base}/v1/Voice/{sid}/Events?PageSize={size}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "PageSize={size}");
    }
    let (status, _) = twilio(&format!("{base}/v1/Voice/{sid}/Events?Edge=moon_edge")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = twilio(&format!("{base}/v1/Voice/{sid}/Events?Edge=unknown_edge")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["events"], serde_json::json!([]));
    for path in ["/", "/v3/nothing"] {
        let (status, _) = twilio(&format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = twilio(&format!(
        "{base}/2010-04-01/Accounts/{ACCOUNT}/Calls/{unknown}.json"
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.shutdown().await;
}

#[tokio::test]
async fn telnyx_24h_rule_filters_and_paging() {
    let now = at(2024, 5, 2, 6, 0);
    let config = SimConfig {
        now: Some(now),
        telnyx_calls: 40,
        ..SimConfig::default()
    };
    let s = sim(config).await;
    let model = s.model();
    let all = model.telnyx_events();
    let micros = |e: &Value| {
        DateTime::parse_from_rfc3339(e["event_timestamp"].as_str().unwrap_or(""))
            .map(|t| t.timestamp_micros())
            .unwrap_or(0)
    };
    assert!(all.windows(2).all(|w| micros(&w[0]) <= micros(&w[1])));
    let lo = (now - Span::hours(24)).timestamp_micros();
    let visible: Vec<Value> = all.iter().filter(|e| micros(e) >= lo).cloned().collect();
    assert!(visible.len() < all.len(), "some events are older than 24 h");
    let mut got = Vec::new();
    let mut page = 1;
    loop {
        let url = format!(
            "{}/v2/call_events?page[number]={page}&page[size]=7",
            s.base_url()
        );
        let (status, body) = telnyx(&url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        got.extend(body["data"].as_array().cloned().unwrap_or_default());
        assert_eq!(body["meta"]["total_results"], visible.len());
        if page >= body["meta"]["total_pages"].as_u64().unwrap_or(0) {
            break;
        }
        page += 1;
    }
    assert_eq!(got, visible);
    let old = model
        .telnyx_legs()
        .iter()
        .find(|l| l.start_time.timestamp_micros() < lo)
        .expect("an old leg");
    let url = format!(
        "{}/v2/call_events?filter[leg_id]={}&page[size]=250",
        s.base_url(),
        old.call_leg_id
    );
    let (_, body) = telnyx(&url).await;
    let expected: Vec<Value> = all
        .iter()
        .filter(|e| e["call_leg_id"] == old.call_leg_id.as_str())
        .cloned()
        .collect();
    assert_eq!(body["data"], Value::Array(expected.clone()));
    let session = format!(
        "{}/v2/call_events?filter%5Bapplication_session_id%5D={}",
        s.base_url(),
        old.call_session_id
    );
    let (_, body) = telnyx(&session).await;
    assert!(
        body["data"]
            .as_array()
            .is_some_and(|d| d.len() >= expected.len())
    );
    let from = "2024-05-01T12:00:00Z";
    let url = format!(
        "{}/v2/call_events?filter[occurred_at][gte]={from}&page[size]=250",
        s.base_url()
    );
    let (_, body) = telnyx(&url).await;
    let cut = DateTime::parse_from_rfc3339(from)
        .map(|t| t.timestamp_micros())
        .unwrap_or(0);
    let expected: Vec<Value> = visible
        .iter()
        .filter(|e| micros(e) >= cut)
        .cloned()
        .collect();
    assert_eq!(body["data"], Value::Array(expected));
    let two = format!(
        "{}/v2/call_events?filter[occurred_at][gte]={from}&filter[occurred_at][lt]=2024-05-02T00:00:00Z",
        s.base_url()
    );
    let (status, body) = telnyx(&two).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("Only one")
    );
    for bad in ["page[size]=251", "page[size]=0", "page[number]=0"] {
        let (status, _) = telnyx(&format!("{}/v2/call_events?{bad}", s.base_url())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let config = SimConfig {
        rate_limit_per_sec: Some(5),
        ..SimConfig::default()
    };
    let s = sim(config).await;
    let url = format!("{}/2010-04-01/Accounts/{ACCOUNT}/Calls.json", s.base_url());
    let c = client();
    let mut limited = 0;
    for _ in 0..10 {
        let r = c
            .get(&url)
            .basic_auth(ACCOUNT, Some(TOKEN))
            .send()
            .await
            .expect("send");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(
                r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
                Some("1")
            );
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["code"], 20429);
            limited += 1;
        }
    }
    assert!(limited >= 6, "{limited}");
    let tel = c
        .get(format!("{}/v2/call_events", s.base_url()))
        .bearer_auth("simulator-key")
        .send()
        .await
        .expect("send");
    assert_eq!(
        tel.status(),
        StatusCode::OK,
        "groups have their own buckets"
    );
    let stats = s.stats();
    assert_eq!(stats.rate_limited, limited);
    assert_eq!(stats.injected_faults, 0);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = c
        .get(&url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK, "tokens refill");
    s.shutdown().await;
}

#[tokio::test]
async fn a_client_pacing_at_the_rate_is_never_limited() {
    let config = SimConfig {
        rate_limit_per_sec: Some(50),
        ..SimConfig::default()
    };
    let s = sim(config).await;
    let url = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Calls.json?PageSize=1",
        s.base_url()
    );
    let c = client();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..40 {
        tick.tick().await;
        let r = c
            .get(&url)
            .basic_auth(ACCOUNT, Some(TOKEN))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(s.stats().rate_limited, 0);
    s.shutdown().await;
}

/// A simulator whose every API request meets `faults`, and the URL of a metrics page.
async fn faulty(faults: Faults) -> (SimHandle, String) {
    let s = sim(SimConfig {
        faults,
        ..SimConfig::default()
    })
    .await;
    let sid = s.model().calls()[0].sid.clone();
    let url = format!("{}/v1/Voice/{sid}/Metrics?PageSize=5", s.base_url());
    (s, url)
}

#[tokio::test]
async fn injected_429_and_5xx() {
    let (s, url) = faulty(Faults {
        error_429_ratio: 1.0,
        retry_after: Some("2".into()),
        ..Faults::default()
    })
    .await;
    let r = client()
        .get(&url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], 20429);
    s.set_faults(Faults {
        error_5xx_ratio: 1.0,
        ..Faults::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, body) = twilio(&url).await;
        assert_eq!(body["status"], status.as_u16());
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [500, 502, 503, 504]);
    s.set_faults(Faults::default());
    assert_eq!(twilio(&url).await.0, StatusCode::OK);
    let stats = s.stats();
    assert_eq!(stats.injected_faults, 5);
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(stats.rows_served.get("insights_metrics"), Some(&5));
    s.shutdown().await;
}

#[tokio::test]
async fn slow_answers_arrive_late_but_whole() {
    let (s, url) = faulty(Faults {
        slow_ratio: 1.0,
        slow_ms: 300,
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    let (status, body) = twilio(&url).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["metrics"].as_array().map(Vec::len), Some(5));
    assert_eq!(s.stats().injected_faults, 1);
    s.shutdown().await;
}

#[tokio::test]
async fn dropped_connections_break_the_body() {
    let (s, url) = faulty(Faults {
        drop_ratio: 1.0,
        ..Faults::default()
    })
    .await;
    let r = client()
        .get(&url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("headers");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.is_err(), "the body stream errors");
    let stats = s.stats();
    assert_eq!(stats.by_status.get(&200), Some(&1));
    assert!(stats.rows_served.is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn hanging_requests_time_out_and_shutdown_still_ends() {
    let (s, url) = faulty(Faults {
        hang_ratio: 1.0,
        ..Faults::default()
    })
    .await;
    let c = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let r = c.get(&url).basic_auth(ACCOUNT, Some(TOKEN)).send().await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    let pending = tokio::spawn({
        let c = client();
        let url = url.clone();
        async move { c.get(&url).basic_auth(ACCOUNT, Some(TOKEN)).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    s.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let _ = pending.await;
}

#[tokio::test]
async fn malformed_bodies_are_truncated_json() {
    let (s, url) = faulty(Faults {
        malformed_ratio: 1.0,
        ..Faults::default()
    })
    .await;
    let r = client()
        .get(&url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("whole body");
    assert!(serde_json::from_str::<Value>(&text).is_err());
    assert!(text.starts_with("{\"meta\""));
    assert!(s.stats().rows_served.is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn failing_call_sids_answer_500_everywhere() {
    let s = sim(SimConfig::default()).await;
    let model = s.model();
    let (bad, good) = (&model.calls()[0].sid, &model.calls()[1].sid);
    s.set_faults(Faults {
        fail_call_sids: vec![bad.clone()],
        ..Faults::default()
    });
    let base = s.base_url();
    for path in [
        format!("/v1/Voice/{bad}/Events"),
        format!("/v1/Voice/{bad}/Metrics"),
        format!("/v1/Voice/{bad}/Summary"),
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{bad}.json"),
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{bad}/Events.json"),
    ] {
        assert_eq!(
            twilio(&format!("{base}{path}")).await.0,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
    }
    assert_eq!(
        twilio(&format!("{base}/v1/Voice/{good}/Events")).await.0,
        StatusCode::OK
    );
    let stats = s.stats();
    assert_eq!(stats.injected_faults, 5);
    assert_eq!(stats.requests_by_call.get(bad.as_str()), Some(&5));
    assert_eq!(stats.requests_by_call.get(good.as_str()), Some(&1));
    assert_eq!(stats.requests_by_route.get("insights_events"), Some(&2));
    s.shutdown().await;
}

#[tokio::test]
async fn foreign_and_looping_next_links() {
    let (s, url) = faulty(Faults {
        foreign_next_page: true,
        ..Faults::default()
    })
    .await;
    let port = s.addr().port();
    let (_, body) = twilio(&url).await;
    let next = body["meta"]["next_page_url"].as_str().unwrap_or("");
    assert!(
        next.starts_with(&format!("http://evil.invalid:{port}/v1/Voice/")),
        "{next}"
    );
    let sid = s.model().calls()[0].sid.clone();
    let rest = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}/Events.json?PageSize=1",
        s.base_url()
    );
    let (_, body) = twilio(&rest).await;
    let next = body["next_page_uri"].as_str().unwrap_or("");
    assert!(
        next.starts_with(&format!("http://evil.invalid:{port}/2010-04-01/")),
        "{next}"
    );
    s.set_faults(Faults {
        looping_next_page: true,
        ..Faults::default()
    });
    let (_, body) = twilio(&url).await;
    assert_eq!(body["meta"]["next_page_url"], body["meta"]["url"]);
    let (_, again) = twilio(body["meta"]["next_page_url"].as_str().unwrap_or("")).await;
    assert_eq!(again, body, "the same page forever");
    s.shutdown().await;
}

/// Every body of a small crawl, with the port replaced.
async fn crawl(seed: u64) -> Vec<String> {
    let s = sim(SimConfig {
        seed,
        calls: 6,
        telnyx_calls: 5,
        now: Some(at(2024, 5, 2, 0, 0)),
        ..SimConfig::default()
    })
    .await;
    let base = s.base_url();
    let mut urls = vec![
        format!("{base}/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
        format!(
            "{base}/v1/Voice/Summaries?StartTime=2024-05-01T00:00:00Z&EndTime=2024-05-02T00:00:00Z"
        ),
    ];
    for call in s.model().calls() {
        urls.push(format!("{base}/v1/Voice/{}/Events?PageSize=1000", call.sid));
        urls.push(format!(
            "{base}/v1/Voice/{}/Metrics?PageSize=1000",
            call.sid
        ));
        urls.push(format!(
            "{base}/2010-04-01/Accounts/{ACCOUNT}/Calls/{}/Events.json",
            call.sid
        ));
    }
    let mut bodies = Vec::new();
    for url in urls {
        let r = client()
            .get(&url)
            .basic_auth(ACCOUNT, Some(TOKEN))
            .send()
            .await
            .expect("send");
        bodies.push(r.text().await.expect("body").replace(&base, "BASE"));
    }
    let r = client()
        .get(format!("{base}/v2/call_events?page[size]=250"))
        .bearer_auth("simulator-key")
        .send()
        .await
        .expect("send");
    bodies.push(r.text().await.expect("body"));
    s.shutdown().await;
    bodies
}

#[tokio::test]
async fn same_seed_same_bodies() {
    let (a, b, c) = (crawl(7).await, crawl(7).await, crawl(8).await);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[tokio::test]
async fn drift_adds_unknown_fields() {
    let s = sim(SimConfig {
        drift: true,
        ..SimConfig::default()
    })
    .await;
    let model = s.model();
    for call in model.calls() {
        for edge in call.edges() {
            for m in model.insights_metrics(&call.sid, Some(edge)) {
                assert_eq!(m["media_region"], "us1");
                if edge == "sdk_edge" {
                    assert!(m["sdk_edge"]["interval"]["mos_lq"]["value"].is_f64());
                }
            }
        }
        for e in model.call_events(&call.sid) {
            assert_eq!(e["response"]["api_version"], "2010-04-01");
        }
    }
    let plain = sim(SimConfig::default()).await;
    let sid = plain.model().calls()[0].sid.clone();
    assert!(
        plain.model().call_events(&sid)[0]["response"]
            .get("api_version")
            .is_none()
    );
    s.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test]
async fn extra_calls_and_midnight_crossing() {
    let start_time = at(2024, 6, 1, 23, 58);
    let s = sim(SimConfig {
        calls: 0,
        extra_calls: vec![CallSpec {
            start_time,
            duration_secs: 600,
            call_type: CallType::TrunkingTerminating,
        }],
        ..SimConfig::default()
    })
    .await;
    let model = s.model();
    let call = &model.calls()[0];
    assert_eq!(call.start_time, start_time);
    assert_eq!(call.edges(), ["sip_edge", "carrier_edge"]);
    assert_eq!(call.default_edge(), "sip_edge");
    let metrics = model.insights_metrics(&call.sid, None);
    assert_eq!(metrics.len(), 60);
    assert!(metrics.iter().all(|m| m["edge"] == "sip_edge"));
    assert!(metrics.iter().any(|m| {
        m["timestamp"]
            .as_str()
            .is_some_and(|t| t.starts_with("2024-06-02"))
    }));
    let events = model.insights_events(&call.sid, Some("carrier_edge"));
    assert!(events.iter().all(|e| {
        let t =
            DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap_or("")).expect("RFC 3339");
        t >= call.start_time && t <= call.end_time
    }));
    s.shutdown().await;
}

#[tokio::test]
async fn content_length_and_counts_on_whole_pages() {
    let s = sim(SimConfig::default()).await;
    let sid = s.model().calls()[0].sid.clone();
    let url = format!("{}/v1/Voice/{sid}/Metrics?PageSize=3", s.base_url());
    let r = client()
        .get(&url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("send");
    let length = r.content_length();
    let bytes = r.bytes().await.expect("body");
    assert_eq!(length, Some(bytes.len() as u64));
    let stats = s.stats();
    assert_eq!(stats.rows_served.get("insights_metrics"), Some(&3));
    assert_eq!(stats.requests_by_route.get("insights_metrics"), Some(&1));
    assert_eq!(stats.by_status.get(&200), Some(&1));
    s.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The call resource, Conference Insights and subaccounts.

/// GET with Basic auth as `user:pass`.
async fn twilio_as(url: &str, user: &str, pass: &str) -> (StatusCode, Value) {
    let r = client()
        .get(url)
        .basic_auth(user, Some(pass))
        .send()
        .await
        .expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Follows REST `next_page_uri` from `first_uri` with other credentials.
async fn follow_rest_as(
    base: &str,
    first_uri: String,
    key: &str,
    (user, pass): (&str, &str),
) -> Vec<Value> {
    let mut uri = Some(first_uri);
    let mut out = Vec::new();
    while let Some(u) = uri {
        let (status, body) = twilio_as(&format!("{base}{u}"), user, pass).await;
        assert_eq!(status, StatusCode::OK, "{u}: {body}");
        out.extend(body[key].as_array().cloned().unwrap_or_default());
        uri = body["next_page_uri"].as_str().map(String::from);
    }
    out
}

/// Whether `s` is `prefix` + 32 lowercase hex digits.
fn lower_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34
        && s.starts_with(prefix)
        && s.bytes()
            .skip(2)
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `Tue, 31 Aug 2010 20:36:28 +0000`: Twilio's RFC 2822 form, parsed.
fn rfc2822(v: &Value) -> DateTime<Utc> {
    let text = v.as_str().unwrap_or("");
    let b = text.as_bytes();
    assert_eq!(text.len(), 31, "{text}");
    assert!(text.ends_with(" +0000"), "{text}");
    assert_eq!(
        (b[3], b[4], b[7], b[11]),
        (b',', b' ', b' ', b' '),
        "{text}"
    );
    DateTime::parse_from_rfc2822(text)
        .expect("RFC 2822")
        .with_timezone(&Utc)
}

/// `2021-10-08T02:58:51Z`: ISO 8601 UTC with whole seconds, parsed.
fn iso(v: &Value) -> DateTime<Utc> {
    let text = v.as_str().unwrap_or("");
    assert_eq!(text.len(), 20, "{text}");
    assert!(text.ends_with('Z'), "{text}");
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// The properties of the OpenAPI schema `api.v2010.account.call`.
const CALL_FIELDS: [&str; 26] = [
    "sid",
    "date_created",
    "date_updated",
    "parent_call_sid",
    "account_sid",
    "to",
    "to_formatted",
    "from",
    "from_formatted",
    "phone_number_sid",
    "status",
    "start_time",
    "end_time",
    "duration",
    "price",
    "price_unit",
    "direction",
    "answered_by",
    "api_version",
    "forwarded_from",
    "group_sid",
    "caller_name",
    "queue_time",
    "trunk_sid",
    "uri",
    "subresource_uris",
];

/// The properties of `insights.v1.conference`.
const CONFERENCE_FIELDS: [&str; 23] = [
    "conference_sid",
    "account_sid",
    "friendly_name",
    "create_time",
    "start_time",
    "end_time",
    "duration_seconds",
    "connect_duration_seconds",
    "status",
    "max_participants",
    "max_concurrent_participants",
    "unique_participants",
    "end_reason",
    "ended_by",
    "mixer_region",
    "mixer_region_requested",
    "recording_enabled",
    "detected_issues",
    "tags",
    "tag_info",
    "processing_state",
    "url",
    "links",
];

/// The properties of `insights.v1.conference.conference_participant`.
const PARTICIPANT_FIELDS: [&str; 27] = [
    "participant_sid",
    "label",
    "conference_sid",
    "call_sid",
    "account_sid",
    "call_direction",
    "from",
    "to",
    "call_status",
    "country_code",
    "is_moderator",
    "join_time",
    "leave_time",
    "duration_seconds",
    "outbound_queue_length",
    "outbound_time_in_queue",
    "jitter_buffer_size",
    "is_coach",
    "coached_participants",
    "participant_region",
    "conference_region",
    "call_type",
    "processing_state",
    "properties",
    "events",
    "metrics",
    "url",
];

/// The properties of `api.v2010.account`.
const ACCOUNT_FIELDS: [&str; 10] = [
    "auth_token",
    "date_created",
    "date_updated",
    "friendly_name",
    "owner_account_sid",
    "sid",
    "status",
    "subresource_uris",
    "type",
    "uri",
];

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// `fields`, sorted.
fn sorted(fields: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    k.sort();
    k
}

/// A config with parent conferences and three subaccounts (one refusing the parent).
fn accounts_config() -> SimConfig {
    SimConfig {
        calls: 8,
        conferences: 4,
        subaccounts: vec![
            SubaccountSpec {
                calls: 6,
                conferences: 2,
                ..SubaccountSpec::default()
            },
            SubaccountSpec {
                calls: 3,
                conferences: 1,
                status: "suspended".into(),
                ..SubaccountSpec::default()
            },
            SubaccountSpec {
                calls: 4,
                conferences: 1,
                status: "closed".into(),
                refuse_parent: true,
            },
        ],
        ..SimConfig::default()
    }
}

#[test]
fn new_config_fields_default_to_todays_behaviour() {
    let config = SimConfig::default();
    assert_eq!(config.conferences, 0);
    assert!(config.subaccounts.is_empty());
    assert!(Faults::default().fail_conference_sids.is_empty());
    let sub = SubaccountSpec::default();
    assert_eq!(
        (
            sub.calls,
            sub.conferences,
            sub.status.as_str(),
            sub.refuse_parent
        ),
        (0, 0, "active", false)
    );
    let model = super::Model::build(&config, "http://127.0.0.1:1".into());
    assert_eq!(model.calls().len(), 20);
    assert!(model.conferences().is_empty());
    assert_eq!(model.participant_calls().count(), 0);
    assert_eq!(model.accounts().len(), 1);
    assert!(model.accounts()[0].is_parent());
    assert!(model.calls().iter().all(|c| c.account_sid == ACCOUNT));
    let debug = format!("{config:?} {:?}", model.accounts());
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[tokio::test]
async fn call_resource_has_every_documented_field() {
    let s = sim(accounts_config()).await;
    let model = s.model();
    let base = s.base_url();
    let directions = [
        "inbound",
        "outbound-api",
        "outbound-dial",
        "trunking-originating",
        "trunking-terminating",
    ];
    for call in model.calls() {
        let r = model.call_resource(&call.sid).expect("resource");
        assert_eq!(keys(&r), sorted(&CALL_FIELDS), "{}", call.sid);
        assert_eq!(r["sid"], call.sid.as_str());
        assert!(lower_sid(&call.sid, "CA"));
        assert_eq!(r["account_sid"], call.account_sid.as_str());
        assert_eq!(rfc2822(&r["start_time"]), call.start_time);
        assert_eq!(rfc2822(&r["end_time"]), call.end_time);
        assert_eq!(rfc2822(&r["date_created"]), call.start_time);
        assert!(rfc2822(&r["date_updated"]) >= call.end_time);
        assert_eq!(
            r["duration"],
            (call.end_time - call.start_time).num_seconds().to_string()
        );
        match &r["price"] {
            Value::Null => {}
            Value::String(p) => {
                let digits = p.strip_prefix("-0.").unwrap_or("");
                assert!(
                    digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()),
                    "{p}"
                );
            }
            other => panic!("price {other}"),
        }
        assert_eq!(r["price_unit"], "USD");
        assert!(directions.contains(&r["direction"].as_str().unwrap_or("")));
        assert_eq!(r["status"], "completed");
        assert_eq!(r["api_version"], "2010-04-01");
        assert_eq!(r["queue_time"], "0");
        for nullable in [
            "parent_call_sid",
            "answered_by",
            "forwarded_from",
            "group_sid",
            "caller_name",
        ] {
            assert!(r[nullable].is_null(), "{nullable}");
        }
        for (key, prefix) in [("phone_number_sid", "PN"), ("trunk_sid", "TK")] {
            assert!(
                r[key].is_null() || lower_sid(r[key].as_str().unwrap_or(""), prefix),
                "{key}"
            );
        }
        let expect_trunk = matches!(
            call.call_type,
            CallType::TrunkingOriginating | CallType::TrunkingTerminating
        );
        assert_eq!(r["trunk_sid"].is_string(), expect_trunk);
        for key in ["to", "from", "to_formatted", "from_formatted"] {
            assert!(r[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
        }
        let path = format!(
            "/2010-04-01/Accounts/{}/Calls/{}",
            call.account_sid, call.sid
        );
        assert_eq!(r["uri"], format!("{path}.json"));
        assert_eq!(
            r["subresource_uris"]["events"],
            format!("{path}/Events.json")
        );
        assert!(r["subresource_uris"].as_object().is_some_and(|o| {
            o.values()
                .all(|v| v.as_str().is_some_and(|u| u.starts_with(&path)))
        }));
    }
    // What is served is what the model says, for every account (the parent's credentials).
    for call in model.calls().iter().step_by(3) {
        let (status, body) = twilio(&format!(
            "{base}/2010-04-01/Accounts/{}/Calls/{}.json",
            call.account_sid, call.sid
        ))
        .await;
        let refused = model
            .accounts()
            .iter()
            .any(|a| a.sid == call.account_sid && a.refuse_parent);
        if refused {
            assert_eq!(status, StatusCode::FORBIDDEN);
        } else {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(Some(body), model.call_resource(&call.sid));
        }
    }
    let listed = follow_rest(
        &base,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json?PageSize=5"),
        "calls",
    )
    .await;
    assert!(!listed.is_empty());
    for item in &listed {
        assert_eq!(keys(item), sorted(&CALL_FIELDS));
        assert_eq!(
            Some(item.clone()),
            model.call_resource(item["sid"].as_str().unwrap_or(""))
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn conferences_are_deterministic_and_their_participants_are_calls() {
    let config = SimConfig {
        calls: 5,
        extra_calls: vec![CallSpec {
            start_time: at(2024, 5, 1, 8, 0),
            duration_secs: 60,
            call_type: CallType::Carrier,
        }],
        conferences: 6,
        ..SimConfig::default()
    };
    let (a, b) = (sim(config.clone()).await, sim(config.clone()).await);
    let (ma, mb) = (a.model(), b.model());
    assert_eq!(ma.conferences(), mb.conferences());
    assert_eq!(ma.calls(), mb.calls());
    let strip = |v: Option<Value>, base: &str| v.unwrap_or_default().to_string().replace(base, "");
    for c in ma.conferences() {
        assert_eq!(
            strip(ma.conference_summary(&c.sid), &a.base_url()),
            strip(mb.conference_summary(&c.sid), &b.base_url())
        );
        assert_eq!(
            ma.conference_participants(&c.sid)
                .iter()
                .map(|p| p.to_string().replace(&a.base_url(), ""))
                .collect::<Vec<_>>(),
            mb.conference_participants(&c.sid)
                .iter()
                .map(|p| p.to_string().replace(&b.base_url(), ""))
                .collect::<Vec<_>>()
        );
    }
    let other = super::Model::build(
        &SimConfig {
            seed: 43,
            ..config.clone()
        },
        "http://127.0.0.1:1".into(),
    );
    assert_ne!(other.conferences()[0].sid, ma.conferences()[0].sid);

    assert_eq!(ma.conferences().len(), 6);
    // Participants' calls come after the 5 generated and 1 extra calls, in conference order.
    let mut expected_sids = Vec::new();
    for c in ma.conferences() {
        assert!(lower_sid(&c.sid, "CF"), "{}", c.sid);
        assert_eq!(c.account_sid, ACCOUNT);
        assert!(c.create_time >= config.from && c.create_time < config.to);
        assert!((2..=5).contains(&c.participants.len()));
        for p in &c.participants {
            assert!(lower_sid(&p.sid, "CP"), "{}", p.sid);
            assert!(lower_sid(&p.call_sid, "CA"), "{}", p.call_sid);
            expected_sids.push(p.call_sid.clone());
            let (_, call) = ma.find_call(&p.call_sid).expect("participant call");
            assert_eq!(call.start_time, p.join_time);
            assert_eq!(call.end_time, p.leave_time);
            assert_eq!(call.call_type, p.call_type);
            assert_eq!(call.conference_sid.as_deref(), Some(c.sid.as_str()));
            assert_eq!(call.account_sid, c.account_sid);
        }
    }
    let after: Vec<String> = ma.calls()[6..].iter().map(|c| c.sid.clone()).collect();
    assert_eq!(after, expected_sids);
    assert!(ma.calls()[..6].iter().all(|c| c.conference_sid.is_none()));
    assert_eq!(ma.participant_calls().count(), expected_sids.len());
    let mut unique = expected_sids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), expected_sids.len());

    // The first conference has a carrier, a SIP and a client participant.
    let first: Vec<CallType> = ma.conferences()[0]
        .participants
        .iter()
        .map(|p| p.call_type)
        .collect();
    for t in [CallType::Carrier, CallType::Sip, CallType::Client] {
        assert!(first.contains(&t), "{first:?}");
    }
    for c in ma.conferences() {
        let records = ma.conference_participants(&c.sid);
        assert_eq!(records.len(), c.participants.len());
        for (record, p) in records.iter().zip(&c.participants) {
            assert_eq!(record["participant_sid"], p.sid.as_str());
            assert_eq!(record["call_sid"], p.call_sid.as_str());
            assert_eq!(record["call_type"], p.call_type.summary_name());
            let want = match p.call_type {
                CallType::Carrier => "carrier",
                CallType::Sip => "sip",
                CallType::Client => "client",
                other => panic!("participant of type {other:?}"),
            };
            assert_eq!(record["call_type"], want);
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn conference_list_filters_and_paging() {
    let config = SimConfig {
        from: at(2024, 5, 1, 0, 0),
        to: at(2024, 5, 3, 0, 0),
        conferences: 15,
        ..SimConfig::default()
    };
    let s = sim(config).await;
    let model = s.model();
    let base = s.base_url();
    let newest_first = |pred: &dyn Fn(DateTime<Utc>) -> bool| -> Vec<String> {
        let mut v: Vec<_> = model
            .conferences()
            .iter()
            .filter(|c| pred(c.create_time))
            .collect();
        v.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(a.sid.cmp(&b.sid)));
        v.into_iter().map(|c| c.sid.clone()).collect()
    };
    let sids = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .filter_map(|c| c["conference_sid"].as_str().map(String::from))
            .collect()
    };
    let all = follow_insights(format!("{base}/v1/Conferences?PageSize=1"), "conferences").await;
    assert_eq!(sids(&all), newest_first(&|_| true));
    assert_eq!(all.len(), 15);
    for item in &all {
        assert_eq!(keys(item), sorted(&CONFERENCE_FIELDS));
        assert_eq!(
            Some(item.clone()),
            model.conference_summary(item["conference_sid"].as_str().unwrap_or(""))
        );
    }
    let big = follow_insights(
        format!("{base}/v1/Conferences?PageSize=1000"),
        "conferences",
    )
    .await;
    assert_eq!(big, all);
    let (_, first) = twilio(&format!("{base}/v1/Conferences")).await;
    assert_eq!(first["meta"]["page_size"], 50);
    assert_eq!(first["conferences"].as_array().map(Vec::len), Some(15));

    let cut = at(2024, 5, 2, 0, 0);
    let after = follow_insights(
        format!("{base}/v1/Conferences?CreatedAfter=2024-05-02T00:00:00Z&PageSize=2"),
        "conferences",
    )
    .await;
    assert_eq!(sids(&after), newest_first(&|t| t >= cut));
    let before = follow_insights(
        format!("{base}/v1/Conferences?CreatedBefore=2024-05-02T00:00:00Z&PageSize=2"),
        "conferences",
    )
    .await;
    assert_eq!(sids(&before), newest_first(&|t| t < cut));
    assert_eq!(after.len() + before.len(), 15);
    // Bounds: `CreatedAfter` includes its instant, `CreatedBefore` excludes it.
    let one = &model.conferences()[3];
    let exact = one.create_time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (_, body) = twilio(&format!(
        "{base}/v1/Conferences?CreatedAfter={exact}&CreatedBefore={exact}"
    ))
    .await;
    assert_eq!(body["conferences"], serde_json::json!([]));
    let window = follow_insights(
        format!(
            "{base}/v1/Conferences?CreatedAfter={exact}&CreatedBefore={}",
            (one.create_time + Span::seconds(1)).format("%Y-%m-%dT%H:%M:%SZ")
        ),
        "conferences",
    )
    .await;
    assert!(sids(&window).contains(&one.sid));

    // Links: absolute, filters echoed, key "conferences".
    let (_, page) = twilio(&format!(
        "{base}/v1/Conferences?CreatedAfter=2024-05-01T00:00:00Z&CreatedBefore=2024-05-03T00:00:00Z&PageSize=4"
    ))
    .await;
    let meta = &page["meta"];
    assert_eq!(meta["key"], "conferences");
    let prefix = format!(
        "{base}/v1/Conferences?CreatedAfter=2024-05-01T00%3A00%3A00Z&CreatedBefore=2024-05-03T00%3A00%3A00Z&PageSize=4"
    );
    assert_eq!(meta["url"], format!("{prefix}&Page=0"));
    assert_eq!(
        meta["next_page_url"],
        format!("{prefix}&Page=1&PageToken=PT4")
    );
    assert!(meta["previous_page_url"].is_null());

    // Other documented filters.
    let target = &all[0];
    let by_name = follow_insights(
        format!(
            "{base}/v1/Conferences?FriendlyName={}",
            target["friendly_name"].as_str().unwrap_or("")
        ),
        "conferences",
    )
    .await;
    assert!(by_name.contains(target));
    let region = target["mixer_region"].as_str().unwrap_or("");
    let by_region = follow_insights(
        format!("{base}/v1/Conferences?MixerRegion={region}&PageSize=1"),
        "conferences",
    )
    .await;
    let expected: Vec<Value> = all
        .iter()
        .filter(|c| c["mixer_region"] == region)
        .cloned()
        .collect();
    assert_eq!(by_region, expected);
    let (_, none) = twilio(&format!("{base}/v1/Conferences?Status=in_progress")).await;
    assert_eq!(none["conferences"], serde_json::json!([]));

    for bad in [
        "CreatedAfter=yesterday",
        "CreatedBefore=2024-13-01T00:00:00Z",
        "PageSize=0",
        "PageSize=1001",
        "Subaccount=AC123",
    ] {
        let (status, body) = twilio(&format!("{base}/v1/Conferences?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["code"], 20001, "{bad}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn conference_and_participant_routes() {
    let s = sim(SimConfig {
        conferences: 8,
        ..SimConfig::default()
    })
    .await;
    let model = s.model();
    let base = s.base_url();
    let mut types_seen = Vec::new();
    for c in model.conferences() {
        let (status, one) = twilio(&format!("{base}/v1/Conferences/{}", c.sid)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(Some(one.clone()), model.conference_summary(&c.sid));
        assert_eq!(one["account_sid"], ACCOUNT);
        assert_eq!(iso(&one["create_time"]), c.create_time);
        assert_eq!(iso(&one["end_time"]), c.end_time);
        match c.start_time {
            Some(t) => assert_eq!(iso(&one["start_time"]), t),
            None => assert!(one["start_time"].is_null()),
        }
        assert_eq!(
            one["duration_seconds"],
            (c.end_time - c.create_time).num_seconds()
        );
        assert_eq!(one["unique_participants"], c.participants.len());
        let most = one["max_concurrent_participants"].as_u64().unwrap_or(0);
        assert!((2..=c.participants.len() as u64).contains(&most));
        let ended_by = one["ended_by"].as_str().unwrap_or("");
        assert!(c.participants.iter().any(|p| p.call_sid == ended_by));
        for key in [
            "call_quality",
            "region_configuration",
            "participant_behavior",
        ] {
            assert!(one["detected_issues"][key].is_u64(), "{key}");
        }
        assert!(
            one["tags"].is_null()
                || one["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().all(Value::is_string))
        );
        assert_eq!(one["url"], format!("{base}/v1/Conferences/{}", c.sid));
        assert_eq!(
            one["links"]["conference_participants"],
            format!("{base}/v1/Conferences/{}/Participants", c.sid)
        );

        let list = follow_insights(
            format!("{base}/v1/Conferences/{}/Participants?PageSize=1", c.sid),
            "participants",
        )
        .await;
        assert_eq!(list, model.conference_participants(&c.sid));
        let (_, page) = twilio(&format!("{base}/v1/Conferences/{}/Participants", c.sid)).await;
        assert_eq!(page["meta"]["key"], "participants");
        for (p, sim_p) in list.iter().zip(&c.participants) {
            assert_eq!(keys(p), sorted(&PARTICIPANT_FIELDS));
            assert_eq!(p["conference_sid"], c.sid.as_str());
            assert_eq!(p["account_sid"], ACCOUNT);
            assert_eq!(iso(&p["join_time"]), sim_p.join_time);
            assert_eq!(iso(&p["leave_time"]), sim_p.leave_time);
            assert!(iso(&p["join_time"]) >= c.create_time);
            assert!(iso(&p["leave_time"]) <= c.end_time);
            assert!(["inbound", "outbound"].contains(&p["call_direction"].as_str().unwrap_or("")));
            for key in [
                "start_conference_on_enter",
                "end_conference_on_exit",
                "play_early_media",
                "enter_muted",
                "beep_on_enter",
                "beep_on_exit",
            ] {
                assert!(p["properties"][key].is_boolean(), "{key}");
            }
            assert!(
                p["events"].is_null()
                    || p["events"]["mute"].as_array().is_some_and(|m| {
                        !m.is_empty()
                            && m.iter().all(|t| {
                                t.as_i64().is_some_and(|t| {
                                    t >= sim_p.join_time.timestamp_millis()
                                        && t <= sim_p.leave_time.timestamp_millis()
                                })
                            })
                    }),
                "{}",
                p["events"]
            );
            for direction in ["inbound", "outbound"] {
                let m = &p["metrics"][direction];
                let mos = m["mos"].as_f64().unwrap_or(0.0);
                assert!((1.0..=4.5).contains(&mos), "{mos}");
                for pair in ["jitter", "latency"] {
                    let avg = m[pair]["avg"].as_f64().unwrap_or(-1.0);
                    let max = m[pair]["max"].as_f64().unwrap_or(-1.0);
                    assert!(avg >= 0.0 && avg < max, "{pair} {avg} {max}");
                }
                let loss = m["packet_loss_percentage"].as_f64().unwrap_or(-1.0);
                assert!((0.0..=100.0).contains(&loss));
                assert!(m["total_packets_received"].as_u64().is_some_and(|n| n > 0));
                assert!(m["total_packets_lost"].is_u64());
            }
            types_seen.push(p["call_type"].as_str().unwrap_or("").to_string());
            let (status, single) = twilio(&format!(
                "{base}/v1/Conferences/{}/Participants/{}",
                c.sid, sim_p.sid
            ))
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(&single, p);
            assert_eq!(
                Some(single),
                model.conference_participant(&c.sid, &sim_p.sid)
            );
        }
    }
    for t in ["carrier", "sip", "client"] {
        assert!(types_seen.iter().any(|s| s == t), "{t}");
    }
    // Quality varies by participant.
    let moses: Vec<String> = model
        .conferences()
        .iter()
        .flat_map(|c| model.conference_participants(&c.sid))
        .map(|p| p["metrics"]["inbound"]["mos"].to_string())
        .collect();
    let mut distinct = moses.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > moses.len() / 3, "{moses:?}");

    // Unknown and malformed SIDs.
    let cf = &model.conferences()[0].sid;
    let unknown_cf = format!("CF{}", "f".repeat(32));
    let unknown_cp = format!("CP{}", "f".repeat(32));
    for (path, want) in [
        (
            format!("/v1/Conferences/{unknown_cf}"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/v1/Conferences/{unknown_cf}/Participants"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/v1/Conferences/{cf}/Participants/{unknown_cp}"),
            StatusCode::NOT_FOUND,
        ),
        ("/v1/Conferences/CF123".to_string(), StatusCode::BAD_REQUEST),
        (
            "/v1/Conferences/CF123/Participants".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/v1/Conferences/{cf}/Participants/CP1"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/v1/Conferences/{cf}/Participants?PageSize=0"),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = twilio(&format!("{base}{path}")).await;
        assert_eq!(status, want, "{path}");
        assert_eq!(body["status"], want.as_u16(), "{path}");
        let code = if want == StatusCode::NOT_FOUND {
            20404
        } else {
            20001
        };
        assert_eq!(body["code"], code, "{path}");
    }
    assert_eq!(model.conference_summary(&unknown_cf), None);
    assert!(model.conference_participants(&unknown_cf).is_empty());
    // Same auth as the other Insights routes.
    let r = client()
        .get(format!("{base}/v1/Conferences"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .post(format!("{base}/v1/Conferences"))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let stats = s.stats();
    for route in [
        "conference",
        "conference_participants",
        "conference_participant",
        "conferences",
    ] {
        assert!(
            stats.requests_by_route.get(route).is_some_and(|n| *n > 0),
            "{route}"
        );
    }
    // The unauthenticated GET counts; the POST is no route.
    assert_eq!(stats.requests_by_route.get("conferences"), Some(&1));
    s.shutdown().await;
}

#[tokio::test]
async fn participant_calls_resolve_through_every_call_route() {
    let s = sim(SimConfig {
        calls: 4,
        conferences: 3,
        now: Some(at(2024, 5, 3, 0, 0)),
        ..SimConfig::default()
    })
    .await;
    let model = s.model();
    let base = s.base_url();
    let listed = follow_rest(
        &base,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json?PageSize=3"),
        "calls",
    )
    .await;
    let summaries = follow_insights(
        format!(
            "{base}/v1/Voice/Summaries?StartTime=2024-04-30T00:00:00Z&EndTime=2024-05-03T00:00:00Z&PageSize=4"
        ),
        "call_summaries",
    )
    .await;
    assert_eq!(listed.len(), model.calls().len());
    assert_eq!(summaries.len(), model.calls().len());
    for c in model.conferences() {
        for p in model.conference_participants(&c.sid) {
            let call_sid = p["call_sid"].as_str().unwrap_or("");
            let (status, resource) = twilio(&format!(
                "{base}/2010-04-01/Accounts/{ACCOUNT}/Calls/{call_sid}.json"
            ))
            .await;
            assert_eq!(status, StatusCode::OK, "{call_sid}");
            assert_eq!(resource["sid"], call_sid);
            assert_eq!(resource["from"], p["from"]);
            assert_eq!(resource["to"], p["to"]);
            assert_eq!(rfc2822(&resource["start_time"]), iso(&p["join_time"]));
            assert_eq!(rfc2822(&resource["end_time"]), iso(&p["leave_time"]));
            assert_eq!(resource["duration"], p["duration_seconds"].to_string());
            let outbound = resource["direction"]
                .as_str()
                .is_some_and(|d| d.starts_with("outbound"));
            assert_eq!(
                p["call_direction"],
                if outbound { "outbound" } else { "inbound" }
            );
            assert!(listed.contains(&resource));
            let (status, summary) = twilio(&format!("{base}/v1/Voice/{call_sid}/Summary")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(summary["call_type"], p["call_type"]);
            assert_eq!(summary["attributes"]["conference_participant"], true);
            assert!(summaries.contains(&summary));
            let metrics =
                follow_insights(format!("{base}/v1/Voice/{call_sid}/Metrics"), "metrics").await;
            assert!(!metrics.is_empty());
            assert_eq!(metrics, model.insights_metrics(call_sid, None));
            let edge = metrics[0]["edge"].as_str().unwrap_or("").to_string();
            let inbound = &summary[&edge]["metrics"]["inbound"];
            assert_eq!(
                inbound["packets_received"],
                p["metrics"]["inbound"]["total_packets_received"]
            );
            assert_eq!(
                inbound["packets_lost"],
                p["metrics"]["inbound"]["total_packets_lost"]
            );
            let events = follow_rest(
                &base,
                format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call_sid}/Events.json"),
                "events",
            )
            .await;
            assert_eq!(events, model.call_events(call_sid));
        }
    }
    let ordinary = &model.calls()[0];
    assert_eq!(
        model.summary(&ordinary.sid).unwrap_or_default()["attributes"]["conference_participant"],
        false
    );
    s.shutdown().await;
}

#[tokio::test]
async fn conference_routes_meet_faults() {
    let s = sim(SimConfig {
        conferences: 2,
        ..SimConfig::default()
    })
    .await;
    let model = s.model();
    let base = s.base_url();
    let (bad, good) = (&model.conferences()[0], &model.conferences()[1]);
    s.set_faults(Faults {
        fail_conference_sids: vec![bad.sid.clone()],
        ..Faults::default()
    });
    for path in [
        format!("/v1/Conferences/{}", bad.sid),
        format!("/v1/Conferences/{}/Participants", bad.sid),
        format!(
            "/v1/Conferences/{}/Participants/{}",
            bad.sid, bad.participants[0].sid
        ),
    ] {
        let (status, body) = twilio(&format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(body["code"], 20500, "{path}");
    }
    assert_eq!(
        twilio(&format!("{base}/v1/Conferences/{}", good.sid))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        twilio(&format!("{base}/v1/Conferences")).await.0,
        StatusCode::OK
    );
    assert_eq!(s.stats().injected_faults, 3);
    s.set_faults(Faults {
        error_429_ratio: 1.0,
        retry_after: Some("3".into()),
        ..Faults::default()
    });
    let r = client()
        .get(format!("{base}/v1/Conferences"))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("3")
    );
    s.set_faults(Faults {
        error_5xx_ratio: 1.0,
        ..Faults::default()
    });
    let (status, _) = twilio(&format!("{base}/v1/Conferences/{}/Participants", good.sid)).await;
    assert!(status.is_server_error());
    s.set_faults(Faults {
        malformed_ratio: 1.0,
        ..Faults::default()
    });
    let r = client()
        .get(format!("{base}/v1/Conferences"))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("body");
    assert!(serde_json::from_str::<Value>(&text).is_err());
    s.set_faults(Faults {
        drop_ratio: 1.0,
        ..Faults::default()
    });
    let r = client()
        .get(format!("{base}/v1/Conferences/{}", good.sid))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("headers");
    assert!(r.bytes().await.is_err());
    s.set_faults(Faults {
        foreign_next_page: true,
        ..Faults::default()
    });
    let (_, body) = twilio(&format!("{base}/v1/Conferences?PageSize=1")).await;
    let next = body["meta"]["next_page_url"].as_str().unwrap_or("");
    assert!(next.starts_with("http://evil.invalid:"), "{next}");
    let stats = s.stats();
    assert_eq!(stats.injected_faults, 7);
    assert_eq!(stats.rows_served.get("conferences"), Some(&(1 + 2 + 1)));
    s.shutdown().await;
}

#[tokio::test]
async fn accounts_list_paging_and_status_filter() {
    let s = sim(accounts_config()).await;
    let model = s.model();
    let base = s.base_url();
    let accounts = model.accounts();
    assert_eq!(accounts.len(), 4);
    assert_eq!(accounts[0].sid, ACCOUNT);
    assert!(accounts[0].is_parent());
    let statuses: Vec<(&str, bool)> = accounts
        .iter()
        .map(|a| (a.status.as_str(), a.refuse_parent))
        .collect();
    assert_eq!(
        statuses,
        [
            ("active", false),
            ("active", false),
            ("suspended", false),
            ("closed", true)
        ]
    );
    for a in &accounts[1..] {
        assert!(lower_sid(&a.sid, "AC"), "{}", a.sid);
        assert!(!a.is_parent());
        assert_eq!(a.owner_account_sid, ACCOUNT);
        assert!(!format!("{a:?}").contains(a.auth_token()));
    }
    let all = follow_rest(
        &base,
        "/2010-04-01/Accounts.json?PageSize=1".into(),
        "accounts",
    )
    .await;
    let sids: Vec<&str> = all.iter().filter_map(|a| a["sid"].as_str()).collect();
    let expected: Vec<&str> = accounts.iter().map(|a| a.sid.as_str()).collect();
    assert_eq!(sids, expected);
    for (item, account) in all.iter().zip(accounts) {
        assert_eq!(keys(item), sorted(&ACCOUNT_FIELDS));
        assert_eq!(Some(item.clone()), model.account_resource(&account.sid));
        assert_eq!(item["type"], "Full");
        assert_eq!(item["owner_account_sid"], ACCOUNT);
        assert_eq!(item["status"], account.status.as_str());
        assert_eq!(item["auth_token"], account.auth_token());
        assert_eq!(rfc2822(&item["date_created"]), account.date_created);
        assert_eq!(rfc2822(&item["date_updated"]), account.date_updated);
        let uri = format!("/2010-04-01/Accounts/{}", account.sid);
        assert_eq!(item["uri"], format!("{uri}.json"));
        assert_eq!(
            item["subresource_uris"]["calls"],
            format!("{uri}/Calls.json")
        );
    }
    assert_eq!(accounts[0].auth_token(), TOKEN);
    let tokens: Vec<&str> = accounts.iter().map(|a| a.auth_token()).collect();
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), tokens.len());

    let (_, page) = twilio(&format!("{base}/2010-04-01/Accounts.json?PageSize=2")).await;
    assert_eq!(
        page["next_page_uri"],
        "/2010-04-01/Accounts.json?PageSize=2&Page=1&PageToken=PT2"
    );
    assert_eq!(page["start"], 0);
    assert_eq!(page["end"], 1);
    for (status, want) in [
        (
            "active",
            vec![accounts[0].sid.as_str(), accounts[1].sid.as_str()],
        ),
        ("suspended", vec![accounts[2].sid.as_str()]),
        ("closed", vec![accounts[3].sid.as_str()]),
    ] {
        let got = follow_rest(
            &base,
            format!("/2010-04-01/Accounts.json?Status={status}&PageSize=1"),
            "accounts",
        )
        .await;
        let got: Vec<&str> = got.iter().filter_map(|a| a["sid"].as_str()).collect();
        assert_eq!(got, want, "{status}");
    }
    let (_, page) = twilio(&format!(
        "{base}/2010-04-01/Accounts.json?Status=active&PageSize=1"
    ))
    .await;
    assert_eq!(
        page["next_page_uri"],
        "/2010-04-01/Accounts.json?Status=active&PageSize=1&Page=1&PageToken=PT1"
    );
    let (status, body) = twilio(&format!("{base}/2010-04-01/Accounts.json?Status=gone")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 20001);
    let (_, named) = twilio(&format!(
        "{base}/2010-04-01/Accounts.json?FriendlyName={}",
        accounts[2].friendly_name.replace(' ', "%20")
    ))
    .await;
    assert_eq!(named["accounts"][0]["sid"], accounts[2].sid.as_str());
    assert_eq!(named["accounts"].as_array().map(Vec::len), Some(1));

    // One account: the parent's credentials see it, even the one that refuses the parent's
    // records is listed but not fetched.
    let (status, one) = twilio(&format!(
        "{base}/2010-04-01/Accounts/{}.json",
        accounts[1].sid
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Some(one), model.account_resource(&accounts[1].sid));
    let (status, body) = twilio(&format!(
        "{base}/2010-04-01/Accounts/{}.json",
        accounts[3].sid
    ))
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 20003);

    // A subaccount's own credentials list only itself.
    let sub = &accounts[1];
    let own = follow_rest_as(
        &base,
        "/2010-04-01/Accounts.json".into(),
        "accounts",
        (&sub.sid, sub.auth_token()),
    )
    .await;
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["sid"], sub.sid.as_str());
    let stats = s.stats();
    assert!(
        stats
            .requests_by_route
            .get("accounts")
            .is_some_and(|n| *n >= 4)
    );
    assert_eq!(stats.requests_by_route.get("account"), Some(&2));
    s.shutdown().await;
}

#[tokio::test]
async fn parent_credentials_reach_subaccounts_unless_refused() {
    let config = SimConfig {
        api_key: Some(("SK0123".into(), "key-secret".into())),
        ..accounts_config()
    };
    let s = sim(config).await;
    let model = s.model();
    let base = s.base_url();
    let accounts = model.accounts();
    let (sub, refusing) = (&accounts[1], &accounts[3]);
    let calls_of = |sid: &str| -> Vec<String> {
        let mut v: Vec<_> = model
            .calls()
            .iter()
            .filter(|c| c.account_sid == sid)
            .collect();
        v.sort_by(|a, b| b.start_time.cmp(&a.start_time).then(a.sid.cmp(&b.sid)));
        v.into_iter().map(|c| c.sid.clone()).collect()
    };
    let sids = |items: &[Value], key: &str| -> Vec<String> {
        items
            .iter()
            .filter_map(|c| c[key].as_str().map(String::from))
            .collect()
    };
    // Calls.json of each account lists only its own calls.
    for account in &accounts[..3] {
        for creds in [(ACCOUNT, TOKEN), ("SK0123", "key-secret")] {
            let listed = follow_rest_as(
                &base,
                format!("/2010-04-01/Accounts/{}/Calls.json?PageSize=4", account.sid),
                "calls",
                creds,
            )
            .await;
            assert_eq!(
                sids(&listed, "sid"),
                calls_of(&account.sid),
                "{}",
                account.sid
            );
            assert!(
                listed
                    .iter()
                    .all(|c| c["account_sid"] == account.sid.as_str())
            );
        }
    }
    assert_eq!(
        calls_of(&sub.sid).len(),
        6 + model.conferences()[4..6]
            .iter()
            .map(|c| c.participants.len())
            .sum::<usize>()
    );
    let sub_call = model
        .calls()
        .iter()
        .find(|c| c.account_sid == sub.sid)
        .expect("a subaccount call");
    let parent_call = &model.calls()[0];
    let (status, body) = twilio(&format!(
        "{base}/2010-04-01/Accounts/{}/Calls/{}.json",
        sub.sid, sub_call.sid
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["account_sid"], sub.sid.as_str());
    let (status, _) = twilio(&format!(
        "{base}/2010-04-01/Accounts/{}/Calls/{}.json",
        ACCOUNT, sub_call.sid
    ))
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a call is found under its own account only"
    );
    let (status, _) = twilio(&format!(
        "{base}/2010-04-01/Accounts/{}/Calls/{}/Events.json",
        sub.sid, sub_call.sid
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    for path in ["Events", "Metrics", "Summary"] {
        let (status, _) = twilio(&format!("{base}/v1/Voice/{}/{path}", sub_call.sid)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    // The refusing subaccount: 403 with Twilio's body on REST paths and Insights records.
    let refused_call = model
        .calls()
        .iter()
        .find(|c| c.account_sid == refusing.sid && c.conference_sid.is_none())
        .expect("a refused call");
    let refused_conference = model
        .conferences()
        .iter()
        .find(|c| c.account_sid == refusing.sid)
        .expect("a refused conference");
    let forbidden = [
        format!("/2010-04-01/Accounts/{}/Calls.json", refusing.sid),
        format!("/2010-04-01/Accounts/{}.json", refusing.sid),
        format!(
            "/2010-04-01/Accounts/{}/Calls/{}.json",
            refusing.sid, refused_call.sid
        ),
        format!(
            "/2010-04-01/Accounts/{}/Calls/{}/Events.json",
            refusing.sid, refused_call.sid
        ),
        format!("/v1/Voice/{}/Events", refused_call.sid),
        format!("/v1/Voice/{}/Metrics", refused_call.sid),
        format!("/v1/Voice/{}/Summary", refused_call.sid),
        format!(
            "/v1/Voice/Summaries?StartTime=2024-05-01T00:00:00Z&EndTime=2024-05-02T00:00:00Z&Subaccount={}",
            refusing.sid
        ),
        format!("/v1/Conferences?Subaccount={}", refusing.sid),
        format!("/v1/Conferences/{}", refused_conference.sid),
        format!("/v1/Conferences/{}/Participants", refused_conference.sid),
        format!(
            "/v1/Conferences/{}/Participants/{}",
            refused_conference.sid, refused_conference.participants[0].sid
        ),
    ];
    for path in &forbidden {
        for creds in [(ACCOUNT, TOKEN), ("SK0123", "key-secret")] {
            let (status, body) = twilio_as(&format!("{base}{path}"), creds.0, creds.1).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
            assert_eq!(body["code"], 20003, "{path}");
            assert_eq!(body["status"], 403, "{path}");
            assert!(body["message"].is_string());
            assert!(body["more_info"].is_string());
        }
    }
    // ...while the subaccount's own credentials get in.
    for path in &forbidden {
        let (status, body) = twilio_as(
            &format!("{base}{path}"),
            &refusing.sid,
            refusing.auth_token(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // A subaccount's credentials do not reach the parent or a sibling.
    let (sub_user, sub_pass) = (sub.sid.as_str(), sub.auth_token());
    let (status, _) = twilio_as(
        &format!("{base}/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
        sub_user,
        sub_pass,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = twilio_as(
        &format!("{base}/v1/Voice/{}/Summary", parent_call.sid),
        sub_user,
        sub_pass,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = twilio_as(
        &format!("{base}/2010-04-01/Accounts/{}/Calls.json", accounts[2].sid),
        sub_user,
        sub_pass,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An account that is neither the parent nor a subaccount: as before, 401.
    let stranger = format!("AC{}", "1".repeat(32));
    let (status, body) = twilio(&format!("{base}/2010-04-01/Accounts/{stranger}/Calls.json")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 20003);
    let (status, _) = twilio(&format!("{base}/v1/Conferences?Subaccount={stranger}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    s.shutdown().await;
}

#[tokio::test]
async fn records_carry_their_own_account() {
    let s = sim(SimConfig {
        now: Some(at(2024, 5, 3, 0, 0)),
        ..accounts_config()
    })
    .await;
    let model = s.model();
    let base = s.base_url();
    for call in model.calls() {
        let account = call.account_sid.as_str();
        assert_eq!(
            model.call_resource(&call.sid).unwrap_or_default()["account_sid"],
            account
        );
        assert_eq!(
            model.summary(&call.sid).unwrap_or_default()["account_sid"],
            account
        );
        for edge in call.edges() {
            assert!(
                model
                    .insights_events(&call.sid, Some(edge))
                    .iter()
                    .all(|e| e["account_sid"] == account)
            );
            assert!(
                model
                    .insights_metrics(&call.sid, Some(edge))
                    .iter()
                    .all(|m| m["account_sid"] == account)
            );
        }
        for event in model.call_events(&call.sid) {
            let params = &event["request"]["parameters"];
            let given = params
                .get("AccountSid")
                .or_else(|| params.get("account_sid"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(given, account);
            if let Some(url) = event["request"]["url"].as_str()
                && url.starts_with("https://api.twilio.com")
            {
                assert!(url.contains(account), "{url}");
            }
        }
    }
    for conference in model.conferences() {
        let account = conference.account_sid.as_str();
        assert_eq!(
            model
                .conference_summary(&conference.sid)
                .unwrap_or_default()["account_sid"],
            account
        );
        for p in model.conference_participants(&conference.sid) {
            assert_eq!(p["account_sid"], account);
        }
        for p in &conference.participants {
            let (_, call) = model.find_call(&p.call_sid).expect("call");
            assert_eq!(call.account_sid, account);
        }
    }
    // Lists: the authenticated account's own by default, a subaccount's with `Subaccount`.
    let window = "StartTime=2024-04-30T00:00:00Z&EndTime=2024-05-03T00:00:00Z";
    for (i, account) in model.accounts().iter().enumerate().take(3) {
        let suffix = if i == 0 {
            String::new()
        } else {
            format!("&Subaccount={}", account.sid)
        };
        let conferences = follow_insights(
            format!("{base}/v1/Conferences?PageSize=1{suffix}"),
            "conferences",
        )
        .await;
        let mut expected: Vec<&super::SimConference> = model
            .conferences()
            .iter()
            .filter(|c| c.account_sid == account.sid)
            .collect();
        expected.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(a.sid.cmp(&b.sid)));
        let got: Vec<&str> = conferences
            .iter()
            .filter_map(|c| c["conference_sid"].as_str())
            .collect();
        let want: Vec<&str> = expected.iter().map(|c| c.sid.as_str()).collect();
        assert_eq!(got, want, "{}", account.sid);
        assert!(!want.is_empty());
        let summaries = follow_insights(
            format!("{base}/v1/Voice/Summaries?{window}&PageSize=5{suffix}"),
            "call_summaries",
        )
        .await;
        let n = model
            .calls()
            .iter()
            .filter(|c| c.account_sid == account.sid)
            .count();
        assert_eq!(summaries.len(), n, "{}", account.sid);
        assert!(
            summaries
                .iter()
                .all(|c| c["account_sid"] == account.sid.as_str())
        );
        if i > 0 {
            let (_, page) = twilio(&format!("{base}/v1/Conferences?PageSize=1{suffix}")).await;
            let next = page["meta"]["next_page_url"].as_str().unwrap_or("");
            assert!(
                next.is_empty() || next.contains(&format!("Subaccount={}", account.sid)),
                "{next}"
            );
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn subaccounts_are_deterministic_and_never_collide() {
    let config = accounts_config();
    let a = super::Model::build(&config, "http://127.0.0.1:1".into());
    let b = super::Model::build(&config, "http://127.0.0.1:1".into());
    assert_eq!(a.calls(), b.calls());
    assert_eq!(a.accounts(), b.accounts());
    assert_eq!(a.conferences(), b.conferences());
    for call in a.calls() {
        assert_eq!(a.call_resource(&call.sid), b.call_resource(&call.sid));
        assert_eq!(a.call_events(&call.sid), b.call_events(&call.sid));
        assert!(call.start_time >= config.from && call.start_time < config.to + Span::hours(1));
    }
    let mut sids: Vec<&str> = a.calls().iter().map(|c| c.sid.as_str()).collect();
    sids.extend(a.accounts().iter().map(|x| x.sid.as_str()));
    sids.extend(a.conferences().iter().map(|c| c.sid.as_str()));
    sids.extend(
        a.conferences()
            .iter()
            .flat_map(|c| c.participants.iter().map(|p| p.sid.as_str())),
    );
    let n = sids.len();
    sids.sort_unstable();
    sids.dedup();
    assert_eq!(sids.len(), n, "no SID is used twice");
    // The parent's generated calls are those of a config without subaccounts.
    let plain = super::Model::build(
        &SimConfig {
            subaccounts: Vec::new(),
            ..config.clone()
        },
        "http://127.0.0.1:1".into(),
    );
    assert_eq!(plain.calls(), &a.calls()[..plain.calls().len()]);
    // Per account: generated calls, then its conferences' participants.
    for (k, spec) in config.subaccounts.iter().enumerate() {
        let account = &a.accounts()[k + 1];
        let mine: Vec<&super::SimCall> = a
            .calls()
            .iter()
            .filter(|c| c.account_sid == account.sid)
            .collect();
        let conferences: Vec<&super::SimConference> = a
            .conferences()
            .iter()
            .filter(|c| c.account_sid == account.sid)
            .collect();
        assert_eq!(conferences.len(), spec.conferences);
        let participants: usize = conferences.iter().map(|c| c.participants.len()).sum();
        assert_eq!(mine.len(), spec.calls + participants);
        assert!(
            mine[..spec.calls]
                .iter()
                .all(|c| c.conference_sid.is_none())
        );
        assert!(
            mine[spec.calls..]
                .iter()
                .all(|c| c.conference_sid.is_some())
        );
        let first: Vec<CallType> = conferences[0]
            .participants
            .iter()
            .map(|p| p.call_type)
            .collect();
        for t in [CallType::Carrier, CallType::Sip, CallType::Client] {
            assert!(first.contains(&t));
        }
    }
    let other = super::Model::build(
        &SimConfig {
            seed: 7,
            ..config.clone()
        },
        "http://127.0.0.1:1".into(),
    );
    assert_ne!(other.accounts()[1].sid, a.accounts()[1].sid);
    assert_eq!(other.accounts()[0].sid, a.accounts()[0].sid);
}

/// Every body of a crawl of conferences, accounts and a subaccount's calls, port replaced.
async fn conference_crawl(seed: u64) -> Vec<String> {
    let s = sim(SimConfig {
        seed,
        calls: 3,
        telnyx_calls: 0,
        conferences: 3,
        subaccounts: vec![SubaccountSpec {
            calls: 2,
            conferences: 1,
            ..SubaccountSpec::default()
        }],
        now: Some(at(2024, 5, 2, 0, 0)),
        ..SimConfig::default()
    })
    .await;
    let base = s.base_url();
    let model = s.model();
    let sub = model.accounts()[1].sid.clone();
    let mut urls = vec![
        format!("{base}/2010-04-01/Accounts.json"),
        format!("{base}/2010-04-01/Accounts/{sub}/Calls.json"),
        format!("{base}/v1/Conferences"),
        format!("{base}/v1/Conferences?Subaccount={sub}"),
    ];
    for c in model.conferences() {
        urls.push(format!("{base}/v1/Conferences/{}", c.sid));
        urls.push(format!("{base}/v1/Conferences/{}/Participants", c.sid));
    }
    let mut bodies = Vec::new();
    for url in urls {
        let (status, body) = twilio(&url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        bodies.push(body.to_string().replace(&base, "BASE"));
    }
    s.shutdown().await;
    bodies
}

#[tokio::test]
async fn same_seed_same_conference_and_account_bodies() {
    let (a, b, c) = (
        conference_crawl(7).await,
        conference_crawl(7).await,
        conference_crawl(8).await,
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn large_configs_build_quickly() {
    let config = SimConfig {
        calls: 14_000,
        conferences: 300,
        subaccounts: vec![SubaccountSpec {
            calls: 2_000,
            conferences: 50,
            ..SubaccountSpec::default()
        }],
        telnyx_calls: 0,
        ..SimConfig::default()
    };
    let started = Instant::now();
    let model = super::Model::build(&config, "http://127.0.0.1:1".into());
    let took = started.elapsed();
    assert!(model.calls().len() > 16_000);
    assert_eq!(model.conferences().len(), 350);
    assert!(took < Duration::from_secs(10), "{took:?}");
}
