//! What the billing routes remember so that a caller's requests do not each become a
//! provider call: the credit balance and the purchases of a customer for a few seconds,
//! the checkout link of a customer, product, plan and return URL while it is fresh,
//! and how many checkout sessions a customer opened this minute. Everything is dropped
//! when the paywall invalidates a customer (a webhook, a purchase, a cancellation).
//! The catalogue (merchant, products, plans: the same for every caller) is kept a
//! minute.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::account::{Credits, Purchase};
use crate::customer::CustomerRef;

/// How long a customer's credits and purchases are reused.
const READ_TTL: Duration = Duration::from_secs(5);
/// How long a checkout link is handed out again for the same request.
const CHECKOUT_TTL: Duration = Duration::from_secs(120);
/// The window of the checkout rate limit.
pub(super) const CHECKOUT_WINDOW: Duration = Duration::from_secs(60);
/// New checkout sessions a customer may open per window.
pub(super) const CHECKOUTS_PER_WINDOW: u32 = 10;
/// How long the catalogue is reused.
const CATALOGUE_TTL: Duration = Duration::from_secs(60);
/// Customers remembered at most, per cache.
const CAPACITY: u64 = 100_000;

/// A checkout request, as far as reusing its link goes.
pub(super) type CheckoutKey = (CustomerRef, String, Option<String>, Option<String>);

/// A value and the paywall's invalidation count when it was read.
#[derive(Clone)]
struct Stamped<T> {
    epoch: u64,
    value: T,
}

pub(super) struct BillingCache {
    credits: Cache<CustomerRef, Stamped<Option<Credits>>>,
    purchases: Cache<CustomerRef, Stamped<Arc<Vec<Purchase>>>>,
    checkouts: Cache<CheckoutKey, Stamped<Arc<str>>>,
    opened: Cache<CustomerRef, Arc<AtomicU32>>,
    catalogue: Cache<String, Arc<serde_json::Value>>,
}

impl std::fmt::Debug for BillingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingCache")
            .field("customers", &self.credits.entry_count())
            .finish_non_exhaustive()
    }
}

fn fresh<T: Clone>(stamped: Option<Stamped<T>>, epoch: u64) -> Option<T> {
    stamped
        .filter(|stamped| stamped.epoch == epoch)
        .map(|stamped| stamped.value)
}

impl BillingCache {
    pub(super) fn new() -> Self {
        Self {
            credits: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(READ_TTL)
                .build(),
            purchases: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(READ_TTL)
                .build(),
            checkouts: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(CHECKOUT_TTL)
                .build(),
            opened: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(CHECKOUT_WINDOW)
                .build(),
            catalogue: Cache::builder()
                .max_capacity(1_000)
                .time_to_live(CATALOGUE_TTL)
                .build(),
        }
    }

    pub(super) async fn credits(
        &self,
        customer: &CustomerRef,
        epoch: u64,
    ) -> Option<Option<Credits>> {
        fresh(self.credits.get(customer).await, epoch)
    }

    pub(super) async fn keep_credits(
        &self,
        customer: &CustomerRef,
        epoch: u64,
        value: Option<Credits>,
    ) {
        self.credits
            .insert(customer.clone(), Stamped { epoch, value })
            .await;
    }

    pub(super) async fn purchases(
        &self,
        customer: &CustomerRef,
        epoch: u64,
    ) -> Option<Arc<Vec<Purchase>>> {
        fresh(self.purchases.get(customer).await, epoch)
    }

    pub(super) async fn keep_purchases(
        &self,
        customer: &CustomerRef,
        epoch: u64,
        value: Arc<Vec<Purchase>>,
    ) {
        self.purchases
            .insert(customer.clone(), Stamped { epoch, value })
            .await;
    }

    pub(super) async fn checkout(&self, key: &CheckoutKey, epoch: u64) -> Option<Arc<str>> {
        fresh(self.checkouts.get(key).await, epoch)
    }

    pub(super) async fn keep_checkout(&self, key: CheckoutKey, epoch: u64, value: Arc<str>) {
        self.checkouts.insert(key, Stamped { epoch, value }).await;
    }

    /// Counts one more checkout session for `customer`; false past the limit.
    pub(super) async fn may_open_checkout(&self, customer: &CustomerRef) -> bool {
        let opened = self
            .opened
            .get_with(customer.clone(), async { Arc::new(AtomicU32::new(0)) })
            .await;
        opened.fetch_add(1, Ordering::AcqRel) < CHECKOUTS_PER_WINDOW
    }

    /// A catalogue answer (`merchant`, `product:…`, `plans:…`) read in the last minute.
    pub(super) async fn catalogue(&self, key: &str) -> Option<Arc<serde_json::Value>> {
        self.catalogue.get(key).await
    }

    pub(super) async fn keep_catalogue(&self, key: String, value: Arc<serde_json::Value>) {
        self.catalogue.insert(key, value).await;
    }
}
