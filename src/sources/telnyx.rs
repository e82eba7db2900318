//! Telnyx call events (`GET /v2/call_events`): one `filter[occurred_at][gte]` (the API takes a
//! single occurred_at filter), optional leg or session filters, paged by `page[number]` up to
//! `meta.total_pages`, ordered by `occurred_at`. Pages are handed out one by one so that a long
//! window streams through instead of being held in memory.

use chrono::{DateTime, SecondsFormat, Utc};
use url::Url;

use super::{PageConsumer, SourceError};
use crate::flatten::PageOutcome;
use crate::http::ApiClient;
use crate::ids::TelnyxId;

/// How far back Telnyx lists events without a leg or session filter.
pub const LOOKBACK_HOURS: i64 = 24;

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `filter[occurred_at][gte]`.
    pub occurred_from: Option<DateTime<Utc>>,
    /// `filter[leg_id]`.
    pub leg: Option<TelnyxId>,
    /// `filter[application_session_id]`.
    pub session: Option<TelnyxId>,
}

/// Pages through one filter; stops after the last page, or at the first event at or past
/// `stop_at_micros`. A server that does not page as asked is caught: `meta.page_number` must be
/// the page asked for, a page whose events equal the previous page's stops the listing, and
/// no listing runs past `max_pages`.
pub struct Pager {
    first: Url,
    page_number: u32,
    max_pages: u32,
    stop_at_micros: Option<i64>,
    previous_data: Option<u64>,
    done: bool,
}

/// The parts of a page the pager checks: the page number the server says it sent, and the
/// raw events (compared with the previous page's).
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

fn data_fingerprint(data: Option<&serde_json::value::RawValue>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.map(|d| d.get()).unwrap_or("").hash(&mut hasher);
    hasher.finish()
}

impl Pager {
    /// A pager for `filter`.
    pub fn new(
        client: &ApiClient,
        filter: &Filter,
        page_size: u32,
        max_pages: u32,
        stop_at_micros: Option<i64>,
    ) -> Result<Pager, SourceError> {
        let mut first = client.join("/v2/call_events")?;
        {
            let mut query = first.query_pairs_mut();
            if let Some(from) = filter.occurred_from {
                query.append_pair(
                    "filter[occurred_at][gte]",
                    &from.to_rfc3339_opts(SecondsFormat::Micros, true),
                );
            }
            if let Some(leg) = &filter.leg {
                query.append_pair("filter[leg_id]", leg.as_str());
            }
            if let Some(session) = &filter.session {
                query.append_pair("filter[application_session_id]", session.as_str());
            }
            query.append_pair("page[size]", &page_size.to_string());
        }
        Ok(Pager {
            first,
            page_number: 0,
            max_pages,
            stop_at_micros,
            previous_data: None,
            done: false,
        })
    }

    /// Fetches the next page into `consumer`; `None` when paging is over.
    pub async fn next_page(
        &mut self,
        client: &ApiClient,
        consumer: &mut impl PageConsumer,
    ) -> Result<Option<PageOutcome>, SourceError> {
        if self.done {
            return Ok(None);
        }
        if self.page_number >= self.max_pages {
            return Err(SourceError::Paging(format!(
                "Telnyx: the listing goes on past {} pages (telnyx.max_pages); stopping",
                self.max_pages
            )));
        }
        self.page_number += 1;
        let asked = u64::from(self.page_number);
        let mut url = self.first.clone();
        url.query_pairs_mut()
            .append_pair("page[number]", &asked.to_string());
        let previous = self.previous_data;
        let mut fingerprint = 0;
        let page = client
            .get_with(&url, |body| {
                let check: PageCheck<'_> = serde_json::from_slice(body)
                    .map_err(|e| crate::flatten::FlattenError::Malformed(e.to_string()))?;
                fingerprint = data_fingerprint(check.data);
                let answered = check.meta.and_then(|m| m.page_number);
                if let Some(answered) = answered.filter(|n| *n != asked) {
                    return Ok(Err(format!(
                        "Telnyx answered page {answered} when page {asked} was asked for: the \
                         server does not page; stopping instead of landing the same events again"
                    )));
                }
                let has_events = check.data.is_some_and(|d| d.get().trim() != "[]");
                if previous == Some(fingerprint) && has_events {
                    return Ok(Err(format!(
                        "Telnyx page {asked} holds the same events as page {}: the server does \
                         not page; stopping instead of landing them again",
                        asked - 1
                    )));
                }
                consumer.read_page(body).map(Ok)
            })
            .await?
            .map_err(SourceError::Paging)?;
        consumer.page_done().await?;
        self.previous_data = Some(fingerprint);
        let total_pages = page.meta.get_u64(&["meta", "total_pages"]).unwrap_or(0);
        let past_end = match (self.stop_at_micros, page.last_partition_micros) {
            (Some(stop), Some(last)) => last >= stop,
            _ => false,
        };
        if page.rows == 0 || u64::from(self.page_number) >= total_pages || past_end {
            self.done = true;
        }
        Ok(Some(page))
    }
}
