//! Jittered exponential backoff that honours `Retry-After`: the usage recorder's, and
//! the one HTTP backends (`paywall-solvapay`) retry their calls with.

use std::time::Duration;

use rand::Rng;

/// Full-jitter exponential backoff that never waits less than a server's `Retry-After`.
///
/// ```
/// use std::time::Duration;
/// use paywall::backend::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// let wait = backoff.delay(2, None); // between 200 and 400 ms
/// assert!(wait >= Duration::from_millis(200) && wait <= Duration::from_millis(400));
/// assert_eq!(backoff.delay(0, Some(Duration::from_secs(3))), Duration::from_secs(3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first delay.
    initial: Duration,
    /// The largest ceiling, whatever the attempt.
    max: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The wait before retry number `attempt` (0 for the first retry): a random
    /// duration between half and all of `initial * 2^attempt` (capped at `max`), or
    /// `retry_after` when the server asked for longer.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max);
        let jittered = if cap.is_zero() {
            cap
        } else {
            rand::rng().random_range(cap / 2..=cap)
        };
        match retry_after {
            Some(wait) => jittered.max(wait),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_honours_retry_after() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = backoff.delay(0, None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let late = backoff.delay(30, None);
        assert!(late <= Duration::from_secs(2) && late >= Duration::from_secs(1));
        assert_eq!(
            backoff.delay(0, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
    }
}
