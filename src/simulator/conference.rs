//! Conference Insights records (`/v1/Conferences…`): conference summaries with the fields of
//! the `insights.v1.conference` schema and participant summaries with those of
//! `insights.v1.conference.conference_participant`.
//!
//! A conference's timeline (who joins when, who starts and ends it) is planned once when the
//! model is built and kept small in [`SimConference`]; everything else (regions, labels, mute
//! events, quality metrics) is rebuilt on demand from (account seed, conference index,
//! participant index). A participant's inbound packet totals are those of its call's Insights
//! summary, so the two APIs agree.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::config::CallType;
use super::facts::{CallFacts, call_facts};
use super::insights::{secs, stream_totals};
use super::model::{Ctx, SimAccount, SimCall, SimConference, SimParticipant};
use super::rng::{Rng, hash, round, tag};

/// The call types a participant can have (`call_type` `carrier`, `sip`, `client`).
const PARTICIPANT_TYPES: [CallType; 3] = [CallType::Carrier, CallType::Sip, CallType::Client];
/// Mixer and participant regions, the first (most common) repeated.
const REGIONS: [&str; 8] = ["us1", "us1", "us1", "us2", "ie1", "de1", "au1", "jp1"];
const NAMES: [&str; 6] = [
    "daily-standup",
    "support-escalation",
    "sales-demo",
    "incident-bridge",
    "customer-onboarding",
    "team-sync",
];
const LABELS: [&str; 4] = ["customer", "agent", "supervisor", "expert"];
const JITTER_BUFFERS: [&str; 4] = ["large", "small", "medium", "off"];
/// Packets per second of 20 ms audio.
const PACKETS_PER_SEC: u64 = 50;

/// One conference summary.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConferenceRecord<'a> {
    conference_sid: &'a str,
    account_sid: &'a str,
    friendly_name: &'a str,
    start_time: Option<String>,
    create_time: String,
    end_time: String,
    duration_seconds: u64,
    connect_duration_seconds: u64,
    status: &'static str,
    max_participants: u32,
    max_concurrent_participants: usize,
    unique_participants: usize,
    end_reason: &'static str,
    ended_by: &'a str,
    mixer_region: &'static str,
    mixer_region_requested: Option<&'static str>,
    recording_enabled: bool,
    processing_state: &'static str,
    detected_issues: DetectedIssues,
    tags: Option<Vec<&'static str>>,
    tag_info: Option<()>,
    url: String,
    links: ConferenceLinks,
}

/// The filters of the conference list beyond the creation window and the account.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConferenceFilter<'a> {
    pub conference_sid: Option<&'a str>,
    pub friendly_name: Option<&'a str>,
    pub status: Option<&'a str>,
    pub mixer_region: Option<&'a str>,
    pub end_reason: Option<&'a str>,
    /// Every one of these tags (comma-separated in `Tags`) must be present.
    pub tags: Vec<&'a str>,
    /// `call_quality`, `region_configuration` or `participant_behavior`: its count is > 0.
    pub detected_issues: Option<&'a str>,
}

impl ConferenceFilter<'_> {
    /// Whether a conference passes the filters decided by the model alone.
    pub(crate) fn keeps(&self, conference: &SimConference) -> bool {
        self.conference_sid.is_none_or(|s| conference.sid == s)
            && self
                .friendly_name
                .is_none_or(|f| conference.friendly_name == f)
    }

    /// Whether some filter needs the conference's summary.
    pub(crate) fn needs_summary(&self) -> bool {
        self.status.is_some()
            || self.mixer_region.is_some()
            || self.end_reason.is_some()
            || !self.tags.is_empty()
            || self.detected_issues.is_some()
    }

    /// Whether a summary passes the filters that need it.
    pub(crate) fn keeps_summary(&self, record: &ConferenceRecord<'_>) -> bool {
        let issue = |name: &str| match name {
            "call_quality" => record.detected_issues.call_quality > 0,
            "region_configuration" => record.detected_issues.region_configuration > 0,
            "participant_behavior" => record.detected_issues.participant_behavior > 0,
            _ => false,
        };
        let tags = record.tags.as_deref().unwrap_or(&[]);
        self.status.is_none_or(|s| record.status == s)
            && self.mixer_region.is_none_or(|m| record.mixer_region == m)
            && self.end_reason.is_none_or(|e| record.end_reason == e)
            && self.tags.iter().all(|t| tags.contains(t))
            && self.detected_issues.is_none_or(issue)
    }
}

