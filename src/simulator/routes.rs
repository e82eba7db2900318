//! Which API route a request path names, and the facts about a route the server needs before
//! handling it: its API group (auth, rate limit, error body style), its stats name, and the
//! call or conference SID it is about.

use axum::http::Method;

/// The three API groups: each has its own auth, rate-limit bucket and error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `/v1/…` (Twilio Voice Insights).
    Insights,
    /// `/2010-04-01/…` (Twilio REST).
    Rest,
    /// `/v2/…` (Telnyx).
    Telnyx,
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    InsightsEvents {
        sid: String,
    },
    InsightsMetrics {
        sid: String,
    },
    Summary {
        sid: String,
    },
    Summaries,
    Conferences,
    Conference {
        sid: String,
    },
    ConferenceParticipants {
        sid: String,
    },
    ConferenceParticipant {
        sid: String,
        participant: String,
    },
    Accounts,
    Account {
        account: String,
    },
    CallEvents {
        account: String,
        sid: String,
    },
    Call {
        account: String,
        sid: String,
    },
    Calls {
        account: String,
    },
    TelnyxEvents,
    /// An API path with a method other than GET.
    NotAllowed(Api),
    NotFound,
}

impl Route {
    /// Parses a method and a path.
    pub(crate) fn parse(method: &Method, path: &str) -> Route {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let route = match segments.as_slice() {
            ["v1", "Voice", "Summaries"] => Route::Summaries,
            ["v1", "Voice", sid, "Events"] => Route::InsightsEvents {
                sid: sid.to_string(),
            },
            ["v1", "Voice", sid, "Metrics"] => Route::InsightsMetrics {
                sid: sid.to_string(),
            },
            ["v1", "Voice", sid, "Summary"] => Route::Summary {
                sid: sid.to_string(),
            },
            ["v1", "Conferences"] => Route::Conferences,
            ["v1", "Conferences", sid] => Route::Conference {
                sid: sid.to_string(),
            },
            ["v1", "Conferences", sid, "Participants"] => Route::ConferenceParticipants {
                sid: sid.to_string(),
            },
            ["v1", "Conferences", sid, "Participants", participant] => {
                Route::ConferenceParticipant {
                    sid: sid.to_string(),
                    participant: participant.to_string(),
                }
            }
            ["2010-04-01", "Accounts.json"] => Route::Accounts,
            ["2010-04-01", "Accounts", file] if file.ends_with(".json") => Route::Account {
                account: file.trim_end_matches(".json").to_string(),
            },
            ["2010-04-01", "Accounts", account, "Calls.json"] => Route::Calls {
                account: account.to_string(),
            },
            ["2010-04-01", "Accounts", account, "Calls", file] if file.ends_with(".json") => {
                Route::Call {
                    account: account.to_string(),
                    sid: file.trim_end_matches(".json").to_string(),
                }
            }
            [
                "2010-04-01",
                "Accounts",
                account,
                "Calls",
                sid,
                "Events.json",
            ] => Route::CallEvents {
                account: account.to_string(),
                sid: sid.to_string(),
            },
            ["v2", "call_events"] => Route::TelnyxEvents,
            _ => Route::NotFound,
        };
        match route.api() {
            Some(api) if method != Method::GET => Route::NotAllowed(api),
            _ => route,
        }
    }

    /// The API group, `None` for an unknown path.
    pub(crate) fn api(&self) -> Option<Api> {
        match self {
            Route::InsightsEvents { .. }
            | Route::InsightsMetrics { .. }
            | Route::Summary { .. }
            | Route::Summaries
            | Route::Conferences
            | Route::Conference { .. }
            | Route::ConferenceParticipants { .. }
            | Route::ConferenceParticipant { .. } => Some(Api::Insights),
            Route::CallEvents { .. }
            | Route::Call { .. }
            | Route::Calls { .. }
            | Route::Accounts
            | Route::Account { .. } => Some(Api::Rest),
            Route::TelnyxEvents => Some(Api::Telnyx),
            Route::NotAllowed(api) => Some(*api),
            Route::NotFound => None,
        }
    }

