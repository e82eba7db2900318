//! The one pipeline of a run: work (Twilio hours with their calls, Telnyx ranges, legs) comes
//! in; each unit is fetched by a task of its API's lane (bounded by the API's concurrency, a few units a slot); the
//! rows its task streams go to their hour's files as they arrive; an hour is committed, under
//! its account's lock, as soon as no unit can add to it any more. A unit is all or nothing: a
//! failed call's or leg's rows are taken out of its hours, and those hours keep what the unit
//! had before.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::context::RunContext;
use super::fetch::{self, Event, HourKey, Route, Scope, UnitError};
use super::report::{FailedUnit, Landed, UnitKind as FailedKind};
use super::units::Work;
use crate::error::{Error, Result};
use crate::events::RunStats;
use crate::hours::HourSlice;
use crate::ids::{Owner, TelnyxId};
use crate::job::plan::EdgeMode;
use crate::schema::Table;
use crate::sink::hour::{HourBuild, Replace, UNIT_COLUMN, commit_hour};
use crate::sources::Unit;
use crate::sources::telnyx::Filter;
use crate::sources::twilio_rest::CallInfo;
use crate::tables::{self, UnitKind};
use crate::timefmt::micros_to_day;

/// Every edge an Insights list can be asked for.
const ALL_EDGES: [&str; 4] = ["carrier_edge", "sip_edge", "sdk_edge", "client_edge"];

/// How an hour replaces what it had, by the work it came from.
#[derive(Clone, Copy, Debug)]
enum Policy {
    /// An hour of keyed units (calls, conferences): wholly in a window (and then it is exactly
    /// its units), or merged into (the units' rows, by `column`, replaced).
    Units {
        whole: bool,
        closed: bool,
        column: &'static str,
    },
    /// An hour of a Telnyx window: replaced whole, or (at the window's ends) in its part.
    Range {
        whole: bool,
        closed: bool,
        time: (i64, i64),
    },
    /// An hour Telnyx legs or sessions touched: their rows are replaced, within the window.
    Ids { time: Option<(i64, i64)> },
}

struct OpenHour {
    build: HourBuild,
    policy: Policy,
    /// Units that may still add rows.
    waiting: usize,
    /// Units (calls, conferences) that landed whole.
    ok: HashSet<String>,
    failed: Vec<FailedUnit>,
}

/// What a unit is, while it runs.
enum UnitState {
    /// A call or a conference: every row to its hour.
    Keyed {
        hour: HourKey,
        unit: Unit,
        label: String,
        kind: FailedKind,
        column: &'static str,
    },
    Range {
        owner: Owner,
        hours: Vec<HourSlice>,
        released: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    Id {
        kind: FailedKind,
        id: TelnyxId,
    },
}

/// Calls and conferences started per slot of the Twilio concurrency cap, when fetches run on
/// threads of their own. The HTTP client keeps requests in flight to the cap; units started
/// ahead of it wait there for a slot, so one whose page comes back while the pipeline is busy
/// writing an hour's rows is followed at once, not when the pipeline next looks at its lanes
/// (at one unit per slot, half the slots stood idle at `--threads 2`; at four, the fetch
/// thread still ran dry while the pipeline flushed a row group: eight took 5 % off the wall
/// time of the Metrics bench at 2 threads, for ~2 MB more peak RSS). On one thread nothing
/// runs while the pipeline writes anyway: one unit per slot.
fn units_per_slot() -> usize {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => 1,
        _ => 8,
    }
}

/// The units of one API: queued, and in flight up to its limit.
struct Lane {
    queue: VecDeque<usize>,
    in_flight: usize,
    limit: usize,
}

/// Telnyx legs and sessions of the run, fetched before any of their hours commits.
#[derive(Default)]
struct IdsWork {
    owner: Option<Owner>,
    window: Option<(i64, i64)>,
    pending: usize,
    legs_ok: HashSet<String>,
    sessions_ok: HashSet<String>,
}

