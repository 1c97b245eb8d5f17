//! The caller's account on the embedded backend, for the billing routes: purchases,
//! cancelling one (only the customer's own), and short-lived customer-portal sessions
//! (the page itself is [`portal`](crate::portal)).

use std::time::{Duration, Instant, UNIX_EPOCH};

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
            directory::find_by(conn, "reference", &customer)?
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
            let changed = conn.execute(
                "UPDATE purchases SET status = 'cancelled', cancelled_at = ?3
                 WHERE reference = ?1 AND customer_ref = ?2 AND status = 'active'",
                params![purchase, customer, ledger::now_ms()],
            )?;
            if changed == 0 {
                return Err(LocalError::NotFound(format!("purchase {purchase}")));
            }
            directory::find_by(conn, "reference", &customer)?
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
                .query_row(
                    "SELECT customer_ref FROM purchases WHERE reference = ?1",
                    [&purchase],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }

    /// Opens a portal session for `customer`: the link to its page, valid
    /// 15 minutes; `None` without a portal URL.
    pub fn open_portal(&self, customer: &str) -> Option<String> {
        let base = self.inner.portal_url.as_ref()?;
        let session = ledger::new_reference("ps");
        let now = Instant::now();
        let mut sessions = self
            .inner
            .portal_sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions.retain(|_, (_, expires)| *expires > now);
        sessions.insert(
            session.clone(),
            (customer.to_owned(), now + PORTAL_SESSION_TTL),
        );
        Some(format!("{}/{session}", base.trim_end_matches('/')))
    }

    /// The customer of a live portal session.
    pub fn portal_customer(&self, session: &str) -> Option<String> {
        let sessions = self
            .inner
            .portal_sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions
            .get(session)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(customer, _)| customer.clone())
    }

    pub(crate) async fn checkout_session_for(
        &self,
        customer: &CustomerRef,
        request: &CheckoutRequest,
    ) -> Result<String, BackendError> {
        // The product must exist (its paid plan is what the local checkout sells).
        self.paid_plan(&request.product).await?;
        self.checkout_url_for(customer.as_str(), &request.product)
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
        .with_times(at(record.started_at), record.cancelled_at.and_then(at))
}
