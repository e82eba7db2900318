//! The table registry: one [`TableSpec`] per table — its name, its schema file, the API it
//! comes from, the kind of unit it is fetched by, the column that names that unit in its rows,
//! the group it commits with, and its source. Whatever asks "is this table Telnyx's, or per
//! call?" asks the spec; a new table is a new entry here (and a schema file, a source).

use std::fmt;
use std::str::FromStr;

use crate::http::Api;
use crate::sources::twilio_insights::{
    CallList, CallSummary, ConferenceParticipants, ConferenceSummary, Resource,
};
use crate::sources::{Source, telnyx, twilio_rest};

/// The tables voxlake writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Voice Insights events, per call.
    InsightsEvents,
    /// Voice Insights metrics, per call.
    InsightsMetrics,
    /// Twilio REST call events (requests and responses), per call.
    CallEvents,
    /// Voice Insights call summaries.
    CallSummaries,
    /// Telnyx call events.
    TelnyxCallEvents,
    /// Twilio REST call records.
    Calls,
    /// Voice Insights conference summaries.
    ConferenceSummaries,
    /// Voice Insights conference participant summaries.
    ConferenceParticipants,
}

/// What a table's rows are fetched by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitKind {
    /// A Twilio call SID: every such table is asked about each call, and the call's rows
    /// commit in the hour it started.
    Call,
    /// A Telnyx listing (a window, a leg, a session): rows commit in the hour they occurred.
    TelnyxEvents,
    /// A Twilio conference SID: its rows commit in the hour it started.
    Conference,
}

/// Everything voxlake knows about a table besides its columns.
pub struct TableSpec {
    /// Which table.
    pub table: Table,
    /// Its folder under the output and its schema file's name.
    pub name: &'static str,
    /// The schema file, compiled in.
    pub schema_text: &'static str,
    /// The API it comes from.
    pub api: Api,
    /// What it is fetched by.
    pub unit: UnitKind,
    /// The column naming the unit a row belongs to (a call, a Telnyx leg).
    pub unit_column: &'static str,
    /// The tables committed together in one journal per hour.
    pub group: &'static str,
    /// The requests it makes for a unit.
    pub source: &'static dyn Source,
}

static INSIGHTS_EVENTS: CallList = CallList(Resource::Events);
static INSIGHTS_METRICS: CallList = CallList(Resource::Metrics);

/// The registry, in [`Table::ALL`] order.
static SPECS: [TableSpec; 8] = [
    TableSpec {
        table: Table::InsightsEvents,
        name: "insights_events",
        schema_text: include_str!("../schemas/insights_events.toml"),
        api: Api::TwilioInsights,
        unit: UnitKind::Call,
        unit_column: "call_sid",
        group: "twilio",
        source: &INSIGHTS_EVENTS,
    },
    TableSpec {
        table: Table::InsightsMetrics,
        name: "insights_metrics",
        schema_text: include_str!("../schemas/insights_metrics.toml"),
        api: Api::TwilioInsights,
        unit: UnitKind::Call,
        unit_column: "call_sid",
        group: "twilio",
        source: &INSIGHTS_METRICS,
    },
    TableSpec {
        table: Table::CallEvents,
        name: "call_events",
        schema_text: include_str!("../schemas/call_events.toml"),
        api: Api::TwilioRest,
        unit: UnitKind::Call,
        unit_column: "call_sid",
        group: "twilio",
        source: &twilio_rest::CallEventsList,
    },
    TableSpec {
        table: Table::CallSummaries,
        name: "call_summaries",
        schema_text: include_str!("../schemas/call_summaries.toml"),
        api: Api::TwilioInsights,
        unit: UnitKind::Call,
        unit_column: "call_sid",
        group: "twilio",
        source: &CallSummary,
    },
    TableSpec {
        table: Table::TelnyxCallEvents,
        name: "telnyx_call_events",
        schema_text: include_str!("../schemas/telnyx_call_events.toml"),
        api: Api::Telnyx,
        unit: UnitKind::TelnyxEvents,
        unit_column: "call_leg_id",
        group: "telnyx",
        source: &telnyx::CallEventsList,
    },
    TableSpec {
        table: Table::Calls,
        name: "calls",
        schema_text: include_str!("../schemas/calls.toml"),
        api: Api::TwilioRest,
        unit: UnitKind::Call,
        unit_column: "sid",
        group: "twilio",
        source: &twilio_rest::CallRecord,
    },
    TableSpec {
        table: Table::ConferenceSummaries,
        name: "conference_summaries",
        schema_text: include_str!("../schemas/conference_summaries.toml"),
        api: Api::TwilioInsights,
        unit: UnitKind::Conference,
        unit_column: "conference_sid",
        group: "conferences",
        source: &ConferenceSummary,
    },
    TableSpec {
        table: Table::ConferenceParticipants,
        name: "conference_participants",
        schema_text: include_str!("../schemas/conference_participants.toml"),
        api: Api::TwilioInsights,
        unit: UnitKind::Conference,
        unit_column: "conference_sid",
        group: "conferences",
        source: &ConferenceParticipants,
    },
];

impl Table {
    /// Every table, in a stable order.
    pub const ALL: [Table; 8] = [
        Table::InsightsEvents,
        Table::InsightsMetrics,
        Table::CallEvents,
        Table::CallSummaries,
        Table::TelnyxCallEvents,
        Table::Calls,
        Table::ConferenceSummaries,
        Table::ConferenceParticipants,
    ];

    /// The table's spec.
    pub fn spec(self) -> &'static TableSpec {
        let index = Table::ALL.iter().position(|t| *t == self).unwrap_or(0);
        &SPECS[index]
    }

    /// The table's name: its folder under the output and its schema file's name.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Table {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        Table::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
                format!("unknown table {name:?}; known tables: {}", known.join(", "))
            })
    }
}

/// The tables among `tables` fetched by `unit`, in order.
pub fn of_unit(tables: &[Table], unit: UnitKind) -> Vec<Table> {
    tables
        .iter()
        .copied()
        .filter(|t| t.spec().unit == unit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_in_table_order() {
        for (i, table) in Table::ALL.iter().enumerate() {
            assert_eq!(SPECS[i].table, *table);
            assert!(
                SPECS[i]
                    .schema_text
                    .contains(&format!("table = \"{}\"", SPECS[i].name))
            );
        }
    }
}
