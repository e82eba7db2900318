//! Handler of Telnyx `GET /v2/call_events`: leg/session filters, one `filter[occurred_at]`
//! comparison at most, page-number paging, events ordered by `event_timestamp`. Without a leg
//! or session filter only the last 24 h (simulator clock) are visible.

use std::borrow::Cow;

use chrono::{DateTime, Duration};
use serde::Serialize;

use super::config::Faults;
use super::model::{EventRef, Model};
use super::paging::{Params, telnyx_page};
use super::reply::{Reply, internal, telnyx_bad_request};

#[derive(Serialize)]
struct Meta {
    total_pages: usize,
    total_results: usize,
    page_number: usize,
    page_size: usize,
}

#[derive(Serialize)]
struct Body<'a, T> {
    data: &'a [T],
    meta: Meta,
}

/// Inclusive bounds in microseconds.
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: i64,
    hi: i64,
}

impl Window {
    const ALL: Window = Window {
        lo: i64::MIN,
        hi: i64::MAX,
    };

    fn contains(&self, t: i64) -> bool {
        self.lo <= t && t <= self.hi
    }

    fn intersect(self, other: Window) -> Window {
        Window {
            lo: self.lo.max(other.lo),
            hi: self.hi.min(other.hi),
        }
    }
}

/// The one `filter[occurred_at][op]` allowed, as a window.
fn occurred_filter(params: &Params) -> Result<Window, Reply> {
    let given: Vec<(&str, &str)> = params.with_prefix("filter[occurred_at]").collect();
    let [(name, raw)] = given.as_slice() else {
        return if given.is_empty() {
            Ok(Window::ALL)
        } else {
            Err(telnyx_bad_request(
                "Only one filter[occurred_at] may be given",
            ))
        };
    };
    let t = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_micros())
        .map_err(|_| telnyx_bad_request(&format!("{name} must be an RFC 3339 timestamp")))?;
    let op = name.trim_start_matches("filter[occurred_at]");
    let window = match op {
        "[gte]" => Window {
            lo: t,
            hi: i64::MAX,
        },
        "[gt]" => Window {
            lo: t.saturating_add(1),
            hi: i64::MAX,
        },
        "[lte]" => Window {
            lo: i64::MIN,
            hi: t,
        },
        "[lt]" => Window {
            lo: i64::MIN,
            hi: t.saturating_sub(1),
        },
        "[eq]" | "" => Window { lo: t, hi: t },
        _ => return Err(telnyx_bad_request(&format!("Unknown filter {name}"))),
    };
    Ok(window)
}

/// The legs named by `filter[leg_id]` / `filter[application_session_id]`, `None` if neither.
fn leg_filter(model: &Model, params: &Params) -> Option<Vec<usize>> {
    let by_leg = params
        .get("filter[leg_id]")
        .map(|id| model.leg_index(id).into_iter().collect::<Vec<_>>());
    let by_session = params
        .get("filter[application_session_id]")
        .map(|id| model.session_legs(id).to_vec());
    match (by_leg, by_session) {
        (Some(legs), Some(session)) => {
            Some(legs.into_iter().filter(|l| session.contains(l)).collect())
        }
        (legs, session) => legs.or(session),
    }
}

/// `GET /v2/call_events`.
pub(crate) fn call_events(model: &Model, params: &Params, faults: &Faults) -> Result<Reply, Reply> {
    let occurred = occurred_filter(params)?;
    let mut page = telnyx_page(params)?;
    let asked = page.number;
    if faults.telnyx_stuck_total_pages.is_some() || faults.telnyx_repeat_pages {
        page.number = 1;
    }
    let refs: Cow<'_, [EventRef]> = match leg_filter(model, params) {
        Some(legs) => Cow::Owned(
            model
                .telnyx_of_legs(&legs)
                .into_iter()
                .filter(|r| occurred.contains(r.micros))
                .collect(),
        ),
        None => {
            let now = model.ctx().now();
            let last_day = Window {
                lo: (now - Duration::hours(24)).timestamp_micros(),
                hi: now.timestamp_micros(),
            };
            let w = last_day.intersect(occurred);
            Cow::Borrowed(model.telnyx_window(w.lo, w.hi))
        }
    };
    let total = refs.len();
    let start = (page.number - 1).saturating_mul(page.size).min(total);
    let end = start.saturating_add(page.size).min(total);
    let data: Vec<_> = refs
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .filter_map(|r| model.telnyx_event(*r))
        .collect();
    let body = Body {
        data: &data,
        meta: Meta {
            total_pages: faults
                .telnyx_stuck_total_pages
                .unwrap_or(total.div_ceil(page.size)),
            total_results: total,
            page_number: if faults.telnyx_repeat_pages {
                asked
            } else {
                page.number
            },
            page_size: page.size,
        },
    };
    let bytes = serde_json::to_vec(&body).map_err(internal)?;
    Ok(Reply::rows(bytes, "telnyx_call_events", data.len()))
}
