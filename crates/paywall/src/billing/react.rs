//! [`ReactRoutes`]: the routes SolvaPay's React components (`@solvapay/react`'s default
//! HTTP transport) call on the merchant's backend, answered with the shapes its hooks
//! read, for the caller of the bearer token only, over the same paywall, products and
//! caches as [`BillingRoutes`](super::BillingRoutes).
//!
//! The catalogue and the routes that move money are [`AccountCall`]s the backend
//! answers: SolvaPay forwards them for the caller's customer; the embedded backend
//! answers the catalogue and 501 `unsupported` for payments (its own checkout and
//! portal take payments).

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::wire::BadRequest;
use super::{json_response, problem, react_wire as wire, BillingRoutes, Failure};
use crate::account::AccountCall;
use crate::customer::Customer;
use crate::error::ConfigError;
use crate::identity::Identity;

/// The routes of SolvaPay's React components, made with [`BillingRoutes::react`].
///
/// | path (under the mount, `/api` by default in the components) | method | answer |
/// |---|---|---|
/// | `check-purchase` | GET | `{customerRef, purchases: PurchaseInfo[]}` (active ones) |
/// | `customer-balance` | GET | `{credits, displayCurrency, creditsPerMinorUnit, displayExchangeRate}` |
/// | `limits?productRef=&meterName=` | GET | `{withinLimits, remaining, meterName, activationRequired}` |
/// | `usage` | GET | `{meterRef, total, used, remaining, percentUsed, periodEnd}` |
/// | `create-checkout-session` | POST `{productRef?, planRef?, returnUrl?}` | `{checkoutUrl}` |
/// | `create-customer-session` | POST | `{customerUrl}` |
/// | `cancel-renewal` | POST `{purchaseRef, reason?}` | the purchase |
/// | `reactivate-renewal` | POST `{purchaseRef}` | the backend's answer |
/// | `activate-plan` | POST `{productRef, planRef}` | `{status, …}` |
/// | `merchant`, `get-product?productRef=`, `list-plans?productRef=` | GET | the catalogue (`list-plans`: `{plans, productRef}`) |
/// | `payment-method`, `auto-recharge` (GET, PUT, DELETE), `create-payment-intent`, `process-payment`, `create-topup-payment-intent`, `process-topup-payment`, `attach-business-details` | | the backend's answer, or 501 `unsupported` |
///
/// Products are those given to [`BillingRoutes::new`]; another is 404. Members naming
/// a customer are dropped, other unknown members are a 400.
#[derive(Clone, Debug)]
pub struct ReactRoutes {
    billing: BillingRoutes,
    cors_origins: Arc<[String]>,
}

impl BillingRoutes {
    /// The routes of SolvaPay's React components over these billing routes (same
    /// paywall, products, return origins and caches).
    pub fn react(&self) -> ReactRoutes {
        ReactRoutes {
            billing: self.clone(),
            cors_origins: Arc::from([]),
        }
    }
}

impl ReactRoutes {
    /// The paths `@solvapay/react`'s default transport calls, relative to its `/api`.
    pub const PATHS: [&'static str; 19] = [
        "check-purchase",
        "customer-balance",
        "limits",
        "usage",
        "create-checkout-session",
        "create-customer-session",
        "cancel-renewal",
        "reactivate-renewal",
        "activate-plan",
        "merchant",
        "get-product",
        "list-plans",
        "payment-method",
        "auto-recharge",
        "create-payment-intent",
        "process-payment",
        "create-topup-payment-intent",
        "process-topup-payment",
        "attach-business-details",
    ];

    /// The origins (`https://app.example`: scheme, host and port as a browser sends
    /// them in `Origin`) a browser frontend may call these routes from; the adapters
    /// answer CORS preflights for them. None by default (same origin only). Anything
    /// else (`*`, a path, another scheme) is a [`ConfigError::InvalidSetting`].
    pub fn cors_origins(
        mut self,
        origins: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ConfigError> {
        let mut valid = Vec::new();
        for origin in origins {
            let origin = origin.into();
            let origin = origin.trim().trim_end_matches('/');
            let parsed = url::Url::parse(origin).ok().filter(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.origin().ascii_serialization() == origin
            });
            if parsed.is_none() {
                return Err(ConfigError::InvalidSetting {
                    name: "cors_origins",
                    reason: "an origin is http(s)://host[:port], without a path or a wildcard",
                });
            }
            valid.push(origin.to_owned());
        }
        self.cors_origins = valid.into();
        Ok(self)
    }