struct Pipeline {
    ctx: Arc<RunContext>,
    hours: BTreeMap<HourKey, OpenHour>,
    units: HashMap<usize, UnitState>,
    next_unit: usize,
    /// Twilio, then Telnyx.
    lanes: [Lane; 2],
    ids: IdsWork,
    landed: Landed,
    tasks: JoinSet<()>,
    events: mpsc::Sender<Event>,
}

/// Runs every piece of work `work` yields; returns what landed.
pub(crate) async fn run(ctx: Arc<RunContext>, mut work: mpsc::Receiver<Work>) -> Result<Landed> {
    let lane = |limit: usize| Lane {
        queue: VecDeque::new(),
        in_flight: 0,
        limit: limit.max(1),
    };
    let lanes = [
        lane(ctx.plan.twilio.concurrency * units_per_slot()),
        lane(ctx.plan.telnyx.concurrency),
    ];
    // Rows and ends of units, in the order each unit sent them; bounded, so that fetches
    // wait while the hours' files take what they sent.
    let capacity = (lanes[0].limit + lanes[1].limit) * 2;
    let (events_tx, mut events) = mpsc::channel::<Event>(capacity);
    let mut pipeline = Pipeline {
        ctx,
        hours: BTreeMap::new(),
        units: HashMap::new(),
        next_unit: 0,
        lanes,
        ids: IdsWork::default(),
        landed: Landed::default(),
        tasks: JoinSet::new(),
        events: events_tx,
    };
    let mut work_open = true;
    loop {
        pipeline.start_units()?;
        let in_flight: usize = pipeline.lanes.iter().map(|l| l.in_flight).sum();
        let queued: usize = pipeline.lanes.iter().map(|l| l.queue.len()).sum();
        if in_flight == 0 && queued == 0 && !work_open {
            break;
        }
        // More work only while every lane has room: a lane with room (Telnyx's, empty in a
        // Twilio job) must not let a window's discovery, which lists a day of calls in a
        // request or two, run ahead of the fetches and hold a whole backfill's calls here.
        let room = pipeline.lanes.iter().all(|l| l.queue.len() < l.limit);
        tokio::select! {
            () = pipeline.ctx.stop.wait() => {
                pipeline.tasks.abort_all();
                return Err(pipeline.ctx.stop.error());
            }
            Some(event) = events.recv(), if in_flight > 0 => pipeline.on_event(event).await?,
            Some(joined) = pipeline.tasks.join_next(), if !pipeline.tasks.is_empty() => {
                joined.map_err(|e| Error::Internal(format!("a fetch task stopped: {e}")))?;
            }
            next = work.recv(), if work_open && room => match next {
                Some(piece) => pipeline.accept(piece).await?,
                None => work_open = false,
            },
        }
    }
    pipeline.commit_leftovers().await?;
    Ok(pipeline.landed)
}

impl Pipeline {
    fn new_unit(&mut self, lane: usize, state: UnitState) {
        let id = self.next_unit;
        self.next_unit += 1;
        self.units.insert(id, state);
        self.lanes[lane].queue.push_back(id);
    }

