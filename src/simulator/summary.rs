//! Voice Insights call summaries (`/v1/Voice/{CallSid}/Summary` and `/v1/Voice/Summaries`),
//! with the fields of the `insights.v1.call.summary` schema. `processing_state` is `partial`
//! until 30 minutes after the call ended by the simulator clock, then `complete`.

use chrono::Duration;
use serde::Serialize;

use super::config::CallType;
use super::facts::{CallFacts, call_facts, site};
use super::insights::{secs, stream_totals};
use super::model::{Ctx, SimCall};

/// One call summary.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary<'a> {
    account_sid: &'a str,
    call_sid: &'a str,
    call_type: &'static str,
    call_state: &'static str,
    answered_by: &'static str,
    processing_state: &'static str,
    created_time: String,
    start_time: String,
    end_time: String,
    duration: u64,
    connect_duration: u64,
    from: Party,
    to: Party,
    carrier_edge: Option<EdgeSummary>,
    client_edge: Option<EdgeSummary>,
    sdk_edge: Option<EdgeSummary>,
    sip_edge: Option<EdgeSummary>,
    tags: Vec<&'static str>,
    attributes: Attributes,
    properties: CallProperties,
    trust: Option<()>,
    annotation: Option<()>,
    url: String,
}

/// The calling or called party; `caller` on `from`, `callee` on `to`.
#[derive(Debug, Clone, Serialize)]
struct Party {
    #[serde(skip_serializing_if = "Option::is_none")]
    caller: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callee: Option<String>,
    carrier: &'static str,
    connection: &'static str,
    number_prefix: String,
    location: Location,
    country_code: &'static str,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Location {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, Serialize)]
struct EdgeSummary {
    properties: EdgeProperties,
    metrics: EdgeMetrics,
}

#[derive(Debug, Clone, Serialize)]
struct EdgeProperties {
    direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_region: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signaling_region: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edge_location: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<SdkSettings>,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct SdkSettings {
    dscp: bool,
    ice_restart_enabled: bool,
}

#[derive(Debug, Clone, Serialize)]
struct EdgeMetrics {
    inbound: StreamStats,
    outbound: StreamStats,
}

#[derive(Debug, Clone, Serialize)]
struct StreamStats {
    codec: u32,
    codec_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    packets_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    packets_sent: Option<u64>,
    packets_lost: u64,
    packets_loss_percentage: f64,
    jitter: Jitter,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Jitter {
    max: f64,
    avg: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Attributes {
    conference_participant: bool,
}

#[derive(Debug, Clone, Serialize)]
struct CallProperties {
    last_sip_response_num: u16,
    pdd_ms: u64,
    disconnected_by: &'static str,
    direction: &'static str,
}

/// The summary of call `idx` as the simulator clock sees it now.
pub(crate) fn summary<'a>(ctx: &'a Ctx, idx: usize, call: &'a SimCall) -> Summary<'a> {
    let facts = call_facts(ctx, idx, call.call_type);
    let duration = call.duration_secs();
    let edge = |name: &str| {
        call.has_edge(name)
            .then(|| edge_summary(ctx, idx, call, &facts, name))
    };
    Summary {
        account_sid: &call.account_sid,
        call_sid: &call.sid,
        call_type: call.call_type.summary_name(),
        call_state: "completed",
        answered_by: "unknown",
        processing_state: processing_state(ctx, call),
        created_time: secs(call.start_time),
        start_time: secs(call.start_time),
        end_time: secs(call.end_time),
        duration,
        connect_duration: duration.saturating_sub(facts.ring_secs),
        from: party(&facts, true),
        to: party(&facts, false),
        carrier_edge: edge("carrier_edge"),
        client_edge: edge("client_edge"),
        sdk_edge: edge("sdk_edge"),
        sip_edge: edge("sip_edge"),
        tags: tags(&facts),
        attributes: Attributes {
            conference_participant: call.conference_sid.is_some(),
        },
        properties: CallProperties {
            last_sip_response_num: 200,
            pdd_ms: facts.pdd_ms,
            disconnected_by: facts.disconnected_by,
            direction: summary_direction(call.call_type, &facts),
        },
        trust: None,
        annotation: None,
        url: format!("{}/v1/Voice/{}/Summary", ctx.base_url, call.sid),
    }
}

/// The summary's `properties.direction` (`outbound_api`, `inbound`, `trunking_…`).
fn summary_direction(call_type: CallType, facts: &CallFacts) -> &'static str {
    match call_type {
        CallType::TrunkingOriginating => "trunking_originating",
        CallType::TrunkingTerminating => "trunking_terminating",
        _ if facts.direction == "outbound-api" => "outbound_api",
        _ => "inbound",
    }
}

/// `partial` until 30 minutes after the call ended (simulator clock), then `complete`.
pub(crate) fn processing_state(ctx: &Ctx, call: &SimCall) -> &'static str {
    if ctx.now() >= call.end_time + Duration::minutes(30) {
        "complete"
    } else {
        "partial"
    }
}

/// The `from` (caller) or `to` (callee) object.
fn party(facts: &CallFacts, caller: bool) -> Party {
    let (number, carrier) = if caller {
        (&facts.from_e164, facts.from_carrier)
    } else {
        (&facts.to_e164, facts.to_carrier)
    };
    let shown = if caller { &facts.from } else { &facts.to };
    Party {
        caller: caller.then(|| shown.clone()),
        callee: (!caller).then(|| shown.clone()),
        carrier,
        connection: if carrier == "Twilio" {
            "voip"
        } else {
            "mobile"
        },
        number_prefix: number.chars().skip(1).take(4).collect(),
        location: Location {
            lat: facts.place.lat,
            lon: facts.place.lon,
        },
        country_code: "US",
    }
}

/// Per-edge properties and whole-call stream totals, consistent with the metric samples.
fn edge_summary(
    ctx: &Ctx,
    idx: usize,
    call: &SimCall,
    facts: &CallFacts,
    edge: &str,
) -> EdgeSummary {
    let ticks = call.duration_secs() / 10;
    let (received, lost) = stream_totals(facts, ticks);
    let q = facts.quality;
    let stats = |inbound: bool| StreamStats {
        codec: facts.codec,
        codec_name: facts.codec_name,
        packets_received: inbound.then_some(received),
        packets_sent: (!inbound).then_some(received + lost),
        packets_lost: if inbound { lost } else { 0 },
        packets_loss_percentage: if inbound && received + lost > 0 {
            ((lost as f64 * 10_000.0 / (received + lost) as f64).round()) / 100.0
        } else {
            0.0
        },
        jitter: Jitter {
            max: ((q.jitter_ms * 3.0) * 1000.0).round() / 1000.0,
            avg: q.jitter_ms,
        },
    };
    let s = site(ctx, idx, edge);
    let sdk = edge == "sdk_edge";
    EdgeSummary {
        properties: EdgeProperties {
            direction: if facts.direction.starts_with("outbound") {
                "outbound"
            } else {
                "inbound"
            },
            media_region: (!sdk).then_some(s.region),
            signaling_region: (!sdk).then_some(s.region),
            edge_location: (!sdk).then_some(s.edge_location),
            settings: sdk.then_some(SdkSettings {
                dscp: true,
                ice_restart_enabled: false,
            }),
        },
        metrics: EdgeMetrics {
            inbound: stats(true),
            outbound: stats(false),
        },
    }
}

/// Voice Insights tags for the call's quality.
fn tags(facts: &CallFacts) -> Vec<&'static str> {
    let q = facts.quality;
    let mut tags = Vec::new();
    if q.loss_ratio > 0.0 || q.burst_size > 20 {
        tags.push("high_packet_loss");
    }
    if q.jitter_ms > 5.0 {
        tags.push("high_jitter");
    }
    if q.rtt_ms > 300 {
        tags.push("high_latency");
    }
    if facts.pdd_ms > 2000 {
        tags.push("high_pdd");
    }
    tags
}
