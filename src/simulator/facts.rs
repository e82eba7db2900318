//! Per-call facts every API agrees on: parties, direction, codec, quality, where each edge
//! ran, and which device placed a Client call. Derived on demand from (seed, call index), so
//! the Insights, REST and Summary generators describe the same call without sharing storage.

use serde::Serialize;

use super::config::CallType;
use super::model::Ctx;
use super::rng::{Rng, round, tag};

/// Where one edge of a call ran (`metadata` of gateway events and metrics).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Site {
    pub region: &'static str,
    pub edge_location: &'static str,
    pub twilio_ip: String,
    pub external_ip: String,
}

/// A Voice SDK build and the device it ran on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SdkProfile {
    pub sdk_type: &'static str,
    pub version: &'static str,
    pub platform: &'static str,
    pub os_name: &'static str,
    pub os_version: &'static str,
    pub device_model: &'static str,
    pub device_type: &'static str,
    pub device_vendor: &'static str,
    pub device_arch: &'static str,
}

/// A place a caller can be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub city: &'static str,
    pub country_code: &'static str,
    pub subdivision: &'static str,
    pub lat: f64,
    pub lon: f64,
}

/// Media quality of a call: the base every sample varies around.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quality {
    /// Share of packets lost steadily.
    pub loss_ratio: f64,
    /// Packets lost in each burst, and how many samples between bursts.
    pub burst_size: u64,
    pub burst_period: u64,
    pub burst_phase: u64,
    pub mos: f64,
    pub rtt_ms: u64,
    pub jitter_ms: f64,
}

/// Everything about one call that more than one API shows.
#[derive(Debug, Clone)]
pub(crate) struct CallFacts {
    pub from: String,
    pub to: String,
    pub from_e164: String,
    pub to_e164: String,
    pub direction: &'static str,
    pub codec: u32,
    pub codec_name: &'static str,
    pub quality: Quality,
    pub sdk: SdkProfile,
    pub place: Place,
    pub client_name: String,
    pub client_ip: String,
    pub from_carrier: &'static str,
    pub to_carrier: &'static str,
    pub pdd_ms: u64,
    pub ring_secs: u64,
    pub disconnected_by: &'static str,
    pub price_millis: u64,
}

const AREA_CODES: [u32; 8] = [415, 212, 305, 646, 512, 720, 312, 206];
const CARRIERS: [&str; 4] = [
    "AT&T Wireless",
    "T-Mobile USA, Inc.",
    "Verizon Wireless",
    "Twilio",
];
const SITES: [(&str, &str, &str); 6] = [
    ("us1", "ashburn", "54.172.60"),
    ("us1", "umatilla", "54.244.51"),
    ("us2", "roaming", "34.203.250"),
    ("ie1", "dublin", "52.215.127"),
    ("de1", "frankfurt", "35.156.191"),
    ("au1", "sydney", "54.252.254"),
];
const PLACES: [Place; 5] = [
    Place {
        city: "Mountain View",
        country_code: "US",
        subdivision: "California",
        lat: 37.4192,
        lon: -122.0574,
    },
    Place {
        city: "Austin",
        country_code: "US",
        subdivision: "Texas",
        lat: 30.2672,
        lon: -97.7431,
    },
    Place {
        city: "Dublin",
        country_code: "IE",
        subdivision: "Leinster",
        lat: 53.3498,
        lon: -6.2603,
    },
    Place {
        city: "Sao Paulo",
        country_code: "BR",
        subdivision: "Sao Paulo",
        lat: -23.5505,
        lon: -46.6333,
    },
    Place {
        city: "Sydney",
        country_code: "AU",
        subdivision: "New South Wales",
        lat: -33.8688,
        lon: 151.2093,
    },
];
const SDKS: [SdkProfile; 3] = [
    SdkProfile {
        sdk_type: "twilio-voice-android",
        version: "6.4.1",
        platform: "android",
        os_name: "android",
        os_version: "14",
        device_model: "SM-S918B",
        device_type: "SM-S918B",
        device_vendor: "samsung",
        device_arch: "arm64-v8a",
    },
    SdkProfile {
        sdk_type: "twilio-voice-ios",
        version: "6.10.2",
        platform: "ios",
        os_name: "ios",
        os_version: "17.4",
        device_model: "iPhone15,2",
        device_type: "iPhone15,2",
        device_vendor: "apple",
        device_arch: "arm64",
    },
    SdkProfile {
        sdk_type: "twilio-voice.js",
        version: "2.10.2",
        platform: "browser",
        os_name: "mac",
        os_version: "14.4",
        device_model: "Macintosh",
        device_type: "desktop",
        device_vendor: "apple",
        device_arch: "x86_64",
    },
];

