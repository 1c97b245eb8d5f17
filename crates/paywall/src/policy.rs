//! What to do when the billing backend cannot be reached: [`FailPolicy`].

/// What the paywall does when the billing backend is unreachable or failing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailPolicy {
    /// Answer 503 with `Retry-After` (the default): nothing is served unbilled.
    #[default]
    Closed,
    /// Admit the request. When the customer is known its usage is still metered and
    /// recorded once the backend is back; when even the customer is unknown the request
    /// passes with no customer attached.
    Open,
    /// Keep using the last known budget (its local countdown) while the backend is
    /// down; behave as [`Closed`](FailPolicy::Closed) when nothing is known yet.
    ServeStale,
}
