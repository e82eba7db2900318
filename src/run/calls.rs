//! Fetching one call: every per-call table the job asks for, all pages, tables concurrently.
//! Rows stream to the call's hour as pages arrive (in batches of [`FLUSH_ROWS`]), so a call of
//! a million rows takes no more memory than a small one. A call is still all or nothing: its
//! `Done` event says whether it landed whole, and a call that failed has its rows taken out of
//! the hour before the hour is committed.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use super::Shared;
use crate::flatten::{FlattenError, Flattener, PageOutcome, RecordContext};
use crate::http::HttpError;
use crate::job::plan::EdgeMode;
use crate::schema::Table;
use crate::sink::HourSlice;
use crate::sources::twilio_insights::{self, Resource};
use crate::sources::twilio_rest::{self, CallInfo};
use crate::sources::{PageConsumer, SourceError};

/// Every edge an Insights list can be asked for.
const ALL_EDGES: [&str; 4] = ["carrier_edge", "sip_edge", "sdk_edge", "client_edge"];

/// Rows a table's pages gather before they are handed to the hour.
pub(crate) const FLUSH_ROWS: usize = 8192;

/// What a call's fetch task reports to the pipeline, in order: rows, then done.
pub(crate) enum CallEvent {
    /// Rows of one table of a call.
    Rows {
        slice: HourSlice,
        sid: String,
        table: Table,
        batch: RecordBatch,
    },
    /// The call is over: whole, or failed.
    Done {
        slice: HourSlice,
        call: CallInfo,
        result: Result<(), CallError>,
    },
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
                | SourceError::Consumer(_)
        );
        CallError {
            reason: e.to_string(),
            fatal,
        }
    }
}

/// Fetches every per-call table of the job for one call, tables concurrently, streaming rows
/// to `events`.
pub(crate) async fn fetch_call(
    shared: &Arc<Shared>,
    call: &CallInfo,
    slice: HourSlice,
    events: &mpsc::Sender<CallEvent>,
) -> Result<(), CallError> {
    let tables: Vec<Table> = shared
        .plan
        .tables
        .iter()
        .copied()
        .filter(|t| t.is_per_call())
        .collect();
    let fetches = tables.iter().map(|table| {
        let pages = CallPages::new(shared, *table, call, slice, events);
        fetch_table(shared, pages, call)
    });
    futures::future::try_join_all(fetches).await?;
    Ok(())
}

/// One table's pages of one call: flattened, handed on every [`FLUSH_ROWS`] rows.
struct CallPages<'a> {
    shared: &'a Shared,
    table: Table,
    sid: &'a str,
    account: Option<&'a str>,
    slice: HourSlice,
    flattener: Flattener,
    events: &'a mpsc::Sender<CallEvent>,
    rows: u64,
    pages: u64,
}

impl<'a> CallPages<'a> {
    fn new(
        shared: &'a Shared,
        table: Table,
        call: &'a CallInfo,
        slice: HourSlice,
        events: &'a mpsc::Sender<CallEvent>,
    ) -> CallPages<'a> {
        let account = (table == Table::CallEvents)
            .then(|| shared.clients.credentials().ok())
            .flatten()
            .map(|c| c.account_sid.as_str());
        CallPages {
            shared,
            table,
            sid: call.sid.as_str(),
            account,
            slice,
            flattener: Flattener::from_plan(shared.flatten_plan(table)),
            events,
            rows: 0,
            pages: 0,
        }
    }

    fn context(&self) -> RecordContext<'a> {
        RecordContext {
            call_sid: Some(self.sid),
            account_sid: self.account,
        }
    }

    /// Hands the rows gathered so far to the hour (waiting for room: that bounds memory).
    async fn flush(&mut self) -> Result<(), SourceError> {
        let shared = self.shared;
        shared
            .drift
            .report(self.table, self.flattener.take_new_unknown_paths());
        let batch = self
            .flattener
            .finish(&shared.lineage)
            .map_err(|e| SourceError::Paging(format!("{}: {e}", self.table)))?;
        let Some(batch) = batch else {
            return Ok(());
        };
        self.rows += batch.num_rows() as u64;
        let event = CallEvent::Rows {
            slice: self.slice,
            sid: self.sid.to_string(),
            table: self.table,
            batch,
        };
        self.events
            .send(event)
            .await
            .map_err(|_| SourceError::Consumer("the run stopped taking rows".into()))
    }

    /// Flushes what is left and counts the table's rows and pages.
    async fn finish(mut self) -> Result<(), SourceError> {
        self.flush().await?;
        self.shared.stats.add(self.table, self.rows, self.pages);
        Ok(())
    }
}

impl PageConsumer for CallPages<'_> {
    fn read_page(&mut self, body: &[u8]) -> Result<PageOutcome, FlattenError> {
        let ctx = self.context();
        self.flattener.push_page(body, &ctx)
    }

    fn read_record(&mut self, body: &[u8]) -> Result<(), FlattenError> {
        let ctx = self.context();
        self.flattener.push_record(body, &ctx)
    }

    async fn page_done(&mut self) -> Result<(), SourceError> {
        self.pages += 1;
        if self.flattener.rows() >= FLUSH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }
}

async fn fetch_table(
    shared: &Arc<Shared>,
    mut pages: CallPages<'_>,
    call: &CallInfo,
) -> Result<(), CallError> {
    let page_size = shared.plan.twilio.page_size;
    match pages.table {
        table @ (Table::InsightsEvents | Table::InsightsMetrics) => {
            let client = shared.clients.insights()?;
            let resource = if table == Table::InsightsEvents {
                Resource::Events
            } else {
                Resource::Metrics
            };
            for edge in edges_for(shared.plan.edges, call) {
                twilio_insights::fetch(client, resource, &call.sid, page_size, edge, &mut pages)
                    .await?;
            }
        }
        Table::CallEvents => {
            let client = shared.clients.rest()?;
            let account = &shared.clients.credentials()?.account_sid;
            twilio_rest::fetch_call_events(client, account, &call.sid, page_size, &mut pages)
                .await?;
        }
        Table::CallSummaries => match &call.summary {
            Some(summary) => {
                pages
                    .read_record(summary.as_bytes())
                    .map_err(|e| CallError {
                        reason: format!("call_summaries: {e}"),
                        fatal: false,
                    })?;
                pages.page_done().await?;
            }
            None => {
                let client = shared.clients.insights()?;
                twilio_insights::fetch_summary(client, &call.sid, &mut pages).await?;
            }
        },
        Table::TelnyxCallEvents => return Ok(()),
    }
    pages.finish().await?;
    Ok(())
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