    /// The name in `SimStats::requests_by_route`.
    pub(crate) fn name(&self) -> Option<&'static str> {
        match self {
            Route::InsightsEvents { .. } => Some("insights_events"),
            Route::InsightsMetrics { .. } => Some("insights_metrics"),
            Route::Summary { .. } => Some("summary"),
            Route::Summaries => Some("summaries"),
            Route::Conferences => Some("conferences"),
            Route::Conference { .. } => Some("conference"),
            Route::ConferenceParticipants { .. } => Some("conference_participants"),
            Route::ConferenceParticipant { .. } => Some("conference_participant"),
            Route::Accounts => Some("accounts"),
            Route::Account { .. } => Some("account"),
            Route::CallEvents { .. } => Some("call_events"),
            Route::Call { .. } => Some("call"),
            Route::Calls { .. } => Some("calls"),
            Route::TelnyxEvents => Some("telnyx_call_events"),
            Route::NotAllowed(_) | Route::NotFound => None,
        }
    }

    /// The call SID a per-call route is about.
    pub(crate) fn call_sid(&self) -> Option<&str> {
        match self {
            Route::InsightsEvents { sid }
            | Route::InsightsMetrics { sid }
            | Route::Summary { sid }
            | Route::CallEvents { sid, .. }
            | Route::Call { sid, .. } => Some(sid),
            _ => None,
        }
    }

    /// The conference SID a per-conference route is about.
    pub(crate) fn conference_sid(&self) -> Option<&str> {
        match self {
            Route::Conference { sid }
            | Route::ConferenceParticipants { sid }
            | Route::ConferenceParticipant { sid, .. } => Some(sid),
            _ => None,
        }
    }
}

/// Whether `sid` is `prefix` + 32 hex digits (`^CA[0-9a-fA-F]{32}$`).
pub(crate) fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.len() == 34 && sid.starts_with(prefix) && sid.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_route() {
        let get = |p: &str| Route::parse(&Method::GET, p);
        let sid = format!("CA{}", "a".repeat(32));
        assert_eq!(get("/v1/Voice/Summaries"), Route::Summaries);
        assert_eq!(
            get(&format!("/v1/Voice/{sid}/Metrics")),
            Route::InsightsMetrics { sid: sid.clone() }
        );
        assert_eq!(
            get(&format!("/2010-04-01/Accounts/AC1/Calls/{sid}.json")),
            Route::Call {
                account: "AC1".into(),
                sid: sid.clone()
            }
        );
        assert_eq!(
            get("/2010-04-01/Accounts/AC1/Calls.json").name(),
            Some("calls")
        );
        assert_eq!(get("/v2/call_events"), Route::TelnyxEvents);
        let cf = format!("CF{}", "b".repeat(32));
        assert_eq!(get("/v1/Conferences"), Route::Conferences);
        assert_eq!(
            get(&format!("/v1/Conferences/{cf}")).conference_sid(),
            Some(cf.as_str())
        );
        assert_eq!(
            get(&format!("/v1/Conferences/{cf}/Participants")).name(),
            Some("conference_participants")
        );
        assert_eq!(
            get(&format!("/v1/Conferences/{cf}/Participants/CP1")),
            Route::ConferenceParticipant {
                sid: cf.clone(),
                participant: "CP1".into()
            }
        );
        assert_eq!(get("/2010-04-01/Accounts.json"), Route::Accounts);
        assert_eq!(
            get("/2010-04-01/Accounts/AC1.json"),
            Route::Account {
                account: "AC1".into()
            }
        );
        assert_eq!(
            Route::parse(&Method::POST, "/v1/Conferences"),
            Route::NotAllowed(Api::Insights)
        );
        assert_eq!(get("/"), Route::NotFound);
        assert_eq!(
            Route::parse(&Method::POST, "/v2/call_events"),
            Route::NotAllowed(Api::Telnyx)
        );
        assert!(is_sid(&sid, "CA"));
        assert!(!is_sid("CA123", "CA"));
    }
}
