//! Voice Insights records (`/v1/Voice/{CallSid}/Events` and `/Metrics`), shaped like seeds
//! 000, 001 and 003 and Twilio's Voice SDK / Gateway event-stream pages: every record has
//! `timestamp`, `call_sid`, `account_sid`, `edge` and all four edge keys, the unused ones null.
//!
//! Metrics are built one at a time from (seed, call, edge, tick) so a page costs only its own
//! rows; cumulative counters are closed-form functions of the tick, so they stay monotone.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;

use super::facts::{CallFacts, Site, call_facts, edge_code, site};
use super::model::{Ctx, SimCall};
use super::rng::{Rng, round, tag};

/// `{"value": x}`, as seed 003 wraps SDK interval metrics.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Val<T> {
    value: T,
}

/// One Insights event.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventRecord<'a> {
    timestamp: String,
    call_sid: &'a str,
    account_sid: &'a str,
    edge: &'static str,
    group: &'static str,
    name: &'static str,
    level: &'static str,
    carrier_edge: Option<GatewayEventEdge>,
    sip_edge: Option<GatewayEventEdge>,
    sdk_edge: Option<SdkEventEdge>,
    client_edge: Option<GatewayEventEdge>,
}

/// A gateway edge's event payload.
#[derive(Debug, Clone, Serialize)]
struct GatewayEventEdge {
    metadata: Site,
}

