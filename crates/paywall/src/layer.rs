//! The tower middleware: [`PaywallLayer`] and [`PaywallService`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::body::PaywallBody;
use crate::charge::Charge;
use crate::engine::{Paywall, Route};
use crate::error::ConfigError;

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
    type Future = ResponseFuture<PaywallBody<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Take the service that was driven to readiness, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let paywall = self.paywall.clone();
        let route = self.route.clone();
        let span = tracing::debug_span!(
            "paywall.decision",
            product = %route.product(),
            outcome = tracing::field::Empty,
            customer = tracing::field::Empty,
        );
        // Split outside the future: what it captures is stored once, for its whole life,
        // so splitting inside would hold the head twice.
        let (mut parts, body) = request.into_parts();
        let future = async move {
            let admission = match paywall.admit_head(&mut parts, &route).await {
                Ok(admission) => admission,
                Err(rejection) => return Ok(rejection.map(PaywallBody::full)),
            };
            // On error or cancellation the admission is dropped and its units given back.
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            admission.apply_quota(response.headers_mut());
            let settlement = admission.settlement(response.status());
            if settlement.is_none() {
                admission.finish(response.status()).await;
            }
            Ok(response.map(|body| PaywallBody::new(body, settlement)))
        };
        // A disabled span (debug off, the usual case in production) is not entered
        // and left on every poll: the future runs without it.
        let inner: BoxedResponse<_, _> = if span.is_disabled() {
            Box::pin(future)
        } else {
            Box::pin(future.instrument(span))
        };
        ResponseFuture { inner }
    }
}

type BoxedResponse<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

/// The response future of [`PaywallService`].
pub struct ResponseFuture<B, E> {
    inner: BoxedResponse<B, E>,
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::test_util::{HeaderResolver, MemoryBackend};
    use crate::Charge;

    /// Every request's future is one allocation: kept under 1 KiB, the size from which
    /// glibc's allocator stops using its fast bins (and starts consolidating them).
    #[tokio::test]
    async fn a_request_future_stays_under_a_kibibyte() {
        let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(5))
            .build()
            .expect("paywall");
        let layer = paywall.layer(Charge::new("prd_x")).expect("layer");
        let mut service = layer.layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
        let request = Request::builder()
            .header("x-user", "ada")
            .body(())
            .expect("request");
        let future = service.call(request);
        let size = std::mem::size_of_val(&*future.inner);
        assert!(size < 1024, "the request future is {size} bytes");
        let response = future.await.expect("response");
        assert_eq!(response.status(), http::StatusCode::OK);
    }
}
