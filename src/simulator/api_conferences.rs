//! Handlers of the Conference Insights routes (Voice Insights group: same auth, rate limit
//! and faults as `/v1/Voice/…`): the conference list with `CreatedAfter` (inclusive) /
//! `CreatedBefore` (exclusive) on `create_time`, `Subaccount` and the other documented
//! filters, newest first; one conference summary; a conference's participants (join order,
//! `Label`/`ParticipantSid` filters) and one participant. Lists page like the other Insights
//! lists (`PageSize`, `Page`, `PageToken`, absolute `meta.*_url` links).
//!
//! A conference is visible to its own account's credentials and to the parent's, except one
//! of a subaccount with `refuse_parent` (403, code 20003); to others it does not exist (404).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::api_insights::{account_param, visible};
use super::auth::Principal;
use super::conference::{self, ConferenceFilter};
use super::model::{Model, SimConference};
use super::paging::{LinkFaults, Params, insights_body, links, twilio_page};
use super::reply::{Reply, internal, twilio_bad_request, twilio_not_found};
use super::routes::is_sid;

/// An optional ISO 8601 instant: RFC 3339, `YYYY-MM-DDTHH:MM:SS` (UTC) or `YYYY-MM-DD`
/// (midnight UTC); with the raw value to echo.
fn instant_param<'p>(
    params: &'p Params,
    name: &str,
) -> Result<Option<(DateTime<Utc>, &'p str)>, Reply> {
    let Some(raw) = params.get(name) else {
        return Ok(None);
    };
    let parsed = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        });
    match parsed {
        Some(t) => Ok(Some((t, raw))),
        None => Err(twilio_bad_request(&format!(
            "Invalid {name} '{raw}': expected an ISO 8601 date-time"
        ))),
    }
}

/// The conference behind a path SID: 400 (malformed), 404 (unknown, or not visible to
/// `who`), 403 (a `refuse_parent` subaccount's, asked by the parent).
fn lookup<'m>(
    model: &'m Model,
    who: Principal,
    sid: &str,
    path: &str,
) -> Result<&'m SimConference, Reply> {
    if !is_sid(sid, "CF") {
        return Err(twilio_bad_request(&format!(
            "Invalid ConferenceSid '{sid}': must match ^CF[0-9a-fA-F]{{32}}$"
        )));
    }
    let found = model
        .find_conference(sid)
        .ok_or_else(|| twilio_not_found(path))?;
    visible(model, who, &found.account_sid, path)?;
    Ok(found)
}

/// `GET /v1/Conferences`: the conferences of the authenticated account (or of
/// `Subaccount`), newest first by `create_time` (ties by SID).
pub(crate) fn conferences(
    model: &Model,
    who: Principal,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let (account, subaccount) = account_param(model, who, params)?;
    let after = instant_param(params, "CreatedAfter")?;
    let before = instant_param(params, "CreatedBefore")?;
    let page = twilio_page(params)?;
    let filter = ConferenceFilter {
        conference_sid: params.get("ConferenceSid"),
        friendly_name: params.get("FriendlyName"),
        status: params.get("Status"),
        mixer_region: params.get("MixerRegion"),
        end_reason: params.get("EndReason"),
        tags: params
            .get("Tags")
            .map(|t| t.split(',').filter(|t| !t.is_empty()).collect())
            .unwrap_or_default(),
        detected_issues: params.get("DetectedIssues"),
    };
    let ctx = model.ctx();
    let chosen: Vec<&SimConference> = model
        .conferences_created_in(account, after.map(|a| a.0), before.map(|b| b.0))
        .into_iter()
        .filter_map(|i| model.conference_at(i))
        .filter(|c| filter.keeps(c))
        .collect();
    let (total, items) = if filter.needs_summary() {
        let all: Vec<_> = chosen
            .iter()
            .map(|c| conference::summary(ctx, c))
            .filter(|r| filter.keeps_summary(r))
            .collect();
        let total = all.len();
        let range = page.range(total);
        (
            total,
            all.into_iter()
                .skip(range.start)
                .take(range.len())
                .collect(),
        )
    } else {
        let items: Vec<_> = chosen
            .get(page.range(chosen.len()))
            .unwrap_or(&[])
            .iter()
            .map(|c| conference::summary(ctx, c))
            .collect();
        (chosen.len(), items)
    };
    let echoed = [
        ("ConferenceSid", filter.conference_sid),
        ("CreatedAfter", after.map(|a| a.1)),
        ("CreatedBefore", before.map(|b| b.1)),
        ("DetectedIssues", filter.detected_issues),
        ("EndReason", filter.end_reason),
        ("FriendlyName", filter.friendly_name),
        ("MixerRegion", filter.mixer_region),
        ("Status", filter.status),
        ("Subaccount", subaccount),
        ("Tags", params.get("Tags")),
    ];
    let filters: Vec<(&str, &str)> = echoed
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .collect();
    let links = links(
        &ctx.base_url,
        "/v1/Conferences",
        &filters,
        &page,
        total,
        faults,
    );
    let body = insights_body(&links, &page, "conferences", &items).map_err(internal)?;
    Ok(Reply::rows(body, "conferences", items.len()))
}

/// `GET /v1/Conferences/{ConferenceSid}`.
pub(crate) fn conference(model: &Model, who: Principal, sid: &str) -> Result<Reply, Reply> {
    let path = format!("/v1/Conferences/{sid}");
    let found = lookup(model, who, sid, &path)?;
    let body = serde_json::to_vec(&conference::summary(model.ctx(), found)).map_err(internal)?;
    Ok(Reply::rows(body, "conferences", 1))
}

/// `GET /v1/Conferences/{ConferenceSid}/Participants`, in join order.
pub(crate) fn participants(
    model: &Model,
    who: Principal,
    sid: &str,
    params: &Params,
    faults: &LinkFaults,
) -> Result<Reply, Reply> {
    let path = format!("/v1/Conferences/{sid}/Participants");
    let found = lookup(model, who, sid, &path)?;
    let page = twilio_page(params)?;
    let label = params.get("Label");
    let participant_sid = params.get("ParticipantSid");
    let all: Vec<_> = conference::participants(model.ctx(), found)
        .into_iter()
        .filter(|p| p.keeps(label, participant_sid))
        .collect();
    let items = all.get(page.range(all.len())).unwrap_or(&[]);
    let echoed = [("Label", label), ("ParticipantSid", participant_sid)];
    let filters: Vec<(&str, &str)> = echoed
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .collect();
    let links = links(
        &model.ctx().base_url,
        &path,
        &filters,
        &page,
        all.len(),
        faults,
    );
    let body = insights_body(&links, &page, "participants", items).map_err(internal)?;
    Ok(Reply::rows(body, "conference_participants", items.len()))
}

/// `GET /v1/Conferences/{ConferenceSid}/Participants/{ParticipantSid}`.
pub(crate) fn participant(
    model: &Model,
    who: Principal,
    sid: &str,
    participant_sid: &str,
) -> Result<Reply, Reply> {
    let path = format!("/v1/Conferences/{sid}/Participants/{participant_sid}");
    let found = lookup(model, who, sid, &path)?;
    if !is_sid(participant_sid, "CP") {
        return Err(twilio_bad_request(&format!(
            "Invalid ParticipantSid '{participant_sid}': must match ^CP[0-9a-fA-F]{{32}}$"
        )));
    }
    let record = conference::participant(model.ctx(), found, participant_sid)
        .ok_or_else(|| twilio_not_found(&path))?;
    let body = serde_json::to_vec(&record).map_err(internal)?;
    Ok(Reply::rows(body, "conference_participants", 1))
}
