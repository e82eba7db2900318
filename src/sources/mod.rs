//! Sources: one file per API, each supplying only "the first URL" and "the next URL from a
//! page"; `fetch_all` is the one paging driver they share. Page bodies go to a
//! [`PageConsumer`] the run provides, which turns them into rows and hands them on.

pub mod telnyx;
pub mod twilio_insights;
pub mod twilio_rest;

use std::collections::HashSet;

use url::Url;

use crate::flatten::{FlattenError, PageMeta, PageOutcome};
use crate::http::{ApiClient, HttpError};

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
    /// A page's paging fields make no sense.
    #[error("{0}")]
    Paging(String),
    /// The consumer of the pages could not take more (the run is stopping).
    #[error("{0}")]
    Consumer(String),
}

/// Where a source hands each body it fetched; the run decides what becomes of the rows.
pub trait PageConsumer: Send {
    /// Reads one page; an `Err` rejects the body, which is then fetched again.
    fn read_page(&mut self, body: &[u8]) -> Result<PageOutcome, FlattenError>;
    /// Reads a body that is a single record.
    fn read_record(&mut self, body: &[u8]) -> Result<(), FlattenError>;
    /// After each page or record was read: the consumer may hand its rows on (and wait
    /// for room to do so, which is what bounds a run's memory).
    fn page_done(&mut self) -> impl std::future::Future<Output = Result<(), SourceError>> + Send;
}

/// What paging through one resource gave.
#[derive(Debug, Default, Clone, Copy)]
pub struct FetchSummary {
    /// Pages read.
    pub pages: u64,
    /// Rows read.
    pub rows: u64,
}

/// Decides the next page from the current one.
pub trait NextPage {
    /// The next URL, or None after the last page.
    fn next(&mut self, current: &Url, page: &PageOutcome) -> Result<Option<Url>, SourceError>;
}

/// Pages from `first` until `next` says done, every page into `consumer`. Every next link
/// passes the [`LinkGuard`].
pub async fn fetch_all(
    client: &ApiClient,
    first: Url,
    consumer: &mut impl PageConsumer,
    next: &mut (dyn NextPage + Send),
) -> Result<FetchSummary, SourceError> {
    let mut guard = LinkGuard::new(&first);
    let mut summary = FetchSummary::default();
    let mut url = first;
    loop {
        guard.admit(client, &url)?;
        let page = client
            .get_with(&url, |body| consumer.read_page(body))
            .await?;
        consumer.page_done().await?;
        summary.pages += 1;
        summary.rows += page.rows as u64;
        match next.next(&url, &page)? {
            Some(following) => url = following,
            None => return Ok(summary),
        }
    }
}

/// The checks every next-page link passes before it is fetched: it stays on the client's
/// origin (credentials go nowhere else), keeps the first request's path (only the query may
/// change: a link to another call's list would land that call's rows as this one's), and has
/// not been fetched before (a listing that loops fails instead of running forever).
pub struct LinkGuard {
    path: String,
    seen: HashSet<String>,
}

impl LinkGuard {
    /// A guard for the listing that starts at `first`.
    pub fn new(first: &Url) -> LinkGuard {
        LinkGuard {
            path: first.path().to_string(),
            seen: HashSet::new(),
        }
    }

    /// Admits `url` as the next request, or says why not.
    pub fn admit(&mut self, client: &ApiClient, url: &Url) -> Result<(), SourceError> {
        client.check_origin(url)?;
        if url.path() != self.path {
            return Err(SourceError::OtherPath {
                api: client.api(),
                expected: self.path.clone(),
                target: url.path().to_string(),
            });
        }
        if !self.seen.insert(url.as_str().to_string()) {
            return Err(SourceError::Loop {
                api: client.api(),
                target: format!("{}?{}", url.path(), url.query().unwrap_or("")),
            });
        }
        Ok(())
    }
}

/// Paging by an absolute `next_page_url` at a path inside the page (Voice Insights: `meta.next_page_url`).
pub struct AbsoluteNextUrl(pub &'static [&'static str]);

impl NextPage for AbsoluteNextUrl {
    fn next(&mut self, _current: &Url, page: &PageOutcome) -> Result<Option<Url>, SourceError> {
        next_link(&page.meta, self.0, None)
    }
}

/// Paging by a relative `next_page_uri` resolved against the client's origin (Twilio REST).
pub struct RelativeNextUri<'a> {
    /// The client whose origin the URI is relative to.
    pub client: &'a ApiClient,
}

impl NextPage for RelativeNextUri<'_> {
    fn next(&mut self, _current: &Url, page: &PageOutcome) -> Result<Option<Url>, SourceError> {
        next_link(&page.meta, &["next_page_uri"], Some(self.client))
    }
}

fn next_link(
    meta: &PageMeta,
    path: &[&str],
    relative_to: Option<&ApiClient>,
) -> Result<Option<Url>, SourceError> {
    let Some(link) = meta.get_str(path) else {
        return Ok(None);
    };
    if link.is_empty() {
        return Ok(None);
    }
    match relative_to {
        Some(client) => Ok(Some(client.join(link)?)),
        None => Url::parse(link)
            .map(Some)
            .map_err(|e| SourceError::Paging(format!("bad next page link: {e}"))),
    }
}

/// Reads a body that is a single record (no paging), retrying like any page.
pub async fn fetch_one(
    client: &ApiClient,
    url: Url,
    consumer: &mut impl PageConsumer,
) -> Result<FetchSummary, SourceError> {
    client
        .get_with(&url, |body| -> Result<(), FlattenError> {
            consumer.read_record(body)
        })
        .await?;
    consumer.page_done().await?;
    Ok(FetchSummary { pages: 1, rows: 1 })
}
