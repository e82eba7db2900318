//! The simulator's own rate limit: one token bucket per API group, `R` tokens per second with
//! a burst of `max(2, R/10)`. A client pacing itself at exactly `R`/s fits (the burst absorbs
//! network jitter); one sending faster runs dry and gets 429s.

use std::sync::Mutex;
use std::time::Instant;

use super::routes::Api;

/// A token bucket.
#[derive(Debug)]
struct Bucket {
    state: Mutex<(f64, Instant)>,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        let burst = f64::from((rate / 10).max(2));
        Bucket {
            state: Mutex::new((burst, Instant::now())),
            rate: f64::from(rate.max(1)),
            burst,
        }
    }

    /// Takes a token if one is there.
    fn try_take(&self) -> bool {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = *guard;
        let now = Instant::now();
        let refilled =
            (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        if refilled >= 1.0 {
            *guard = (refilled - 1.0, now);
            true
        } else {
            *guard = (refilled, now);
            false
        }
    }
}

/// The three buckets.
#[derive(Debug)]
pub(crate) struct Limits {
    insights: Bucket,
    rest: Bucket,
    telnyx: Bucket,
}

impl Limits {
    /// `rate` requests per second for each API group.
    pub(crate) fn new(rate: u32) -> Self {
        Limits {
            insights: Bucket::new(rate),
            rest: Bucket::new(rate),
            telnyx: Bucket::new(rate),
        }
    }

    /// Whether a request to `api` may go on now.
    pub(crate) fn allow(&self, api: Api) -> bool {
        match api {
            Api::Insights => self.insights.try_take(),
            Api::Rest => self.rest.try_take(),
            Api::Telnyx => self.telnyx.try_take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse() {
        let limits = Limits::new(10);
        assert!(limits.allow(Api::Rest));
        assert!(limits.allow(Api::Rest));
        assert!(!limits.allow(Api::Rest));
        assert!(limits.allow(Api::Telnyx), "buckets are independent");
    }
}
