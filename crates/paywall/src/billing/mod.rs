//! Billing routes for the application's own frontend: [`BillingRoutes`], one handler
//! behind the paywall's identity resolver (not charged) that the adapters mount in one
//! call (`paywall_axum::billing_router(path, routes)`, `paywall_actix::billing_scope(path, routes)`).
//!
//! | method and path (under the mount) | answer |
//! |---|---|
//! | `GET /` | `{"customerRef", "products": [{"product", "meter", "plan", "remaining", "withinLimits", "allowance", "resetsAt"}], "credits"}`: one entry per charge given to [`BillingRoutes::new`] (a product priced on two meters shows both) |
//! | `POST /checkout` `{"product", "plan"?, "returnUrl"?}` | `{"checkoutUrl"}` (an idempotency key per call; `returnUrl` on one of the [`return_origins`](BillingRoutes::return_origins)) |
//! | `POST /portal` | `{"url"}`: the provider's customer portal |
//! | `GET /purchases` | `{"purchases": [...]}` |
//! | `POST /purchases/{reference}/cancel` | `{"purchase"}`; 404 when it is not the caller's |
//!
//! The caller is always the resolved identity: the query is ignored, and a body that
//! names a customer (`customerRef`, `externalRef`, `email`…) is refused with a 400. No
//! or bad token: the paywall's 401. Unknown product: 404. A capability the backend
//! does not have: 501. Every error is a JSON body; backend texts never reach the client.

mod cache;
mod react;
mod react_wire;
mod wire;

pub use react::ReactRoutes;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::account::{Credits, Purchase};
use crate::backend::BackendError;
use crate::charge::Charge;
use crate::customer::Customer;
use crate::engine::{Paywall, Route};
use crate::error::ConfigError;
use crate::identity::Identity;
use crate::rejection::{problem_body, PROBLEM_JSON};

/// The largest request body the billing routes read.
pub const MAX_BILLING_BODY: usize = 16 * 1024;

/// How long the billing routes wait for a whole request body (not per chunk).
pub const BILLING_BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The billing routes of a paywall, for the products the application protects.
#[derive(Clone, Debug)]
pub struct BillingRoutes {
    paywall: Paywall,
    products: Arc<[Route]>,
    cache: Arc<cache::BillingCache>,
    /// The origins a checkout's `returnUrl` may point to (any, when empty).
    return_origins: Arc<[String]>,
}

