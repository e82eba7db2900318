//! Twilio REST 2010-04-01 records: the call resource (`Calls/{Sid}.json`, and each item of
//! `Calls.json`) with every field of the `api.v2010.account.call` schema, a call's events
//! (`Calls/{Sid}/Events.json`, seed 002: `request`/`response` pairs, no `call_sid`), and the
//! account resource (`Accounts.json`, schema `api.v2010.account`). Every record carries the
//! account of its own call.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::config::CallType;
use super::facts::{CallFacts, call_facts, formatted};
use super::model::{Ctx, SimAccount, SimCall};
use super::rng::{Rng, hash, tag};

/// A call resource: every property of `api.v2010.account.call`, in Twilio's text forms (RFC
/// 2822 dates, `duration` and `queue_time` as strings, `price` a negative decimal string).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CallResource<'a> {
    account_sid: &'a str,
    answered_by: Option<&'static str>,
    api_version: &'static str,
    caller_name: Option<&'static str>,
    date_created: String,
    date_updated: String,
    direction: &'static str,
    duration: String,
    end_time: String,
    forwarded_from: Option<&'static str>,
    from: String,
    from_formatted: String,
    group_sid: Option<&'static str>,
    parent_call_sid: Option<&'static str>,
    phone_number_sid: Option<String>,
    price: String,
    price_unit: &'static str,
    queue_time: &'static str,
    sid: &'a str,
    start_time: String,
    status: &'static str,
    subresource_uris: BTreeMap<&'static str, String>,
    to: String,
    to_formatted: String,
    trunk_sid: Option<String>,
    uri: String,
}

/// An account resource (`api.v2010.account`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccountResource<'a> {
    auth_token: &'a str,
    date_created: String,
    date_updated: String,
    friendly_name: &'a str,
    owner_account_sid: &'a str,
    sid: &'a str,
    status: &'a str,
    subresource_uris: BTreeMap<&'static str, String>,
    #[serde(rename = "type")]
    account_type: &'static str,
    uri: String,
}

/// An account's subresources: (key, path under `/2010-04-01/Accounts/{Sid}/`).
const ACCOUNT_SUBRESOURCES: [(&str, &str); 20] = [
    ("addresses", "Addresses.json"),
    ("applications", "Applications.json"),
    ("authorized_connect_apps", "AuthorizedConnectApps.json"),
    ("available_phone_numbers", "AvailablePhoneNumbers.json"),
    ("balance", "Balance.json"),
    ("calls", "Calls.json"),
    ("conferences", "Conferences.json"),
    ("connect_apps", "ConnectApps.json"),
    ("incoming_phone_numbers", "IncomingPhoneNumbers.json"),
    ("keys", "Keys.json"),
    ("messages", "Messages.json"),
    ("notifications", "Notifications.json"),
    ("outgoing_caller_ids", "OutgoingCallerIds.json"),
    ("queues", "Queues.json"),
    ("recordings", "Recordings.json"),
    ("short_codes", "SMS/ShortCodes.json"),
    ("signing_keys", "SigningKeys.json"),
    ("sip", "SIP.json"),
    ("transcriptions", "Transcriptions.json"),
    ("usage", "Usage.json"),
];

/// The account resource of `account` (with its `auth_token`, as Twilio shows it).
pub(crate) fn account_resource(account: &SimAccount) -> AccountResource<'_> {
    let base = format!("/2010-04-01/Accounts/{}", account.sid);
    AccountResource {
        auth_token: account.auth_token(),
        date_created: rfc2822(account.date_created),
        date_updated: rfc2822(account.date_updated),
        friendly_name: &account.friendly_name,
        owner_account_sid: &account.owner_account_sid,
        sid: &account.sid,
        status: &account.status,
        subresource_uris: ACCOUNT_SUBRESOURCES
            .iter()
            .map(|(key, path)| (*key, format!("{base}/{path}")))
            .collect(),
        account_type: "Full",
        uri: format!("{base}.json"),
    }
}

