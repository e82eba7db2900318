//! The report's figures, computed from what was collected: the same numbers the HTML shows
//! and `--json` writes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::timefmt::day_to_string;

use super::collect::{CallFacts, Collected, EDGES, Edge, Metric};
use super::dist::Distribution;

/// Worst calls listed.
pub const WORST_CALLS: usize = 20;
/// Groups listed per breakdown.
pub const TOP_GROUPS: usize = 15;
/// MOS histogram: bins of 0.25 from 1.0 to 5.0.
pub const MOS_BINS: (f64, f64, usize) = (1.0, 0.25, 16);

/// Twilio's call tags (Voice Insights call-tags documentation), in the report's order.
pub const DOCUMENTED_TAGS: [&str; 7] = [
    "low_mos",
    "high_latency",
    "high_jitter",
    "high_packet_loss",
    "high_pdd",
    "silence",
    "ice_failure",
];

/// The thresholds of the tags computed from metrics for calls without a call summary;
/// defaults as Twilio documents them.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Thresholds {
    /// `low_mos`: the call's mean SDK MOS below this.
    pub low_mos: f64,
    /// `high_latency`: the call's mean SDK RTT above this (ms).
    pub high_rtt_ms: f64,
    /// `high_jitter`: mean jitter above this (ms) …
    pub high_jitter_avg_ms: f64,
    /// … and maximum jitter above this (ms), on one edge.
    pub high_jitter_max_ms: f64,
    /// `high_packet_loss`: an edge's mean packet loss above this (%).
    pub high_packet_loss_pct: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            low_mos: 3.5,
            high_rtt_ms: 400.0,
            high_jitter_avg_ms: 5.0,
            high_jitter_max_ms: 30.0,
            high_packet_loss_pct: 5.0,
        }
    }
}

impl Thresholds {
    /// Applies `--threshold name=value` settings.
    pub fn with(mut self, settings: &[String]) -> Result<Thresholds> {
        for setting in settings {
            let bad = || {
                Error::Input(format!(
                    "--threshold {setting:?}: give name=value with a name of low_mos, \
                     high_rtt_ms, high_jitter_avg_ms, high_jitter_max_ms, high_packet_loss_pct"
                ))
            };
            let (name, value) = setting.split_once('=').ok_or_else(bad)?;
            let value: f64 = value.trim().parse().map_err(|_| bad())?;
            if !value.is_finite() {
                return Err(bad());
            }
            let slot = match name.trim() {
                "low_mos" => &mut self.low_mos,
                "high_rtt_ms" => &mut self.high_rtt_ms,
                "high_jitter_avg_ms" => &mut self.high_jitter_avg_ms,
                "high_jitter_max_ms" => &mut self.high_jitter_max_ms,
                "high_packet_loss_pct" => &mut self.high_packet_loss_pct,
                _ => return Err(bad()),
            };
            *slot = value;
        }
        Ok(self)
    }

    /// A call's tags computed from its metrics (None without metrics).
    pub fn tags_from_metrics(&self, call: &CallFacts) -> Option<BTreeSet<String>> {
        if call.edges == 0 {
            return None;
        }
        let mut tags = BTreeSet::new();
        let above = |mean: Option<f64>, limit: f64| mean.is_some_and(|m| m > limit);
        if call.mos.mean().is_some_and(|m| m < self.low_mos) {
            tags.insert("low_mos");
        }
        if above(call.rtt.mean(), self.high_rtt_ms) {
            tags.insert("high_latency");
        }
        let jitter = |avg: Option<f64>, max: Option<f64>| {
            above(avg, self.high_jitter_avg_ms) && above(max, self.high_jitter_max_ms)
        };
        let sdk = &call.sdk_jitter;
        if jitter(sdk.mean(), sdk.max)
            || call
                .gateways
                .iter()
                .any(|g| jitter(g.jitter_avg.mean(), g.jitter_max.max))
        {
            tags.insert("high_jitter");
        }
        let losses = std::iter::once(&call.sdk_loss).chain(call.gateways.iter().map(|g| &g.loss));
        if losses
            .into_iter()
            .any(|l| above(l.mean(), self.high_packet_loss_pct))
        {
            tags.insert("high_packet_loss");
        }
        Some(tags.into_iter().map(str::to_string).collect())
    }
}

/// The report's window and where it came from.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    /// Start (RFC 3339).
    pub from: String,
    /// End, exclusive.
    pub to: String,
    /// The days in it.
    pub days: Vec<String>,
    /// `given` (--from/--to) or `last 7 days with data`.
    pub chosen: String,
}

