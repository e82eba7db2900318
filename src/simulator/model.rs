//! The simulator's own model of calls: which Twilio calls and Telnyx legs exist, when, and
//! of what type, plus lookups and time-sorted indexes. Records are not stored: the generator
//! modules (`insights`, `rest`, `summary`, `telnyx`) rebuild them on demand from
//! (seed, index, record index). [`Model`]'s public methods serve tests the exact records the
//! API serves.

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use serde_json::Value;

use super::config::{CallSpec, CallType, SimConfig};
use super::rng::{Rng, hash, tag};
use super::{insights, rest, summary, telnyx};

/// What every generator needs besides the call: seed, account, clock, drift, own address.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub seed: u64,
    pub account_sid: String,
    pub drift: bool,
    pub odd_numbers: bool,
    pub now: Option<DateTime<Utc>>,
    pub base_url: String,
}

impl Ctx {
    /// The simulator clock: the configured instant, else the real clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }
}

/// One Twilio call of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCall {
    /// `CA` + 32 lowercase hex.
    pub sid: String,
    /// The configured account.
    pub account_sid: String,
    /// When the call started.
    pub start_time: DateTime<Utc>,
    /// When it ended (`start_time` + duration).
    pub end_time: DateTime<Utc>,
    /// Decides the edges.
    pub call_type: CallType,
}

impl SimCall {
    /// The call type's edges, default edge first.
    pub fn edges(&self) -> Vec<&'static str> {
        self.call_type.edges().to_vec()
    }

    /// The edge Insights answers with when no `Edge` is given.
    pub fn default_edge(&self) -> &'static str {
        self.call_type
            .edges()
            .first()
            .copied()
            .unwrap_or("unknown_edge")
    }

    /// The call's length in whole seconds.
    pub(crate) fn duration_secs(&self) -> u64 {
        u64::try_from((self.end_time - self.start_time).num_seconds()).unwrap_or(0)
    }

    /// Whether `edge` is one of the call's edges.
    pub(crate) fn has_edge(&self, edge: &str) -> bool {
        self.call_type.edges().contains(&edge)
    }
}

/// One Telnyx call leg of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLeg {
    /// UUID v1-looking leg id (`filter[leg_id]`).
    pub call_leg_id: String,
    /// UUID v1-looking session id (`filter[application_session_id]`); some legs share one.
    pub call_session_id: String,
    /// When the leg started (its first event).
    pub start_time: DateTime<Utc>,
}

/// What a leg's events need beyond [`SimLeg`].
#[derive(Debug, Clone)]
pub(crate) struct LegInfo {
    pub outbound: bool,
    /// Event timestamps in microseconds since the epoch, strictly increasing.
    pub event_micros: Vec<i64>,
}

/// One Telnyx event in the global time order: (timestamp µs, leg index, event index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EventRef {
    pub micros: i64,
    pub leg: u32,
    pub event: u32,
}

/// The truth behind the simulator: calls, legs, and every record as the API serves it.
#[derive(Debug)]
pub struct Model {
    ctx: Ctx,
    calls: Vec<SimCall>,
    by_sid: HashMap<String, usize>,
    newest_first: Vec<usize>,
    legs: Vec<SimLeg>,
    leg_info: Vec<LegInfo>,
    leg_by_id: HashMap<String, usize>,
    legs_by_session: HashMap<String, Vec<usize>>,
    telnyx_order: Vec<EventRef>,
}

