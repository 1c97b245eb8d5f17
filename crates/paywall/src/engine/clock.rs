//! The engine's one clock: `tokio::time`, so that tests pause and advance it instead of
//! sleeping (`#[tokio::test(start_paused = true)]`). Budgets, refusals, backoffs and
//! leases are timed in whole milliseconds since the engine started.

use std::time::Duration;

use tokio::time::Instant;

/// Milliseconds since the engine started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock at zero now.
    pub(crate) fn start() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// Milliseconds since [`start`](Self::start).
    pub(crate) fn now_ms(&self) -> u64 {
        millis(self.origin.elapsed())
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time() {
        let clock = Clock::start();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.now_ms(), 1_500);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
