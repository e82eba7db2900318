//! When to retry (classification) and how long to wait (backoff with jitter, `Retry-After`).

use std::time::{Duration, SystemTime};

use rand::Rng;

/// Retry settings: attempts, backoff and the longest `Retry-After` honoured.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (≥ 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Cap on one backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff after failed attempt number `attempt` (1-based): exponential, capped, with
    /// "equal jitter" (half fixed, half random) so that clients spread out but never hammer.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let half = full / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// The wait before the next attempt: the server's `Retry-After` when it gave a positive one
    /// (capped at `max_delay`), else the backoff. `Retry-After: 0` falls back to the backoff so
    /// that it never turns into a hot loop.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) if !wait.is_zero() => wait.min(self.max_delay),
            _ => self.backoff(attempt),
        }
    }
}

/// Statuses worth another attempt: throttling and transient server errors.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date.
///
/// ```
/// use std::time::Duration;
/// use voxlake::http::retry::parse_retry_after;
/// assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
/// assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
/// assert_eq!(parse_retry_after("soon"), None);
/// ```
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = policy.backoff(9);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn retry_after_wins_but_zero_does_not_spin() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert!(policy.delay(1, Some(Duration::ZERO)) >= Duration::from_millis(250));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            policy.max_delay
        );
    }

    #[test]
    fn http_dates_in_the_future() {
        let later = SystemTime::now() + Duration::from_secs(120);
        let wait = parse_retry_after(&httpdate::fmt_http_date(later)).expect("date");
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
    }
}
