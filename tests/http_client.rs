//! The HTTP client against purpose-built loopback servers: Retry-After is waited, next-page
//! links are pinned to the configured origin.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use url::Url;
use voxlake::http::{Api, ApiClient, ApiConfig, Auth, RetryPolicy};
use voxlake::secret::Secret;

/// Serves `/page`: the first `throttled` requests answer 429 with `retry_after`, the next ones
/// 200. Records when each request arrived.
fn throttling_server(
    runtime: &tokio::runtime::Runtime,
    retry_after: String,
    throttled: usize,
) -> (Url, Arc<Mutex<Vec<Instant>>>) {
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = Arc::clone(&arrivals);
    let app = Router::new().route(
        "/page",
        get(move || {
            let seen = Arc::clone(&seen);
            let retry_after = retry_after.clone();
            async move {
                let mut seen = seen.lock().expect("lock");
                seen.push(Instant::now());
                let mut headers = HeaderMap::new();
                if seen.len() <= throttled {
                    headers.insert("Retry-After", retry_after.parse().expect("header"));
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        headers,
                        "{\"code\": 20429}".to_string(),
                    );
                }
                (StatusCode::OK, headers, "{\"ok\": true}".to_string())
            }
        }),
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (
        Url::parse(&format!("http://{addr}/page")).expect("url"),
        arrivals,
    )
}

fn client(base: &Url, base_delay: Duration) -> ApiClient {
    ApiClient::new(ApiConfig {
        api: Api::TwilioInsights,
        base_url: Url::parse(&base.origin().ascii_serialization()).expect("origin"),
        auth: Auth::Basic {
            username: "AC00000000000000000000000000000000".into(),
            password: Secret::new("t"),
        },
        requests_per_second: 100,
        concurrency: 2,
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay,
            max_delay: Duration::from_secs(10),
        },
        max_body_bytes: 1 << 20,
    })
    .expect("client")
}

fn gap_after_429(retry_after: String) -> Duration {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (url, arrivals) = throttling_server(&runtime, retry_after, 1);
    let client = client(&url, Duration::from_millis(1));
    let body = runtime
        .block_on(client.get_with(&url, |b| Ok::<_, String>(b.to_vec())))
        .expect("second attempt succeeds");
    assert_eq!(body, b"{\"ok\": true}");
    let arrivals = arrivals.lock().expect("lock");
    assert_eq!(arrivals.len(), 2);
    arrivals[1] - arrivals[0]
}

#[test]
fn retry_after_seconds_is_waited() {
    // The backoff is 1 ms, so a 2 s gap can only come from Retry-After.
    assert!(gap_after_429("2".into()) >= Duration::from_secs(2));
}

#[test]
fn retry_after_as_an_http_date_is_waited() {
    let when = std::time::SystemTime::now() + Duration::from_secs(4);
    // HTTP dates have whole seconds, and the first request may wait for a busy machine: at
    // least 2 s remain when the 429 arrives.
    assert!(gap_after_429(httpdate::fmt_http_date(when)) >= Duration::from_secs(2));
}

#[test]
fn retry_after_zero_backs_off_instead_of_spinning() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (url, arrivals) = throttling_server(&runtime, "0".into(), usize::MAX);
    let client = client(&url, Duration::from_millis(200));
    let result = runtime.block_on(client.get_with(&url, |b| Ok::<_, String>(b.to_vec())));
    let error = result.expect_err("always throttled").to_string();
    assert!(error.contains("failed after 3 attempts"), "{error}");
    assert!(error.contains("HTTP 429"), "{error}");
    let arrivals = arrivals.lock().expect("lock");
    assert_eq!(arrivals.len(), 3);
    // Backoff with equal jitter: at least half of 200 ms, then of 400 ms.
    assert!(arrivals[1] - arrivals[0] >= Duration::from_millis(100));
    assert!(arrivals[2] - arrivals[1] >= Duration::from_millis(200));
}
