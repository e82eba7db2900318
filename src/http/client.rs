//! `ApiClient`: one per API (Insights, REST, Telnyx). Every attempt, retries included, waits for
//! a permit of the API's governor limiter and a slot of its concurrency cap; retryable answers
//! and transport failures are retried with backoff; credentials go only to the configured origin.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::sync::Semaphore;
use url::Url;

use super::retry::{RetryPolicy, is_retryable_status, parse_retry_after};
use crate::secret::Secret;

/// The APIs voxlake talks to; each gets its own client, limiter and cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// Twilio Voice Insights (`insights.twilio.com`).
    TwilioInsights,
    /// Twilio REST 2010-04-01 (`api.twilio.com`).
    TwilioRest,
    /// Telnyx v2 (`api.telnyx.com`).
    Telnyx,
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Api::TwilioInsights => "Twilio Voice Insights",
            Api::TwilioRest => "Twilio REST",
            Api::Telnyx => "Telnyx",
        })
    }
}

/// How requests authenticate.
#[derive(Clone, Debug)]
pub enum Auth {
    /// HTTP Basic (Twilio: account SID + auth token, or API key SID + secret).
    Basic {
        /// The user name (a SID; not secret).
        username: String,
        /// The password (auth token or API secret).
        password: Secret,
    },
    /// `Authorization: Bearer` (Telnyx API key).
    Bearer(Secret),
}

/// Everything a client needs; built from the checked job plan.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Which API (names it in errors and logs).
    pub api: Api,
    /// Scheme, host and port every request and next-page link must use.
    pub base_url: Url,
    /// Credentials.
    pub auth: Auth,
    /// Limiter rate; every attempt takes one permit.
    pub requests_per_second: u32,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Timeout of one attempt, connection to last byte.
    pub timeout: Duration,
    /// Retry settings.
    pub retry: RetryPolicy,
    /// A larger body is refused with an error rather than read into memory.
    pub max_body_bytes: usize,
}

/// Counters of one client, read by progress bars and the run manifest.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Attempts sent.
    pub requests: AtomicU64,
    /// Attempts that were retried.
    pub retries: AtomicU64,
    /// 429 answers received.
    pub throttled: AtomicU64,
}

impl HttpStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request that did not give a usable answer. Never carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A non-retryable HTTP status, with the API's own error text when it sent one.
    #[error("{api}: GET {target} answered HTTP {status}{detail}")]
    Status {
        /// Which API.
        api: Api,
        /// Path and query of the request.
        target: String,
        /// The status code.
        status: u16,
        /// `: <the API's error>` or empty.
        detail: String,
    },
    /// Retries used up.
    #[error("{api}: GET {target} failed after {attempts} attempts; last: {last}")]
    GaveUp {
        /// Which API.
        api: Api,
        /// Path and query of the request.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// What the last attempt got.
        last: String,
    },
    /// A link that leaves the configured origin; credentials are not sent there.
    #[error(
        "{api}: refusing {url}: it is not on the configured origin {origin} (credentials are only sent there)"
    )]
    ForeignUrl {
        /// Which API.
        api: Api,
        /// The refused URL (scheme, host, port and path).
        url: String,
        /// The configured origin.
        origin: String,
    },
    /// The body is larger than the cap.
    #[error("{api}: GET {target}: body larger than {limit} bytes")]
    TooLarge {
        /// Which API.
        api: Api,
        /// Path and query of the request.
        target: String,
        /// The cap in bytes.
        limit: usize,
    },
    /// The client could not be built or the URL is unusable.
    #[error("{api}: {message}")]
    Setup {
        /// Which API.
        api: Api,
        /// What is wrong.
        message: String,
    },
}

enum Attempt {
    Body(Vec<u8>),
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fail(HttpError),
}

