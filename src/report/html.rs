//! The report as one self-contained HTML page: inline CSS and SVG charts, no script, no
//! fonts or images from anywhere (its Content-Security-Policy forbids both). Every string
//! from the data goes through maud's escaping.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::figures::{DayQuantiles, Figures, Group, SeriesFigure};

/// The page's style (our own constant text, not data).
const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
h3{font-size:14px;margin:14px 0 4px}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{padding:3px 9px;border-bottom:1px solid #eceff4;text-align:right;white-space:nowrap}
th{background:#f4f6f9;font-weight:600}td.t,th.t{text-align:left}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:8px 0}dt{color:#5b6577}dd{margin:0}
.absent{color:#5b6577;font-style:italic}.empty{background:#fff4d6;border:1px solid #e8cf7a;padding:8px 12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:10px 18px}.grid>div{overflow-x:auto}
svg{display:block;max-width:100%}svg text{font:11px system-ui,sans-serif;fill:#5b6577}
.key span{display:inline-block;margin-right:12px;font-size:12px}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
small{color:#5b6577}
";

const BLUE: &str = "#3b6fd8";
const COLORS: [&str; 7] = [
    "#3b6fd8", "#d8593b", "#2e9e6b", "#9b59b6", "#c99a1e", "#5b6577", "#1fa2b8",
];

/// Renders the page.
pub fn render(f: &Figures) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy"
                    content="default-src 'none'; style-src 'unsafe-inline'; img-src data:";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Call quality · " (f.job) " · " (f.window.from) " – " (f.window.to) }
                style { (PreEscaped(CSS)) }
            }
            body {
                (header(f))
                (calls(f))
                (mos(f))
                (network(f))
                (tags(f))
                (worst(f))
                (breakdowns(f))
                (events(f))
            }
        }
    }
    .into_string()
}

fn num(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn opt(value: Option<f64>) -> String {
    value.map(num).unwrap_or_else(|| "–".into())
}

fn pct(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

fn absent(table: &str) -> Markup {
    html! { p.absent { "No " code { (table) } " table in this lake: section skipped." } }
}

fn header(f: &Figures) -> Markup {
    html! {
        h1 { "Call quality report" }
        dl {
            dt { "Job" } dd { (f.job) }
            dt { "Lake" } dd { code { (f.lake) } }
            dt { "Window" } dd { (f.window.from) " – " (f.window.to) " " small { "(" (f.window.chosen) ")" } }
            dt { "Last commit" } dd { (f.last_commit.clone().unwrap_or_else(|| "none recorded".into())) }
            dt { "Rows read" } dd { (f.rows_read) }
        }
        table {
            tr { th.t { "Table" } th { "Files" } th { "Rows in window" } }
            @for t in &f.tables {
                tr {
                    td.t { code { (t.table) } }
                    @if t.present { td { (t.files) } td { (t.rows) } }
                    @else { td { "–" } td.t { small { "not in the lake" } } }
                }
            }
        }
        @if f.rows_read == 0 {
            p.empty { "No data in this window: the lake holds no rows between "
                (f.window.from) " and " (f.window.to) "." }
        }
    }
}

/// Vertical bars with a label under each (every `label_every`th) and the value on hover.
fn bars(values: &[(String, f64)], label_every: usize) -> Markup {
    let (width, height, pad) = (640.0, 150.0, 22.0);
    let max = values.iter().map(|v| v.1).fold(0.0f64, f64::max).max(1.0);
    let step = (width - 40.0) / values.len().max(1) as f64;
    html! {
        svg viewBox={"0 0 " (width) " " (height + pad)} width=(width) height=(height + pad) role="img" {
            line x1="36" y1=(height) x2=(width) y2=(height) stroke="#c9ced8" {}
            text x="0" y="10" { (num(max)) }
            text x="0" y=(height) { "0" }
            @for (i, (label, value)) in values.iter().enumerate() {
                @let h = value / max * (height - 12.0);
                @let x = 40.0 + step * i as f64;
                rect x=(x) y=(height - h) width=((step * 0.8).max(1.0)) height=(h) fill=(BLUE) {
                    title { (label) ": " (num(*value)) }
                }
                @if i % label_every.max(1) == 0 {
                    text x=(x) y=(height + 14.0) { (label) }
                }
            }
        }
    }
}

/// Lines of daily values, one per series, with a key.
fn lines(days: &[String], series: &[(String, Vec<Option<f64>>)]) -> Markup {
    let (width, height) = (330.0, 140.0);
    let values = series.iter().flat_map(|s| s.1.iter().flatten().copied());
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let (low, high) = if low.is_finite() {
        (low, if high > low { high } else { low + 1.0 })
    } else {
        (0.0, 1.0)
    };
    let x =
        |i: usize| 42.0 + (width - 50.0) * i as f64 / days.len().saturating_sub(1).max(1) as f64;
    let y = |v: f64| 8.0 + (height - 28.0) * (1.0 - (v - low) / (high - low));
    html! {
        svg viewBox={"0 0 " (width) " " (height)} width=(width) height=(height) role="img" {
            line x1="40" y1=(height - 20.0) x2=(width) y2=(height - 20.0) stroke="#c9ced8" {}
            text x="0" y="12" { (num(high)) }
            text x="0" y=(height - 20.0) { (num(low)) }
            @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                text x="42" y=(height - 5.0) { (first) }
                text x=(width - 70.0) y=(height - 5.0) { (last) }
            }
            @for (k, (name, points)) in series.iter().enumerate() {
                @let color = COLORS[k % COLORS.len()];
                @let path: Vec<String> = points.iter().enumerate()
                    .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v)))).collect();
                polyline points=(path.join(" ")) fill="none" stroke=(color) stroke-width="2" {}
                @for (i, v) in points.iter().enumerate() {
                    @if let Some(v) = v {
                        circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="2.5" fill=(color) {
                            title { (name) " " (days.get(i).cloned().unwrap_or_default()) ": " (num(*v)) }
                        }
                    }
                }
            }
        }
        p.key { @for (k, (name, _)) in series.iter().enumerate() {
            span { i style={"background:" (COLORS[k % COLORS.len()])} {} (name) }
        } }
    }
}

