//! Twilio Voice Insights: per-call Events and Metrics (`/v1/Voice/{CallSid}/Events|Metrics`),
//! paged by the absolute `meta.next_page_url`.

use url::Url;

use super::{AbsoluteNextUrl, FetchSummary, SourceError, fetch_all};
use crate::flatten::{Flattener, RecordContext};
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

/// Every page of one call's events or metrics into `flattener`.
pub async fn fetch(
    client: &ApiClient,
    resource: Resource,
    call: &CallSid,
    page_size: u32,
    edge: Option<&str>,
    flattener: &mut Flattener,
) -> Result<FetchSummary, SourceError> {
    let first = first_url(client, resource, call, page_size, edge)?;
    let ctx = RecordContext {
        call_sid: Some(call.as_str()),
        account_sid: None,
    };
    fetch_all(
        client,
        first,
        flattener,
        &ctx,
        &mut AbsoluteNextUrl(&["meta", "next_page_url"]),
    )
    .await
}
