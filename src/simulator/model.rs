//! The simulator's own model of calls: which Twilio accounts, calls, conferences and Telnyx
//! legs exist, when, and of what type, plus lookups, time-sorted indexes and who may see what.
//! Records are not stored: the generator modules (`insights`, `rest`, `summary`, `conference`,
//! `telnyx`) rebuild them on demand from (seed, index, record index). [`Model`]'s public
//! methods serve tests the exact records the API serves.
//!
//! Calls are laid out account by account: the parent's generated calls, its `extra_calls`,
//! the participants of its conferences (conference by conference, in join order); then, for
//! each subaccount in order, its generated calls and the participants of its conferences.

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use serde_json::Value;

use super::auth::Principal;
use super::config::{CallSpec, CallType, SimConfig};
use super::rng::{Rng, hash, tag};
use super::{conference, insights, rest, summary, telnyx};

/// What every generator needs besides the call: seed, clock, drift, own address. (Each record
/// carries the account of its own call or conference.)
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub seed: u64,
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
    /// The account the call belongs to: the configured account or one of its subaccounts.
    pub account_sid: String,
    /// When the call started (for a conference participant, its `join_time`).
    pub start_time: DateTime<Utc>,
    /// When it ended (`start_time` + duration; for a participant, its `leave_time`).
    pub end_time: DateTime<Utc>,
    /// Decides the edges.
    pub call_type: CallType,
    /// The conference (`CF…`) this call is a participant of; `None` for other calls.
    pub conference_sid: Option<String>,
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

/// One Twilio account of the model: the configured (parent) account or one of its
/// subaccounts. `Debug` prints the `auth_token` as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SimAccount {
    /// `AC` + 32 hex: the configured `account_sid` for the parent, derived from
    /// (seed, subaccount index) for a subaccount.
    pub sid: String,
    /// `friendly_name` in `Accounts.json`.
    pub friendly_name: String,
    /// `active`, `suspended` or `closed` (the parent is always `active`).
    pub status: String,
    /// Whether the parent's credentials are refused (403) on this account's records.
    pub refuse_parent: bool,
    /// The parent's SID (for the parent itself too, as Twilio does).
    pub owner_account_sid: String,
    /// When the account was created (before the window).
    pub date_created: DateTime<Utc>,
    /// When it was last updated.
    pub date_updated: DateTime<Utc>,
    auth_token: String,
    /// Seed of the account's generated calls and conferences.
    pub(crate) seed: u64,
}

impl SimAccount {
    /// Whether this is the configured (parent) account.
    pub fn is_parent(&self) -> bool {
        self.sid == self.owner_account_sid
    }

    /// The `auth_token` that `Accounts.json` shows for this account: the configured
    /// `auth_token` for the parent, a made-up 32-hex token for a subaccount (which, with the
    /// subaccount's SID, is also accepted as its own Basic credential). A secret: voxlake must
    /// never show it.
    pub fn auth_token(&self) -> &str {
        &self.auth_token
    }
}

impl std::fmt::Debug for SimAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimAccount")
            .field("sid", &self.sid)
            .field("friendly_name", &self.friendly_name)
            .field("status", &self.status)
            .field("refuse_parent", &self.refuse_parent)
            .field("owner_account_sid", &self.owner_account_sid)
            .field("date_created", &self.date_created)
            .field("date_updated", &self.date_updated)
            .field("auth_token", &"***")
            .finish()
    }
}

/// One conference of the model (Conference Insights). Its participants' calls are calls of
/// the model, of the conference's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConference {
    /// `CF` + 32 lowercase hex, from (account seed, conference index).
    pub sid: String,
    /// The account the conference belongs to.
    pub account_sid: String,
    /// Its `friendly_name`.
    pub friendly_name: String,
    /// `create_time`, in the window `[from, to)`; the `CreatedAfter`/`CreatedBefore` filters
    /// apply to it.
    pub create_time: DateTime<Utc>,
    /// When a second participant joined while a moderator (`start_conference_on_enter`) was
    /// in; `None` when no participant could start it.
    pub start_time: Option<DateTime<Utc>>,
    /// When the last participant left, or the moderator with `end_conference_on_exit` did.
    pub end_time: DateTime<Utc>,
    /// 2 to 5 participants, in join order.
    pub participants: Vec<SimParticipant>,
    /// Index of the participant whose leaving ended the conference (`ended_by`).
    pub(crate) ended_by: usize,
    /// Whether the conference ended because `participants[ended_by]` had
    /// `end_conference_on_exit`.
    pub(crate) ended_on_exit: bool,
    /// Seed and index of the conference within its account (body values derive from them).
    pub(crate) seed: u64,
    pub(crate) index: usize,
}

