//! actix-web middleware for the [`paywall`] crate.
//!
//! [`PaywallMiddleware`] drives the same engine as the tower layer: every decision
//! (identity, customer, budget, 401/402/503, metering) is made once, in
//! [`paywall::Paywall`], and this crate only translates. Wrap an `App`, a `Scope` or a
//! `Resource`; each wrap carries its own product, meter and cost. Read the billed
//! customer with the [`BilledCustomer`] extractor, and meter a route priced by
//! consumption with [`UsageMeter`] (the same names as in `paywall-axum`).
//!
//! ```
//! use actix_web::{web, App, HttpResponse};
//! use paywall::{Charge, Paywall};
//! use paywall_actix::{BilledCustomer, PaywallMiddleware};
//! # use paywall::test_util::{HeaderResolver, MemoryBackend};
//!
//! async fn hello(customer: BilledCustomer) -> HttpResponse {
//!     HttpResponse::Ok().body(customer.reference().to_string())
//! }
//!
//! # #[actix_rt::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (resolver, backend) = (HeaderResolver::new(), MemoryBackend::with_allowance(1));
//! let paywall = Paywall::builder(resolver, backend).build()?;
//! let middleware = PaywallMiddleware::new(&paywall, Charge::new("prd_quickstart"))?;
//! let app = actix_web::test::init_service(
//!     App::new().service(web::scope("/api").wrap(middleware).route("/hello", web::get().to(hello))),
//! )
//! .await;
//! let request = || actix_web::test::TestRequest::get().uri("/api/hello").insert_header(("x-user", "ada"));
//! let first = actix_web::test::call_service(&app, request().to_request()).await;
//! assert_eq!(first.status(), 200);
//! let second = actix_web::test::call_service(&app, request().to_request()).await;
//! assert_eq!(second.status(), 402);
//! # Ok(())
//! # }
//! ```
//!
//! # Notes for actix users
//!
//! * actix-web 4 is on `http` 0.2: the middleware copies the request *head* (method,
//!   URI, version, headers) into an `http` 1 view for the identity resolver, never the
//!   body.
//! * Usage is committed when the inner service produces its response (2xx by default):
//!   a streaming body that fails afterwards still counts, as with the tower layer.
//! * An error returned by the inner service (rather than an error response) gives the
//!   reserved units back.
//! * A warm request (the resolver answers at once, the customer and a fresh budget are
//!   cached) is decided in the middleware's `call`: its future, boxed as actix
//!   middleware futures are, holds only the inner service's future and the admission.
//!
//! `cargo run -p paywall-actix --example actix_basic` runs a complete application: the
//! embedded backend, HS256 tokens, one paid route.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use pin_project_lite::pin_project;

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName as ActixHeaderName, HeaderValue as ActixHeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};

use paywall::adapter::{Admission, Settlement, X_CUSTOMER_REF};
use paywall::{Charge, ConfigError, Paywall, Route};

mod billing;
mod react;

pub use billing::billing_scope;
pub use react::react_services;

/// The paywall as actix-web middleware, for one charge.
#[derive(Clone, Debug)]
pub struct PaywallMiddleware {
    paywall: Paywall,
    route: Route,
}

impl PaywallMiddleware {
    /// Middleware charging `charge` through `paywall`; an invalid charge is refused here,
    /// not at the first request.
    pub fn new(paywall: &Paywall, charge: Charge) -> Result<Self, ConfigError> {
        Ok(Self {
            route: paywall.route(charge)?,
            paywall: paywall.clone(),
        })
    }
}

impl<S, B> Transform<S, ServiceRequest> for PaywallMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<MeteredBody<B>>>;
    type Error = actix_web::Error;
    type Transform = PaywallService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(PaywallService {
            service: Rc::new(service),
            paywall: self.paywall.clone(),
            route: self.route.clone(),
        }))
    }
}

/// The service [`PaywallMiddleware`] wraps around the inner one.
pub struct PaywallService<S> {
    service: Rc<S>,
    paywall: Paywall,
    route: Route,
}

/// The engine's view of an actix request head (the body is never touched). Both
/// `http` crates accept the same header bytes; a method or URI the newer crate refused
/// would leave the default, and resolvers decide on headers anyway.
fn head(request: &ServiceRequest) -> http::request::Parts {
    head_of(request.request())
}

