//! What the report takes from each table's rows: per call facts (times, quality statistics,
//! where and on what it ran, its tags and error codes) and per day distributions, gathered per
//! file and added up.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::schema::Table;
use crate::timefmt::micros_to_day;

use super::dist::{Distribution, Stat};
use super::scan::{Kind, Rows};

/// The media edges of Voice Insights, in the report's order.
pub const EDGES: [Edge; 4] = [Edge::Sdk, Edge::Carrier, Edge::Sip, Edge::Client];

/// A media edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Edge {
    /// The Voice SDK on the device.
    Sdk,
    /// Twilio's gateway to the carrier.
    Carrier,
    /// Twilio's gateway to a SIP endpoint.
    Sip,
    /// Twilio's gateway to a Client (SDK) leg.
    Client,
}

impl Edge {
    /// The name the tables use (`sdk_edge`, …).
    pub fn name(self) -> &'static str {
        match self {
            Edge::Sdk => "sdk_edge",
            Edge::Carrier => "carrier_edge",
            Edge::Sip => "sip_edge",
            Edge::Client => "client_edge",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A quality metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Mean opinion score (SDK edge).
    Mos,
    /// Jitter, ms (the SDK's sample; a gateway's interval average).
    Jitter,
    /// Packet loss, %.
    Loss,
    /// Round-trip time (SDK edge), or a gateway's RTP latency average from the call summary.
    Latency,
}

impl Metric {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Mos => "mos",
            Metric::Jitter => "jitter",
            Metric::Loss => "packet_loss",
            Metric::Latency => "latency",
        }
    }

    /// Its unit.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Mos => "",
            Metric::Jitter | Metric::Latency => "ms",
            Metric::Loss => "%",
        }
    }
}

/// One call's samples of a gateway edge.
#[derive(Clone, Copy, Debug, Default)]
pub struct GatewayStats {
    /// Interval jitter averages.
    pub jitter_avg: Stat,
    /// Interval jitter maxima.
    pub jitter_max: Stat,
    /// Interval packet loss, %.
    pub loss: Stat,
}

/// What the lake says about one call.
#[derive(Clone, Debug, Default)]
pub struct CallFacts {
    /// The earliest time of its rows in the window (µs): its day and hour in the report.
    pub first_seen: Option<i64>,
    /// Its start, from `calls` or else `call_summaries`.
    pub start: Option<i64>,
    /// Seconds, from `calls` or else `call_summaries`.
    pub duration: Option<i64>,
    /// Has a `calls` row.
    pub in_calls: bool,
    /// Has Insights rows (metrics or events).
    pub in_insights: bool,
    /// SDK edge MOS samples.
    pub mos: Stat,
    /// SDK edge RTT samples.
    pub rtt: Stat,
    /// SDK edge jitter samples.
    pub sdk_jitter: Stat,
    /// SDK edge packet loss samples.
    pub sdk_loss: Stat,
    /// Carrier, SIP and Client edge samples.
    pub gateways: [GatewayStats; 3],
    /// Edges with metrics (bits of [`Edge`]).
    pub edges: u8,
    /// Country, SDK platform, version and OS from the SDK's metadata (smallest value seen).
    pub country: Option<String>,
    /// SDK platform.
    pub platform: Option<String>,
    /// SDK version.
    pub sdk_version: Option<String>,
    /// OS name.
    pub os: Option<String>,
    /// The caller's country and carrier from the call summary.
    pub summary_country: Option<String>,
    /// The caller's carrier from the call summary.
    pub carrier: Option<String>,
    /// Twilio's own tags from the call summary (None: no summary, or tags not a JSON list).
    pub summary_tags: Option<BTreeSet<String>>,
    /// SDK error codes of its events.
    pub error_codes: BTreeSet<i64>,
}

fn keep_min(slot: &mut Option<String>, value: Option<&str>) {
    if let Some(value) = value
        && slot.as_deref().is_none_or(|held| value < held)
    {
        *slot = Some(value.to_string());
    }
}

fn earliest(slot: &mut Option<i64>, value: Option<i64>) {
    if let Some(value) = value {
        *slot = Some(slot.map_or(value, |held| held.min(value)));
    }
}

