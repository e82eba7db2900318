//! The HTTP side: binds 127.0.0.1, runs every request through the same steps — count, route,
//! auth, rate limit, fault plan, handler — and delivers the reply whole, dropped mid-body or
//! truncated. [`SimHandle`] reads the stats and the model, swaps faults, and shuts down.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::serve::ListenerExt;
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::auth::{Credentials, Principal};
use super::cache::PageCache;
use super::config::{Faults, SimConfig};
use super::faults::{self, Plan};
use super::limit::Limits;
use super::model::Model;
use super::paging::{LinkFaults, Params};
use super::reply::{Reply, telnyx_error, twilio_error, twilio_not_found, twilio_unauthorized};
use super::routes::{Api, Route};
use super::stats::{SimStats, Stats};
use super::{api_conferences, api_insights, api_rest, api_telnyx};

/// Shared state of a running simulator.
struct App {
    model: Arc<Model>,
    credentials: Credentials,
    faults: RwLock<Arc<Faults>>,
    limits: Option<Limits>,
    stats: Arc<Stats>,
    /// Sequence number of API requests, for fault decisions.
    seq: AtomicU64,
    /// Injected 5xx so far, to rotate among 500/502/503/504.
    rotation: AtomicU64,
    port: u16,
    shutdown: watch::Receiver<bool>,
    /// Rendered per-call pages served again as they are (`SimConfig::page_cache_bytes`).
    cache: Option<PageCache>,
}

impl App {
    fn faults(&self) -> Arc<Faults> {
        self.faults
            .read()
            .map(|f| Arc::clone(&f))
            .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
    }
}

/// A running simulator. Dropping it stops the server too (without waiting).
pub struct SimHandle {
    addr: SocketAddr,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<io::Result<()>>>,
}

/// Starts the simulator on `127.0.0.1:port` (0 = an ephemeral port).
pub async fn start(config: SimConfig, port: u16) -> io::Result<SimHandle> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    let addr = listener.local_addr()?;
    let model = Arc::new(Model::build(&config, format!("http://{addr}")));
    let subaccounts: Vec<(String, String)> = model
        .accounts()
        .iter()
        .skip(1)
        .map(|a| (a.sid.clone(), a.auth_token().to_string()))
        .collect();
    let credentials = Credentials::new(
        &config.account_sid,
        &config.auth_token,
        config.api_key.as_ref(),
        &subaccounts,
        &config.telnyx_key,
    );
    let (stop, shutdown) = watch::channel(false);
    let app = Arc::new(App {
        model,
        credentials,
        faults: RwLock::new(Arc::new(config.faults.clone())),
        limits: config.rate_limit_per_sec.map(Limits::new),
        stats: Arc::new(Stats::default()),
        seq: AtomicU64::new(0),
        rotation: AtomicU64::new(0),
        port: addr.port(),
        shutdown: shutdown.clone(),
        cache: PageCache::new(config.page_cache_bytes),
    });
    let router = Router::new()
        .fallback(dispatch)
        .with_state(Arc::clone(&app));
    let listener = listener.tap_io(|tcp| {
        // Small JSON answers: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router).with_graceful_shutdown(wait_for_shutdown(shutdown));
    let task = tokio::spawn(async move { server.await });
    Ok(SimHandle {
        addr,
        app,
        stop,
        task: Some(task),
    })
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.app.stats.snapshot()
    }

    /// The model the simulator serves.
    pub fn model(&self) -> Arc<Model> {
        Arc::clone(&self.app.model)
    }

    /// Replaces the faults for the requests that arrive from now on.
    pub fn set_faults(&self, faults: Faults) {
        let mut guard = self.app.faults.write().unwrap_or_else(|e| e.into_inner());
        *guard = Arc::new(faults);
    }

    /// Stops accepting, releases hanging requests, and waits (at most 5 s) for the server.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Resolves once shutdown is signalled (or the handle is gone).
async fn wait_for_shutdown(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Every request: count, route, gate (auth, limit), then the API.
async fn dispatch(State(app): State<Arc<App>>, request: Request) -> Response {
    let route = Route::parse(request.method(), request.uri().path());
    app.stats.request(route.name(), route.call_sid());
    let who = match gate(&app, &route, request.uri().path(), request.headers()) {
        Ok(who) => who,
        Err(reply) => return deliver(&app, reply, Delivery::Whole),
    };
    let params = Params::parse(request.uri().query());
    match app.cache.as_ref() {
        Some(cache) if PageCache::keeps(&route) && *app.faults() == Faults::default() => {
            serve_cached(
                &app,
                cache,
                &route,
                &params,
                who,
                &request.uri().to_string(),
            )
        }
        _ => serve_api(&app, &route, &params, who).await,
    }
}

/// A request of a route the page cache keeps, while no faults are set: the kept page, or the
/// handler's (then kept while there is room).
fn serve_cached(
    app: &App,
    cache: &PageCache,
    route: &Route,
    params: &Params,
    who: Principal,
    target: &str,
) -> Response {
    if let Some(reply) = cache.get(who, target) {
        return deliver(app, reply, Delivery::Whole);
    }
    let reply = handle(app, route, params, &LinkFaults::default(), who);
    cache.put(who, target, &reply);
    deliver(app, reply, Delivery::Whole)
}

/// Unknown paths, wrong methods, bad credentials and the rate limit, in that order; who the
/// request authenticated as (the parent for Telnyx, which has no accounts).
fn gate(app: &App, route: &Route, path: &str, headers: &HeaderMap) -> Result<Principal, Reply> {
    let Some(api) = route.api() else {
        return Err(twilio_not_found(path));
    };
    if let Route::NotAllowed(_) = route {
        return Err(match api {
            Api::Telnyx => telnyx_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "10405",
                "Method not allowed",
                path,
            ),
            _ => twilio_error(StatusCode::METHOD_NOT_ALLOWED, 20004, "Method not allowed"),
        });
    }
    let who = match api {
        Api::Telnyx if !app.credentials.telnyx_ok(headers) => {
            return Err(telnyx_error(
                StatusCode::UNAUTHORIZED,
                "10009",
                "Authentication failed",
                "The API key is missing or invalid: send Authorization: Bearer <key>",
            ));
        }
        Api::Telnyx => Principal(0),
        Api::Insights | Api::Rest => app
            .credentials
            .twilio(headers)
            .ok_or_else(twilio_unauthorized)?,
    };
    if app.limits.as_ref().is_some_and(|l| !l.allow(api)) {
        app.stats.rate_limited();
        return Err(faults::too_many(api).with_retry_after(Some("1".to_string())));
    }
    Ok(who)
}

/// Plans faults for an admitted API request and carries the plan out.
async fn serve_api(app: &App, route: &Route, params: &Params, who: Principal) -> Response {
    let faults = app.faults();
    let seq = app.seq.fetch_add(1, Ordering::Relaxed);
    let seed = app.model.ctx().seed;
    let page = params
        .get("Page")
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0);
    let plan = faults::plan(seed, seq, (route, page), &faults, || {
        app.rotation.fetch_add(1, Ordering::Relaxed)
    });
    if plan.is_fault() {
        app.stats.fault();
    }
    let links = faults::link_faults(&faults, app.port);
    let handle = || handle(app, route, params, &links, who);
    match plan {
        Plan::Normal => deliver(app, handle(), Delivery::Whole),
        Plan::Fail(reply) => deliver(app, reply, Delivery::Whole),
        Plan::Drop => deliver(app, handle(), Delivery::Drop),
        Plan::Malformed => deliver(app, handle(), Delivery::Truncate),
        Plan::Slow(delay) => {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = wait_for_shutdown(app.shutdown.clone()) => {}
            }
            deliver(app, handle(), Delivery::Whole)
        }
        Plan::Hang => {
            wait_for_shutdown(app.shutdown.clone()).await;
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    }
}

