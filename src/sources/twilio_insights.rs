//! Twilio Voice Insights: per-call Events and Metrics (`/v1/Voice/{CallSid}/Events|Metrics`),
//! paged by the absolute `meta.next_page_url`; a call's Summary; the Summaries of a window (an
//! alternative discovery of its calls); Conference Insights (a window's conferences, each one's
//! summary and participants).

use url::Url;

use super::twilio_rest::{CallInfo, Listed, Listing};
use super::{
    BodyError, PageMeta, Paging, Request, Source, SourceError, SourceSettings, Unit, pager,
};
use crate::http::ApiClient;
use crate::ids::{AccountSid, CallSid, ConferenceSid};
use crate::timefmt::parse_api_timestamp;

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
/// given, every processing state; `Subaccount` for a subaccount), each with its call type's
/// edges and its summary.
pub async fn discover_summaries(
    client: &ApiClient,
    subaccount: Option<&AccountSid>,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    page_size: u32,
) -> Result<Vec<CallInfo>, SourceError> {
    let mut url = client.join("/v1/Voice/Summaries")?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair(
                "StartTime",
                &from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
            .append_pair(
                "EndTime",
                &to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
            .append_pair("ProcessingState", "all")
            .append_pair("SortBy", "start_time");
        if let Some(subaccount) = subaccount {
            query.append_pair("Subaccount", subaccount.as_str());
        }
        query.append_pair("PageSize", &page_size.to_string());
    }
    let mut list = Listing::new(from, to, |body: &[u8]| {
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
    Ok(list.into_listed())
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
        record: None,
        started: true,
    })
}

/// What voxlake needs to know of a conference before fetching its participants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConferenceInfo {
    /// The conference.
    pub sid: ConferenceSid,
    /// The account it belongs to.
    pub account: AccountSid,
    /// When it started (or was created, for one that never started), µs: its hour.
    pub anchor_micros: i64,
    /// Its summary as the listing (or its own request) gave it (JSON).
    pub summary: std::sync::Arc<str>,
}

impl Listed for ConferenceInfo {
    fn anchor_micros(&self) -> i64 {
        self.anchor_micros
    }
    fn key(&self) -> &str {
        self.sid.as_str()
    }
}

#[derive(serde::Deserialize)]
struct ConferenceKeys {
    conference_sid: Option<String>,
    account_sid: Option<String>,
    start_time: Option<String>,
    create_time: Option<String>,
}

/// What a conference summary's JSON text tells (and the text itself).
fn conference_info(raw: &str) -> Result<ConferenceInfo, SourceError> {
    let keys: ConferenceKeys = serde_json::from_str(raw)
        .map_err(|e| SourceError::Record(format!("a conference is not an object: {e}")))?;
    let sid: ConferenceSid = keys
        .conference_sid
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(|e| SourceError::Record(format!("conference: {e}")))?;
    let account: AccountSid = keys
        .account_sid
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(|e| SourceError::Record(format!("conference {sid}: {e}")))?;
    let anchor = [keys.start_time, keys.create_time]
        .into_iter()
        .flatten()
        .find_map(|t| parse_api_timestamp(&t))
        .ok_or_else(|| SourceError::Record(format!("conference {sid} has no start_time")))?;
    Ok(ConferenceInfo {
        sid,
        account,
        anchor_micros: anchor,
        summary: raw.into(),
    })
}

/// How long before it starts a conference may be created (the first participant waits for
/// the others): a window's conferences are listed from this much before it.
pub const CONFERENCE_CREATED_BEFORE_START_HOURS: i64 = 6;

#[derive(serde::Deserialize)]
struct ConferencesPage<'a> {
    #[serde(borrow)]
    conferences: Option<Vec<&'a serde_json::value::RawValue>>,
    meta: Option<SummariesMeta>,
}

/// The conferences of `account` that started in [from, to): `GET /v1/Conferences` with
/// `CreatedAfter`/`CreatedBefore` (from six hours before `from`, since a conference is created
/// before it starts) and, for a subaccount, `Subaccount`; kept by start time.
pub async fn discover_conferences(
    client: &ApiClient,
    (account, credentials_account): (&AccountSid, &AccountSid),
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    page_size: u32,
) -> Result<Vec<ConferenceInfo>, SourceError> {
    let created_after = from - chrono::Duration::hours(CONFERENCE_CREATED_BEFORE_START_HOURS);
    let secs =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut url = client.join("/v1/Conferences")?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("CreatedAfter", &secs(created_after))
            .append_pair("CreatedBefore", &secs(to));
        if account != credentials_account {
            query.append_pair("Subaccount", account.as_str());
        }
        query.append_pair("PageSize", &page_size.to_string());
    }
    let mut list = Listing::new(from, to, |body: &[u8]| {
        let page: ConferencesPage =
            serde_json::from_slice(body).map_err(|e| BodyError(e.to_string()))?;
        let conferences = page
            .conferences
            .unwrap_or_default()
            .iter()
            .map(|raw| conference_info(raw.get()))
            .collect();
        let mut meta = serde_json::Map::new();
        if let Some(next) = page.meta.and_then(|m| m.next_page_url) {
            meta.insert("meta".into(), serde_json::json!({ "next_page_url": next }));
        }
        Ok((conferences, PageMeta(meta)))
    });
    pager::fetch_all(client, url, NEXT_PAGE_URL, &mut list).await?;
    Ok(list.into_listed())
}

/// One conference's summary (`GET /v1/Conferences/{ConferenceSid}`), to learn when it started.
pub async fn fetch_conference(
    client: &ApiClient,
    sid: &ConferenceSid,
) -> Result<ConferenceInfo, SourceError> {
    let url = client.join(&format!("/v1/Conferences/{sid}"))?;
    let info = client
        .get_with(&url, |body| {
            std::str::from_utf8(body)
                .map_err(|e| e.to_string())
                .and_then(|raw| conference_info(raw).map_err(|e| e.to_string()))
        })
        .await?;
    if &info.sid != sid {
        return Err(SourceError::Record(format!(
            "asked for conference {sid}, the API answered with {}",
            info.sid
        )));
    }
    Ok(info)
}

/// A conference's summary (table `conference_summaries`): as discovery gave it, or else
/// `GET /v1/Conferences/{ConferenceSid}`.
pub struct ConferenceSummary;

impl Source for ConferenceSummary {
    fn requests(
        &self,
        client: &ApiClient,
        unit: &Unit,
        _: SourceSettings,
    ) -> Result<Vec<Request>, SourceError> {
        let Unit::Conference { sid, summary, .. } = unit else {
            return Ok(Vec::new());
        };
        Ok(vec![match summary {
            Some(known) => Request::Known(std::sync::Arc::clone(known)),
            None => Request::Record(client.join(&format!("/v1/Conferences/{sid}"))?),
        }])
    }
}

/// A conference's participants (table `conference_participants`):
/// `GET /v1/Conferences/{ConferenceSid}/Participants`, one summary per participant.
pub struct ConferenceParticipants;

impl Source for ConferenceParticipants {
    fn requests(
        &self,
        client: &ApiClient,
        unit: &Unit,
        settings: SourceSettings,
    ) -> Result<Vec<Request>, SourceError> {
        let Unit::Conference { sid, .. } = unit else {
            return Ok(Vec::new());
        };
        let mut first = client.join(&format!("/v1/Conferences/{sid}/Participants"))?;
        first
            .query_pairs_mut()
            .append_pair("PageSize", &settings.page_size.to_string());
        Ok(vec![Request::List {
            first,
            paging: NEXT_PAGE_URL,
        }])
    }
}
