//! The billed customer of an admitted request: [`Customer`].

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;

use crate::backend::CustomerRef;

/// The name of the header that carries the customer reference to the handler.
///
/// The paywall removes any value a client sent before it resolves the caller, and sets
/// its own on admitted requests.
pub const X_CUSTOMER_REF: http::HeaderName = http::HeaderName::from_static("x-customer-ref");

/// The billing customer of an admitted request, inserted as a request extension.
///
/// Adapters expose it as an extractor (`paywall_axum::Customer`).
#[derive(Clone, Debug)]
pub struct Customer {
    reference: CustomerRef,
    external_ref: Arc<str>,
    header: HeaderValue,
}

impl Customer {
    /// A customer; fails when the reference cannot be a header value.
    pub(crate) fn new(reference: CustomerRef, external_ref: &str) -> Option<Self> {
        let header =
            HeaderValue::from_maybe_shared(Bytes::copy_from_slice(reference.as_str().as_bytes()))
                .ok()?;
        Some(Self {
            reference,
            external_ref: Arc::from(external_ref),
            header,
        })
    }

    /// The billing customer reference (`cus_...`).
    pub fn reference(&self) -> &CustomerRef {
        &self.reference
    }

    /// The caller's external reference the customer was resolved from.
    pub fn external_ref(&self) -> &str {
        &self.external_ref
    }

    pub(crate) fn header_value(&self) -> HeaderValue {
        self.header.clone()
    }
}
