//! What a handler answers before delivery: status, JSON body, extra headers and the rows it
//! carries (for `SimStats::rows_served`); plus the APIs' own error bodies — Twilio
//! `{"code","message","more_info","status"}` and Telnyx `{"errors":[{"code","title","detail"}]}`.

use axum::http::StatusCode;
use serde::Serialize;

/// A response to deliver (whole, dropped mid-body or truncated: see `server`).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// Table name and row count when the body is a page of records.
    pub rows: Option<(&'static str, u64)>,
    /// `Retry-After` value, if any.
    pub retry_after: Option<String>,
    /// `WWW-Authenticate` on Twilio 401s.
    pub www_authenticate: bool,
}

impl Reply {
    /// A 200 carrying `rows` records of `table`.
    pub(crate) fn rows(body: Vec<u8>, table: &'static str, rows: usize) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
            rows: Some((table, rows as u64)),
            retry_after: None,
            www_authenticate: false,
        }
    }

    /// Any status with a JSON body and no rows.
    pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body,
            rows: None,
            retry_after: None,
            www_authenticate: false,
        }
    }

    /// The same reply with a `Retry-After` header.
    pub(crate) fn with_retry_after(mut self, value: Option<String>) -> Reply {
        self.retry_after = value;
        self
    }
}

#[derive(Serialize)]
struct TwilioError<'a> {
    code: u32,
    message: &'a str,
    more_info: String,
    status: u16,
}

#[derive(Serialize)]
struct TelnyxErrors<'a> {
    errors: [TelnyxError<'a>; 1],
}

#[derive(Serialize)]
struct TelnyxError<'a> {
    code: &'a str,
    title: &'a str,
    detail: &'a str,
}

/// A Twilio error body with its status.
pub(crate) fn twilio_error(status: StatusCode, code: u32, message: &str) -> Reply {
    let body = TwilioError {
        code,
        message,
        more_info: format!("https://www.twilio.com/docs/errors/{code}"),
        status: status.as_u16(),
    };
    Reply::json(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// A Telnyx error body with its status.
pub(crate) fn telnyx_error(status: StatusCode, code: &str, title: &str, detail: &str) -> Reply {
    let body = TelnyxErrors {
        errors: [TelnyxError {
            code,
            title,
            detail,
        }],
    };
    Reply::json(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// Twilio's 400 for a bad parameter.
pub(crate) fn twilio_bad_request(message: &str) -> Reply {
    twilio_error(StatusCode::BAD_REQUEST, 20001, message)
}

/// Twilio's 404 for a resource that does not exist.
pub(crate) fn twilio_not_found(path: &str) -> Reply {
    let message = format!("The requested resource {path} was not found");
    twilio_error(StatusCode::NOT_FOUND, 20404, &message)
}

/// Twilio's 401.
pub(crate) fn twilio_unauthorized() -> Reply {
    let mut reply = twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    reply.www_authenticate = true;
    reply
}

/// Twilio's 403 for credentials that may not see this account's records.
pub(crate) fn twilio_forbidden() -> Reply {
    twilio_error(StatusCode::FORBIDDEN, 20003, "Permission Denied")
}

/// Telnyx's 400 for a bad parameter.
pub(crate) fn telnyx_bad_request(detail: &str) -> Reply {
    telnyx_error(StatusCode::BAD_REQUEST, "10015", "Bad Request", detail)
}

/// A 500 for a body that could not be written (should not happen).
pub(crate) fn internal(err: serde_json::Error) -> Reply {
    twilio_error(StatusCode::INTERNAL_SERVER_ERROR, 20500, &err.to_string())
}
