//! The object-safe form of [`BillingBackend`](super::BillingBackend) the engine stores
//! (boxed futures), implemented for every backend.

use super::{BackendError, BillingBackend, CustomerRef, Limits, UsageEvent};
use crate::account::{AccountCall, CheckoutRequest, Credits, Purchase};
use crate::identity::{BoxFuture, Identity};

/// The object-safe form of [`BillingBackend`] the engine stores.
pub(crate) trait DynBackend: Send + Sync {
    fn ensure_customer_boxed<'a>(
        &'a self,
        identity: &'a Identity,
    ) -> BoxFuture<'a, Result<CustomerRef, BackendError>>;
    fn check_limits_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        product: &'a str,
        meter: &'a str,
    ) -> BoxFuture<'a, Result<Limits, BackendError>>;
    fn record_usage_boxed<'a>(
        &'a self,
        events: &'a [UsageEvent],
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    fn checkout_url_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        product: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, BackendError>>;
    fn checkout_session_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        request: &'a CheckoutRequest,
    ) -> BoxFuture<'a, Result<String, BackendError>>;
    fn portal_url_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
    ) -> BoxFuture<'a, Result<String, BackendError>>;
    fn purchases_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
    ) -> BoxFuture<'a, Result<Vec<Purchase>, BackendError>>;
    fn cancel_purchase_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        purchase: &'a str,
    ) -> BoxFuture<'a, Result<Purchase, BackendError>>;
    fn credits_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
    ) -> BoxFuture<'a, Result<Option<Credits>, BackendError>>;
    fn account_call_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        call: &'a AccountCall,
    ) -> BoxFuture<'a, Result<serde_json::Value, BackendError>>;
}

impl<T: BillingBackend> DynBackend for T {
    fn ensure_customer_boxed<'a>(
        &'a self,
        identity: &'a Identity,
    ) -> BoxFuture<'a, Result<CustomerRef, BackendError>> {
        Box::pin(self.ensure_customer(identity))
    }

    fn check_limits_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        product: &'a str,
        meter: &'a str,
    ) -> BoxFuture<'a, Result<Limits, BackendError>> {
        Box::pin(self.check_limits(customer, product, meter))
    }

    fn record_usage_boxed<'a>(
        &'a self,
        events: &'a [UsageEvent],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.record_usage(events))
    }

    fn checkout_url_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        product: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, BackendError>> {
        Box::pin(self.checkout_url(customer, product))
    }

    fn checkout_session_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        request: &'a CheckoutRequest,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(self.checkout_session(customer, request))
    }

    fn portal_url_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(self.portal_url(customer))
    }

    fn purchases_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
    ) -> BoxFuture<'a, Result<Vec<Purchase>, BackendError>> {
        Box::pin(self.purchases(customer))
    }

    fn cancel_purchase_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        purchase: &'a str,
    ) -> BoxFuture<'a, Result<Purchase, BackendError>> {
        Box::pin(self.cancel_purchase(customer, purchase))
    }

    fn credits_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
    ) -> BoxFuture<'a, Result<Option<Credits>, BackendError>> {
        Box::pin(self.credits(customer))
    }

    fn account_call_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        call: &'a AccountCall,
    ) -> BoxFuture<'a, Result<serde_json::Value, BackendError>> {
        Box::pin(self.account_call(customer, call))
    }
}
