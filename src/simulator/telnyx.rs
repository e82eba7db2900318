//! Telnyx call legs and their call events (`/v2/call_events`, seed 004). Legs start in
//! `[from, to)`; about a third join the previous leg's session (a bridged second leg). Each
//! leg has 3 to 10 events with microsecond timestamps, webhooks and commands in call order.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat};
use serde::Serialize;

use super::config::SimConfig;
use super::model::{Ctx, EventRef, LegInfo, SimLeg};
use super::rng::{Rng, hash, tag};

/// One Telnyx call event.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TelnyxEvent<'a> {
    record_type: &'static str,
    call_leg_id: &'a str,
    call_session_id: &'a str,
    event_timestamp: String,
    name: &'static str,
    #[serde(rename = "type")]
    event_type: &'static str,
    metadata: BTreeMap<&'static str, String>,
}

/// Middle-of-leg events: (name, type).
const MIDDLE: [(&str, &str); 11] = [
    ("playback_start", "command"),
    ("call.playback.started", "webhook"),
    ("call.playback.ended", "webhook"),
    ("speak", "command"),
    ("call.speak.ended", "webhook"),
    ("gather_using_audio", "command"),
    ("call.gather.ended", "webhook"),
    ("bridge", "command"),
    ("call.bridged", "webhook"),
    ("record_start", "command"),
    ("call.recording.saved", "webhook"),
];

/// The legs of `config`, with their event times.
pub(crate) fn build_legs(config: &SimConfig) -> (Vec<SimLeg>, Vec<LegInfo>) {
    let span = (config.to - config.from).num_seconds().max(1) as u64;
    let mut legs: Vec<SimLeg> = Vec::with_capacity(config.telnyx_calls);
    let mut infos = Vec::with_capacity(config.telnyx_calls);
    for j in 0..config.telnyx_calls {
        let mut r = Rng::new(&[config.seed, tag::LEG, j as u64]);
        let joins = r.chance(0.3);
        let offset = Duration::seconds(r.below(span) as i64);
        let delay = Duration::seconds(r.range(1, 8) as i64);
        let previous = legs
            .last()
            .filter(|p| joins && p.start_time + delay < config.to);
        let (base, session) = match previous {
            Some(p) => (p.start_time + delay, p.call_session_id.clone()),
            None => (config.from + offset, uuid(config.seed, j, 1)),
        };
        let n = r.range(3, 10) as usize;
        let duration_us = r.range(20, 900) as i64 * 1_000_000;
        let first = base.timestamp_micros() + r.below(1_000_000) as i64;
        let gap = duration_us / (n as i64 - 1);
        let event_micros = (0..n as i64)
            .map(|k| {
                first
                    + k * gap
                    + if k == 0 {
                        0
                    } else {
                        r.below((gap / 4) as u64) as i64
                    }
            })
            .collect();
        legs.push(SimLeg {
            call_leg_id: uuid(config.seed, j, 0),
            call_session_id: session,
            start_time: DateTime::from_timestamp_micros(first).unwrap_or(base),
        });
        infos.push(LegInfo {
            outbound: r.chance(0.5),
            event_micros,
        });
    }
    (legs, infos)
}

