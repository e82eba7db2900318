//! Handlers of the Voice Insights routes: a call's events and metrics (`Edge`, `Direction`,
//! paging with absolute `meta.*_url` links), one call's summary, and the summaries of a
//! `[StartTime, EndTime)` window (of the authenticated account, or of `Subaccount`).
//!
//! A call is visible to its own account's credentials and to the parent's, except a call of
//! a subaccount with `refuse_parent` (403, code 20003); to any other credentials it does not
//! exist (404).

use chrono::{DateTime, Utc};

use super::auth::Principal;
use super::insights::{self, MetricSource};
use super::model::{Denied, Model, SimCall};
use super::paging::{LinkFaults, Params, TwilioPage, insights_body, links, twilio_page};
use super::reply::{
    Reply, internal, twilio_bad_request, twilio_forbidden, twilio_not_found, twilio_unauthorized,
};
use super::routes::is_sid;
use super::summary;

const EDGES: [&str; 5] = [
    "unknown_edge",
    "carrier_edge",
    "sip_edge",
    "sdk_edge",
    "client_edge",
];
const DIRECTIONS: [&str; 4] = ["unknown", "inbound", "outbound", "both"];

/// The call behind a path SID, or Twilio's 400 (malformed) / 404 (unknown or not visible to
/// `who`) / 403 (a `refuse_parent` subaccount's, asked by the parent).
fn lookup<'m>(
    model: &'m Model,
    who: Principal,
    sid: &str,
    path: &str,
) -> Result<(usize, &'m SimCall), Reply> {
    if !is_sid(sid, "CA") {
        return Err(twilio_bad_request(&format!(
            "Invalid CallSid '{sid}': must match ^CA[0-9a-fA-F]{{32}}$"
        )));
    }
    let (idx, call) = model.find_call(sid).ok_or_else(|| twilio_not_found(path))?;
    visible(model, who, &call.account_sid, path)?;
    Ok((idx, call))
}

/// Whether `who` may see a record of `account_sid`: 403 for a `refuse_parent` subaccount
/// asked by the parent, 404 (as if it did not exist) for an unrelated account.
pub(crate) fn visible(
    model: &Model,
    who: Principal,
    account_sid: &str,
    path: &str,
) -> Result<(), Reply> {
    match model.access_sid(who, account_sid) {
        Ok(()) => Ok(()),
        Err(Denied::Forbidden) => Err(twilio_forbidden()),
        Err(Denied::Other) => Err(twilio_not_found(path)),
    }
}

/// The account a list is about: `Subaccount` (400 if malformed; 403 for a `refuse_parent`
/// subaccount asked by the parent; 401, as for a foreign account, if `who` may not see it),
/// else the authenticated account. With the value to echo in links.
pub(crate) fn account_param<'p>(
    model: &Model,
    who: Principal,
    params: &'p Params,
) -> Result<(usize, Option<&'p str>), Reply> {
    let Some(sid) = params.get("Subaccount") else {
        return Ok((who.0, None));
    };
    if !is_sid(sid, "AC") {
        return Err(twilio_bad_request(&format!(
            "Invalid Subaccount '{sid}': must match ^AC[0-9a-fA-F]{{32}}$"
        )));
    }
    let idx = model.account_index(sid).ok_or_else(twilio_unauthorized)?;
    match model.access(who, idx) {
        Ok(()) => Ok((idx, Some(sid))),
        Err(Denied::Forbidden) => Err(twilio_forbidden()),
        Err(Denied::Other) => Err(twilio_unauthorized()),
    }
}

/// The `Edge` parameter (validated), `None` if absent.
fn edge_param(params: &Params) -> Result<Option<&'static str>, Reply> {
    match params.get("Edge") {
        None => Ok(None),
        Some(e) => EDGES
            .iter()
            .find(|known| **known == e)
            .map(|known| Some(*known))
            .ok_or_else(|| twilio_bad_request(&format!("Invalid Edge '{e}'"))),
    }
}

/// `GET /v1/Voice/{CallSid}/Events`.
pub(crate) fn events(
    model: &Model,
    who: Principal,
    sid: &str,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let path = format!("/v1/Voice/{sid}/Events");
    let (idx, call) = lookup(model, who, sid, &path)?;
    let edge = edge_param(params)?;
    let page = twilio_page(params)?;
    let all = insights::events(model.ctx(), idx, call, edge.unwrap_or(call.default_edge()));
    let items = all.get(page.range(all.len())).unwrap_or(&[]);
    let filters: Vec<(&str, &str)> = edge.map(|e| ("Edge", e)).into_iter().collect();
    let links = links(
        &model.ctx().base_url,
        &path,
        &filters,
        &page,
        all.len(),
        faults,
    );
    let body = insights_body(&links, &page, "events", items).map_err(internal)?;
    Ok(Reply::rows(body, "insights_events", items.len()))
}

