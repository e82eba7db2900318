//! Fetching one unit of work: every table of the unit's kind asks its source for requests,
//! the pager drives them, and the pages are flattened and streamed to the pipeline as
//! [`Event`]s: rows (already routed to their hour), a Telnyx listing's progress, the end.
//! Rows go out in batches of [`FLUSH_ROWS`] (Telnyx: every page), so a unit of a million rows
//! takes no more memory than a small one.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use tokio::sync::mpsc;

use super::context::RunContext;
use crate::flatten::{Flattener, RecordContext};
use crate::hours::HourSlice;
use crate::http::HttpError;
use crate::ids::Owner;
use crate::schema::Table;
use crate::sources::{
    BodyError, PageConsumer, PageMeta, PageOutcome, SourceError, Unit, fetch_unit,
};
use crate::tables::{self, UnitKind};

/// Rows a table's pages gather before they are handed to the hour.
pub(crate) const FLUSH_ROWS: usize = 8192;

/// Where a unit's rows go: an account's hour of one group of tables.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct HourKey {
    /// The account the hour's files belong to.
    pub owner: Owner,
    /// The hour.
    pub slice: HourSlice,
    /// The tables' commit group (`twilio`, `conferences`, `telnyx`).
    pub group: &'static str,
}

/// What a unit's task reports to the pipeline, in order: rows and progress, then done.
pub(crate) enum Event {
    /// Rows of one table for one hour.
    Rows {
        unit: usize,
        hour: HourKey,
        table: Table,
        batch: RecordBatch,
    },
    /// A listing in time order has no more rows before `before`.
    Passed { unit: usize, before: HourSlice },
    /// The unit is over: whole, or failed.
    Done {
        unit: usize,
        result: Result<(), UnitError>,
    },
}

/// How far a unit's failure reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// This unit failed; the others go on.
    Unit,
    /// The credentials were refused: for one account of several that fails that account's
    /// units only; for the run's only account, the run.
    Account,
    /// The whole run must stop: a link off the origin, the run stopping.
    Run,
}

impl UnitError {
    /// How far the failure reaches in a run of one or of several accounts.
    pub(crate) fn reach(&self, several_accounts: bool) -> Scope {
        match self.scope {
            Scope::Account if several_accounts => Scope::Unit,
            Scope::Account => Scope::Run,
            other => other,
        }
    }
}

/// Why a unit failed.
#[derive(Debug)]
pub(crate) struct UnitError {
    pub reason: String,
    pub scope: Scope,
}

impl From<SourceError> for UnitError {
    fn from(e: SourceError) -> Self {
        let scope = match &e {
            SourceError::Http(HttpError::Status {
                status: 401 | 403, ..
            }) => Scope::Account,
            SourceError::Http(HttpError::ForeignUrl { .. } | HttpError::Setup { .. })
            | SourceError::Consumer(_) => Scope::Run,
            _ => Scope::Unit,
        };
        UnitError {
            reason: e.to_string(),
            scope,
        }
    }
}

impl From<crate::error::Error> for UnitError {
    fn from(e: crate::error::Error) -> Self {
        UnitError {
            reason: e.to_string(),
            scope: Scope::Run,
        }
    }
}

/// How a unit's rows find their hour.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    /// Every row to one hour (a call's: the hour it started).
    Fixed(HourKey),
    /// Each row to the hour of its partition time, rows outside `window` (µs) dropped; with
    /// `progress`, a `Passed` event after each page (the listing is in time order).
    ByTime {
        owner: Owner,
        window: Option<(i64, i64)>,
        progress: bool,
    },
}

/// Fetches one unit: every table of its kind, concurrently, streaming to `events`.
pub(crate) async fn fetch(
    ctx: &Arc<RunContext>,
    id: usize,
    unit: &Unit,
    route: &Route,
    events: &mpsc::Sender<Event>,
) -> Result<(), UnitError> {
    let kind = match unit {
        Unit::Call { .. } => UnitKind::Call,
        Unit::Conference { .. } => UnitKind::Conference,
        Unit::Telnyx(_) => UnitKind::TelnyxEvents,
    };
    let tables = tables::of_unit(&ctx.plan.tables, kind);
    let fetches = tables.iter().map(|table| async move {
        let spec = table.spec();
        let client = ctx.clients.get(spec.api)?;
        let mut pages = UnitPages::new(ctx, id, *table, unit, route, events);
        let settings = ctx.source_settings(spec.api);
        let fetched = fetch_unit(spec.source, client, unit, settings, &mut pages).await?;
        ctx.stats.add_requests(*table, fetched.pages);
        pages.finish().await?;
        Ok::<(), UnitError>(())
    });
    futures::future::try_join_all(fetches).await?;
    Ok(())
}

/// One table's pages of one unit: flattened, routed, handed on.
struct UnitPages<'a> {
    ctx: &'a RunContext,
    unit: usize,
    table: Table,
    call_sid: Option<&'a str>,
    account_sid: Option<&'a str>,
    route: &'a Route,
    flattener: Flattener,
    events: &'a mpsc::Sender<Event>,
    last_time: Option<i64>,
    rows: u64,
    pages: u64,
}

