//! Handlers of the Twilio REST routes: `Calls.json` (call discovery with the `StartTime>`,
//! `StartTime<` and `StartTime` date filters, newest first), `Calls/{Sid}.json` and
//! `Calls/{Sid}/Events.json`, all with relative `*_page_uri` links.

use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::model::{Model, SimCall};
use super::paging::{LinkFaults, Params, links, rest_body, twilio_page};
use super::reply::{Reply, internal, twilio_bad_request, twilio_not_found, twilio_unauthorized};
use super::rest;
use super::routes::is_sid;

/// The account in the path must be the configured one.
fn check_account(model: &Model, account: &str, path: &str) -> Result<(), Reply> {
    if !is_sid(account, "AC") {
        return Err(twilio_not_found(path));
    }
    if account != model.ctx().account_sid {
        return Err(twilio_unauthorized());
    }
    Ok(())
}

/// The call behind a path SID, or Twilio's 404.
fn lookup<'m>(model: &'m Model, sid: &str, path: &str) -> Result<(usize, &'m SimCall), Reply> {
    model.find_call(sid).ok_or_else(|| twilio_not_found(path))
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`.
pub(crate) fn call(model: &Model, account: &str, sid: &str) -> Result<Reply, Reply> {
    let path = format!("/2010-04-01/Accounts/{account}/Calls/{sid}.json");
    check_account(model, account, &path)?;
    let (idx, call) = lookup(model, sid, &path)?;
    let body =
        serde_json::to_vec(&rest::call_resource(model.ctx(), idx, call)).map_err(internal)?;
    // `rows_served["calls"]` counts Calls.json rows only (call discovery).
    Ok(Reply::json(StatusCode::OK, body))
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Events.json`.
pub(crate) fn call_events(
    model: &Model,
    account: &str,
    sid: &str,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let path = format!("/2010-04-01/Accounts/{account}/Calls/{sid}/Events.json");
    check_account(model, account, &path)?;
    let (idx, call) = lookup(model, sid, &path)?;
    let page = twilio_page(params)?;
    let all = rest::call_events(model.ctx(), idx, call);
    let items = all.get(page.range(all.len())).unwrap_or(&[]);
    let links = links("", &path, &[], &page, all.len(), faults);
    let body = rest_body(&links, &page, "events", items).map_err(internal)?;
    Ok(Reply::rows(body, "call_events", items.len()))
}

/// Start-time bounds `[lo, hi)` from the date filters, and the filters to echo in links.
type Bounds = (
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Vec<(&'static str, String)>,
);

/// Reads `StartTime>`, `StartTime<` and `StartTime` (`YYYY-MM-DD`, UTC).
fn date_filters(params: &Params) -> Result<Bounds, Reply> {
    let mut lo: Option<DateTime<Utc>> = None;
    let mut hi: Option<DateTime<Utc>> = None;
    let mut echo = Vec::new();
    for name in ["StartTime>", "StartTime<", "StartTime"] {
        let Some(raw) = params.get(name) else {
            continue;
        };
        let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .ok_or_else(|| {
                twilio_bad_request(&format!("Invalid {name} '{raw}': expected YYYY-MM-DD"))
            })?;
        let next_day = day + Duration::days(1);
        match name {
            "StartTime>" => lo = lo.max(Some(day)),
            "StartTime<" => hi = Some(hi.map_or(day, |h| h.min(day))),
            _ => {
                lo = lo.max(Some(day));
                hi = Some(hi.map_or(next_day, |h| h.min(next_day)));
            }
        }
        echo.push((name, raw.to_string()));
    }
    Ok((lo, hi, echo))
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Calls.json`.
pub(crate) fn calls(
    model: &Model,
    account: &str,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let path = format!("/2010-04-01/Accounts/{account}/Calls.json");
    check_account(model, account, &path)?;
    let (lo, hi, echo) = date_filters(params)?;
    let page = twilio_page(params)?;
    let chosen = model.calls_started_in(lo, hi);
    let ctx = model.ctx();
    let items: Vec<_> = chosen
        .get(page.range(chosen.len()))
        .unwrap_or(&[])
        .iter()
        .filter_map(|&i| model.call_at(i).map(|c| rest::call_resource(ctx, i, c)))
        .collect();
    let filters: Vec<(&str, &str)> = echo.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let links = links("", &path, &filters, &page, chosen.len(), faults);
    let body = rest_body(&links, &page, "calls", &items).map_err(internal)?;
    Ok(Reply::rows(body, "calls", items.len()))
}
