//! The run context: what every task of a run shares, built once before anything is fetched
//! and not changed after. Counters (`stats`, `drift`) and the job's coverage are the only
//! things that move, each behind its own guard.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::clients::Clients;
use crate::error::Result;
use crate::events::{DriftLog, RunStats};
use crate::flatten::{FlattenPlan, Flattener, FlattenerPool, Lineage};
use crate::hours::HourSlice;
use crate::http::Api;
use crate::ids::{AccountSid, Owner};
use crate::job::JobPlan;
use crate::schema::Table;
use crate::sink::Lake;
use crate::sink::hour::SinkContext;
use crate::sources::SourceSettings;
use crate::state::CoverageSet;
use crate::stop::Stop;

/// Everything the tasks of a run share.
pub(crate) struct RunContext {
    /// The checked job.
    pub plan: JobPlan,
    /// One client per API the job needs.
    pub clients: Clients,
    /// Where and how hours are committed.
    pub sink: SinkContext,
    /// Stamped on every row.
    pub lineage: Lineage,
    /// Counters for the progress bar and the manifest.
    pub stats: Arc<RunStats>,
    /// Fields the APIs sent that the schemas do not name.
    pub drift: DriftLog,
    /// Set by SIGINT/SIGTERM.
    pub stop: Arc<Stop>,
    /// The clock pinned by `--now`; None = the real clock.
    pub pinned_now: Option<DateTime<Utc>>,
    /// The Twilio accounts the run fetches (the credential's own, or its subaccounts).
    pub accounts: Vec<AccountSid>,
    /// Every owner of the run's tables, with its tables.
    pub owners: Vec<(Owner, Vec<Table>)>,
    /// The Telnyx key's account.
    pub telnyx_owner: Option<Owner>,
    /// The job's coverage of its tables.
    pub coverage: tokio::sync::Mutex<CoverageSet>,
    /// Each table's flatteners (its schema compiled once per run), reused unit after unit.
    flatteners: BTreeMap<Table, FlattenerPool>,
}

impl RunContext {
    /// Builds the context (the clients, the flatten plans, the owners).
    pub(crate) fn new(
        (plan, accounts): (JobPlan, Vec<AccountSid>),
        clients: Clients,
        sink: SinkContext,
        (lineage, coverage): (Lineage, CoverageSet),
        stop: Arc<Stop>,
        pinned_now: Option<DateTime<Utc>>,
    ) -> RunContext {
        let flatteners = Table::ALL
            .into_iter()
            .map(|t| (t, FlattenerPool::new(FlattenPlan::new(sink.schemas.get(t)))))
            .collect();
        let owners = plan.owners(&accounts);
        let telnyx_owner = plan.telnyx.api_key.as_ref().map(Owner::telnyx);
        RunContext {
            plan,
            clients,
            sink,
            lineage,
            stats: Arc::new(RunStats::default()),
            drift: DriftLog::default(),
            stop,
            pinned_now,
            accounts,
            owners,
            telnyx_owner,
            coverage: tokio::sync::Mutex::new(coverage),
            flatteners,
        }
    }

    /// The output.
    pub(crate) fn lake(&self) -> &Lake {
        &self.sink.lake
    }

    /// A flattener of the table's rows (an idle one of an earlier unit, when there is one).
    pub(crate) fn flattener(&self, table: Table) -> Flattener {
        match self.flatteners.get(&table) {
            Some(pool) => pool.take(),
            None => Flattener::new(self.sink.schemas.get(table)),
        }
    }

    /// Gives back a flattener whose rows were all taken, for the next unit.
    pub(crate) fn give_back(&self, table: Table, flattener: Flattener) {
        if let Some(pool) = self.flatteners.get(&table) {
            pool.give(flattener);
        }
    }

    /// Now, by the run's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.pinned_now.unwrap_or_else(Utc::now)
    }

    /// True when an hour had ended `lag` before `fetched_at`: its data is complete, so a
    /// backfill may skip it from now on. Later hours are fetched but stay pending.
    pub(crate) fn closed_at(&self, hour: HourSlice, fetched_at: DateTime<Utc>) -> bool {
        hour.end() <= fetched_at - self.plan.lag
    }

    /// How the sources of an API page.
    pub(crate) fn source_settings(&self, api: Api) -> SourceSettings {
        match api {
            Api::Telnyx => SourceSettings {
                page_size: self.plan.telnyx.page_size,
                max_pages: self.plan.telnyx.max_pages,
            },
            Api::TwilioInsights | Api::TwilioRest => SourceSettings {
                page_size: self.plan.twilio.page_size,
                max_pages: u32::MAX,
            },
        }
    }

    /// Marks an hour done for the owner's tables and saves their coverage.
    pub(crate) async fn mark_done(
        &self,
        owner: &Owner,
        tables: &[Table],
        slice: HourSlice,
    ) -> Result<()> {
        let mut coverage = self.coverage.lock().await;
        coverage.mark_done(self.lake(), owner, tables, slice).await
    }

    /// The account the credentials are of (its subaccounts are asked for by name).
    pub(crate) fn credentials_account(&self) -> Result<&AccountSid> {
        Ok(&self.clients.credentials()?.account_sid)
    }

    /// True when a refused credential concerns one account of several, not the whole run.
    pub(crate) fn several_accounts(&self) -> bool {
        self.accounts.len() > 1
    }

    /// True when the owner's `tables` are all done for the hour.
    /// Whether a window run fetches the owner's hour: this worker's share (sharded
    /// backfills), and not already done when `skip_done`.
    pub(crate) async fn to_do(
        &self,
        (owner, tables): (&Owner, &[Table]),
        hour: HourSlice,
        skip_done: bool,
    ) -> bool {
        self.plan.takes(owner, hour) && !(skip_done && self.is_done(owner, tables, hour).await)
    }

    pub(crate) async fn is_done(&self, owner: &Owner, tables: &[Table], hour: HourSlice) -> bool {
        self.coverage.lock().await.all_of(owner, tables, hour)
    }
}
