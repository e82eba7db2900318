//! Fault decisions: for each API request that passed auth and the rate limit, a seeded RNG
//! (seed, request sequence number) picks at most one fault by the configured ratios; calls
//! listed in `fail_call_sids` and conferences listed in `fail_conference_sids` always answer
//! 500. The server carries the plan out.

use std::time::Duration;

use axum::http::StatusCode;

use super::config::Faults;
use super::paging::LinkFaults;
use super::reply::{Reply, telnyx_error, twilio_error};
use super::rng::{Rng, tag};
use super::routes::{Api, Route};

/// What to do with one request.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// Answer normally.
    Normal,
    /// Answer this error instead (injected 429/5xx, failing call SID).
    Fail(Reply),
    /// Answer normally after a delay.
    Slow(Duration),
    /// Send 200 headers and part of the body, then break the connection.
    Drop,
    /// Never answer (until shutdown).
    Hang,
    /// Answer 200 with the body cut short.
    Malformed,
}

impl Plan {
    /// Whether this plan is an injected fault.
    pub(crate) fn is_fault(&self) -> bool {
        !matches!(self, Plan::Normal)
    }
}

/// The 5xx statuses injected in turn.
const STATUSES_5XX: [StatusCode; 4] = [
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

/// The plan for request number `seq` to `route` (`rotation` counts injected 5xx so far).
pub(crate) fn plan(
    seed: u64,
    seq: u64,
    (route, page): (&Route, u64),
    faults: &Faults,
    rotation: impl FnOnce() -> u64,
) -> Plan {
    let api = route.api().unwrap_or(Api::Insights);
    let sid = route.call_sid();
    let failing_page = faults
        .fail_call_from_page
        .as_ref()
        .is_some_and(|(failing, from)| sid == Some(failing.as_str()) && page >= *from);
    let failing_conference = route
        .conference_sid()
        .is_some_and(|sid| faults.fail_conference_sids.iter().any(|f| f == sid));
    if failing_page
        || failing_conference
        || sid.is_some_and(|sid| faults.fail_call_sids.iter().any(|f| f == sid))
    {
        return Plan::Fail(error_5xx(api, StatusCode::INTERNAL_SERVER_ERROR));
    }
    let u = Rng::new(&[seed, tag::FAULT, seq]).unit();
    let mut threshold = 0.0;
    let mut hit = |ratio: f64| {
        threshold += ratio.clamp(0.0, 1.0);
        u < threshold
    };
    if hit(faults.error_429_ratio) {
        return Plan::Fail(too_many(api).with_retry_after(faults.retry_after.clone()));
    }
    if hit(faults.error_5xx_ratio) {
        let i = (rotation() % STATUSES_5XX.len() as u64) as usize;
        let status = STATUSES_5XX
            .get(i)
            .copied()
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Plan::Fail(error_5xx(api, status));
    }
    if hit(faults.drop_ratio) {
        return Plan::Drop;
    }
    if hit(faults.hang_ratio) {
        return Plan::Hang;
    }
    if hit(faults.malformed_ratio) {
        return Plan::Malformed;
    }
    if hit(faults.slow_ratio) {
        return Plan::Slow(Duration::from_millis(faults.slow_ms));
    }
    Plan::Normal
}

/// A 429 in the API's own words.
pub(crate) fn too_many(api: Api) -> Reply {
    match api {
        Api::Telnyx => telnyx_error(
            StatusCode::TOO_MANY_REQUESTS,
            "10011",
            "Too many requests",
            "Rate limit exceeded, retry later",
        ),
        _ => twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests"),
    }
}

/// A 5xx in the API's own words.
fn error_5xx(api: Api, status: StatusCode) -> Reply {
    let text = status.canonical_reason().unwrap_or("Server Error");
    match api {
        Api::Telnyx => telnyx_error(status, "10007", "Unexpected error", text),
        _ => twilio_error(status, 20000 + u32::from(status.as_u16()), text),
    }
}

/// How next links are bent for this request.
pub(crate) fn link_faults(faults: &Faults, port: u16) -> LinkFaults {
    LinkFaults {
        foreign_origin: faults
            .foreign_next_page
            .then(|| format!("http://evil.invalid:{port}")),
        looping: faults.looping_next_page,
        redirect_sid: faults.next_page_to_call.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pick_faults() {
        let route = Route::TelnyxEvents;
        let none = Faults::default();
        assert!((0..100).all(|s| !plan(1, s, (&route, 0), &none, || 0).is_fault()));
        let all_429 = Faults {
            error_429_ratio: 1.0,
            retry_after: Some("2".into()),
            ..Faults::default()
        };
        match plan(1, 0, (&route, 0), &all_429, || 0) {
            Plan::Fail(r) => {
                assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
                assert_eq!(r.retry_after.as_deref(), Some("2"));
            }
            other => panic!("{other:?}"),
        }
        let half = Faults {
            drop_ratio: 0.5,
            ..Faults::default()
        };
        let drops = (0..1000)
            .filter(|&s| matches!(plan(3, s, (&route, 0), &half, || 0), Plan::Drop))
            .count();
        assert!((400..600).contains(&drops), "{drops}");
    }
}
