//! Telnyx call events (`GET /v2/call_events`): one `filter[occurred_at][gte]` (the API takes a
//! single occurred_at filter), optional leg or session filters, paged by `page[number]` up to
//! `meta.total_pages`, ordered by `occurred_at`. Pages are handed out one by one so that a long
//! window streams through instead of being held in memory.

use chrono::{DateTime, SecondsFormat, Utc};
use url::Url;

use super::SourceError;
use crate::flatten::{Flattener, PageOutcome, RecordContext};
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
/// `stop_at_micros`.
pub struct Pager {
    first: Url,
    page_number: u32,
    stop_at_micros: Option<i64>,
    done: bool,
}

impl Pager {
    /// A pager for `filter`.
    pub fn new(
        client: &ApiClient,
        filter: &Filter,
        page_size: u32,
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
            stop_at_micros,
            done: false,
        })
    }

    /// Fetches the next page into `flattener`; `None` when paging is over.
    pub async fn next_page(
        &mut self,
        client: &ApiClient,
        flattener: &mut Flattener,
    ) -> Result<Option<PageOutcome>, SourceError> {
        if self.done {
            return Ok(None);
        }
        self.page_number += 1;
        let mut url = self.first.clone();
        url.query_pairs_mut()
            .append_pair("page[number]", &self.page_number.to_string());
        let ctx = RecordContext::default();
        let page = client
            .get_with(&url, |body| flattener.push_page(body, &ctx))
            .await?;
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
