//! Black-box tests of the simulator over HTTP: paging against the model, auth, filters, the
//! Telnyx rules, the rate limit, every fault kind, determinism and drift.

use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use super::{CallSpec, CallType, Faults, SimConfig, SimHandle, start};

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