/// The route's handler, for a request from `who`.
fn handle(app: &App, route: &Route, params: &Params, links: &LinkFaults, who: Principal) -> Reply {
    let m = &app.model;
    let result = match route {
        Route::InsightsEvents { sid } => api_insights::events(m, who, sid, params, links),
        Route::InsightsMetrics { sid } => api_insights::metrics(m, who, sid, params, links),
        Route::Summary { sid } => api_insights::summary(m, who, sid),
        Route::Summaries => api_insights::summaries(m, who, params, links),
        Route::Conferences => api_conferences::conferences(m, who, params, links),
        Route::Conference { sid } => api_conferences::conference(m, who, sid),
        Route::ConferenceParticipants { sid } => {
            api_conferences::participants(m, who, sid, params, links)
        }
        Route::ConferenceParticipant { sid, participant } => {
            api_conferences::participant(m, who, sid, participant)
        }
        Route::Accounts => api_rest::accounts(m, who, params, links),
        Route::Account { account } => api_rest::account(m, who, account),
        Route::CallEvents { account, sid } => {
            api_rest::call_events(m, who, account, sid, params, links)
        }
        Route::Call { account, sid } => api_rest::call(m, who, account, sid),
        Route::Calls { account } => api_rest::calls(m, who, account, params, links),
        Route::TelnyxEvents => api_telnyx::call_events(m, params, &app.faults()),
        Route::NotAllowed(_) | Route::NotFound => Err(twilio_not_found("")),
    };
    result.unwrap_or_else(|error| error)
}

/// How a reply's body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// All of it.
    Whole,
    /// Full `Content-Length`, half the bytes, then the stream errors (connection drops).
    Drop,
    /// Half the bytes with a matching `Content-Length`: a 200 with broken JSON.
    Truncate,
}

/// Builds the response and records its status (and rows, once sent whole).
fn deliver(app: &App, reply: Reply, delivery: Delivery) -> Response {
    app.stats.status(reply.status.as_u16());
    let Reply {
        status,
        mut body,
        rows,
        retry_after,
        www_authenticate,
    } = reply;
    let full_len = body.len();
    let (body, length) = match delivery {
        Delivery::Whole => match rows {
            Some((table, rows)) if status == StatusCode::OK => {
                let stream = CountedOnce {
                    bytes: Some(Bytes::from(body)),
                    stats: Arc::clone(&app.stats),
                    table,
                    rows,
                };
                (Body::from_stream(stream), full_len)
            }
            _ => (Body::from(body), full_len),
        },
        Delivery::Drop => {
            let first = Bytes::from(body).slice(..full_len / 2);
            let broken = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "simulated connection drop",
            );
            // Pause before failing so hyper flushes the headers and the first half.
            let fail = async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(broken)
            };
            let stream =
                futures::stream::once(async move { Ok(first) }).chain(futures::stream::once(fail));
            (Body::from_stream(stream), full_len)
        }
        Delivery::Truncate => {
            body.truncate(full_len / 2);
            let len = body.len();
            (Body::from(body), len)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(RETRY_AFTER, value);
    }
    if www_authenticate {
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
    }
    response
}

/// A one-chunk body that counts its rows as served when the chunk is handed to the connection.
struct CountedOnce {
    bytes: Option<Bytes>,
    stats: Arc<Stats>,
    table: &'static str,
    rows: u64,
}

impl Stream for CountedOnce {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let chunk = this.bytes.take().map(|bytes| {
            this.stats.rows(this.table, this.rows);
            Ok(bytes)
        });
        Poll::Ready(chunk)
    }
}
