//! The checked plan: the job file, the command line's `--output`, and credentials from the
//! environment, validated before any request so that bad input is exit 2 with a precise message.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use super::config::{HttpSection, JobConfig, ParquetSection};
use crate::error::{Error, Result};
use crate::http::client::is_loopback_host;
use crate::http::{Auth, RetryPolicy};
use crate::ids::{AccountSid, Owner};
use crate::output::{Output, ParquetSettings, StoreSettings, TableFormat};
use crate::schema::Table;
use crate::secret::Secret;
use crate::shard::Shard;
use crate::sources::telnyx::LOOKBACK_HOURS;
use crate::timefmt::{parse_cli_time, parse_duration};

/// Which Insights edges to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeMode {
    /// No `Edge` parameter: the call type's default edge.
    Default,
    /// Every edge of the call type (needs call types: `discovery = "summaries"`).
    All,
}

/// How a Twilio window finds its calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// `GET /2010-04-01/Accounts/{AccountSid}/Calls.json`.
    Calls,
    /// `GET /v1/Voice/Summaries`.
    Summaries,
}

/// Which Twilio accounts a job fetches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accounts {
    /// The credential's own account.
    Own,
    /// These accounts (subaccounts of the credential's account, or itself).
    Listed(Vec<AccountSid>),
    /// Every active account `Accounts.json` lists for the credentials, found at run time.
    All,
}

/// Twilio credentials and the account they belong to.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `TWILIO_ACCOUNT_SID`: the account of the REST paths.
    pub account_sid: AccountSid,
    /// Basic auth: account SID + auth token, or API key + secret.
    pub auth: Auth,
}

/// Twilio settings, checked.
#[derive(Clone, Debug)]
pub struct TwilioPlan {
    /// Voice Insights origin.
    pub insights_url: Url,
    /// REST origin.
    pub api_url: Url,
    /// Limiter rate per API.
    pub requests_per_second: u32,
    /// In flight at most per API; calls fetched at once.
    pub concurrency: usize,
    /// `PageSize`.
    pub page_size: u32,
    /// Credentials (None when no Twilio table is asked for).
    pub credentials: Option<Credentials>,
    /// The accounts to fetch.
    pub accounts: Accounts,
}

/// Telnyx settings, checked.
#[derive(Clone, Debug)]
pub struct TelnyxPlan {
    /// API origin.
    pub api_url: Url,
    /// Limiter rate.
    pub requests_per_second: u32,
    /// In flight at most.
    pub concurrency: usize,
    /// `page[size]`.
    pub page_size: u32,
    /// Pages one listing may take at most.
    pub max_pages: u32,
    /// `TELNYX_API_KEY` (None when the Telnyx table is not asked for).
    pub api_key: Option<Secret>,
}

/// Timeouts and retries.
#[derive(Clone, Debug)]
pub struct HttpPlan {
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Largest page body accepted.
    pub max_body_bytes: usize,
}

/// The first day any of the APIs can have a call for (Twilio's calls start in 2008).
const EARLIEST_DATA: &str = "2008-01-01T00:00:00Z";

