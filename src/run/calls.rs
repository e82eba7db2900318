//! Fetching one call: every per-call table the job asks for, all pages, into one batch per
//! table. A call is all or nothing: any table failing fails the call, and none of its rows land.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use super::Shared;
use crate::flatten::Flattener;
use crate::http::HttpError;
use crate::job::plan::EdgeMode;
use crate::schema::Table;
use crate::sources::twilio_insights::{self, Resource};
use crate::sources::twilio_rest::{self, CallInfo};
use crate::sources::{FetchSummary, SourceError};

/// Every edge an Insights list can be asked for.
const ALL_EDGES: [&str; 4] = ["carrier_edge", "sip_edge", "sdk_edge", "client_edge"];

/// A call's rows, per table (tables without rows are absent).
pub(crate) struct CallData {
    pub batches: Vec<(Table, RecordBatch)>,
}

/// Why a call failed; `fatal` errors stop the whole run (credentials refused, a link to another
/// host), the others fail only this call.
#[derive(Debug)]
pub(crate) struct CallError {
    pub reason: String,
    pub fatal: bool,
}

impl From<SourceError> for CallError {
    fn from(e: SourceError) -> Self {
        let fatal = matches!(
            &e,
            SourceError::Http(HttpError::ForeignUrl { .. })
                | SourceError::Http(HttpError::Status {
                    status: 401 | 403,
                    ..
                })
                | SourceError::Http(HttpError::Setup { .. })
        );
        CallError {
            reason: e.to_string(),
            fatal,
        }
    }
}

/// Fetches every per-call table of the job for one call, tables concurrently.
pub(crate) async fn fetch_call(
    shared: &Arc<Shared>,
    call: &CallInfo,
) -> Result<CallData, CallError> {
    let tables: Vec<Table> = shared
        .plan
        .tables
        .iter()
        .copied()
        .filter(|t| t.is_per_call())
        .collect();
    let fetches = tables.iter().map(|table| fetch_table(shared, *table, call));
    let results = futures::future::try_join_all(fetches).await?;
    Ok(CallData {
        batches: results.into_iter().flatten().collect(),
    })
}

async fn fetch_table(
    shared: &Arc<Shared>,
    table: Table,
    call: &CallInfo,
) -> Result<Option<(Table, RecordBatch)>, CallError> {
    let mut flattener = Flattener::from_plan(shared.flatten_plan(table));
    let mut total = FetchSummary::default();
    let page_size = shared.plan.twilio.page_size;
    match table {
        Table::InsightsEvents | Table::InsightsMetrics => {
            let client = shared.clients.insights()?;
            let resource = if table == Table::InsightsEvents {
                Resource::Events
            } else {
                Resource::Metrics
            };
            for edge in edges_for(shared.plan.edges, call) {
                let summary = twilio_insights::fetch(
                    client,
                    resource,
                    &call.sid,
                    page_size,
                    edge,
                    &mut flattener,
                )
                .await?;
                total.pages += summary.pages;
                total.rows += summary.rows;
            }
        }
        Table::CallEvents => {
            let client = shared.clients.rest()?;
            let account = &shared.clients.credentials()?.account_sid;
            total = twilio_rest::fetch_call_events(
                client,
                account,
                &call.sid,
                page_size,
                &mut flattener,
            )
            .await?;
        }
        Table::CallSummaries => match &call.summary {
            Some(summary) => {
                let ctx = crate::flatten::RecordContext {
                    call_sid: Some(call.sid.as_str()),
                    account_sid: None,
                };
                flattener
                    .push_record(summary.as_bytes(), &ctx)
                    .map_err(|e| CallError {
                        reason: format!("call_summaries: {e}"),
                        fatal: false,
                    })?;
                total.rows = 1;
            }
            None => {
                let client = shared.clients.insights()?;
                total = twilio_insights::fetch_summary(client, &call.sid, &mut flattener).await?;
            }
        },
        Table::TelnyxCallEvents => return Ok(None),
    }
    shared
        .drift
        .report(table, flattener.take_new_unknown_paths());
    shared.stats.add(table, total.rows, total.pages);
    let batch = flattener.finish(&shared.lineage).map_err(|e| CallError {
        reason: format!("{table}: {e}"),
        fatal: false,
    })?;
    Ok(batch.map(|b| (table, b)))
}

/// The `Edge` values to ask for: none (the default edge), or each edge of the call type.
fn edges_for(mode: EdgeMode, call: &CallInfo) -> Vec<Option<&'static str>> {
    match mode {
        EdgeMode::Default => vec![None],
        EdgeMode::All => match &call.edges {
            Some(edges) => edges.iter().map(|e| Some(*e)).collect(),
            None => ALL_EDGES.iter().map(|e| Some(*e)).collect(),
        },
    }
}