    async fn accept(&mut self, work: Work) -> Result<()> {
        match work {
            Work::TwilioHour {
                account,
                slice,
                calls,
                whole,
                closed,
            } => {
                let units = calls
                    .into_iter()
                    .map(|call| {
                        let label = call.sid.to_string();
                        let unit = Unit::Call {
                            sid: call.sid.clone(),
                            account: account.clone(),
                            edges: edges_for(self.ctx.plan.edges, &call),
                            summary: call.summary,
                            record: call.record,
                        };
                        (unit, label)
                    })
                    .collect();
                let hour = (Owner::twilio(&account), slice, "twilio");
                let kind = (UnitKind::Call, FailedKind::Call, UNIT_COLUMN);
                self.accept_keyed(hour, kind, units, (whole, closed)).await
            }
            Work::ConferenceHour {
                account,
                slice,
                conferences,
                whole,
                closed,
            } => {
                let units = conferences
                    .into_iter()
                    .map(|conference| {
                        let label = conference.sid.to_string();
                        let unit = Unit::Conference {
                            sid: conference.sid,
                            account: account.clone(),
                            summary: Some(conference.summary),
                        };
                        (unit, label)
                    })
                    .collect();
                let hour = (Owner::twilio(&account), slice, "conferences");
                let kind = (
                    UnitKind::Conference,
                    FailedKind::Conference,
                    "conference_sid",
                );
                self.accept_keyed(hour, kind, units, (whole, closed)).await
            }
            Work::TelnyxRange {
                owner,
                from,
                to,
                window,
                listed_at,
            } => {
                let hours = HourSlice::covering(from, to);
                let tables = tables::of_unit(&self.ctx.plan.tables, UnitKind::TelnyxEvents);
                for slice in &hours {
                    let whole = slice.start() >= window.0 && slice.end() <= window.1;
                    let time = (
                        slice.start().max(window.0).timestamp_micros(),
                        slice.end().min(window.1).timestamp_micros(),
                    );
                    let closed = self.ctx.closed_at(*slice, listed_at);
                    let key = HourKey {
                        owner: owner.clone(),
                        slice: *slice,
                        group: "telnyx",
                    };
                    let policy = Policy::Range {
                        whole,
                        closed,
                        time,
                    };
                    self.open(&key, "telnyx", tables.clone(), policy).waiting = 1;
                }
                let state = UnitState::Range {
                    owner,
                    hours,
                    released: 0,
                    from,
                    to,
                };
                self.new_unit(1, state);
                Ok(())
            }
            Work::TelnyxIds { owner, ids, window } => {
                self.ids.owner = Some(owner);
                self.ids.window = window.map(|(f, t)| (f.timestamp_micros(), t.timestamp_micros()));
                self.ids.pending += ids.len();
                for (kind, id) in ids {
                    self.new_unit(1, UnitState::Id { kind, id });
                }
                Ok(())
            }
        }
    }