impl ParticipantRecord<'_> {
    /// Whether the participant passes the list's `Label` and `ParticipantSid` filters.
    pub(crate) fn keeps(&self, label: Option<&str>, participant_sid: Option<&str>) -> bool {
        label.is_none_or(|l| self.label == Some(l))
            && participant_sid.is_none_or(|s| self.participant_sid == s)
    }
}

/// Counts of participants with each kind of issue.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct DetectedIssues {
    pub call_quality: u32,
    pub region_configuration: u32,
    pub participant_behavior: u32,
}

#[derive(Debug, Clone, Serialize)]
struct ConferenceLinks {
    conference_participants: String,
}

/// One participant summary.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ParticipantRecord<'a> {
    participant_sid: &'a str,
    label: Option<&'static str>,
    conference_sid: &'a str,
    call_sid: &'a str,
    account_sid: &'a str,
    call_direction: &'static str,
    from: String,
    to: String,
    call_status: &'static str,
    country_code: &'static str,
    is_moderator: bool,
    join_time: String,
    leave_time: String,
    duration_seconds: u64,
    outbound_queue_length: Option<u32>,
    outbound_time_in_queue: Option<u64>,
    jitter_buffer_size: Option<&'static str>,
    is_coach: bool,
    coached_participants: Option<Vec<&'a str>>,
    participant_region: &'static str,
    conference_region: &'static str,
    call_type: &'static str,
    processing_state: &'static str,
    properties: ParticipantProperties,
    events: Option<BTreeMap<&'static str, Vec<i64>>>,
    metrics: ParticipantMetrics,
    url: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct ParticipantProperties {
    start_conference_on_enter: bool,
    end_conference_on_exit: bool,
    play_early_media: bool,
    enter_muted: bool,
    beep_on_enter: bool,
    beep_on_exit: bool,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct ParticipantMetrics {
    inbound: StreamMetrics,
    outbound: StreamMetrics,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct StreamMetrics {
    total_packets_lost: u64,
    total_packets_received: u64,
    packet_loss_percentage: f64,
    jitter: AvgMax,
    latency: AvgMax,
    mos: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct AvgMax {
    avg: f64,
    max: f64,
}

/// A 34-character SID: `prefix` + two hashes of `parts`.
fn sid(prefix: &str, parts: &[u64]) -> String {
    let mut a = parts.to_vec();
    a.push(0);
    let mut b = parts.to_vec();
    b.push(1);
    format!("{prefix}{:016x}{:016x}", hash(&a), hash(&b))
}

/// Plans conference `j` of `account`: created in `[from, to)`, 2 to 5 participants (3 to 5
/// for the first, which has a carrier, a SIP and a client participant). Participant 0 is the
/// moderator (`start_conference_on_enter`, unless the conference never starts) and stays
/// until everyone has joined; with `end_conference_on_exit` its leaving ends the conference.
/// `first_call` is the model index the participants' calls will get.
pub(crate) fn plan(
    account: &SimAccount,
    j: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    first_call: usize,
) -> SimConference {
    let seed = account.seed;
    let jj = j as u64;
    let mut r = Rng::new(&[seed, tag::CONFERENCE, jj]);
    let span = (to - from).num_seconds().max(1) as u64;
    let create_time = from + Duration::seconds(r.below(span) as i64);
    let n = if j == 0 { r.range(3, 5) } else { r.range(2, 5) } as usize;
    let starts = j == 0 || r.chance(0.9);
    let ends_on_exit = starts && r.chance(0.3);
    let mut offsets = Vec::with_capacity(n);
    let mut offset = r.range(1, 4) as i64;
    for p in 0..n {
        if p > 0 {
            offset += r.range(1, 45) as i64;
        }
        offsets.push(offset);
    }
    let first = offsets.first().copied().unwrap_or(0);
    let last = offsets.last().copied().unwrap_or(0);
    let mut participants: Vec<SimParticipant> = (0..n)
        .map(|p| {
            let pp = p as u64;
            let call_type = match PARTICIPANT_TYPES.get(p) {
                Some(t) if j == 0 => *t,
                _ => r.pick(&PARTICIPANT_TYPES),
            };
            let at = offsets.get(p).copied().unwrap_or(last);
            // The moderator stays at least 30 s past the last join.
            let duration = if p == 0 {
                (last - first) + r.range(30, 1500) as i64
            } else {
                r.range(30, 1500) as i64
            };
            let join_time = create_time + Duration::seconds(at);
            SimParticipant {
                sid: sid("CP", &[seed, tag::PARTICIPANT_SID, jj, pp]),
                call_sid: sid("CA", &[seed, tag::PARTICIPANT_CALL, jj, pp]),
                call_type,
                join_time,
                leave_time: join_time + Duration::seconds(duration),
                start_on_enter: if p == 0 {
                    starts
                } else {
                    starts && r.chance(0.2)
                },
                end_on_exit: p == 0 && ends_on_exit,
                call_index: first_call + p,
            }
        })
        .collect();
    let moderator_leaves = participants.first().map(|p| p.leave_time);
    let end_time = match moderator_leaves {
        Some(end) if ends_on_exit => {
            for p in participants.iter_mut() {
                p.leave_time = p.leave_time.min(end);
            }
            end
        }
        _ => participants
            .iter()
            .map(|p| p.leave_time)
            .max()
            .unwrap_or(create_time),
    };
    let ended_by = if ends_on_exit {
        0
    } else {
        participants
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|(_, p)| p.leave_time)
            .map(|(i, _)| i)
            .unwrap_or(0)
    };
    let start_time = if starts {
        participants.get(1).map(|p| p.join_time)
    } else {
        None
    };
    SimConference {
        sid: sid("CF", &[seed, tag::CONFERENCE_SID, jj]),
        account_sid: account.sid.clone(),
        friendly_name: format!("{}-{}", r.pick(&NAMES), j + 1),
        create_time,
        start_time,
        end_time,
        participants,
        ended_by,
        ended_on_exit: ends_on_exit,
        seed,
        index: j,
    }
}

/// The calls of a conference's participants, in join order.
pub(crate) fn participant_calls(conference: &SimConference) -> Vec<SimCall> {
    conference
        .participants
        .iter()
        .map(|p| SimCall {
            sid: p.call_sid.clone(),
            account_sid: conference.account_sid.clone(),
            start_time: p.join_time,
            end_time: p.leave_time,
            call_type: p.call_type,
            conference_sid: Some(conference.sid.clone()),
        })
        .collect()
}

/// Region values of a conference: (mixer, requested).
fn regions(conference: &SimConference) -> (&'static str, Option<&'static str>) {
    let mut r = Rng::new(&[
        conference.seed,
        tag::CONFERENCE_BODY,
        conference.index as u64,
        u64::MAX,
    ]);
    let mixer = r.pick(&REGIONS);
    let requested = r.chance(0.4).then_some(mixer);
    (mixer, requested)
}

/// `complete` 30 minutes after `end` by the simulator clock, `in_progress` before.
fn processing_state(ctx: &Ctx, end: DateTime<Utc>) -> &'static str {
    if ctx.now() >= end + Duration::minutes(30) {
        "complete"
    } else {
        "in_progress"
    }
}

/// Whole seconds from `a` to `b` (0 if negative).
fn seconds(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    u64::try_from((b - a).num_seconds()).unwrap_or(0)
}

/// The most participants in at once (a leave at the instant of a join counts first).
fn max_concurrent(participants: &[SimParticipant]) -> usize {
    let mut edges: Vec<(DateTime<Utc>, i32)> = participants
        .iter()
        .flat_map(|p| [(p.join_time, 1), (p.leave_time, -1)])
        .collect();
    edges.sort();
    let mut now = 0i32;
    let mut most = 0i32;
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// The conference summary.
pub(crate) fn summary<'a>(ctx: &'a Ctx, conference: &'a SimConference) -> ConferenceRecord<'a> {
    let (mixer, requested) = regions(conference);
    let records = participants(ctx, conference);
    let (issues, tags) = issues_and_tags(conference, &records, requested);
    let mut r = Rng::new(&[
        conference.seed,
        tag::CONFERENCE_BODY,
        conference.index as u64,
        u64::MAX - 1,
    ]);
    let url = format!("{}/v1/Conferences/{}", ctx.base_url, conference.sid);
    let ended_by = conference
        .participants
        .get(conference.ended_by)
        .map(|p| p.call_sid.as_str())
        .unwrap_or("");
    let mut unique: Vec<&str> = records.iter().map(|p| p.from.as_str()).collect();
    unique.sort_unstable();
    unique.dedup();
    ConferenceRecord {
        conference_sid: &conference.sid,
        account_sid: &conference.account_sid,
        friendly_name: &conference.friendly_name,
        start_time: conference.start_time.map(secs),
        create_time: secs(conference.create_time),
        end_time: secs(conference.end_time),
        duration_seconds: seconds(conference.create_time, conference.end_time),
        connect_duration_seconds: conference
            .start_time
            .map_or(0, |s| seconds(s, conference.end_time)),
        status: "completed",
        max_participants: 250,
        max_concurrent_participants: max_concurrent(&conference.participants),
        unique_participants: unique.len(),
        end_reason: if conference.ended_on_exit {
            "participant_with_end_conference_on_exit_left"
        } else {
            "last_participant_left"
        },
        ended_by,
        mixer_region: mixer,
        mixer_region_requested: requested,
        recording_enabled: r.chance(0.3),
        processing_state: processing_state(ctx, conference.end_time),
        detected_issues: issues,
        tags: (!tags.is_empty()).then_some(tags),
        tag_info: None,
        links: ConferenceLinks {
            conference_participants: format!("{url}/Participants"),
        },
        url,
    }
}

/// Thresholds of a participant's quality issues.
fn quality_flags(m: &StreamMetrics) -> [bool; 4] {
    [
        m.packet_loss_percentage > 1.0,
        m.jitter.avg > 5.0,
        m.latency.avg > 150.0,
        m.mos < 3.5,
    ]
}

/// `detected_issues` and `tags` (in the schema's enum order) from the participants.
fn issues_and_tags(
    conference: &SimConference,
    records: &[ParticipantRecord<'_>],
    requested: Option<&str>,
) -> (DetectedIssues, Vec<&'static str>) {
    let mut issues = DetectedIssues::default();
    let mut quality = [false; 4];
    for p in records {
        let flags = quality_flags(&p.metrics.inbound);
        if flags.iter().any(|f| *f) {
            issues.call_quality += 1;
        }
        for (seen, flag) in quality.iter_mut().zip(flags) {
            *seen |= flag;
        }
        if p.participant_region != p.conference_region {
            issues.region_configuration += 1;
        }
        if p.events.is_some() {
            issues.participant_behavior += 1;
        }
    }
    let wrong_region = requested.is_some_and(|r| records.iter().any(|p| p.conference_region != r));
    let mut tags = Vec::new();
    if conference.start_time.is_none() {
        tags.push("start_failure");
    }
    if issues.region_configuration > 0 || wrong_region {
        tags.push("region_configuration_issues");
    }
    if issues.call_quality > 0 {
        tags.push("quality_warnings");
    }
    if issues.participant_behavior > 0 {
        tags.push("participant_behavior_issues");
    }
    let names = ["high_packet_loss", "high_jitter", "high_latency", "low_mos"];
    for (name, seen) in names.into_iter().zip(quality) {
        if seen {
            tags.push(name);
        }
    }
    (issues, tags)
}

/// Every participant of the conference, in join order.
pub(crate) fn participants<'a>(
    ctx: &'a Ctx,
    conference: &'a SimConference,
) -> Vec<ParticipantRecord<'a>> {
    let (mixer, _) = regions(conference);
    conference
        .participants
        .iter()
        .enumerate()
        .map(|(p, participant)| record(ctx, conference, mixer, p, participant))
        .collect()
}

/// The participant with this SID.
pub(crate) fn participant<'a>(
    ctx: &'a Ctx,
    conference: &'a SimConference,
    participant_sid: &str,
) -> Option<ParticipantRecord<'a>> {
    let (mixer, _) = regions(conference);
    let (p, participant) = conference
        .participants
        .iter()
        .enumerate()
        .find(|(_, p)| p.sid == participant_sid)?;
    Some(record(ctx, conference, mixer, p, participant))
}