/// One participant of a [`SimConference`]: a call of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimParticipant {
    /// `CP` + 32 lowercase hex, from (account seed, conference index, participant index).
    pub sid: String,
    /// The participant's call (a [`SimCall`] with `start_time` = `join_time`).
    pub call_sid: String,
    /// `Carrier`, `Sip` or `Client` (`call_type` `carrier`, `sip`, `client`).
    pub call_type: CallType,
    /// When the participant joined (its call's `start_time`).
    pub join_time: DateTime<Utc>,
    /// When it left (its call's `end_time`).
    pub leave_time: DateTime<Utc>,
    /// `properties.start_conference_on_enter`.
    pub(crate) start_on_enter: bool,
    /// `properties.end_conference_on_exit`.
    pub(crate) end_on_exit: bool,
    /// Index of the participant's call in the model.
    pub(crate) call_index: usize,
}

/// Why a principal may not see an account's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// A subaccount with `refuse_parent`, asked with the parent's credentials: 403.
    Forbidden,
    /// An account the principal has nothing to do with.
    Other,
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

/// The truth behind the simulator: accounts, calls, conferences, legs, and every record as the
/// API serves it.
#[derive(Debug)]
pub struct Model {
    ctx: Ctx,
    accounts: Vec<SimAccount>,
    account_by_sid: HashMap<String, usize>,
    calls: Vec<SimCall>,
    by_sid: HashMap<String, usize>,
    /// Per account, its call indexes newest first.
    newest_first: Vec<Vec<usize>>,
    conferences: Vec<SimConference>,
    conference_by_sid: HashMap<String, usize>,
    /// Per account, its conference indexes newest first (by `create_time`).
    conferences_newest_first: Vec<Vec<usize>>,
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
            drift: config.drift,
            odd_numbers: config.odd_numbers,
            now: config.now,
            base_url,
        };
        let accounts = build_accounts(config);
        let account_by_sid: HashMap<String, usize> = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.sid.clone(), i))
            .collect();
        let (calls, conferences) = build_calls(config, &accounts);
        let by_sid = calls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.sid.clone(), i))
            .collect();
        let newest_first = newest_first(&calls, &account_by_sid, accounts.len());
        let conference_by_sid = conferences
            .iter()
            .enumerate()
            .map(|(i, c)| (c.sid.clone(), i))
            .collect();
        let conferences_newest_first =
            conferences_newest_first(&conferences, &account_by_sid, accounts.len());
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
            accounts,
            account_by_sid,
            calls,
            by_sid,
            newest_first,
            conferences,
            conference_by_sid,
            conferences_newest_first,
            legs,
            leg_info,
            leg_by_id,
            legs_by_session,
            telnyx_order,
        }
    }

    /// Every Twilio call of every account: the parent's generated calls, its `extra_calls` in
    /// order and its conferences' participants; then each subaccount's generated calls and
    /// conference participants. [`SimCall::account_sid`] tells whose a call is, and
    /// [`SimCall::conference_sid`] whether it is a conference participant.
    pub fn calls(&self) -> &[SimCall] {
        &self.calls
    }

    /// The calls that are conference participants (of every account), in [`Model::calls`]
    /// order.
    pub fn participant_calls(&self) -> impl Iterator<Item = &SimCall> {
        self.calls.iter().filter(|c| c.conference_sid.is_some())
    }

    /// The parent account first, then the subaccounts in `SimConfig::subaccounts` order.
    pub fn accounts(&self) -> &[SimAccount] {
        &self.accounts
    }

    /// An account as `Accounts.json` (and `Accounts/{Sid}.json`) serves it, `None` if unknown.
    pub fn account_resource(&self, account_sid: &str) -> Option<Value> {
        let account = self.accounts.get(self.account_index(account_sid)?)?;
        serde_json::to_value(rest::account_resource(account)).ok()
    }

    /// Every conference of every account: the parent's in creation order (by index), then each
    /// subaccount's.
    pub fn conferences(&self) -> &[SimConference] {
        &self.conferences
    }

    /// The conference summary (`/v1/Conferences/{Sid}`), `None` for an unknown SID.
    pub fn conference_summary(&self, conference_sid: &str) -> Option<Value> {
        let conference = self.find_conference(conference_sid)?;
        serde_json::to_value(conference::summary(&self.ctx, conference)).ok()
    }

    /// The participants of a conference, exactly as `/v1/Conferences/{Sid}/Participants`
    /// serves them over all pages (join order); empty for an unknown SID.
    pub fn conference_participants(&self, conference_sid: &str) -> Vec<Value> {
        let Some(conference) = self.find_conference(conference_sid) else {
            return Vec::new();
        };
        to_values(&conference::participants(&self.ctx, conference))
    }

    /// One participant (`/v1/Conferences/{Sid}/Participants/{ParticipantSid}`), `None` if
    /// unknown.
    pub fn conference_participant(
        &self,
        conference_sid: &str,
        participant_sid: &str,
    ) -> Option<Value> {
        let conference = self.find_conference(conference_sid)?;
        let record = conference::participant(&self.ctx, conference, participant_sid)?;
        serde_json::to_value(record).ok()
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

    /// The conference of a SID.
    pub(crate) fn find_conference(&self, conference_sid: &str) -> Option<&SimConference> {
        let idx = *self.conference_by_sid.get(conference_sid)?;
        self.conferences.get(idx)
    }

    /// The conference at `idx`.
    pub(crate) fn conference_at(&self, idx: usize) -> Option<&SimConference> {
        self.conferences.get(idx)
    }

    /// The index of an account SID among [`Model::accounts`].
    pub(crate) fn account_index(&self, account_sid: &str) -> Option<usize> {
        self.account_by_sid.get(account_sid).copied()
    }

    /// The account at `idx`.
    pub(crate) fn account_at(&self, idx: usize) -> Option<&SimAccount> {
        self.accounts.get(idx)
    }

    /// Whether `principal` may see the records of account `account`: its own, or (for the
    /// parent) those of a subaccount that does not refuse the parent.
    pub(crate) fn access(&self, principal: Principal, account: usize) -> Result<(), Denied> {
        if principal.0 == account {
            return Ok(());
        }
        match self.accounts.get(account) {
            Some(sub) if principal.0 == 0 && account > 0 => {
                if sub.refuse_parent {
                    Err(Denied::Forbidden)
                } else {
                    Ok(())
                }
            }
            _ => Err(Denied::Other),
        }
    }

    /// [`Model::access`] to the account owning `account_sid` (`Other` if unknown).
    pub(crate) fn access_sid(&self, principal: Principal, account_sid: &str) -> Result<(), Denied> {
        let account = self.account_index(account_sid).ok_or(Denied::Other)?;
        self.access(principal, account)
    }

    /// Conference indexes of account `account` with `lo <= create_time < hi`, newest first.
    pub(crate) fn conferences_created_in(
        &self,
        account: usize,
        lo: Option<DateTime<Utc>>,
        hi: Option<DateTime<Utc>>,
    ) -> Vec<usize> {
        self.conferences_newest_first
            .get(account)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|&i| {
                self.conferences.get(i).is_some_and(|c| {
                    lo.is_none_or(|lo| c.create_time >= lo)
                        && hi.is_none_or(|hi| c.create_time < hi)
                })
            })
            .collect()
    }

    /// The call at `idx`.
    pub(crate) fn call_at(&self, idx: usize) -> Option<&SimCall> {
        self.calls.get(idx)
    }

    /// Indexes of the calls of account `account` with `lo <= start_time < hi`, newest first.
    pub(crate) fn calls_started_in(
        &self,
        account: usize,
        lo: Option<DateTime<Utc>>,
        hi: Option<DateTime<Utc>>,
    ) -> &[usize] {
        let Some(order) = self.newest_first.get(account) else {
            return &[];
        };
        let start = |i: &usize| self.calls.get(*i).map(|c| c.start_time);
        let a = match hi {
            Some(hi) => order.partition_point(|i| start(i).is_some_and(|t| t >= hi)),
            None => 0,
        };
        let b = match lo {
            Some(lo) => order.partition_point(|i| start(i).is_some_and(|t| t >= lo)),
            None => order.len(),
        };
        order.get(a..b.max(a)).unwrap_or(&[])
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

/// The parent account (the configured one), then the subaccounts.
fn build_accounts(config: &SimConfig) -> Vec<SimAccount> {
    let mut r = Rng::new(&[config.seed, tag::ACCOUNT, u64::MAX]);
    let parent_created = config.from
        - Duration::days(r.range(400, 1000) as i64)
        - Duration::seconds(r.below(86_400) as i64);
    let parent = SimAccount {
        sid: config.account_sid.clone(),
        friendly_name: "voxlake simulator".to_string(),
        status: "active".to_string(),
        refuse_parent: false,
        owner_account_sid: config.account_sid.clone(),
        date_created: parent_created,
        date_updated: parent_created + Duration::days(r.range(1, 300) as i64),
        auth_token: config.auth_token.clone(),
        seed: config.seed,
    };
    let subs = config.subaccounts.iter().enumerate().map(|(k, spec)| {
        let k = k as u64;
        let mut r = Rng::new(&[config.seed, tag::ACCOUNT, k]);
        let created = parent_created
            + Duration::days(r.range(1, 360) as i64)
            + Duration::seconds(r.below(86_400) as i64);
        SimAccount {
            sid: format!(
                "AC{:016x}{:016x}",
                hash(&[config.seed, tag::ACCOUNT, k, 0]),
                hash(&[config.seed, tag::ACCOUNT, k, 1])
            ),
            friendly_name: format!("voxlake subaccount {}", k + 1),
            status: spec.status.clone(),
            refuse_parent: spec.refuse_parent,
            owner_account_sid: config.account_sid.clone(),
            date_created: created,
            date_updated: created + Duration::days(r.range(0, 30) as i64),
            auth_token: format!(
                "{:016x}{:016x}",
                hash(&[config.seed, tag::ACCOUNT, k, 3]),
                hash(&[config.seed, tag::ACCOUNT, k, 4])
            ),
            seed: hash(&[config.seed, tag::ACCOUNT, k, 2]),
        }
    });
    std::iter::once(parent).chain(subs).collect()
}

/// Every account's calls (generated, extra, conference participants) and conferences.
fn build_calls(config: &SimConfig, accounts: &[SimAccount]) -> (Vec<SimCall>, Vec<SimConference>) {
    let mut calls = Vec::with_capacity(config.calls + config.extra_calls.len());
    let mut conferences = Vec::new();
    for (a, account) in accounts.iter().enumerate() {
        let (generated, extra, n_conferences) = match a.checked_sub(1) {
            None => (config.calls, &config.extra_calls[..], config.conferences),
            Some(k) => match config.subaccounts.get(k) {
                Some(spec) => (spec.calls, &[][..], spec.conferences),
                None => continue,
            },
        };
        let specs = (0..generated)
            .map(|i| generated_spec(account.seed, config.from, config.to, i))
            .chain(extra.iter().cloned());
        for (i, spec) in specs.enumerate() {
            calls.push(SimCall {
                sid: call_sid(account.seed, i),
                account_sid: account.sid.clone(),
                start_time: spec.start_time,
                end_time: spec.start_time + Duration::seconds(i64::from(spec.duration_secs)),
                call_type: spec.call_type,
                conference_sid: None,
            });
        }
        for j in 0..n_conferences {
            let conference = conference::plan(account, j, config.from, config.to, calls.len());
            calls.extend(conference::participant_calls(&conference));
            conferences.push(conference);
        }
    }
    (calls, conferences)
}

/// Generated call `i` of the account with this seed: the first five take the five call types
/// in turn; call 1 starts two minutes before the last midnight of the window and runs past it.
fn generated_spec(seed: u64, from: DateTime<Utc>, to: DateTime<Utc>, i: usize) -> CallSpec {
    let mut r = Rng::new(&[seed, tag::CALL, i as u64]);
    let picked = r.pick(&CallType::ALL);
    let call_type = CallType::ALL.get(i).copied().unwrap_or(picked);
    let mut duration_secs = r.range(30, 1500) as u32;
    let span = (to - from).num_seconds().max(1) as u64;
    let mut start_time = from + Duration::seconds(r.below(span) as i64);
    if i == 1
        && let Some(midnight) = last_midnight(from, to)
    {
        start_time = (midnight - Duration::seconds(120)).max(from);
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

/// Per account, its call indexes sorted by start time, newest first (ties by SID).
fn newest_first(
    calls: &[SimCall],
    accounts: &HashMap<String, usize>,
    n_accounts: usize,
) -> Vec<Vec<usize>> {
    let mut orders: Vec<Vec<usize>> = vec![Vec::new(); n_accounts];
    for (i, call) in calls.iter().enumerate() {
        if let Some(order) = accounts
            .get(&call.account_sid)
            .and_then(|&a| orders.get_mut(a))
        {
            order.push(i);
        }
    }
    for order in &mut orders {
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&calls[a], &calls[b]);
            cb.start_time
                .cmp(&ca.start_time)
                .then_with(|| ca.sid.cmp(&cb.sid))
        });
    }
    orders
}

/// Per account, its conference indexes by `create_time`, newest first (ties by SID).
fn conferences_newest_first(
    conferences: &[SimConference],
    accounts: &HashMap<String, usize>,
    n_accounts: usize,
) -> Vec<Vec<usize>> {
    let mut orders: Vec<Vec<usize>> = vec![Vec::new(); n_accounts];
    for (i, conference) in conferences.iter().enumerate() {
        if let Some(order) = accounts
            .get(&conference.account_sid)
            .and_then(|&a| orders.get_mut(a))
        {
            order.push(i);
        }
    }
    for order in &mut orders {
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&conferences[a], &conferences[b]);
            cb.create_time
                .cmp(&ca.create_time)
                .then_with(|| ca.sid.cmp(&cb.sid))
        });
    }
    orders
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
        let all = m.calls_started_in(0, None, None);
        assert_eq!(all.len(), 20);
        let noon = SimConfig::default().from + Duration::hours(12);
        let before = m.calls_started_in(0, None, Some(noon)).len();
        let after = m.calls_started_in(0, Some(noon), None).len();
        assert_eq!(before + after, 20);
    }
}
