//! Durable usage: the [`Outbox`] trait.

use std::future::Future;
use std::sync::Arc;

use crate::backend::UsageEvent;
use crate::identity::BoxFuture;

/// The outbox could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("usage outbox: {0}")]
pub struct OutboxError(pub String);

/// Durable storage for usage events not yet acknowledged by the billing backend.
///
/// With an outbox configured, every committed usage event is written to it before the
/// response goes out, deleted once the backend acknowledges it, and whatever is left at
/// start (a crash, a SIGKILL, a deadline passed at shutdown) is sent again with its
/// original idempotency key, so the backend counts it exactly once.
/// `paywall_local::SqliteOutbox` is the SQLite implementation.
pub trait Outbox: Send + Sync + 'static {
    /// Stores an event durably (it must survive the process being killed).
    fn store(&self, event: &UsageEvent) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// Forgets events the backend has acknowledged, by idempotency key.
    fn remove(&self, keys: &[String]) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// Every event still stored, oldest first.
    fn pending(&self) -> impl Future<Output = Result<Vec<UsageEvent>, OutboxError>> + Send;

    /// Stores `event` in place of the events stored under `keys` (a full usage queue
    /// adds events up, and stores their sum in place of them).
    ///
    /// Implement it as one atomic step where the storage allows: this default stores,
    /// then removes, so a crash between the two leaves both (the next start sends the
    /// units twice).
    fn replace(
        &self,
        keys: &[String],
        event: &UsageEvent,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send {
        async move {
            self.store(event).await?;
            self.remove(keys).await
        }
    }
}

impl<T: Outbox> Outbox for Arc<T> {
    fn store(&self, event: &UsageEvent) -> impl Future<Output = Result<(), OutboxError>> + Send {
        T::store(self, event)
    }

    fn remove(&self, keys: &[String]) -> impl Future<Output = Result<(), OutboxError>> + Send {
        T::remove(self, keys)
    }

    fn pending(&self) -> impl Future<Output = Result<Vec<UsageEvent>, OutboxError>> + Send {
        T::pending(self)
    }

    fn replace(
        &self,
        keys: &[String],
        event: &UsageEvent,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send {
        T::replace(self, keys, event)
    }
}

/// The object-safe form of [`Outbox`] the engine stores.
pub(crate) trait DynOutbox: Send + Sync {
    fn store_boxed<'a>(&'a self, event: &'a UsageEvent) -> BoxFuture<'a, Result<(), OutboxError>>;
    fn remove_boxed<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), OutboxError>>;
    fn pending_boxed(&self) -> BoxFuture<'_, Result<Vec<UsageEvent>, OutboxError>>;
    fn replace_boxed<'a>(
        &'a self,
        keys: &'a [String],
        event: &'a UsageEvent,
    ) -> BoxFuture<'a, Result<(), OutboxError>>;
}

impl<T: Outbox> DynOutbox for T {
    fn store_boxed<'a>(&'a self, event: &'a UsageEvent) -> BoxFuture<'a, Result<(), OutboxError>> {
        Box::pin(self.store(event))
    }

    fn remove_boxed<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), OutboxError>> {
        Box::pin(self.remove(keys))
    }

    fn pending_boxed(&self) -> BoxFuture<'_, Result<Vec<UsageEvent>, OutboxError>> {
        Box::pin(self.pending())
    }

    fn replace_boxed<'a>(
        &'a self,
        keys: &'a [String],
        event: &'a UsageEvent,
    ) -> BoxFuture<'a, Result<(), OutboxError>> {
        Box::pin(self.replace(keys, event))
    }
}
