//! The caller's account on the embedded backend, for the billing routes: purchases,
//! cancelling one (only the customer's own), and short-lived customer-portal sessions
//! (the page itself is [`portal`](crate::portal)).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use paywall::backend::{BackendError, CheckoutRequest, Purchase};
use paywall::CustomerRef;
use rusqlite::{params, OptionalExtension};

use crate::directory::{self, PurchaseRecord};
use crate::{ledger, LocalBackend, LocalError};

/// How long a portal link works.
pub const PORTAL_SESSION_TTL: Duration = Duration::from_secs(15 * 60);

impl LocalBackend {
    /// The purchases of `customer`, newest first.
    pub async fn purchases_of(&self, customer: &str) -> Result<Vec<PurchaseRecord>, LocalError> {
        let customer = customer.to_owned();
        self.run(move |conn| {
            directory::find_by(conn, directory::Column::Reference, &customer)?
                .map(|record| record.purchases)
                .ok_or_else(|| LocalError::NotFound(format!("customer {customer}")))
        })
        .await
    }

    /// Cancels `customer`'s active purchase `purchase`; [`LocalError::NotFound`] when
    /// `customer` has no such active purchase. The customer falls back to the free plan.
    pub async fn cancel_purchase_of(
        &self,
        customer: &str,
        purchase: &str,
    ) -> Result<PurchaseRecord, LocalError> {
        let (customer, purchase) = (customer.to_owned(), purchase.to_owned());
        self.run(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE purchases SET status = 'cancelled', cancelled_at = ?3
                 WHERE reference = ?1 AND customer_ref = ?2 AND status = 'active'",
                )?
                .execute(params![purchase, customer, ledger::now_ms()])?;
            if changed == 0 {
                return Err(LocalError::NotFound(format!("purchase {purchase}")));
            }
            directory::find_by(conn, directory::Column::Reference, &customer)?
                .and_then(|record| {
                    record
                        .purchases
                        .into_iter()
                        .find(|p| p.reference == purchase)
                })
                .ok_or_else(|| LocalError::NotFound(format!("purchase {purchase}")))
        })
        .await
    }

    /// The customer a purchase belongs to, if the purchase exists.
    pub async fn purchase_owner(&self, purchase: &str) -> Result<Option<String>, LocalError> {
        let purchase = purchase.to_owned();
        self.run(move |conn| {
            Ok(conn
                .prepare_cached("SELECT customer_ref FROM purchases WHERE reference = ?1")?
                .query_row([&purchase], |row| row.get(0))
                .optional()?)
        })
        .await
    }

    /// Opens a portal session for `customer`: the link to its page, valid
    /// 15 minutes; `None` without a portal URL. A customer holds at most
    /// [`MAX_PORTAL_SESSIONS_PER_CUSTOMER`] sessions: opening one more closes its oldest.
    pub fn open_portal(&self, customer: &str) -> Option<String> {
        let base = self.inner.portal_url.as_ref()?;
        let session = ledger::new_reference("ps");
        self.inner.portal_sessions.open(&session, customer);
        Some(format!("{}/{session}", base.trim_end_matches('/')))
    }

    /// The customer of a live portal session.
    pub fn portal_customer(&self, session: &str) -> Option<String> {
        self.inner
            .portal_sessions
            .by_session
            .get(session)
            .map(|customer| customer.to_string())
    }

    pub(crate) async fn checkout_session_for(
        &self,
        customer: &CustomerRef,
        request: &CheckoutRequest,
    ) -> Result<String, BackendError> {
        // The product must exist (its paid plan is what the local checkout sells).
        self.paid_plan(&request.product).await?;
        self.checkout_link(
            customer.as_str(),
            &request.product,
            request.plan.as_deref(),
            request.return_url.as_deref(),
        )
        .await?
        .ok_or(BackendError::Unsupported(
            "checkout sessions (no checkout URL)",
        ))
    }
}

/// A ledger purchase as the paywall's [`Purchase`].
pub(crate) fn purchase(record: &PurchaseRecord) -> Purchase {
    let at = |ms: i64| {
        u64::try_from(ms)
            .ok()
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    };
    Purchase::new(&record.reference, &record.product_ref, &record.status)
        .with_plan(&record.plan_ref)
        .with_amount(record.price_cents, "USD")
        .with_product_name(&record.product_name)
        .with_times(at(record.started_at), record.cancelled_at.and_then(at))
}

/// Portal sessions a customer holds at most; opening one more closes its oldest.
pub const MAX_PORTAL_SESSIONS_PER_CUSTOMER: usize = 5;

/// The open portal sessions: expiring on their own (no purge under a lock), at most
/// [`MAX_PORTAL_SESSIONS_PER_CUSTOMER`] per customer.
pub(crate) struct PortalSessions {
    by_session: moka::sync::Cache<String, Arc<str>>,
    by_customer: moka::sync::Cache<Arc<str>, Arc<Mutex<VecDeque<String>>>>,
}

impl PortalSessions {
    pub(crate) fn new() -> Self {
        Self {
            by_session: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(PORTAL_SESSION_TTL)
                .build(),
            by_customer: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(PORTAL_SESSION_TTL)
                .build(),
        }
    }

    fn open(&self, session: &str, customer: &str) {
        let customer: Arc<str> = Arc::from(customer);
        self.by_session
            .insert(session.to_owned(), Arc::clone(&customer));
        let sessions = self
            .by_customer
            .get_with(Arc::clone(&customer), Default::default);
        let mut sessions = sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions.push_back(session.to_owned());
        while sessions.len() > MAX_PORTAL_SESSIONS_PER_CUSTOMER {
            if let Some(oldest) = sessions.pop_front() {
                self.by_session.invalidate(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{LocalBackend, Product};

    #[test]
    fn a_customer_holds_a_few_portal_sessions_at_most() {
        let backend = LocalBackend::builder()
            .product(Product::new("prd_x"))
            .portal_url("http://127.0.0.1:1/portal")
            .open()
            .expect("backend");
        let session = |url: String| url.rsplit('/').next().unwrap_or_default().to_owned();
        let opened: Vec<String> = (0..7)
            .map(|_| session(backend.open_portal("cus_a").expect("a portal")))
            .collect();
        let other = session(backend.open_portal("cus_b").expect("a portal"));
        for (i, id) in opened.iter().enumerate() {
            let live = backend.portal_customer(id);
            if i < 2 {
                assert_eq!(live, None, "the oldest were closed");
            } else {
                assert_eq!(live.as_deref(), Some("cus_a"));
            }
        }
        assert_eq!(backend.portal_customer(&other).as_deref(), Some("cus_b"));
        assert_eq!(backend.portal_customer("ps_unknown"), None);
    }
}