impl CallFacts {
    /// Adds what another part of the lake said about the same call.
    pub fn merge(&mut self, other: CallFacts) {
        earliest(&mut self.first_seen, other.first_seen);
        earliest(&mut self.start, other.start);
        self.duration = self.duration.or(other.duration);
        self.in_calls |= other.in_calls;
        self.in_insights |= other.in_insights;
        self.mos.merge(other.mos);
        self.rtt.merge(other.rtt);
        self.sdk_jitter.merge(other.sdk_jitter);
        self.sdk_loss.merge(other.sdk_loss);
        for (mine, theirs) in self.gateways.iter_mut().zip(other.gateways) {
            mine.jitter_avg.merge(theirs.jitter_avg);
            mine.jitter_max.merge(theirs.jitter_max);
            mine.loss.merge(theirs.loss);
        }
        self.edges |= other.edges;
        keep_min(&mut self.country, other.country.as_deref());
        keep_min(&mut self.platform, other.platform.as_deref());
        keep_min(&mut self.sdk_version, other.sdk_version.as_deref());
        keep_min(&mut self.os, other.os.as_deref());
        keep_min(&mut self.summary_country, other.summary_country.as_deref());
        keep_min(&mut self.carrier, other.carrier.as_deref());
        if self.summary_tags.is_none() {
            self.summary_tags = other.summary_tags;
        }
        self.error_codes.extend(other.error_codes);
    }

    /// The edges it has metrics from.
    pub fn edge_names(&self) -> Vec<&'static str> {
        EDGES
            .iter()
            .filter(|e| self.edges & e.bit() != 0)
            .map(|e| e.name())
            .collect()
    }
}

/// Events of one level, code and name.
#[derive(Clone, Debug, Default)]
pub struct EventGroup {
    /// Events.
    pub events: u64,
    /// Calls with one.
    pub calls: BTreeSet<String>,
}

/// A table's files and rows read.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableRead {
    /// Files read.
    pub files: u64,
    /// Rows in the window.
    pub rows: u64,
}

/// Everything gathered from the files read; parts from files read in parallel are merged.
#[derive(Debug, Default)]
pub struct Collected {
    /// Files and rows per table.
    pub read: BTreeMap<Table, TableRead>,
    /// Per call.
    pub calls: HashMap<String, CallFacts>,
    /// `calls` rows per day and per hour of day of their start.
    pub calls_per_day: BTreeMap<i32, u64>,
    /// `calls` rows per UTC hour of day of their start.
    pub calls_per_hour: [u64; 24],
    /// Samples per edge, metric and day.
    pub series: BTreeMap<(Edge, Metric), BTreeMap<i32, Distribution>>,
    /// Insights error and warning events per level, code and name.
    pub events: BTreeMap<(String, Option<i64>, String), EventGroup>,
    /// Telnyx events per type and name.
    pub telnyx: BTreeMap<(String, String), u64>,
}

impl Collected {
    /// Adds a part.
    pub fn merge(&mut self, other: Collected) {
        for (table, read) in other.read {
            let mine = self.read.entry(table).or_default();
            mine.files += read.files;
            mine.rows += read.rows;
        }
        for (sid, facts) in other.calls {
            self.calls.entry(sid).or_default().merge(facts);
        }
        for (day, n) in other.calls_per_day {
            *self.calls_per_day.entry(day).or_default() += n;
        }
        for (mine, theirs) in self.calls_per_hour.iter_mut().zip(other.calls_per_hour) {
            *mine += theirs;
        }
        for (key, days) in other.series {
            let mine = self.series.entry(key).or_default();
            for (day, dist) in days {
                mine.entry(day).or_default().merge(dist);
            }
        }
        for (key, group) in other.events {
            let mine = self.events.entry(key).or_default();
            mine.events += group.events;
            mine.calls.extend(group.calls);
        }
        for (key, n) in other.telnyx {
            *self.telnyx.entry(key).or_default() += n;
        }
    }

    /// The call's facts, added when new (without a key allocation per row of a known call).
    fn call(&mut self, sid: &str) -> Option<&mut CallFacts> {
        if !self.calls.contains_key(sid) {
            self.calls.insert(sid.to_string(), CallFacts::default());
        }
        self.calls.get_mut(sid)
    }

    fn sample(&mut self, key: (Edge, Metric), time: i64, value: Option<f64>) {
        if let Some(value) = value {
            self.series
                .entry(key)
                .or_default()
                .entry(micros_to_day(time))
                .or_default()
                .add(value);
        }
    }
}

/// The tables the report reads.
pub const REPORT_TABLES: [Table; 5] = [
    Table::Calls,
    Table::CallSummaries,
    Table::InsightsMetrics,
    Table::InsightsEvents,
    Table::TelnyxCallEvents,
];

