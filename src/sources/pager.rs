//! The one pager: drives a listing from its first page to its last, whatever its paging
//! style (an absolute `next_page_url`, a relative `next_page_uri`, or `page[number]` up to
//! `meta.total_pages`), handing each body to a [`PageConsumer`]. Every request passes the
//! [`LinkGuard`]; numbered listings are checked against servers that do not page as asked.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use url::Url;

use super::{FetchSummary, PageConsumer, PageOutcome, SourceError};
use crate::http::ApiClient;

/// How a listing finds its next page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// An absolute URL at a path of keys of the page (Voice Insights: `meta.next_page_url`).
    NextUrl(&'static [&'static str]),
    /// A URI relative to the API's origin, at the page's `next_page_uri` (Twilio REST).
    NextUri,
    /// `page[number]` from 1 up to `meta.total_pages` (Telnyx): each page must say it is the
    /// page asked for and hold other records than the one before; at most `max_pages`, and no
    /// further than the first record at or past `stop_at_micros` (records come in time order).
    PageNumber {
        /// Pages the listing may take at most.
        max_pages: u32,
        /// Stop after the page whose last record is at or past this time (µs).
        stop_at_micros: Option<i64>,
    },
}

/// The checks every request of a listing passes before it is sent: it stays on the client's
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

/// What comes after a page.
enum Next {
    Page(Url),
    Done,
    /// The listing cannot go on; said when the next page is asked for.
    Fail(String),
}

/// Pages through one listing.
pub struct Pager<'a> {
    client: &'a ApiClient,
    paging: Paging,
    guard: LinkGuard,
    first: Url,
    next: Next,
    page_number: u32,
    previous_records: Option<u64>,
}

impl<'a> Pager<'a> {
    /// A pager from `first` (for numbered listings, without `page[number]`).
    pub fn new(client: &'a ApiClient, first: Url, paging: Paging) -> Pager<'a> {
        let start = match paging {
            Paging::PageNumber { .. } => numbered(&first, 1),
            _ => first.clone(),
        };
        Pager {
            client,
            paging,
            guard: LinkGuard::new(&first),
            first,
            next: Next::Page(start),
            page_number: 0,
            previous_records: None,
        }
    }

    /// Fetches the next page into `consumer`; `None` once the listing is over.
    pub async fn next_page(
        &mut self,
        consumer: &mut impl PageConsumer,
    ) -> Result<Option<PageOutcome>, SourceError> {
        let url = match std::mem::replace(&mut self.next, Next::Done) {
            Next::Page(url) => url,
            Next::Done => return Ok(None),
            Next::Fail(why) => return Err(SourceError::Paging(why)),
        };
        self.guard.admit(self.client, &url)?;
        self.page_number += 1;
        let page = match self.paging {
            Paging::PageNumber { .. } => self.numbered_page(&url, consumer).await?,
            _ => {
                self.client
                    .get_with(&url, |body| consumer.read_page(body))
                    .await?
            }
        };
        consumer.page_done().await?;
        self.next = self.following(&page)?;
        Ok(Some(page))
    }

    /// A page of a numbered listing: the server must answer the page asked for, with other
    /// records than the page before (checked before the consumer sees it).
    async fn numbered_page(
        &mut self,
        url: &Url,
        consumer: &mut impl PageConsumer,
    ) -> Result<PageOutcome, SourceError> {
        let asked = u64::from(self.page_number);
        let previous = self.previous_records;
        let mut fingerprint = 0;
        let page = self
            .client
            .get_with(url, |body| {
                let check: PageCheck<'_> =
                    serde_json::from_slice(body).map_err(|e| super::BodyError(e.to_string()))?;
                fingerprint = records_fingerprint(check.data);
                let answered = check.meta.and_then(|m| m.page_number);
                if let Some(answered) = answered.filter(|n| *n != asked) {
                    return Ok(Err(format!(
                        "{} answered page {answered} when page {asked} was asked for: the \
                         server does not page; stopping instead of landing the same records again",
                        self.client.api()
                    )));
                }
                let has_records = check.data.is_some_and(|d| d.get().trim() != "[]");
                if previous == Some(fingerprint) && has_records {
                    return Ok(Err(format!(
                        "{} page {asked} holds the same records as page {}: the server does \
                         not page; stopping instead of landing them again",
                        self.client.api(),
                        asked - 1
                    )));
                }
                consumer.read_page(body).map(Ok)
            })
            .await?
            .map_err(SourceError::Paging)?;
        self.previous_records = Some(fingerprint);
        Ok(page)
    }

    /// Where the listing goes after `page`.
    fn following(&self, page: &PageOutcome) -> Result<Next, SourceError> {
        let link = match self.paging {
            Paging::NextUrl(path) => page.meta.get_str(path),
            Paging::NextUri => page.meta.get_str(&["next_page_uri"]),
            Paging::PageNumber {
                max_pages,
                stop_at_micros,
            } => return Ok(self.following_number(page, max_pages, stop_at_micros)),
        };
        let Some(link) = link.filter(|l| !l.is_empty()) else {
            return Ok(Next::Done);
        };
        let url = match self.paging {
            Paging::NextUri => self.client.join(link)?,
            _ => Url::parse(link)
                .map_err(|e| SourceError::Paging(format!("bad next page link: {e}")))?,
        };
        Ok(Next::Page(url))
    }

    fn following_number(
        &self,
        page: &PageOutcome,
        max_pages: u32,
        stop_at_micros: Option<i64>,
    ) -> Next {
        let total_pages = page.meta.get_u64(&["meta", "total_pages"]).unwrap_or(0);
        let past_end = match (stop_at_micros, page.last_partition_micros) {
            (Some(stop), Some(last)) => last >= stop,
            _ => false,
        };
        if page.rows == 0 || u64::from(self.page_number) >= total_pages || past_end {
            return Next::Done;
        }
        if self.page_number >= max_pages {
            return Next::Fail(format!(
                "{}: the listing goes on past {max_pages} pages (telnyx.max_pages); stopping",
                self.client.api()
            ));
        }
        Next::Page(numbered(&self.first, self.page_number + 1))
    }
}

/// `first` asking for page `n`.
fn numbered(first: &Url, n: u32) -> Url {
    let mut url = first.clone();
    url.query_pairs_mut()
        .append_pair("page[number]", &n.to_string());
    url
}

/// The parts of a numbered page the pager checks: the page number the server says it sent,
/// and the raw records (compared with the previous page's).
#[derive(serde::Deserialize)]
struct PageCheck<'a> {
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
    meta: Option<PageCheckMeta>,
}

#[derive(serde::Deserialize)]
struct PageCheckMeta {
    page_number: Option<u64>,
}

fn records_fingerprint(data: Option<&serde_json::value::RawValue>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.map(|d| d.get()).unwrap_or("").hash(&mut hasher);
    hasher.finish()
}

/// Pages from `first` to the end, every page into `consumer`.
pub async fn fetch_all(
    client: &ApiClient,
    first: Url,
    paging: Paging,
    consumer: &mut impl PageConsumer,
) -> Result<FetchSummary, SourceError> {
    let mut pager = Pager::new(client, first, paging);
    let mut summary = FetchSummary::default();
    while let Some(page) = pager.next_page(consumer).await? {
        summary.pages += 1;
        summary.rows += page.rows as u64;
    }
    Ok(summary)
}