/// [`head`] from an actix request head.
pub(crate) fn head_of(request: &HttpRequest) -> http::request::Parts {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    if let Ok(method) = http::Method::from_bytes(request.method().as_str().as_bytes()) {
        parts.method = method;
    }
    // A server's request URI is its path and query (absolute only behind a proxy):
    // parsed from the string actix holds, without formatting the URI again.
    let uri = request.uri();
    let parsed = match uri.path_and_query() {
        Some(path) if uri.scheme().is_none() => http::Uri::try_from(path.as_str()),
        _ => http::Uri::try_from(uri.to_string()),
    };
    if let Ok(uri) = parsed {
        parts.uri = uri;
    }
    parts.headers.reserve(request.headers().len());
    for (name, value) in request.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            parts.headers.append(name, value);
        }
    }
    parts
}

/// Gives the actix request what the core set on its `http` 1 head: exactly the
/// paywall's `x-customer-ref` (the client's values never pass) and the customer.
fn mark(request: &mut ServiceRequest, mut parts: http::request::Parts) {
    let name = ActixHeaderName::from_static("x-customer-ref");
    request.headers_mut().remove(name.clone());
    if let Some(value) = parts.headers.get(X_CUSTOMER_REF) {
        if let Ok(value) = ActixHeaderValue::from_bytes(value.as_bytes()) {
            request.headers_mut().insert(name, value);
        }
    }
    if let Some(customer) = parts.extensions.remove::<paywall::Customer>() {
        request.extensions_mut().insert(customer);
    }
    if let Some(usage) = parts.extensions.remove::<paywall::Usage>() {
        request.extensions_mut().insert(usage);
    }
}

pin_project! {
    /// The handler's body, passed through untouched; on a route priced by consumption
    /// it settles the request's usage when it ends or is dropped (a client that goes
    /// away mid-stream pays for what it received).
    pub struct MeteredBody<B> {
        #[pin]
        body: B,
        settlement: Option<Settlement>,
    }
}

impl<B: MessageBody> MessageBody for MeteredBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let next = std::task::ready!(this.body.poll_next(cx));
        if !matches!(next, Some(Ok(_))) {
            if let Some(settlement) = this.settlement.take() {
                settlement.complete();
            }
        }
        Poll::Ready(next)
    }
}

/// The request's [`paywall::Usage`] as an extractor, on a route priced by consumption
/// ([`Charge::by_consumption`]): reserve an upper bound, report what the handler
/// produced; the middleware settles when the response body ends. A reservation that
/// does not fit answers the paywall's 402 as a [`ReserveRejection`].
#[derive(Clone, Debug)]
pub struct UsageMeter(pub paywall::Usage);

impl std::ops::Deref for UsageMeter {
    type Target = paywall::Usage;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A reservation that did not fit: the paywall's answer (402 with `remaining` and a
/// checkout link, or 503), through the paywall's `on_rejection` hook. Return it from
/// the handler (it is a [`Responder`](actix_web::Responder)).
#[derive(Debug)]
pub struct ReserveRejection(http::Response<Bytes>);

impl ReserveRejection {
    /// The answer as an actix response.
    pub fn into_response(self) -> HttpResponse {
        to_actix(self.0)
    }
}

impl actix_web::Responder for ReserveRejection {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse<Self::Body> {
        self.into_response()
    }
}

impl UsageMeter {
    /// Holds `units` for this request, all or nothing (see [`paywall::Usage::reserve`]).
    pub async fn reserve(&self, units: u64) -> Result<(), ReserveRejection> {
        self.0
            .reserve(units)
            .await
            .map_err(|rejection| ReserveRejection(self.0.rejection_response(&rejection)))
    }
}

impl FromRequest for UsageMeter {
    type Error = MissingCustomer;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(extension(request).map(UsageMeter).ok_or(MissingCustomer))
    }
}

/// An `http` 1 response (the engine's rejections) as an actix response.
pub(crate) fn to_actix(response: http::Response<bytes::Bytes>) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        if let (Ok(name), Ok(value)) = (
            ActixHeaderName::from_bytes(name.as_str().as_bytes()),
            ActixHeaderValue::from_bytes(value.as_bytes()),
        ) {
            builder.append_header((name, value));
        }
    }
    builder.body(body)
}

