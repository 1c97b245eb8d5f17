//! For adapter authors: the steps every HTTP adapter takes around the engine, written
//! once (strip the client's `x-customer-ref`, decide, mark the admitted request with the
//! customer), and the pieces an adapter answers with.
//!
//! The tower layer and `paywall-actix` both call [`Paywall::admit_head`]; a new adapter
//! should too, so that none can forget the security step. An application needs none of
//! this module: it uses [`Paywall::layer`](crate::Paywall::layer) or an adapter crate.

use bytes::Bytes;
use http::request::Parts;
use http::Response;

use crate::engine::{Paywall, Route};

pub use crate::billing::{BILLING_BODY_DEADLINE, MAX_BILLING_BODY};
pub use crate::body::PaywallBody;
pub use crate::charge::MAX_UNITS;
pub use crate::customer::{missing_customer_body, X_CUSTOMER_REF};
pub use crate::engine::{Admission, Settlement};
pub use crate::quota::{Quota, RATELIMIT, RATELIMIT_POLICY};
pub use crate::rejection::{
    error_body, problem_body, PaymentRequired, Unauthenticated, PROBLEM_JSON,
};

impl Paywall {
    /// The adapter steps on an `http` 1 request head:
    ///
    /// 1. removes every `x-customer-ref` the client sent (the header is the paywall's: a
    ///    client that sets it is trying to bill someone else);
    /// 2. decides, as [`admit`](Self::admit);
    /// 3. on admission, sets `x-customer-ref` and the [`Customer`](crate::Customer)
    ///    extension on `parts` (and the [`Usage`](crate::Usage) extension on a route
    ///    priced by consumption) and returns the [`Admission`] to finish with the
    ///    handler's status ([`finish_head`](Admission::finish_head));
    /// 4. on refusal, returns the response to send (the
    ///    [`on_rejection`](crate::PaywallBuilder::on_rejection) hook's, or the default).
    ///
    /// ```
    /// use paywall::adapter::X_CUSTOMER_REF;
    /// use paywall::{Charge, Paywall};
    /// use paywall::test_util::{HeaderResolver, MemoryBackend};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(1)).build()?;
    /// let route = paywall.route(Charge::new("prd_demo"))?;
    /// let request = http::Request::builder()
    ///     .header("x-user", "ada")
    ///     .header(X_CUSTOMER_REF, "cus_somebody_else")
    ///     .body(())?;
    /// let (mut parts, ()) = request.into_parts();
    /// let admission = paywall.admit_head(&mut parts, &route).await.expect("admitted");
    /// assert_eq!(parts.headers[X_CUSTOMER_REF], "cus_ada");
    /// admission.finish(http::StatusCode::OK).await;
    ///
    /// let refused = paywall.admit_head(&mut parts, &route).await.expect_err("402");
    /// assert_eq!(refused.status(), http::StatusCode::PAYMENT_REQUIRED);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn admit_head(
        &self,
        parts: &mut Parts,
        route: &Route,
    ) -> Result<Admission, Response<Bytes>> {
        parts.headers.remove(X_CUSTOMER_REF);
        let decision = self.admit(parts, route).await;
        self.mark(parts, decision)
    }

    /// [`admit_head`](Self::admit_head) without a future, for a request that need
    /// not wait: the identity resolver answers at once
    /// ([`IdentityResolver::resolve_now`](crate::IdentityResolver::resolve_now)), and
    /// the caller's customer and a fresh budget holding the route's units are cached.
    /// `None`: the request would wait (or is answered 402, whose checkout link may);
    /// nothing was decided, counted or charged, and the adapter calls `admit_head`.
    /// The tower layer decides warm requests this way in `Service::call`.
    ///
    /// ```
    /// use paywall::{Charge, Paywall};
    /// use paywall::test_util::{HeaderResolver, MemoryBackend};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(5)).build()?;
    /// let route = paywall.route(Charge::new("prd_demo"))?;
    /// let (mut parts, ()) = http::Request::builder().header("x-user", "ada").body(())?.into_parts();
    /// // A new caller: her customer is ensured at the backend, which waits.
    /// assert!(paywall.admit_head_now(&mut parts, &route).is_none());
    /// let first = paywall.admit_head(&mut parts, &route).await.expect("admitted");
    /// first.finish(http::StatusCode::OK).await;
    /// // Warm: decided at once.
    /// let second = paywall.admit_head_now(&mut parts, &route).expect("warm").expect("admitted");
    /// second.finish(http::StatusCode::OK).await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn admit_head_now(
        &self,
        parts: &mut Parts,
        route: &Route,
    ) -> Option<Result<Admission, Response<Bytes>>> {
        parts.headers.remove(X_CUSTOMER_REF);
        let decision = self.admit_now(parts, route)?;
        Some(self.mark(parts, decision))
    }

    /// Step 3 or 4 of [`admit_head`](Self::admit_head): the admitted request marked
    /// with its customer, or the refusal's response.
    // The refusal is returned by value, as `admit_head` returns it.
    #[allow(clippy::result_large_err)]
    fn mark(
        &self,
        parts: &mut Parts,
        decision: Result<Admission, crate::Rejection>,
    ) -> Result<Admission, Response<Bytes>> {
        match decision {
            Ok(admission) => {
                if let Some(customer) = admission.customer() {
                    parts
                        .headers
                        .insert(X_CUSTOMER_REF, customer.header_value());
                    parts.extensions.insert(customer.clone());
                }
                if let Some(usage) = admission.usage() {
                    parts.extensions.insert(usage.clone());
                }
                Ok(admission)
            }
            Err(rejection) => Err(self.rejection_response(&rejection)),
        }
    }

    /// The adapter steps for a request that is only authenticated (an MCP endpoint
    /// whose customer is ensured at its first priced call): strips a client-sent
    /// `x-customer-ref`, resolves the caller ([`authenticate`](Self::authenticate)) and
    /// inserts the [`Identity`](crate::Identity) extension. On refusal, returns the
    /// response to send (401, or 503 when the identity provider cannot be reached).
    pub async fn authenticate_head(&self, parts: &mut Parts) -> Result<(), Response<Bytes>> {
        parts.headers.remove(X_CUSTOMER_REF);
        match self.authenticate(parts).await {
            Ok(identity) => {
                parts.extensions.insert(identity);
                Ok(())
            }
            Err(rejection) => Err(self.rejection_response(&rejection)),
        }
    }

    /// The adapter steps for a request that is not charged as a whole (an MCP
    /// endpoint, whose tool calls are priced one by one): strips a client-sent
    /// `x-customer-ref`, resolves the caller and ensures its customer
    /// ([`identify`](Self::identify)), and inserts the [`Identity`](crate::Identity)
    /// and [`Customer`](crate::Customer) extensions and `x-customer-ref`. On refusal,
    /// returns the response to send (401, 403 or 503, as on a charged route).
    pub async fn identify_head(&self, parts: &mut Parts) -> Result<(), Response<Bytes>> {
        parts.headers.remove(X_CUSTOMER_REF);
        match self.identify(parts).await {
            Ok((identity, customer)) => {
                if let Some(customer) = customer {
                    parts
                        .headers
                        .insert(X_CUSTOMER_REF, customer.header_value());
                    parts.extensions.insert(customer);
                }
                parts.extensions.insert(identity);
                Ok(())
            }
            Err(rejection) => Err(self.rejection_response(&rejection)),
        }
    }
}
