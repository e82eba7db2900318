//! Twilio REST 2010-04-01: a call's events (`Calls/{CallSid}/Events.json`), the call resource
//! (`Calls/{CallSid}.json`, for its start time), and the calls of a window (`Calls.json`),
//! paged by the relative `next_page_uri`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::{
    BodyError, PageConsumer, PageMeta, PageOutcome, Paging, Request, Source, SourceError,
    SourceSettings, Unit, pager,
};
use crate::http::ApiClient;
use crate::ids::{AccountSid, CallSid};
use crate::timefmt::parse_api_timestamp;

/// What voxlake needs to know of a call before fetching its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// The call.
    pub sid: CallSid,
    /// When it started (or was created, for calls that never started), µs since the epoch:
    /// the hour slice its rows are committed in.
    pub anchor_micros: i64,
    /// The Insights edges of its call type, when discovery knew the type (summaries).
    pub edges: Option<Vec<&'static str>>,
    /// Its call summary as the Summaries list gave it (JSON), so it is not fetched again.
    pub summary: Option<std::sync::Arc<str>>,
}

#[derive(Deserialize)]
struct CallResource {
    sid: Option<String>,
    start_time: Option<String>,
    date_created: Option<String>,
}

impl CallResource {
    fn info(self) -> Result<CallInfo, String> {
        let sid_text = self.sid.ok_or("call without a sid")?;
        let sid: CallSid = sid_text.parse().map_err(|e| format!("{e}"))?;
        let anchor = [self.start_time, self.date_created]
            .into_iter()
            .flatten()
            .find_map(|t| parse_api_timestamp(&t))
            .ok_or_else(|| format!("call {sid} has neither a start_time nor a date_created"))?;
        Ok(CallInfo {
            sid,
            anchor_micros: anchor,
            edges: None,
            summary: None,
        })
    }
}

/// Fetches one call's resource to learn when it started.
pub async fn fetch_call(
    client: &ApiClient,
    account: &AccountSid,
    call: &CallSid,
) -> Result<CallInfo, SourceError> {
    let url = client.join(&format!("/2010-04-01/Accounts/{account}/Calls/{call}.json"))?;
    let info = client
        .get_with(&url, |body| {
            serde_json::from_slice::<CallResource>(body)
                .map_err(|e| e.to_string())
                .and_then(CallResource::info)
        })
        .await?;
    if &info.sid != call {
        return Err(SourceError::Record(format!(
            "asked for call {call}, the API answered with {}",
            info.sid
        )));
    }
    Ok(info)
}

/// A call's REST events (table `call_events`): `Calls/{CallSid}/Events.json`, paged by the
/// relative `next_page_uri`. Its records carry neither SID: the consumer knows the unit.
pub struct CallEventsList;

impl Source for CallEventsList {
    fn requests(
        &self,
        client: &ApiClient,
        unit: &Unit,
        settings: SourceSettings,
    ) -> Result<Vec<Request>, SourceError> {
        let Unit::Call { sid, account, .. } = unit else {
            return Ok(Vec::new());
        };
        let mut first = client.join(&format!(
            "/2010-04-01/Accounts/{account}/Calls/{sid}/Events.json"
        ))?;
        first
            .query_pairs_mut()
            .append_pair("PageSize", &settings.page_size.to_string());
        Ok(vec![Request::List {
            first,
            paging: Paging::NextUri,
        }])
    }
}

#[derive(Deserialize)]
struct CallsPage {
    calls: Option<Vec<CallResource>>,
    next_page_uri: Option<String>,
}

/// The calls started in [from, to): `Calls.json` asked for the covering UTC days
/// (`StartTime>` on or after the first, `StartTime<` before the day after the last), then
/// filtered exactly by `start_time`.
pub async fn discover_calls(
    client: &ApiClient,
    account: &AccountSid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    page_size: u32,
) -> Result<Vec<CallInfo>, SourceError> {
    let first_day: NaiveDate = from.date_naive();
    let last_day = (to - chrono::Duration::microseconds(1)).date_naive();
    let day_after = last_day.succ_opt().unwrap_or(last_day);
    let mut url = client.join(&format!("/2010-04-01/Accounts/{account}/Calls.json"))?;
    url.query_pairs_mut()
        .append_pair("StartTime>", &first_day.format("%Y-%m-%d").to_string())
        .append_pair("StartTime<", &day_after.format("%Y-%m-%d").to_string())
        .append_pair("PageSize", &page_size.to_string());
    let mut list = CallListing::new(from, to, |body: &[u8]| {
        let page: CallsPage = serde_json::from_slice(body).map_err(|e| BodyError(e.to_string()))?;
        let calls = page
            .calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.info().map_err(SourceError::Record))
            .collect();
        let mut meta = serde_json::Map::new();
        if let Some(next) = page.next_page_uri {
            meta.insert("next_page_uri".into(), serde_json::Value::String(next));
        }
        Ok((calls, PageMeta(meta)))
    });
    pager::fetch_all(client, url, Paging::NextUri, &mut list).await?;
    Ok(list.into_calls())
}

/// A page of a call listing, parsed: its calls (or why a record is not one), its paging keys.
pub(crate) type ListedPage = (Vec<Result<CallInfo, SourceError>>, PageMeta);

/// The pages of a discovery listing (Calls.json, Summaries) into the calls they list that
/// started in a time range. A record that is not a call fails the listing after its page
/// (fetching the page again would not change it).
pub(crate) struct CallListing<F> {
    range: std::ops::Range<i64>,
    calls: Vec<CallInfo>,
    bad_record: Option<SourceError>,
    parse: F,
}

impl<F> CallListing<F>
where
    F: FnMut(&[u8]) -> Result<ListedPage, BodyError> + Send,
{
    /// A listing of the calls started in [from, to), each page read by `parse`.
    pub(crate) fn new(from: DateTime<Utc>, to: DateTime<Utc>, parse: F) -> CallListing<F> {
        CallListing {
            range: from.timestamp_micros()..to.timestamp_micros(),
            calls: Vec::new(),
            bad_record: None,
            parse,
        }
    }

    /// The calls, in start order, each once.
    pub(crate) fn into_calls(self) -> Vec<CallInfo> {
        let mut calls = self.calls;
        calls.sort_by(|a, b| (a.anchor_micros, &a.sid).cmp(&(b.anchor_micros, &b.sid)));
        calls.dedup_by(|a, b| a.sid == b.sid);
        calls
    }
}

impl<F> PageConsumer for CallListing<F>
where
    F: FnMut(&[u8]) -> Result<ListedPage, BodyError> + Send,
{
    fn read_page(&mut self, body: &[u8]) -> Result<PageOutcome, BodyError> {
        let (calls, meta) = (self.parse)(body)?;
        let rows = calls.len();
        for call in calls {
            match call {
                Ok(info) if self.range.contains(&info.anchor_micros) => self.calls.push(info),
                Ok(_) => {}
                Err(e) => self.bad_record = self.bad_record.take().or(Some(e)),
            }
        }
        Ok(PageOutcome {
            meta,
            rows,
            last_partition_micros: None,
        })
    }

    fn read_record(&mut self, _: &[u8]) -> Result<(), BodyError> {
        Err(BodyError("a call listing is not a record".into()))
    }

    async fn page_done(&mut self) -> Result<(), SourceError> {
        self.bad_record.take().map_or(Ok(()), Err)
    }
}