/// A table's part in the report.
#[derive(Clone, Debug, Serialize)]
pub struct TableFigure {
    /// Table.
    pub table: String,
    /// Whether the lake has it.
    pub present: bool,
    /// Files read.
    pub files: u64,
    /// Rows read in the window.
    pub rows: u64,
}

/// A count on a day.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Count.
    pub count: u64,
}

/// Calls per day and per hour of day.
#[derive(Clone, Debug, Serialize)]
pub struct CallCounts {
    /// `calls` (its start times) or `insights` (distinct call SIDs, by their first row).
    pub source: String,
    /// Calls in the window.
    pub total: u64,
    /// Per day.
    pub per_day: Vec<DayCount>,
    /// Per UTC hour of day (24).
    pub per_hour: Vec<u64>,
}

/// Quantiles of a day's samples.
#[derive(Clone, Debug, Serialize)]
pub struct DayQuantiles {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Samples.
    pub samples: u64,
    /// 5th percentile.
    pub p5: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
}

/// A histogram bin.
#[derive(Clone, Debug, Serialize)]
pub struct Bin {
    /// Lower edge (the first bin also holds values below it).
    pub from: f64,
    /// Upper edge, exclusive (the last bin also holds values at or above it).
    pub to: f64,
    /// Samples.
    pub samples: u64,
}

/// MOS over the window.
#[derive(Clone, Debug, Serialize)]
pub struct MosFigure {
    /// Samples.
    pub samples: u64,
    /// Histogram.
    pub histogram: Vec<Bin>,
    /// Per day.
    pub daily: Vec<DayQuantiles>,
}

/// One metric of one edge, per day.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesFigure {
    /// Edge.
    pub edge: String,
    /// Metric.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// The column the samples are from.
    pub column: String,
    /// Per day.
    pub daily: Vec<DayQuantiles>,
}

/// A tag's share of calls.
#[derive(Clone, Debug, Serialize)]
pub struct TagShare {
    /// Tag.
    pub tag: String,
    /// Calls with it.
    pub calls: u64,
    /// Their share of calls with tags evidence.
    pub share: f64,
}

/// Tags of the calls of one day.
#[derive(Clone, Debug, Serialize)]
pub struct TagDay {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Calls with tag evidence.
    pub calls: u64,
    /// Calls per tag.
    pub tagged: BTreeMap<String, u64>,
}

/// Call tags.
#[derive(Clone, Debug, Serialize)]
pub struct TagFigures {
    /// Calls with a summary or metrics (the denominator of the shares).
    pub calls: u64,
    /// Of which tags came from the call summary.
    pub from_summaries: u64,
    /// Of which tags were computed from metrics.
    pub computed: u64,
    /// Calls with any tag.
    pub tagged_calls: u64,
    /// Per tag.
    pub shares: Vec<TagShare>,
    /// Per day of the calls.
    pub daily: Vec<TagDay>,
}

/// One of the worst calls.
#[derive(Clone, Debug, Serialize)]
pub struct WorstCall {
    /// Call SID.
    pub call_sid: String,
    /// Start (RFC 3339): from `calls`/`call_summaries`, else its first sample.
    pub start: Option<String>,
    /// Seconds.
    pub duration: Option<i64>,
    /// Its lowest SDK MOS sample.
    pub min_mos: f64,
    /// Its mean MOS.
    pub avg_mos: f64,
    /// Edges with metrics.
    pub edges: Vec<String>,
    /// Country.
    pub country: Option<String>,
    /// SDK platform and version.
    pub sdk: Option<String>,
    /// OS.
    pub os: Option<String>,
    /// SDK error codes.
    pub error_codes: Vec<i64>,
}

/// Quality of one group of calls.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// The group (country code, platform or carrier, SDK version).
    pub key: String,
    /// Calls.
    pub calls: u64,
    /// Calls with MOS samples.
    pub mos_calls: u64,
    /// Mean of their MOS samples.
    pub mos_avg: Option<f64>,
    /// Share of its calls with tag evidence that carry a tag.
    pub tagged_share: Option<f64>,
}

/// Insights events of one level, code and name.
#[derive(Clone, Debug, Serialize)]
pub struct EventFigure {
    /// `ERROR` or `WARNING` (or another level, with an error code).
    pub level: String,
    /// SDK error code.
    pub code: Option<i64>,
    /// Event name.
    pub name: String,
    /// Events.
    pub events: u64,
    /// Calls with one.
    pub calls: u64,
}

/// Telnyx events of one type and name.
#[derive(Clone, Debug, Serialize)]
pub struct TelnyxFigure {
    /// `webhook` or `command`.
    pub r#type: String,
    /// Event name.
    pub name: String,
    /// Events.
    pub events: u64,
}