/// The columns the report reads of a table; the first is the table's own time.
pub fn columns(table: Table) -> Vec<(&'static str, Kind)> {
    use Kind::*;
    match table {
        Table::Calls => vec![("start_time", Time), ("sid", Text), ("duration", Int)],
        Table::CallSummaries => vec![
            ("start_time", Time),
            ("call_sid", Text),
            ("duration", Int),
            ("tags", Text),
            ("from__country_code", Text),
            ("from__carrier", Text),
            ("carrier_edge__metrics__inbound__latency__avg", Float),
            ("sip_edge__metrics__inbound__latency__avg", Float),
            ("client_edge__metrics__inbound__latency__avg", Float),
        ],
        Table::InsightsMetrics => vec![
            ("timestamp", Time),
            ("call_sid", Text),
            ("sdk_edge__interval__mos", Float),
            ("sdk_edge__interval__rtt", Float),
            ("sdk_edge__interval__jitter", Float),
            ("sdk_edge__interval__packets_loss_percentage", Float),
            ("carrier_edge__interval__jitter__avg", Float),
            ("carrier_edge__interval__jitter__max", Float),
            ("carrier_edge__interval__packets_loss_percentage", Float),
            ("sip_edge__interval__jitter__avg", Float),
            ("sip_edge__interval__jitter__max", Float),
            ("sip_edge__interval__packets_loss_percentage", Float),
            ("client_edge__interval__jitter__avg", Float),
            ("client_edge__interval__jitter__max", Float),
            ("client_edge__interval__packets_loss_percentage", Float),
        ],
        Table::InsightsEvents => vec![
            ("timestamp", Time),
            ("call_sid", Text),
            ("level", Text),
            ("name", Text),
            ("sdk_edge__error__code", Int),
            ("sdk_edge__metadata__country_code", Text),
            ("sdk_edge__metadata__sdk__platform", Text),
            ("sdk_edge__metadata__sdk__version", Text),
            ("sdk_edge__metadata__sdk__os__name", Text),
        ],
        Table::TelnyxCallEvents => vec![("event_timestamp", Time), ("type", Text), ("name", Text)],
        _ => Vec::new(),
    }
}

/// Adds one batch of a table's rows.
pub fn collect(table: Table, rows: &Rows, into: &mut Collected) {
    match table {
        Table::Calls => calls(rows, into),
        Table::CallSummaries => summaries(rows, into),
        Table::InsightsMetrics => metrics(rows, into),
        Table::InsightsEvents => events(rows, into),
        Table::TelnyxCallEvents => telnyx(rows, into),
        _ => {}
    }
}

fn text(rows: &Rows, column: usize, row: usize) -> Option<&str> {
    rows.text(column)
        .filter(|a| arrow::array::Array::is_valid(*a, row))
        .map(|a| a.value(row))
}

fn float(rows: &Rows, column: usize, row: usize) -> Option<f64> {
    rows.float(column)
        .filter(|a| arrow::array::Array::is_valid(*a, row))
        .map(|a| a.value(row))
}

fn int(rows: &Rows, column: usize, row: usize) -> Option<i64> {
    rows.int(column)
        .filter(|a| arrow::array::Array::is_valid(*a, row))
        .map(|a| a.value(row))
}

fn time(rows: &Rows, row: usize) -> i64 {
    rows.time(0).map(|a| a.value(row)).unwrap_or_default()
}

fn calls(rows: &Rows, into: &mut Collected) {
    for &row in rows.in_window() {
        let Some(sid) = text(rows, 1, row) else {
            continue;
        };
        let start = time(rows, row);
        let duration = int(rows, 2, row);
        *into.calls_per_day.entry(micros_to_day(start)).or_default() += 1;
        let hour = start.rem_euclid(86_400_000_000) / 3_600_000_000;
        if let Some(slot) = into.calls_per_hour.get_mut(hour as usize) {
            *slot += 1;
        }
        let Some(call) = into.call(sid) else { continue };
        call.in_calls = true;
        earliest(&mut call.first_seen, Some(start));
        earliest(&mut call.start, Some(start));
        call.duration = duration.or(call.duration);
    }
}

