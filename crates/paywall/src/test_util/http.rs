//! HTTP pieces for tests: [`EchoService`], the handler that answers what it saw, and
//! helpers to call a service and read a JSON answer.

use std::convert::Infallible;
use std::future::{poll_fn, Ready};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower_service::Service;

use crate::charge::Charge;
use crate::customer::{Customer, X_CUSTOMER_REF};
use crate::engine::Paywall;
use crate::layer::PaywallService;
use crate::recorder::RecorderConfig;

/// The product [`protected`] charges.
pub const TEST_PRODUCT: &str = "prd_test";

/// [`EchoService`] behind `paywall`, charging one unit of [`TEST_PRODUCT`].
pub fn protected(paywall: &Paywall) -> PaywallService<EchoService> {
    use tower_layer::Layer;
    match paywall.layer(Charge::new(TEST_PRODUCT)) {
        Ok(layer) => layer.layer(EchoService),
        Err(err) => panic!("the test charge is valid: {err}"),
    }
}

/// A handler that answers, as JSON, the `x-customer-ref` headers and the
/// [`Customer`] extension it received: `{"customerRefHeaders": [...], "extension",
/// "externalRef"}`. An `x-test-status` header sets its status (to test failures).
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoService;

impl<B: From<String>> Service<Request<B>> for EchoService {
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Ready<Result<Response<B>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let status = request
            .headers()
            .get("x-test-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u16>().ok())
            .and_then(|v| StatusCode::from_u16(v).ok())
            .unwrap_or(StatusCode::OK);
        let refs: Vec<&str> = request
            .headers()
            .get_all(X_CUSTOMER_REF)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let customer = request.extensions().get::<Customer>();
        let body = json!({
            "customerRefHeaders": refs,
            "extension": customer.map(|c| c.reference().as_str()),
            "externalRef": customer.map(|c| c.external_ref()),
        });
        let mut response = Response::new(B::from(body.to_string()));
        *response.status_mut() = status;
        std::future::ready(Ok(response))
    }
}

/// Calls a clone of `service` with `request` once it is ready.
pub async fn call<S, B, R>(service: &S, request: Request<B>) -> Response<R>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible> + Clone,
{
    let mut service = service.clone();
    let ready = poll_fn(|cx| service.poll_ready(cx)).await;
    let Ok(()) = ready;
    match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The status `service` answers `request` with.
pub async fn status<S, B, R>(service: &S, request: Request<B>) -> StatusCode
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible> + Clone,
{
    call(service, request).await.status()
}

/// Status, headers and JSON body of `response` (`Value::Null` when the body is not
/// JSON).
pub async fn read_json<B>(response: Response<B>) -> (StatusCode, HeaderMap, Value)
where
    B: http_body::Body,
{
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Default::default(),
    };
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, value)
}

/// A recorder that batches and retries within milliseconds, for tests.
pub fn fast_recorder() -> RecorderConfig {
    RecorderConfig {
        flush_interval: Duration::from_millis(10),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        ..RecorderConfig::default()
    }
}
