//! Twilio Voice Insights: per-call Events and Metrics (`/v1/Voice/{CallSid}/Events|Metrics`),
//! paged by the absolute `meta.next_page_url`.

use url::Url;

use super::{AbsoluteNextUrl, FetchSummary, LinkGuard, PageConsumer, SourceError, fetch_all};
use crate::http::ApiClient;
use crate::ids::CallSid;

/// The per-call Insights lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `/v1/Voice/{CallSid}/Events`.
    Events,
    /// `/v1/Voice/{CallSid}/Metrics`.
    Metrics,
}

/// The first page's URL; `edge` None asks for the call type's default edge.
pub fn first_url(
    client: &ApiClient,
    resource: Resource,
    call: &CallSid,
    page_size: u32,
    edge: Option<&str>,
) -> Result<Url, SourceError> {
    let name = match resource {
        Resource::Events => "Events",
        Resource::Metrics => "Metrics",
    };
    let mut url = client.join(&format!("/v1/Voice/{call}/{name}"))?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(edge) = edge {
            query.append_pair("Edge", edge);
        }
        query.append_pair("PageSize", &page_size.to_string());
    }
    Ok(url)
}

/// Every page of one call's events or metrics into `consumer`.
pub async fn fetch(
    client: &ApiClient,
    resource: Resource,
    call: &CallSid,
    page_size: u32,
    edge: Option<&str>,
    consumer: &mut impl PageConsumer,
) -> Result<FetchSummary, SourceError> {
    let first = first_url(client, resource, call, page_size, edge)?;
    fetch_all(
        client,
        first,
        consumer,
        &mut AbsoluteNextUrl(&["meta", "next_page_url"]),
    )
    .await
}

/// The Insights edges of a summary's `call_type` (seed 001's table; the summary does not tell
/// trunking's direction, so trunking asks both of its edges).
pub fn edges_of_call_type(call_type: &str) -> Option<Vec<&'static str>> {
    match call_type {
        "carrier" => Some(vec!["carrier_edge"]),
        "sip" => Some(vec!["sip_edge"]),
        "client" => Some(vec!["sdk_edge", "client_edge"]),
        "trunking" => Some(vec!["carrier_edge", "sip_edge"]),
        _ => None,
    }
}

/// One call's summary (`GET /v1/Voice/{CallSid}/Summary`) into `consumer`.
pub async fn fetch_summary(
    client: &ApiClient,
    call: &CallSid,
    consumer: &mut impl PageConsumer,
) -> Result<FetchSummary, SourceError> {
    let url = client.join(&format!("/v1/Voice/{call}/Summary"))?;
    super::fetch_one(client, url, consumer).await
}

#[derive(serde::Deserialize)]
struct SummariesPage {
    call_summaries: Option<Vec<Box<serde_json::value::RawValue>>>,
    meta: Option<SummariesMeta>,
}

#[derive(serde::Deserialize)]
struct SummariesMeta {
    next_page_url: Option<String>,
}

#[derive(serde::Deserialize)]
struct SummaryKeys {
    call_sid: Option<String>,
    start_time: Option<String>,
    created_time: Option<String>,
    call_type: Option<String>,
}

/// The calls started in [from, to) from `GET /v1/Voice/Summaries` (StartTime and EndTime both
/// given, every processing state), each with its call type's edges and its summary.
pub async fn discover_summaries(
    client: &ApiClient,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    page_size: u32,
) -> Result<Vec<crate::sources::twilio_rest::CallInfo>, SourceError> {
    let mut url = client.join("/v1/Voice/Summaries")?;
    url.query_pairs_mut()
        .append_pair(
            "StartTime",
            &from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
        .append_pair(
            "EndTime",
            &to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
        .append_pair("ProcessingState", "all")
        .append_pair("SortBy", "start_time")
        .append_pair("PageSize", &page_size.to_string());
    let range = from.timestamp_micros()..to.timestamp_micros();
    let mut calls = Vec::new();
    let mut guard = LinkGuard::new(&url);
    loop {
        guard.admit(client, &url)?;
        let page = client
            .get_with(&url, |body| serde_json::from_slice::<SummariesPage>(body))
            .await?;
        for raw in page.call_summaries.unwrap_or_default() {
            let info = summary_call_info(&raw)?;
            if range.contains(&info.anchor_micros) {
                calls.push(info);
            }
        }
        match page
            .meta
            .and_then(|m| m.next_page_url)
            .filter(|u| !u.is_empty())
        {
            Some(next) => {
                url = Url::parse(&next)
                    .map_err(|e| SourceError::Paging(format!("bad next_page_url: {e}")))?;
            }
            None => break,
        }
    }
    calls.sort_by(|a, b| (a.anchor_micros, &a.sid).cmp(&(b.anchor_micros, &b.sid)));
    calls.dedup_by(|a, b| a.sid == b.sid);
    Ok(calls)
}

fn summary_call_info(
    raw: &serde_json::value::RawValue,
) -> Result<crate::sources::twilio_rest::CallInfo, SourceError> {
    let keys: SummaryKeys = serde_json::from_str(raw.get())
        .map_err(|e| SourceError::Paging(format!("a call summary is not an object: {e}")))?;
    let sid: CallSid = keys
        .call_sid
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(|e| SourceError::Paging(format!("call summary: {e}")))?;
    let anchor = [keys.start_time, keys.created_time]
        .into_iter()
        .flatten()
        .find_map(|t| crate::timefmt::parse_api_timestamp(&t))
        .ok_or_else(|| SourceError::Paging(format!("call summary {sid} has no start_time")))?;
    Ok(crate::sources::twilio_rest::CallInfo {
        sid,
        anchor_micros: anchor,
        edges: keys.call_type.as_deref().and_then(edges_of_call_type),
        summary: Some(raw.get().into()),
    })
}
