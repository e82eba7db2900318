//! Identifiers checked before they are used in a URL or a path: Twilio call and account SIDs,
//! Telnyx leg and session UUIDs.

use std::fmt;
use std::str::FromStr;

/// A Twilio call SID: `CA` followed by 32 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallSid(String);

/// A Twilio account SID: `AC` followed by 32 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountSid(String);

/// A Twilio conference SID: `CF` followed by 32 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConferenceSid(String);

/// A Twilio conference participant SID: `CP` followed by 32 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantSid(String);

/// A Telnyx call leg or session id: a UUID in its canonical 8-4-4-4-12 hex form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TelnyxId(String);

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {shown:?} is malformed: expected {expected}")]
pub struct IdError {
    kind: &'static str,
    shown: String,
    expected: &'static str,
}

fn id_error(kind: &'static str, value: &str, expected: &'static str) -> IdError {
    // Show at most 40 characters: the value comes from the user and may be anything.
    let shown: String = value.chars().take(40).collect();
    IdError {
        kind,
        shown,
        expected,
    }
}

/// True when `value` is `prefix` followed by exactly 32 ASCII hex digits.
fn is_twilio_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34
        && value.starts_with(prefix)
        && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl FromStr for CallSid {
    type Err = IdError;
    fn from_str(value: &str) -> Result<Self, IdError> {
        if is_twilio_sid(value, "CA") {
            Ok(CallSid(value.to_string()))
        } else {
            Err(id_error("call SID", value, "CA followed by 32 hex digits"))
        }
    }
}

/// `FromStr` for a Twilio SID type: `prefix` and 32 hex digits.
macro_rules! twilio_sid {
    ($t:ty, $prefix:literal, $kind:literal) => {
        impl FromStr for $t {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                if is_twilio_sid(value, $prefix) {
                    Ok(Self(value.to_string()))
                } else {
                    Err(id_error(
                        $kind,
                        value,
                        concat!($prefix, " followed by 32 hex digits"),
                    ))
                }
            }
        }
    };
}
twilio_sid!(ConferenceSid, "CF", "conference SID");
twilio_sid!(ParticipantSid, "CP", "participant SID");

impl FromStr for AccountSid {
    type Err = IdError;
    fn from_str(value: &str) -> Result<Self, IdError> {
        if is_twilio_sid(value, "AC") {
            Ok(AccountSid(value.to_string()))
        } else {
            Err(id_error(
                "account SID",
                value,
                "AC followed by 32 hex digits",
            ))
        }
    }
}

impl FromStr for TelnyxId {
    type Err = IdError;
    fn from_str(value: &str) -> Result<Self, IdError> {
        let groups: Vec<&str> = value.split('-').collect();
        let lengths_ok = groups.len() == 5 && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
        if lengths_ok
            && groups
                .iter()
                .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            Ok(TelnyxId(value.to_ascii_lowercase()))
        } else {
            Err(id_error(
                "Telnyx id",
                value,
                "a UUID like 308fe500-5213-11e9-ace7-02420a0f0668",
            ))
        }
    }
}

/// Who a lake's hour files, slice records and journals belong to: a Twilio account (its SID),
/// or a Telnyx account (`telnyx-` and its key's fingerprint). Part of every data file's name,
/// so one account's runs never replace another's rows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(String);

impl Owner {
    /// A Twilio account.
    pub fn twilio(account: &AccountSid) -> Owner {
        Owner(account.0.clone())
    }

    /// The Telnyx account of an API key.
    pub fn telnyx(key: &crate::secret::Secret) -> Owner {
        Owner(format!("telnyx-{}", key.fingerprint()))
    }

    /// Parses an owner as it appears in paths (an account SID, or `telnyx-` + 12 hex digits).
    pub fn parse(text: &str) -> Option<Owner> {
        let telnyx = text
            .strip_prefix("telnyx-")
            .is_some_and(|f| f.len() == 12 && f.bytes().all(|b| b.is_ascii_hexdigit()));
        (telnyx || is_twilio_sid(text, "AC")).then(|| Owner(text.to_string()))
    }
}

macro_rules! id_common {
    ($t:ty) => {
        impl $t {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
id_common!(CallSid);
id_common!(AccountSid);
id_common!(TelnyxId);
id_common!(ConferenceSid);
id_common!(ParticipantSid);
id_common!(Owner);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_sids_are_checked() {
        assert!(
            "CA03a02b156c6faa96c86906f7e9ad0f38"
                .parse::<CallSid>()
                .is_ok()
        );
        for bad in [
            "",
            "CA03a02b156c6faa96c86906f7e9ad0f3",
            "CA03a02b156c6faa96c86906f7e9ad0f3g",
            "AC03a02b156c6faa96c86906f7e9ad0f38",
            "CA../../../../etc/passwd/aaaaaaaaaaa",
            "CAé3a02b156c6faa96c86906f7e9ad0f38",
        ] {
            assert!(bad.parse::<CallSid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn conference_and_participant_sids_are_checked() {
        let cf = format!("CF{}", "a".repeat(32));
        assert!(cf.parse::<ConferenceSid>().is_ok());
        assert!(
            format!("CP{}", "0".repeat(32))
                .parse::<ParticipantSid>()
                .is_ok()
        );
        for bad in [
            "",
            &format!("CA{}", "a".repeat(32)),
            &format!("CF{}", "a".repeat(31)),
            &format!("CF{}g", "a".repeat(31)),
        ] {
            assert!(bad.parse::<ConferenceSid>().is_err(), "{bad}");
        }
        assert!(cf.parse::<ParticipantSid>().is_err());
    }

    #[test]
    fn telnyx_ids_are_uuids() {
        assert!(
            "308fe500-5213-11e9-ace7-02420a0f0668"
                .parse::<TelnyxId>()
                .is_ok()
        );
        assert!(
            "308fe500-5213-11e9-ace7-02420a0f066"
                .parse::<TelnyxId>()
                .is_err()
        );
        assert!(
            "308fe500-5213-11e9-ace7-02420a0f066&"
                .parse::<TelnyxId>()
                .is_err()
        );
    }
}