impl Model {
    /// Builds the model of `config`; `base_url` is where the simulator answers.
    pub(crate) fn build(config: &SimConfig, base_url: String) -> Model {
        let ctx = Ctx {
            seed: config.seed,
            account_sid: config.account_sid.clone(),
            drift: config.drift,
            odd_numbers: config.odd_numbers,
            now: config.now,
            base_url,
        };
        let calls = build_calls(config);
        let by_sid = calls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.sid.clone(), i))
            .collect();
        let newest_first = newest_first(&calls);
        let (legs, leg_info) = telnyx::build_legs(config);
        let leg_by_id = legs
            .iter()
            .enumerate()
            .map(|(i, l)| (l.call_leg_id.clone(), i))
            .collect();
        let mut legs_by_session: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, leg) in legs.iter().enumerate() {
            legs_by_session
                .entry(leg.call_session_id.clone())
                .or_default()
                .push(i);
        }
        let telnyx_order = telnyx::order(&leg_info);
        Model {
            ctx,
            calls,
            by_sid,
            newest_first,
            legs,
            leg_info,
            leg_by_id,
            legs_by_session,
            telnyx_order,
        }
    }

    /// Twilio calls, generated ones first, then `extra_calls` in order.
    pub fn calls(&self) -> &[SimCall] {
        &self.calls
    }

    /// Insights events of a call on `edge` (`None` = the call type's default edge), in API order.
    pub fn insights_events(&self, call_sid: &str, edge: Option<&str>) -> Vec<Value> {
        let Some((idx, call)) = self.find_call(call_sid) else {
            return Vec::new();
        };
        let edge = edge.unwrap_or(call.default_edge());
        to_values(&insights::events(&self.ctx, idx, call, edge))
    }

    /// Insights metrics of a call on `edge` (`None` = the default edge), all directions.
    pub fn insights_metrics(&self, call_sid: &str, edge: Option<&str>) -> Vec<Value> {
        let Some((idx, call)) = self.find_call(call_sid) else {
            return Vec::new();
        };
        let wanted = edge.unwrap_or(call.default_edge());
        let Some(edge) = call.edges().into_iter().find(|e| *e == wanted) else {
            return Vec::new();
        };
        let source = insights::MetricSource::new(&self.ctx, idx, call, edge);
        let n = insights::metric_count(call, edge, None);
        let records: Vec<_> = (0..n).map(|i| source.record(None, i)).collect();
        to_values(&records)
    }

    /// REST call events (`Calls/{Sid}/Events.json`) of a call, in API order.
    pub fn call_events(&self, call_sid: &str) -> Vec<Value> {
        let Some((idx, call)) = self.find_call(call_sid) else {
            return Vec::new();
        };
        to_values(&rest::call_events(&self.ctx, idx, call))
    }

    /// The call resource (`Calls/{Sid}.json`), `None` for an unknown SID.
    pub fn call_resource(&self, call_sid: &str) -> Option<Value> {
        let (idx, call) = self.find_call(call_sid)?;
        serde_json::to_value(rest::call_resource(&self.ctx, idx, call)).ok()
    }

    /// The Insights call summary as the simulator clock sees it now, `None` if unknown.
    pub fn summary(&self, call_sid: &str) -> Option<Value> {
        let (idx, call) = self.find_call(call_sid)?;
        serde_json::to_value(summary::summary(&self.ctx, idx, call)).ok()
    }

    /// Telnyx legs in generation order.
    pub fn telnyx_legs(&self) -> &[SimLeg] {
        &self.legs
    }

    /// Every Telnyx event, ordered by `event_timestamp` (ignores the 24 h rule).
    pub fn telnyx_events(&self) -> Vec<Value> {
        let records: Vec<_> = self
            .telnyx_order
            .iter()
            .filter_map(|r| self.telnyx_event(*r))
            .collect();
        to_values(&records)
    }

    /// The generator context.
    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The index and call of a SID.
    pub(crate) fn find_call(&self, call_sid: &str) -> Option<(usize, &SimCall)> {
        let idx = *self.by_sid.get(call_sid)?;
        self.calls.get(idx).map(|c| (idx, c))
    }

    /// The call at `idx`.
    pub(crate) fn call_at(&self, idx: usize) -> Option<&SimCall> {
        self.calls.get(idx)
    }

    /// Indexes of calls with `lo <= start_time < hi`, newest first.
    pub(crate) fn calls_started_in(
        &self,
        lo: Option<DateTime<Utc>>,
        hi: Option<DateTime<Utc>>,
    ) -> &[usize] {
        let start = |i: &usize| self.calls.get(*i).map(|c| c.start_time);
        let a = match hi {
            Some(hi) => self
                .newest_first
                .partition_point(|i| start(i).is_some_and(|t| t >= hi)),
            None => 0,
        };
        let b = match lo {
            Some(lo) => self
                .newest_first
                .partition_point(|i| start(i).is_some_and(|t| t >= lo)),
            None => self.newest_first.len(),
        };
        self.newest_first.get(a..b.max(a)).unwrap_or(&[])
    }

    /// Telnyx events in time order with `lo <= t <= hi` (µs), all legs.
    pub(crate) fn telnyx_window(&self, lo: i64, hi: i64) -> &[EventRef] {
        let a = self.telnyx_order.partition_point(|r| r.micros < lo);
        let b = self.telnyx_order.partition_point(|r| r.micros <= hi);
        self.telnyx_order.get(a..b.max(a)).unwrap_or(&[])
    }

    /// Telnyx events of the given legs, in time order.
    pub(crate) fn telnyx_of_legs(&self, legs: &[usize]) -> Vec<EventRef> {
        let mut refs: Vec<EventRef> = legs
            .iter()
            .filter_map(|&l| self.leg_info.get(l).map(|info| (l, info)))
            .flat_map(|(l, info)| {
                info.event_micros
                    .iter()
                    .enumerate()
                    .map(move |(k, &micros)| EventRef {
                        micros,
                        leg: l as u32,
                        event: k as u32,
                    })
            })
            .collect();
        refs.sort_unstable();
        refs
    }

    /// The leg index of a leg id.
    pub(crate) fn leg_index(&self, leg_id: &str) -> Option<usize> {
        self.leg_by_id.get(leg_id).copied()
    }

    /// The leg indexes of a session id.
    pub(crate) fn session_legs(&self, session_id: &str) -> &[usize] {
        self.legs_by_session
            .get(session_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The Telnyx event a reference points at.
    pub(crate) fn telnyx_event(&self, r: EventRef) -> Option<telnyx::TelnyxEvent<'_>> {
        let leg = self.legs.get(r.leg as usize)?;
        let info = self.leg_info.get(r.leg as usize)?;
        Some(telnyx::event(
            &self.ctx,
            r.leg as usize,
            leg,
            info,
            r.event as usize,
        ))
    }
}

