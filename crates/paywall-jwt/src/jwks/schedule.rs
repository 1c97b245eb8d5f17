//! When the JWKS may be fetched: [`Schedule`], the on-demand budget and the back-off
//! after failed fetches.
//!
//! * **On-demand budget.** A token naming an unknown `kid` may trigger a fetch. Such
//!   fetches draw from a small token bucket (by default 2, one more every 30 s), so the
//!   first unknown `kid` after start-up or after a rotation is fetched at once, and a
//!   flood of forged `kid`s costs at most a couple of fetches per minute. Fetches made
//!   at start-up and by the periodic refresh do not draw from it.
//! * **Back-off.** After a failed fetch, the next attempt (on demand or in the
//!   background) waits 1 s, then 2 s, 4 s… up to 10 s. The wait left is what a 503 says
//!   in `Retry-After`, so a client that retries when told finds a fetch allowed.
//!
//! Pure state over `Instant`s, tested without a clock.

use std::time::{Duration, Instant};

/// The budget and back-off settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Budget {
    /// On-demand fetches allowed at once.
    pub(crate) burst: u32,
    /// One more on-demand fetch is allowed per this interval.
    pub(crate) every: Duration,
    /// The first wait after a failed fetch (doubled per further failure).
    pub(crate) min_backoff: Duration,
    /// The longest wait after failures.
    pub(crate) max_backoff: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            burst: 2,
            every: Duration::from_secs(30),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Whether a fetch may start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Start it.
    Fetch,
    /// Not before this long.
    Wait(Duration),
}

#[derive(Debug)]
pub(crate) struct Schedule {
    budget: Budget,
    /// On-demand fetches available, in units of `1 / every` (fractions accumulate).
    tokens: f64,
    refilled: Instant,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Schedule {
    pub(crate) fn new(budget: Budget, now: Instant) -> Self {
        Self {
            tokens: f64::from(budget.burst),
            budget,
            refilled: now,
            failures: 0,
            retry_at: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        self.refilled = now;
        let every = self.budget.every.as_secs_f64().max(f64::EPSILON);
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() / every).min(f64::from(self.budget.burst));
    }

    /// Whether the back-off after a failure still runs, and for how long.
    pub(crate) fn backing_off(&self, now: Instant) -> Option<Duration> {
        self.retry_at
            .map(|at| at.saturating_duration_since(now))
            .filter(|wait| !wait.is_zero())
    }

    /// May an on-demand fetch start now? With no key known yet, only the back-off
    /// applies (every request needs the keys); otherwise it also draws on the budget.
    pub(crate) fn on_demand(&mut self, now: Instant, keys_known: bool) -> Permit {
        if let Some(wait) = self.backing_off(now) {
            return Permit::Wait(wait);
        }
        if !keys_known {
            return Permit::Fetch;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Permit::Fetch;
        }
        let missing = 1.0 - self.tokens;
        Permit::Wait(
            self.budget
                .every
                .mul_f64(missing)
                .max(Duration::from_millis(1)),
        )
    }

    /// A fetch succeeded: the back-off ends.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    /// A fetch failed: returns how long until the next attempt.
    pub(crate) fn failed(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(16);
        let wait = self
            .budget
            .min_backoff
            .saturating_mul(1 << doublings)
            .min(self.budget.max_backoff);
        self.retry_at = Some(now + wait);
        wait
    }

    /// Whether the last fetch failed.
    pub(crate) fn failing(&self) -> bool {
        self.failures > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_unknown_kids_fetch_at_once_then_the_budget_refills_slowly() {
        let start = Instant::now();
        let mut schedule = Schedule::new(Budget::default(), start);
        assert_eq!(schedule.on_demand(start, true), Permit::Fetch);
        assert_eq!(schedule.on_demand(start, true), Permit::Fetch);
        assert_eq!(schedule.on_demand(start, true), Permit::Wait(30 * S));
        assert_eq!(
            schedule.on_demand(start + 20 * S, true),
            Permit::Wait(10 * S)
        );
        assert_eq!(schedule.on_demand(start + 30 * S, true), Permit::Fetch);
        // A minute of forged kids every 100 ms: two more fetches at most.
        let fetched = (1..=600)
            .filter(|i| schedule.on_demand(start + 30 * S + S / 10 * *i, true) == Permit::Fetch)
            .count();
        assert!((1..=2).contains(&fetched), "{fetched}");
    }

    #[test]
    fn failures_back_off_and_the_wait_announced_is_the_wait_enforced() {
        let start = Instant::now();
        let mut schedule = Schedule::new(Budget::default(), start);
        assert_eq!(schedule.failed(start), S);
        assert!(schedule.failing());
        assert_eq!(schedule.on_demand(start, false), Permit::Wait(S));
        assert_eq!(schedule.on_demand(start + S, false), Permit::Fetch);
        assert_eq!(schedule.failed(start + S), 2 * S);
        assert_eq!(schedule.failed(start + 3 * S), 4 * S);
        for _ in 0..10 {
            schedule.failed(start);
        }
        assert_eq!(schedule.backing_off(start), Some(10 * S), "capped");
        schedule.succeeded();
        assert!(!schedule.failing());
        assert_eq!(schedule.on_demand(start, false), Permit::Fetch);
    }

    #[test]
    fn without_keys_only_the_back_off_limits_fetches() {
        let start = Instant::now();
        let mut schedule = Schedule::new(Budget::default(), start);
        for _ in 0..10 {
            assert_eq!(schedule.on_demand(start, false), Permit::Fetch);
        }
    }
}