/// Every event of every leg, sorted by time (then leg, then event).
pub(crate) fn order(infos: &[LegInfo]) -> Vec<EventRef> {
    let mut refs: Vec<EventRef> = infos
        .iter()
        .enumerate()
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

/// A UUID v1-looking id (`308fe500-5213-11e9-ace7-02420a0f0668`) from (seed, leg, kind).
fn uuid(seed: u64, leg: usize, kind: u64) -> String {
    let a = hash(&[seed, tag::LEG, leg as u64, kind, 0]);
    let b = hash(&[seed, tag::LEG, leg as u64, kind, 1]);
    format!(
        "{:08x}-{:04x}-1{:03x}-{:04x}-02420a0f{:04x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff
    )
}

/// Event `k` of leg `l`.
pub(crate) fn event<'a>(
    ctx: &Ctx,
    l: usize,
    leg: &'a SimLeg,
    info: &LegInfo,
    k: usize,
) -> TelnyxEvent<'a> {
    let n = info.event_micros.len();
    let micros = info.event_micros.get(k).copied().unwrap_or(0);
    let mut r = Rng::new(&[ctx.seed, tag::LEG_EVENT, l as u64, k as u64]);
    let (name, event_type) = name_of(info.outbound, k, n, &mut r);
    TelnyxEvent {
        record_type: "call_event",
        call_leg_id: &leg.call_leg_id,
        call_session_id: &leg.call_session_id,
        event_timestamp: DateTime::from_timestamp_micros(micros)
            .unwrap_or(leg.start_time)
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        name,
        event_type,
        metadata: metadata(ctx, l, info.outbound, name, event_type, &mut r),
    }
}

/// Name and type of event `k` of `n` on an outbound or inbound leg.
fn name_of(outbound: bool, k: usize, n: usize, r: &mut Rng) -> (&'static str, &'static str) {
    let prefix: [(&str, &str); 3] = if outbound {
        [
            ("dial", "command"),
            ("call.initiated", "webhook"),
            ("call.answered", "webhook"),
        ]
    } else {
        [
            ("call.initiated", "webhook"),
            ("answer", "command"),
            ("call.answered", "webhook"),
        ]
    };
    match k {
        _ if k + 1 == n => ("call.hangup", "webhook"),
        _ if n == 3 && k == 1 => ("call.answered", "webhook"),
        _ if n == 3 => ("call.initiated", "webhook"),
        0..=2 => prefix
            .get(k)
            .copied()
            .unwrap_or(("call.initiated", "webhook")),
        _ => r.pick(&MIDDLE),
    }
}

/// The free-form `metadata` of an event.
fn metadata(
    ctx: &Ctx,
    l: usize,
    outbound: bool,
    name: &str,
    event_type: &str,
    r: &mut Rng,
) -> BTreeMap<&'static str, String> {
    let mut leg = Rng::new(&[ctx.seed, tag::LEG_EVENT, l as u64, u64::MAX]);
    let from = format!("+1{}{:07}", leg.range(200, 999), leg.below(10_000_000));
    let to = format!("+1{}{:07}", leg.range(200, 999), leg.below(10_000_000));
    let mut m = BTreeMap::from([(
        "connection_id",
        format!("{}", 1_600_000_000_000_000_000 + leg.below(1 << 50)),
    )]);
    if event_type == "command" {
        m.insert("command_id", uuid(ctx.seed, l, 100 + r.below(1000)));
        return m;
    }
    m.insert(
        "direction",
        if outbound { "outgoing" } else { "incoming" }.into(),
    );
    m.insert("from", from);
    m.insert("to", to);
    m.insert("state", state_of(name).into());
    if name == "call.hangup" {
        m.insert("hangup_cause", "normal_clearing".into());
        m.insert(
            "hangup_source",
            if r.chance(0.5) { "caller" } else { "callee" }.into(),
        );
        m.insert("sip_hangup_cause", "200".into());
    }
    m
}

/// The call state after a webhook event.
fn state_of(name: &str) -> &'static str {
    match name {
        "call.initiated" => "parked",
        "call.hangup" => "hangup",
        "call.bridged" => "bridged",
        _ => "answered",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_are_ordered_and_uuid_like() {
        let config = SimConfig::default();
        let (legs, infos) = build_legs(&config);
        assert_eq!(legs.len(), 20);
        for (leg, info) in legs.iter().zip(&infos) {
            assert_eq!(leg.call_leg_id.len(), 36);
            assert_eq!(leg.call_leg_id.as_bytes()[14], b'1');
            assert!((3..=10).contains(&info.event_micros.len()));
            assert!(info.event_micros.windows(2).all(|w| w[0] < w[1]));
        }
        let order = order(&infos);
        assert!(order.windows(2).all(|w| w[0].micros <= w[1].micros));
    }
}
