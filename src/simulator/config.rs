//! What a simulator run is made of: [`SimConfig`] (the data, the credentials, the clock),
//! [`CallSpec`]/[`CallType`] (calls placed by tests), [`SubaccountSpec`] (subaccounts of the
//! configured account) and [`Faults`] (what goes wrong).
//!
//! Owns no behaviour beyond defaults; `model` turns a config into calls and `server` serves it.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

/// Everything a simulator run needs. `Default` gives a small, fault-free day of data
/// (2024-05-01) with the contract credentials of `voxlake simulate`.
#[derive(Clone)]
pub struct SimConfig {
    /// Seed of every generated value: the same config gives the same bodies.
    pub seed: u64,
    /// Twilio calls generated in `[from, to)`.
    pub calls: usize,
    /// Start of the window the generated calls and Telnyx legs start in.
    pub from: DateTime<Utc>,
    /// End (exclusive) of that window.
    pub to: DateTime<Utc>,
    /// Calls placed exactly by tests, added after the generated ones.
    pub extra_calls: Vec<CallSpec>,
    /// The (parent) account: the Basic auth user, and the owner of every generated and extra
    /// call and of the `conferences` (a subaccount's records carry the subaccount's SID).
    pub account_sid: String,
    /// The Basic auth password that goes with `account_sid`.
    pub auth_token: String,
    /// Also accept Basic auth with this (API key SID, secret) pair.
    pub api_key: Option<(String, String)>,
    /// The Telnyx bearer token.
    pub telnyx_key: String,
    /// Telnyx call legs generated in `[from, to)`.
    pub telnyx_calls: usize,
    /// The simulator's clock (Telnyx 24 h rule, summary `processing_state`); `None` = real clock.
    pub now: Option<DateTime<Utc>>,
    /// Enforce this many requests per second per API group (Insights, REST, Telnyx).
    pub rate_limit_per_sec: Option<u32>,
    /// Faults injected from the start (see [`crate::simulator::SimHandle::set_faults`]).
    pub faults: Faults,
    /// Add fields no ingestion schema knows yet (`media_region`, `mos_lq`, `api_version`),
    /// and an SDK version that is markup (`<script>alert(1)</script>`, for readers' escaping).
    pub drift: bool,
    /// Odd values in the first Metrics page of each call: a first sample whose `mos` is the
    /// literal `1e400` (beyond a float), and an unknown `odd_counter` of
    /// `99999999999999999999999` (beyond 64 bits) on every first sample.
    pub odd_numbers: bool,
    /// Conferences of the configured account created in `[from, to)`, served by Conference
    /// Insights (`/v1/Conferences`). Each has 2 to 5 participants, and each participant is a
    /// call of the model, added to [`crate::simulator::Model::calls`] after the generated and
    /// extra calls. Default 0.
    pub conferences: usize,
    /// Subaccounts of the configured account, each with its own generated calls and
    /// conferences in `[from, to)` (listed by `/2010-04-01/Accounts.json`). Default none.
    pub subaccounts: Vec<SubaccountSpec>,
    /// Bytes of rendered per-call pages (Insights events and metrics, REST call events) kept
    /// and served again as they are while no faults are set, for benchmarks. Default 0: off.
    pub page_cache_bytes: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            calls: 20,
            from: day(2024, 5, 1),
            to: day(2024, 5, 2),
            extra_calls: Vec::new(),
            account_sid: format!("AC{}", "0".repeat(32)),
            auth_token: "simulator-token".to_string(),
            api_key: None,
            telnyx_key: "simulator-key".to_string(),
            telnyx_calls: 20,
            now: None,
            rate_limit_per_sec: None,
            faults: Faults::default(),
            drift: false,
            odd_numbers: false,
            conferences: 0,
            subaccounts: Vec::new(),
            page_cache_bytes: 0,
        }
    }
}

/// Secrets (`auth_token`, the API key secret, `telnyx_key`) print as `***`.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("seed", &self.seed)
            .field("calls", &self.calls)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("extra_calls", &self.extra_calls)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"***")
            .field(
                "api_key",
                &self.api_key.as_ref().map(|(sid, _)| (sid, "***")),
            )
            .field("telnyx_key", &"***")
            .field("telnyx_calls", &self.telnyx_calls)
            .field("now", &self.now)
            .field("rate_limit_per_sec", &self.rate_limit_per_sec)
            .field("faults", &self.faults)
            .field("drift", &self.drift)
            .field("odd_numbers", &self.odd_numbers)
            .field("conferences", &self.conferences)
            .field("subaccounts", &self.subaccounts)
            .finish()
    }
}