/// `GET /v1/Voice/{CallSid}/Metrics`.
pub(crate) fn metrics(
    model: &Model,
    who: Principal,
    sid: &str,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let path = format!("/v1/Voice/{sid}/Metrics");
    let (idx, call) = lookup(model, who, sid, &path)?;
    let edge = edge_param(params)?;
    let direction = match params.get("Direction") {
        Some(d) if !DIRECTIONS.contains(&d) => {
            return Err(twilio_bad_request(&format!("Invalid Direction '{d}'")));
        }
        other => other,
    };
    let page = twilio_page(params)?;
    let chosen = edge.unwrap_or(call.default_edge());
    let total = insights::metric_count(call, chosen, direction);
    let source = MetricSource::new(model.ctx(), idx, call, chosen);
    let items: Vec<_> = page
        .range(total)
        .map(|i| source.record(direction, i))
        .collect();
    let mut filters = Vec::new();
    if let Some(d) = direction {
        filters.push(("Direction", d));
    }
    if let Some(e) = edge {
        filters.push(("Edge", e));
    }
    let links = links(&model.ctx().base_url, &path, &filters, &page, total, faults);
    let mut body = insights_body(&links, &page, "metrics", &items).map_err(internal)?;
    if model.ctx().odd_numbers && page.offset == 0 && !items.is_empty() {
        body = with_odd_numbers(body);
    }
    Ok(Reply::rows(body, "insights_metrics", items.len()))
}

/// Numbers serde cannot write, put in as text: the first sample gets an `odd_counter` beyond
/// 64 bits, and its `mos` (if it has one) becomes `1e400`, beyond a float.
fn with_odd_numbers(body: Vec<u8>) -> Vec<u8> {
    let Ok(mut text) = String::from_utf8(body.clone()) else {
        return body;
    };
    const FIRST: &str = "\"metrics\":[{";
    if let Some(at) = text.find(FIRST) {
        text.insert_str(at + FIRST.len(), "\"odd_counter\":99999999999999999999999,");
    }
    const MOS: &str = "\"mos\":{\"value\":";
    let first_record_end = text.find("},{").unwrap_or(text.len());
    if let Some(at) = text.find(MOS).filter(|at| *at < first_record_end) {
        let start = at + MOS.len();
        if let Some(len) = text[start..].find('}') {
            text.replace_range(start..start + len, "1e400");
        }
    }
    text.into_bytes()
}

/// `GET /v1/Voice/{CallSid}/Summary`.
pub(crate) fn summary(model: &Model, who: Principal, sid: &str) -> Result<Reply, Reply> {
    let path = format!("/v1/Voice/{sid}/Summary");
    let (idx, call) = lookup(model, who, sid, &path)?;
    let body = serde_json::to_vec(&summary::summary(model.ctx(), idx, call)).map_err(internal)?;
    Ok(Reply::rows(body, "call_summaries", 1))
}

/// A required RFC 3339 parameter.
fn time_param(params: &Params, name: &str) -> Result<(DateTime<Utc>, String), Reply> {
    let raw = params
        .get(name)
        .ok_or_else(|| twilio_bad_request(&format!("{name} is required (RFC 3339)")))?;
    DateTime::parse_from_rfc3339(raw)
        .map(|t| (t.with_timezone(&Utc), raw.to_string()))
        .map_err(|_| twilio_bad_request(&format!("Invalid {name} '{raw}': expected RFC 3339")))
}

/// `GET /v1/Voice/Summaries` with `StartTime`/`EndTime` (both required), newest first: the
/// calls of the authenticated account, or of `Subaccount`.
pub(crate) fn summaries(
    model: &Model,
    who: Principal,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let (account, subaccount) = account_param(model, who, params)?;
    let (start, start_raw) = time_param(params, "StartTime")?;
    let (end, end_raw) = time_param(params, "EndTime")?;
    let state = match params.get("ProcessingState") {
        None | Some("all") => None,
        Some(s @ ("complete" | "partial")) => Some(s),
        Some(other) => {
            return Err(twilio_bad_request(&format!(
                "Invalid ProcessingState '{other}'"
            )));
        }
    };
    let page: TwilioPage = twilio_page(params)?;
    let ctx = model.ctx();
    let chosen: Vec<(usize, &SimCall)> = model
        .calls_started_in(account, Some(start), Some(end))
        .iter()
        .filter_map(|&i| model.call_at(i).map(|c| (i, c)))
        .filter(|(_, c)| state.is_none_or(|want| summary::processing_state(ctx, c) == want))
        .collect();
    let in_page = chosen.get(page.range(chosen.len())).unwrap_or(&[]);
    let items: Vec<_> = in_page
        .iter()
        .map(|&(i, c)| summary::summary(ctx, i, c))
        .collect();
    let mut filters = vec![("EndTime", end_raw.as_str())];
    if let Some(s) = state {
        filters.push(("ProcessingState", s));
    }
    filters.push(("StartTime", start_raw.as_str()));
    if let Some(sub) = subaccount {
        filters.push(("Subaccount", sub));
    }
    let links = links(
        &ctx.base_url,
        "/v1/Voice/Summaries",
        &filters,
        &page,
        chosen.len(),
        faults,
    );
    let body = insights_body(&links, &page, "call_summaries", &items).map_err(internal)?;
    Ok(Reply::rows(body, "call_summaries", items.len()))
}
