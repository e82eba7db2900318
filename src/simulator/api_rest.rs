//! Handlers of the Twilio REST routes: `Accounts.json` (the account and its subaccounts, with
//! the `FriendlyName` and `Status` filters) and `Accounts/{Sid}.json`; `Calls.json` (call
//! discovery with the `StartTime>`, `StartTime<` and `StartTime` date filters, newest first),
//! `Calls/{Sid}.json` and `Calls/{Sid}/Events.json`; all lists with relative `*_page_uri`
//! links.
//!
//! The account in a path must be one the credentials may see: their own, or (with the
//! parent's) a subaccount that does not refuse the parent (403, code 20003, if it does); any
//! other account answers 401 as a foreign account does. A call is found only under its own
//! account.

use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::auth::Principal;
use super::model::{Denied, Model, SimCall};
use super::paging::{LinkFaults, Params, links, rest_body, twilio_page};
use super::reply::{
    Reply, internal, twilio_bad_request, twilio_forbidden, twilio_not_found, twilio_unauthorized,
};
use super::rest;
use super::routes::is_sid;

/// The index of the account in the path, if `who` may see it.
fn check_account(model: &Model, who: Principal, account: &str, path: &str) -> Result<usize, Reply> {
    if !is_sid(account, "AC") {
        return Err(twilio_not_found(path));
    }
    let idx = model
        .account_index(account)
        .ok_or_else(twilio_unauthorized)?;
    match model.access(who, idx) {
        Ok(()) => Ok(idx),
        Err(Denied::Forbidden) => Err(twilio_forbidden()),
        Err(Denied::Other) => Err(twilio_unauthorized()),
    }
}

/// The call behind a path SID under `account`, or Twilio's 404.
fn lookup<'m>(
    model: &'m Model,
    account: &str,
    sid: &str,
    path: &str,
) -> Result<(usize, &'m SimCall), Reply> {
    model
        .find_call(sid)
        .filter(|(_, call)| call.account_sid == account)
        .ok_or_else(|| twilio_not_found(path))
}

/// `GET /2010-04-01/Accounts.json`: the authenticated account, then (for the parent) its
/// subaccounts, in `Model::accounts()` order.
pub(crate) fn accounts(
    model: &Model,
    who: Principal,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let status = params.get("Status");
    if let Some(s) = status
        && !["active", "suspended", "closed"].contains(&s)
    {
        return Err(twilio_bad_request(&format!(
            "Invalid Status '{s}': expected active, suspended or closed"
        )));
    }
    let friendly_name = params.get("FriendlyName");
    let page = twilio_page(params)?;
    let chosen: Vec<_> = model
        .accounts()
        .iter()
        .enumerate()
        // The parent lists every subaccount, even one that refuses it; a subaccount itself.
        .filter(|(i, _)| who.0 == 0 || *i == who.0)
        .map(|(_, a)| a)
        .filter(|a| status.is_none_or(|s| a.status == s))
        .filter(|a| friendly_name.is_none_or(|f| a.friendly_name == f))
        .collect();
    let items: Vec<_> = chosen
        .get(page.range(chosen.len()))
        .unwrap_or(&[])
        .iter()
        .map(|a| rest::account_resource(a))
        .collect();
    let mut filters = Vec::new();
    if let Some(f) = friendly_name {
        filters.push(("FriendlyName", f));
    }
    if let Some(s) = status {
        filters.push(("Status", s));
    }
    let path = "/2010-04-01/Accounts.json";
    let links = links("", path, &filters, &page, chosen.len(), faults);
    let body = rest_body(&links, &page, "accounts", &items).map_err(internal)?;
    Ok(Reply::rows(body, "accounts", items.len()))
}

/// `GET /2010-04-01/Accounts/{AccountSid}.json`.
pub(crate) fn account(model: &Model, who: Principal, account: &str) -> Result<Reply, Reply> {
    let path = format!("/2010-04-01/Accounts/{account}.json");
    let idx = check_account(model, who, account, &path)?;
    let found = model
        .account_at(idx)
        .ok_or_else(|| twilio_not_found(&path))?;
    let body = serde_json::to_vec(&rest::account_resource(found)).map_err(internal)?;
    Ok(Reply::json(StatusCode::OK, body))
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`.
pub(crate) fn call(
    model: &Model,
    who: Principal,
    account: &str,
    sid: &str,
) -> Result<Reply, Reply> {
    let path = format!("/2010-04-01/Accounts/{account}/Calls/{sid}.json");
    check_account(model, who, account, &path)?;
    let (idx, call) = lookup(model, account, sid, &path)?;
    let body =
        serde_json::to_vec(&rest::call_resource(model.ctx(), idx, call)).map_err(internal)?;
    // `rows_served["calls"]` counts Calls.json rows only (call discovery).
    Ok(Reply::json(StatusCode::OK, body))
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Events.json`.
pub(crate) fn call_events(
    model: &Model,
    who: Principal,
    account: &str,
    sid: &str,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let path = format!("/2010-04-01/Accounts/{account}/Calls/{sid}/Events.json");
    check_account(model, who, account, &path)?;
    let (idx, call) = lookup(model, account, sid, &path)?;
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

/// `GET /2010-04-01/Accounts/{AccountSid}/Calls.json`: that account's calls only.
pub(crate) fn calls(
    model: &Model,
    who: Principal,
    account: &str,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let path = format!("/2010-04-01/Accounts/{account}/Calls.json");
    let owner = check_account(model, who, account, &path)?;
    let (lo, hi, echo) = date_filters(params)?;
    let page = twilio_page(params)?;
    let chosen = model.calls_started_in(owner, lo, hi);
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