/// One REST call event: what Twilio requested and what it got back.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CallEventRecord {
    request: EventRequest,
    response: EventResponse,
}

#[derive(Debug, Clone, Serialize)]
struct EventRequest {
    url: String,
    method: &'static str,
    parameters: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, Serialize)]
struct EventResponse {
    content_type: &'static str,
    date_created: String,
    response_body: String,
    response_code: u16,
    request_duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<&'static str>,
}

const SUBRESOURCES: [(&str, &str); 9] = [
    ("events", "Events"),
    ("notifications", "Notifications"),
    ("payments", "Payments"),
    ("recordings", "Recordings"),
    ("siprec", "Siprec"),
    ("streams", "Streams"),
    ("transcriptions", "Transcriptions"),
    (
        "user_defined_message_subscriptions",
        "UserDefinedMessageSubscriptions",
    ),
    ("user_defined_messages", "UserDefinedMessages"),
];
const WEBHOOK_HOST: &str = "https://demo.voxlake.example";

/// The call resource of call `idx`.
pub(crate) fn call_resource<'a>(ctx: &'a Ctx, idx: usize, call: &'a SimCall) -> CallResource<'a> {
    let facts = call_facts(ctx, idx, call.call_type);
    let base = format!(
        "/2010-04-01/Accounts/{}/Calls/{}",
        call.account_sid, call.sid
    );
    let subresource_uris = SUBRESOURCES
        .iter()
        .map(|(key, name)| (*key, format!("{base}/{name}.json")))
        .collect();
    let trunking = matches!(
        call.call_type,
        CallType::TrunkingOriginating | CallType::TrunkingTerminating
    );
    let inbound = facts.direction == "inbound" || facts.direction == "trunking-originating";
    CallResource {
        account_sid: &call.account_sid,
        answered_by: None,
        api_version: "2010-04-01",
        caller_name: None,
        date_created: rfc2822(call.start_time),
        date_updated: rfc2822(call.end_time + Duration::seconds(1)),
        direction: facts.direction,
        duration: call.duration_secs().to_string(),
        end_time: rfc2822(call.end_time),
        forwarded_from: None,
        from_formatted: formatted(&facts.from),
        from: facts.from.clone(),
        group_sid: None,
        parent_call_sid: None,
        phone_number_sid: inbound.then(|| sid("PN", ctx.seed, idx, 1)),
        price: format!("-{:.4}", facts.price_millis as f64 / 1000.0),
        price_unit: "USD",
        queue_time: "0",
        sid: &call.sid,
        start_time: rfc2822(call.start_time),
        status: "completed",
        subresource_uris,
        to_formatted: formatted(&facts.to),
        to: facts.to.clone(),
        trunk_sid: trunking.then(|| sid("TK", ctx.seed, idx, 2)),
        uri: format!("{base}.json"),
    }
}

/// A 34-character SID with this prefix, derived from (seed, call, kind).
fn sid(prefix: &str, seed: u64, idx: usize, kind: u64) -> String {
    let a = hash(&[seed, tag::REST, idx as u64, kind, 0]);
    let b = hash(&[seed, tag::REST, idx as u64, kind, 1]);
    format!("{prefix}{a:016x}{b:016x}")
}

