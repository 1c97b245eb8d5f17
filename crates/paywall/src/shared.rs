//! Budgets shared by several instances: the [`SharedBudgets`] trait.
//!
//! With per-process budgets, N replicas behind a load balancer each admit up to the
//! customer's whole remaining allowance. A shared store (`paywall_redis::RedisBudgets`)
//! keeps one budget per (customer, product, meter) for all of them. The engine drives
//! it with **leases**: an instance takes a few units at a time from the shared budget,
//! admits requests from them locally (the same compare-and-swap as without a store) and
//! gives back what it did not use once the budget has been idle for a moment. The store
//! decides leases atomically, so the instances together never admit more than the
//! backend allows.
//!
//! The protocol, as the engine uses it:
//!
//! 1. [`lease`](SharedBudgets::lease) asks for `need` units (the request's) and up to
//!    `want` (a prefetch), and settles what the instance owes: units acknowledged by
//!    the backend since the last call (`acks`) and spare units it gives back.
//! 2. The store answers [`LeaseAnswer::Refresh`] when the budget is missing or stale and
//!    this instance should ask the billing backend; the engine asks and hands the answer
//!    to [`install`](SharedBudgets::install) (or reports the failure with
//!    [`refresh_failed`](SharedBudgets::refresh_failed)), then leases again.
//! 3. The global limit is `remaining + acked_before`, where `acked_before` is the
//!    store's count of acknowledged units read *before* the backend call went out (in
//!    the [`RefreshTicket`]); the budget is spent when acknowledged units plus units
//!    leased to live instances reach it. This is the single-process argument of the
//!    engine, made global.
//!
//! 4. A call that failed (a timeout, say) may still have been applied. The engine then
//!    admits nothing more from the units it gave back in it, and sends its
//!    acknowledgements and those units again with its next call on the budget (plus
//!    any new ones). A store should count them once and take back what the failed call
//!    granted, as `paywall_redis` does; counted twice, fewer units are admitted, never
//!    more.
//!
//! Implementations decide how an instance that died holding leased units is detected;
//! whatever they choose, they must bump [`session`](SharedBudgets::session) when this
//! instance's leases may have been forgotten, so the engine stops using them.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Limits;
use crate::customer::CustomerRef;
use crate::identity::BoxFuture;

/// Which shared budget: the customer, the product and the meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BudgetId<'a> {
    /// The billed customer.
    pub customer: &'a CustomerRef,
    /// The product reference.
    pub product: &'a str,
    /// The meter name.
    pub meter: &'a str,
}

/// A lease request, with what the instance settles on the way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Units the waiting request needs; nothing is granted when fewer are left. `0`
    /// is a prefetch ahead of need: stores should grant it only from a fresh budget
    /// and answer [`LeaseAnswer::Refresh`] without taking a refresh lock otherwise, so
    /// that the refresh is left to a request.
    pub need: u64,
    /// Units wanted in all (`>= need`); the store may grant fewer, never less than `need`.
    pub want: u64,
    /// Units the billing backend acknowledged since the last settlement.
    pub acks: u64,
    /// Leased units the instance gives back unused.
    pub give_back: u64,
    /// Grant from the last known budget even when it is stale (the backend is down and
    /// the policy serves stale budgets).
    pub stale_ok: bool,
}

/// The store's answer to a [`LeaseRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseAnswer {
    /// `units` (at least `need`) are this instance's to admit from.
    Granted {
        /// Units granted.
        units: u64,
        /// Identifies the shared budget's incarnation; a change means the store lost
        /// or recreated it, and units leased from the old one are void.
        generation: u64,
        /// The [session](SharedBudgets::session) the units were leased under; they
        /// are void if it is no longer current.
        session: u64,
    },
    /// Fewer than `need` units are left.
    Exhausted {
        /// Units left in the shared budget.
        remaining: u64,
        /// The backend's last answer, for the 402 body.
        limits: Option<Limits>,
    },
    /// The budget is missing or stale: ask the billing backend, then
    /// [`install`](SharedBudgets::install) its answer.
    Refresh(RefreshTicket),
    /// The last refresh failed and the store is backing off; nothing fresh to grant.
    Unavailable {
        /// How long until the next refresh attempt.
        retry_after: Duration,
    },
}

