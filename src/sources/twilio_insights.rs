//! Twilio Voice Insights: per-call Events and Metrics (`/v1/Voice/{CallSid}/Events|Metrics`),
//! paged by the absolute `meta.next_page_url`; a call's Summary; and the Summaries of a window
//! (an alternative discovery of its calls).

use url::Url;

use super::twilio_rest::{CallInfo, CallListing};
use super::{
    BodyError, PageMeta, Paging, Request, Source, SourceError, SourceSettings, Unit, pager,
};
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

/// Insights paging: the absolute `meta.next_page_url`.
const NEXT_PAGE_URL: Paging = Paging::NextUrl(&["meta", "next_page_url"]);

/// A call's Events or Metrics list (tables `insights_events`, `insights_metrics`): one listing
/// per `Edge` asked for.
pub struct CallList(pub Resource);

impl Source for CallList {
    fn requests(
        &self,
        client: &ApiClient,
        unit: &Unit,
        settings: SourceSettings,
    ) -> Result<Vec<Request>, SourceError> {
        let Unit::Call { sid, edges, .. } = unit else {
            return Ok(Vec::new());
        };
        edges
            .iter()
            .map(|edge| {
                let first = first_url(client, self.0, sid, settings.page_size, *edge)?;
                Ok(Request::List {
                    first,
                    paging: NEXT_PAGE_URL,
                })
            })
            .collect()
    }
}

/// A call's summary (table `call_summaries`): `GET /v1/Voice/{CallSid}/Summary`, unless
/// window discovery through Summaries already gave it.
pub struct CallSummary;

impl Source for CallSummary {
    fn requests(
        &self,
        client: &ApiClient,
        unit: &Unit,
        _: SourceSettings,
    ) -> Result<Vec<Request>, SourceError> {
        let Unit::Call { sid, summary, .. } = unit else {
            return Ok(Vec::new());
        };
        Ok(vec![match summary {
            Some(known) => Request::Known(std::sync::Arc::clone(known)),
            None => Request::Record(client.join(&format!("/v1/Voice/{sid}/Summary"))?),
        }])
    }
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
) -> Result<Vec<CallInfo>, SourceError> {
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
    let mut list = CallListing::new(from, to, |body: &[u8]| {
        let page: SummariesPage =
            serde_json::from_slice(body).map_err(|e| BodyError(e.to_string()))?;
        let calls = page
            .call_summaries
            .unwrap_or_default()
            .iter()
            .map(|raw| summary_call_info(raw))
            .collect();
        let mut meta = serde_json::Map::new();
        if let Some(next) = page.meta.and_then(|m| m.next_page_url) {
            meta.insert("meta".into(), serde_json::json!({ "next_page_url": next }));
        }
        Ok((calls, PageMeta(meta)))
    });
    pager::fetch_all(client, url, NEXT_PAGE_URL, &mut list).await?;
    Ok(list.into_calls())
}

fn summary_call_info(raw: &serde_json::value::RawValue) -> Result<CallInfo, SourceError> {
    let keys: SummaryKeys = serde_json::from_str(raw.get())
        .map_err(|e| SourceError::Record(format!("a call summary is not an object: {e}")))?;
    let sid: CallSid = keys
        .call_sid
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(|e| SourceError::Record(format!("call summary: {e}")))?;
    let anchor = [keys.start_time, keys.created_time]
        .into_iter()
        .flatten()
        .find_map(|t| crate::timefmt::parse_api_timestamp(&t))
        .ok_or_else(|| SourceError::Record(format!("call summary {sid} has no start_time")))?;
    Ok(CallInfo {
        sid,
        anchor_micros: anchor,
        edges: keys.call_type.as_deref().and_then(edges_of_call_type),
        summary: Some(raw.get().into()),
    })
}
