//! A purpose-built loopback server for faults the simulator does not make: it forwards to the
//! simulator and, for the first N requests whose path contains a marker, answers otherwise
//! (200 with an error object, 200 with HTML, a wrong Content-Type, a huge body, a redirect to
//! another host). Links in forwarded bodies are rewritten to point back at the proxy.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What the proxy does instead of forwarding.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// 200 with a Twilio error object.
    ErrorObject,
    /// 200 with an HTML page.
    Html,
    /// The real body, labelled `text/html`.
    WrongContentType,
    /// 200 with a body of this many bytes (valid JSON).
    Huge(usize),
    /// 302 to this URL.
    Redirect(String),
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    own: Arc<Mutex<String>>,
    marker: String,
    mutation: Mutation,
    remaining: Arc<AtomicUsize>,
    mutated: Arc<AtomicUsize>,
    client: reqwest::Client,
}

/// A running proxy.
pub struct Proxy {
    pub base_url: String,
    mutated: Arc<AtomicUsize>,
}

impl Proxy {
    /// Starts on 127.0.0.1:0 in `runtime`, in front of `upstream`.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        upstream: &str,
        marker: &str,
        mutation: Mutation,
        times: usize,
    ) -> Proxy {
        let state = ProxyState {
            upstream: upstream.to_string(),
            own: Arc::default(),
            marker: marker.to_string(),
            mutation,
            remaining: Arc::new(AtomicUsize::new(times)),
            mutated: Arc::default(),
            client: reqwest::Client::new(),
        };
        let mutated = Arc::clone(&state.mutated);
        let own = Arc::clone(&state.own);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        *own.lock().expect("lock") = base_url.clone();
        let app = Router::new().fallback(handle).with_state(state);
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { base_url, mutated }
    }

    /// How many answers were mutated.
    pub fn mutated(&self) -> usize {
        self.mutated.load(Ordering::SeqCst)
    }
}

fn take_one(state: &ProxyState, path: &str) -> bool {
    path.contains(&state.marker)
        && state
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
}

async fn handle(State(state): State<ProxyState>, request: Request) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let mut relabel = false;
    if take_one(&state, &path_and_query) {
        state.mutated.fetch_add(1, Ordering::SeqCst);
        match &state.mutation {
            Mutation::WrongContentType => relabel = true,
            other => return mutate(other),
        }
    }
    let mut forward = state
        .client
        .get(format!("{}{path_and_query}", state.upstream));
    if let Some(auth) = request.headers().get(header::AUTHORIZATION) {
        forward = forward.header(header::AUTHORIZATION, auth.clone());
    }
    let Ok(answer) = forward.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status().as_u16();
    let mut headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(value) = answer.headers().get(name.as_str()) {
            headers.insert(name, value.clone());
        }
    }
    let body = answer.text().await.unwrap_or_default();
    let own = state.own.lock().map(|o| o.clone()).unwrap_or_default();
    let body = body.replace(&state.upstream, &own);
    if relabel {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        headers,
        body,
    )
        .into_response()
}

fn mutate(mutation: &Mutation) -> Response {
    match mutation {
        Mutation::ErrorObject => json(r#"{"code": 20500, "message": "Internal Server Error", "more_info": "https://www.twilio.com/docs/errors/20500", "status": 500}"#.to_string(), "application/json"),
        Mutation::Html => json("<html><body>Service Unavailable</body></html>".to_string(), "text/html"),
        Mutation::WrongContentType => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mutation::Huge(bytes) => {
            let filler = "x".repeat(*bytes);
            json(format!(r#"{{"meta": {{}}, "metrics": [], "padding": "{filler}"}}"#), "application/json")
        }
        Mutation::Redirect(to) => {
            let mut response = StatusCode::FOUND.into_response();
            if let Ok(value) = HeaderValue::from_str(to) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
    }
}

fn json(body: String, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