fn calls(f: &Figures) -> Markup {
    html! {
        h2 { "Calls" }
        @match &f.calls {
            None => (absent("calls")),
            Some(c) => {
                p { (c.total) " calls " small { "(from " code { (c.source) } ")" } }
                h3 { "Per day" }
                (bars(&c.per_day.iter().map(|d| (d.date.clone(), d.count as f64)).collect::<Vec<_>>(), 1))
                h3 { "Per hour of day (UTC)" }
                (bars(&c.per_hour.iter().enumerate().map(|(h, n)| (format!("{h:02}"), *n as f64)).collect::<Vec<_>>(), 3))
                table {
                    tr { th.t { "Day" } th { "Calls" } }
                    @for d in &c.per_day { tr { td.t { (d.date) } td { (d.count) } } }
                }
            }
        }
    }
}

fn quantile_table(daily: &[DayQuantiles], with_p5: bool) -> Markup {
    html! {
        table {
            tr { th.t { "Day" } th { "Samples" } @if with_p5 { th { "p5" } } th { "p50" } th { "p95" } }
            @for d in daily {
                tr { td.t { (d.date) } td { (d.samples) } @if with_p5 { td { (opt(d.p5)) } }
                     td { (opt(d.p50)) } td { (opt(d.p95)) } }
            }
        }
    }
}

fn mos(f: &Figures) -> Markup {
    html! {
        h2 { "MOS (SDK edge)" }
        @match &f.mos {
            None => (absent("insights_metrics")),
            Some(m) if m.samples == 0 => p.absent { "No MOS samples in this window." },
            Some(m) => {
                p { (m.samples) " samples" }
                h3 { "Distribution" }
                (bars(&m.histogram.iter().map(|b| (format!("{:.2}", b.from), b.samples as f64)).collect::<Vec<_>>(), 2))
                h3 { "Per day" }
                (lines(&f.window.days, &[
                    ("p5".into(), m.daily.iter().map(|d| d.p5).collect()),
                    ("p50".into(), m.daily.iter().map(|d| d.p50).collect()),
                    ("p95".into(), m.daily.iter().map(|d| d.p95).collect()),
                ]))
                (quantile_table(&m.daily, true))
            }
        }
    }
}

fn series_block(f: &Figures, s: &SeriesFigure) -> Markup {
    html! {
        div {
            h3 { (s.edge) " · " (s.metric) @if !s.unit.is_empty() { " (" (s.unit) ")" } }
            (lines(&f.window.days, &[
                ("p50".into(), s.daily.iter().map(|d| d.p50).collect()),
                ("p95".into(), s.daily.iter().map(|d| d.p95).collect()),
            ]))
            small { code { (s.column) } }
            (quantile_table(&s.daily, false))
        }
    }
}

fn network(f: &Figures) -> Markup {
    html! {
        h2 { "Jitter, packet loss and latency per edge" }
        @if f.metrics.is_empty() {
            @if f.mos.is_none() { (absent("insights_metrics")) }
            @else { p.absent { "No jitter, loss or latency samples in this window." } }
        }
        div.grid { @for s in &f.metrics { (series_block(f, s)) } }
    }
}