fn summaries(rows: &Rows, into: &mut Collected) {
    for &row in rows.in_window() {
        let Some(sid) = text(rows, 1, row) else {
            continue;
        };
        let start = time(rows, row);
        for (column, edge) in [(6, Edge::Carrier), (7, Edge::Sip), (8, Edge::Client)] {
            into.sample((edge, Metric::Latency), start, float(rows, column, row));
        }
        let tags =
            text(rows, 3, row).and_then(|t| serde_json::from_str::<BTreeSet<String>>(t).ok());
        let (duration, country, carrier) =
            (int(rows, 2, row), text(rows, 4, row), text(rows, 5, row));
        let Some(call) = into.call(sid) else { continue };
        earliest(&mut call.first_seen, Some(start));
        earliest(&mut call.start, Some(start));
        if call.duration.is_none() {
            call.duration = duration;
        }
        keep_min(&mut call.summary_country, country);
        keep_min(&mut call.carrier, carrier);
        if call.summary_tags.is_none() {
            call.summary_tags = tags;
        }
    }
}

fn metrics(rows: &Rows, into: &mut Collected) {
    for &row in rows.in_window() {
        let Some(sid) = text(rows, 1, row) else {
            continue;
        };
        let at = time(rows, row);
        let [mos, rtt, jitter, loss] = [2, 3, 4, 5].map(|c| float(rows, c, row));
        into.sample((Edge::Sdk, Metric::Mos), at, mos);
        into.sample((Edge::Sdk, Metric::Latency), at, rtt);
        into.sample((Edge::Sdk, Metric::Jitter), at, jitter);
        into.sample((Edge::Sdk, Metric::Loss), at, loss);
        let gateways = [Edge::Carrier, Edge::Sip, Edge::Client].map(|edge| {
            let first = 6 + 3 * (edge as usize - 1);
            let values = [first, first + 1, first + 2].map(|c| float(rows, c, row));
            (edge, values)
        });
        for (edge, [jitter_avg, _, loss]) in gateways {
            into.sample((edge, Metric::Jitter), at, jitter_avg);
            into.sample((edge, Metric::Loss), at, loss);
        }
        let Some(call) = into.call(sid) else { continue };
        call.in_insights = true;
        earliest(&mut call.first_seen, Some(at));
        let sdk = [
            (&mut call.mos, mos),
            (&mut call.rtt, rtt),
            (&mut call.sdk_jitter, jitter),
            (&mut call.sdk_loss, loss),
        ];
        let mut has_sdk = false;
        for (stat, value) in sdk {
            if let Some(value) = value {
                stat.add(value);
                has_sdk = true;
            }
        }
        if has_sdk {
            call.edges |= Edge::Sdk.bit();
        }
        for ((edge, values), stats) in gateways.into_iter().zip(call.gateways.iter_mut()) {
            let [jitter_avg, jitter_max, loss] = values;
            if values.iter().any(Option::is_some) {
                call.edges |= edge.bit();
            }
            jitter_avg.into_iter().for_each(|v| stats.jitter_avg.add(v));
            jitter_max.into_iter().for_each(|v| stats.jitter_max.add(v));
            loss.into_iter().for_each(|v| stats.loss.add(v));
        }
    }
}

fn events(rows: &Rows, into: &mut Collected) {
    for &row in rows.in_window() {
        let Some(sid) = text(rows, 1, row) else {
            continue;
        };
        let at = time(rows, row);
        let level = text(rows, 2, row).unwrap_or_default();
        let name = text(rows, 3, row).unwrap_or_default();
        let code = int(rows, 4, row);
        if code.is_some() || matches!(level, "ERROR" | "WARNING") {
            let group = into
                .events
                .entry((level.to_string(), code, name.to_string()))
                .or_default();
            group.events += 1;
            if !group.calls.contains(sid) {
                group.calls.insert(sid.to_string());
            }
        }
        let Some(call) = into.call(sid) else { continue };
        call.in_insights = true;
        earliest(&mut call.first_seen, Some(at));
        keep_min(&mut call.country, text(rows, 5, row));
        keep_min(&mut call.platform, text(rows, 6, row));
        keep_min(&mut call.sdk_version, text(rows, 7, row));
        keep_min(&mut call.os, text(rows, 8, row));
        call.error_codes.extend(code);
    }
}

fn telnyx(rows: &Rows, into: &mut Collected) {
    for &row in rows.in_window() {
        let kind = text(rows, 1, row).unwrap_or_default().to_string();
        let name = text(rows, 2, row).unwrap_or_default().to_string();
        *into.telnyx.entry((kind, name)).or_default() += 1;
    }
}
