//! Twilio REST 2010-04-01: a call's events (`Calls/{CallSid}/Events.json`), the call resource
//! (`Calls/{CallSid}.json`: table `calls`, and when a call started), the calls of a window
//! (`Calls.json`), and an account's subaccounts (`Accounts.json`), paged by the relative
//! `next_page_uri`.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

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
    pub summary: Option<Arc<str>>,
    /// Its call resource as the listing (or its own request) gave it (JSON): the row of
    /// table `calls`, so that no request is made for it.
    pub record: Option<Arc<str>>,
    /// Whether the anchor is its `start_time` (which never changes again), not the
    /// `date_created` of a call that has not started.
    pub started: bool,
}

impl Listed for CallInfo {
    fn anchor_micros(&self) -> i64 {
        self.anchor_micros
    }
    fn key(&self) -> &str {
        self.sid.as_str()
    }
}

#[derive(Deserialize)]
struct CallResource {
    sid: Option<String>,
    start_time: Option<String>,
    date_created: Option<String>,
}

impl CallResource {
    /// What a call resource's JSON text tells, and (`keep_record`) the text itself, as the
    /// call's record.
    fn parse(raw: &str, keep_record: bool) -> Result<CallInfo, String> {
        let resource: CallResource = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        let mut info = resource.info()?;
        info.record = keep_record.then(|| raw.into());
        Ok(info)
    }

    fn info(self) -> Result<CallInfo, String> {
        let sid_text = self.sid.ok_or("call without a sid")?;
        let sid: CallSid = sid_text.parse().map_err(|e| format!("{e}"))?;
        let started = self
            .start_time
            .as_deref()
            .and_then(parse_api_timestamp)
            .is_some();
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
            record: None,
            started,
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
            std::str::from_utf8(body)
                .map_err(|e| e.to_string())
                .and_then(|raw| CallResource::parse(raw, true))
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

/// A call's record (table `calls`): the resource window discovery or the per-SID lookup
/// already has, or else `Calls/{CallSid}.json`.
pub struct CallRecord;

impl Source for CallRecord {
    fn requests(
        &self,
        client: &ApiClient,
        unit: &Unit,
        _: SourceSettings,
    ) -> Result<Vec<Request>, SourceError> {
        let Unit::Call {
            sid,
            account,
            record,
            ..
        } = unit
        else {
            return Ok(Vec::new());
        };
        Ok(vec![match record {
            Some(known) => Request::Known(Arc::clone(known)),
            None => Request::Record(
                client.join(&format!("/2010-04-01/Accounts/{account}/Calls/{sid}.json"))?,
            ),
        }])
    }
}

#[derive(Deserialize)]
struct CallsPage<'a> {
    #[serde(borrow)]
    calls: Option<Vec<&'a RawValue>>,
    next_page_uri: Option<String>,
}

/// The calls started in [from, to): `Calls.json` asked for the covering UTC days
/// (`StartTime>` on or after the first, `StartTime<` before the day after the last), then
/// filtered exactly by `start_time`. Each call keeps its resource's JSON (`record`) only
/// when `keep_records` (table `calls` is fetched): a day's list is held while it runs.
pub async fn discover_calls(
    client: &ApiClient,
    account: &AccountSid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    page_size: u32,
    keep_records: bool,
) -> Result<Vec<CallInfo>, SourceError> {
    let first_day: NaiveDate = from.date_naive();
    let last_day = (to - chrono::Duration::microseconds(1)).date_naive();
    let day_after = last_day.succ_opt().unwrap_or(last_day);
    let mut url = client.join(&format!("/2010-04-01/Accounts/{account}/Calls.json"))?;
    url.query_pairs_mut()
        .append_pair("StartTime>", &first_day.format("%Y-%m-%d").to_string())
        .append_pair("StartTime<", &day_after.format("%Y-%m-%d").to_string())
        .append_pair("PageSize", &page_size.to_string());
    let mut list = Listing::new(from, to, |body: &[u8]| {
        let page: CallsPage = serde_json::from_slice(body).map_err(|e| BodyError(e.to_string()))?;
        let calls = page
            .calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| CallResource::parse(c.get(), keep_records).map_err(SourceError::Record))
            .collect();
        let mut meta = serde_json::Map::new();
        if let Some(next) = page.next_page_uri {
            meta.insert("next_page_uri".into(), serde_json::Value::String(next));
        }
        Ok((calls, PageMeta(meta)))
    });
    pager::fetch_all(client, url, Paging::NextUri, &mut list).await?;
    Ok(list.into_listed())
}