/// A subaccount of the configured (parent) account. Its SID (`AC` + 32 lowercase hex) is
/// derived from (seed, subaccount index); its calls and conferences are generated like the
/// parent's, from a seed derived from the parent seed and the subaccount index.
///
/// The parent's credentials (account SID and token, or the API key) reach the subaccount's
/// REST paths and Insights records, unless `refuse_parent` is set. The subaccount's own SID
/// and its made-up `auth_token` (see [`crate::simulator::SimAccount::auth_token`]) reach only
/// its own records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubaccountSpec {
    /// Twilio calls generated for the subaccount in `[from, to)`.
    pub calls: usize,
    /// Conferences of the subaccount created in `[from, to)` (their participants are calls of
    /// the subaccount, added after its generated calls).
    pub conferences: usize,
    /// The account `status`: `"active"`, `"suspended"` or `"closed"` (shown as given and
    /// matched by the `Status` filter of `Accounts.json`; it does not change access).
    pub status: String,
    /// The parent's credentials get 403 (code 20003) on this subaccount's REST paths and on
    /// Insights requests about its calls and conferences.
    pub refuse_parent: bool,
}

/// An active subaccount with no calls or conferences that lets the parent in.
impl Default for SubaccountSpec {
    fn default() -> Self {
        Self {
            calls: 0,
            conferences: 0,
            status: "active".to_string(),
            refuse_parent: false,
        }
    }
}

/// A call placed exactly where a test wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSpec {
    /// When the call starts.
    pub start_time: DateTime<Utc>,
    /// How long it lasts, in seconds (its metrics: one sample per 10 s).
    pub duration_secs: u32,
    /// Which edges it has (seed 001's table).
    pub call_type: CallType,
}

/// The Voice Insights call types, which decide a call's edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallType {
    /// PSTN call: `carrier_edge`.
    Carrier,
    /// SIP interface call: `sip_edge`.
    Sip,
    /// Voice SDK call: `sdk_edge` (default) and `client_edge`.
    Client,
    /// Trunk from the PSTN to the customer: `carrier_edge` (default) and `sip_edge`.
    TrunkingOriginating,
    /// Trunk from the customer to the PSTN: `sip_edge` (default) and `carrier_edge`.
    TrunkingTerminating,
}

impl CallType {
    /// All five, in a fixed order (the first five generated calls take them in turn).
    pub const ALL: [CallType; 5] = [
        CallType::Carrier,
        CallType::Sip,
        CallType::Client,
        CallType::TrunkingOriginating,
        CallType::TrunkingTerminating,
    ];

    /// The edges of this call type, default edge first.
    pub fn edges(self) -> &'static [&'static str] {
        match self {
            CallType::Carrier => &["carrier_edge"],
            CallType::Sip => &["sip_edge"],
            CallType::Client => &["sdk_edge", "client_edge"],
            CallType::TrunkingOriginating => &["carrier_edge", "sip_edge"],
            CallType::TrunkingTerminating => &["sip_edge", "carrier_edge"],
        }
    }

    /// The summary's `call_type` (`carrier`, `sip`, `client`, `trunking`).
    pub fn summary_name(self) -> &'static str {
        match self {
            CallType::Carrier => "carrier",
            CallType::Sip => "sip",
            CallType::Client => "client",
            CallType::TrunkingOriginating | CallType::TrunkingTerminating => "trunking",
        }
    }
}

/// Faults to inject; `Default` injects none. Ratios are shares of API requests in `[0, 1]`,
/// decided per request from a seeded RNG; at most one random fault per request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Share answered 429 (Twilio body code 20429, Telnyx code 10011).
    pub error_429_ratio: f64,
    /// `Retry-After` header value on injected 429s (`"2"`, `"0"`, an HTTP date); none if `None`.
    pub retry_after: Option<String>,
    /// Share answered 500/502/503/504, rotating among them.
    pub error_5xx_ratio: f64,
    /// Share answered normally after `slow_ms`.
    pub slow_ratio: f64,
    /// The delay of slow answers, in milliseconds.
    pub slow_ms: u64,
    /// Share whose connection drops mid-body (200 headers, then the body stream errors).
    pub drop_ratio: f64,
    /// Share that are accepted and never answered (until shutdown).
    pub hang_ratio: f64,
    /// Share answered 200 with a truncated JSON body.
    pub malformed_ratio: f64,
    /// Every Insights/REST request about these calls answers 500.
    pub fail_call_sids: Vec<String>,
    /// Every Conference Insights request about these conferences (`/v1/Conferences/{Sid}`
    /// and its participants) answers 500.
    pub fail_conference_sids: Vec<String>,
    /// Requests about this call for page `Page` >= N answer 500 (it fails midway).
    pub fail_call_from_page: Option<(String, u64)>,
    /// `next_page_url`/`next_page_uri` point at `http://evil.invalid:PORT/...`.
    pub foreign_next_page: bool,
    /// The first page's next link points at itself (the same URL forever).
    pub looping_next_page: bool,
    /// Next links of every per-call list point at this call's list instead (same origin,
    /// another call's path).
    pub next_page_to_call: Option<String>,
    /// Telnyx ignores `page[number]`: every page is the first, claiming this many pages.
    pub telnyx_stuck_total_pages: Option<usize>,
    /// Telnyx answers every page with the first page's events, echoing the page number asked.
    pub telnyx_repeat_pages: bool,
}

/// Midnight UTC of a calendar day known to be valid.
fn day(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}
