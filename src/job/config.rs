//! The job file as written (TOML). Unknown keys are refused; `jobs/*.toml` are the commented
//! reference of every key.

use serde::Deserialize;

/// A job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Names the job's state (watermark) under `{output}/_voxlake/`.
    pub name: String,
    /// A path, `file://…`, or `s3://bucket/prefix`.
    pub output: String,
    /// Tables to fetch.
    pub tables: Vec<String>,
    /// First nightly window start, before any state exists (TIME).
    #[serde(default)]
    pub start: Option<String>,
    /// Nightly: leave the newest data for the next run (`15m`).
    #[serde(default = "default_lag")]
    pub lag: String,
    /// Backfill work unit, a whole number of hours (`1h`).
    #[serde(default = "default_slice")]
    pub slice: String,
    /// Insights edges: `default` (the call type's default edge) or `all`.
    #[serde(default = "default_edges")]
    pub edges: String,
    /// How a Twilio window finds its calls: `calls` (Calls.json) or `summaries`.
    #[serde(default = "default_discovery")]
    pub discovery: String,
    /// Object stores: how long a lock lasts unless its run renews it (`30s`): what a run
    /// killed while holding one makes the others wait.
    #[serde(default = "default_lease")]
    pub lease: String,
    /// The Twilio accounts to fetch: `["AC…", …]` (subaccounts of the credential's account,
    /// or itself), or `"all"` (every active account `Accounts.json` lists for the
    /// credentials). Default: the credential's own account.
    #[serde(default)]
    pub accounts: Option<AccountsKey>,
    /// Twilio settings.
    #[serde(default)]
    pub twilio: TwilioSection,
    /// Telnyx settings.
    #[serde(default)]
    pub telnyx: TelnyxSection,
    /// Timeouts and retries, for every API.
    #[serde(default)]
    pub http: HttpSection,
    /// Parquet file settings.
    #[serde(default)]
    pub parquet: ParquetSection,
    /// How tables are laid out: `parquet` (Hive folders of Parquet files, committed by
    /// voxlake's journal) or `delta` (Delta Lake tables, committed by their Delta log).
    #[serde(default = "default_format")]
    pub format: String,
}

/// `accounts = "all"` or `accounts = ["AC…", …]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AccountsKey {
    /// `"all"`.
    Name(String),
    /// Account SIDs.
    List(Vec<String>),
}

fn default_lag() -> String {
    "15m".into()
}
fn default_slice() -> String {
    "1h".into()
}
fn default_edges() -> String {
    "default".into()
}
fn default_discovery() -> String {
    "calls".into()
}
fn default_format() -> String {
    "parquet".into()
}
fn default_lease() -> String {
    "30s".into()
}

/// `[twilio]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSection {
    /// Voice Insights origin.
    #[serde(default = "default_insights_url")]
    pub insights_url: String,
    /// REST API origin.
    #[serde(default = "default_twilio_api_url")]
    pub api_url: String,
    /// Limiter rate, per API (Insights and REST each).
    #[serde(default = "default_twilio_rps")]
    pub requests_per_second: i64,
    /// Requests in flight at most, per API; also calls fetched at once.
    #[serde(default = "default_twilio_concurrency")]
    pub concurrency: i64,
    /// `PageSize` asked for (1–1000).
    #[serde(default = "default_twilio_page_size")]
    pub page_size: i64,
}

impl Default for TwilioSection {
    fn default() -> Self {
        TwilioSection {
            insights_url: default_insights_url(),
            api_url: default_twilio_api_url(),
            requests_per_second: default_twilio_rps(),
            concurrency: default_twilio_concurrency(),
            page_size: default_twilio_page_size(),
        }
    }
}

fn default_insights_url() -> String {
    "https://insights.twilio.com".into()
}
fn default_twilio_api_url() -> String {
    "https://api.twilio.com".into()
}
fn default_twilio_rps() -> i64 {
    25
}
fn default_twilio_concurrency() -> i64 {
    8
}
fn default_twilio_page_size() -> i64 {
    1000
}

/// `[telnyx]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelnyxSection {
    /// Telnyx API origin.
    #[serde(default = "default_telnyx_api_url")]
    pub api_url: String,
    /// Limiter rate.
    #[serde(default = "default_telnyx_rps")]
    pub requests_per_second: i64,
    /// Requests in flight at most.
    #[serde(default = "default_telnyx_concurrency")]
    pub concurrency: i64,
    /// `page[size]` asked for (1–250).
    #[serde(default = "default_telnyx_page_size")]
    pub page_size: i64,
    /// Pages one listing may take at most: a server that never stops paging fails the
    /// listing instead of running forever.
    #[serde(default = "default_telnyx_max_pages")]
    pub max_pages: i64,
}

impl Default for TelnyxSection {
    fn default() -> Self {
        TelnyxSection {
            api_url: default_telnyx_api_url(),
            requests_per_second: default_telnyx_rps(),
            concurrency: default_telnyx_concurrency(),
            page_size: default_telnyx_page_size(),
            max_pages: default_telnyx_max_pages(),
        }
    }
}

fn default_telnyx_api_url() -> String {
    "https://api.telnyx.com".into()
}
fn default_telnyx_rps() -> i64 {
    10
}
fn default_telnyx_concurrency() -> i64 {
    4
}
fn default_telnyx_page_size() -> i64 {
    250
}
fn default_telnyx_max_pages() -> i64 {
    10_000
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Timeout of one attempt, seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// Attempts per request in all, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i64,
    /// First backoff, milliseconds; doubles per attempt, with jitter.
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: i64,
    /// Longest single wait (backoff or Retry-After), seconds.
    #[serde(default = "default_backoff_max_secs")]
    pub backoff_max_secs: f64,
    /// A page larger than this is an error, not an out-of-memory kill.
    #[serde(default = "default_max_page_mb")]
    pub max_page_mb: i64,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            timeout_secs: default_timeout_secs(),
            max_attempts: default_max_attempts(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_secs: default_backoff_max_secs(),
            max_page_mb: default_max_page_mb(),
        }
    }
}

fn default_timeout_secs() -> f64 {
    30.0
}
fn default_max_attempts() -> i64 {
    6
}
fn default_backoff_base_ms() -> i64 {
    500
}
fn default_backoff_max_secs() -> f64 {
    60.0
}
fn default_max_page_mb() -> i64 {
    64
}

/// `[parquet]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSection {
    /// zstd level (1–22).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i64,
    /// Rows per row group at most.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: i64,
    /// Rows per file at most; a larger slice/day gets more files.
    #[serde(default = "default_max_rows_per_file")]
    pub max_rows_per_file: i64,
}

impl Default for ParquetSection {
    fn default() -> Self {
        ParquetSection {
            zstd_level: default_zstd_level(),
            row_group_rows: default_row_group_rows(),
            max_rows_per_file: default_max_rows_per_file(),
        }
    }
}

fn default_zstd_level() -> i64 {
    3
}
fn default_row_group_rows() -> i64 {
    32_768
}
fn default_max_rows_per_file() -> i64 {
    1_000_000
}
