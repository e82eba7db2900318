//! Telnyx call events (`GET /v2/call_events`, table `telnyx_call_events`): one
//! `filter[occurred_at][gte]` (the API takes a single occurred_at filter), optional leg or
//! session filters, paged by `page[number]` up to `meta.total_pages`, ordered by `occurred_at`:
//! a window's listing stops at its first event at or past the window's end.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Paging, Request, Source, SourceError, SourceSettings, Unit};
use crate::http::ApiClient;
use crate::ids::TelnyxId;

/// How far back Telnyx lists events without a leg or session filter.
pub const LOOKBACK_HOURS: i64 = 24;

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `filter[occurred_at][gte]`.
    pub occurred_from: Option<DateTime<Utc>>,
    /// Stop at the first event at or past this time (not sent: Telnyx takes one
    /// `occurred_at` filter, and the listing is in time order).
    pub until: Option<DateTime<Utc>>,
    /// `filter[leg_id]`.
    pub leg: Option<TelnyxId>,
    /// `filter[application_session_id]`.
    pub session: Option<TelnyxId>,
}

/// The events of a filter.
pub struct CallEventsList;

impl Source for CallEventsList {
    fn requests(
        &self,
        client: &ApiClient,
        unit: &Unit,
        settings: SourceSettings,
    ) -> Result<Vec<Request>, SourceError> {
        let Unit::Telnyx(filter) = unit else {
            return Ok(Vec::new());
        };
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
            query.append_pair("page[size]", &settings.page_size.to_string());
        }
        Ok(vec![Request::List {
            first,
            paging: Paging::PageNumber {
                max_pages: settings.max_pages,
                stop_at_micros: filter.until.map(|t| t.timestamp_micros()),
            },
        }])
    }
}
