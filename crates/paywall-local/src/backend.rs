//! The embedded ledger as the paywall's [`BillingBackend`]: customers, limits and
//! usage, and the account calls of the billing routes (checkout, portal, purchases,
//! and SolvaPay's React components' calls, in `sdk.rs`).

use paywall::backend::{AccountCall, BackendError, BillingBackend, Limits, UsageEvent};
use paywall::{CustomerRef, Identity};

use crate::{account, ledger, LocalBackend};

impl BillingBackend for LocalBackend {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        let identity = identity.clone();
        let reference = self
            .run(move |conn| ledger::ensure_customer(conn, &identity))
            .await?;
        Ok(CustomerRef::new(reference))
    }

    async fn check_limits(
        &self,
        customer: &CustomerRef,
        product: &str,
        meter: &str,
    ) -> Result<Limits, BackendError> {
        Ok(self
            .allowance_with_link(customer.as_str(), product, meter)
            .await?)
    }

    async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), BackendError> {
        self.record(events).await?;
        Ok(())
    }

    async fn checkout_session(
        &self,
        customer: &CustomerRef,
        request: &paywall::backend::CheckoutRequest,
    ) -> Result<String, BackendError> {
        self.checkout_session_for(customer, request).await
    }

    async fn portal_url(&self, customer: &CustomerRef) -> Result<String, BackendError> {
        self.open_portal(customer.as_str())
            .ok_or(BackendError::Unsupported(
                "a customer portal (no portal URL)",
            ))
    }

    async fn purchases(
        &self,
        customer: &CustomerRef,
    ) -> Result<Vec<paywall::backend::Purchase>, BackendError> {
        let records = self.purchases_of(customer.as_str()).await?;
        Ok(records.iter().map(account::purchase).collect())
    }

    async fn cancel_purchase(
        &self,
        customer: &CustomerRef,
        purchase: &str,
    ) -> Result<paywall::backend::Purchase, BackendError> {
        let record = self.cancel_purchase_of(customer.as_str(), purchase).await?;
        Ok(account::purchase(&record))
    }

    async fn account_call(
        &self,
        customer: &CustomerRef,
        call: &AccountCall,
    ) -> Result<serde_json::Value, BackendError> {
        self.answer_call(customer, call).await
    }
}