/// The SDK edge's event payload (seed 000).
#[derive(Debug, Clone, Serialize)]
struct SdkEventEdge {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorCode>,
    metadata: SdkMetadata,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct ErrorCode {
    code: u32,
}

#[derive(Debug, Clone, Serialize)]
struct SdkMetadata {
    client_name: String,
    location: Location,
    city: &'static str,
    country_code: &'static str,
    country_subdivision: &'static str,
    ip_address: String,
    sdk: Sdk,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Location {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Sdk {
    #[serde(rename = "type")]
    sdk_type: &'static str,
    version: &'static str,
    platform: &'static str,
    selected_region: &'static str,
    os: Os,
    device: Device,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Os {
    name: &'static str,
    version: &'static str,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Device {
    model: &'static str,
    #[serde(rename = "type")]
    device_type: &'static str,
    vendor: &'static str,
    arch: &'static str,
}

/// One Insights metric sample.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MetricRecord<'a> {
    timestamp: String,
    call_sid: &'a str,
    account_sid: &'a str,
    edge: &'static str,
    direction: &'static str,
    carrier_edge: Option<GatewayMetric>,
    sip_edge: Option<GatewayMetric>,
    sdk_edge: Option<SdkMetric>,
    client_edge: Option<GatewayMetric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_region: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
struct SdkMetric {
    interval: SdkInterval,
    cumulative: SdkCumulative,
}

#[derive(Debug, Clone, Serialize)]
struct SdkInterval {
    mos: Val<f64>,
    rtt: Val<u64>,
    jitter: Val<u64>,
    audio_in: Val<u64>,
    audio_out: Val<u64>,
    packets_lost: u64,
    packets_received: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    mos_lq: Option<Val<f64>>,
}

#[derive(Debug, Clone, Serialize)]
struct SdkCumulative {
    bytes_sent: u64,
    bytes_received: u64,
    packets_sent: u64,
    packets_lost: u64,
    packets_received: u64,
}

#[derive(Debug, Clone, Serialize)]
struct GatewayMetric {
    codec: u32,
    codec_name: &'static str,
    interval: GatewayStats,
    cumulative: GatewayStats,
    metadata: Site,
}

#[derive(Debug, Clone, Serialize)]
struct GatewayStats {
    jitter: Jitter,
    packets_received: u64,
    packets_lost: u64,
    packets_loss_percentage: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Jitter {
    avg: f64,
    max: f64,
}

/// Packets per 10 s sample (50 packets/s of 20 ms audio).
const PACKETS_PER_SAMPLE: u64 = 500;
/// Bytes per RTP packet of 20 ms G.711 with headers.
const BYTES_PER_PACKET: u64 = 172;

/// Middle-of-call SDK events: (group, name, level).
const SDK_MIDDLE: [(&str, &str, &str); 14] = [
    ("network-information", "network-change", "INFO"),
    ("ice-connection-state", "checking", "INFO"),
    ("ice-connection-state", "connected", "INFO"),
    ("ice-gathering-state", "complete", "INFO"),
    ("signaling-state", "stable", "INFO"),
    ("get-user-media", "succeeded", "INFO"),
    (
        "audio-level-warning-raised",
        "constant-audio-input-level",
        "WARNING",
    ),
    (
        "audio-level-warning-cleared",
        "constant-audio-input-level",
        "INFO",
    ),
    ("network-quality-warning-raised", "high-jitter", "WARNING"),
    ("network-quality-warning-cleared", "high-jitter", "INFO"),
    ("network-quality-warning-raised", "high-rtt", "WARNING"),
    (
        "network-quality-warning-raised",
        "high-packet-loss",
        "WARNING",
    ),
    ("network-quality-warning-raised", "low-mos", "WARNING"),
    ("connection", "error", "ERROR"),
];
/// Voice SDK error codes seen on `connection`/`error` events.
const SDK_ERRORS: [u32; 6] = [31000, 31003, 31005, 31201, 31600, 53405];
/// Middle-of-call gateway events: (group, name).
const GATEWAY_MIDDLE: [(&str, &str); 4] = [
    ("call_state", "hold"),
    ("call_state", "unhold"),
    ("call_state", "dtmf"),
    ("call_state", "media_update"),
];

/// Number of metric samples of `edge` for `direction` (`None` = all).
pub(crate) fn metric_count(call: &SimCall, edge: &str, direction: Option<&str>) -> usize {
    if !call.has_edge(edge) {
        return 0;
    }
    let ticks = (call.duration_secs() / 10) as usize;
    match (edge == "sdk_edge", direction) {
        (_, None) | (true, Some("both")) => ticks,
        (false, Some("inbound")) => ticks.div_ceil(2),
        (false, Some("outbound")) => ticks / 2,
        _ => 0,
    }
}

/// Builds the metric samples of one edge of one call; facts are derived once per page.
pub(crate) struct MetricSource<'a> {
    ctx: &'a Ctx,
    idx: usize,
    call: &'a SimCall,
    edge: &'static str,
    facts: CallFacts,
    site: Site,
}

impl<'a> MetricSource<'a> {
    /// The samples of `edge` (one of the call's edges or not) of call `idx`.
    pub(crate) fn new(ctx: &'a Ctx, idx: usize, call: &'a SimCall, edge: &'static str) -> Self {
        MetricSource {
            ctx,
            idx,
            call,
            edge,
            facts: call_facts(ctx, idx, call.call_type),
            site: site(ctx, idx, edge),
        }
    }

    /// The `i`-th sample among those of `direction` (`None` = all).
    pub(crate) fn record(&self, direction: Option<&str>, i: usize) -> MetricRecord<'a> {
        let sdk = self.edge == "sdk_edge";
        let tick = match (sdk, direction) {
            (false, Some("inbound")) => 2 * i,
            (false, Some("outbound")) => 2 * i + 1,
            _ => i,
        } as u64;
        let ctx = self.ctx;
        let code = edge_code(self.edge);
        let mut r = Rng::new(&[ctx.seed, tag::METRIC, self.idx as u64, code, tick]);
        let timestamp = self.call.start_time + Duration::seconds(10 * (tick as i64 + 1));
        let mut record = MetricRecord {
            timestamp: secs(timestamp),
            call_sid: &self.call.sid,
            account_sid: &self.call.account_sid,
            edge: self.edge,
            direction: "both",
            carrier_edge: None,
            sip_edge: None,
            sdk_edge: None,
            client_edge: None,
            media_region: ctx.drift.then_some("us1"),
        };
        if sdk {
            record.sdk_edge = Some(sdk_metric(&self.facts, tick, &mut r, ctx.drift));
            return record;
        }
        record.direction = if tick.is_multiple_of(2) {
            "inbound"
        } else {
            "outbound"
        };
        let gateway = gateway_metric(&self.facts, self.site.clone(), tick, &mut r);
        match self.edge {
            "carrier_edge" => record.carrier_edge = Some(gateway),
            "sip_edge" => record.sip_edge = Some(gateway),
            _ => record.client_edge = Some(gateway),
        }
        record
    }
}

/// Packets lost up to and including sample `tick`: steady loss plus periodic bursts.
fn lost_through(facts: &CallFacts, tick: u64) -> u64 {
    let q = facts.quality;
    let steady = (q.loss_ratio * ((tick + 1) * PACKETS_PER_SAMPLE) as f64).floor() as u64;
    let bursts = (tick + q.burst_phase) / q.burst_period.max(1);
    steady + bursts * q.burst_size
}

/// Packets received and lost over a whole stream of `ticks` samples.
pub(crate) fn stream_totals(facts: &CallFacts, ticks: u64) -> (u64, u64) {
    if ticks == 0 {
        return (0, 0);
    }
    let lost = lost_through(facts, ticks - 1);
    ((ticks * PACKETS_PER_SAMPLE).saturating_sub(lost), lost)
}

/// Packets lost in sample `tick` alone.
fn lost_in(facts: &CallFacts, tick: u64) -> u64 {
    let before = if tick == 0 {
        0
    } else {
        lost_through(facts, tick - 1)
    };
    lost_through(facts, tick).saturating_sub(before)
}

/// An SDK sample like seed 003.
fn sdk_metric(facts: &CallFacts, tick: u64, r: &mut Rng, drift: bool) -> SdkMetric {
    let q = facts.quality;
    let lost = lost_in(facts, tick).min(PACKETS_PER_SAMPLE);
    let lost_total = lost_through(facts, tick);
    let sent_total = (tick + 1) * PACKETS_PER_SAMPLE;
    let received_total = sent_total.saturating_sub(lost_total);
    let penalty = lost as f64 / PACKETS_PER_SAMPLE as f64 * 8.0;
    let mos = round((q.mos - penalty - r.unit() * 0.15).clamp(1.0, 4.5), 2);
    SdkMetric {
        interval: SdkInterval {
            mos: Val { value: mos },
            rtt: Val {
                value: q.rtt_ms + r.below(40),
            },
            jitter: Val {
                value: q.jitter_ms.round() as u64 + r.below(8),
            },
            audio_in: Val {
                value: r.range(50, 3000),
            },
            audio_out: Val {
                value: r.range(2000, 9000),
            },
            packets_lost: lost,
            packets_received: PACKETS_PER_SAMPLE - lost,
            mos_lq: drift.then_some(Val {
                value: round((mos - 0.2).max(1.0), 2),
            }),
        },
        cumulative: SdkCumulative {
            bytes_sent: sent_total * BYTES_PER_PACKET,
            bytes_received: received_total * BYTES_PER_PACKET,
            packets_sent: sent_total,
            packets_lost: lost_total,
            packets_received: received_total,
        },
    }
}

/// A gateway sample like the Gateway Metrics event-stream page.
fn gateway_metric(facts: &CallFacts, metadata: Site, tick: u64, r: &mut Rng) -> GatewayMetric {
    let q = facts.quality;
    let lost = lost_in(facts, tick).min(PACKETS_PER_SAMPLE);
    let lost_total = lost_through(facts, tick);
    let received_total = ((tick + 1) * PACKETS_PER_SAMPLE).saturating_sub(lost_total);
    let avg = round(q.jitter_ms * (0.6 + r.unit() * 0.8), 3);
    GatewayMetric {
        codec: facts.codec,
        codec_name: facts.codec_name,
        interval: GatewayStats {
            jitter: Jitter {
                avg,
                max: round(avg * (1.5 + r.unit() * 1.5), 3),
            },
            packets_received: PACKETS_PER_SAMPLE - lost,
            packets_lost: lost,
            packets_loss_percentage: percent(lost, PACKETS_PER_SAMPLE),
        },
        cumulative: GatewayStats {
            jitter: Jitter {
                avg: q.jitter_ms,
                max: round(q.jitter_ms * 3.0, 3),
            },
            packets_received: received_total,
            packets_lost: lost_total,
            packets_loss_percentage: percent(lost_total, received_total + lost_total),
        },
        metadata,
    }
}

/// `part / whole` as a percentage with two decimals.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round(part as f64 * 100.0 / whole as f64, 2)
    }
}

/// All events of `edge` of a call, in time order (empty for an edge the call lacks).
pub(crate) fn events<'a>(
    ctx: &'a Ctx,
    idx: usize,
    call: &'a SimCall,
    edge: &str,
) -> Vec<EventRecord<'a>> {
    let Some(edge) = call.edges().into_iter().find(|e| *e == edge) else {
        return Vec::new();
    };
    let code = edge_code(edge);
    let n = Rng::new(&[ctx.seed, tag::EVENT, idx as u64, code, u64::MAX]).range(4, 36) as usize;
    let times = event_times(ctx, idx, call, code, n);
    let facts = call_facts(ctx, idx, call.call_type);
    let gateway_site = site(ctx, idx, edge);
    (0..n)
        .map(|k| {
            let mut r = Rng::new(&[ctx.seed, tag::EVENT, idx as u64, code, k as u64]);
            let mut record = EventRecord {
                timestamp: times.get(k).cloned().unwrap_or_default(),
                call_sid: &call.sid,
                account_sid: &call.account_sid,
                edge,
                group: "",
                name: "",
                level: "INFO",
                carrier_edge: None,
                sip_edge: None,
                sdk_edge: None,
                client_edge: None,
            };
            if edge == "sdk_edge" {
                fill_sdk_event(&mut record, &facts, (k, n, ctx.drift), &mut r);
            } else {
                fill_gateway_event(&mut record, gateway_site.clone(), k, n, &mut r);
            }
            record
        })
        .collect()
}