/// Participant `p` of the conference.
fn record<'a>(
    ctx: &'a Ctx,
    conference: &'a SimConference,
    mixer: &'static str,
    p: usize,
    participant: &'a SimParticipant,
) -> ParticipantRecord<'a> {
    let mut r = Rng::new(&[
        conference.seed,
        tag::CONFERENCE_BODY,
        conference.index as u64,
        p as u64,
    ]);
    let facts = call_facts(ctx, participant.call_index, participant.call_type);
    let outbound = facts.direction.starts_with("outbound");
    let duration = seconds(participant.join_time, participant.leave_time);
    let label = r.chance(0.5).then(|| r.pick(&LABELS));
    let jitter_buffer_size = r.chance(0.5).then(|| r.pick(&JITTER_BUFFERS));
    let n = conference.participants.len();
    let is_coach = n >= 3 && p + 1 == n && r.chance(0.25);
    let coached_participants = is_coach.then(|| {
        conference
            .participants
            .get(1)
            .map(|c| c.call_sid.as_str())
            .into_iter()
            .collect()
    });
    let participant_region = if r.chance(0.8) {
        mixer
    } else {
        r.pick(&REGIONS)
    };
    let enter_muted = r.chance(0.2);
    let properties = ParticipantProperties {
        start_conference_on_enter: participant.start_on_enter,
        end_conference_on_exit: participant.end_on_exit,
        play_early_media: r.chance(0.5),
        enter_muted,
        beep_on_enter: r.chance(0.6),
        beep_on_exit: r.chance(0.4),
    };
    let events = (enter_muted || r.chance(0.3)).then(|| {
        let lo = participant.join_time.timestamp_millis();
        let span = (participant.leave_time.timestamp_millis() - lo).max(1) as u64;
        let mut mutes: Vec<i64> = (0..r.range(1, 3))
            .map(|_| lo + r.below(span) as i64)
            .collect();
        if enter_muted {
            mutes.push(lo);
        }
        mutes.sort_unstable();
        mutes.dedup();
        BTreeMap::from([("mute", mutes)])
    });
    let metrics = metrics(&facts, duration, &mut r);
    ParticipantRecord {
        participant_sid: &participant.sid,
        label,
        conference_sid: &conference.sid,
        call_sid: &participant.call_sid,
        account_sid: &conference.account_sid,
        call_direction: if outbound { "outbound" } else { "inbound" },
        from: facts.from.clone(),
        to: facts.to.clone(),
        call_status: "completed",
        country_code: "US",
        is_moderator: participant.start_on_enter || participant.end_on_exit,
        join_time: secs(participant.join_time),
        leave_time: secs(participant.leave_time),
        duration_seconds: duration,
        outbound_queue_length: outbound.then_some(0),
        outbound_time_in_queue: outbound.then(|| r.range(50, 4000)),
        jitter_buffer_size,
        is_coach,
        coached_participants,
        participant_region,
        conference_region: mixer,
        call_type: participant.call_type.summary_name(),
        processing_state: processing_state(ctx, participant.leave_time),
        properties,
        events,
        metrics,
        url: format!(
            "{}/v1/Conferences/{}/Participants/{}",
            ctx.base_url, conference.sid, participant.sid
        ),
    }
}