#[derive(Deserialize)]
struct AccountsPage {
    accounts: Option<Vec<AccountEntry>>,
    next_page_uri: Option<String>,
}

/// What voxlake reads of an account (never its `auth_token`: it is not even parsed).
#[derive(Deserialize)]
struct AccountEntry {
    sid: Option<String>,
    status: Option<String>,
}

/// The active accounts `Accounts.json` lists for the credentials (the account itself and its
/// subaccounts), in listed order.
pub async fn active_accounts(
    client: &ApiClient,
    page_size: u32,
) -> Result<Vec<AccountSid>, SourceError> {
    let mut url = client.join("/2010-04-01/Accounts.json")?;
    url.query_pairs_mut()
        .append_pair("Status", "active")
        .append_pair("PageSize", &page_size.to_string());
    let mut accounts = AccountList::default();
    pager::fetch_all(client, url, Paging::NextUri, &mut accounts).await?;
    Ok(accounts.active)
}

/// `Accounts.json` pages into the active accounts they list.
#[derive(Default)]
struct AccountList {
    active: Vec<AccountSid>,
}

impl PageConsumer for AccountList {
    fn read_page(&mut self, body: &[u8]) -> Result<PageOutcome, BodyError> {
        let page: AccountsPage =
            serde_json::from_slice(body).map_err(|e| BodyError(e.to_string()))?;
        let entries = page.accounts.unwrap_or_default();
        let rows = entries.len();
        for entry in entries {
            let active = entry.status.as_deref() == Some("active");
            let sid = entry
                .sid
                .as_deref()
                .and_then(|s| s.parse::<AccountSid>().ok());
            if let (true, Some(sid)) = (active, sid)
                && !self.active.contains(&sid)
            {
                self.active.push(sid);
            }
        }
        let mut meta = serde_json::Map::new();
        if let Some(next) = page.next_page_uri {
            meta.insert("next_page_uri".into(), serde_json::Value::String(next));
        }
        Ok(PageOutcome {
            meta: PageMeta(meta),
            rows,
            last_partition_micros: None,
        })
    }

    fn read_record(&mut self, _: &[u8]) -> Result<(), BodyError> {
        Err(BodyError("an accounts list is not a record".into()))
    }

    async fn page_done(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// What a discovery listing lists: something with a time that decides its hour, and a key.
pub trait Listed {
    /// When it started (µs): the hour it is committed in.
    fn anchor_micros(&self) -> i64;
    /// What it is listed once by (its SID).
    fn key(&self) -> &str;
}

/// A page of a listing, parsed: its entries (or why a record is not one), its paging keys.
pub(crate) type ListedPage<T> = (Vec<Result<T, SourceError>>, PageMeta);

/// The pages of a discovery listing (Calls.json, Summaries, Conferences) into the entries
/// they list that started in a time range. A record that is not one fails the listing after
/// its page (fetching the page again would not change it).
pub(crate) struct Listing<T, F> {
    range: std::ops::Range<i64>,
    listed: Vec<T>,
    bad_record: Option<SourceError>,
    parse: F,
}

impl<T, F> Listing<T, F>
where
    T: Listed + Send,
    F: FnMut(&[u8]) -> Result<ListedPage<T>, BodyError> + Send,
{
    /// A listing of what started in [from, to), each page read by `parse`.
    pub(crate) fn new(from: DateTime<Utc>, to: DateTime<Utc>, parse: F) -> Listing<T, F> {
        Listing {
            range: from.timestamp_micros()..to.timestamp_micros(),
            listed: Vec::new(),
            bad_record: None,
            parse,
        }
    }

    /// The entries, in start order, each once.
    pub(crate) fn into_listed(self) -> Vec<T> {
        let mut listed = self.listed;
        listed.sort_by(|a, b| (a.anchor_micros(), a.key()).cmp(&(b.anchor_micros(), b.key())));
        listed.dedup_by(|a, b| a.key() == b.key());
        listed
    }
}

impl<T, F> PageConsumer for Listing<T, F>
where
    T: Listed + Send,
    F: FnMut(&[u8]) -> Result<ListedPage<T>, BodyError> + Send,
{
    fn read_page(&mut self, body: &[u8]) -> Result<PageOutcome, BodyError> {
        let (entries, meta) = (self.parse)(body)?;
        let rows = entries.len();
        for entry in entries {
            match entry {
                Ok(e) if self.range.contains(&e.anchor_micros()) => self.listed.push(e),
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
        Err(BodyError("a listing is not a record".into()))
    }

    async fn page_done(&mut self) -> Result<(), SourceError> {
        self.bad_record.take().map_or(Ok(()), Err)
    }
}