/// Event timestamps spread over the call, non-decreasing, some with milliseconds.
fn event_times(ctx: &Ctx, idx: usize, call: &SimCall, code: u64, n: usize) -> Vec<String> {
    let span_ms = (call.end_time - call.start_time).num_milliseconds().max(0);
    let slots = (n.max(2) - 1) as i64;
    let gap = span_ms / slots;
    let mut previous = 0i64;
    (0..n)
        .map(|k| {
            let mut r = Rng::new(&[ctx.seed, tag::EVENT, idx as u64, code, k as u64, 1]);
            let spread = if k == 0 { 2000 } else { gap / 2 };
            let jitter = r.below(spread.max(1) as u64) as i64;
            let raw = (k as i64 * gap + jitter).min(span_ms);
            let with_ms = r.chance(0.4);
            let offset = if with_ms { raw } else { raw - raw % 1000 };
            previous = offset.max(previous);
            let t = call.start_time + Duration::milliseconds(previous);
            if with_ms { millis(t) } else { secs(t) }
        })
        .collect()
}

/// Group, name, level and payload of SDK event `k` of `n`.
fn fill_sdk_event(
    record: &mut EventRecord<'_>,
    facts: &CallFacts,
    (k, n, drift): (usize, usize, bool),
    r: &mut Rng,
) {
    let first = if facts.direction == "inbound" {
        "outgoing"
    } else {
        "incoming"
    };
    let (group, name, level) = match k {
        0 => ("connection", first, "INFO"),
        1 => ("connection", "ringing", "INFO"),
        2 => ("connection", "accepted", "INFO"),
        _ if k + 1 == n => ("connection", "disconnect", "INFO"),
        _ if r.chance(0.04) => ("connection", "error", "ERROR"),
        _ => r.pick(&SDK_MIDDLE[..SDK_MIDDLE.len() - 1]),
    };
    record.group = group;
    record.name = name;
    record.level = level;
    let error = (level == "ERROR").then(|| ErrorCode {
        code: r.pick(&SDK_ERRORS),
    });
    record.sdk_edge = Some(SdkEventEdge {
        error,
        metadata: sdk_metadata(facts, drift),
    });
}