/// Permission to refresh a shared budget from the billing backend.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTicket {
    /// The store's count of acknowledged units, read before the backend is asked.
    pub acked_before: u64,
    /// The refresh lock this instance holds, if it got one (implementation-defined).
    pub lock: Option<String>,
}

impl fmt::Debug for RefreshTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTicket")
            .field("acked_before", &self.acked_before)
            .field("locked", &self.lock.is_some())
            .finish()
    }
}

/// The shared store could not be used. The engine falls back to its local budget (or
/// answers 503, per [`SharedFallback`]) and tries the store again shortly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedError {
    /// The store is unreachable or failed.
    #[error("shared budget store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer within its timeout.
    #[error("shared budget store timed out after {0:?}")]
    Timeout(Duration),
}

/// What the engine does while the shared store is unreachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SharedFallback {
    /// Use this instance's own budget, refreshed from the billing backend as without a
    /// store (the default). Admission stays exact per instance; across N instances it
    /// may reach N times the remaining allowance until the store is back.
    #[default]
    Local,
    /// Answer 503 with `Retry-After`.
    Closed,
}

/// How the engine leases units from the shared store; set with
/// [`PaywallBuilder::leases`](crate::PaywallBuilder::leases).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// What to do while the store is unreachable (default [`SharedFallback::Local`]).
    pub fallback: SharedFallback,
    /// Units leased at a time when a budget starts being used (default 16). Fewer are
    /// granted when little is left (a quarter of what remains, at least the request's
    /// units), so idle leases strand little. `1` asks the store on every request (no
    /// lease ahead of need, so the size never grows).
    pub units: u64,
    /// The most units leased at a time (default 1,024). While a budget is hot (its
    /// lease lasted less than 200 ms) each lease ahead of need asks for twice the last,
    /// up to this; a lease that lasted over 2 s, or a budget gone idle, starts again
    /// from `units`. The store's quarter-of-what-is-left cap applies to every lease, so
    /// the cross-instance bounds do not change.
    pub max_units: u64,
    /// Leased units are given back after the budget has been idle this long (default
    /// 500 ms), so other instances can use them.
    pub idle: Duration,
    /// After the store failed, how long to use the fallback before trying it again
    /// (default 1 s).
    pub retry: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            fallback: SharedFallback::default(),
            units: 16,
            max_units: 1024,
            idle: Duration::from_millis(500),
            retry: Duration::from_secs(1),
        }
    }
}

/// A store of budgets shared by several instances; see the [module docs](self).
pub trait SharedBudgets: Send + Sync + 'static {
    /// Settles `request.acks` and `request.give_back`, then grants units or says why not.
    fn lease(
        &self,
        id: BudgetId<'_>,
        request: LeaseRequest,
    ) -> impl Future<Output = Result<LeaseAnswer, SharedError>> + Send;

    /// Installs the billing backend's answer for a budget this instance was asked to
    /// refresh. A store may ignore it when another instance refreshed meanwhile, and
    /// should when the budget was created or recreated since the ticket was issued
    /// (the ticket's `acked_before` belongs to the budget it saw).
    fn install(
        &self,
        id: BudgetId<'_>,
        ticket: &RefreshTicket,
        limits: &Limits,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), SharedError>> + Send;

    /// The refresh failed: other instances should not try before `retry_after`.
    fn refresh_failed(
        &self,
        id: BudgetId<'_>,
        ticket: &RefreshTicket,
        retry_after: Duration,
    ) -> impl Future<Output = Result<(), SharedError>> + Send;

    /// Settles acknowledgements and gives back unused units, without leasing.
    fn settle(
        &self,
        id: BudgetId<'_>,
        acks: u64,
        give_back: u64,
    ) -> impl Future<Output = Result<(), SharedError>> + Send;

    /// Marks the budget stale so the next lease refreshes it (after a purchase).
    fn mark_stale(&self, id: BudgetId<'_>) -> impl Future<Output = Result<(), SharedError>> + Send;

    /// The current lease session, or `None` when leased units must not be used (the
    /// store has not been reached recently enough to know they are still ours). A
    /// change of session voids every unit leased under the previous one.
    fn session(&self) -> Option<u64>;
}