impl BillingRoutes {
    /// The routes for `products` (their product and meter: what `GET /` reports, one
    /// entry each, and the products a checkout may be opened for). List every meter a
    /// product is priced on, so that a caller sees each allowance move.
    pub fn new(
        paywall: &Paywall,
        products: impl IntoIterator<Item = Charge>,
    ) -> Result<Self, ConfigError> {
        let products = products
            .into_iter()
            .map(|charge| paywall.route(charge))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            paywall: paywall.clone(),
            products: products.into(),
            cache: Arc::new(cache::BillingCache::new()),
            return_origins: Arc::from([]),
        })
    }

    /// The origins (`https://app.example`, scheme and host and port as a browser
    /// writes them) a checkout's `returnUrl` may point to; any other is refused with a
    /// 400, so the checkout cannot be made an open redirect. Without this, any absolute
    /// http(s) URL is accepted.
    pub fn return_origins(mut self, origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.return_origins = origins
            .into_iter()
            .map(|origin| origin.into().trim_end_matches('/').to_owned())
            .collect();
        self
    }

    /// Answers a request: `path` is relative to where the routes are mounted (`""`,
    /// `"/"`, `"/checkout"`…), `parts` the request head (for identity), `body` its body
    /// (at most [`MAX_BILLING_BODY`] bytes: adapters answer 413 beyond).
    pub async fn handle(
        &self,
        method: &Method,
        path: &str,
        parts: &Parts,
        body: &[u8],
    ) -> Response<Bytes> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let route = match (method, segments.as_slice()) {
            (&Method::GET, []) => Call::State,
            (&Method::POST, ["checkout"]) => Call::Checkout,
            (&Method::POST, ["portal"]) => Call::Portal,
            (&Method::GET, ["purchases"]) => Call::Purchases,
            (&Method::POST, ["purchases", reference, "cancel"]) => Call::Cancel(reference),
            (_, [] | ["checkout"] | ["portal"] | ["purchases"] | ["purchases", _, "cancel"]) => {
                return problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "This method is not allowed here.",
                );
            }
            _ => return problem(StatusCode::NOT_FOUND, "not_found", "No such billing route."),
        };
        let (identity, customer) = match self.caller(parts).await {
            Ok(caller) => caller,
            Err(refused) => return refused,
        };
        let object = if *method == Method::POST {
            match wire::object(body) {
                Ok(object) => object,
                Err(wire::BadRequest(why)) => {
                    return problem(StatusCode::BAD_REQUEST, "bad_request", &why)
                }
            }
        } else {
            serde_json::Map::new()
        };
        let answer = match route {
            Call::State => self.state(&identity, &customer).await,
            Call::Checkout => self.checkout(&customer, &object).await,
            Call::Portal => self.portal(&customer).await.map(|url| json!({ "url": url })),
            Call::Purchases => self.purchases(&customer).await.map(|purchases| {
                json!({ "purchases": purchases.iter().map(wire::purchase).collect::<Vec<_>>() })
            }),
            Call::Cancel(reference) => self
                .cancel(&customer, reference)
                .await
                .map(|purchase| json!({ "purchase": wire::purchase(&purchase) })),
        };
        match answer {
            Ok(body) => json_response(StatusCode::OK, &body),
            Err(failure) => self.failure(failure),
        }
    }

    /// The caller and its customer, or the answer to send.
    async fn caller(&self, parts: &Parts) -> Result<(Identity, Customer), Response<Bytes>> {
        // `None` only when a fail-open policy let a caller through whose customer cannot
        // be ensured: there is nothing to show then.
        match self.paywall.identify(parts).await {
            Ok((identity, Some(customer))) => Ok((identity, customer)),
            Ok((_, None)) => {
                let outage = BackendError::unavailable("the customer cannot be ensured");
                Err(self.failure(Failure::Backend(outage)))
            }
            Err(rejection) => Err(self.paywall.rejection_response(&rejection)),
        }
    }

    /// Checks the caller's credentials from the request head alone (what
    /// [`handle`](Self::handle) does first): adapters call it before reading a body, so
    /// that an unauthenticated caller's body is never read. On refusal, the answer to
    /// send (401, or 503 when the identity provider cannot be reached).
    pub async fn authenticate(&self, parts: &Parts) -> Result<(), Response<Bytes>> {
        self.paywall
            .authenticate(parts)
            .await
            .map(drop)
            .map_err(|rejection| self.paywall.rejection_response(&rejection))
    }

    /// The 408 adapters answer for a body that did not arrive within
    /// [`BILLING_BODY_DEADLINE`].
    pub fn timed_out() -> Response<Bytes> {
        problem(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body did not arrive in time.",
        )
    }

    /// The 413 adapters answer for a body over [`MAX_BILLING_BODY`].
    pub fn too_large() -> Response<Bytes> {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large.",
        )
    }

    async fn state(&self, identity: &Identity, customer: &Customer) -> Result<Value, Failure> {
        let mut products = Vec::with_capacity(self.products.len());
        for route in self.products.iter() {
            let state = self
                .paywall
                .product_state(identity, route)
                .await
                .map_err(|rejection| Failure::Rejected(Box::new(rejection)))?;
            products.push(wire::product(route.product(), route.meter(), &state));
        }
        // Credits are extra: a provider that cannot tell them now still shows the rest.
        let credits = self.credits_of(customer).await;
        Ok(json!({
            "customerRef": customer.reference().as_str(),
            "products": products,
            "credits": wire::credits(credits.as_ref()),
        }))
    }

    /// The credit balance of `customer` (cached a few seconds); `None` when the
    /// provider has none or cannot tell now.
    async fn credits_of(&self, customer: &Customer) -> Option<Credits> {
        let epoch = self.paywall.invalidations();
        if let Some(credits) = self.cache.credits(customer.reference(), epoch).await {
            return credits;
        }
        let backend = self.paywall.account_backend();
        match backend.credits_boxed(customer.reference()).await {
            Ok(credits) => {
                self.cache
                    .keep_credits(customer.reference(), epoch, credits.clone())
                    .await;
                credits
            }
            Err(err) => {
                tracing::debug!(error = %err, "credit balance unavailable");
                None
            }
        }
    }

    async fn checkout(
        &self,
        customer: &Customer,
        object: &serde_json::Map<String, Value>,
    ) -> Result<Value, Failure> {
        let request = wire::checkout(object, &self.return_origins)
            .map_err(|wire::BadRequest(why)| Failure::Bad(why))?;
        if !self.products.iter().any(|r| r.product() == request.product) {
            return Err(Failure::NotFound("No such product."));
        }
        // The same link again while it is fresh, and a bounded number of new sessions
        // per customer: a caller cannot turn requests into provider sessions.
        let epoch = self.paywall.invalidations();
        let key = (
            customer.reference().clone(),
            request.product.clone(),
            request.plan.clone(),
            request.return_url.clone(),
        );
        if let Some(url) = self.cache.checkout(&key, epoch).await {
            return Ok(json!({ "checkoutUrl": &*url }));
        }
        if !self.cache.may_open_checkout(customer.reference()).await {
            return Err(Failure::RateLimited);
        }
        let url = self
            .paywall
            .account_backend()
            .checkout_session_boxed(customer.reference(), &request)
            .await?;
        self.cache
            .keep_checkout(key, epoch, Arc::from(url.as_str()))
            .await;
        Ok(json!({ "checkoutUrl": url }))
    }

    async fn portal(&self, customer: &Customer) -> Result<String, Failure> {
        Ok(self
            .paywall
            .account_backend()
            .portal_url_boxed(customer.reference())
            .await?)
    }

    async fn purchases(&self, customer: &Customer) -> Result<Arc<Vec<Purchase>>, Failure> {
        let epoch = self.paywall.invalidations();
        let purchases = match self.cache.purchases(customer.reference(), epoch).await {
            Some(purchases) => purchases,
            None => {
                let purchases = Arc::new(
                    self.paywall
                        .account_backend()
                        .purchases_boxed(customer.reference())
                        .await?,
                );
                self.cache
                    .keep_purchases(customer.reference(), epoch, Arc::clone(&purchases))
                    .await;
                purchases
            }
        };
        Ok(purchases)
    }

    /// Checks that `reference` is one of `customer`'s purchases (read afresh, whatever
    /// the backend checks itself).
    async fn own_purchase(&self, customer: &Customer, reference: &str) -> Result<(), Failure> {
        let backend = self.paywall.account_backend();
        let own = backend.purchases_boxed(customer.reference()).await?;
        if own.iter().any(|p| p.reference == reference) {
            Ok(())
        } else {
            Err(Failure::NotFound("No such purchase."))
        }
    }

    async fn cancel(&self, customer: &Customer, reference: &str) -> Result<Purchase, Failure> {
        self.own_purchase(customer, reference).await?;
        let purchase = self
            .paywall
            .account_backend()
            .cancel_purchase_boxed(customer.reference(), reference)
            .await?;
        self.paywall.invalidate_customer(customer.reference()).await;
        Ok(purchase)
    }

    fn failure(&self, failure: Failure) -> Response<Bytes> {
        match failure {
            Failure::Rejected(rejection) => self.paywall.rejection_response(&rejection),
            Failure::RateLimited => {
                let mut response = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "Too many checkout sessions opened for this customer; retry in a minute.",
                );
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(cache::CHECKOUT_WINDOW.as_secs()),
                );
                response
            }
            Failure::Bad(why) => problem(StatusCode::BAD_REQUEST, "bad_request", &why),
            Failure::NotFound(what) => problem(StatusCode::NOT_FOUND, "not_found", what),
            Failure::Backend(BackendError::NotFound(_)) => problem(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found at the billing provider.",
            ),
            Failure::Backend(BackendError::Unsupported(what)) => problem(
                StatusCode::NOT_IMPLEMENTED,
                "unsupported",
                &format!("The billing provider does not offer {what}."),
            ),
            Failure::Backend(err) if err.is_transient() => self
                .paywall
                .rejection_response(&self.paywall.unavailable(&err)),
            Failure::Backend(err) => {
                tracing::warn!(error = %err, "billing route refused by the backend");
                problem(
                    StatusCode::BAD_GATEWAY,
                    "billing_error",
                    "The billing provider refused the request.",
                )
            }
        }
    }
}

enum Call<'a> {
    State,
    Checkout,
    Portal,
    Purchases,
    Cancel(&'a str),
}

enum Failure {
    Rejected(Box<crate::Rejection>),
    /// Too many new checkout sessions for one customer this minute.
    RateLimited,
    Bad(String),
    NotFound(&'static str),
    Backend(BackendError),
}

impl From<BackendError> for Failure {
    fn from(err: BackendError) -> Self {
        Failure::Backend(err)
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A problem+json error answer.
fn problem(status: StatusCode, kind: &str, message: &str) -> Response<Bytes> {
    let mut response = json_response(status, &problem_body(status, kind, message));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}