impl<'a> UnitPages<'a> {
    fn new(
        ctx: &'a RunContext,
        unit_id: usize,
        table: Table,
        unit: &'a Unit,
        route: &'a Route,
        events: &'a mpsc::Sender<Event>,
    ) -> UnitPages<'a> {
        let (call_sid, account_sid) = match unit {
            Unit::Call { sid, account, .. } => (Some(sid.as_str()), Some(account.as_str())),
            Unit::Conference { .. } | Unit::Telnyx(_) => (None, None),
        };
        UnitPages {
            ctx,
            unit: unit_id,
            table,
            call_sid,
            account_sid,
            route,
            flattener: ctx.flattener(table),
            events,
            last_time: None,
            rows: 0,
            pages: 0,
        }
    }

    fn context(&self) -> RecordContext<'a> {
        RecordContext {
            call_sid: self.call_sid,
            account_sid: self.account_sid,
        }
    }

    async fn send(&self, event: Event) -> Result<(), SourceError> {
        self.events
            .send(event)
            .await
            .map_err(|_| SourceError::Consumer("the run stopped taking rows".into()))
    }

    /// Hands the rows gathered so far to their hours (waiting for room: that bounds memory).
    async fn flush(&mut self) -> Result<(), SourceError> {
        let ctx = self.ctx;
        ctx.drift
            .report(self.table, self.flattener.take_new_unknown_paths());
        let batch = self
            .flattener
            .finish(&ctx.lineage)
            .map_err(|e| SourceError::Record(format!("{}: {e}", self.table)))?;
        let Some(batch) = batch else {
            return Ok(());
        };
        self.rows += batch.num_rows() as u64;
        let parts = match self.route {
            Route::Fixed(hour) => vec![(hour.clone(), batch)],
            Route::ByTime { owner, window, .. } => {
                let partition = ctx.sink.schemas.get(self.table).partition_column;
                rows_by_hour(&batch, partition, *window)
                    .map_err(SourceError::Record)?
                    .into_iter()
                    .map(|(slice, part)| {
                        let hour = HourKey {
                            owner: owner.clone(),
                            slice,
                            group: self.table.spec().group,
                        };
                        (hour, part)
                    })
                    .collect()
            }
        };
        for (hour, batch) in parts {
            let event = Event::Rows {
                unit: self.unit,
                hour,
                table: self.table,
                batch,
            };
            self.send(event).await?;
        }
        Ok(())
    }

    /// Flushes what is left and counts the table's rows and pages.
    async fn finish(mut self) -> Result<(), SourceError> {
        self.flush().await?;
        self.ctx.stats.add(self.table, self.rows, self.pages);
        self.ctx.give_back(self.table, self.flattener);
        Ok(())
    }
}

impl PageConsumer for UnitPages<'_> {
    fn read_page(&mut self, body: &[u8]) -> Result<PageOutcome, BodyError> {
        let ctx = self.context();
        let page = self
            .flattener
            .push_page(body, &ctx)
            .map_err(|e| BodyError(e.to_string()))?;
        self.last_time = page.last_partition_micros.or(self.last_time);
        Ok(PageOutcome {
            meta: PageMeta(page.other_keys),
            rows: page.rows,
            last_partition_micros: page.last_partition_micros,
        })
    }

    fn read_record(&mut self, body: &[u8]) -> Result<(), BodyError> {
        let ctx = self.context();
        self.flattener
            .push_record(body, &ctx)
            .map_err(|e| BodyError(e.to_string()))
    }

    async fn page_done(&mut self) -> Result<(), SourceError> {
        self.pages += 1;
        match self.route {
            Route::Fixed(_) if self.flattener.rows() < FLUSH_ROWS => Ok(()),
            Route::Fixed(_) => self.flush().await,
            Route::ByTime {
                progress, window, ..
            } => {
                // Rows in time order: the hours before this page's last row are complete
                // once its rows are out.
                self.flush().await?;
                match (progress, self.last_time) {
                    (true, Some(last)) => {
                        let end = window.map_or(i64::MAX, |(_, to)| to);
                        let before = HourSlice::from_micros(last.min(end));
                        self.send(Event::Passed {
                            unit: self.unit,
                            before,
                        })
                        .await
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

/// Rows of a batch by hour of their partition time; rows outside [from, to) are dropped. A
/// row without a time goes with the row before it (listings in time order).
fn rows_by_hour(
    batch: &RecordBatch,
    partition: usize,
    window: Option<(i64, i64)>,
) -> Result<Vec<(HourSlice, RecordBatch)>, String> {
    let times = batch
        .column(partition)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or("the partition column is not a timestamp")?;
    let mut groups: BTreeMap<HourSlice, Vec<u32>> = BTreeMap::new();
    let mut last: Option<i64> = window.map(|(from, _)| from);
    for (i, time) in times.iter().enumerate() {
        let Some(micros) = time.or(last) else {
            continue;
        };
        last = Some(micros);
        if let Some((from, to)) = window
            && !(from..to).contains(&micros)
        {
            continue;
        }
        groups
            .entry(HourSlice::from_micros(micros))
            .or_default()
            .push(i as u32);
    }
    groups
        .into_iter()
        .map(|(hour, rows)| {
            take_record_batch(batch, &UInt32Array::from(rows))
                .map(|part| (hour, part))
                .map_err(|e| e.to_string())
        })
        .collect()
}