/// Everything the report shows. A section is None when its table is not in the lake.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    /// The job.
    pub job: String,
    /// The lake.
    pub lake: String,
    /// The window.
    pub window: Window,
    /// When the lake was last committed to (from the newest manifest with commits).
    pub last_commit: Option<String>,
    /// Tables read.
    pub tables: Vec<TableFigure>,
    /// Rows read in all.
    pub rows_read: u64,
    /// Calls per day and hour.
    pub calls: Option<CallCounts>,
    /// MOS.
    pub mos: Option<MosFigure>,
    /// Jitter, packet loss and latency per edge.
    pub metrics: Vec<SeriesFigure>,
    /// Tags.
    pub tags: Option<TagFigures>,
    /// Thresholds of the computed tags.
    pub thresholds: Thresholds,
    /// The calls with the lowest MOS.
    pub worst_calls: Option<Vec<WorstCall>>,
    /// By country.
    pub by_country: Option<Vec<Group>>,
    /// By SDK platform (SDK calls) or the caller's carrier (others).
    pub by_platform: Option<Vec<Group>>,
    /// By SDK version.
    pub by_sdk_version: Option<Vec<Group>>,
    /// Insights errors and warnings.
    pub insights_events: Option<Vec<EventFigure>>,
    /// Telnyx events.
    pub telnyx_events: Option<Vec<TelnyxFigure>>,
}

/// Which of the report's tables the lake has.
#[derive(Clone, Copy, Debug, Default)]
pub struct Present {
    /// `calls`.
    pub calls: bool,
    /// `call_summaries`.
    pub summaries: bool,
    /// `insights_metrics`.
    pub metrics: bool,
    /// `insights_events`.
    pub events: bool,
    /// `telnyx_call_events`.
    pub telnyx: bool,
}

fn quantiles(day: i32, dist: &Distribution) -> DayQuantiles {
    DayQuantiles {
        date: day_to_string(day),
        samples: dist.len(),
        p5: dist.quantile(0.05),
        p50: dist.quantile(0.5),
        p95: dist.quantile(0.95),
    }
}

/// Per day quantiles of every day of the window (days without samples have none).
fn daily(days: &[i32], by_day: Option<&BTreeMap<i32, Distribution>>) -> Vec<DayQuantiles> {
    let empty = Distribution::default();
    days.iter()
        .map(|day| quantiles(*day, by_day.and_then(|d| d.get(day)).unwrap_or(&empty)))
        .collect()
}

/// The columns each series is read from.
fn series_column(edge: Edge, metric: Metric) -> String {
    match (edge, metric) {
        (Edge::Sdk, Metric::Mos) => "sdk_edge__interval__mos".into(),
        (Edge::Sdk, Metric::Latency) => "sdk_edge__interval__rtt".into(),
        (Edge::Sdk, Metric::Jitter) => "sdk_edge__interval__jitter".into(),
        (e, Metric::Latency) => format!(
            "call_summaries.{}__metrics__inbound__latency__avg",
            e.name()
        ),
        (e, Metric::Jitter) => format!("{}__interval__jitter__avg", e.name()),
        (e, _) => format!("{}__interval__packets_loss_percentage", e.name()),
    }
}

/// The call's tags: Twilio's from its summary, else computed from its metrics.
fn tags_of(call: &CallFacts, thresholds: &Thresholds) -> Option<(BTreeSet<String>, bool)> {
    match &call.summary_tags {
        Some(tags) => Some((tags.clone(), true)),
        None => thresholds.tags_from_metrics(call).map(|t| (t, false)),
    }
}

/// Computes the figures.
pub fn compute(
    collected: &Collected,
    present: Present,
    days: &[i32],
    thresholds: &Thresholds,
) -> (
    Option<CallCounts>,
    Option<MosFigure>,
    Vec<SeriesFigure>,
    Option<TagFigures>,
) {
    let calls = call_counts(collected, present, days);
    let mos = present.metrics.then(|| mos_figure(collected, days));
    let metrics = series_figures(collected, present, days);
    let tags =
        (present.metrics || present.summaries).then(|| tag_figures(collected, days, thresholds));
    (calls, mos, metrics, tags)
}

