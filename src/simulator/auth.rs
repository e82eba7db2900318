//! Credential checks: HTTP Basic (`account_sid:auth_token` or `api_key_sid:secret` of the
//! parent, or a subaccount's `sid:auth_token`) for the Twilio routes, answering *who* asked (a
//! [`Principal`]); `Authorization: Bearer <key>` for Telnyx. Secrets never leave this module
//! (and the model) and `Debug` prints them as `***`.

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// Who a Twilio request authenticated as: an index into `Model::accounts()` (0 = the parent,
/// whose API key counts as the parent too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Principal(pub usize);

/// The credentials the simulator accepts.
pub(crate) struct Credentials {
    basic: Vec<(String, String, Principal)>,
    bearer: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<&str> = self.basic.iter().map(|(u, _, _)| u.as_str()).collect();
        f.debug_struct("Credentials")
            .field("basic_users", &users)
            .field("secrets", &"***")
            .finish()
    }
}

impl Credentials {
    /// Accepts `account:token` and optionally `key:secret` (the parent), each
    /// `subaccount_sid:subaccount_token` (subaccount `k` is principal `k + 1`), and bearer
    /// `telnyx_key`.
    pub(crate) fn new(
        account: &str,
        token: &str,
        api_key: Option<&(String, String)>,
        subaccounts: &[(String, String)],
        telnyx_key: &str,
    ) -> Self {
        let mut basic = vec![(account.to_string(), token.to_string(), Principal(0))];
        basic.extend(api_key.map(|(k, s)| (k.clone(), s.clone(), Principal(0))));
        basic.extend(
            subaccounts
                .iter()
                .enumerate()
                .map(|(k, (sid, token))| (sid.clone(), token.clone(), Principal(k + 1))),
        );
        Credentials {
            basic,
            bearer: telnyx_key.to_string(),
        }
    }

    /// Who the request's Basic credential belongs to; `None` if it has no accepted one.
    pub(crate) fn twilio(&self, headers: &HeaderMap) -> Option<Principal> {
        let encoded = header(headers).and_then(|h| strip_scheme(h, "Basic"))?;
        let decoded = decode_base64(encoded.trim())?;
        let text = std::str::from_utf8(&decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        self.basic
            .iter()
            .find(|(u, p, _)| u == user && p == pass)
            .map(|(_, _, who)| *who)
    }

    /// Whether the request carries the Telnyx bearer token.
    pub(crate) fn telnyx_ok(&self, headers: &HeaderMap) -> bool {
        header(headers)
            .and_then(|h| strip_scheme(h, "Bearer"))
            .is_some_and(|token| token.trim() == self.bearer)
    }
}

/// The `Authorization` header as text.
fn header(headers: &HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION)?.to_str().ok()
}

/// `"<Scheme> rest"` → `rest` (scheme case-insensitive).
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Standard base64 (padding optional); `None` on any other character.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in text.trim_end_matches('=').bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn decodes_base64() {
        assert_eq!(
            decode_base64("dXNlcjpwYXNz").as_deref(),
            Some(&b"user:pass"[..])
        );
        assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YWI").as_deref(), Some(&b"ab"[..]));
        assert!(decode_base64("a*b").is_none());
    }

    #[test]
    fn checks_basic_and_bearer() {
        let key = ("SKk".to_string(), "sec".to_string());
        let sub = [("ab".to_string(), "cd".to_string())];
        let c = Credentials::new("user", "pass", Some(&key), &sub, "tk");
        assert_eq!(c.twilio(&with("Basic dXNlcjpwYXNz")), Some(Principal(0)));
        assert_eq!(c.twilio(&with("Basic U0trOnNlYw==")), Some(Principal(0)));
        assert_eq!(c.twilio(&with("Basic YWI6Y2Q=")), Some(Principal(1)));
        assert_eq!(c.twilio(&with("Basic dXNlcjpwYXN5")), None);
        assert_eq!(c.twilio(&HeaderMap::new()), None);
        assert!(c.telnyx_ok(&with("Bearer tk")));
        assert!(!c.telnyx_ok(&with("Bearer tk2")));
        assert!(!format!("{c:?}").contains("pass"));
        assert!(!format!("{c:?}").contains("cd"));
    }
}