/// Serializes generated records into JSON values (for tests comparing with bodies).
fn to_values<T: Serialize>(records: &[T]) -> Vec<Value> {
    records
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect()
}

/// Generated calls, then the extra ones.
fn build_calls(config: &SimConfig) -> Vec<SimCall> {
    let generated = (0..config.calls).map(|i| generated_spec(config, i));
    let specs: Vec<CallSpec> = generated
        .chain(config.extra_calls.iter().cloned())
        .collect();
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| SimCall {
            sid: call_sid(config.seed, i),
            account_sid: config.account_sid.clone(),
            start_time: spec.start_time,
            end_time: spec.start_time + Duration::seconds(i64::from(spec.duration_secs)),
            call_type: spec.call_type,
        })
        .collect()
}

/// Generated call `i`: the first five take the five call types in turn; call 1 starts two
/// minutes before the last midnight of the window and runs past it.
fn generated_spec(config: &SimConfig, i: usize) -> CallSpec {
    let mut r = Rng::new(&[config.seed, tag::CALL, i as u64]);
    let picked = r.pick(&CallType::ALL);
    let call_type = CallType::ALL.get(i).copied().unwrap_or(picked);
    let mut duration_secs = r.range(30, 1500) as u32;
    let span = (config.to - config.from).num_seconds().max(1) as u64;
    let mut start_time = config.from + Duration::seconds(r.below(span) as i64);
    if i == 1
        && let Some(midnight) = last_midnight(config.from, config.to)
    {
        start_time = (midnight - Duration::seconds(120)).max(config.from);
        duration_secs = duration_secs.max(600);
    }
    CallSpec {
        start_time,
        duration_secs,
        call_type,
    }
}

/// The latest midnight `m` with `from < m <= to`.
fn last_midnight(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let m = to.duration_trunc(Duration::days(1)).ok()?;
    (m > from).then_some(m)
}

/// `CA` + 32 lowercase hex, from (seed, index).
fn call_sid(seed: u64, i: usize) -> String {
    let a = hash(&[seed, tag::SID, i as u64, 0]);
    let b = hash(&[seed, tag::SID, i as u64, 1]);
    format!("CA{a:016x}{b:016x}")
}

/// Call indexes sorted by start time, newest first (ties by SID).
fn newest_first(calls: &[SimCall]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by(|&a, &b| {
        let (ca, cb) = (&calls[a], &calls[b]);
        cb.start_time
            .cmp(&ca.start_time)
            .then_with(|| ca.sid.cmp(&cb.sid))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(config: &SimConfig) -> Model {
        Model::build(config, "http://127.0.0.1:1".into())
    }

    #[test]
    fn calls_are_deterministic_and_cover_all_types() {
        let config = SimConfig::default();
        let (a, b) = (model(&config), model(&config));
        assert_eq!(a.calls(), b.calls());
        for t in CallType::ALL {
            assert!(a.calls().iter().any(|c| c.call_type == t));
        }
        for c in a.calls() {
            assert_eq!(c.sid.len(), 34);
            assert!(c.start_time >= config.from && c.start_time < config.to);
            let d = c.duration_secs();
            assert!((30..=1500).contains(&d), "{d}");
        }
    }

    #[test]
    fn one_call_crosses_midnight() {
        let m = model(&SimConfig::default());
        let midnight = SimConfig::default().to;
        assert!(
            m.calls()
                .iter()
                .any(|c| c.start_time < midnight && c.end_time > midnight)
        );
    }

    #[test]
    fn date_ranges_use_the_sorted_index() {
        let m = model(&SimConfig::default());
        let all = m.calls_started_in(None, None);
        assert_eq!(all.len(), 20);
        let noon = SimConfig::default().from + Duration::hours(12);
        let before = m.calls_started_in(None, Some(noon)).len();
        let after = m.calls_started_in(Some(noon), None).len();
        assert_eq!(before + after, 20);
    }
}