/// Whole-call quality of both streams: inbound packet totals are those of the call's summary.
fn metrics(facts: &CallFacts, duration: u64, r: &mut Rng) -> ParticipantMetrics {
    let q = facts.quality;
    let (in_received, in_lost) = stream_totals(facts, duration / 10);
    let out_sent = duration * PACKETS_PER_SEC;
    let out_lost = (out_sent as f64 * q.loss_ratio * r.unit() * 0.5).floor() as u64;
    // A few participants have a terrible line whatever the call's base quality.
    let awful = r.chance(0.05);
    let mut stream = |received: u64, lost: u64, scale: f64| {
        let jitter_avg = round(q.jitter_ms * scale * (0.8 + r.unit() * 0.4), 2).max(0.01);
        let jitter_max = round(jitter_avg * (1.3 + r.unit() * 1.7), 2).max(jitter_avg + 0.01);
        let latency_avg = round(q.rtt_ms as f64 / 2.0 * (0.8 + r.unit() * 0.4), 2).max(0.01);
        let latency_max = round(latency_avg * (1.2 + r.unit()), 2).max(latency_avg + 0.01);
        let loss = percent(lost, received + lost);
        let base = if awful {
            1.0 + r.unit() * 1.5
        } else {
            q.mos + (r.unit() - 0.5) * 0.2
        };
        let mos = round((base - loss * 0.1).clamp(1.0, 4.5), 2);
        StreamMetrics {
            total_packets_lost: lost,
            total_packets_received: received,
            packet_loss_percentage: loss,
            jitter: AvgMax {
                avg: jitter_avg,
                max: round(jitter_max, 2),
            },
            latency: AvgMax {
                avg: latency_avg,
                max: round(latency_max, 2),
            },
            mos,
        }
    };
    ParticipantMetrics {
        inbound: stream(in_received, in_lost, 1.0),
        outbound: stream(out_sent.saturating_sub(out_lost), out_lost, 0.5),
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn account(seed: u64) -> SimAccount {
        let config = super::super::config::SimConfig {
            seed,
            ..Default::default()
        };
        let model = super::super::model::Model::build(&config, "http://127.0.0.1:1".into());
        model.accounts()[0].clone()
    }

    #[test]
    fn plans_are_consistent_timelines() {
        let from = Utc
            .with_ymd_and_hms(2024, 5, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let to = from + Duration::days(1);
        let a = account(5);
        for j in 0..200 {
            let c = plan(&a, j, from, to, 0);
            assert_eq!(c, plan(&a, j, from, to, 0));
            assert!((2..=5).contains(&c.participants.len()));
            assert!(c.create_time >= from && c.create_time < to);
            for p in &c.participants {
                assert!(p.join_time > c.create_time);
                assert!(p.leave_time - p.join_time >= Duration::seconds(30), "{c:?}");
                assert!(p.leave_time <= c.end_time);
            }
            if let Some(start) = c.start_time {
                assert!(start >= c.create_time && start < c.end_time);
            }
            assert!(max_concurrent(&c.participants) >= 2);
        }
        let first = plan(&a, 0, from, to, 0);
        let types: Vec<CallType> = first.participants.iter().map(|p| p.call_type).collect();
        assert_eq!(&types[..3], &PARTICIPANT_TYPES);
    }
}