fn call_counts(collected: &Collected, present: Present, days: &[i32]) -> Option<CallCounts> {
    if present.calls {
        let per_day = days
            .iter()
            .map(|d| DayCount {
                date: day_to_string(*d),
                count: collected.calls_per_day.get(d).copied().unwrap_or(0),
            })
            .collect::<Vec<_>>();
        return Some(CallCounts {
            source: "calls".into(),
            total: per_day.iter().map(|d| d.count).sum(),
            per_day,
            per_hour: collected.calls_per_hour.to_vec(),
        });
    }
    if !(present.metrics || present.events) {
        return None;
    }
    let mut per_day: BTreeMap<i32, u64> = BTreeMap::new();
    let mut per_hour = vec![0u64; 24];
    for call in collected.calls.values().filter(|c| c.in_insights) {
        let Some(first) = call.first_seen else {
            continue;
        };
        *per_day
            .entry(crate::timefmt::micros_to_day(first))
            .or_default() += 1;
        let hour = first.rem_euclid(86_400_000_000) / 3_600_000_000;
        if let Some(slot) = per_hour.get_mut(hour as usize) {
            *slot += 1;
        }
    }
    let per_day: Vec<DayCount> = days
        .iter()
        .map(|d| DayCount {
            date: day_to_string(*d),
            count: per_day.get(d).copied().unwrap_or(0),
        })
        .collect();
    Some(CallCounts {
        source: "insights".into(),
        total: per_day.iter().map(|d| d.count).sum(),
        per_day,
        per_hour,
    })
}

fn mos_figure(collected: &Collected, days: &[i32]) -> MosFigure {
    let by_day = collected.series.get(&(Edge::Sdk, Metric::Mos));
    let mut all = Distribution::default();
    for dist in by_day.into_iter().flat_map(|d| d.values()) {
        all.merge(dist.clone());
    }
    let (first, width, bins) = MOS_BINS;
    let histogram = all
        .histogram(first, width, bins)
        .into_iter()
        .enumerate()
        .map(|(i, samples)| Bin {
            from: first + width * i as f64,
            to: first + width * (i + 1) as f64,
            samples,
        })
        .collect();
    MosFigure {
        samples: all.len(),
        histogram,
        daily: daily(days, by_day),
    }
}

fn series_figures(collected: &Collected, present: Present, days: &[i32]) -> Vec<SeriesFigure> {
    let mut figures = Vec::new();
    for metric in [Metric::Jitter, Metric::Loss, Metric::Latency] {
        for edge in EDGES {
            let from_summaries = edge != Edge::Sdk && metric == Metric::Latency;
            let table_present = if from_summaries {
                present.summaries
            } else {
                present.metrics
            };
            let by_day = collected.series.get(&(edge, metric));
            if !table_present || by_day.is_none_or(|d| d.values().all(Distribution::is_empty)) {
                continue;
            }
            figures.push(SeriesFigure {
                edge: edge.name().into(),
                metric: metric.name().into(),
                unit: metric.unit().into(),
                column: series_column(edge, metric),
                daily: daily(days, by_day),
            });
        }
    }
    figures
}

fn tag_figures(collected: &Collected, days: &[i32], thresholds: &Thresholds) -> TagFigures {
    let mut figures = TagFigures {
        calls: 0,
        from_summaries: 0,
        computed: 0,
        tagged_calls: 0,
        shares: Vec::new(),
        daily: Vec::new(),
    };
    let mut per_tag: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_day: BTreeMap<i32, TagDay> = days
        .iter()
        .map(|d| {
            (
                *d,
                TagDay {
                    date: day_to_string(*d),
                    calls: 0,
                    tagged: BTreeMap::new(),
                },
            )
        })
        .collect();
    for call in collected.calls.values() {
        let Some((tags, from_summary)) = tags_of(call, thresholds) else {
            continue;
        };
        figures.calls += 1;
        if from_summary {
            figures.from_summaries += 1;
        } else {
            figures.computed += 1;
        }
        if !tags.is_empty() {
            figures.tagged_calls += 1;
        }
        let day = call.first_seen.map(crate::timefmt::micros_to_day);
        let mut today = day.and_then(|d| per_day.get_mut(&d));
        if let Some(today) = today.as_mut() {
            today.calls += 1;
        }
        for tag in tags {
            if let Some(today) = today.as_mut() {
                *today.tagged.entry(tag.clone()).or_default() += 1;
            }
            *per_tag.entry(tag).or_default() += 1;
        }
    }
    let documented = DOCUMENTED_TAGS.iter().map(|t| t.to_string());
    let others: Vec<String> = per_tag
        .keys()
        .filter(|t| !DOCUMENTED_TAGS.contains(&t.as_str()))
        .cloned()
        .collect();
    let denominator = figures.calls.max(1) as f64;
    figures.shares = documented
        .chain(others)
        .map(|tag| {
            let calls = per_tag.get(&tag).copied().unwrap_or(0);
            TagShare {
                tag,
                calls,
                share: calls as f64 / denominator,
            }
        })
        .collect();
    figures.daily = per_day.into_values().collect();
    figures
}

