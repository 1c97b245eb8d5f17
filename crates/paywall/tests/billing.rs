//! The billing routes on their own, with the in-memory backend (which has none of the
//! account capabilities): state from the paywall's own budgets, and a clear 501 for
//! what the backend does not offer.

use bytes::Bytes;
use http::{Method, StatusCode};
use paywall::test_util::{HeaderResolver, MemoryBackend};
use paywall::{BillingRoutes, Charge, Paywall};
use serde_json::Value;

fn head(user: Option<&str>) -> http::request::Parts {
    let mut request = http::Request::builder();
    if let Some(user) = user {
        request = request.header("x-user", user);
    }
    request.body(()).expect("request").into_parts().0
}

fn json(response: &http::Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn state_counts_admitted_requests_and_missing_capabilities_are_501() {
    let backend = MemoryBackend::with_allowance(4);
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .build()
        .expect("paywall");
    let routes = BillingRoutes::new(&paywall, [Charge::new("prd_x")]).expect("routes");
    let state = routes
        .handle(&Method::GET, "", &head(Some("ada")), b"")
        .await;
    assert_eq!(state.status(), StatusCode::OK);
    assert_eq!(json(&state)["products"][0]["remaining"], 4);
    assert_eq!(json(&state)["customerRef"], "cus_ada");

    let route = paywall.route(Charge::new("prd_x")).expect("route");
    let admission = paywall
        .admit(&head(Some("ada")), &route)
        .await
        .expect("admitted");
    admission.finish(StatusCode::OK).await;
    let state = routes
        .handle(&Method::GET, "/", &head(Some("ada")), b"")
        .await;
    assert_eq!(
        json(&state)["products"][0]["remaining"],
        3,
        "no backend call needed"
    );

    for (method, path) in [
        (Method::POST, "/portal"),
        (Method::GET, "/purchases"),
        (Method::POST, "/purchases/pur_1/cancel"),
        (Method::POST, "/checkout"),
    ] {
        let body: &[u8] = if path == "/checkout" {
            br#"{"product":"prd_x"}"#
        } else {
            b""
        };
        let answer = routes.handle(&method, path, &head(Some("ada")), body).await;
        assert_eq!(answer.status(), StatusCode::NOT_IMPLEMENTED, "{path}");
        assert_eq!(json(&answer)["kind"], "unsupported", "{path}");
    }
    let anonymous = routes.handle(&Method::GET, "", &head(None), b"").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

/// A backend with the account capabilities that counts every provider call.
#[derive(Clone, Default)]
struct Counting {
    calls: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<&'static str, usize>>>,
}

impl Counting {
    fn count(&self, call: &'static str) -> usize {
        let mut calls = self.calls.lock().expect("lock");
        let n = calls.entry(call).or_default();
        *n += 1;
        *n
    }

    fn calls(&self, call: &'static str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .get(call)
            .copied()
            .unwrap_or(0)
    }
}

impl paywall::backend::BillingBackend for Counting {
    async fn ensure_customer(
        &self,
        identity: &paywall::Identity,
    ) -> Result<paywall::CustomerRef, paywall::backend::BackendError> {
        Ok(paywall::CustomerRef::new(format!(
            "cus_{}",
            identity.external_ref
        )))
    }
    async fn check_limits(
        &self,
        _: &paywall::CustomerRef,
        _: &str,
        _: &str,
    ) -> Result<paywall::backend::Limits, paywall::backend::BackendError> {
        Ok(paywall::backend::Limits::remaining(100))
    }
    async fn record_usage(
        &self,
        _: &[paywall::backend::UsageEvent],
    ) -> Result<(), paywall::backend::BackendError> {
        Ok(())
    }
    async fn checkout_session(
        &self,
        customer: &paywall::CustomerRef,
        _: &paywall::backend::CheckoutRequest,
    ) -> Result<String, paywall::backend::BackendError> {
        let n = self.count("checkout");
        Ok(format!("https://pay.example/{customer}/{n}"))
    }
    async fn purchases(
        &self,
        _: &paywall::CustomerRef,
    ) -> Result<Vec<paywall::backend::Purchase>, paywall::backend::BackendError> {
        self.count("purchases");
        Ok(Vec::new())
    }
    async fn credits(
        &self,
        _: &paywall::CustomerRef,
    ) -> Result<Option<paywall::backend::Credits>, paywall::backend::BackendError> {
        self.count("credits");
        Ok(Some(paywall::backend::Credits::new(10)))
    }
}

#[tokio::test]
async fn repeated_billing_requests_are_not_repeated_provider_calls() {
    let backend = Counting::default();
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .build()
        .expect("paywall");
    let routes = BillingRoutes::new(&paywall, [Charge::new("prd_x")]).expect("routes");
    let ada = || head(Some("ada"));

    // 50 states and 50 purchase lists: one provider call each.
    for _ in 0..50 {
        assert_eq!(
            routes.handle(&Method::GET, "", &ada(), b"").await.status(),
            StatusCode::OK
        );
        assert_eq!(
            routes
                .handle(&Method::GET, "/purchases", &ada(), b"")
                .await
                .status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        (backend.calls("credits"), backend.calls("purchases")),
        (1, 1)
    );

    // 50 identical checkouts: one session, the same link every time.
    let body = br#"{"product":"prd_x"}"#;
    let first = json(
        &routes
            .handle(&Method::POST, "/checkout", &ada(), body)
            .await,
    );
    for _ in 0..49 {
        let again = json(
            &routes
                .handle(&Method::POST, "/checkout", &ada(), body)
                .await,
        );
        assert_eq!(again["checkoutUrl"], first["checkoutUrl"]);
    }
    assert_eq!(backend.calls("checkout"), 1);

    // Different checkouts: 10 new sessions a minute, then a 429 with Retry-After.
    let mut statuses = Vec::new();
    for plan in 0..12 {
        let body = format!(r#"{{"product":"prd_x","plan":"pln_{plan}"}}"#);
        let answer = routes
            .handle(&Method::POST, "/checkout", &ada(), body.as_bytes())
            .await;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.headers().contains_key(http::header::RETRY_AFTER));
            assert_eq!(json(&answer)["kind"], "rate_limited");
        }
        statuses.push(answer.status());
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        limited, 3,
        "1 + 9 new sessions allowed, then refused: {statuses:?}"
    );

    // A purchase (the paywall invalidating the customer) drops what was remembered.
    paywall
        .invalidate_customer(&paywall::CustomerRef::new("cus_ada"))
        .await;
    routes.handle(&Method::GET, "", &ada(), b"").await;
    assert_eq!(backend.calls("credits"), 2);
}