/// A stable small code per edge name, for hashing.
pub(crate) fn edge_code(edge: &str) -> u64 {
    match edge {
        "carrier_edge" => 1,
        "sip_edge" => 2,
        "sdk_edge" => 3,
        "client_edge" => 4,
        _ => 0,
    }
}

/// Where `edge` of call `idx` ran.
pub(crate) fn site(ctx: &Ctx, idx: usize, edge: &str) -> Site {
    let mut r = Rng::new(&[ctx.seed, tag::EDGE, idx as u64, edge_code(edge)]);
    let (region, edge_location, prefix) = r.pick(&SITES);
    Site {
        region,
        edge_location,
        twilio_ip: format!("{prefix}.{}", r.range(1, 254)),
        external_ip: format!("203.0.113.{}", r.range(1, 254)),
    }
}

/// The facts of call `idx` of type `call_type`.
pub(crate) fn call_facts(ctx: &Ctx, idx: usize, call_type: CallType) -> CallFacts {
    let mut r = Rng::new(&[ctx.seed, tag::QUALITY, idx as u64]);
    let from_e164 = phone(&mut r);
    let to_e164 = phone(&mut r);
    let client_name = format!("agent_{}", r.range(100, 999));
    let (from, to, direction) = parties(call_type, &from_e164, &to_e164, &client_name);
    let opus = call_type == CallType::Client && r.chance(0.7);
    CallFacts {
        from,
        to,
        from_e164,
        to_e164,
        direction,
        codec: if opus { 111 } else { 0 },
        codec_name: if opus { "opus" } else { "pcmu" },
        quality: quality(&mut r),
        sdk: r.pick(&SDKS),
        place: r.pick(&PLACES),
        client_ip: format!("198.51.100.{}", r.range(1, 254)),
        client_name,
        from_carrier: r.pick(&CARRIERS),
        to_carrier: r.pick(&CARRIERS),
        pdd_ms: r.range(80, 2500),
        ring_secs: r.range(2, 12),
        disconnected_by: if r.chance(0.5) { "caller" } else { "callee" },
        price_millis: r.range(4, 400),
    }
}

/// A North American E.164 number.
fn phone(r: &mut Rng) -> String {
    let area = r.pick(&AREA_CODES);
    format!("+1{area}{:03}{:04}", r.range(200, 999), r.below(10_000))
}

/// `from`, `to` and the REST `direction` of a call of this type.
fn parties(
    call_type: CallType,
    from: &str,
    to: &str,
    client: &str,
) -> (String, String, &'static str) {
    match call_type {
        CallType::Carrier => (from.into(), to.into(), "outbound-api"),
        CallType::Sip => (
            format!("sip:{client}@pbx.voxlake-demo.example"),
            format!("sip:{to}@voxlake-demo.sip.twilio.com"),
            "inbound",
        ),
        CallType::Client => (format!("client:{client}"), to.into(), "inbound"),
        CallType::TrunkingOriginating => (from.into(), to.into(), "trunking-originating"),
        CallType::TrunkingTerminating => (from.into(), to.into(), "trunking-terminating"),
    }
}

/// Mostly good calls, some lossy or jittery ones.
fn quality(r: &mut Rng) -> Quality {
    let bad = r.chance(0.2);
    Quality {
        loss_ratio: if bad {
            r.range(5, 40) as f64 / 1000.0
        } else {
            0.0
        },
        burst_size: if bad || r.chance(0.2) {
            r.range(3, 40)
        } else {
            0
        },
        burst_period: r.range(7, 20),
        burst_phase: r.below(7),
        mos: if bad {
            round(3.2 + r.unit() * 0.8, 2)
        } else {
            round(4.2 + r.unit() * 0.25, 2)
        },
        rtt_ms: if bad {
            r.range(150, 400)
        } else {
            r.range(20, 120)
        },
        jitter_ms: if bad {
            round(5.0 + r.unit() * 25.0, 3)
        } else {
            round(0.3 + r.unit() * 4.0, 3)
        },
    }
}

/// `(305) 191-3581` for a North American number, the input otherwise.
pub(crate) fn formatted(number: &str) -> String {
    let digits = number.strip_prefix("+1").unwrap_or("");
    if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
        format!("({}) {}-{}", &digits[..3], &digits[3..6], &digits[6..])
    } else {
        number.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_nanp_numbers() {
        assert_eq!(formatted("+13051913581"), "(305) 191-3581");
        assert_eq!(formatted("client:agent_1"), "client:agent_1");
    }
}