    /// An hour of keyed units (calls or conferences) and its units: the hour waits for all.
    async fn accept_keyed(
        &mut self,
        (owner, slice, group): (Owner, HourSlice, &'static str),
        (unit_kind, kind, column): (UnitKind, FailedKind, &'static str),
        units: Vec<(Unit, String)>,
        (whole, closed): (bool, bool),
    ) -> Result<()> {
        let key = HourKey {
            owner,
            slice,
            group,
        };
        let tables = tables::of_unit(&self.ctx.plan.tables, unit_kind);
        let policy = Policy::Units {
            whole,
            closed,
            column,
        };
        self.open(&key, group, tables, policy).waiting = units.len();
        for (unit, label) in units {
            let state = UnitState::Keyed {
                hour: key.clone(),
                unit,
                label,
                kind,
                column,
            };
            self.new_unit(0, state);
        }
        self.maybe_commit(&key).await
    }

    /// The open hour `key`, opened with `policy` if it is not.
    fn open(
        &mut self,
        key: &HourKey,
        group: &'static str,
        tables: Vec<Table>,
        policy: Policy,
    ) -> &mut OpenHour {
        self.hours.entry(key.clone()).or_insert_with(|| OpenHour {
            build: HourBuild::new(
                (key.owner.clone(), key.slice),
                group,
                tables,
                Replace::All,
                false,
            ),
            policy,
            waiting: 0,
            ok: HashSet::new(),
            failed: Vec::new(),
        })
    }

    /// Starts queued units while their lanes have room.
    fn start_units(&mut self) -> Result<()> {
        for lane in 0..self.lanes.len() {
            while self.lanes[lane].in_flight < self.lanes[lane].limit {
                let Some(id) = self.lanes[lane].queue.pop_front() else {
                    break;
                };
                let (unit, route) = self.unit_of(id)?;
                let task = unit_task(Arc::clone(&self.ctx), id, unit, route, self.events.clone());
                self.tasks.spawn(task);
                self.lanes[lane].in_flight += 1;
            }
        }
        Ok(())
    }

    /// What the sources fetch for unit `id`, and where its rows go.
    fn unit_of(&self, id: usize) -> Result<(Unit, Route)> {
        let state = self
            .units
            .get(&id)
            .ok_or_else(|| Error::Internal(format!("unit {id} is unknown")))?;
        Ok(match state {
            UnitState::Keyed { hour, unit, .. } => (unit.clone(), Route::Fixed(hour.clone())),
            UnitState::Range {
                owner, from, to, ..
            } => {
                let filter = Filter {
                    occurred_from: Some(*from),
                    until: Some(*to),
                    ..Filter::default()
                };
                let route = Route::ByTime {
                    owner: owner.clone(),
                    window: Some((from.timestamp_micros(), to.timestamp_micros())),
                    progress: true,
                };
                (Unit::Telnyx(filter), route)
            }
            UnitState::Id { kind, id } => {
                let window = self.ids.window;
                let time = |micros: i64| DateTime::<Utc>::from_timestamp_micros(micros);
                let filter = Filter {
                    occurred_from: window.and_then(|(from, _)| time(from)),
                    until: window.and_then(|(_, to)| time(to)),
                    leg: (*kind == FailedKind::Leg).then(|| id.clone()),
                    session: (*kind == FailedKind::Session).then(|| id.clone()),
                };
                let owner = self
                    .ids
                    .owner
                    .clone()
                    .ok_or_else(|| Error::Internal("Telnyx ids without an owner".into()))?;
                let route = Route::ByTime {
                    owner,
                    window,
                    progress: false,
                };
                (Unit::Telnyx(filter), route)
            }
        })
    }

    async fn on_event(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Rows {
                unit,
                hour,
                table,
                batch,
            } => self.add_rows(unit, &hour, table, &batch).await,
            Event::Passed { unit, before } => self.passed(unit, before).await,
            Event::Done { unit, result } => {
                let lane = match self.units.get(&unit) {
                    Some(UnitState::Keyed { .. }) => 0,
                    _ => 1,
                };
                self.lanes[lane].in_flight = self.lanes[lane].in_flight.saturating_sub(1);
                self.done(unit, result).await
            }
        }
    }

    async fn add_rows(
        &mut self,
        unit: usize,
        key: &HourKey,
        table: Table,
        batch: &arrow::record_batch::RecordBatch,
    ) -> Result<()> {
        let label = match self.units.get(&unit) {
            Some(UnitState::Keyed { label, .. }) => Some(label.clone()),
            Some(UnitState::Id { .. }) if !self.hours.contains_key(key) => {
                let tables = vec![table];
                let time = self.ids.window;
                self.open(key, "telnyx", tables, Policy::Ids { time });
                None
            }
            _ => None,
        };
        let ctx = Arc::clone(&self.ctx);
        let Some(hour) = self.hours.get_mut(key) else {
            return Ok(());
        };
        let fallback_day = micros_to_day(key.slice.start().timestamp_micros());
        hour.build
            .add(&ctx.sink, table, label.as_deref(), batch, fallback_day)
            .await
    }

    /// A Telnyx range has no more rows before `before`: its hours before that are complete.
    async fn passed(&mut self, unit: usize, before: HourSlice) -> Result<()> {
        let mut ready = Vec::new();
        if let Some(UnitState::Range {
            owner,
            hours,
            released,
            ..
        }) = self.units.get_mut(&unit)
        {
            while *released < hours.len() && hours[*released] < before {
                ready.push(HourKey {
                    owner: owner.clone(),
                    slice: hours[*released],
                    group: "telnyx",
                });
                *released += 1;
            }
        }
        for key in ready {
            self.release(&key).await?;
        }
        Ok(())
    }

    /// One unit that could add to the hour will not any more.
    async fn release(&mut self, key: &HourKey) -> Result<()> {
        if let Some(hour) = self.hours.get_mut(key) {
            hour.waiting = hour.waiting.saturating_sub(1);
        }
        self.maybe_commit(key).await
    }

    async fn done(
        &mut self,
        unit: usize,
        result: std::result::Result<(), UnitError>,
    ) -> Result<()> {
        let state = self
            .units
            .remove(&unit)
            .ok_or_else(|| Error::Internal(format!("unit {unit} ended twice")))?;
        if let Err(e) = &result
            && e.reach(self.ctx.several_accounts()) == Scope::Run
        {
            return Err(Error::Api(e.reason.clone()));
        }
        let stats = Arc::clone(&self.ctx.stats);
        match (state, result) {
            (
                UnitState::Keyed {
                    hour,
                    label,
                    kind,
                    column,
                    ..
                },
                result,
            ) => {
                if let Some(open) = self.hours.get_mut(&hour) {
                    match result {
                        Ok(()) => {
                            open.ok.insert(label);
                            RunStats::bump(&stats.calls_done, 1);
                        }
                        Err(e) => {
                            tracing::warn!(unit = %label, slice = %hour.slice,
                                error = %e.reason, "unit failed");
                            RunStats::bump(&stats.calls_failed, 1);
                            open.build.drop_rows(column, &label);
                            let failed = FailedUnit::new(kind, &label, Some(hour.slice), e.reason);
                            open.failed.push(failed);
                        }
                    }
                }
                self.release(&hour).await
            }
            (
                UnitState::Range {
                    owner,
                    hours,
                    released,
                    from,
                    to,
                },
                result,
            ) => {
                let rest: Vec<HourKey> = hours[released.min(hours.len())..]
                    .iter()
                    .map(|slice| HourKey {
                        owner: owner.clone(),
                        slice: *slice,
                        group: "telnyx",
                    })
                    .collect();
                match result {
                    Ok(()) => {
                        for key in rest {
                            self.release(&key).await?;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(from = %from, to = %to, error = %e.reason,
                            "Telnyx window failed");
                        for key in rest {
                            self.hours.remove(&key);
                        }
                        self.landed.undone.extend(HourSlice::covering(from, to));
                        self.landed.failed.push(FailedUnit::new(
                            FailedKind::TelnyxWindow,
                            &format!("telnyx {from}..{to}"),
                            None,
                            e.reason,
                        ));
                    }
                }
                Ok(())
            }
            (UnitState::Id { kind, id }, result) => {
                match result {
                    Ok(()) => {
                        RunStats::bump(&stats.calls_done, 1);
                        let ok = match kind {
                            FailedKind::Session => &mut self.ids.sessions_ok,
                            _ => &mut self.ids.legs_ok,
                        };
                        ok.insert(id.to_string());
                    }
                    Err(e) => {
                        RunStats::bump(&stats.calls_failed, 1);
                        tracing::warn!(id = %id, kind = ?kind, error = %e.reason,
                            "Telnyx leg or session failed");
                        let column = id_column(kind);
                        for hour in self.hours.values_mut() {
                            if matches!(hour.policy, Policy::Ids { .. }) {
                                hour.build.drop_rows(column, id.as_str());
                            }
                        }
                        let failed = FailedUnit::new(kind, id.as_str(), None, e.reason);
                        self.landed.failed.push(failed);
                    }
                }
                self.ids.pending = self.ids.pending.saturating_sub(1);
                if self.ids.pending == 0 {
                    let keys: Vec<HourKey> = self
                        .hours
                        .iter()
                        .filter(|(_, h)| matches!(h.policy, Policy::Ids { .. }))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in keys {
                        self.maybe_commit(&key).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Commits the hour if nothing can add to it any more.
    async fn maybe_commit(&mut self, key: &HourKey) -> Result<()> {
        let ready = self.hours.get(key).is_some_and(|hour| {
            hour.waiting == 0
                && !(matches!(hour.policy, Policy::Ids { .. }) && self.ids.pending > 0)
        });
        if !ready {
            return Ok(());
        }
        match self.hours.remove(key) {
            Some(hour) => self.commit(hour).await,
            None => Ok(()),
        }
    }

    /// Commits hours left open (none are, when every unit ended: this is a safety net).
    async fn commit_leftovers(&mut self) -> Result<()> {
        let keys: Vec<HourKey> = self.hours.keys().cloned().collect();
        for key in keys {
            if let Some(hour) = self.hours.remove(&key) {
                self.commit(hour).await?;
            }
        }
        Ok(())
    }

    async fn commit(&mut self, mut hour: OpenHour) -> Result<()> {
        let slice = hour.build.slice;
        let clean = hour.failed.is_empty();
        self.landed.failed.append(&mut hour.failed.clone());
        let (replace, done) = match hour.policy {
            Policy::Units {
                whole,
                closed,
                column,
            } => {
                if !clean && hour.ok.is_empty() {
                    self.landed.undone.insert(slice);
                    return Ok(());
                }
                let replace = if whole && clean {
                    Replace::All
                } else {
                    Replace::Matching {
                        keys: vec![(column, hour.ok.clone())],
                        time: None,
                    }
                };
                (replace, whole && clean && closed)
            }
            Policy::Range {
                whole,
                closed,
                time,
            } => {
                let replace = if whole {
                    Replace::All
                } else {
                    Replace::Matching {
                        keys: Vec::new(),
                        time: Some(time),
                    }
                };
                (replace, whole && closed)
            }
            Policy::Ids { time } => {
                let keys = vec![
                    ("call_leg_id", self.ids.legs_ok.clone()),
                    ("call_session_id", self.ids.sessions_ok.clone()),
                ];
                (Replace::Matching { keys, time }, false)
            }
        };
        if !done {
            self.landed.undone.insert(slice);
        }
        hour.build.replace = replace;
        hour.build.complete = done;
        let (owner, tables, group) = (
            hour.build.owner.clone(),
            hour.build.tables.clone(),
            hour.build.group,
        );
        let committed = commit_hour(&self.ctx.sink, hour.build).await?;
        if done {
            self.ctx.mark_done(&owner, &tables, slice).await?;
        }
        if committed.rows > 0 || !clean {
            tracing::info!(slice = %slice, group, calls = hour.ok.len(),
                failed = hour.failed.len(), rows = committed.rows, "hour committed");
        }
        self.landed
            .committed
            .push(if group == "twilio" || group == "conferences" {
                slice.to_string()
            } else {
                format!("{slice} ({group})")
            });
        self.landed.files.extend(committed.files);
        self.landed.versions.extend(committed.versions);
        Ok(())
    }
}

/// The column of a Telnyx id's kind.
fn id_column(kind: FailedKind) -> &'static str {
    match kind {
        FailedKind::Session => "call_session_id",
        _ => "call_leg_id",
    }
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

/// One unit's fetch: its rows, then its end, always (a panic counts as a failed unit).
async fn unit_task(
    ctx: Arc<RunContext>,
    id: usize,
    unit: Unit,
    route: Route,
    events: mpsc::Sender<Event>,
) {
    let fetched = std::panic::AssertUnwindSafe(fetch::fetch(&ctx, id, &unit, &route, &events))
        .catch_unwind()
        .await;
    let result = fetched.unwrap_or_else(|_| {
        Err(UnitError {
            reason: "internal error: the unit's fetch panicked".into(),
            scope: Scope::Unit,
        })
    });
    let _ = events.send(Event::Done { unit: id, result }).await;
}