impl<S, B> Service<ServiceRequest> for PaywallService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<MeteredBody<B>>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        // The core strips the client's x-customer-ref, decides, and marks the head. A
        // warm request is decided here, without a future: its future holds the inner
        // service's and the admission. One that waits is boxed with its decision.
        let mut parts = head(&request);
        let Some(decided) = self.paywall.admit_head_now(&mut parts, &self.route) else {
            let service = Rc::clone(&self.service);
            let paywall = self.paywall.clone();
            let route = self.route.clone();
            return Box::pin(async move {
                let decided = Box::pin(paywall.admit_head(&mut parts, &route)).await;
                match admitted(&*service, request, parts, decided) {
                    Ok((inner, admission)) => respond(inner, admission).await,
                    Err(refused) => Ok(refused),
                }
            });
        };
        match admitted(&*self.service, request, parts, decided) {
            Ok((inner, admission)) => Box::pin(respond(inner, admission)),
            Err(refused) => Box::pin(ready(Ok(refused))),
        }
    }
}

/// The inner service's future for an admitted request, marked with its customer, or
/// the refusal's response.
// The refusal is returned by value: it becomes the response at once.
#[allow(clippy::type_complexity, clippy::result_large_err)]
fn admitted<S, B>(
    service: &S,
    mut request: ServiceRequest,
    parts: http::request::Parts,
    decided: Result<Admission, http::Response<Bytes>>,
) -> Result<(S::Future, Admission), ServiceResponse<EitherBody<MeteredBody<B>>>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    match decided {
        Ok(admission) => {
            mark(&mut request, parts);
            Ok((service.call(request), admission))
        }
        Err(rejection) => Err(request
            .into_response(to_actix(rejection))
            .map_into_right_body()),
    }
}

/// The admitted request's response: its quota fields added, its admission settled (on
/// an error the admission is dropped and its units are given back).
async fn respond<F, B>(
    inner: F,
    admission: Admission,
) -> Result<ServiceResponse<EitherBody<MeteredBody<B>>>, actix_web::Error>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    let mut response = inner.await?;
    for (name, value) in admission.quota_fields() {
        let name = if name == paywall::adapter::RATELIMIT {
            ActixHeaderName::from_static("ratelimit")
        } else {
            ActixHeaderName::from_static("ratelimit-policy")
        };
        if let Ok(value) = ActixHeaderValue::from_bytes(value.as_bytes()) {
            response.headers_mut().insert(name, value);
        }
    }
    let status = http::StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let settlement = match admission.finish_head_now(status) {
        Ok(settlement) => settlement,
        // Its usage is stored in the outbox before the response goes.
        Err(admission) => Box::pin(admission.finish_head(status)).await,
    };
    Ok(response
        .map_body(|_, body| MeteredBody { body, settlement })
        .map_into_left_body())
}

/// The billed customer of the request, as the middleware admitted it.
///
/// The [`paywall::Customer`] the middleware admitted, as an extractor. On a route that
/// is not behind [`PaywallMiddleware`] extraction fails with a 500 whose body names the
/// misconfiguration. Use `Option<BilledCustomer>` where a fail-open policy may admit
/// callers without a customer.
#[derive(Clone, Debug)]
pub struct BilledCustomer(pub paywall::Customer);

impl std::ops::Deref for BilledCustomer {
    type Target = paywall::Customer;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// What the middleware put in the request's extensions.
fn extension<T: Clone + 'static>(request: &HttpRequest) -> Option<T> {
    request.extensions().get::<T>().cloned()
}

/// [`BilledCustomer`] or [`UsageMeter`] found nothing on the request: the route is not
/// behind the paywall. Answers 500 with a JSON body that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingCustomer;

impl std::fmt::Display for MissingCustomer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no paywall customer on this request")
    }
}

impl ResponseError for MissingCustomer {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        HttpResponse::InternalServerError().json(paywall::adapter::missing_customer_body())
    }
}

impl FromRequest for BilledCustomer {
    type Error = MissingCustomer;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(
            extension(request)
                .map(BilledCustomer)
                .ok_or(MissingCustomer),
        )
    }
}

#[cfg(test)]
mod tests;