/// The client of one API.
pub struct ApiClient {
    http: reqwest::Client,
    api: Api,
    base_url: Url,
    auth: Auth,
    retry: RetryPolicy,
    max_body_bytes: usize,
    limiter: DefaultDirectRateLimiter,
    pace: super::pace::Pace,
    slots: Semaphore,
    stats: Arc<HttpStats>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("api", &self.api)
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// True for hosts on this machine, the only ones plain `http://` may reach.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl ApiClient {
    /// Builds the client; refuses plain `http://` to anything but loopback.
    pub fn new(config: ApiConfig) -> Result<ApiClient, HttpError> {
        let setup = |message: String| HttpError::Setup {
            api: config.api,
            message,
        };
        match config.base_url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&config.base_url) => {}
            _ => {
                return Err(setup(format!(
                    "{} must be https:// (plain http:// only to loopback)",
                    config.base_url
                )));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.concurrency)
            .user_agent(concat!("voxlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| setup(format!("cannot build the HTTP client: {e}")))?;
        let rate = NonZeroU32::new(config.requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        // A burst of a fiftieth of a second's permits: strict pacing at the rates APIs set
        // (25/s -> 1), and no timer wake-up per request when the limiter is wide open.
        let burst = NonZeroU32::new(rate.get() / 50).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(rate).allow_burst(burst);
        Ok(ApiClient {
            http,
            api: config.api,
            base_url: config.base_url,
            auth: config.auth,
            retry: config.retry,
            max_body_bytes: config.max_body_bytes,
            limiter: RateLimiter::direct(quota),
            pace: super::pace::Pace::new(config.api, f64::from(rate.get())),
            slots: Semaphore::new(config.concurrency.max(1)),
            stats: Arc::new(HttpStats::default()),
        })
    }

    /// Which API this client talks to.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The configured origin.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// This client's counters.
    pub fn stats(&self) -> Arc<HttpStats> {
        Arc::clone(&self.stats)
    }

    /// Resolves a path or relative URI (`/2010-04-01/...?...`) against the origin.
    pub fn join(&self, relative: &str) -> Result<Url, HttpError> {
        let url = self.base_url.join(relative).map_err(|e| HttpError::Setup {
            api: self.api,
            message: format!("bad relative URI {relative:?}: {e}"),
        })?;
        self.check_origin(&url)?;
        Ok(url)
    }

    /// Refuses a URL whose scheme, host or port differs from the configured origin.
    pub fn check_origin(&self, url: &Url) -> Result<(), HttpError> {
        let same = url.scheme() == self.base_url.scheme()
            && url.host_str() == self.base_url.host_str()
            && url.port_or_known_default() == self.base_url.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none();
        if same {
            return Ok(());
        }
        Err(HttpError::ForeignUrl {
            api: self.api,
            url: shown_url(url),
            origin: self.base_url.origin().ascii_serialization(),
        })
    }

    /// GETs `url` and hands the body to `parse`, retrying what is retryable: 429/5xx, timeouts,
    /// dropped connections, and bodies `parse` rejects (truncated or malformed pages).
    pub async fn get_with<T, E: fmt::Display>(
        &self,
        url: &Url,
        mut parse: impl FnMut(&[u8]) -> Result<T, E>,
    ) -> Result<T, HttpError> {
        self.check_origin(url)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (reason, retry_after) = match self.attempt(url).await {
                Attempt::Body(body) => match parse(&body) {
                    Ok(value) => return Ok(value),
                    Err(e) => {
                        let api_error = describe_error_body(&body)
                            .map(|d| format!(" (the body is an error: {d})"))
                            .unwrap_or_default();
                        (format!("unusable body: {e}{api_error}"), None)
                    }
                },
                Attempt::Retry {
                    reason,
                    retry_after,
                } => (reason, retry_after),
                Attempt::Fail(error) => return Err(error),
            };
            if attempt >= self.retry.max_attempts.max(1) {
                return Err(HttpError::GaveUp {
                    api: self.api,
                    target: target(url),
                    attempts: attempt,
                    last: reason,
                });
            }
            let delay = self.retry.delay(attempt, retry_after);
            HttpStats::bump(&self.stats.retries);
            tracing::debug!(api = %self.api, target = %target(url), attempt, %reason,
                delay_ms = delay.as_millis() as u64, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, url: &Url) -> Attempt {
        // The slot first: a request that waited for one after its limiter permit and its
        // paced time would go out late, in a burst with the others that waited.
        let Ok(_slot) = self.slots.acquire().await else {
            return Attempt::Fail(HttpError::Setup {
                api: self.api,
                message: "client closed".into(),
            });
        };
        self.limiter.until_ready().await;
        let paced = self.pace.reserve();
        if !paced.is_zero() {
            tokio::time::sleep(paced).await;
        }
        HttpStats::bump(&self.stats.requests);
        let request = match &self.auth {
            Auth::Basic { username, password } => self
                .http
                .get(url.clone())
                .basic_auth(username, Some(password.expose())),
            Auth::Bearer(token) => self.http.get(url.clone()).bearer_auth(token.expose()),
        };
        let response = match request.header("Accept", "application/json").send().await {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Retry {
                    reason: describe_transport_error(&e),
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = retry_after_of(response.headers());
        if response.status().is_success() {
            self.pace.succeeded();
            return match self.read_body(response, self.max_body_bytes).await {
                Ok(Some(body)) => Attempt::Body(body),
                Ok(None) => Attempt::Fail(HttpError::TooLarge {
                    api: self.api,
                    target: target(url),
                    limit: self.max_body_bytes,
                }),
                Err(reason) => Attempt::Retry {
                    reason,
                    retry_after: None,
                },
            };
        }
        let body = self
            .read_body(response, 64 * 1024)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let detail = describe_error_body(&body)
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        if status == 429 {
            HttpStats::bump(&self.stats.throttled);
            self.pace.throttled();
        }
        if is_retryable_status(status) {
            Attempt::Retry {
                reason: format!("HTTP {status}{detail}"),
                retry_after,
            }
        } else {
            Attempt::Fail(HttpError::Status {
                api: self.api,
                target: target(url),
                status,
                detail,
            })
        }
    }

    /// Reads a body up to `limit` bytes; `Ok(None)` when it is larger, `Err` when the
    /// connection drops mid-body.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, String> {
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Ok(None);
        }
        let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Ok(None);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(Some(body)),
                Err(e) => return Err(describe_transport_error(&e)),
            }
        }
    }
}

fn retry_after_of(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// Path and query of a URL, for messages (never credentials: they travel in headers).
fn target(url: &Url) -> String {
    let mut shown = url.path().to_string();
    if let Some(query) = url.query() {
        shown.push('?');
        shown.push_str(query);
    }
    shown.chars().take(300).collect()
}

/// A URL for messages: no user info, no query.
fn shown_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{host}{port}{}", url.scheme(), url.path())
        .chars()
        .take(300)
        .collect()
}

fn describe_transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the body"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

/// The API's own error text: Twilio `{code, message, more_info}` or Telnyx
/// `{errors: [{code, title, detail}]}`.
pub fn describe_error_body(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(errors) = value.get("errors").and_then(|e| e.as_array()) {
        let parts: Vec<String> = errors
            .iter()
            .take(3)
            .map(|e| {
                let field = |k: &str| e.get(k).map(json_text).unwrap_or_default();
                format!(
                    "Telnyx error {}: {}: {}",
                    field("code"),
                    field("title"),
                    field("detail")
                )
            })
            .collect();
        return (!parts.is_empty()).then(|| clip(&parts.join("; ")));
    }
    let code = value.get("code").map(json_text)?;
    let message = value.get("message").map(json_text).unwrap_or_default();
    let more = value
        .get("more_info")
        .map(|m| format!(" ({})", json_text(m)))
        .unwrap_or_default();
    Some(clip(&format!("Twilio error {code}: {message}{more}")))
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(400).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Result<ApiClient, HttpError> {
        ApiClient::new(ApiConfig {
            api: Api::TwilioRest,
            base_url: Url::parse(base).expect("url"),
            auth: Auth::Bearer(Secret::new("k")),
            requests_per_second: 10,
            concurrency: 2,
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            max_body_bytes: 1 << 20,
        })
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(client("http://127.0.0.1:9").is_ok());
        assert!(client("http://localhost:9").is_ok());
        assert!(client("http://api.twilio.com").is_err());
        assert!(client("https://api.twilio.com").is_ok());
    }

    #[test]
    fn links_must_stay_on_the_origin() {
        let c = client("http://127.0.0.1:9000").expect("client");
        let ok = Url::parse("http://127.0.0.1:9000/v1/Voice/x?Page=1").expect("url");
        assert!(c.check_origin(&ok).is_ok());
        for bad in [
            "http://127.0.0.1:9001/v1",
            "https://127.0.0.1:9000/v1",
            "http://evil.invalid:9000/v1",
            "http://user:pw@127.0.0.1:9000/v1",
        ] {
            let url = Url::parse(bad).expect("url");
            assert!(c.check_origin(&url).is_err(), "{bad}");
        }
        assert!(c.join("/2010-04-01/x.json?Page=2").is_ok());
        assert!(c.join("//evil.invalid/x").is_err());
    }

    #[test]
    fn error_bodies_are_described() {
        let twilio = br#"{"code": 20404, "message": "Not found", "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}"#;
        assert_eq!(
            describe_error_body(twilio).as_deref(),
            Some("Twilio error 20404: Not found (https://www.twilio.com/docs/errors/20404)")
        );
        let telnyx = br#"{"errors": [{"code": "10009", "title": "Authentication failed", "detail": "bad key"}]}"#;
        assert_eq!(
            describe_error_body(telnyx).as_deref(),
            Some("Telnyx error 10009: Authentication failed: bad key")
        );
        assert_eq!(describe_error_body(b"<html>"), None);
    }
}
