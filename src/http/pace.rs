//! Adaptive pacing (additive increase, multiplicative decrease): when 429s keep coming although
//! the governor limiter is respected, the server's real limit is lower than the job's; the
//! client halves its own rate (at most once a second), then raises it again by one request per
//! second each second, back to the job's rate. Each change of direction is logged once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::Api;

/// The slowest pace: one request every two seconds.
const MIN_RATE: f64 = 0.5;

#[derive(Debug)]
struct State {
    rate: f64,
    next_at: Instant,
    last_decrease: Option<Instant>,
}

/// The pace of one client.
#[derive(Debug)]
pub struct Pace {
    api: Api,
    max_rate: f64,
    state: Mutex<State>,
}

impl Pace {
    /// Starts at the job's rate.
    pub fn new(api: Api, max_rate: f64) -> Pace {
        Pace {
            api,
            max_rate,
            state: Mutex::new(State {
                rate: max_rate,
                next_at: Instant::now(),
                last_decrease: None,
            }),
        }
    }

    /// The current rate, requests per second.
    pub fn rate(&self) -> f64 {
        self.state.lock().map(|s| s.rate).unwrap_or(self.max_rate)
    }

    /// How long to wait before the next request (zero at the full rate: the limiter paces).
    pub fn reserve(&self) -> Duration {
        let Ok(mut state) = self.state.lock() else {
            return Duration::ZERO;
        };
        if state.rate >= self.max_rate {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let at = state.next_at.max(now);
        state.next_at = at + Duration::from_secs_f64(1.0 / state.rate);
        at - now
    }

    /// A 429: halve the rate, at most once a second.
    pub fn throttled(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        if state
            .last_decrease
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        state.last_decrease = Some(now);
        let lowered = (state.rate / 2.0).max(MIN_RATE);
        if lowered < state.rate {
            tracing::warn!(api = %self.api, from = state.rate, to = lowered,
                "429s although the limiter is respected: lowering the request rate");
            state.rate = lowered;
        }
    }

    /// A success: add one request per second per second, back to the job's rate.
    pub fn succeeded(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.rate >= self.max_rate {
            return;
        }
        state.rate = (state.rate + 1.0 / state.rate).min(self.max_rate);
        if state.rate >= self.max_rate {
            tracing::info!(api = %self.api, rate = self.max_rate, "request rate back to the job's rate");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_once_a_second_and_climbs_back() {
        let pace = Pace::new(Api::TwilioRest, 8.0);
        assert_eq!(pace.reserve(), Duration::ZERO);
        pace.throttled();
        pace.throttled();
        assert_eq!(pace.rate(), 4.0);
        assert!(pace.reserve() <= Duration::from_millis(1));
        let second = pace.reserve();
        assert!(second > Duration::from_millis(200) && second <= Duration::from_millis(250));
        for _ in 0..100 {
            pace.succeeded();
        }
        assert_eq!(pace.rate(), 8.0);
    }

    #[test]
    fn never_below_the_floor() {
        let pace = Pace::new(Api::Telnyx, 1.0);
        let mut state = pace.state.lock().expect("lock");
        state.rate = MIN_RATE;
        drop(state);
        pace.throttled();
        assert_eq!(pace.rate(), MIN_RATE);
    }
}
