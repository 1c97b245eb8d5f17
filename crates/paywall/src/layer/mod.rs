//! The tower middleware: [`PaywallLayer`], [`PaywallService`] and its
//! [`ResponseFuture`] (in `future.rs`).

mod future;

use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::body::PaywallBody;
use crate::charge::Charge;
use crate::engine::{Paywall, Route};
use crate::error::ConfigError;

pub use future::ResponseFuture;

impl Paywall {
    /// A tower [`Layer`] that protects a service with `charge`.
    pub fn layer(&self, charge: Charge) -> Result<PaywallLayer, ConfigError> {
        Ok(PaywallLayer::new(self.clone(), self.route(charge)?))
    }
}

/// Protects a service with a [`Paywall`] and a [`Route`]'s charge.
///
/// Built with [`Paywall::layer`]. On each request the service removes any
/// `x-customer-ref` the client sent, resolves the caller, ensures their billing customer,
/// reserves the route's units, and then either answers the rejection (401, 402, 503) or
/// calls the inner service with `x-customer-ref` and a [`Customer`](crate::Customer)
/// extension set. After the inner service answers, the units are committed and metered
/// (success) or given back (any other status, an error, or a dropped future).
///
/// A warm request (the resolver answers at once, as `paywall-jwt`'s does for a token
/// it has verified; the customer and a fresh budget are cached) is decided inside
/// `call` and its [`ResponseFuture`] holds the inner service's future and the
/// admission, nothing boxed; a decision that waits runs in one boxed future, which
/// calls the inner service once it has admitted the request.
///
/// On a fixed-price route, usage is committed when the response head is produced: a
/// streaming body that fails afterwards still counts. On a route priced by consumption
/// ([`Charge::by_consumption`]) the request carries a [`Usage`](crate::Usage) and is
/// settled when the response body ([`PaywallBody`]) ends or is dropped.
#[derive(Clone)]
pub struct PaywallLayer {
    paywall: Paywall,
    route: Route,
}

impl PaywallLayer {
    /// A layer charging `route` through `paywall`.
    pub fn new(paywall: Paywall, route: Route) -> Self {
        Self { paywall, route }
    }
}

impl fmt::Debug for PaywallLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaywallLayer")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for PaywallLayer {
    type Service = PaywallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PaywallService {
            inner,
            paywall: self.paywall.clone(),
            route: self.route.clone(),
        }
    }
}

/// The service [`PaywallLayer`] produces.
#[derive(Clone)]
pub struct PaywallService<S> {
    inner: S,
    paywall: Paywall,
    route: Route,
}

impl<S: fmt::Debug> fmt::Debug for PaywallService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaywallService")
            .field("inner", &self.inner)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PaywallService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<PaywallBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let span = tracing::debug_span!(
            "paywall.decision",
            product = %self.route.product(),
            outcome = tracing::field::Empty,
            customer = tracing::field::Empty,
        );
        let (mut parts, body) = request.into_parts();
        // A warm request is decided here, and the service driven to readiness called.
        // A disabled span (debug off, the usual case in production) is not entered.
        let now = if span.is_disabled() {
            self.paywall.admit_head_now(&mut parts, &self.route)
        } else {
            span.in_scope(|| self.paywall.admit_head_now(&mut parts, &self.route))
        };
        if let Some(decision) = now {
            return match decision {
                Ok(admission) => ResponseFuture::admitted(
                    self.inner.call(Request::from_parts(parts, body)),
                    admission,
                ),
                Err(refusal) => ResponseFuture::refused(refusal),
            };
        }
        // One that waits takes the service driven to readiness with it (a fresh clone
        // stays behind) and calls it once admitted; the response is settled as above.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let paywall = self.paywall.clone();
        let route = self.route.clone();
        let decide = async move {
            let admission = paywall.admit_head(&mut parts, &route).await?;
            Ok((inner.call(Request::from_parts(parts, body)), admission))
        };
        // Nor is it entered and left on every poll.
        if span.is_disabled() {
            ResponseFuture::deciding(Box::pin(decide))
        } else {
            ResponseFuture::deciding(Box::pin(decide.instrument(span)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::test_util::{HeaderResolver, MemoryBackend};
    use crate::Charge;

    type Ready = std::future::Ready<Result<Response<()>, Infallible>>;
    type Hello = tower::util::ServiceFn<fn(Request<()>) -> Ready>;

    fn hello(_: Request<()>) -> Ready {
        std::future::ready(Ok(Response::new(())))
    }

    fn service() -> PaywallService<Hello> {
        let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(2))
            .ratelimit_headers(true)
            .build()
            .expect("paywall");
        let layer = paywall.layer(Charge::new("prd_x")).expect("layer");
        layer.layer(tower::service_fn(hello as fn(Request<()>) -> Ready))
    }

    fn request(user: &str) -> Request<()> {
        Request::builder()
            .header("x-user", user)
            .body(())
            .expect("request")
    }

    /// A request that waits (a new caller) is one allocation: kept under 1 KiB, the
    /// size from which glibc's allocator stops using its fast bins (and starts
    /// consolidating them). A warm one is decided in `call`: nothing is boxed, and its
    /// refusal is decided there too.
    #[tokio::test]
    async fn a_cold_request_is_one_small_box_and_a_warm_one_none() {
        let mut service = service();
        let cold = service.call(request("ada"));
        let size = cold.boxed_size().expect("a new caller waits");
        assert!(size < 1024, "the request future is {size} bytes");
        assert_eq!(cold.await.expect("response").status(), http::StatusCode::OK);

        let warm = service.call(request("ada"));
        assert_eq!(warm.boxed_size(), None, "{warm:?}");
        let response = warm.await.expect("response");
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.headers()["ratelimit"], "\"prd_x\";r=0");

        // Spent: the 402 (with its checkout link) is answered by the path that waits.
        let spent = service.call(request("ada"));
        assert!(spent.boxed_size().is_some(), "{spent:?}");
        let response = spent.await.expect("response");
        assert_eq!(response.status(), http::StatusCode::PAYMENT_REQUIRED);

        // No credentials: refused in `call`.
        let anonymous = service.call(Request::new(()));
        assert_eq!(anonymous.boxed_size(), None, "{anonymous:?}");
        let response = anonymous.await.expect("response");
        assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
    }
}