/// The REST events of call `idx` (2 to 8), oldest first.
pub(crate) fn call_events(ctx: &Ctx, idx: usize, call: &SimCall) -> Vec<CallEventRecord> {
    let facts = call_facts(ctx, idx, call.call_type);
    let mut r = Rng::new(&[ctx.seed, tag::REST, idx as u64, u64::MAX]);
    let n = r.range(2, 8) as usize;
    let span = call.duration_secs() as i64;
    let gap = span / (n as i64 - 1).max(1);
    (0..n)
        .map(|k| {
            let mut r = Rng::new(&[ctx.seed, tag::REST, idx as u64, k as u64]);
            let offset = if k + 1 == n {
                span
            } else if k == 0 {
                r.below(3) as i64
            } else {
                k as i64 * gap + r.below((gap / 2).max(1) as u64) as i64
            };
            let at = call.start_time + Duration::seconds(offset.min(span));
            let mut event = match k {
                0 if facts.direction.starts_with("outbound") => api_create(call, &facts),
                _ if k + 1 == n => status_callback(call, &facts, "completed"),
                0 => answer_webhook(call, &facts, "ringing", &mut r),
                _ if k % 2 == 1 => answer_webhook(call, &facts, "in-progress", &mut r),
                _ => status_callback(call, &facts, "in-progress"),
            };
            event.response.date_created = rfc2822(at);
            event.response.request_duration = r.range(20, 900);
            event.response.api_version = ctx.drift.then_some("2010-04-01");
            event
        })
        .collect()
}

/// RFC 2822 as the REST API writes it (PHP's `DATE_RFC2822`, day zero-padded):
/// `Tue, 11 Aug 2020 17:44:08 +0000`, `Thu, 02 May 2024 00:02:21 +0000`.
pub(crate) fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// The parameters Twilio sends to a webhook about this call.
fn webhook_params(
    call: &SimCall,
    facts: &CallFacts,
    status: &str,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("AccountSid", call.account_sid.clone()),
        ("ApiVersion", "2010-04-01".to_string()),
        ("CallSid", call.sid.clone()),
        ("CallStatus", status.to_string()),
        ("Direction", facts.direction.to_string()),
        ("From", facts.from.clone()),
        ("To", facts.to.clone()),
    ])
}

/// The API request that created an outbound call (seed 002's first event).
fn api_create(call: &SimCall, facts: &CallFacts) -> CallEventRecord {
    let parameters = BTreeMap::from([
        ("account_sid", call.account_sid.clone()),
        ("from", facts.from.clone()),
        ("machine_detection_timeout", "0".to_string()),
        ("method", "POST".to_string()),
        ("status_callback_method", "POST".to_string()),
        ("timeout", "55".to_string()),
        ("to", facts.to.clone()),
        ("trim", "trim-silence".to_string()),
        ("url", format!("{WEBHOOK_HOST}/voice/answer")),
    ]);
    CallEventRecord {
        request: EventRequest {
            url: format!(
                "https://api.twilio.com/2010-04-01/Accounts/{}/Calls.json",
                call.account_sid
            ),
            method: "POST",
            parameters,
        },
        response: response(
            "application/json",
            format!("{{\"sid\": \"{}\"}}", call.sid),
            201,
        ),
    }
}

/// Twilio fetching TwiML from the customer's voice URL.
fn answer_webhook(call: &SimCall, facts: &CallFacts, status: &str, r: &mut Rng) -> CallEventRecord {
    let failed = r.chance(0.05);
    let (code, body) = if failed {
        (502, String::new())
    } else {
        (
            200,
            "<Response><Say>Thanks for calling voxlake.</Say><Dial/></Response>".to_string(),
        )
    };
    CallEventRecord {
        request: EventRequest {
            url: format!("{WEBHOOK_HOST}/voice/answer"),
            method: "POST",
            parameters: webhook_params(call, facts, status),
        },
        response: response("text/xml", body, code),
    }
}

/// Twilio posting a status callback.
fn status_callback(call: &SimCall, facts: &CallFacts, status: &str) -> CallEventRecord {
    let mut parameters = webhook_params(call, facts, status);
    if status == "completed" {
        parameters.insert("CallDuration", call.duration_secs().to_string());
    }
    CallEventRecord {
        request: EventRequest {
            url: format!("{WEBHOOK_HOST}/voice/status"),
            method: "POST",
            parameters,
        },
        response: response("text/plain", String::new(), 204),
    }
}

/// A response with the date and duration filled in later.
fn response(content_type: &'static str, body: String, code: u16) -> EventResponse {
    EventResponse {
        content_type,
        date_created: String::new(),
        response_body: body,
        response_code: code,
        request_duration: 0,
        api_version: None,
    }
}
