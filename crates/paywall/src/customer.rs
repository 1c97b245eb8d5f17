//! The billed customer of an admitted request: [`Customer`].

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;

use std::fmt;

/// The name of the header that carries the customer reference to the handler.
///
/// The paywall removes any value a client sent before it resolves the caller, and sets
/// its own on admitted requests.
pub const X_CUSTOMER_REF: http::HeaderName = http::HeaderName::from_static("x-customer-ref");

/// The body adapters answer (with status 500) when a handler asks for the
/// [`Customer`] of a request the paywall did not admit with one: the route is not behind
/// the paywall, or a fail-open policy admitted the caller without a customer. A server
/// misconfiguration, said plainly.
pub fn missing_customer_body() -> serde_json::Value {
    crate::rejection::error_body(
        "Internal Server Error",
        "paywall_misconfigured",
        "This route reads the paywall's Customer but is not behind the paywall (the tower \
         layer or the actix middleware), or the paywall admitted the request without a \
         customer under a fail-open policy (extract Option<Customer> there).",
    )
}

/// The billing customer of an admitted request, inserted as a request extension.
///
/// Adapters expose it as an extractor (`paywall_axum::BilledCustomer`).
#[derive(Clone, Debug)]
pub struct Customer {
    reference: CustomerRef,
    external_ref: Arc<str>,
    header: HeaderValue,
}

impl Customer {
    /// A customer; fails when the reference cannot be a header value.
    pub(crate) fn new(reference: CustomerRef, external_ref: Arc<str>) -> Option<Self> {
        let header =
            HeaderValue::from_maybe_shared(Bytes::copy_from_slice(reference.as_str().as_bytes()))
                .ok()?;
        Some(Self {
            reference,
            external_ref,
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

/// A billing customer's reference (`cus_...`), cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerRef(Arc<str>);

impl CustomerRef {
    /// Wraps a reference issued by the billing backend.
    pub fn new(reference: impl Into<Arc<str>>) -> Self {
        Self(reference.into())
    }

    /// The reference as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CustomerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for CustomerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CustomerRef {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