    /// The origins set with [`cors_origins`](Self::cors_origins).
    pub fn allowed_origins(&self) -> &[String] {
        &self.cors_origins
    }

    /// Checks the caller's credentials from the request head alone (adapters call it
    /// before reading a body); see [`BillingRoutes::authenticate`].
    pub async fn authenticate(&self, parts: &Parts) -> Result<(), Response<Bytes>> {
        self.billing.authenticate(parts).await
    }

    /// Answers a request for `route` (one of [`PATHS`](Self::PATHS)); `body` is at
    /// most [`MAX_BILLING_BODY`](super::MAX_BILLING_BODY) bytes.
    pub async fn handle(
        &self,
        method: &Method,
        route: &str,
        parts: &Parts,
        body: &[u8],
    ) -> Response<Bytes> {
        let route = route.trim_matches('/');
        let allowed: &[Method] = match route {
            "auto-recharge" => &[Method::GET, Method::PUT, Method::DELETE],
            "check-purchase" | "customer-balance" | "limits" | "usage" | "merchant"
            | "get-product" | "list-plans" | "payment-method" => &[Method::GET],
            known if Self::PATHS.contains(&known) => &[Method::POST],
            _ => return problem(StatusCode::NOT_FOUND, "not_found", "No such route."),
        };
        if !allowed.contains(method) {
            return problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed here.",
            );
        }
        let (identity, customer) = match self.billing.caller(parts).await {
            Ok(caller) => caller,
            Err(refused) => return refused,
        };
        let query: Map<String, Value> = parts
            .uri
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned())
            .into_iter()
            .flatten()
            .map(|(name, value)| (name, Value::String(value)))
            .collect();
        let call = Request {
            identity: &identity,
            customer: &customer,
            query: &query,
            body,
        };
        match self.answer(method, route, call).await {
            Ok(answer) => json_response(StatusCode::OK, &answer),
            Err(failure) => self.billing.failure(failure),
        }
    }

    async fn answer(
        &self,
        method: &Method,
        route: &str,
        call: Request<'_>,
    ) -> Result<Value, Failure> {
        let Request {
            identity,
            customer,
            query,
            body,
        } = call;
        let billing = &self.billing;
        let bad = |BadRequest(why)| Failure::Bad(why);
        match (route, method) {
            ("check-purchase", _) => {
                let purchases = billing.purchases(customer).await?;
                let active: Vec<Value> = purchases
                    .iter()
                    .filter(|p| p.status == "active")
                    .map(wire::purchase)
                    .collect();
                Ok(json!({ "customerRef": customer.reference().as_str(), "purchases": active }))
            }
            ("customer-balance", _) => {
                Ok(wire::balance(billing.credits_of(customer).await.as_ref()))
            }
            ("limits", _) => {
                let product = wire::required(query, "productRef").map_err(bad)?;
                let meter = wire::text(query, "meterName").map_err(bad)?;
                let route = billing
                    .products
                    .iter()
                    .find(|r| {
                        r.product() == product && meter.as_deref().is_none_or(|m| r.meter() == m)
                    })
                    .ok_or(Failure::NotFound("No such product or meter."))?;
                let state = billing
                    .paywall
                    .product_state(identity, route)
                    .await
                    .map_err(|rejection| Failure::Rejected(Box::new(rejection)))?;
                Ok(wire::limits(route.meter(), &state))
            }
            ("usage", _) => {
                let Some(route) = billing.products.first() else {
                    return Err(Failure::NotFound("No product is billed here."));
                };
                let state = billing
                    .paywall
                    .product_state(identity, route)
                    .await
                    .map_err(|rejection| Failure::Rejected(Box::new(rejection)))?;
                Ok(wire::usage(route.meter(), &state))
            }
            ("create-checkout-session", _) => {
                let object =
                    wire::body(body, &["productRef", "planRef", "returnUrl"]).map_err(bad)?;
                let mut request = Map::new();
                let product = match wire::text(&object, "productRef").map_err(bad)? {
                    Some(product) => product,
                    None => self.only_product()?,
                };
                request.insert("product".into(), Value::String(product));
                for (from, to) in [("planRef", "plan"), ("returnUrl", "returnUrl")] {
                    if let Some(value) = object.get(from) {
                        request.insert(to.into(), value.clone());
                    }
                }
                billing.checkout(customer, &request).await
            }
            ("create-customer-session", _) => {
                wire::body(body, &[]).map_err(bad)?;
                let url = billing.portal(customer).await?;
                Ok(json!({ "customerUrl": url }))
            }
            ("cancel-renewal", _) => {
                let object = wire::body(body, &["purchaseRef", "reason"]).map_err(bad)?;
                let reference = wire::reference(&object, "purchaseRef").map_err(bad)?;
                wire::text(&object, "reason").map_err(bad)?;
                let purchase = billing.cancel(customer, &reference).await?;
                Ok(wire::purchase(&purchase))
            }
            ("reactivate-renewal", _) => {
                let object = wire::body(body, &["purchaseRef"]).map_err(bad)?;
                let purchase = wire::reference(&object, "purchaseRef").map_err(bad)?;
                billing.own_purchase(customer, &purchase).await?;
                self.call(customer, AccountCall::Reactivate { purchase })
                    .await
            }
            ("activate-plan", _) => {
                let object = wire::body(body, &["productRef", "planRef"]).map_err(bad)?;
                let product =
                    self.known_product(wire::required(&object, "productRef").map_err(bad)?)?;
                let plan = wire::reference(&object, "planRef").map_err(bad)?;
                self.call(customer, AccountCall::ActivatePlan { product, plan })
                    .await
            }
            ("merchant", _) => self.catalogue(customer, AccountCall::Merchant).await,
            ("get-product", _) => {
                let product =
                    self.known_product(wire::required(query, "productRef").map_err(bad)?)?;
                self.catalogue(customer, AccountCall::Product { product })
                    .await
            }
            ("list-plans", _) => {
                let product =
                    self.known_product(wire::required(query, "productRef").map_err(bad)?)?;
                let plans = self
                    .catalogue(
                        customer,
                        AccountCall::Plans {
                            product: product.clone(),
                        },
                    )
                    .await?;
                Ok(json!({ "plans": plans, "productRef": product }))
            }
            ("payment-method", _) => self.call(customer, AccountCall::PaymentMethod).await,
            ("auto-recharge", &Method::GET) => self.call(customer, AccountCall::AutoRecharge).await,
            ("auto-recharge", &Method::DELETE) => {
                self.call(customer, AccountCall::DisableAutoRecharge).await
            }
            ("auto-recharge", _) => {
                let settings = match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(mut settings)) => {
                        settings.retain(|name, _| {
                            !super::wire::CALLER_MEMBERS.contains(&name.as_str())
                        });
                        settings
                    }
                    _ => return Err(Failure::Bad("the body must be a JSON object".into())),
                };
                self.call(customer, AccountCall::SaveAutoRecharge { settings })
                    .await
            }
            ("create-payment-intent", _) => {
                let object =
                    wire::body(body, &["productRef", "planRef", "currency"]).map_err(bad)?;
                let product = match wire::text(&object, "productRef").map_err(bad)? {
                    Some(product) => Some(self.known_product(product)?),
                    None => None,
                };
                let call = AccountCall::CreatePaymentIntent {
                    product,
                    plan: wire::text(&object, "planRef").map_err(bad)?,
                    currency: wire::text(&object, "currency").map_err(bad)?,
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                };
                self.rate_limited(customer).await?;
                self.call(customer, call).await
            }
            ("process-payment", _) => {
                let object =
                    wire::body(body, &["paymentIntentId", "productRef", "planRef"]).map_err(bad)?;
                let call = AccountCall::ProcessPayment {
                    payment_intent: wire::reference(&object, "paymentIntentId").map_err(bad)?,
                    product: self
                        .known_product(wire::required(&object, "productRef").map_err(bad)?)?,
                    plan: wire::text(&object, "planRef").map_err(bad)?,
                };
                self.call(customer, call).await
            }
            ("create-topup-payment-intent", _) => {
                let object =
                    wire::body(body, &["amount", "currency", "autoRecharge"]).map_err(bad)?;
                let call = AccountCall::CreateTopupPaymentIntent {
                    amount: wire::amount(&object).map_err(bad)?,
                    currency: wire::text(&object, "currency").map_err(bad)?,
                    auto_recharge: wire::object_member(&object, "autoRecharge").map_err(bad)?,
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                };
                self.rate_limited(customer).await?;
                self.call(customer, call).await
            }
            ("process-topup-payment", _) => {
                let object = wire::body(body, &["paymentIntentId"]).map_err(bad)?;
                let payment_intent = wire::reference(&object, "paymentIntentId").map_err(bad)?;
                self.call(
                    customer,
                    AccountCall::ProcessTopupPayment { payment_intent },
                )
                .await
            }
            _ => {
                let known = [
                    "paymentIntentId",
                    "isBusiness",
                    "businessName",
                    "country",
                    "taxId",
                    "taxIdType",
                ];
                let object = wire::body(body, &known).map_err(bad)?;
                let call = AccountCall::AttachBusinessDetails {
                    payment_intent: wire::reference(&object, "paymentIntentId").map_err(bad)?,
                    details: wire::business_details(&object).map_err(bad)?,
                };
                self.call(customer, call).await
            }
        }
    }

    /// One of the products these routes bill, or 404.
    fn known_product(&self, product: String) -> Result<String, Failure> {
        if self.billing.products.iter().any(|r| r.product() == product) {
            Ok(product)
        } else {
            Err(Failure::NotFound("No such product."))
        }
    }

    /// The product a checkout without `productRef` is for: the only one billed here.
    fn only_product(&self) -> Result<String, Failure> {
        let products = &self.billing.products;
        match products.first().map(|r| r.product()) {
            Some(only) if products.iter().all(|r| r.product() == only) => Ok(only.to_owned()),
            _ => Err(Failure::Bad("`productRef` is required".into())),
        }
    }

    /// Payments opened per customer share the checkout sessions' limit.
    async fn rate_limited(&self, customer: &Customer) -> Result<(), Failure> {
        if self
            .billing
            .cache
            .may_open_checkout(customer.reference())
            .await
        {
            Ok(())
        } else {
            Err(Failure::RateLimited)
        }
    }

    /// Hands `call` to the backend; a call that may change access forgets the
    /// customer's cached limits.
    async fn call(&self, customer: &Customer, call: AccountCall) -> Result<Value, Failure> {
        let paywall = &self.billing.paywall;
        let answer = paywall
            .account_backend()
            .account_call_boxed(customer.reference(), &call)
            .await?;
        if call.changes_access() {
            paywall.invalidate_customer(customer.reference()).await;
        }
        Ok(answer)
    }

    /// A catalogue call, its answer kept a minute (the same for every caller).
    async fn catalogue(&self, customer: &Customer, call: AccountCall) -> Result<Value, Failure> {
        let key = match &call {
            AccountCall::Product { product } => format!("product:{product}"),
            AccountCall::Plans { product } => format!("plans:{product}"),
            _ => "merchant".to_owned(),
        };
        let cache = &self.billing.cache;
        if let Some(answer) = cache.catalogue(&key).await {
            return Ok(Value::clone(&answer));
        }
        let answer = self.call(customer, call).await?;
        cache.keep_catalogue(key, Arc::new(answer.clone())).await;
        Ok(answer)
    }
}

/// What a route reads of its request.
struct Request<'a> {
    identity: &'a Identity,
    customer: &'a Customer,
    query: &'a Map<String, Value>,
    body: &'a [u8],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{HeaderResolver, MemoryBackend};

    #[tokio::test]
    async fn cors_origins_are_browser_origins() {
        let paywall = crate::Paywall::builder(HeaderResolver::new(), MemoryBackend::unlimited())
            .build()
            .expect("paywall");
        let routes = BillingRoutes::new(&paywall, [crate::Charge::new("prd_a")])
            .expect("routes")
            .react();
        let ok = routes
            .clone()
            .cors_origins(["https://app.example", "http://127.0.0.1:5173/"])
            .expect("valid");
        assert_eq!(
            ok.allowed_origins(),
            ["https://app.example", "http://127.0.0.1:5173"]
        );
        for bad in [
            "*",
            "https://app.example/path",
            "ftp://app.example",
            "app.example",
            "",
        ] {
            assert!(routes.clone().cors_origins([bad]).is_err(), "{bad}");
        }
    }
}