/// Refuses a window no API can answer: one that starts in the future (no call has happened
/// there yet: its hours would only be fetched empty), or before the APIs' first calls.
pub fn check_window_start(from: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    if from >= now {
        return Err(Error::Input(format!(
            "the window starts at {}, after now ({}): there is nothing to fetch yet; \
             hours are fetched once they have happened (and nightly runs follow the clock)",
            from.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    let earliest = parse_cli_time(EARLIEST_DATA).map_err(Error::Input)?;
    if from < earliest {
        return Err(Error::Input(format!(
            "the window starts at {}, before any call the APIs keep (their data starts in {}); \
             check the year",
            from.to_rfc3339(),
            earliest.format("%Y")
        )));
    }
    Ok(())
}

/// Longest `run --from/--to` window without `--yes`, in days.
pub const RUN_WINDOW_DAYS: i64 = 31;
/// Longest backfill or nightly catch-up without `--yes`, in days.
pub const LONG_WINDOW_DAYS: i64 = 366;

/// A job, checked and ready to run.
#[derive(Clone, Debug)]
pub struct JobPlan {
    /// The job's name.
    pub name: String,
    /// Where to write.
    pub output: Output,
    /// Tables to fetch, in the schema order.
    pub tables: Vec<Table>,
    /// First nightly window start.
    pub start: Option<DateTime<Utc>>,
    /// Nightly lag.
    pub lag: chrono::Duration,
    /// Backfill work unit in hours.
    pub slice_hours: u32,
    /// Insights edges.
    pub edges: EdgeMode,
    /// Window discovery.
    pub discovery: Discovery,
    /// How long an object-store lock lasts without renewal.
    pub lease: Duration,
    /// Twilio.
    pub twilio: TwilioPlan,
    /// Telnyx.
    pub telnyx: TelnyxPlan,
    /// HTTP.
    pub http: HttpPlan,
    /// Parquet.
    pub parquet: ParquetSettings,
    /// How the tables are laid out (`format`).
    pub format: TableFormat,
    /// This worker's share of a sharded backfill (`--shard I/N`).
    pub shard: Option<Shard>,
}

impl JobPlan {
    /// The plan of worker `shard` of a sharded backfill: its share of the hours, at
    /// `rate` requests per second per API when given, else each API's rate divided by the
    /// number of workers (so that N workers together stay under the account's limit).
    pub fn with_shard(mut self, shard: Shard, rate: Option<u32>) -> JobPlan {
        let share = |rps: u32| rate.unwrap_or((rps / shard.count).max(1));
        self.twilio.requests_per_second = share(self.twilio.requests_per_second);
        self.telnyx.requests_per_second = share(self.telnyx.requests_per_second);
        self.shard = Some(shard);
        self
    }

    /// The name the job's state, lock and staging go by: the job's, or per shard.
    pub fn state_name(&self) -> String {
        match &self.shard {
            Some(shard) => shard.state_name(&self.name),
            None => self.name.clone(),
        }
    }

    /// Whether this worker takes an owner's hour (always, unless sharded).
    pub fn takes(&self, owner: &Owner, hour: crate::hours::HourSlice) -> bool {
        self.shard.is_none_or(|shard| shard.takes(owner, hour))
    }

    /// The Twilio accounts the job names (None for `accounts = "all"`, known only once the
    /// API is asked).
    pub fn named_accounts(&self) -> Option<Vec<AccountSid>> {
        let own = self
            .twilio
            .credentials
            .as_ref()
            .map(|c| c.account_sid.clone());
        match &self.twilio.accounts {
            Accounts::Own => Some(own.into_iter().collect()),
            Accounts::Listed(list) => Some(list.clone()),
            Accounts::All => None,
        }
    }

    /// Who the job's tables belong to: each Twilio account of `accounts` (for the Twilio
    /// tables) and the Telnyx key's account (for the Telnyx table), each with its tables.
    pub fn owners(&self, accounts: &[AccountSid]) -> Vec<(Owner, Vec<Table>)> {
        let (telnyx, twilio): (Vec<Table>, Vec<Table>) = self
            .tables
            .iter()
            .partition(|t| t.spec().api == crate::http::Api::Telnyx);
        let mut owners = Vec::new();
        if self.twilio.credentials.is_some() && !twilio.is_empty() {
            for account in accounts {
                owners.push((Owner::twilio(account), twilio.clone()));
            }
        }
        if let Some(key) = &self.telnyx.api_key
            && !telnyx.is_empty()
        {
            owners.push((Owner::telnyx(key), telnyx));
        }
        owners
    }

    /// Refuses a window longer than `limit_days` unless `yes`: a typo in a year should not
    /// start a fetch of years. `what` names the window in the message.
    pub fn check_window_length(
        &self,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        limit_days: i64,
        what: &str,
        yes: bool,
    ) -> Result<()> {
        let days = (to - from).num_hours() as f64 / 24.0;
        if yes || days <= limit_days as f64 {
            return Ok(());
        }
        Err(Error::Input(format!(
            "{what}: the window {} .. {} is {days:.1} days, longer than {limit_days}; pass --yes if \
             that is meant (for history, a backfill resumes where it stops)",
            from.to_rfc3339(),
            to.to_rfc3339()
        )))
    }

    /// Refuses a Telnyx window older than the API's look-back when no legs or sessions are
    /// given (Telnyx lists only the last 24 h without them).
    pub fn check_telnyx_lookback(
        &self,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        have_ids: bool,
    ) -> Result<()> {
        let telnyx = self
            .tables
            .iter()
            .any(|t| t.spec().unit == crate::tables::UnitKind::TelnyxEvents);
        if !telnyx || have_ids {
            return Ok(());
        }
        let oldest = now - chrono::Duration::hours(LOOKBACK_HOURS);
        if from < oldest {
            return Err(Error::Input(format!(
                "telnyx_call_events: the window starts at {} but Telnyx lists events only {LOOKBACK_HOURS} h back \
                 (from {}) unless filtered by leg or session; give --leg-id/--session-id for older windows \
                 or start the window within the last {LOOKBACK_HOURS} h",
                from.to_rfc3339(),
                oldest.to_rfc3339()
            )));
        }
        Ok(())
    }

    /// How the output store's own client retries (S3): the job's `[http]` settings.
    pub fn store_settings(&self) -> StoreSettings {
        let attempts = self.http.retry.max_attempts.max(1);
        StoreSettings {
            timeout: self.http.timeout,
            max_retries: attempts as usize - 1,
            retry_timeout: (self.http.retry.max_delay * attempts)
                .max(std::time::Duration::from_secs(5)),
        }
    }

    /// Reads and checks a job file; `output` overrides the job's; `env` reads variables.
    pub fn load(
        path: &Path,
        output: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<JobPlan> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Input(format!("cannot read job file {}: {e}", path.display())))?;
        let config: JobConfig = toml::from_str(&text)
            .map_err(|e| Error::Input(format!("job file {}: {e}", path.display())))?;
        JobPlan::from_config(config, output, env)
            .map_err(|e| Error::Input(format!("job file {}: {e}", path.display())))
    }

    /// Loads a job file for reading its lake only (`voxlake report`): everything is checked
    /// as for a run, but no API credential is needed, and none is read.
    pub fn load_for_reading(path: &Path, output: Option<&str>) -> Result<JobPlan> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Input(format!("cannot read job file {}: {e}", path.display())))?;
        let config: JobConfig = toml::from_str(&text)
            .map_err(|e| Error::Input(format!("job file {}: {e}", path.display())))?;
        JobPlan::checked(config, output, None)
            .map_err(|e| Error::Input(format!("job file {}: {e}", path.display())))
    }

    /// Checks a parsed job file.
    pub fn from_config(
        config: JobConfig,
        output: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<JobPlan, String> {
        JobPlan::checked(config, output, Some(env))
    }

    /// Checks a parsed job file; reads the API credentials from `env` when given.
    fn checked(
        config: JobConfig,
        output: Option<&str>,
        env: Option<&Env<'_>>,
    ) -> Result<JobPlan, String> {
        check_name(&config.name)?;
        let output = Output::parse(output.unwrap_or(&config.output)).map_err(|e| e.to_string())?;
        let tables = parse_tables(&config.tables)?;
        let start = config
            .start
            .as_deref()
            .map(parse_cli_time)
            .transpose()
            .map_err(|e| format!("start: {e}"))?;
        let lag = parse_duration(&config.lag).map_err(|e| format!("lag: {e}"))?;
        let slice_hours = parse_slice(&config.slice)?;
        let lease = parse_duration(&config.lease)
            .ok()
            .and_then(|d| d.to_std().ok())
            .filter(|d| (Duration::from_secs(3)..=Duration::from_secs(3600)).contains(d))
            .ok_or_else(|| {
                format!(
                    "lease = {:?}: give a duration from 3s to 1h (e.g. \"30s\")",
                    config.lease
                )
            })?;
        let edges = match config.edges.as_str() {
            "default" => EdgeMode::Default,
            "all" => EdgeMode::All,
            other => return Err(format!("edges = {other:?}: use \"default\" or \"all\"")),
        };
        let discovery = match config.discovery.as_str() {
            "calls" => Discovery::Calls,
            "summaries" => Discovery::Summaries,
            other => {
                return Err(format!(
                    "discovery = {other:?}: use \"calls\" or \"summaries\""
                ));
            }
        };
        let needs_telnyx = tables
            .iter()
            .any(|t| t.spec().api == crate::http::Api::Telnyx);
        let needs_twilio = tables
            .iter()
            .any(|t| t.spec().api != crate::http::Api::Telnyx);
        let twilio = TwilioPlan {
            insights_url: parse_origin("twilio.insights_url", &config.twilio.insights_url)?,
            api_url: parse_origin("twilio.api_url", &config.twilio.api_url)?,
            requests_per_second: in_range(
                "twilio.requests_per_second",
                config.twilio.requests_per_second,
                1,
                10_000,
            )?,
            concurrency: in_range("twilio.concurrency", config.twilio.concurrency, 1, 256)?
                as usize,
            page_size: in_range("twilio.page_size", config.twilio.page_size, 1, 1000)?,
            credentials: env
                .filter(|_| needs_twilio)
                .map(twilio_credentials)
                .transpose()?,
            accounts: parse_accounts(config.accounts.as_ref())?,
        };
        let telnyx = TelnyxPlan {
            api_url: parse_origin("telnyx.api_url", &config.telnyx.api_url)?,
            requests_per_second: in_range(
                "telnyx.requests_per_second",
                config.telnyx.requests_per_second,
                1,
                10_000,
            )?,
            concurrency: in_range("telnyx.concurrency", config.telnyx.concurrency, 1, 256)?
                as usize,
            page_size: in_range("telnyx.page_size", config.telnyx.page_size, 1, 250)?,
            max_pages: in_range("telnyx.max_pages", config.telnyx.max_pages, 1, 10_000_000)?,
            api_key: env.filter(|_| needs_telnyx).map(telnyx_key).transpose()?,
        };
        Ok(JobPlan {
            name: config.name,
            output,
            tables,
            start,
            lag,
            slice_hours,
            edges,
            discovery,
            lease,
            twilio,
            telnyx,
            http: http_plan(&config.http)?,
            parquet: parquet_plan(&config.parquet)?,
            format: TableFormat::parse(&config.format).map_err(|e| e.to_string())?,
            shard: None,
        })
    }
}

fn parse_accounts(key: Option<&super::config::AccountsKey>) -> Result<Accounts, String> {
    use super::config::AccountsKey;
    match key {
        None => Ok(Accounts::Own),
        Some(AccountsKey::Name(name)) if name == "all" => Ok(Accounts::All),
        Some(AccountsKey::Name(other)) => Err(format!(
            "accounts = {other:?}: use \"all\" or a list of account SIDs ([\"AC…\"])"
        )),
        Some(AccountsKey::List(list)) if list.is_empty() => {
            Err("accounts = []: name at least one account SID, or leave the key out".into())
        }
        Some(AccountsKey::List(list)) => {
            let mut sids = list
                .iter()
                .map(|s| {
                    s.trim()
                        .parse::<AccountSid>()
                        .map_err(|e| format!("accounts: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            sids.dedup();
            Ok(Accounts::Listed(sids))
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name = {name:?}: use 1-64 letters, digits, '-' or '_' (it names the job's state)"
        ))
    }
}

fn parse_tables(names: &[String]) -> Result<Vec<Table>, String> {
    if names.is_empty() {
        return Err("tables is empty: name at least one table".into());
    }
    let mut tables = names
        .iter()
        .map(|n| n.parse::<Table>().map_err(|e| format!("tables: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    tables.sort();
    tables.dedup();
    Ok(tables)
}

fn parse_slice(text: &str) -> Result<u32, String> {
    let slice = parse_duration(text).map_err(|e| format!("slice: {e}"))?;
    let hours = slice.num_hours();
    if slice.num_seconds() % 3600 != 0 || !(1..=24 * 31).contains(&hours) {
        return Err(format!(
            "slice = {text:?}: use a whole number of hours from 1h to 31 days \
             (data is committed per hour, so that runs cut differently never overlap)"
        ));
    }
    Ok(hours as u32)
}

fn in_range(key: &str, value: i64, min: i64, max: i64) -> Result<u32, String> {
    if (min..=max).contains(&value) {
        Ok(value as u32)
    } else {
        Err(format!("{key} = {value}: must be from {min} to {max}"))
    }
}

/// An API origin: http(s), no credentials, no path; plain http only to loopback.
fn parse_origin(key: &str, text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{key} = {text:?}: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{key}: credentials do not belong in the URL; they come from the environment"
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        "http" => {
            return Err(format!(
                "{key} = {text:?}: plain http:// is only allowed to loopback; use https://"
            ));
        }
        other => return Err(format!("{key} = {text:?}: scheme {other} is not http(s)")),
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{key} = {text:?}: give the origin only (e.g. https://api.twilio.com)"
        ));
    }
    Ok(url)
}

/// Reads an environment variable (the real environment, or a test's).
type Env<'a> = dyn Fn(&str) -> Option<String> + 'a;

fn var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

fn twilio_credentials(env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, String> {
    let account = var(env, "TWILIO_ACCOUNT_SID").ok_or(
        "missing credential: set TWILIO_ACCOUNT_SID (with TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET) for the Twilio tables",
    )?;
    let account_sid: AccountSid = account
        .trim()
        .parse()
        .map_err(|e| format!("TWILIO_ACCOUNT_SID: {e}"))?;
    let auth = match (
        var(env, "TWILIO_API_KEY"),
        var(env, "TWILIO_API_SECRET"),
        var(env, "TWILIO_AUTH_TOKEN"),
    ) {
        (Some(key), Some(secret), _) => Auth::Basic {
            username: key.trim().to_string(),
            password: Secret::new(secret),
        },
        (Some(_), None, _) => {
            return Err(
                "missing credential: TWILIO_API_KEY is set but TWILIO_API_SECRET is not".into(),
            );
        }
        (None, _, Some(token)) => Auth::Basic {
            username: account_sid.to_string(),
            password: Secret::new(token),
        },
        (None, _, None) => {
            return Err("missing credential: set TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET) for the Twilio tables".into());
        }
    };
    Ok(Credentials { account_sid, auth })
}

fn telnyx_key(env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
    var(env, "TELNYX_API_KEY").map(Secret::new).ok_or_else(|| {
        "missing credential: set TELNYX_API_KEY for the telnyx_call_events table".into()
    })
}

fn positive_secs(key: &str, value: f64) -> Result<Duration, String> {
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!(
            "{key} = {value}: must be more than 0 and at most 86400"
        ))
    }
}

fn http_plan(section: &HttpSection) -> Result<HttpPlan, String> {
    let retry = RetryPolicy {
        max_attempts: in_range("http.max_attempts", section.max_attempts, 1, 100)?,
        base_delay: Duration::from_millis(u64::from(in_range(
            "http.backoff_base_ms",
            section.backoff_base_ms,
            1,
            600_000,
        )?)),
        max_delay: positive_secs("http.backoff_max_secs", section.backoff_max_secs)?,
    };
    Ok(HttpPlan {
        timeout: positive_secs("http.timeout_secs", section.timeout_secs)?,
        retry,
        max_body_bytes: in_range("http.max_page_mb", section.max_page_mb, 1, 4096)? as usize
            * 1024
            * 1024,
    })
}

fn parquet_plan(section: &ParquetSection) -> Result<ParquetSettings, String> {
    Ok(ParquetSettings {
        zstd_level: in_range("parquet.zstd_level", section.zstd_level, 1, 22)? as i32,
        row_group_rows: in_range(
            "parquet.row_group_rows",
            section.row_group_rows,
            1024,
            10_000_000,
        )? as usize,
        max_rows_per_file: in_range(
            "parquet.max_rows_per_file",
            section.max_rows_per_file,
            1,
            100_000_000,
        )? as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn env_with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    const ACCOUNT: (&str, &str) = ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000");

    fn plan(
        toml_text: &str,
        vars: &'static [(&'static str, &'static str)],
    ) -> Result<JobPlan, String> {
        let config: JobConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        JobPlan::from_config(config, None, &env_with(vars))
    }

    const MINIMAL: &str = "name = \"n\"\noutput = \"./lake\"\ntables = [\"insights_metrics\"]\n";

    #[test]
    fn minimal_job_with_token() {
        let p = plan(MINIMAL, &[ACCOUNT, ("TWILIO_AUTH_TOKEN", "t")]).expect("plan");
        assert_eq!(p.tables, vec![Table::InsightsMetrics]);
        assert_eq!(p.twilio.requests_per_second, 25);
        assert_eq!(p.slice_hours, 1);
        assert_eq!(p.output, Output::Local(PathBuf::from("./lake")));
    }

    #[test]
    fn missing_credentials_name_the_variable() {
        let e = plan(MINIMAL, &[ACCOUNT]).expect_err("no token");
        assert!(e.contains("TWILIO_AUTH_TOKEN"), "{e}");
        let e = plan(MINIMAL, &[("TWILIO_AUTH_TOKEN", "t")]).expect_err("no account");
        assert!(e.contains("TWILIO_ACCOUNT_SID"), "{e}");
        let telnyx = "name = \"n\"\noutput = \"o\"\ntables = [\"telnyx_call_events\"]\n";
        let e = plan(telnyx, &[]).expect_err("no key");
        assert!(e.contains("TELNYX_API_KEY"), "{e}");
    }

    #[test]
    fn bad_values_are_precise() {
        let vars: &[(&str, &str)] = &[ACCOUNT, ("TWILIO_AUTH_TOKEN", "t")];
        let cases = [
            ("tables = [\"nope\"]", "unknown table \"nope\""),
            (
                "[twilio]\nrequests_per_second = 0",
                "twilio.requests_per_second = 0",
            ),
            (
                "[twilio]\napi_url = \"http://api.twilio.com\"",
                "only allowed to loopback",
            ),
            (
                "[twilio]\napi_url = \"https://u:p@api.twilio.com\"",
                "credentials do not belong",
            ),
            ("slice = \"30m\"", "whole number of hours"),
            ("lag = \"soon\"", "lag"),
            ("bogus = 1", "unknown field `bogus`"),
        ];
        for (extra, expected) in cases {
            let text = if extra.starts_with("tables") {
                format!("name = \"n\"\noutput = \"o\"\n{extra}\n")
            } else {
                format!("{MINIMAL}{extra}\n")
            };
            let e = plan(&text, vars).expect_err(extra);
            assert!(e.contains(expected), "{extra}: {e}");
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_output_hides_every_secret() {
        let config: JobConfig = toml::from_str(
            "name = \"n\"\noutput = \"o\"\ntables = [\"insights_metrics\", \"telnyx_call_events\"]\n",
        )
        .expect("config");
        let env = |name: &str| match name {
            "TWILIO_ACCOUNT_SID" => Some("AC00000000000000000000000000000000".to_string()),
            "TWILIO_AUTH_TOKEN" => Some("token-secret-123".to_string()),
            "TELNYX_API_KEY" => Some("telnyx-secret-456".to_string()),
            _ => None,
        };
        let plan = JobPlan::from_config(config, None, &env).expect("plan");
        let shown = format!("{plan:?} {plan:#?}");
        assert!(!shown.contains("token-secret-123") && !shown.contains("telnyx-secret-456"));
        assert!(shown.contains("***"));
    }
}
