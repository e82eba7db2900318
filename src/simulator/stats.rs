//! Counters of what the simulator received and answered, read as [`SimStats`] snapshots.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A snapshot of the simulator's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Every request received (all routes, all outcomes).
    pub requests: u64,
    /// Responses by HTTP status (requests left hanging have none).
    pub by_status: BTreeMap<u16, u64>,
    /// 429s sent by the rate limit (not injected ones).
    pub rate_limited: u64,
    /// Faults injected (429, 5xx, slow, drop, hang, malformed, failing call SIDs).
    pub injected_faults: u64,
    /// Per table name, rows in 200 responses whose body was sent whole (`calls`,
    /// `call_events`, `insights_events`, `insights_metrics`, `call_summaries`, `conferences`,
    /// `conference_participants`, `accounts`, `telnyx_call_events`).
    pub rows_served: BTreeMap<String, u64>,
    /// Per call SID, requests to the Insights and REST per-call routes.
    pub requests_by_call: BTreeMap<String, u64>,
    /// Per route name (`insights_events`, `insights_metrics`, `call_events`, `call`, `calls`,
    /// `summaries`, `summary`, `conferences`, `conference`, `conference_participants`,
    /// `conference_participant`, `accounts`, `account`, `telnyx_call_events`).
    pub requests_by_route: BTreeMap<String, u64>,
    /// The route names of the first [`ARRIVALS_KEPT`] requests (known routes), in the order
    /// they arrived.
    pub arrivals: Vec<&'static str>,
}

/// Requests whose route [`SimStats::arrivals`] keeps.
pub const ARRIVALS_KEPT: usize = 100_000;

/// The live counters behind [`SimStats`].
#[derive(Debug, Default)]
pub(crate) struct Stats(Mutex<SimStats>);

impl Stats {
    fn with(&self, f: impl FnOnce(&mut SimStats)) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    /// A request arrived for `route` (if known), about `call` (if per-call).
    pub(crate) fn request(&self, route: Option<&'static str>, call: Option<&str>) {
        self.with(|s| {
            s.requests += 1;
            if let Some(route) = route {
                *s.requests_by_route.entry(route.to_string()).or_default() += 1;
                if s.arrivals.len() < ARRIVALS_KEPT {
                    s.arrivals.push(route);
                }
            }
            if let Some(call) = call {
                *s.requests_by_call.entry(call.to_string()).or_default() += 1;
            }
        });
    }

    /// A response with `status` left.
    pub(crate) fn status(&self, status: u16) {
        self.with(|s| *s.by_status.entry(status).or_default() += 1);
    }

    /// The rate limit refused a request.
    pub(crate) fn rate_limited(&self) {
        self.with(|s| s.rate_limited += 1);
    }

    /// A fault was injected.
    pub(crate) fn fault(&self) {
        self.with(|s| s.injected_faults += 1);
    }

    /// A page of `rows` records of `table` was sent whole.
    pub(crate) fn rows(&self, table: &str, rows: u64) {
        self.with(|s| *s.rows_served.entry(table.to_string()).or_default() += rows);
    }

    /// A copy of the counters.
    pub(crate) fn snapshot(&self) -> SimStats {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
