//! The API clients of a run, built once from the plan: Insights and REST (Twilio credentials),
//! Telnyx (its key); only those the job's tables need.

use std::sync::Arc;

use url::Url;

use crate::error::{Error, Result};
use crate::http::{Api, ApiClient, ApiConfig, Auth, HttpStats};
use crate::job::JobPlan;
use crate::job::plan::Credentials;

/// The clients of a run.
pub(crate) struct Clients {
    insights: Option<ApiClient>,
    rest: Option<ApiClient>,
    telnyx: Option<ApiClient>,
    credentials: Option<Credentials>,
}

fn client(
    plan: &JobPlan,
    api: Api,
    base: &Url,
    auth: &Auth,
    rate: u32,
    concurrency: usize,
) -> Result<ApiClient> {
    ApiClient::new(ApiConfig {
        api,
        base_url: base.clone(),
        auth: auth.clone(),
        requests_per_second: rate,
        concurrency,
        timeout: plan.http.timeout,
        retry: plan.http.retry.clone(),
        max_body_bytes: plan.http.max_body_bytes,
    })
    .map_err(|e| Error::Input(e.to_string()))
}

fn missing(what: &str) -> Error {
    Error::Internal(format!("no {what} configured"))
}

impl Clients {
    /// Builds the clients the plan's tables need.
    pub(crate) fn build(plan: &JobPlan) -> Result<Clients> {
        let credentials = plan.twilio.credentials.clone();
        let twilio = &plan.twilio;
        let (insights, rest) = match &credentials {
            Some(c) => (
                Some(client(
                    plan,
                    Api::TwilioInsights,
                    &twilio.insights_url,
                    &c.auth,
                    twilio.requests_per_second,
                    twilio.concurrency,
                )?),
                Some(client(
                    plan,
                    Api::TwilioRest,
                    &twilio.api_url,
                    &c.auth,
                    twilio.requests_per_second,
                    twilio.concurrency,
                )?),
            ),
            None => (None, None),
        };
        let telnyx = match &plan.telnyx.api_key {
            Some(key) => Some(client(
                plan,
                Api::Telnyx,
                &plan.telnyx.api_url,
                &Auth::Bearer(key.clone()),
                plan.telnyx.requests_per_second,
                plan.telnyx.concurrency,
            )?),
            None => None,
        };
        Ok(Clients {
            insights,
            rest,
            telnyx,
            credentials,
        })
    }

    /// The client of an API.
    pub(crate) fn get(&self, api: Api) -> Result<&ApiClient> {
        let (client, what) = match api {
            Api::TwilioInsights => (&self.insights, "Twilio Insights client"),
            Api::TwilioRest => (&self.rest, "Twilio REST client"),
            Api::Telnyx => (&self.telnyx, "Telnyx client"),
        };
        client.as_ref().ok_or_else(|| missing(what))
    }

    /// Twilio credentials (the account of the REST paths).
    pub(crate) fn credentials(&self) -> Result<&Credentials> {
        self.credentials
            .as_ref()
            .ok_or_else(|| missing("Twilio credentials"))
    }

    /// Counters per API.
    pub(crate) fn stats(&self) -> Vec<(Api, Arc<HttpStats>)> {
        [&self.insights, &self.rest, &self.telnyx]
            .into_iter()
            .flatten()
            .map(|c| (c.api(), c.stats()))
            .collect()
    }
}