/// The worst calls by their lowest MOS sample (ties by call SID).
pub fn worst_calls(collected: &Collected) -> Vec<WorstCall> {
    let mut with_mos: Vec<(&String, &CallFacts, f64)> = collected
        .calls
        .iter()
        .filter_map(|(sid, c)| c.mos.min.map(|m| (sid, c, m)))
        .collect();
    with_mos.sort_by(|a, b| a.2.total_cmp(&b.2).then_with(|| a.0.cmp(b.0)));
    with_mos
        .into_iter()
        .take(WORST_CALLS)
        .map(|(sid, call, min_mos)| WorstCall {
            call_sid: sid.clone(),
            start: call.start.or(call.first_seen).map(micros_rfc3339),
            duration: call.duration,
            min_mos,
            avg_mos: call.mos.mean().unwrap_or(min_mos),
            edges: call.edge_names().into_iter().map(str::to_string).collect(),
            country: call
                .country
                .clone()
                .or_else(|| call.summary_country.clone()),
            sdk: sdk_label(call),
            os: call.os.clone(),
            error_codes: call.error_codes.iter().copied().collect(),
        })
        .collect()
}

fn sdk_label(call: &CallFacts) -> Option<String> {
    match (&call.platform, &call.sdk_version) {
        (Some(p), Some(v)) => Some(format!("{p} {v}")),
        (p, v) => p.clone().or_else(|| v.clone()),
    }
}

fn micros_rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Quality per group of calls: the `TOP_GROUPS` largest by calls (ties by key). Calls
/// without a key are not in any group.
pub fn groups(
    collected: &Collected,
    thresholds: &Thresholds,
    key: impl Fn(&CallFacts) -> Option<String>,
) -> Vec<Group> {
    #[derive(Default)]
    struct Acc {
        calls: u64,
        mos_calls: u64,
        mos: super::dist::Stat,
        evidence: u64,
        tagged: u64,
    }
    let mut by_key: BTreeMap<String, Acc> = BTreeMap::new();
    for call in collected.calls.values() {
        let Some(k) = key(call) else { continue };
        let acc = by_key.entry(k).or_default();
        acc.calls += 1;
        if call.mos.n > 0 {
            acc.mos_calls += 1;
            acc.mos.merge(call.mos);
        }
        if let Some((tags, _)) = tags_of(call, thresholds) {
            acc.evidence += 1;
            acc.tagged += u64::from(!tags.is_empty());
        }
    }
    let mut groups: Vec<Group> = by_key
        .into_iter()
        .map(|(key, acc)| Group {
            key,
            calls: acc.calls,
            mos_calls: acc.mos_calls,
            mos_avg: acc.mos.mean(),
            tagged_share: (acc.evidence > 0).then(|| acc.tagged as f64 / acc.evidence as f64),
        })
        .collect();
    groups.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.key.cmp(&b.key)));
    groups.truncate(TOP_GROUPS);
    groups
}

/// A call's country: the SDK's, else the caller's from the call summary.
pub fn country_of(call: &CallFacts) -> Option<String> {
    call.country
        .clone()
        .or_else(|| call.summary_country.clone())
}

/// A call's SDK platform, else its caller's carrier.
pub fn platform_of(call: &CallFacts) -> Option<String> {
    call.platform
        .as_ref()
        .map(|p| format!("sdk: {p}"))
        .or_else(|| call.carrier.as_ref().map(|c| format!("carrier: {c}")))
}

/// A call's SDK platform and version.
pub fn sdk_version_of(call: &CallFacts) -> Option<String> {
    call.sdk_version.as_ref()?;
    sdk_label(call)
}

/// Insights errors and warnings, most events first (ties by level, code, name).
pub fn event_figures(collected: &Collected) -> Vec<EventFigure> {
    let mut events: Vec<EventFigure> = collected
        .events
        .iter()
        .map(|((level, code, name), group)| EventFigure {
            level: level.clone(),
            code: *code,
            name: name.clone(),
            events: group.events,
            calls: group.calls.len() as u64,
        })
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.events));
    events
}

/// Telnyx events by type and name, most first.
pub fn telnyx_figures(collected: &Collected) -> Vec<TelnyxFigure> {
    let mut events: Vec<TelnyxFigure> = collected
        .telnyx
        .iter()
        .map(|((kind, name), n)| TelnyxFigure {
            r#type: kind.clone(),
            name: name.clone(),
            events: *n,
        })
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.events));
    events
}
