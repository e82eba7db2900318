//! Sources: one file per API. A [`Source`] says, for one unit of work (a call, a Telnyx range
//! or leg), which requests a table makes: listings to page through, single records, or a
//! record already known. The one [`pager`] drives every listing whatever its paging style,
//! with the origin, path and loop checks in one place. Page bodies go to a [`PageConsumer`]
//! the run provides: sources never see rows.

pub mod pager;
pub mod telnyx;
pub mod twilio_insights;
pub mod twilio_rest;

use std::sync::Arc;

use serde_json::{Map, Value};
use url::Url;

use crate::http::{ApiClient, HttpError};
use crate::ids::{AccountSid, CallSid, ConferenceSid};

pub use pager::{LinkGuard, Pager, Paging};

/// A source could not page through a resource.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The HTTP layer gave up or was refused.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The API sent the same next link twice: paging would never end.
    #[error("{api}: next page link {target} was already fetched; stopping instead of looping")]
    Loop {
        /// Which API.
        api: crate::http::Api,
        /// Path and query of the repeated link.
        target: String,
    },
    /// A next-page link to another resource on the same origin.
    #[error(
        "{api}: the next page link points at {target}, not at {expected}; refusing to mix another resource's rows in"
    )]
    OtherPath {
        /// Which API.
        api: crate::http::Api,
        /// The path of the listing's first request.
        expected: String,
        /// The path the link points at.
        target: String,
    },
    /// A page's paging fields make no sense, or the server does not page as asked.
    #[error("{0}")]
    Paging(String),
    /// A record the API sent does not say what it must (a call without a SID or a time).
    #[error("{0}")]
    Record(String),
    /// The consumer of the pages could not take more (the run is stopping).
    #[error("{0}")]
    Consumer(String),
}

/// The top-level keys of a page other than its records (`meta`, `next_page_uri`, ...).
#[derive(Clone, Debug, Default)]
pub struct PageMeta(pub Map<String, Value>);

impl PageMeta {
    /// The value at a path of keys, if present and not null.
    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut value = self.0.get(*first)?;
        for key in rest {
            value = value.get(*key)?;
        }
        (!value.is_null()).then_some(value)
    }

    /// A string at a path.
    pub fn get_str(&self, path: &[&str]) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }

    /// A non-negative integer at a path.
    pub fn get_u64(&self, path: &[&str]) -> Option<u64> {
        self.get(path).and_then(Value::as_u64)
    }
}

/// What a consumer made of one page.
#[derive(Debug, Default)]
pub struct PageOutcome {
    /// The page's non-record keys, for paging.
    pub meta: PageMeta,
    /// Rows (records) it held.
    pub rows: usize,
    /// The partition time (µs) of its last record, when known: listings ordered by time stop
    /// at the first record past their window.
    pub last_partition_micros: Option<i64>,
}

/// A body the consumer could not use (truncated, not JSON, not the documented shape): the
/// HTTP client fetches it again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// Where a source hands each body it fetched; the run decides what becomes of the rows.
pub trait PageConsumer: Send {
    /// Reads one page; an `Err` rejects the body, which is then fetched again.
    fn read_page(&mut self, body: &[u8]) -> Result<PageOutcome, BodyError>;
    /// Reads a body that is a single record.
    fn read_record(&mut self, body: &[u8]) -> Result<(), BodyError>;
    /// After each page or record was read: the consumer may hand its rows on (and wait
    /// for room to do so, which is what bounds a run's memory).
    fn page_done(&mut self) -> impl std::future::Future<Output = Result<(), SourceError>> + Send;
}

/// What fetching one table of one unit gave.
#[derive(Debug, Default, Clone, Copy)]
pub struct FetchSummary {
    /// Pages (or records) read.
    pub pages: u64,
    /// Rows read.
    pub rows: u64,
}

impl FetchSummary {
    fn add(&mut self, other: FetchSummary) {
        self.pages += other.pages;
        self.rows += other.rows;
    }
}

/// A unit of work, as the sources need to know it.
#[derive(Clone, Debug)]
pub enum Unit {
    /// A Twilio call: every per-call table asks about it.
    Call {
        /// The call.
        sid: CallSid,
        /// The account its REST paths are under.
        account: AccountSid,
        /// The Insights `Edge` values to ask for (`None`: the call type's default edge).
        edges: Vec<Option<&'static str>>,
        /// Its summary as window discovery gave it, so that it is not fetched again.
        summary: Option<Arc<str>>,
        /// Its call resource as discovery (or the per-SID lookup) gave it.
        record: Option<Arc<str>>,
    },
    /// A Twilio conference: its summary and its participants.
    Conference {
        /// The conference.
        sid: ConferenceSid,
        /// The account it belongs to.
        account: AccountSid,
        /// Its summary as discovery gave it.
        summary: Option<Arc<str>>,
    },
    /// Telnyx call events of a filter (a time range, a leg or a session).
    Telnyx(telnyx::Filter),
}

/// How the sources page.
#[derive(Clone, Copy, Debug)]
pub struct SourceSettings {
    /// Records a page asks for (Twilio `PageSize`, Telnyx `page[size]`).
    pub page_size: u32,
    /// Pages a numbered listing may take at most (Telnyx).
    pub max_pages: u32,
}

/// One request a table makes for a unit.
#[derive(Clone, Debug)]
pub enum Request {
    /// A listing: the first page, and how the next ones are found.
    List {
        /// The first page.
        first: Url,
        /// The paging style.
        paging: Paging,
    },
    /// A single record (`/Summary`).
    Record(Url),
    /// A record already known (from window discovery): no request at all.
    Known(Arc<str>),
}

/// A table's source: the requests it makes for a unit.
pub trait Source: Sync {
    /// The requests of this table for `unit`, in order.
    fn requests(
        &self,
        client: &ApiClient,
        unit: &Unit,
        settings: SourceSettings,
    ) -> Result<Vec<Request>, SourceError>;
}

/// Makes one request, every page (or the record) into `consumer`.
pub async fn fetch(
    client: &ApiClient,
    request: Request,
    consumer: &mut impl PageConsumer,
) -> Result<FetchSummary, SourceError> {
    match request {
        Request::List { first, paging } => pager::fetch_all(client, first, paging, consumer).await,
        Request::Record(url) => {
            client
                .get_with(&url, |body| consumer.read_record(body))
                .await?;
            consumer.page_done().await?;
            Ok(FetchSummary { pages: 1, rows: 1 })
        }
        Request::Known(record) => {
            consumer
                .read_record(record.as_bytes())
                .map_err(|e| SourceError::Record(e.to_string()))?;
            consumer.page_done().await?;
            Ok(FetchSummary { pages: 0, rows: 1 })
        }
    }
}

/// Makes every request of a table for a unit, in order, into `consumer`.
pub async fn fetch_unit(
    source: &dyn Source,
    client: &ApiClient,
    unit: &Unit,
    settings: SourceSettings,
    consumer: &mut impl PageConsumer,
) -> Result<FetchSummary, SourceError> {
    let mut summary = FetchSummary::default();
    for request in source.requests(client, unit, settings)? {
        summary.add(fetch(client, request, consumer).await?);
    }
    Ok(summary)
}