/// What drift mode puts in the SDK's version: markup a reader of the data must show as text
/// (the report's escaping is tested with it).
pub(crate) const DRIFT_SDK_VERSION: &str = "<script>alert(1)</script>";

/// The SDK's `metadata` (device, place, SDK build) of a Client call; with drift, its version
/// is [`DRIFT_SDK_VERSION`].
fn sdk_metadata(facts: &CallFacts, drift: bool) -> SdkMetadata {
    let p = facts.sdk;
    SdkMetadata {
        client_name: facts.client_name.clone(),
        location: Location {
            lat: facts.place.lat,
            lon: facts.place.lon,
        },
        city: facts.place.city,
        country_code: facts.place.country_code,
        country_subdivision: facts.place.subdivision,
        ip_address: facts.client_ip.clone(),
        sdk: Sdk {
            sdk_type: p.sdk_type,
            version: if drift { DRIFT_SDK_VERSION } else { p.version },
            platform: p.platform,
            selected_region: "gll",
            os: Os {
                name: p.os_name,
                version: p.os_version,
            },
            device: Device {
                model: p.device_model,
                device_type: p.device_type,
                vendor: p.device_vendor,
                arch: p.device_arch,
            },
        },
    }
}

/// Group, name and payload of gateway event `k` of `n`.
fn fill_gateway_event(
    record: &mut EventRecord<'_>,
    metadata: Site,
    k: usize,
    n: usize,
    r: &mut Rng,
) {
    let (group, name) = match k {
        0 => ("call_progress", "initiated"),
        1 => ("call_progress", "ringing"),
        2 => ("call_progress", "answered"),
        _ if k + 1 == n => ("call_progress", "completed"),
        _ => r.pick(&GATEWAY_MIDDLE),
    };
    record.group = group;
    record.name = name;
    let payload = Some(GatewayEventEdge { metadata });
    match record.edge {
        "carrier_edge" => record.carrier_edge = payload,
        "sip_edge" => record.sip_edge = payload,
        _ => record.client_edge = payload,
    }
}

/// RFC 3339 with whole seconds and `Z`.
pub(crate) fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with milliseconds and `Z`.
fn millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