impl<T: SharedBudgets> SharedBudgets for Arc<T> {
    fn lease(
        &self,
        id: BudgetId<'_>,
        request: LeaseRequest,
    ) -> impl Future<Output = Result<LeaseAnswer, SharedError>> + Send {
        T::lease(self, id, request)
    }

    fn install(
        &self,
        id: BudgetId<'_>,
        ticket: &RefreshTicket,
        limits: &Limits,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), SharedError>> + Send {
        T::install(self, id, ticket, limits, ttl)
    }

    fn refresh_failed(
        &self,
        id: BudgetId<'_>,
        ticket: &RefreshTicket,
        retry_after: Duration,
    ) -> impl Future<Output = Result<(), SharedError>> + Send {
        T::refresh_failed(self, id, ticket, retry_after)
    }

    fn settle(
        &self,
        id: BudgetId<'_>,
        acks: u64,
        give_back: u64,
    ) -> impl Future<Output = Result<(), SharedError>> + Send {
        T::settle(self, id, acks, give_back)
    }

    fn mark_stale(&self, id: BudgetId<'_>) -> impl Future<Output = Result<(), SharedError>> + Send {
        T::mark_stale(self, id)
    }

    fn session(&self) -> Option<u64> {
        T::session(self)
    }
}

/// The object-safe form of [`SharedBudgets`] the engine stores.
pub(crate) trait DynShared: Send + Sync {
    fn lease_boxed<'a>(
        &'a self,
        id: BudgetId<'a>,
        request: LeaseRequest,
    ) -> BoxFuture<'a, Result<LeaseAnswer, SharedError>>;
    fn install_boxed<'a>(
        &'a self,
        id: BudgetId<'a>,
        ticket: &'a RefreshTicket,
        limits: &'a Limits,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), SharedError>>;
    fn refresh_failed_boxed<'a>(
        &'a self,
        id: BudgetId<'a>,
        ticket: &'a RefreshTicket,
        retry_after: Duration,
    ) -> BoxFuture<'a, Result<(), SharedError>>;
    fn settle_boxed<'a>(
        &'a self,
        id: BudgetId<'a>,
        acks: u64,
        give_back: u64,
    ) -> BoxFuture<'a, Result<(), SharedError>>;
    fn mark_stale_boxed<'a>(&'a self, id: BudgetId<'a>) -> BoxFuture<'a, Result<(), SharedError>>;
    fn current_session(&self) -> Option<u64>;
}

impl<T: SharedBudgets> DynShared for T {
    fn lease_boxed<'a>(
        &'a self,
        id: BudgetId<'a>,
        request: LeaseRequest,
    ) -> BoxFuture<'a, Result<LeaseAnswer, SharedError>> {
        Box::pin(self.lease(id, request))
    }

    fn install_boxed<'a>(
        &'a self,
        id: BudgetId<'a>,
        ticket: &'a RefreshTicket,
        limits: &'a Limits,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), SharedError>> {
        Box::pin(self.install(id, ticket, limits, ttl))
    }

    fn refresh_failed_boxed<'a>(
        &'a self,
        id: BudgetId<'a>,
        ticket: &'a RefreshTicket,
        retry_after: Duration,
    ) -> BoxFuture<'a, Result<(), SharedError>> {
        Box::pin(self.refresh_failed(id, ticket, retry_after))
    }

    fn settle_boxed<'a>(
        &'a self,
        id: BudgetId<'a>,
        acks: u64,
        give_back: u64,
    ) -> BoxFuture<'a, Result<(), SharedError>> {
        Box::pin(self.settle(id, acks, give_back))
    }

    fn mark_stale_boxed<'a>(&'a self, id: BudgetId<'a>) -> BoxFuture<'a, Result<(), SharedError>> {
        Box::pin(self.mark_stale(id))
    }

    fn current_session(&self) -> Option<u64> {
        self.session()
    }
}