fn tags(f: &Figures) -> Markup {
    html! {
        h2 { "Call tags" }
        @match &f.tags {
            None => (absent("call_summaries or insights_metrics")),
            Some(t) => {
                p { (t.calls) " calls with a summary or metrics; tags of " (t.from_summaries)
                    " from Twilio's call summary, of " (t.computed) " computed from metrics "
                    small { "(low_mos: mean MOS < " (num(f.thresholds.low_mos))
                    "; high_latency: mean RTT > " (num(f.thresholds.high_rtt_ms)) " ms; high_jitter: mean > "
                    (num(f.thresholds.high_jitter_avg_ms)) " ms and max > " (num(f.thresholds.high_jitter_max_ms))
                    " ms on an edge; high_packet_loss: mean > " (num(f.thresholds.high_packet_loss_pct)) " % on an edge)" } }
                (bars(&t.shares.iter().map(|s| (s.tag.clone(), s.share * 100.0)).collect::<Vec<_>>(), 1))
                table {
                    tr { th.t { "Tag" } th { "Calls" } th { "Share" } }
                    @for s in &t.shares { tr { td.t { (s.tag) } td { (s.calls) } td { (pct(s.share)) } } }
                }
                h3 { "Trend (share of the day's calls)" }
                @let seen: Vec<&str> = t.shares.iter().filter(|s| s.calls > 0).map(|s| s.tag.as_str()).collect();
                (lines(&f.window.days, &seen.iter().map(|tag| ((*tag).to_string(), t.daily.iter()
                    .map(|d| (d.calls > 0).then(|| d.tagged.get(*tag).copied().unwrap_or(0) as f64 / d.calls as f64 * 100.0))
                    .collect())).collect::<Vec<_>>()))
                table {
                    tr { th.t { "Day" } th { "Calls" } @for tag in &seen { th { (tag) } } }
                    @for d in &t.daily {
                        tr { td.t { (d.date) } td { (d.calls) }
                             @for tag in &seen { td { (d.tagged.get(*tag).copied().unwrap_or(0)) } } }
                    }
                }
            }
        }
    }
}

fn worst(f: &Figures) -> Markup {
    html! {
        h2 { "The 20 calls with the lowest MOS" }
        @match &f.worst_calls {
            None => (absent("insights_metrics")),
            Some(calls) if calls.is_empty() => p.absent { "No MOS samples in this window." },
            Some(calls) => table {
                tr { th.t { "Call" } th.t { "Start" } th { "Duration (s)" } th { "Min MOS" } th { "Mean MOS" }
                     th.t { "Edges" } th.t { "Country" } th.t { "SDK" } th.t { "OS" } th.t { "Errors" } }
                @for c in calls {
                    tr {
                        td.t { code { (c.call_sid) } }
                        td.t { (c.start.clone().unwrap_or_default()) }
                        td { (c.duration.map(|d| d.to_string()).unwrap_or_default()) }
                        td { (num(c.min_mos)) } td { (num(c.avg_mos)) }
                        td.t { (c.edges.join(", ")) }
                        td.t { (c.country.clone().unwrap_or_default()) }
                        td.t { (c.sdk.clone().unwrap_or_default()) }
                        td.t { (c.os.clone().unwrap_or_default()) }
                        td.t { (c.error_codes.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")) }
                    }
                }
            },
        }
    }
}

fn group_table(title: &str, groups: &Option<Vec<Group>>, source: &str) -> Markup {
    html! {
        h3 { (title) }
        @match groups {
            None => (absent(source)),
            Some(groups) if groups.is_empty() => p.absent { "No calls with this in the window." },
            Some(groups) => table {
                tr { th.t { "Group" } th { "Calls" } th { "Calls with MOS" } th { "Mean MOS" } th { "Tagged" } }
                @for g in groups {
                    tr { td.t { (g.key) } td { (g.calls) } td { (g.mos_calls) } td { (opt(g.mos_avg)) }
                         td { (g.tagged_share.map(pct).unwrap_or_else(|| "–".into())) } }
                }
            },
        }
    }
}

fn breakdowns(f: &Figures) -> Markup {
    html! {
        h2 { "Quality by group " small { "(the 15 largest groups; few calls make a noisy figure)" } }
        (group_table("By country", &f.by_country, "insights_events or call_summaries"))
        (group_table("By SDK platform or carrier", &f.by_platform, "insights_events or call_summaries"))
        (group_table("By SDK version", &f.by_sdk_version, "insights_events"))
    }
}

fn events(f: &Figures) -> Markup {
    html! {
        h2 { "Insights errors and warnings" }
        @match &f.insights_events {
            None => (absent("insights_events")),
            Some(events) if events.is_empty() => p.absent { "No errors or warnings in this window." },
            Some(events) => table {
                tr { th.t { "Level" } th { "Code" } th.t { "Name" } th { "Events" } th { "Calls" } }
                @for e in events {
                    tr { td.t { (e.level) } td { (e.code.map(|c| c.to_string()).unwrap_or_default()) }
                         td.t { (e.name) } td { (e.events) } td { (e.calls) } }
                }
            },
        }
        h2 { "Telnyx events" }
        @match &f.telnyx_events {
            None => (absent("telnyx_call_events")),
            Some(events) if events.is_empty() => p.absent { "No Telnyx events in this window." },
            Some(events) => table {
                tr { th.t { "Type" } th.t { "Name" } th { "Events" } }
                @for e in events { tr { td.t { (e.r#type) } td.t { (e.name) } td { (e.events) } } }
            },
        }
    }
}
